"""SIGTERM and SIGINT: stop at once, and leave the database as a clean stop would.

What Kubernetes sends a Job's pod before it kills it is SIGTERM; Python's default for it
is to die at once, which leaves the statement in flight running on the server (holding
the migration lock) until it finishes. With `signals()` installed, a signal does one of
three things, depending on what the run is doing when it arrives:

- a revision's own SQL is in flight (`cancellable`): the statement is cancelled on the
  server (libpq's cancel request, which PgBouncer forwards); the run sees the error, rolls
  back or journals, and raises `Interrupted`;
- bookkeeping, a ROLLBACK or an unlock is in flight (`critical`): it finishes (each is
  short), then `check()` raises `Interrupted`;
- anything else (connecting, reading files, waiting for the lock, a prompt): `Interrupted`
  is raised at once.

A second signal while the first is being handled is ignored: the clean-up is short.
`Interrupted` derives from BaseException, so an application's `except Exception` does not
swallow it (click, which turns KeyboardInterrupt into "Aborted", does not see it either).
Without `signals()` (a library caller that owns its signals) nothing here does anything.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import psycopg

EXIT_CODE = 12
_SLICE_S = 0.05  # how often a sleep looks at the flag: the worst added latency of a stop


class Interrupted(BaseException):
    """The run was stopped by a signal; `applied` and `rolled_back` say what it left behind."""

    exit_code = EXIT_CODE

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.applied: tuple[str, ...] = ()  # revisions this run applied (or rolled back, for a downgrade)
        self.undone: str | None = None  # the revision in flight, cancelled and rolled back
        self.journaled: str | None = None  # the non-transactional revision in flight, stopped part-way
        self.direction = "apply"
        super().__init__(self.signal_name)

    def summary(self) -> str:
        """One line for the operator: what this run changed and what it left."""
        done = ", ".join(self.applied) if self.applied else "nothing"
        verb = "applied" if self.direction == "apply" else "rolled back"
        parts = [f"interrupted by {self.signal_name}: {verb} {done}"]
        if self.undone:
            parts.append(f"cancelled {self.undone}, which the server rolled back (it left no trace)")
        if self.journaled:
            parts.append(
                f"stopped the non-transactional {self.journaled} part-way (journaled; the next run resumes it)"
            )
        return "; ".join(parts) + "; the migration lock is released. Run z4j-migrate again to continue."


class _State:
    """The handler runs on the main thread; a fleet (fleet.py) runs targets on worker threads, each
    with its own connection: every thread's revision SQL in flight is cancelled, and critical
    sections are counted per thread (only the main thread's can be interrupted by the handler)."""

    def __init__(self) -> None:
        self.installed = False
        self.signum: int | None = None
        self.cancellable: dict[int, psycopg.Connection] = {}  # thread ident -> connection
        self._critical = threading.local()

    @property
    def critical(self) -> int:
        return getattr(self._critical, "depth", 0)

    @critical.setter
    def critical(self, depth: int) -> None:
        self._critical.depth = depth


_state = _State()


def _handler(signum: int, _frame: FrameType | None) -> None:
    if _state.signum is not None:
        return  # already stopping
    _state.signum = signum
    in_flight = list(_state.cancellable.values())
    for conn in in_flight:
        with contextlib.suppress(Exception):  # a failed cancel only means the statement ends by itself
            conn.cancel()
    if threading.get_ident() in _state.cancellable or _state.critical:
        return  # this thread's own statement was cancelled, or its work must finish first
    raise Interrupted(signum)


@contextmanager
def signals() -> Iterator[None]:
    """Install the handlers for the block (main thread only; elsewhere this does nothing)."""
    if threading.current_thread() is not threading.main_thread() or _state.installed:
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGTERM, signal.SIGINT)}
    _state.installed = True
    _state.signum = None
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _state.installed = False


def requested() -> int | None:
    """The signal received, if any."""
    return _state.signum if _state.installed else None


def check() -> None:
    """Raise Interrupted if a signal arrived (at a point where stopping leaves nothing half-done)."""
    if requested() is not None:
        raise Interrupted(_state.signum)  # type: ignore[arg-type]


@contextmanager
def critical() -> Iterator[None]:
    """Work that must finish once started (bookkeeping, ROLLBACK, unlock); a signal waits for it,
    and the caller's next check() raises."""
    _state.critical += 1
    try:
        yield
    finally:
        _state.critical -= 1


@contextmanager
def cancellable(conn: psycopg.Connection) -> Iterator[None]:
    """A revision's own SQL runs on `conn`: a signal cancels it on the server, and the error the
    cancelled statement raises becomes Interrupted."""
    me = threading.get_ident()
    _state.cancellable[me] = conn
    _state.critical += 1
    try:
        check()  # a signal that came just before: the handler did not see this connection
        yield
    except psycopg.Error as exc:
        if requested() is not None:
            raise Interrupted(_state.signum) from exc  # type: ignore[arg-type]
        raise
    finally:
        _state.critical -= 1
        _state.cancellable.pop(me, None)


def sleep(seconds: float) -> None:
    """time.sleep in short slices, so a stop requested meanwhile is seen within _SLICE_S."""
    end = time.monotonic() + seconds
    while True:
        check()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, _SLICE_S))
