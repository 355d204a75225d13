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
from collections.abc import Callable

import psycopg
from psycopg import errors as pgerrors

from . import record
from .errors import ConnectionFailed, IncompleteRevision, LockTimeout, RevisionFailed
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


_BEGIN = "BEGIN;\n"


def _run_transactional(
    conn: psycopg.Connection,
    revision: Revision,
    sql_file: SqlFile,
    direction: str,
    bookkeeping: Callable[[], str],
    retries: int,
) -> float:
    """One transaction, one round trip: BEGIN, the file as written, the bookkeeping, COMMIT, run as a yoyo step.

    They travel as one simple-protocol query message, so the server parses the whole message
    before running any of it (a syntax error anywhere runs nothing) and an error anywhere
    aborts the transaction: SQL and history rows commit or vanish together. psql sends every
    statement on its own round trip; this is how a revision costs no more than under psql.
    Retried as a whole when a table lock times out.
    """
    from .yoyo_bridge import run_one_message

    attempt = 0
    while True:
        started = time.perf_counter()
        try:
            run_one_message(conn, revision, direction, f"{_BEGIN}{sql_file.text}\n;\n{bookkeeping()};\nCOMMIT")
            return (time.perf_counter() - started) * 1000
        except pgerrors.LockNotAvailable as exc:
            _abort(conn)
            attempt += 1
            if attempt > retries:
                raise LockTimeout(
                    f"{sql_file.path}: gave up after {attempt} attempts, each waiting at most "
                    f"lock_timeout for {_who_holds(conn, sql_file)} ({_describe(exc)}). The revision "
                    "was rolled back each time and left nothing behind; retry when the application "
                    "lets go, or raise --statement-lock-timeout."
                ) from None
            delay = min(0.25 * 2 ** (attempt - 1), 8.0) * random.uniform(0.8, 1.2)
            log.warning(
                "%s: lock_timeout (%s); retry %d/%d in %.1fs", revision.id, _describe(exc), attempt, retries, delay
            )
            time.sleep(delay)
        except psycopg.Error as exc:
            _abort(conn)
            if _is_connection_loss(exc, conn):
                raise _lost(exc, revision, "applying" if direction == "apply" else "rolling back") from None
            raise RevisionFailed(
                f"{_position(exc, sql_file, char_offset=len(_BEGIN))}: {_describe(exc)}. Revision {revision.id} "
                "was rolled back and left no trace; revisions before it stay applied.",
                revision=revision.id,
                path=sql_file.path,
            ) from None


def _abort(conn: psycopg.Connection) -> None:
    """End the failed transaction, if the session still has one (an error at COMMIT already did)."""
    if conn.closed or conn.broken or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        return
    with contextlib.suppress(psycopg.Error):  # the session is going away; the server rolls back with it
        conn.execute("ROLLBACK")


def _run_statements(
    conn: psycopg.Connection,
    schema: str,
    revision: Revision,
    sql_file: SqlFile,
    direction: str,
    bookkeeping: Callable[[psycopg.Connection, float], None],
    progress: ProgressRow | None,
) -> float:
    """Autocommit, one statement at a time, each journaled before and after it runs."""
    from .sqlcheck import split_statements
    from .yoyo_bridge import RevisionMigration, _Backend, _Step

    statements = split_statements(sql_file)
    total = len(statements)
    done = progress.statements_done if progress and progress.direction == direction else 0
    if done:
        log.warning("%s: resuming %s at statement %d of %d", revision.id, direction, done + 1, total)
    backend = _Backend(conn)
    cur = conn.cursor()
    started = time.perf_counter()

    in_flight = [statements[done] if done < total else statements[-1]]

    def make(statement_index: int, text: str, line: int) -> Callable[[psycopg.Connection], None]:
        def run(connection: psycopg.Connection) -> None:
            in_flight[0] = statements[statement_index - 1]
            record.record_progress(
                cur,
                schema,
                rev_id=revision.id,
                direction=direction,
                done=statement_index - 1,
                total=total,
                next_line=line,
            )
            cur.execute(text)
            following = statements[statement_index].line if statement_index < total else None  # where to resume
            record.record_progress(
                cur,
                schema,
                rev_id=revision.id,
                direction=direction,
                done=statement_index,
                total=total,
                next_line=following,
            )

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
    current = [done]
    try:
        migration.process_steps(backend, direction)
    except psycopg.Error as exc:
        if _is_connection_loss(exc, conn):
            where = f"statement {in_flight[0].index} of {total} ({sql_file.path}:{in_flight[0].line})"
            raise _lost(exc, revision, "applying" if direction == "apply" else "rolling back", where) from None
        try:
            row = conn.execute(
                f"SELECT statements_done FROM {_qualified(schema, '_z4j_migrate_progress')} WHERE migration_id = %s",
                (revision.id,),
            ).fetchone()
            current[0] = row[0] if row else done
            failed = statements[current[0]] if current[0] < total else statements[-1]
            record.record_progress(
                cur,
                schema,
                rev_id=revision.id,
                direction=direction,
                done=current[0],
                total=total,
                next_line=failed.line,
                error=_describe(exc),
            )
        except psycopg.Error:
            failed = statements[done]
        hint = invalid_index_hint(conn)
        raise IncompleteRevision(
            f"{sql_file.path}:{failed.line}: statement {failed.index} of {total} failed: "
            f"{_describe(exc)}. This revision runs without a transaction: statements 1-{failed.index - 1} "
            f"are in effect and are not undone.{hint} Fix the cause and run z4j-migrate again to resume "
            f"at statement {failed.index}."
        ) from None
    with conn.transaction():
        bookkeeping(conn, (time.perf_counter() - started) * 1000)
    return (time.perf_counter() - started) * 1000


def _qualified(schema: str, table: str) -> str:
    from psycopg import sql

    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table)).as_string(None)


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
    conn: psycopg.Connection, schema: str, revision: Revision, *, retries: int, progress: ProgressRow | None = None
) -> float:
    """Apply one revision and record it; returns its duration in milliseconds."""
    journaled = progress is not None or not revision.up.transactional  # a progress row to clear

    def bookkeeping(connection: psycopg.Connection, duration_ms: float) -> None:
        record.record_applied(connection.cursor(), schema, revision, duration_ms=duration_ms, clear_progress=journaled)

    if revision.up.transactional:

        def statement() -> str:
            return record.applied_statement(conn, schema, revision, clear_progress=journaled)

        return _run_transactional(conn, revision, revision.up, "apply", statement, retries)
    return _run_statements(conn, schema, revision, revision.up, "apply", bookkeeping, progress)


def rollback_revision(
    conn: psycopg.Connection, schema: str, revision: Revision, *, retries: int, progress: ProgressRow | None = None
) -> float:
    """Undo one revision with its down SQL and remove its history rows."""
    journaled = progress is not None or not revision.down.transactional  # a progress row to clear

    def bookkeeping(connection: psycopg.Connection, duration_ms: float) -> None:
        record.record_rolled_back(connection.cursor(), schema, rev_id=revision.id, clear_progress=journaled)

    if revision.down.transactional:

        def statement() -> str:
            return record.rolled_back_statement(conn, schema, rev_id=revision.id, clear_progress=journaled)

        return _run_transactional(conn, revision, revision.down, "rollback", statement, retries)
    return _run_statements(conn, schema, revision, revision.down, "rollback", bookkeeping, progress)
