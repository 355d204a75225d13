"""What went wrong, in one paragraph: psycopg errors turned into the operator's words.

One place for the server's diagnostic message, where in the file an error is, whether the
session is gone (not an SQL error), who holds a lock, and INVALID indexes.
"""

from __future__ import annotations

import psycopg
from psycopg import errors as pgerrors

from .errors import ConnectionFailed, ReadOnlyServer
from .revisions import SqlFile


def describe(exc: BaseException) -> str:
    """The server's message, its detail and SQLSTATE; for anything else its first line."""
    if not isinstance(exc, psycopg.Error):
        return first_line(exc)
    primary = exc.diag.message_primary or first_line(exc)
    detail = f" ({exc.diag.message_detail})" if exc.diag.message_detail else ""
    code = f" [SQLSTATE {exc.sqlstate}]" if exc.sqlstate else ""
    return f"{primary}{detail}{code}"


def primary(exc: psycopg.Error) -> str:
    """Only the server's primary message (where the SQLSTATE would be noise)."""
    return exc.diag.message_primary or first_line(exc)


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__


def position(exc: psycopg.Error, sql_file: SqlFile, *, char_offset: int = 0) -> str:
    """file:line:column of the error; `char_offset`: where the file's text starts in the query sent."""
    pos = getattr(exc.diag, "statement_position", None)
    text = sql_file.text
    if pos and text and 0 <= int(pos) - 1 - char_offset <= len(text):
        offset = int(pos) - 1 - char_offset
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return f"{sql_file.path}:{line}:{column}"
    return sql_file.path


def connection_lost(exc: BaseException, conn: psycopg.Connection | None = None) -> bool:
    """The session is gone (terminated, server crashed or restarted, network), not an SQL error."""
    if conn is not None and (conn.closed or conn.broken):
        return True
    if isinstance(exc, (pgerrors.AdminShutdown, pgerrors.CrashShutdown, pgerrors.CannotConnectNow)):
        return True
    return isinstance(exc, psycopg.OperationalError) and (exc.sqlstate is None or exc.sqlstate.startswith("08"))


def lost(exc: BaseException, what: str = "", *, where: str | None = None) -> ConnectionFailed:
    """The one message for a lost session; `what`: e.g. 'applying 0003_x'; `where`: the statement of a
    non-transactional revision that was running."""
    doing = f" while {what}" if what else ""
    if where:  # a non-transactional revision: what ran stays in effect, the journal says where it stopped
        return ConnectionFailed(
            f"lost the database connection{doing} at {where} ({first_line(exc)}). This revision runs without "
            "a transaction: the statements before that one are in effect, and z4j-migrate status shows where "
            "it stopped. Run z4j-migrate again to resume (an INVALID index the statement left is dropped first)."
        )
    return ConnectionFailed(
        f"lost the database connection{doing} ({first_line(exc)}). A transactional revision is all or "
        "nothing: the server either rolled it back or, if it had received the whole revision, committed it "
        "with its bookkeeping; run z4j-migrate again (z4j-migrate status shows where things stand)."
    )


def read_only(display: str, why: str) -> ReadOnlyServer:
    return ReadOnlyServer(
        f"{display} is read-only ({why}): revisions are pending and cannot be applied here. Point "
        "z4j-migrate at the primary: its own URL, or a multi-host URL listing every node with "
        "target_session_attrs=read-write (libpq then picks the primary). Nothing was changed."
    )


def who_holds(conn: psycopg.Connection, sql_file: SqlFile) -> str:
    """Name the tables this file touches that other sessions hold locks on."""
    from .sqlcheck import referenced_tables

    tables = referenced_tables(sql_file)
    if not tables:
        return "a lock"
    rows = conn.execute(
        "SELECT DISTINCT c.relname, l.pid, a.application_name FROM pg_catalog.pg_locks l "
        "JOIN pg_catalog.pg_class c ON c.oid = l.relation "
        "LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.granted AND l.pid <> pg_catalog.pg_backend_pid() AND c.relname = ANY(%s)",
        ([t.split(".")[-1] for t in tables],),
    ).fetchall()
    if not rows:
        return f"a lock on one of {', '.join(tables)} (since released)"
    return "; ".join(f"a lock on table {r[0]} held by pid {r[1]} ('{r[2] or 'hidden'}')" for r in rows)


def timeout_hint(exc: BaseException, sql_file: SqlFile, statement_timeout_s: float) -> str:
    """A statement_timeout names where the limit came from and how to change it."""
    if not isinstance(exc, pgerrors.QueryCanceled) or "statement timeout" not in str(exc):
        return ""
    if sql_file.statement_timeout_ms is not None:
        source = f"the file's '-- statement-timeout:' directive ({sql_file.statement_timeout_ms} ms)"
    else:
        source = f"--statement-timeout / Z4J_STATEMENT_TIMEOUT ({statement_timeout_s:g} s)"
    return (
        f" The statement ran longer than statement_timeout, set by {source}; raise it or set it to 0 "
        "(no limit). A role's or database's own statement_timeout never applies to a migration."
    )


def invalid_indexes(conn: psycopg.Connection) -> list[str]:
    """Indexes left INVALID by a failed or killed CREATE INDEX CONCURRENTLY, as schema.name."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_index i "
        "JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE NOT i.indisvalid ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def invalid_index_hint(conn: psycopg.Connection) -> str:
    try:
        found = invalid_indexes(conn)
    except psycopg.Error:
        return ""
    if not found:
        return ""
    return f" INVALID index(es) left by an interrupted CREATE INDEX CONCURRENTLY: {', '.join(found)}."
