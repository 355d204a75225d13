"""The only module that holds bookkeeping SQL.

yoyo's tables (`_yoyo_migration`, `_yoyo_log`, `_yoyo_version`) keep their
exact layout so the stock `yoyo` CLI can still read them. Our own side table
`_z4j_migrate_revision` adds what yoyo lacks: content checksums, the down SQL
(so a database ahead of the code can still be stepped back) and durations.
`_z4j_migrate_progress` journals non-transactional revisions statement by
statement. Every name is schema-qualified and every function is called as
pg_catalog.*, so objects planted on the search_path are never used.

Functions take the caller's cursor or connection and never open transactions
of their own: the runner decides the transaction, so bookkeeping commits in
the same transaction as the revision's SQL.
"""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from .errors import PrivilegeError
from .revisions import Revision

TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version", "_z4j_migrate_revision", "_z4j_migrate_progress")


def migration_hash(rev_id: str) -> str:
    """yoyo's identity: sha256 of the migration id (not of the content)."""
    return hashlib.sha256(rev_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AppliedRow:
    id: str
    up_checksum: str | None  # None: applied by stock yoyo, before z4j-migrate kept checksums
    down_checksum: str | None
    applied_at: datetime | None
    duration_ms: float | None
    down_transactional: bool | None

    @property
    def version(self) -> int:
        return int(self.id.split("_", 1)[0]) if self.id.split("_", 1)[0].isdigit() else -1


@dataclass(frozen=True)
class ProgressRow:
    """A non-transactional revision that started and has not finished."""

    id: str
    direction: str  # "apply" or "rollback"
    statements_done: int
    statements_total: int
    next_line: int | None
    last_error: str | None
    started_at: datetime | None


@dataclass(frozen=True)
class DbState:
    bookkeeping: bool  # our tables exist
    legacy_yoyo: bool  # only yoyo's tables exist (managed by stock yoyo before)
    applied: dict[str, AppliedRow]
    in_progress: dict[str, ProgressRow]
    extensions: frozenset[str]


def _composed(schema: str) -> dict[str, sql.Composed | sql.SQL]:
    s = sql.Identifier(schema)

    def t(name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(s, sql.Identifier(name))

    return {
        "probe": sql.SQL(
            "SELECT pg_catalog.to_regclass(%s) IS NOT NULL, pg_catalog.to_regclass(%s) IS NOT NULL, "
            "ARRAY(SELECT e.extname::text FROM pg_catalog.pg_extension e "
            "WHERE %s::text[] IS NULL OR e.extname = ANY(%s::text[]))"
        ),
        # Three plain scans, joined in Python: planning a join on a fresh backend (cold caches)
        # cost more than the no-op check's whole client side (measured: 0.9 vs 0.5 ms server time).
        "state": sql.SQL(
            "SELECT 'm', m.migration_hash::text, m.migration_id::text, NULL::text, NULL::text, "
            "m.applied_at_utc AT TIME ZONE 'UTC', NULL::float8, NULL::bool, NULL::int, NULL::int, NULL::int, "
            "NULL::text FROM {m} m "
            "UNION ALL "
            "SELECT 'r', r.migration_hash, r.migration_id, r.up_checksum, r.down_checksum, r.applied_at, "
            "r.duration_ms, r.down_transactional, NULL, NULL, NULL, NULL FROM {r} r "
            "UNION ALL "
            "SELECT 'p', p.migration_id, p.direction, NULL, NULL, p.started_at, NULL, NULL, "
            "p.statements_done, p.statements_total, p.next_line, p.last_error FROM {p} p"
        ).format(m=t("_yoyo_migration"), r=t("_z4j_migrate_revision"), p=t("_z4j_migrate_progress")),
        "legacy_state": sql.SQL(
            "SELECT 'applied', m.migration_id, NULL, NULL, m.applied_at_utc AT TIME ZONE 'UTC', "
            "NULL, NULL, NULL::int, NULL::int, NULL::int, NULL::text FROM {m} m"
        ).format(m=t("_yoyo_migration")),
        "create": sql.SQL(
            "CREATE TABLE IF NOT EXISTS {m} (migration_hash VARCHAR(64), migration_id VARCHAR(255), "
            "applied_at_utc TIMESTAMP, PRIMARY KEY (migration_hash));\n"
            "CREATE TABLE IF NOT EXISTS {log} (id VARCHAR(36), migration_hash VARCHAR(64), "
            "migration_id VARCHAR(255), operation VARCHAR(10), username VARCHAR(255), "
            "hostname VARCHAR(255), comment VARCHAR(255), created_at_utc TIMESTAMP, PRIMARY KEY (id));\n"
            "CREATE TABLE IF NOT EXISTS {v} (version INT NOT NULL PRIMARY KEY, installed_at_utc TIMESTAMP);\n"
            "INSERT INTO {v} (version, installed_at_utc) VALUES (2, pg_catalog.timezone('UTC', pg_catalog.now())) "
            "ON CONFLICT (version) DO NOTHING;\n"
            "CREATE TABLE IF NOT EXISTS {r} (migration_hash VARCHAR(64) PRIMARY KEY, "
            "migration_id VARCHAR(255) NOT NULL, version BIGINT NOT NULL, message TEXT, "
            "checksum_algorithm TEXT NOT NULL DEFAULT 'sha256', up_checksum TEXT NOT NULL, "
            "down_checksum TEXT NOT NULL, down_sql TEXT NOT NULL, down_transactional BOOLEAN NOT NULL, "
            "applied_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(), duration_ms DOUBLE PRECISION, "
            "applied_by TEXT);\n"
            "CREATE TABLE IF NOT EXISTS {p} (migration_id VARCHAR(255) PRIMARY KEY, direction TEXT NOT NULL, "
            "statements_done INT NOT NULL, statements_total INT NOT NULL, next_line INT, "
            "started_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(), "
            "updated_at TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.now(), last_error TEXT)"
        ).format(
            m=t("_yoyo_migration"),
            log=t("_yoyo_log"),
            v=t("_yoyo_version"),
            r=t("_z4j_migrate_revision"),
            p=t("_z4j_migrate_progress"),
        ),
        "applied": sql.SQL(
            "WITH m AS (INSERT INTO {m} (migration_hash, migration_id, applied_at_utc) "
            "VALUES (%(hash)s, %(id)s, pg_catalog.timezone('UTC', pg_catalog.now())) "
            "ON CONFLICT (migration_hash) DO UPDATE SET applied_at_utc = EXCLUDED.applied_at_utc), "
            "l AS (INSERT INTO {log} (id, migration_hash, migration_id, operation, username, hostname, "
            "created_at_utc) VALUES (%(log_id)s, %(hash)s, %(id)s, 'apply', %(user)s, %(host)s, "
            "pg_catalog.timezone('UTC', pg_catalog.now()))), "
            "p AS (DELETE FROM {p} WHERE migration_id = %(id)s) "
            "INSERT INTO {r} (migration_hash, migration_id, version, message, up_checksum, down_checksum, "
            "down_sql, down_transactional, duration_ms, applied_by) VALUES (%(hash)s, %(id)s, %(version)s, "
            "%(message)s, %(up_checksum)s, %(down_checksum)s, %(down_sql)s, %(down_tx)s, %(duration)s, "
            "%(by)s) ON CONFLICT (migration_hash) DO UPDATE SET up_checksum = EXCLUDED.up_checksum, "
            "down_checksum = EXCLUDED.down_checksum, down_sql = EXCLUDED.down_sql, "
            "down_transactional = EXCLUDED.down_transactional, applied_at = EXCLUDED.applied_at, "
            "duration_ms = EXCLUDED.duration_ms, applied_by = EXCLUDED.applied_by"
        ).format(
            m=t("_yoyo_migration"), log=t("_yoyo_log"), p=t("_z4j_migrate_progress"), r=t("_z4j_migrate_revision")
        ),
        "rolled_back": sql.SQL(
            "WITH m AS (DELETE FROM {m} WHERE migration_hash = %(hash)s), "
            "l AS (INSERT INTO {log} (id, migration_hash, migration_id, operation, username, hostname, "
            "created_at_utc) VALUES (%(log_id)s, %(hash)s, %(id)s, 'rollback', %(user)s, %(host)s, "
            "pg_catalog.timezone('UTC', pg_catalog.now()))), "
            "p AS (DELETE FROM {p} WHERE migration_id = %(id)s) "
            "DELETE FROM {r} WHERE migration_hash = %(hash)s"
        ).format(
            m=t("_yoyo_migration"), log=t("_yoyo_log"), p=t("_z4j_migrate_progress"), r=t("_z4j_migrate_revision")
        ),
        "progress": sql.SQL(
            "INSERT INTO {p} (migration_id, direction, statements_done, statements_total, next_line, last_error) "
            "VALUES (%(id)s, %(direction)s, %(done)s, %(total)s, %(line)s, %(error)s) "
            "ON CONFLICT (migration_id) DO UPDATE SET direction = EXCLUDED.direction, "
            "statements_done = EXCLUDED.statements_done, statements_total = EXCLUDED.statements_total, "
            "next_line = EXCLUDED.next_line, last_error = EXCLUDED.last_error, "
            "updated_at = pg_catalog.now()"
        ).format(p=t("_z4j_migrate_progress")),
        "stored_down": sql.SQL(
            "SELECT migration_id, down_sql, down_transactional FROM {r} WHERE migration_id = ANY(%s)"
        ).format(r=t("_z4j_migrate_revision")),
    }


@lru_cache(maxsize=8)
def _q(schema: str) -> dict[str, str]:
    """The queries for `schema`, rendered to text once (psycopg re-renders a Composed on every execute).

    `applied_only` and `rolled_back_only` leave out the progress-journal DELETE: planning it cost
    about 0.1 ms per revision, and a transactional revision has no journal row to delete unless a
    run stopped part-way (the caller knows, from the state it read under the lock).
    """
    q = {name: query.as_string(None) for name, query in _composed(schema).items()}
    clear = sql.SQL(", p AS (DELETE FROM {}.{} WHERE migration_id = %(id)s)").format(
        sql.Identifier(schema), sql.Identifier("_z4j_migrate_progress")
    )
    clear_text = clear.as_string(None)
    for name in ("applied", "rolled_back"):
        if clear_text in q[name]:
            q[f"{name}_only"] = q[name].replace(clear_text, "")
    # The same without times and durations, which only status shows: at N=1000 converting them was
    # half of the no-op's read (3.4 -> 1.6 ms).
    lean = sql.SQL(
        "SELECT 'm', m.migration_hash::text, m.migration_id::text, NULL::text, NULL::text, NULL::timestamptz, "
        "NULL::float8, NULL::bool, NULL::int, NULL::int, NULL::int, NULL::text FROM {m} m "
        "UNION ALL "
        "SELECT 'r', r.migration_hash, NULL, r.up_checksum, r.down_checksum, NULL, NULL, NULL, NULL, NULL, NULL, "
        "NULL FROM {r} r "
        "UNION ALL "
        "SELECT 'p', p.migration_id, p.direction, NULL, NULL, p.started_at, NULL, NULL, "
        "p.statements_done, p.statements_total, p.next_line, p.last_error FROM {p} p"
    ).format(
        m=sql.Identifier(schema, "_yoyo_migration"),
        r=sql.Identifier(schema, "_z4j_migrate_revision"),
        p=sql.Identifier(schema, "_z4j_migrate_progress"),
    )
    q["state_lean"] = lean.as_string(None)
    # Sent in the revision's own query message, where the client cannot time the SQL: now() is the
    # transaction's start (the BEGIN just before it), clock_timestamp() the moment of bookkeeping.
    for name in ("applied", "applied_only"):
        if name in q:
            q[f"{name}_timed"] = q[name].replace("%(duration)s", _SERVER_DURATION)
    return q


_SERVER_DURATION = "(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - pg_catalog.now()) * 1000)"


@lru_cache(maxsize=32)
def _regclass(schema: str, table: str) -> str:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table)).as_string(None)


