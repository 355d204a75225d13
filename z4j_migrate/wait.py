"""The readiness gate: wait until the database holds every revision of this code (`z4j-migrate wait`).

For app pods that run with Z4J_AUTO_MIGRATE=false while a one-shot migrate Job upgrades the
database: an init container or a readiness probe. Each poll is the no-op start-up's check
(startup.check_head: a catalog probe and the one-row head digest). Only when the digest is not
this code's head, and has changed since the last poll (or every few seconds, in case rows were
changed with triggers off), is the whole history read and planned, as upgrade would. Nothing
here takes the migration lock or writes: a missing or stale digest only means the full read on
each poll, never a repair (that is for the next upgrade). Works on a hot standby, too.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psycopg

from . import diagnose, interrupt
from .config import Settings, given_or_from_env
from .db import connect
from .errors import ConfigError, ConnectionFailed, WaitTimeout
from .lock import LockHolder, lock_holder
from .logs import log
from .plan import plan_upgrade
from .revisions import REVISION_FILE_NAME
from .startup import HeadCheck, StartupScan, check_head, warn_if_manifest_stale, warn_unknown
from .state import ProgressRow
from .store import Store

_REPORT_EVERY_S = 10.0  # how often a waiting run says what it waits for (log level info)
_REREAD_S = 5.0  # re-read the history even when the digest has not changed (rows changed with triggers off)
_LISTED = 10  # pending revisions named in the timeout message; the rest are counted


@dataclass(frozen=True)
class WaitResult:
    """The database is at this code's head: how long that took, in how many polls, and the revisions
    the database has that this code does not (database ahead of code, accepted with a warning)."""

    waited_s: float
    polls: int
    unknown: tuple[str, ...] = ()
    revisions: int = 0  # how many revisions this code has


class _Poll(NamedTuple):  # not a dataclass: the package imports this module on every start-up
    ready: bool
    pending: tuple[str, ...] = ()
    total: int = 0
    in_progress: tuple[ProgressRow, ...] = ()
    standby: bool = False  # a hot standby: the primary's lock holder is not visible here
    unknown: tuple[str, ...] = ()
    stored: int | None = None  # the head digest this poll saw


def wait_for_head(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    migrations_dir: object = None,
    timeout_s: float = 60.0,
    poll_s: float = 0.25,
    **overrides: object,
) -> WaitResult:
    """Block until the database holds every revision of this code, polling every `poll_s` seconds.

    Returns at once when it does (one poll). A database ahead of the code counts as ready (the
    start-up's warning is logged; the ids are in `unknown`). Raises WaitTimeout (exit 13) after
    `timeout_s`, naming what is still pending and who holds the migration lock; DriftError or
    IncompleteRevision at once when an upgrade would refuse (an applied revision was edited, a
    rollback stopped part-way); ConnectionFailed when the database cannot be reached before the
    deadline (connecting, and reconnecting after a lost session, are retried until then, or for
    `settings.connect_wait_s` if that is longer). Takes no lock and writes nothing.
    """
    settings = given_or_from_env(settings, database_url, migrations_dir, **overrides)
    if not (math.isfinite(timeout_s) and timeout_s >= 0):
        raise ConfigError(f"wait timeout {timeout_s:g}: must be a finite number of seconds, 0 or more.")
    if not (math.isfinite(poll_s) and poll_s > 0):
        raise ConfigError(f"wait interval {poll_s:g}: must be a finite number of seconds, more than 0.")
    waiter = _Waiter(settings, timeout_s)
    try:
        while True:
            result = waiter.poll()
            if result is not None:
                return result
            interrupt.sleep(min(poll_s, max(0.0, waiter.deadline - time.monotonic())))
    finally:
        waiter.close()


class _Waiter:
    """One wait: its deadlines, its one connection (reconnected when lost), and the last full read."""

    def __init__(self, settings: Settings, timeout_s: float) -> None:
        self.settings, self.timeout_s = settings, timeout_s
        self.started = time.monotonic()
        self.deadline = self.started + timeout_s
        self.connect_until = self.started + max(timeout_s, settings.connect_wait_s)
        # Read once, in line (no thread to outlive us).
        self.scan = StartupScan(settings.migrations_dir, wait=True, layout=settings.layout)
        self.conn: psycopg.Connection | None = None
        self.polls = 0
        self.last: _Poll | None = None  # the last full read
        self.last_read_at, self.next_report = -math.inf, self.started

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def poll(self) -> WaitResult | None:
        """One look (two statements; the whole history only when the digest moved, or now and then)."""
        if self.conn is None:
            budget_s = round(max(0.0, self.connect_until - time.monotonic()), 1)  # connect() names it if it runs out
            self.conn = connect(dataclasses.replace(self.settings, connect_wait_s=budget_s))
        try:
            return self._look(self.conn)
        except psycopg.Error as exc:
            if not diagnose.connection_lost(exc, self.conn):
                raise
            self._lost(exc)
            return None

    def _look(self, conn: psycopg.Connection) -> WaitResult | None:
        self.polls += 1
        store = Store(conn, self.settings.schema)
        head = check_head(store, self.scan, to=None)
        if head.at_head:
            return WaitResult(time.monotonic() - self.started, self.polls, (), _count(self.settings.migrations_dir))
        last, now = self.last, time.monotonic()
        if last is None or head.stored is None or head.stored != last.stored or now >= self.last_read_at + _REREAD_S:
            self.last, self.last_read_at = _full_read(store, self.scan, head, warn_stale=last is None), now
            if self.last.ready:
                return WaitResult(time.monotonic() - self.started, self.polls, self.last.unknown, self.last.total)
        self._report_or_give_up(conn)
        return None

    def _report_or_give_up(self, conn: psycopg.Connection) -> None:
        last, now = self.last, time.monotonic()
        assert last is not None
        if now < self.deadline and now < self.next_report:
            return
        holder = lock_holder(conn, self.settings.lock_key)
        if now >= self.deadline:
            display = self.settings.database.display
            raise timeout_error(
                display, last.pending, last.total, self.timeout_s, holder, last.in_progress, standby=last.standby
            )
        self.next_report = now + _REPORT_EVERY_S
        log.info("waiting for %s: %s", self.settings.database.display, _waiting_for(last, holder))

    def _lost(self, exc: psycopg.Error) -> None:
        assert self.conn is not None
        self.conn.close()
        self.conn = None
        if time.monotonic() >= self.connect_until:
            raise ConnectionFailed(
                f"lost the connection to {self.settings.database.display} while waiting for it to reach this "
                f"code's head ({diagnose.first_line(exc)}), at the end of the {self.timeout_s:g}s timeout."
            ) from exc
        log.info("lost the database connection (%s); reconnecting", diagnose.first_line(exc))


def _full_read(store: Store, scan: StartupScan, head: HeadCheck, *, warn_stale: bool) -> _Poll:
    """The whole history, planned as upgrade would (raising DriftError for an edited revision)."""
    revset = scan.result()
    state = store.read_state(head.probe, details=False)
    if warn_stale:
        warn_if_manifest_stale(revset)
    pending = tuple(r.id for r in plan_upgrade(revset.revisions, state))
    total = len(revset.revisions)
    if not pending and not state.in_progress:
        return _Poll(True, total=total, unknown=warn_unknown(revset, state), stored=head.stored)
    journaled = tuple(state.in_progress.values())
    return _Poll(False, pending, total, journaled, stored=head.stored, standby=head.probe.in_recovery)


def _count(directory: Path) -> int:
    """The number of revisions in `directory`, from its listing (at head the files need not be parsed)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    return sum(1 for n in names if n.endswith(".up.sql") and REVISION_FILE_NAME.match(n))


def _named(pending: tuple[str, ...], in_progress: tuple[ProgressRow, ...]) -> str:
    """The pending ids (the first few), a journaled one with how far it got."""
    journaled = {p.id: p for p in in_progress}
    parts = []
    for rev_id in pending[:_LISTED]:
        p = journaled.get(rev_id)
        parts.append(f"{rev_id} (journaled: {p.statements_done} of {p.statements_total} done)" if p else rev_id)
    if len(pending) > _LISTED:
        parts.append(f"and {len(pending) - _LISTED} more")
    return ", ".join(parts) or ", ".join(journaled) or "nothing"


def _holder_text(holder: LockHolder | None, *, standby: bool = False) -> str:
    if holder is None and standby:
        return "this is a hot standby, where the primary's migration lock cannot be seen (the migrate Job runs there)"
    if holder is None:
        return "no one holds the migration lock (is the migrate Job running?)"
    return f"the migration lock is held by {holder.describe()}"


def _waiting_for(poll: _Poll, holder: LockHolder | None) -> str:
    named = _named(poll.pending, poll.in_progress)
    holds = _holder_text(holder, standby=poll.standby)
    return f"{len(poll.pending)} of {poll.total} revision(s) pending: {named}; {holds}"


def timeout_error(
    display: str,
    pending: tuple[str, ...],
    total: int,
    timeout_s: float,
    holder: LockHolder | None,
    in_progress: tuple[ProgressRow, ...] = (),
    *,
    standby: bool = False,
) -> WaitTimeout:
    """WaitTimeout with its one-paragraph message: what is still pending, and who holds the lock."""
    return WaitTimeout(
        f"{display} did not reach this code's head: still pending after {timeout_s:g}s: "
        f"{_named(pending, in_progress)} ({len(pending)} of {total}); {_holder_text(holder, standby=standby)}.",
        pending=pending,
        holder=holder,
    )
