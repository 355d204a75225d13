"""Run one revision through yoyo's model, with its bookkeeping in the same transaction.

Every revision becomes a yoyo `Migration` of `MigrationStep`s (yoyo_bridge), run by
yoyo's `process_steps` on yoyo's tables. We change three things about how stock yoyo
runs a migration, each closing a gap measured in shared/reference/yoyo.md:

- everything runs on *our* single connection (no new connection per revision,
  no start-up probes that write ERROR lines to the server log);
- the bookkeeping commits with the revision, so SQL and history rows commit or
  vanish together (yoyo writes them afterwards, on another connection);
- a transactional file is sent whole (no statement splitting): BEGIN, the file,
  the bookkeeping and COMMIT travel as one query message, one round trip per
  revision (docs/performance.md); a non-transactional one is split by
  PostgreSQL's own parser, each statement a step, journaled, with no
  "compensating" rollbacks of statements paired by position.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
from psycopg import errors as pgerrors

from . import interrupt, record
from .config import Settings
from .db import migration_settings, read_only_error
from .errors import ConnectionFailed, IncompleteRevision, LockTimeout, RevisionFailed
from .lock import ALREADY_DONE, BUSY, LockWait, abort, guard_sql, session_lock
from .logs import log  # noqa: E402
from .record import ProgressRow
from .revisions import Revision, SqlFile


def _position(exc: psycopg.Error, sql_file: SqlFile, line_offset: int = 0, char_offset: int = 0) -> str:
    """file:line:column of the error; `char_offset`: where the file's text starts in the query sent."""
    pos = getattr(exc.diag, "statement_position", None)
    text = sql_file.text
    if pos and text and 0 <= int(pos) - 1 - char_offset <= len(text):
        offset = int(pos) - 1 - char_offset
        line = text.count("\n", 0, offset) + 1 + line_offset
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return f"{sql_file.path}:{line}:{column}"
    return f"{sql_file.path}:{line_offset + 1}" if line_offset else sql_file.path


def _describe(exc: psycopg.Error) -> str:
    primary = exc.diag.message_primary or str(exc).strip().splitlines()[0]
    detail = f" ({exc.diag.message_detail})" if exc.diag.message_detail else ""
    code = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
    return f"{primary}{detail}{code}"


def _lost(exc: BaseException, revision: Revision, what: str, where: str | None = None) -> ConnectionFailed:
    if where:  # a non-transactional revision: what ran stays in effect, the journal says where it stopped
        return ConnectionFailed(
            f"lost the database connection while {what} {revision.id} at {where} "
            f"({str(exc).strip().splitlines()[0]}). This revision runs without a transaction: the statements "
            "before that one are in effect, and z4j-migrate status shows where it stopped. Run z4j-migrate "
            "again to resume (it names any INVALID index to drop first)."
        )
    return ConnectionFailed(
        f"lost the database connection while {what} {revision.id} ({str(exc).strip().splitlines()[0]}). "
        "A transactional revision is all or nothing: the server either rolled it back or, if it had "
        "received the whole revision, committed it with its bookkeeping; run z4j-migrate again "
        "(z4j-migrate status shows where things stand)."
    )


def _is_connection_loss(exc: BaseException, conn: psycopg.Connection) -> bool:
    return conn.closed or conn.broken or isinstance(exc, (pgerrors.AdminShutdown, pgerrors.CrashShutdown))


def _who_holds(conn: psycopg.Connection, sql_file: SqlFile) -> str:
    """Name the tables this file touches that other sessions hold locks on."""
    from .sqlcheck import referenced_tables

    tables = referenced_tables(sql_file)
    if not tables:
        return "a lock"
    rows = conn.execute(
        "SELECT DISTINCT c.relname, l.pid, a.application_name FROM pg_catalog.pg_locks l "
        "JOIN pg_catalog.pg_class c ON c.oid = l.relation "
        "JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.granted AND l.pid <> pg_catalog.pg_backend_pid() AND c.relname = ANY(%s)",
        ([t.split(".")[-1] for t in tables],),
    ).fetchall()
    if not rows:
        return f"a lock on one of {', '.join(tables)} (since released)"
    return "; ".join(f"a lock on table {r[0]} held by pid {r[1]} ('{r[2]}')" for r in rows)


@dataclass(frozen=True)
class RunContext:
    """What every revision of one run shares: the settings, the lock key, and the connection that
    non-transactional revisions use (one server session: the main connection unless it goes through
    a transaction pooler, then the direct URL's)."""

    settings: Settings
    key: int
    session_conn: psycopg.Connection | None

    @property
    def schema(self) -> str:
        return self.settings.schema