def read_state(
    conn: psycopg.Connection, schema: str, extensions: tuple[str, ...] | None, *, details: bool = True
) -> DbState:
    """Two statements: probe the tables and extensions, then read the history.

    Probing first means no statement can fail on a missing table, so a run never
    writes an ERROR line to the server log (stock yoyo's probes write two).
    `details=False`: applied rows carry no applied_at, duration or down_transactional
    (upgrade's checks need ids and checksums only). `extensions=None`: report every
    installed extension.
    """
    q = _q(schema)
    wanted = None if extensions is None else list(extensions)
    cur = conn.cursor()
    try:
        yoyo_exists, ours_exists, installed = cur.execute(
            q["probe"],
            (_regclass(schema, "_yoyo_migration"), _regclass(schema, "_z4j_migrate_revision"), wanted, wanted),
        ).fetchone()  # type: ignore[misc]
        if yoyo_exists and ours_exists:
            rows = cur.execute(q["state"] if details else q["state_lean"]).fetchall()
        elif yoyo_exists:
            rows = cur.execute(q["legacy_state"]).fetchall()
        else:
            rows = []
    except pgerrors.InsufficientPrivilege as exc:
        role = conn.info.user
        raise PrivilegeError(
            f"role {role} may not read the bookkeeping tables in schema {schema} ({exc.diag.message_primary}): "
            f"z4j-migrate needs SELECT, INSERT, UPDATE and DELETE on {schema}.{', '.join(TABLES)}. Connect as "
            f"the role that owns them, or have it run: GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN "
            f"SCHEMA {schema} TO {role}. Nothing was changed."
        ) from None
    applied: dict[str, AppliedRow] = {}
    progress: dict[str, ProgressRow] = {}
    if yoyo_exists and ours_exists:
        ours = {row[1]: row for row in rows if row[0] == "r"}  # by migration_hash, its primary key
        for row in rows:
            kind = row[0]
            if kind == "m":  # _yoyo_migration LEFT JOIN _z4j_migrate_revision USING (migration_hash)
                rev_id, r = row[2], ours.get(row[1])
                if r is None:
                    applied[rev_id] = AppliedRow(rev_id, None, None, row[5], None, None)
                else:
                    at = r[5] if r[5] is not None else row[5]
                    applied[rev_id] = AppliedRow(rev_id, r[3], r[4], at, r[6], r[7])
            elif kind == "p":
                progress[row[1]] = ProgressRow(row[1], row[2], row[8], row[9], row[10], row[11], row[5])
    elif yoyo_exists:
        for row in rows:
            applied[row[1]] = AppliedRow(row[1], row[2], row[3], row[4], row[5], row[6])
    return DbState(bool(ours_exists), bool(yoyo_exists and not ours_exists), applied, progress, frozenset(installed))


