"""A live progress line for long runs on a terminal; nothing extra anywhere else.

The engine announces its work as tagged log records (logs.EVENT): "planned" with the total,
then one "applied" / "rolled_back" (or "target") per item done. `ProgressLine` is a logging
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
STEPS = ("applied", "rolled_back", "target")


class ProgressLine(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self._bar: Any = None
        self._started = 0.0
        self._done = 0

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, EVENT, None)
        if event == PLANNED:
            self._start(int(getattr(record, "total", 0)), str(getattr(record, "unit", "revision")))
        elif event in STEPS and self._bar is not None:
            self._done += 1
            self._bar.update(1, current_item=str(getattr(record, "item", "")))

    def _start(self, total: int, unit: str) -> None:
        self.finish()
        if total < 2 or not sys.stderr.isatty():
            return
        import click

        self._started, self._done = time.monotonic(), 0
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

    def finish(self) -> None:
        """End the line (before the command prints its summary)."""
        if self._bar is not None:
            self._bar.render_finish()
            self._bar = None
