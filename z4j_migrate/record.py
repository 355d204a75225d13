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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from .errors import PrivilegeError
from .revisions import Revision

TABLES = (
    "_yoyo_migration",
    "_yoyo_log",
    "_yoyo_version",
    "_z4j_migrate_revision",
    "_z4j_migrate_progress",
    "_z4j_migrate_head",
)
HEAD_TABLE = "_z4j_migrate_head"
# The head triggers skip writes made by a session where this is 'on'. z4j-migrate no longer sets it
# (its runs let the triggers keep the digest, in the same transaction as every bookkeeping write, so
# no interruption can leave it stale); the clause stays so the trigger text of existing databases
# is unchanged (docs/reliability.md, "The head digest").
WRITER_SETTING = "z4j_migrate.writer"
HEAD_FUNCTION = "_z4j_migrate_head_track"
# Which rows of which table feed the head digest: the tag starts each row's text (see row_text).
_HEAD_SOURCES = (("m", "_yoyo_migration"), ("r", "_z4j_migrate_revision"), ("p", "_z4j_migrate_progress"))


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
    has_head: bool = False  # the head digest table exists (bookkeeping made before it was added has none)


@dataclass(frozen=True)
class Probe:
    """Which bookkeeping tables exist, which extensions are installed, and what server session
    answered (its pid, and whether it can write): one catalog-only statement."""

    yoyo: bool
    ours: bool
    head: bool
    extensions: frozenset[str]
    backend_pid: int = 0  # the server's pid; a pooler announces a pid of its own at connect
    in_recovery: bool = False  # a hot standby
    read_only: bool = False  # transaction_read_only: a standby, or default_transaction_read_only


def _head_triggers(schema: str) -> sql.Composed:
    parts = []
    for tag, table in _HEAD_SOURCES:
        on = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        fn = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(HEAD_FUNCTION))
        parts.append(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER _z4j_migrate_head AFTER INSERT OR UPDATE OR DELETE ON {on} "
                "FOR EACH ROW WHEN (pg_catalog.current_setting({writer}, true) IS DISTINCT FROM 'on') "
                "EXECUTE FUNCTION {fn}({tag});\n"
                "CREATE OR REPLACE TRIGGER _z4j_migrate_head_truncate AFTER TRUNCATE ON {on} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {fn}({tag});\n"
            ).format(on=on, fn=fn, tag=sql.Literal(tag), writer=sql.Literal(WRITER_SETTING))
        )
    return sql.Composed(parts)


def row_text(tag: str, rev_id: str, up_checksum: str = "", down_checksum: str = "") -> str:
    """The text hashed for one bookkeeping row; the trigger in _composed builds the same."""
    if tag == "r":
        return f"r {rev_id} {up_checksum} {down_checksum}"
    return f"{tag} {rev_id}"


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")


def head_digest(revisions: Iterable[tuple[str, str, str]]) -> int:
    """The head digest of a database where exactly these (id, up checksum, down checksum) are applied
    by z4j-migrate and nothing is in progress: what the triggers maintain, computed client-side."""
    digest = 0
    for rev_id, up, down in revisions:
        digest ^= _h(row_text("m", rev_id)) ^ _h(row_text("r", rev_id, up, down))
    return digest


