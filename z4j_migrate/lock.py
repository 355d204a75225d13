"""The migration lock: a session-level PostgreSQL advisory lock, polled.

Why not yoyo's `yoyo_lock` row: a row outlives a killed process and needs a
manual `break-lock`; an advisory lock dies with its session. Why polling with
pg_try_advisory_lock instead of a blocking pg_advisory_lock: a blocked waiter
sits inside a statement with a snapshot, and `CREATE INDEX CONCURRENTLY` in
the lock holder waits for every such snapshot to end: a deadlock the server
cannot see until one side gives up. Each try is instant, so waiters never hold
a snapshot for long.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from .errors import LockTimeout
from .logs import log  # noqa: E402

_HOLDER_SQL = (
    "SELECT a.pid, a.application_name, COALESCE(a.client_addr::text, 'local'), "
    "EXTRACT(EPOCH FROM pg_catalog.now() - a.backend_start)::float8, a.state "
    "FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d "
    "WHERE d.datname = pg_catalog.current_database()) "
    "AND l.classid::int8 = %s AND l.objid::int8 = %s AND l.pid <> pg_catalog.pg_backend_pid()"
)


def lock_key(schema: str) -> int:
    """One key per bookkeeping schema; advisory locks are per database already."""
    digest = hashlib.sha256(f"z4j-migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class LockHolder:
    pid: int
    application_name: str
    client: str
    connected_seconds: float
    state: str | None

    def describe(self) -> str:
        app = self.application_name or "(no application_name)"
        return (
            f"pid {self.pid}, application_name '{app}', client {self.client}, "
            f"connected {self.connected_seconds:.1f}s ago, state {self.state or 'unknown'}"
        )


def lock_holder(conn: psycopg.Connection, key: int) -> LockHolder | None:
    classid, objid = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    row = conn.execute(_HOLDER_SQL, (classid, objid)).fetchone()
    return LockHolder(*row) if row else None


@contextmanager
def advisory_lock(conn: psycopg.Connection, key: int, timeout: float) -> Iterator[None]:
    """Hold the migration lock on `conn` (autocommit) for the block, or raise LockTimeout."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    next_report = time.monotonic()
    holder: LockHolder | None = None
    while not conn.execute("SELECT pg_catalog.pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:  # type: ignore[index]
        now = time.monotonic()
        if now >= next_report or now >= deadline:
            holder = lock_holder(conn, key) or holder
            next_report = now + 5.0
            if now < deadline:
                log.info(
                    "waiting for the migration lock, held by %s",
                    holder.describe() if holder else "a session that just released it",
                )
        if now >= deadline:
            who = holder.describe() if holder else "a session that has since released it"
            raise LockTimeout(
                f"gave up waiting for the migration lock after {timeout:g}s; it is held by {who}. "
                "Another z4j-migrate run is in progress: wait for it, or raise --lock-timeout. "
                "Nothing was changed by this run."
            )
        time.sleep(min(delay, max(0.0, deadline - now)) * random.uniform(0.8, 1.2))
        delay = min(delay * 2, 0.2)  # a try is one trivial statement; a short cap keeps many waiters prompt
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:
            # If this fails the session is going away, and the server releases the lock with it.
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", (key,))
