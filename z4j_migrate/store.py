"""The bookkeeping store: the only module that holds bookkeeping SQL.

yoyo's tables (`_yoyo_migration`, `_yoyo_log`, `_yoyo_version`) keep their exact layout so
the stock `yoyo` CLI can still read them. Our side table `_z4j_migrate_revision` adds what
yoyo lacks: content checksums, the down SQL (so a database ahead of the code can still be
stepped back) and durations. `_z4j_migrate_progress` journals non-transactional revisions
statement by statement; `_z4j_migrate_head` holds the head digest (state.head_digest), kept
by triggers (head_track.sql). Every name is schema-qualified and every function is called as
pg_catalog.*, so objects planted on the search_path are never used.

A Store never opens a transaction of its own (except a savepoint where it must survive a
refusal): the runner decides, so bookkeeping commits in the same transaction as the SQL.
Queries are composed from psycopg.sql pieces and rendered once per schema: psycopg would
render a Composed again on every execute, and the no-op start-up runs on every boot.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from pathlib import Path

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.rows import class_row

from .errors import PrivilegeError
from .revisions import Revision
from .state import (
    HEAD_SOURCES,
    HEAD_TABLE,
    TABLES,
    AppliedRow,
    DbState,
    Probe,
    ProgressRow,
    StoredDown,
    migration_hash,
)

# The head triggers skip writes made by a session where this is 'on'. z4j-migrate does not set it
# (its runs let the triggers keep the digest, in the same transaction as every bookkeeping write,
# so no interruption can leave it stale); the clause stays so the trigger text of existing
# databases is unchanged (docs/reliability.md, "The head digest").
WRITER_SETTING = "z4j_migrate.writer"
HEAD_FUNCTION = "_z4j_migrate_head_track"
# Sent in the revision's own query message, where the client cannot time the SQL: now() is the
# transaction's start (the BEGIN just before it), clock_timestamp() the moment of bookkeeping.
_SERVER_DURATION_MS = sql.SQL("(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - pg_catalog.now()) * 1000)")


def qualified(schema: str, name: str) -> sql.Identifier:
    """schema.name, each part quoted."""
    return sql.Identifier(schema, name)


@dataclass
class _HistoryRow:
    """One row of the history read: `kind` m (_yoyo_migration), r (_z4j_migrate_revision) or p
    (_z4j_migrate_progress); `key` is the migration hash for m and r, the id for p."""

    kind: str
    key: str
    migration_id: str | None
    up_checksum: str | None
    down_checksum: str | None
    at: datetime | None
    duration_ms: float | None
    down_transactional: bool | None
    direction: str | None
    statements_done: int | None
    statements_total: int | None
    next_line: int | None
    last_error: str | None


_HISTORY_COLUMNS = (
    "kind, key, migration_id, up_checksum, down_checksum, at, duration_ms, down_transactional, direction, "
    "statements_done, statements_total, next_line, last_error"
)


def _history(schema: str, *, details: bool) -> sql.Composed:
    """Three plain scans in one statement, joined in Python: planning a join on a fresh backend
    cost more than the whole client side of the check. Without `details` the times and durations
    (which only status shows) are left out: converting them was half of the read at N=1000."""
    at_m = sql.SQL("m.applied_at_utc AT TIME ZONE 'UTC'" if details else "NULL::timestamptz")
    r_cols = sql.SQL(
        "r.migration_id, r.up_checksum, r.down_checksum, r.applied_at, r.duration_ms, r.down_transactional"
        if details
        else "NULL, r.up_checksum, r.down_checksum, NULL, NULL, NULL"
    )
    return sql.SQL(
        "SELECT 'm' AS kind, m.migration_hash::text AS key, m.migration_id::text AS migration_id, "
        "NULL::text AS up_checksum, NULL::text AS down_checksum, {at_m} AS at, NULL::float8 AS duration_ms, "
        "NULL::bool AS down_transactional, NULL::text AS direction, NULL::int AS statements_done, "
        "NULL::int AS statements_total, NULL::int AS next_line, NULL::text AS last_error FROM {m} m "
        "UNION ALL SELECT 'r', r.migration_hash, {r_cols}, NULL, NULL, NULL, NULL, NULL FROM {r} r "
        "UNION ALL SELECT 'p', p.migration_id, NULL, NULL, NULL, p.started_at, NULL, NULL, p.direction, "
        "p.statements_done, p.statements_total, p.next_line, p.last_error FROM {p} p"
    ).format(
        at_m=at_m,
        r_cols=r_cols,
        m=qualified(schema, "_yoyo_migration"),
        r=qualified(schema, "_z4j_migrate_revision"),
        p=qualified(schema, "_z4j_migrate_progress"),
    )


def _clear_journal(schema: str) -> sql.Composed:
    """The CTE that deletes a revision's journal row, for when a run may have stopped part-way."""
    return sql.SQL(", p AS (DELETE FROM {} WHERE migration_id = %(id)s)").format(
        qualified(schema, "_z4j_migrate_progress")
    )