def _composed(schema: str) -> dict[str, sql.Composed | sql.SQL]:
    s = sql.Identifier(schema)

    def t(name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(s, sql.Identifier(name))

    return {
        "probe": sql.SQL(
            "SELECT pg_catalog.to_regclass(%s) IS NOT NULL, pg_catalog.to_regclass(%s) IS NOT NULL, "
            "pg_catalog.to_regclass(%s) IS NOT NULL, ARRAY(SELECT e.extname::text FROM pg_catalog.pg_extension e "
            "WHERE %s::text[] IS NULL OR e.extname = ANY(%s::text[])), pg_catalog.pg_backend_pid(), "
            "pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('transaction_read_only') = 'on'"
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
        "head": sql.SQL("SELECT digest::text FROM {h}").format(h=t(HEAD_TABLE)),
        # The head digest, kept by the database itself: a row trigger on each bookkeeping table XORs
        # the sha256 of every row it adds or removes into one 256-bit value (row_text says which
        # text). So the start-up check reads one row instead of the whole history, and any writer
        # (this tool, stock yoyo, an operator's psql) keeps it true. TRUNCATE invalidates it (NULL);
        # the next run rebuilds it from the tables.
        "create_head": sql.SQL(
            "CREATE TABLE IF NOT EXISTS {h} (digest BIT(256));\n"
            "COMMENT ON TABLE {h} IS 'z4j-migrate: one row, the head digest (no index on purpose: the start-up "
            "check reads it on a fresh connection, where every index costs a catalog load)';\n"
            "CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql "
            "SET search_path = pg_catalog, pg_temp AS $z4j$\n"
            "DECLARE\n"
            "  delta bit(256) := repeat('0', 256)::bit(256);\n"
            "  kind text := TG_ARGV[0];\n"
            "  row_text text;\n"
            "BEGIN\n"
            "  IF TG_OP = 'TRUNCATE' THEN\n"
            "    UPDATE {h} SET digest = NULL;\n"
            "    RETURN NULL;\n"
            "  END IF;\n"
            "  IF TG_OP <> 'INSERT' THEN\n"
            "    IF kind = 'r' THEN\n"
            "      row_text := concat('r ', OLD.migration_id, ' ', OLD.up_checksum, ' ', OLD.down_checksum);\n"
            "    ELSE\n"
            "      row_text := concat(kind, ' ', OLD.migration_id);\n"
            "    END IF;\n"
            "    delta := delta # ('x' || encode(sha256(convert_to(row_text, 'UTF8')), 'hex'))::bit(256);\n"
            "  END IF;\n"
            "  IF TG_OP <> 'DELETE' THEN\n"
            "    IF kind = 'r' THEN\n"
            "      row_text := concat('r ', NEW.migration_id, ' ', NEW.up_checksum, ' ', NEW.down_checksum);\n"
            "    ELSE\n"
            "      row_text := concat(kind, ' ', NEW.migration_id);\n"
            "    END IF;\n"
            "    delta := delta # ('x' || encode(sha256(convert_to(row_text, 'UTF8')), 'hex'))::bit(256);\n"
            "  END IF;\n"
            "  UPDATE {h} SET digest = digest # delta;\n"
            "  RETURN NULL;\n"
            "END\n"
            "$z4j$;\n"
            "COMMENT ON FUNCTION {fn}() IS 'z4j-migrate: keeps the head digest in step with the bookkeeping tables';\n"
            "{triggers}"
        ).format(h=t(HEAD_TABLE), fn=t(HEAD_FUNCTION), triggers=_head_triggers(schema)),
        "rebuild_head": sql.SQL(
            "LOCK TABLE {m}, {r}, {p} IN SHARE ROW EXCLUSIVE MODE;\n"
            "DELETE FROM {h};\n"
            "INSERT INTO {h} (digest) SELECT "
            "COALESCE(pg_catalog.bit_xor(d), pg_catalog.repeat('0', 256)::bit(256)) FROM ("
            "SELECT pg_catalog.concat('m ', migration_id) AS t FROM {m} UNION ALL "
            "SELECT pg_catalog.concat('r ', migration_id, ' ', up_checksum, ' ', down_checksum) FROM {r} UNION ALL "
            "SELECT pg_catalog.concat('p ', migration_id) FROM {p}) rows_, LATERAL (SELECT pg_catalog.concat('x', "
            "pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(rows_.t, 'UTF8')), 'hex'))::bit(256) AS d) h_ "
        ).format(h=t(HEAD_TABLE), m=t("_yoyo_migration"), r=t("_z4j_migrate_revision"), p=t("_z4j_migrate_progress")),
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


def _read_refused(conn: psycopg.Connection, schema: str, exc: pgerrors.InsufficientPrivilege) -> PrivilegeError:
    role = conn.info.user
    return PrivilegeError(
        f"role {role} may not read the bookkeeping tables in schema {schema} ({exc.diag.message_primary}): "
        f"z4j-migrate needs SELECT, INSERT, UPDATE and DELETE on {schema}.{', '.join(TABLES)}. Connect as "
        f"the role that owns them, or have it run: GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN "
        f"SCHEMA {schema} TO {role}. Nothing was changed."
    )


def probe(conn: psycopg.Connection, schema: str, extensions: tuple[str, ...] | None) -> Probe:
    """Which bookkeeping tables exist, and which of `extensions` (None: all) are installed.

    Catalog lookups only, so it cannot fail on a missing table: a run never writes an
    ERROR line to the server log (stock yoyo's probes write two).
    """
    wanted = None if extensions is None else list(extensions)
    yoyo, ours, head, installed, pid, recovery, read_only = conn.execute(
        _q(schema)["probe"],
        (
            _regclass(schema, "_yoyo_migration"),
            _regclass(schema, "_z4j_migrate_revision"),
            _regclass(schema, HEAD_TABLE),
            wanted,
            wanted,
        ),
    ).fetchone()  # type: ignore[misc]
    return Probe(bool(yoyo), bool(ours), bool(head and yoyo and ours), frozenset(installed), pid, recovery, read_only)


def read_head(conn: psycopg.Connection, schema: str) -> int | None:
    """The stored head digest (one row of one table); None when missing, doubled or invalidated."""
    try:
        rows = conn.execute(_q(schema)["head"]).fetchall()
    except pgerrors.InsufficientPrivilege as exc:
        raise _read_refused(conn, schema, exc) from None
    return int(rows[0][0], 2) if len(rows) == 1 and rows[0][0] is not None else None


def read_state(
    conn: psycopg.Connection,
    schema: str,
    extensions: tuple[str, ...] | None,
    *,
    details: bool = True,
    probed: Probe | None = None,
) -> DbState:
    """The whole history: the probe (unless given), then one statement reading every bookkeeping row.

    `details=False`: applied rows carry no applied_at, duration or down_transactional
    (upgrade's checks need ids and checksums only). `extensions=None`: report every
    installed extension.
    """
    q = _q(schema)
    cur = conn.cursor()
    try:
        found = probed if probed is not None else probe(conn, schema, extensions)
        yoyo_exists, ours_exists, installed = found.yoyo, found.ours, found.extensions
        if yoyo_exists and ours_exists:
            rows = cur.execute(q["state"] if details else q["state_lean"]).fetchall()
        elif yoyo_exists:
            rows = cur.execute(q["legacy_state"]).fetchall()
        else:
            rows = []
    except pgerrors.InsufficientPrivilege as exc:
        raise _read_refused(conn, schema, exc) from None
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
    return DbState(
        bool(ours_exists), bool(yoyo_exists and not ours_exists), applied, progress, frozenset(installed), found.head
    )


def ensure_tables(conn: psycopg.Connection, schema: str) -> None:
    """Create the bookkeeping tables and the head digest if missing (inside a transaction that holds
    the migration lock, so concurrent first runs cannot race on CREATE TABLE)."""
    q = _q(schema)
    try:
        conn.execute(q["create"])
        conn.execute(q["create_head"])
        conn.execute(q["rebuild_head"])  # the rows stock yoyo may have left
    except pgerrors.InsufficientPrivilege as exc:
        role = conn.info.user
        raise PrivilegeError(
            f"role {role} may not create the bookkeeping tables in schema {schema} "
            f"({exc.diag.message_primary}): the first run needs CREATE on schema {schema}. Run it as the "
            f"schema owner, or have the owner run: GRANT CREATE ON SCHEMA {schema} TO {role}. Nothing was changed."
        ) from None


# The privileges on the history table, as GRANT statements for another table: a bookkeeping object
# created later (the head digest) must be usable by every role the owner already let in.
_GRANTS = (
    "SELECT p.privilege_type, CASE WHEN p.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END "
    "FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) p "
    "LEFT JOIN pg_catalog.pg_roles r ON r.oid = p.grantee "
    "WHERE c.oid = pg_catalog.to_regclass(%s) AND p.grantee <> c.relowner"
)


def _copy_grants(conn: psycopg.Connection, schema: str, source: str, target: str) -> None:
    rows = conn.execute(_GRANTS, (_regclass(schema, source),)).fetchall()
    for privilege, grantee in rows:
        conn.execute(
            sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), _table(schema, target), sql.SQL(grantee))
        )


def repair_head(conn: psycopg.Connection, schema: str, *, create: bool) -> bool:
    """Recompute the head digest from the tables (creating its table and triggers first if `create`,
    with the grants the history table has).

    Inside a transaction holding the migration lock. Returns False, changing nothing, when the role
    may not do it (creating triggers needs the tables' owner) or the server is read-only (a standby):
    the start-up check then keeps reading the whole history, which is slower but just as correct.
    """
    q = _q(schema)
    try:
        with conn.transaction():  # a savepoint: a refusal leaves the caller's transaction usable
            if create:
                conn.execute(q["create_head"])
                _copy_grants(conn, schema, "_z4j_migrate_revision", HEAD_TABLE)
            conn.execute(q["rebuild_head"])
    except (pgerrors.InsufficientPrivilege, pgerrors.ReadOnlySqlTransaction):
        return False
    return True


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


def revision_state(conn: psycopg.Connection, schema: str, rev_id: str) -> tuple[bool, ProgressRow | None]:
    """Whether one revision is applied, and its journal row: re-read once a session holds the lock."""
    row = conn.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT FROM {m} WHERE migration_hash = %s), p.direction, p.statements_done, "
            "p.statements_total, p.next_line, p.last_error, p.started_at "
            "FROM (SELECT) one_ LEFT JOIN {p} p ON p.migration_id = %s"
        ).format(m=_table(schema, "_yoyo_migration"), p=_table(schema, "_z4j_migrate_progress")),
        (migration_hash(rev_id), rev_id),
    ).fetchone()
    assert row is not None
    progress = ProgressRow(rev_id, row[1], row[2], row[3], row[4], row[5], row[6]) if row[1] else None
    return bool(row[0]), progress
