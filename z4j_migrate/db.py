"""Opening the one connection a run uses, and making sure extensions exist."""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from . import diagnose, interrupt
from .backoff import Backoff
from .config import ENV_DIRECT_DATABASE_URL, Database, Settings
from .errors import ConfigError, ConnectionFailed, ExtensionError, LockTimeout, PrivilegeError
from .logs import log

# libpq messages that no amount of waiting will fix.
_FATAL_MARKERS = (
    "password authentication failed",
    "does not exist",
    "no pg_hba.conf entry",
    "permission denied",
    "authentication failed",
    "no password supplied",
)


MIN_SERVER_VERSION = 140000  # CREATE OR REPLACE TRIGGER and bit_xor (the head digest, store.py)


def unsupported_server(version: int, display: str) -> str | None:
    """Why this server cannot be used, or None. Checked on connect (no statement: libpq knows it)."""
    if version >= MIN_SERVER_VERSION:
        return None
    major = str(version // 10000) if version >= 100000 else f"{version // 10000}.{version // 100 % 100}"
    return (
        f"{display} runs PostgreSQL {major}, which z4j-migrate does not support: it needs PostgreSQL 14 or "
        "newer (tested on 15 and 18). Nothing was changed."
    )


def _reason(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return " ".join(lines) if lines else exc.__class__.__name__


# How often a migration statement checks that its client is still there (PostgreSQL 14+): a client
# killed with kill -9 leaves its statement running, holding the migration lock, until this notices.
CLIENT_CHECK_INTERVAL_MS = 1000


def migration_settings(
    settings: Settings, statement_timeout_ms: int | None = None, *, local: bool = True, search_path: bool = True
) -> str:
    """One statement that gives a migration its own timeouts, whatever the role or database sets.

    `local`: for the transaction it runs in (set_config(..., true) = SET LOCAL), sent in the same
    message as the revision, so it costs no round trip and cannot leak to other clients of a pooled
    server connection. Nothing goes in the startup packet: PgBouncer refuses `options` there, or
    drops them when told to ignore them. A role's statement_timeout or idle-in-transaction timeout
    would otherwise kill long revisions; lock_timeout bounds how long DDL may queue behind an
    application's locks (and so how long the application queues behind the DDL).
    With Settings.search_path (schema-per-tenant) the revision's SQL also gets that search_path;
    `search_path=False` leaves it out (bookkeeping set-up, where CREATE EXTENSION must land in the
    role's usual schema, not in the first tenant to run).
    """
    timeout_ms = statement_timeout_ms if statement_timeout_ms is not None else settings.statement_timeout_ms
    values: tuple[tuple[str, object], ...] = (
        ("lock_timeout", int(settings.statement_lock_timeout_s * 1000)),
        ("statement_timeout", timeout_ms),
        ("idle_in_transaction_session_timeout", 0),
        ("client_connection_check_interval", CLIENT_CHECK_INTERVAL_MS),
    )
    if search_path and settings.search_path_value is not None:  # schema-per-tenant: the tenant's SQL
        values += (("search_path", settings.search_path_value),)  # plain identifiers, quoted (config.py)
    flag = "true" if local else "false"
    return "SELECT " + ", ".join(f"pg_catalog.set_config('{name}', '{value}', {flag})" for name, value in values)


def connect(settings: Settings, database: Database | None = None) -> psycopg.Connection:
    """Connect in autocommit (yoyo drives transactions as SQL text), retrying up to --wait seconds.

    Prepared statements stay off for PgBouncer's sake (transaction pooling cannot keep them).
    """
    target = database or settings.database
    params = target.params
    deadline = time.monotonic() + settings.connect_wait_s
    backoff = Backoff(0.1, 2.0)
    while True:
        try:
            conn = psycopg.connect(
                target.conninfo,
                autocommit=True,
                prepare_threshold=None,
                application_name=params.get("application_name", settings.application_name),
                connect_timeout=params.get("connect_timeout", "10"),
            )
            problem = unsupported_server(conn.info.server_version, target.display)
            if problem:
                conn.close()
                raise ConfigError(problem)
            return conn
        except psycopg.OperationalError as exc:
            reason = _reason(exc)
            if _PERMANENT_STARTUP in reason:
                raise ConnectionFailed(_startup_refused(target.display, reason)) from None
            fatal = any(marker in reason.lower() for marker in _FATAL_MARKERS)
            remaining = deadline - time.monotonic()
            if fatal or remaining <= 0:
                waited = (
                    f" after retrying for {settings.connect_wait_s:g}s" if settings.connect_wait_s and not fatal else ""
                )
                hint = (
                    " Check the user, password and database name in Z4J_DATABASE_URL / --database-url."
                    if fatal
                    else " Is the server running and reachable? Use --wait SECONDS to wait for it to start."
                )
                stop = "" if reason.endswith((".", "?", "!")) else "."
                raise ConnectionFailed(f"cannot connect to {target.display}{waited}: {reason}{stop}{hint}") from None
            pause = backoff.next_s(at_most_s=remaining)  # the last try lands on the deadline
            log.info("database not reachable yet (%s); retrying in %.1fs", reason, pause)
            interrupt.sleep(pause)


@contextmanager
def connected(settings: Settings, database: Database | None = None) -> Iterator[psycopg.Connection]:
    """connect(), closed at the end. Not psycopg's `with conn:`, whose rollback after an error fails
    (and logs a warning) when the error interrupted a query in flight: closing ends the session,
    and the server rolls back whatever was open with it."""
    conn = connect(settings, database)
    try:
        yield conn
    finally:
        conn.close()


# A pooler (PgBouncer) refusing a startup parameter: permanent, so never retried by --wait.
_PERMANENT_STARTUP = "unsupported startup parameter"


def _startup_refused(display: str, reason: str) -> str:
    return (
        f"cannot connect to {display}: {reason}. A connection pooler in front of the database refuses a "
        "parameter of the connection string (PgBouncer accepts only a few startup parameters): remove it "
        "from the URL, or list it in the pooler's ignore_startup_parameters. z4j-migrate itself sends none. "
        "Retrying cannot fix this."
    )


F = TypeVar("F", bound=Callable[..., object])


def typed_connection_loss(fn: F) -> F:
    """Turn a lost session anywhere in a command (reading the history, polling the lock, bookkeeping)
    into ConnectionFailed, so callers and the CLI see exit 7 and one clear message, never a raw
    psycopg error."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except psycopg.Error as exc:
            if not diagnose.connection_lost(exc):
                raise
            raise diagnose.lost(exc) from exc

    return wrapper  # type: ignore[return-value]


# Extensions are per database, bookkeeping is per schema: runs on different schemas of one database
# (schema-per-tenant, fleet.py) hold different migration locks, and two concurrent CREATE EXTENSION IF
# NOT EXISTS of one extension fail with a unique violation. This advisory key, one per database,
# serialises extension creation inside the bookkeeping transaction.
EXTENSIONS_LOCK_KEY = int.from_bytes(hashlib.sha256(b"z4j-migrate extensions").digest()[:8], "big", signed=True)
_EXTENSIONS_LOCK_WAIT_S = 60.0


def _extensions_lock(conn: psycopg.Connection, wanted: list[str]) -> frozenset[str]:
    """Inside the caller's transaction: poll for the extensions lock (no blocked waiter holds a
    snapshot, as lock.py explains), then the wanted extensions installed meanwhile."""
    deadline = time.monotonic() + _EXTENSIONS_LOCK_WAIT_S
    backoff = Backoff(0.02, 0.2)
    try_lock = "SELECT pg_catalog.pg_try_advisory_xact_lock(%s)"
    while not conn.execute(try_lock, (EXTENSIONS_LOCK_KEY,)).fetchone()[0]:  # type: ignore[index]
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockTimeout(
                f"gave up after {_EXTENSIONS_LOCK_WAIT_S:g}s waiting for another run to finish creating "
                f"extensions ({', '.join(wanted)}) in this database. Nothing was changed by this run."
            )
        interrupt.sleep(backoff.next_s(at_most_s=left))
    rows = conn.execute(
        "SELECT extname::text FROM pg_catalog.pg_extension WHERE extname = ANY(%s)", (wanted,)
    ).fetchall()
    return frozenset(r[0] for r in rows)


def ensure_extensions(conn: psycopg.Connection, wanted: tuple[str, ...], installed: frozenset[str]) -> list[str]:
    """CREATE EXTENSION IF NOT EXISTS for each missing one; installed ones are never touched.
    In a transaction, under EXTENSIONS_LOCK_KEY (concurrent runs on other schemas of the database)."""
    created: list[str] = []
    missing = [name for name in wanted if name not in installed]
    if not missing:
        return created
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        installed = installed | _extensions_lock(conn, missing)
    for name in missing:
        if name in installed:
            continue
        try:
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))
        except pgerrors.InsufficientPrivilege as exc:
            raise PrivilegeError(
                f"extension {name} is not installed and role {conn.info.user} may not create it: CREATE EXTENSION "
                f"{name} needs a superuser (or, for a trusted extension, CREATE privilege on the "
                f"database). Ask a DBA to run: CREATE EXTENSION IF NOT EXISTS {name}; then retry."
            ) from exc
        except (pgerrors.UndefinedFile, pgerrors.FeatureNotSupported, pgerrors.UndefinedObject) as exc:
            raise ExtensionError(
                f"extension {name} is not available on this server ({_reason(exc)}); install the "
                "server's contrib package (e.g. postgresql-contrib)."
            ) from exc
        created.append(name)
        log.info("created extension %s", name)
    return created


def server_pid(conn: psycopg.Connection) -> int:
    """The server backend's pid (through a pooler, not the one the connection announced)."""
    row = conn.execute("SELECT pg_catalog.pg_backend_pid()").fetchone()
    return int(row[0]) if row else 0


@contextmanager
def session_connection(
    conn: psycopg.Connection, settings: Settings, *, pooled: bool, needed: bool
) -> Iterator[psycopg.Connection | None]:
    """The connection non-transactional revisions run on: one server session from start to end.

    A pooler announces a backend pid of its own at connect, which is how `pooled` is known. Behind
    one, the direct URL is used when given; else session pooling is proven (our connection keeps
    its server backend while a second connection gets another) or the run is refused before
    anything runs: a transaction pooler may move every statement to another server connection.
    """
    if not needed or not pooled:
        yield conn if needed else None
        return
    if settings.direct_database is not None:
        direct = connect(settings, settings.direct_database)
        try:
            if server_pid(direct) != direct.info.backend_pid:
                raise ConfigError(
                    f"--direct-url / {ENV_DIRECT_DATABASE_URL} ({settings.direct_database.display}) also goes "
                    "through a connection pooler; give the database server's own address. Nothing was changed."
                )
            yield direct
        finally:
            direct.close()
        return
    if not _session_pooled(conn, settings):
        raise ConfigError(
            f"{settings.database.display} goes through a transaction pooler (e.g. PgBouncer "
            "pool_mode=transaction: two of our connections ran on one server backend), and a pending revision "
            "is non-transactional (-- transactional: false), which needs one server session from start to end. "
            f"Give the database server's own address with --direct-url or {ENV_DIRECT_DATABASE_URL}; "
            "transactional revisions keep using the pooler. Nothing was changed."
        )
    yield conn


def _session_pooled(conn: psycopg.Connection, settings: Settings) -> bool:
    """True when `conn` owns its server backend: it stays on one backend while another connection
    through the same pooler runs on a different one (a transaction pooler hands the idle backend on)."""
    with connected(settings) as other:
        first = server_pid(conn)
        theirs = server_pid(other)
        return first == server_pid(conn) and theirs != first