def _log_cte(schema: str, operation: str) -> sql.Composed:
    """yoyo's audit row for an apply or a rollback, as a CTE of the statement that records it."""
    return sql.SQL(
        "l AS (INSERT INTO {log} (id, migration_hash, migration_id, operation, username, hostname, "
        "created_at_utc) VALUES (%(log_id)s, %(hash)s, %(id)s, {operation}, %(user)s, %(host)s, "
        "pg_catalog.timezone('UTC', pg_catalog.now())))"
    ).format(log=qualified(schema, "_yoyo_log"), operation=sql.Literal(operation))


def _recorded(schema: str, *, clear_progress: bool, server_timed: bool, keep_yoyo_row: bool = False) -> sql.Composed:
    """The rows of one applied revision, in one statement: yoyo's history and log, ours, and (if
    the caller knows there may be one) the journal row deleted. `server_timed`: the server
    measures the duration (the statement travels in the revision's own message). `keep_yoyo_row`
    (adopt): a _yoyo_migration row stock yoyo wrote stays exactly as it is, its time included."""
    clear = _clear_journal(schema) if clear_progress else sql.SQL("")
    conflict = "DO NOTHING" if keep_yoyo_row else "DO UPDATE SET applied_at_utc = EXCLUDED.applied_at_utc"
    return sql.SQL(
        "WITH m AS (INSERT INTO {m} (migration_hash, migration_id, applied_at_utc) "
        "VALUES (%(hash)s, %(id)s, pg_catalog.timezone('UTC', pg_catalog.now())) "
        "ON CONFLICT (migration_hash) {conflict}), "
        "{log}{clear} "
        "INSERT INTO {r} (migration_hash, migration_id, version, message, up_checksum, down_checksum, "
        "down_sql, down_transactional, duration_ms, applied_by) VALUES (%(hash)s, %(id)s, %(version)s, "
        "%(message)s, %(up_checksum)s, %(down_checksum)s, %(down_sql)s, %(down_tx)s, {duration}, "
        "%(by)s) ON CONFLICT (migration_hash) DO UPDATE SET up_checksum = EXCLUDED.up_checksum, "
        "down_checksum = EXCLUDED.down_checksum, down_sql = EXCLUDED.down_sql, "
        "down_transactional = EXCLUDED.down_transactional, applied_at = EXCLUDED.applied_at, "
        "duration_ms = EXCLUDED.duration_ms, applied_by = EXCLUDED.applied_by"
    ).format(
        m=qualified(schema, "_yoyo_migration"),
        log=_log_cte(schema, "apply"),
        r=qualified(schema, "_z4j_migrate_revision"),
        clear=clear,
        duration=_SERVER_DURATION_MS if server_timed else sql.Placeholder("duration"),
        conflict=sql.SQL(conflict),
    )


