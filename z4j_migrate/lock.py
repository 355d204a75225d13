"""The migration lock: a PostgreSQL advisory lock, polled, held no longer than the work it guards.

Why transaction-scoped (`pg_try_advisory_xact_lock`, taken inside each revision's own
transaction): behind a transaction pooler (PgBouncer `pool_mode = transaction`) every
transaction may run on a different server connection, so a session lock taken in one
transaction is stranded on an idle pooled connection and guards nothing. A lock taken
inside the revision's transaction, with the "already applied?" check beside it, gives
exactly-once on any topology and dies with its transaction.

Why a session lock for non-transactional revisions only: `CREATE INDEX CONCURRENTLY` cannot
run in a transaction, so nothing transaction-scoped can span it; such revisions run on a
connection that is one server session from start to end (a direct connection or a session
pooler), and session and transaction advisory locks on one key exclude each other.

Why polling with the `try` functions: a blocked waiter sits inside a statement with a
snapshot, and `CREATE INDEX CONCURRENTLY` in the lock holder waits for every such snapshot
to end: a deadlock the server cannot see. Each try is instant and holds no snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from . import interrupt
from .backoff import Backoff
from .errors import LockTimeout
from .logs import log

# SQLSTATEs raised by the guard at the top of a revision's transaction (class Z4: ours).
BUSY = "Z4L01"  # another session holds the migration lock: roll back, wait, try again
ALREADY_DONE = "Z4L02"  # another run applied (or rolled back) this revision first: skip it

_HOLDER_SQL = (
    "SELECT l.pid, a.usename::text, a.application_name, a.client_addr::text, "
    "EXTRACT(EPOCH FROM pg_catalog.now() - a.backend_start)::float8, a.state, l.mode "
    "FROM pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d "
    "WHERE d.datname = pg_catalog.current_database()) "
    "AND l.classid::int8 = %s AND l.objid::int8 = %s AND l.pid <> pg_catalog.pg_backend_pid() LIMIT 1"
)
_REPORT_EVERY_S = 5.0


def lock_key(schema: str) -> int:
    """One key per bookkeeping schema; advisory locks are per database already."""
    digest = hashlib.sha256(f"z4j-migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class LockHolder:
    """What the server shows of the session holding the lock. Another role's session shows only
    its pid (and role) unless the viewer has pg_read_all_stats, so every other field may be None."""

    pid: int
    role: str | None = None
    application_name: str | None = None
    client: str | None = None
    connected_seconds: float | None = None
    state: str | None = None

    def describe(self) -> str:
        if self.connected_seconds is None and self.state is None:
            role = f" of role {self.role}" if self.role else ""
            return (
                f"pid {self.pid}{role} (the server hides the rest of another role's session: grant "
                "pg_read_all_stats to see it, or look at pg_stat_activity as a superuser)"
            )
        app = self.application_name or "(no application_name)"
        seconds = self.connected_seconds or 0.0
        return (
            f"pid {self.pid}, role {self.role or 'unknown'}, application_name '{app}', client "
            f"{self.client or 'local'}, connected {seconds:.1f}s ago, state {self.state or 'unknown'}"
        )


def lock_holder(conn: psycopg.Connection, key: int) -> LockHolder | None:
    classid, objid = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    row = conn.execute(_HOLDER_SQL, (classid, objid)).fetchone()
    return LockHolder(*row[:6]) if row else None


def guard_sql(key: int, schema: str, migration_hash: str, *, applied: bool) -> str:
    """The first statement of a revision's transaction: take the lock or fail with BUSY, then fail
    with ALREADY_DONE unless the revision is still in the state this run planned from (`applied`:
    whether its history row must exist, i.e. a downgrade). Sent in the revision's own message, so it
    costs no round trip; an error aborts the transaction before any of the revision runs."""
    table = sql.Identifier(schema, "_yoyo_migration").as_string(None)
    expect = "NOT EXISTS" if applied else "EXISTS"
    return (
        "DO $z4j_guard$ BEGIN "
        f"IF NOT pg_catalog.pg_try_advisory_xact_lock({int(key)}) THEN "
        f"RAISE EXCEPTION 'z4j-migrate: the migration lock is held by another session' USING ERRCODE = '{BUSY}'; "
        "END IF; "
        f"IF {expect} (SELECT FROM {table} WHERE migration_hash = {sql.Literal(migration_hash).as_string(None)}) THEN "
        f"RAISE EXCEPTION 'z4j-migrate: another run got there first' USING ERRCODE = '{ALREADY_DONE}'; "
        "END IF; END $z4j_guard$"
    )


def _busy(conn: psycopg.Connection, key: int, *, session: bool) -> bool:
    """One instant try. For a transaction lock the try runs in its own implicit transaction, so a
    success is released at once: it only says the lock is free now."""
    fn = "pg_try_advisory_lock" if session else "pg_try_advisory_xact_lock"
    row = conn.execute(f"SELECT pg_catalog.{fn}(%s)", (key,)).fetchone()
    return not (row and row[0])


class LockWait:
    """Polls until the migration lock is free (or this run's session got it), up to one deadline
    shared by every wait of one acquisition, naming the holder now and then."""

    def __init__(self, conn: psycopg.Connection, key: int, timeout_s: float) -> None:
        self._conn = conn
        self._key = key
        self._timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        self._backoff = Backoff(0.02, 0.2)  # a try is one trivial statement; a short cap keeps waiters prompt
        self._next_report = time.monotonic()
        self._holder: LockHolder | None = None

    def until_free(self, *, session: bool = False) -> None:
        """Return once a try succeeds (`session`: the lock is then held by this session)."""
        while _busy(self._conn, self._key, session=session):
            self.pause()

    def pause(self) -> None:
        """The lock was busy: wait a little (jittered, capped) or raise LockTimeout at the deadline."""
        now = time.monotonic()
        if now >= self._next_report or now >= self._deadline:
            self._holder = lock_holder(self._conn, self._key) or self._holder
            self._next_report = now + _REPORT_EVERY_S
            if now < self._deadline:
                log.info(
                    "waiting for the migration lock, held by %s",
                    self._holder.describe() if self._holder else "a session that just released it",
                )
        if now >= self._deadline:
            who = self._holder.describe() if self._holder else "a session that has since released it"
            raise LockTimeout(
                f"gave up waiting for the migration lock after {self._timeout_s:g}s; it is held by {who}. "
                "Another z4j-migrate run is in progress: wait for it, or raise --lock-timeout. "
                "Nothing was changed by this run.",
                holder=self._holder,
            )
        interrupt.sleep(self._backoff.next_s(at_most_s=self._deadline - now))


@contextmanager
def locked_transaction(conn: psycopg.Connection, key: int, timeout_s: float) -> Iterator[None]:
    """A transaction that holds the migration lock from its first statement (bookkeeping set-up,
    operator repairs). The lock ends with the transaction, on any pooler."""
    wait = LockWait(conn, key, timeout_s)
    while True:
        wait.until_free()
        with interrupt.critical():
            if try_locked_transaction(conn, key):
                break
        wait.pause()
    try:
        yield
    except BaseException:
        with interrupt.critical():
            abort(conn)
        raise
    with interrupt.critical():
        conn.execute("COMMIT")


def try_locked_transaction(conn: psycopg.Connection, key: int) -> bool:
    """BEGIN and take the lock at once; False (no transaction left open) when another session has it."""
    conn.execute("BEGIN")
    if _busy(conn, key, session=False):
        conn.execute("ROLLBACK")
        return False
    return True


@contextmanager
def session_lock(conn: psycopg.Connection, key: int, timeout_s: float) -> Iterator[None]:
    """Hold the lock on this session for the block: only for non-transactional revisions, on a
    connection that is one server session (never through a transaction pooler)."""
    LockWait(conn, key, timeout_s).until_free(session=True)
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            with (
                interrupt.critical(),
                contextlib.suppress(psycopg.Error),
            ):  # else the server releases it with the session
                abort(conn)
                conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", (key,))


def abort(conn: psycopg.Connection) -> None:
    """End the session's open or failed transaction, if it has one (an error at COMMIT already ended it)."""
    if conn.closed or conn.broken or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    with contextlib.suppress(psycopg.Error):  # the session is going away; the server rolls back with it
        conn.execute("ROLLBACK")