def ensure_tables(conn: psycopg.Connection, schema: str) -> None:
    """Create the bookkeeping tables if missing (called under the migration lock)."""
    try:
        with conn.transaction():
            conn.execute(_q(schema)["create"])
    except pgerrors.InsufficientPrivilege as exc:
        role = conn.info.user
        raise PrivilegeError(
            f"role {role} may not create the bookkeeping tables in schema {schema} "
            f"({exc.diag.message_primary}): the first run needs CREATE on schema {schema}. Run it as the "
            f"schema owner, or have the owner run: GRANT CREATE ON SCHEMA {schema} TO {role}. Nothing was changed."
        ) from None


@lru_cache(maxsize=1)
def _who() -> tuple[str, str]:
    """Who applies: asked once per process (getpwuid on every revision showed up in profiles)."""
    import getpass

    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = "unknown"
    return user, socket.gethostname()


def _log_id() -> str:
    """A random (version 4) UUID string for `_yoyo_log.id`, without importing uuid (start-up cost)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _applied_params(revision: Revision) -> dict[str, object]:
    """The bookkeeping values of one applied revision, shared by both ways of recording it."""
    user, host = _who()
    return {
        "hash": migration_hash(revision.id),
        "id": revision.id,
        "version": revision.version,
        "message": revision.message,
        "log_id": _log_id(),
        "user": user,
        "host": host,
        "up_checksum": revision.up.checksum,
        "down_checksum": revision.down.checksum,
        "down_sql": revision.down.text,
        "down_tx": revision.down.transactional,
        "by": f"{user}@{host}",
    }


def record_applied(
    cur: psycopg.Cursor, schema: str, revision: Revision, *, duration_ms: float, clear_progress: bool = True
) -> None:
    """`clear_progress=False`: the caller knows there is no progress-journal row for this revision."""
    q = _q(schema)
    cur.execute(
        q["applied"] if clear_progress else q.get("applied_only", q["applied"]),
        {**_applied_params(revision), "duration": duration_ms},
    )


def applied_statement(conn: psycopg.Connection, schema: str, revision: Revision, *, clear_progress: bool = True) -> str:
    """record_applied as one SQL text with its values bound client-side (psycopg's quoting), to travel
    in the same query message as the revision's SQL; the server measures the duration."""
    q = _q(schema)
    query = q["applied_timed"] if clear_progress else q.get("applied_only_timed", q["applied_timed"])
    return psycopg.ClientCursor(conn).mogrify(query, _applied_params(revision))


def rolled_back_statement(conn: psycopg.Connection, schema: str, *, rev_id: str, clear_progress: bool = True) -> str:
    """record_rolled_back as one SQL text with its values bound client-side (see applied_statement)."""
    user, host = _who()
    q = _q(schema)
    query = q["rolled_back"] if clear_progress else q.get("rolled_back_only", q["rolled_back"])
    return psycopg.ClientCursor(conn).mogrify(
        query, {"hash": migration_hash(rev_id), "id": rev_id, "log_id": _log_id(), "user": user, "host": host}
    )


def record_rolled_back(cur: psycopg.Cursor, schema: str, *, rev_id: str, clear_progress: bool = True) -> None:
    user, host = _who()
    q = _q(schema)
    cur.execute(
        q["rolled_back"] if clear_progress else q.get("rolled_back_only", q["rolled_back"]),
        {"hash": migration_hash(rev_id), "id": rev_id, "log_id": _log_id(), "user": user, "host": host},
    )


def record_progress(
    cur: psycopg.Cursor,
    schema: str,
    *,
    rev_id: str,
    direction: str,
    done: int,
    total: int,
    next_line: int | None,
    error: str | None = None,
) -> None:
    cur.execute(
        _q(schema)["progress"],
        {"id": rev_id, "direction": direction, "done": done, "total": total, "line": next_line, "error": error},
    )


def stored_downs(conn: psycopg.Connection, schema: str, ids: list[str]) -> dict[str, tuple[str, bool]]:
    """The down SQL kept in the database for revisions the code does not have."""
    rows = conn.execute(_q(schema)["stored_down"], (ids,)).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def _log(cur: psycopg.Cursor, schema: str, rev_id: str, operation: str, comment: str) -> None:
    user, host = _who()
    cur.execute(
        sql.SQL(
            "INSERT INTO {} (id, migration_hash, migration_id, operation, username, hostname, comment, created_at_utc) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, pg_catalog.timezone('UTC', pg_catalog.now()))"
        ).format(_table(schema, "_yoyo_log")),
        (_log_id(), migration_hash(rev_id), rev_id, operation, user, host, comment[:255]),
    )


def accept_checksums(
    cur: psycopg.Cursor,
    schema: str,
    *,
    rev_id: str,
    up_checksum: str,
    down_checksum: str,
    down_sql: str,
    down_transactional: bool,
) -> int:
    """Record the current files of an applied revision as the accepted ones (audited in _yoyo_log)."""
    cur.execute(
        sql.SQL(
            "UPDATE {} SET up_checksum = %s, down_checksum = %s, down_sql = %s, down_transactional = %s "
            "WHERE migration_hash = %s"
        ).format(_table(schema, "_z4j_migrate_revision")),
        (up_checksum, down_checksum, down_sql, down_transactional, migration_hash(rev_id)),
    )
    changed = cur.rowcount
    _log(cur, schema, rev_id, "mark", "z4j-migrate accept: edited files accepted")
    return changed


def clear_progress(cur: psycopg.Cursor, schema: str, *, rev_id: str, comment: str) -> int:
    """Forget the journal of a stopped non-transactional revision (the operator resolved it)."""
    cur.execute(
        sql.SQL("DELETE FROM {} WHERE migration_id = %s").format(_table(schema, "_z4j_migrate_progress")), (rev_id,)
    )
    removed = cur.rowcount
    _log(cur, schema, rev_id, "unmark", comment)
    return removed