def _removed(schema: str, *, clear_progress: bool) -> sql.Composed:
    """The rows of one rolled-back revision removed, and the rollback logged, in one statement."""
    clear = _clear_journal(schema) if clear_progress else sql.SQL("")
    return sql.SQL(
        "WITH m AS (DELETE FROM {m} WHERE migration_hash = %(hash)s), {log}{clear} "
        "DELETE FROM {r} WHERE migration_hash = %(hash)s"
    ).format(
        m=qualified(schema, "_yoyo_migration"),
        log=_log_cte(schema, "rollback"),
        r=qualified(schema, "_z4j_migrate_revision"),
        clear=clear,
    )


def _create_tables(schema: str) -> sql.Composed:
    t = {name: qualified(schema, name) for name in TABLES}
    return sql.SQL(
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
        m=t["_yoyo_migration"],
        log=t["_yoyo_log"],
        v=t["_yoyo_version"],
        r=t["_z4j_migrate_revision"],
        p=t["_z4j_migrate_progress"],
    )


def _create_head(schema: str) -> sql.Composed:
    """The head digest's table, its trigger function (head_track.sql) and one row trigger per source
    table. A row trigger XORs the sha256 of every row it adds or removes into one 256-bit value
    (state.row_text says which text); TRUNCATE invalidates it (NULL) and the next run rebuilds it."""
    function = qualified(schema, HEAD_FUNCTION)
    body = Path(__file__).with_name("head_track.sql").read_text(encoding="utf-8")
    parts = [sql.SQL(body).format(head=qualified(schema, HEAD_TABLE), function=function)]
    for tag, table in HEAD_SOURCES:
        parts.append(
            sql.SQL(
                "\nCREATE OR REPLACE TRIGGER _z4j_migrate_head AFTER INSERT OR UPDATE OR DELETE ON {on} "
                "FOR EACH ROW WHEN (pg_catalog.current_setting({writer}, true) IS DISTINCT FROM 'on') "
                "EXECUTE FUNCTION {fn}({tag});\n"
                "CREATE OR REPLACE TRIGGER _z4j_migrate_head_truncate AFTER TRUNCATE ON {on} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {fn}({tag});"
            ).format(on=qualified(schema, table), fn=function, tag=sql.Literal(tag), writer=sql.Literal(WRITER_SETTING))
        )
    return sql.Composed(parts)


def _rebuild_head(schema: str) -> sql.Composed:
    m, r, p = (qualified(schema, t) for _tag, t in HEAD_SOURCES)
    return sql.SQL(
        "LOCK TABLE {m}, {r}, {p} IN SHARE ROW EXCLUSIVE MODE;\n"
        "DELETE FROM {h};\n"
        "INSERT INTO {h} (digest) SELECT "
        "COALESCE(pg_catalog.bit_xor(d), pg_catalog.repeat('0', 256)::bit(256)) FROM ("
        "SELECT pg_catalog.concat('m ', migration_id) AS t FROM {m} UNION ALL "
        "SELECT pg_catalog.concat('r ', migration_id, ' ', up_checksum, ' ', down_checksum) FROM {r} UNION ALL "
        "SELECT pg_catalog.concat('p ', migration_id) FROM {p}) rows_, LATERAL (SELECT pg_catalog.concat('x', "
        "pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(rows_.t, 'UTF8')), 'hex'))::bit(256) AS d) h_ "
    ).format(h=qualified(schema, HEAD_TABLE), m=m, r=r, p=p)


@dataclass(frozen=True)
class _Queries:
    """Every bookkeeping statement of one schema, rendered to text once."""

    probe: str
    head: str
    history: str
    history_lean: str
    legacy_history: str
    create_tables: str
    rebuild_head: str
    recorded: dict[tuple[bool, bool], str]  # (clear_progress, server_timed)
    adopted: str  # recorded, keeping stock yoyo's row (adopt)
    removed: dict[bool, str]  # clear_progress
    progress: str
    revision_state: str
    stored_downs: str
    accept: str
    log: str
    clear_progress: str
    grants: str


