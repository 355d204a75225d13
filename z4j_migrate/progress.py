"""A live progress line for long runs on a terminal; nothing extra anywhere else.

The engine announces its work as tagged log records (logs.EVENT): "planned" with the total and
the unit (revisions, targets, verify's checks), then one record per item done; a nested run
(verify's own upgrades, one target's revisions in a fleet) does not disturb the outer line. `ProgressLine` is a logging
handler the CLI adds: on a terminal it draws click's progress bar on stderr (done/total, the
current item, elapsed time and rate); when stderr is not a terminal click draws nothing, so a
piped or logged run gets only its plain lines, with no control characters. Click is imported
only when a run has something to do, so the no-op start-up never pays for it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from .logs import EVENT

PLANNED = "planned"
STEPS = ("applied", "rolled_back", "target", "checked")
# For progress that commands quieten below WARNING (verify): a child logger keeps its own level,
# and its records still reach the package logger's handlers.
_progress_log = logging.getLogger("z4j_migrate.progress")
_progress_log.setLevel(logging.INFO)


def announce(total: int, unit: str) -> None:
    """`total` items of `unit` are about to be worked through."""
    _progress_log.info("%d %s(s) to go", total, unit, extra={EVENT: PLANNED, "total": total, "unit": unit})


def advance(item: str, unit: str) -> None:
    """One item is done."""
    _progress_log.info("%s %s done", unit, item, extra={EVENT: "checked", "item": item, "unit": unit})


class ProgressLine(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self._bar: Any = None
        self._unit = ""
        self._started = 0.0
        self._done = 0

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, EVENT, None)
        unit = str(getattr(record, "unit", "target" if event == "target" else "revision"))
        if event == PLANNED and (self._bar is None or unit == self._unit):
            self._start(int(getattr(record, "total", 0)), unit)
        elif event in STEPS and self._bar is not None and unit == self._unit:  # a nested run's steps do not count
            self._done += 1
            self._bar.update(1, current_item=str(getattr(record, "item", "")))

    def _start(self, total: int, unit: str) -> None:
        self.finish()
        if total < 2 or not sys.stderr.isatty():
            return
        import click

        self._started, self._done, self._unit = time.monotonic(), 0, unit
        self._bar = click.progressbar(
            length=total,
            label=f"{unit}s",
            file=sys.stderr,
            show_pos=True,
            show_eta=False,
            item_show_func=self._describe,
        )
        self._bar.render_progress()

    def _describe(self, item: str | None) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        return f"{item or ''}  {elapsed:.1f}s  {self._done / elapsed:.1f}/s"

    def echo(self, text: str) -> None:
        """Print a line on stdout above the live line (which is cleared, then drawn again below it)."""
        if self._bar is None:
            print(text, flush=True)
            return
        sys.stderr.write("\r\x1b[2K")
        sys.stderr.flush()
        print(text, flush=True)
        self._bar._last_line = None  # click draws only a changed line; this one must come back
        self._bar.render_progress()

    def finish(self) -> None:
        """End the line (before the command prints its summary)."""
        if self._bar is not None:
            self._bar.render_finish()
            self._bar = None