def _timeout_hint(exc: psycopg.Error, sql_file: SqlFile, settings: Settings) -> str:
    """A statement_timeout names where the limit came from and how to change it."""
    if not isinstance(exc, pgerrors.QueryCanceled) or "statement timeout" not in str(exc):
        return ""
    if sql_file.statement_timeout_ms is not None:
        source = f"the file's '-- statement-timeout:' directive ({sql_file.statement_timeout_ms} ms)"
    else:
        source = f"--statement-timeout / Z4J_STATEMENT_TIMEOUT ({settings.statement_timeout_s:g} s)"
    return (
        f" The statement ran longer than statement_timeout, set by {source}; raise it or set it to 0 "
        "(no limit). A role's or database's own statement_timeout never applies to a migration."
    )


def _run_transactional(
    conn: psycopg.Connection,
    ctx: RunContext,
    revision: Revision,
    sql_file: SqlFile,
    direction: str,
    bookkeeping: Callable[[], str],
) -> float | None:
    """One transaction, one round trip: BEGIN, the session settings, the lock guard, the file as
    written, the bookkeeping and COMMIT, sent as one query message and run as a yoyo step.

    The server parses the whole message before running any of it (a syntax error anywhere runs
    nothing) and an error anywhere aborts the transaction: SQL and history rows commit or vanish
    together, and the lock dies with the transaction, so this holds through a transaction pooler.
    Returns the duration in ms, or None when another run applied (or undid) the revision first.
    Retried as a whole while the lock is busy, and when a table lock times out.
    """
    from .yoyo_bridge import run_one_message

    prefix = (
        f"BEGIN;\n{migration_settings(ctx.settings, sql_file.statement_timeout_ms)};\n"
        f"{guard_sql(ctx.key, ctx.schema, record.migration_hash(revision.id), applied=direction == 'rollback')};\n"
    )
    wait = LockWait(conn, ctx.key, ctx.settings.lock_timeout_s)
    attempt = 0
    while True:
        interrupt.check()
        started = time.perf_counter()
        try:
            with interrupt.cancellable(conn):
                run_one_message(conn, revision, direction, f"{prefix}{sql_file.text}\n;\n{bookkeeping()};\nCOMMIT")
            return (time.perf_counter() - started) * 1000
        except interrupt.Interrupted as stop:  # cancelled on the server: the transaction was rolled back
            with interrupt.critical():
                abort(conn)
            stop.undone = revision.id
            raise
        except psycopg.Error as exc:
            with interrupt.critical():
                abort(conn)
            if exc.sqlstate == BUSY:  # wait with cheap tries, not by re-sending the revision
                wait.pause()
                wait.until_free()
                continue
            if exc.sqlstate == ALREADY_DONE:
                return None
            if isinstance(exc, pgerrors.LockNotAvailable):
                attempt += 1
                _back_off(conn, revision, sql_file, exc, attempt, ctx.settings.lock_retries)
                continue
            raise _failed(conn, exc, revision, sql_file, direction, ctx.settings, char_offset=len(prefix)) from None


def _back_off(
    conn: psycopg.Connection, revision: Revision, sql_file: SqlFile, exc: psycopg.Error, attempt: int, retries: int
) -> None:
    """A table lock timed out (lock_timeout): the revision was rolled back; wait and let it retry."""
    if attempt > retries:
        raise LockTimeout(
            f"{sql_file.path}: gave up after {attempt} attempts, each waiting at most "
            f"lock_timeout for {_who_holds(conn, sql_file)} ({_describe(exc)}). The revision "
            "was rolled back each time and left nothing behind; retry when the application "
            "lets go, or raise --statement-lock-timeout."
        ) from None
    delay = min(0.25 * 2 ** (attempt - 1), 8.0) * random.uniform(0.8, 1.2)
    log.warning("%s: lock_timeout (%s); retry %d/%d in %.1fs", revision.id, _describe(exc), attempt, retries, delay)
    interrupt.sleep(delay)


def _failed(
    conn: psycopg.Connection,
    exc: psycopg.Error,
    revision: Revision,
    sql_file: SqlFile,
    direction: str,
    settings: Settings,
    *,
    char_offset: int,
) -> Exception:
    """The error a failed transactional revision raises (it was rolled back)."""
    if _is_connection_loss(exc, conn):
        return _lost(exc, revision, "applying" if direction == "apply" else "rolling back")
    if isinstance(exc, pgerrors.ReadOnlySqlTransaction):
        return read_only_error(settings.database.display, str(exc).strip().splitlines()[0])
    return RevisionFailed(
        f"{_position(exc, sql_file, char_offset=char_offset)}: {_describe(exc)}. Revision {revision.id} "
        f"was rolled back and left no trace; revisions before it stay applied.{_timeout_hint(exc, sql_file, settings)}",
        revision=revision.id,
        path=sql_file.path,
    )