_PROBE = sql.SQL(
    "SELECT pg_catalog.to_regclass(%s) IS NOT NULL, pg_catalog.to_regclass(%s) IS NOT NULL, "
    "pg_catalog.to_regclass(%s) IS NOT NULL, ARRAY(SELECT e.extname::text FROM pg_catalog.pg_extension e "
    "WHERE %s::text[] IS NULL OR e.extname = ANY(%s::text[])), pg_catalog.pg_backend_pid(), "
    "pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('transaction_read_only') = 'on'"
)
# The privileges on the history table, for another table: a bookkeeping object created later (the
# head digest) must be usable by every role the owner already let in.
_GRANTS = sql.SQL(
    "SELECT p.privilege_type, CASE WHEN p.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END "
    "FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) p "
    "LEFT JOIN pg_catalog.pg_roles r ON r.oid = p.grantee "
    "WHERE c.oid = pg_catalog.to_regclass(%s) AND p.grantee <> c.relowner"
)


@lru_cache(maxsize=8)
def _queries(schema: str) -> _Queries:
    def text(query: sql.Composable) -> str:
        return query.as_string(None)

    m, log = qualified(schema, "_yoyo_migration"), qualified(schema, "_yoyo_log")
    r, p = qualified(schema, "_z4j_migrate_revision"), qualified(schema, "_z4j_migrate_progress")
    return _Queries(
        probe=text(_PROBE),
        head=text(sql.SQL("SELECT digest::text FROM {}").format(qualified(schema, HEAD_TABLE))),
        history=text(_history(schema, details=True)),
        history_lean=text(_history(schema, details=False)),
        legacy_history=text(
            sql.SQL(
                "SELECT 'm' AS kind, m.migration_hash::text AS key, m.migration_id::text AS migration_id, "
                "NULL::text AS up_checksum, NULL::text AS down_checksum, m.applied_at_utc AT TIME ZONE 'UTC' AS at, "
                "NULL::float8 AS duration_ms, NULL::bool AS down_transactional, NULL::text AS direction, "
                "NULL::int AS statements_done, NULL::int AS statements_total, NULL::int AS next_line, "
                "NULL::text AS last_error FROM {m} m"
            ).format(m=m)
        ),
        create_tables=text(_create_tables(schema)),
        rebuild_head=text(_rebuild_head(schema)),
        recorded={
            (clear, timed): text(_recorded(schema, clear_progress=clear, server_timed=timed))
            for clear in (True, False)
            for timed in (True, False)
        },
        adopted=text(_recorded(schema, clear_progress=False, server_timed=False, keep_yoyo_row=True)),
        removed={clear: text(_removed(schema, clear_progress=clear)) for clear in (True, False)},
        progress=text(
            sql.SQL(
                "INSERT INTO {p} (migration_id, direction, statements_done, statements_total, next_line, "
                "last_error) VALUES (%(id)s, %(direction)s, %(done)s, %(total)s, %(line)s, %(error)s) "
                "ON CONFLICT (migration_id) DO UPDATE SET direction = EXCLUDED.direction, "
                "statements_done = EXCLUDED.statements_done, statements_total = EXCLUDED.statements_total, "
                "next_line = EXCLUDED.next_line, last_error = EXCLUDED.last_error, updated_at = pg_catalog.now()"
            ).format(p=p)
        ),
        revision_state=text(
            sql.SQL(
                "SELECT EXISTS (SELECT FROM {m} WHERE migration_hash = %s), p.direction, p.statements_done, "
                "p.statements_total, p.next_line, p.last_error, p.started_at "
                "FROM (SELECT) one_ LEFT JOIN {p} p ON p.migration_id = %s"
            ).format(m=m, p=p)
        ),
        stored_downs=text(
            sql.SQL("SELECT migration_id, down_sql, down_transactional FROM {r} WHERE migration_id = ANY(%s)").format(
                r=r
            )
        ),
        accept=text(
            sql.SQL(
                "UPDATE {r} SET up_checksum = %s, down_checksum = %s, down_sql = %s, down_transactional = %s "
                "WHERE migration_hash = %s"
            ).format(r=r)
        ),
        log=text(
            sql.SQL(
                "INSERT INTO {log} (id, migration_hash, migration_id, operation, username, hostname, comment, "
                "created_at_utc) VALUES (%s, %s, %s, %s, %s, %s, %s, pg_catalog.timezone('UTC', pg_catalog.now()))"
            ).format(log=log)
        ),
        clear_progress=text(sql.SQL("DELETE FROM {p} WHERE migration_id = %s").format(p=p)),
        grants=text(_GRANTS),
    )


@lru_cache(maxsize=8)
def _create_head_text(schema: str) -> str:
    """Read and rendered only when the head digest is created (never on the start-up path)."""
    return _create_head(schema).as_string(None)


@lru_cache(maxsize=32)
def _regclass(schema: str, table: str) -> str:
    return qualified(schema, table).as_string(None)


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


class Store:
    """The bookkeeping of one schema, over the caller's connection: one method per action."""

    def __init__(self, conn: psycopg.Connection, schema: str) -> None:
        self.conn = conn
        self.schema = schema
        self._q = _queries(schema)

    @cached_property
    def _cur(self) -> psycopg.Cursor:
        return self.conn.cursor()

    # ---------------------------------------------------------------- reads

    def probe(self, extensions: tuple[str, ...]) -> Probe:
        """Which bookkeeping tables exist and which of `extensions` are installed. Catalog lookups only,
        so it cannot fail on a missing table: a run never writes an ERROR line to the server log."""
        return self._probe(list(extensions))

    def probe_all_extensions(self) -> Probe:
        """probe() reporting every installed extension (the start-up check compares them later)."""
        return self._probe(None)

    def _probe(self, wanted: list[str] | None) -> Probe:
        s = self.schema
        row = self.conn.execute(
            self._q.probe,
            (_regclass(s, "_yoyo_migration"), _regclass(s, "_z4j_migrate_revision"), _regclass(s, HEAD_TABLE))
            + (wanted, wanted),
        ).fetchone()
        assert row is not None
        yoyo, ours, head, installed, pid, recovery, read_only = row
        return Probe(
            bool(yoyo), bool(ours), bool(head and yoyo and ours), frozenset(installed), pid, recovery, read_only
        )

    def read_head(self) -> int | None:
        """The stored head digest (one row of one table); None when missing, doubled or invalidated."""
        try:
            rows = self.conn.execute(self._q.head).fetchall()
        except pgerrors.InsufficientPrivilege as exc:
            raise self._read_refused(exc) from exc
        return int(rows[0][0], 2) if len(rows) == 1 and rows[0][0] is not None else None

    def state(self, extensions: tuple[str, ...], *, details: bool = True) -> DbState:
        """The probe, then the whole history."""
        return self.read_state(self.probe(extensions), details=details)

    def read_state(self, found: Probe, *, details: bool = True) -> DbState:
        """The whole history in one statement. `details=False`: applied rows carry no applied_at,
        duration or down_transactional (upgrade's checks need ids and checksums only)."""
        if found.yoyo and found.ours:
            query = self._q.history if details else self._q.history_lean
        elif found.yoyo:
            query = self._q.legacy_history
        else:
            return DbState(False, False, {}, {}, found.extensions, found.head)
        try:
            rows = self.conn.cursor(row_factory=class_row(_HistoryRow)).execute(query).fetchall()
        except pgerrors.InsufficientPrivilege as exc:
            raise self._read_refused(exc) from exc
        applied, progress = _decode(rows, legacy=not found.ours)
        return DbState(found.ours, found.yoyo and not found.ours, applied, progress, found.extensions, found.head)

    def revision_state(self, rev_id: str) -> tuple[bool, ProgressRow | None]:
        """Whether one revision is applied, and its journal row: re-read once a session holds the lock."""
        row = self.conn.execute(self._q.revision_state, (migration_hash(rev_id), rev_id)).fetchone()
        assert row is not None
        progress = ProgressRow(rev_id, row[1], row[2], row[3], row[4], row[5], row[6]) if row[1] else None
        return bool(row[0]), progress

    def stored_downs(self, ids: list[str]) -> dict[str, StoredDown]:
        """The down SQL kept in the database for revisions the code does not have."""
        rows = self.conn.execute(self._q.stored_downs, (ids,)).fetchall()
        return {r[0]: StoredDown(r[1], r[2]) for r in rows}

    def _read_refused(self, exc: pgerrors.InsufficientPrivilege) -> PrivilegeError:
        role, schema = self.conn.info.user, self.schema
        return PrivilegeError(
            f"role {role} may not read the bookkeeping tables in schema {schema} ({exc.diag.message_primary}): "
            f"z4j-migrate needs SELECT, INSERT, UPDATE and DELETE on {schema}.{', '.join(TABLES)}. Connect as "
            f"the role that owns them, or have it run: GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN "
            f"SCHEMA {schema} TO {role}. Nothing was changed."
        )

    # ---------------------------------------------------------------- set-up

    def create_tables(self) -> None:
        """The bookkeeping tables and the head digest, if missing (in a transaction holding the lock)."""
        try:
            self.conn.execute(self._q.create_tables)
            self.conn.execute(_create_head_text(self.schema))
            self.conn.execute(self._q.rebuild_head)  # the rows stock yoyo may have left
        except pgerrors.InsufficientPrivilege as exc:
            role, schema = self.conn.info.user, self.schema
            raise PrivilegeError(
                f"role {role} may not create the bookkeeping tables in schema {schema} "
                f"({exc.diag.message_primary}): the first run needs CREATE on schema {schema}. Run it as the "
                f"schema owner, or have the owner run: GRANT CREATE ON SCHEMA {schema} TO {role}. "
                "Nothing was changed."
            ) from exc

    def repair_head(self, *, create: bool) -> bool:
        """Recompute the head digest from the tables (creating its table and triggers first if `create`,
        with the grants the history table has).

        False, changing nothing, when the role may not (creating triggers needs the tables' owner)
        or the server is read-only (a standby): the start-up check then keeps reading the whole
        history, which is slower but just as correct.
        """
        try:
            with self.conn.transaction():  # a savepoint: a refusal leaves the caller's transaction usable
                if create:
                    self.conn.execute(_create_head_text(self.schema))
                    self._copy_grants("_z4j_migrate_revision", HEAD_TABLE)
                self.conn.execute(self._q.rebuild_head)
        except (pgerrors.InsufficientPrivilege, pgerrors.ReadOnlySqlTransaction):
            return False
        return True

    def _copy_grants(self, source: str, target: str) -> None:
        for privilege, grantee in self.conn.execute(self._q.grants, (_regclass(self.schema, source),)).fetchall():
            self.conn.execute(
                sql.SQL("GRANT {} ON {} TO {}").format(
                    sql.SQL(privilege), qualified(self.schema, target), sql.SQL(grantee)
                )
            )

    # ---------------------------------------------------------------- history

    def record_applied(self, revision: Revision, *, duration_ms: float, clear_progress: bool = True) -> None:
        """`clear_progress=False`: the caller knows there is no journal row for this revision."""
        self._cur.execute(
            self._q.recorded[(clear_progress, False)], {**_applied_params(revision), "duration": duration_ms}
        )

    def applied_statement(self, revision: Revision, *, clear_progress: bool = True) -> str:
        """record_applied as one SQL text with its values bound client-side (psycopg's quoting), to
        travel in the same query message as the revision's SQL; the server measures the duration."""
        query = self._q.recorded[(clear_progress, True)]
        return psycopg.ClientCursor(self.conn).mogrify(query, _applied_params(revision))

    def record_adopted(self, revision: Revision, *, comment: str) -> None:
        """A revision another tool (or a person) applied, taken over by `adopt` (adopt.py) once the
        catalogs matched: recorded the way upgrade records one (so the head digest's triggers see
        the same rows; a row stock yoyo wrote is kept as it is), and audited in _yoyo_log as a mark
        saying where it came from."""
        self._cur.execute(self._q.adopted, {**_applied_params(revision), "duration": 0.0})
        self._log(revision.id, "mark", comment)

    def record_rolled_back(self, rev_id: str, *, clear_progress: bool = True) -> None:
        self._cur.execute(self._q.removed[clear_progress], _removed_params(rev_id))

    def rolled_back_statement(self, rev_id: str, *, clear_progress: bool = True) -> str:
        """record_rolled_back as one SQL text with its values bound client-side (see applied_statement)."""
        return psycopg.ClientCursor(self.conn).mogrify(self._q.removed[clear_progress], _removed_params(rev_id))

    def record_progress(
        self, rev_id: str, *, direction: str, done: int, total: int, next_line: int | None, error: str | None = None
    ) -> None:
        """Journal a non-transactional revision: `done` of `total` statements ran; the next is at `next_line`."""
        self._cur.execute(
            self._q.progress,
            {"id": rev_id, "direction": direction, "done": done, "total": total, "line": next_line, "error": error},
        )

    # ---------------------------------------------------------------- operator repairs (audited)

    def accept_checksums(self, revision: Revision) -> int:
        """Record the current files of an applied revision as the accepted ones (audited in _yoyo_log)."""
        down = revision.down
        self._cur.execute(
            self._q.accept,
            (revision.up.checksum, down.checksum, down.text, down.transactional, migration_hash(revision.id)),
        )
        changed = self._cur.rowcount
        self._log(revision.id, "mark", "z4j-migrate accept: edited files accepted")
        return changed

    def clear_progress(self, rev_id: str, *, comment: str) -> int:
        """Forget the journal of a stopped non-transactional revision (the operator resolved it)."""
        self._cur.execute(self._q.clear_progress, (rev_id,))
        removed = self._cur.rowcount
        self._log(rev_id, "unmark", comment)
        return removed

    def _log(self, rev_id: str, operation: str, comment: str) -> None:
        user, host = _who()
        self._cur.execute(
            self._q.log, (_log_id(), migration_hash(rev_id), rev_id, operation, user, host, comment[:255])
        )