def _run_statements(
    ctx: RunContext,
    revision: Revision,
    sql_file: SqlFile,
    direction: str,
    bookkeeping: Callable[[psycopg.Connection, float], None],
) -> float | None:
    """Autocommit, one statement at a time, each journaled before and after it runs, under the
    session lock on the run's session connection. Returns None when another run did it first."""
    conn = ctx.session_conn
    assert conn is not None, "the caller checks for a session connection before running anything"
    with session_lock(conn, ctx.key, ctx.settings.lock_timeout_s):
        applied, progress = record.revision_state(conn, ctx.schema, revision.id)
        if applied == (direction == "apply") and progress is None:
            return None
        conn.execute(migration_settings(ctx.settings, sql_file.statement_timeout_ms, local=False))
        try:
            return _statements_locked(conn, ctx, revision, sql_file, direction, bookkeeping, progress)
        finally:
            with interrupt.critical(), contextlib.suppress(psycopg.Error):
                conn.execute(_RESET_SETTINGS)


_RESET_SETTINGS = (
    "RESET lock_timeout; RESET statement_timeout; RESET idle_in_transaction_session_timeout; "
    "RESET client_connection_check_interval"
)


def _statements_locked(
    conn: psycopg.Connection,
    ctx: RunContext,
    revision: Revision,
    sql_file: SqlFile,
    direction: str,
    bookkeeping: Callable[[psycopg.Connection, float], None],
    progress: ProgressRow | None,
) -> float:
    from .sqlcheck import split_statements
    from .yoyo_bridge import RevisionMigration, _Backend, _Step

    statements = split_statements(sql_file)
    total = len(statements)
    done = progress.statements_done if progress and progress.direction == direction else 0
    resumed = progress is not None and progress.direction == direction
    if resumed:
        log.warning("%s: resuming %s at statement %d of %d", revision.id, direction, done + 1, total)
    if resumed and done < total:  # also when statement 1 was the one interrupted
        with interrupt.cancellable(conn):
            _drop_leftover_index(conn, statements[done].sql)
    cur = conn.cursor()
    # The file's statement_timeout is set for the session; our own writes must not be cut by it.
    limited = (sql_file.statement_timeout_ms or ctx.settings.statement_timeout_ms) > 0
    started = time.perf_counter()
    in_flight = [statements[done] if done < total else statements[-1]]

    def journal(done_count: int, next_line: int | None, error: str | None = None) -> None:
        with interrupt.critical(), _unlimited(conn, limited):
            record.record_progress(
                cur,
                ctx.schema,
                rev_id=revision.id,
                direction=direction,
                done=done_count,
                total=total,
                next_line=next_line,
                error=error,
            )

    def make(statement_index: int, text: str, line: int) -> Callable[[psycopg.Connection], None]:
        def run(connection: psycopg.Connection) -> None:
            interrupt.check()
            in_flight[0] = statements[statement_index - 1]
            journal(statement_index - 1, line)
            interrupt.check()  # a signal during the journal write: stop before the statement starts
            with interrupt.cancellable(conn):
                cur.execute(text)
            following = statements[statement_index].line if statement_index < total else None  # where to resume
            journal(statement_index, following)
            interrupt.check()

        return run

    steps = [
        _Step(s.index, make(s.index, s.sql, s.line), None)
        if direction == "apply"
        else _Step(s.index, None, make(s.index, s.sql, s.line))
        for s in statements[done:]
    ]
    if direction == "rollback":
        steps.reverse()  # process_steps reverses rollback steps; keep file order
    migration = RevisionMigration(revision, steps, transactional=False)
    try:
        migration.process_steps(_Backend(conn), direction)
    except interrupt.Interrupted as stop:  # the journal already says which statement is next
        stop.journaled = revision.id
        raise
    except psycopg.Error as exc:
        failed = in_flight[0]
        where = f"statement {failed.index} of {total} ({sql_file.path}:{failed.line})"
        if _is_connection_loss(exc, conn):
            raise _lost(exc, revision, "applying" if direction == "apply" else "rolling back", where) from None
        with contextlib.suppress(psycopg.Error):
            journal(failed.index - 1, failed.line, _describe(exc))
        if isinstance(exc, pgerrors.ReadOnlySqlTransaction):
            raise read_only_error(ctx.settings.database.display, str(exc).strip().splitlines()[0]) from None
        raise IncompleteRevision(
            f"{sql_file.path}:{failed.line}: statement {failed.index} of {total} failed: "
            f"{_describe(exc)}. This revision runs without a transaction: "
            f"{_in_effect(failed.index)}{_timeout_hint(exc, sql_file, ctx.settings)}{invalid_index_hint(conn)} "
            f"Fix the cause and run z4j-migrate again to resume at statement {failed.index} (an INVALID index that "
            "statement left is dropped first)."
        ) from None
    with interrupt.critical(), _unlimited(conn, True):
        bookkeeping(conn, (time.perf_counter() - started) * 1000)
    return (time.perf_counter() - started) * 1000