def _decode(rows: list[_HistoryRow], *, legacy: bool) -> tuple[dict[str, AppliedRow], dict[str, ProgressRow]]:
    """_yoyo_migration LEFT JOIN _z4j_migrate_revision USING (migration_hash), plus the journal."""
    ours = {row.key: row for row in rows if row.kind == "r"}  # by migration_hash, its primary key
    applied: dict[str, AppliedRow] = {}
    progress: dict[str, ProgressRow] = {}
    for row in rows:
        if row.kind == "m" and row.migration_id is not None:
            r = None if legacy else ours.get(row.key)
            if r is None:
                applied[row.migration_id] = AppliedRow(row.migration_id, None, None, row.at, None, None)
            else:
                at = r.at if r.at is not None else row.at
                applied[row.migration_id] = AppliedRow(
                    row.migration_id, r.up_checksum, r.down_checksum, at, r.duration_ms, r.down_transactional
                )
        elif row.kind == "p":
            progress[row.key] = ProgressRow(
                row.key,
                row.direction or "apply",
                row.statements_done or 0,
                row.statements_total or 0,
                row.next_line,
                row.last_error,
                row.at,
            )
    return applied, progress


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


def _removed_params(rev_id: str) -> dict[str, object]:
    user, host = _who()
    return {"hash": migration_hash(rev_id), "id": rev_id, "log_id": _log_id(), "user": user, "host": host}