@contextlib.contextmanager
def _unlimited(conn: psycopg.Connection, limited: bool) -> Iterator[None]:
    """Bookkeeping between a non-transactional revision's statements: in a transaction of its own
    without the revision's statement_timeout when one is set (else in autocommit, one round trip)."""
    if not limited:
        yield
        return
    with conn.transaction():
        conn.execute("SET LOCAL statement_timeout = 0")
        yield


def _in_effect(failed_index: int) -> str:
    if failed_index <= 1:
        return "none of its statements is in effect."
    span = "statement 1 is" if failed_index == 2 else f"statements 1-{failed_index - 1} are"
    return f"{span} in effect and not undone."


def _drop_leftover_index(conn: psycopg.Connection, statement_sql: str) -> None:
    """The statement to resume is a CREATE INDEX CONCURRENTLY that was cancelled, killed or timed out:
    the journal proves it never finished, so an INVALID index of its name is its leftover, and
    running it again would fail with "already exists". Drop that one index (never any other)."""
    from .sqlcheck import concurrent_index_name

    name = concurrent_index_name(statement_sql)
    if name is None:
        return
    row = conn.execute(
        "SELECT NOT i.indisvalid FROM pg_catalog.pg_index i WHERE i.indexrelid = pg_catalog.to_regclass(%s)", (name,)
    ).fetchone()
    if row and row[0]:
        log.warning("dropping INVALID index %s left by the interrupted statement, then running it again", name)
        conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def invalid_indexes(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """Indexes left INVALID by a failed or killed CREATE INDEX CONCURRENTLY."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_index i "
        "JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT i.indisvalid ORDER BY 1, 2"
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def invalid_index_hint(conn: psycopg.Connection) -> str:
    try:
        found = invalid_indexes(conn)
    except psycopg.Error:
        return ""
    if not found:
        return ""
    names = ", ".join(f"{s}.{n}" for s, n in found)
    return (
        f" INVALID index(es) left by an interrupted CREATE INDEX CONCURRENTLY: {names}; "
        f"drop them first (DROP INDEX CONCURRENTLY IF EXISTS {found[0][0]}.{found[0][1]})."
    )


def apply_revision(
    conn: psycopg.Connection, ctx: RunContext, revision: Revision, *, journaled: bool = False
) -> float | None:
    """Apply one revision and record it; its duration in ms, or None if another run applied it first.

    `journaled`: a progress row may exist for it (a run stopped part-way), which recording clears.
    """
    journaled = journaled or not revision.up.transactional

    def bookkeeping(connection: psycopg.Connection, duration_ms: float) -> None:
        record.record_applied(
            connection.cursor(), ctx.schema, revision, duration_ms=duration_ms, clear_progress=journaled
        )

    if revision.up.transactional:

        def statement() -> str:
            return record.applied_statement(conn, ctx.schema, revision, clear_progress=journaled)

        return _run_transactional(conn, ctx, revision, revision.up, "apply", statement)
    return _run_statements(ctx, revision, revision.up, "apply", bookkeeping)


def rollback_revision(
    conn: psycopg.Connection, ctx: RunContext, revision: Revision, *, journaled: bool = False
) -> float | None:
    """Undo one revision with its down SQL and remove its history rows (None: another run did)."""
    journaled = journaled or not revision.down.transactional

    def bookkeeping(connection: psycopg.Connection, duration_ms: float) -> None:
        record.record_rolled_back(connection.cursor(), ctx.schema, rev_id=revision.id, clear_progress=journaled)

    if revision.down.transactional:

        def statement() -> str:
            return record.rolled_back_statement(conn, ctx.schema, rev_id=revision.id, clear_progress=journaled)

        return _run_transactional(conn, ctx, revision, revision.down, "rollback", statement)
    return _run_statements(ctx, revision, revision.down, "rollback", bookkeeping)
