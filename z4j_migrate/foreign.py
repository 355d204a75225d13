"""Other migration tools' history tables: which one a database holds, and what it says is applied.

`adopt` (adopt.py) reads them to know which revisions to check and record; the first `upgrade` of
a database without our bookkeeping looks for them (startup.check_head), so it refuses instead of
re-running revisions another tool already applied. The tables are only ever read, never changed:
the team can go back to the other tool.

Each tool's table is recognised by its name and its columns, found in the catalog first (one
statement), so a user table that merely shares a name is never taken for a history, and nothing
is read that could fail and write an ERROR line to the server log. The shapes are the tools' own:

- golang-migrate: `schema_migrations (version bigint, dirty boolean)`, one row: the newest version
  applied, every lower one implied; `dirty` means a migration failed part-way.
- dbmate: `schema_migrations (version varchar)`, one row per applied version.
- yoyo: `_yoyo_migration (migration_hash, migration_id, applied_at_utc)`, one row per applied
  migration id. Our own bookkeeping keeps yoyo's tables, so it is stock yoyo's only while
  `_z4j_migrate_revision` is absent.
- flyway: `flyway_schema_history`, one row per run (installed_rank order): versioned migrations,
  a BASELINE (every version up to it counts as applied), undo and delete rows, and
  `success = false` for a migration that failed.

The functions that turn a history into revisions (`revisions_for`) are pure, for unit tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from .errors import ConfigError, DriftError, ForeignHistory, PrivilegeError
from .revisions import Revision

TOOLS = ("golang-migrate", "dbmate", "yoyo", "flyway")
# Alembic's table says which revision hash the database is at, which no SQL file carries: it is found
# (so `upgrade` refuses and adopt leaves the table out of the comparison) but adopted with --to only.
DETECTED = (*TOOLS, "alembic")
DEFAULT_TABLE = {
    "golang-migrate": "schema_migrations",
    "dbmate": "schema_migrations",
    "yoyo": "_yoyo_migration",
    "flyway": "flyway_schema_history",
    "alembic": "alembic_version",
}
_OURS = "_z4j_migrate_revision"

# The columns that make a table the tool's history (name -> type as format_type prints it; None: any).
_SHAPES: dict[str, dict[str, str | None]] = {
    "golang-migrate": {"version": "bigint", "dirty": "boolean"},
    "dbmate": {"version": "character varying"},
    "yoyo": {"migration_hash": None, "migration_id": None, "applied_at_utc": None},
    "flyway": {"installed_rank": "integer", "version": None, "type": None, "script": None, "success": "boolean"},
    "alembic": {"version_num": "character varying"},
}
# Flyway row types that put a version in place, and those that take one away again.
_FLYWAY_APPLY = frozenset({"SQL", "JDBC", "SPRING_JDBC", "SCRIPT", "CUSTOM"})
_FLYWAY_REMOVE = frozenset({"UNDO_SQL", "UNDO_JDBC", "UNDO_SPRING_JDBC", "UNDO_SCRIPT", "DELETE"})

_COLUMNS = (
    "SELECT c.relname::text, pg_catalog.array_agg(a.attname::text ORDER BY a.attnum), "
    "pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, NULL) ORDER BY a.attnum) "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p') GROUP BY c.relname"
)


@dataclass(frozen=True)
class HistoryTable:
    """Where a tool keeps its history."""

    tool: str
    schema: str
    table: str

    @property
    def display(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class ToolHistory:
    """What a tool's table says: either everything up to `upto` (golang-migrate, a flyway baseline),
    plus the versions or migration ids listed one by one. `problem`: a dirty or failed state."""

    where: HistoryTable
    versions: tuple[int, ...] = ()
    ids: tuple[str, ...] = ()  # yoyo: migration ids, oldest first
    upto: int | None = None
    stated: str = "nothing applied"  # what the tool says, in its own terms, for messages
    problem: str | None = None


def split_table(name: str, schema: str) -> tuple[str, str]:
    """`--history-table NAME` or `SCHEMA.NAME` (no quoting: plain identifiers only)."""
    found_schema, _, table = name.rpartition(".")
    if not table or any(not part.replace("_", "a").isalnum() for part in (table, found_schema or "x")):
        raise ConfigError(f"--history-table {name!r}: give a table name, or schema.table, of letters, digits and _.")
    return found_schema or schema, table


def _columns(conn: psycopg.Connection, schema: str, tables: Sequence[str]) -> dict[str, dict[str, str]]:
    rows = conn.execute(_COLUMNS, (schema, list(tables))).fetchall()
    return {name: dict(zip(names, types, strict=True)) for name, names, types in rows}


def _fits(tool: str, columns: dict[str, str] | None) -> bool:
    if columns is None:
        return False
    shape = _SHAPES[tool]
    if tool in ("golang-migrate", "dbmate", "alembic") and set(columns) != set(shape):
        return False  # dbmate's and alembic's have one column; golang-migrate's exactly these two
    return all(name in columns and (kind is None or columns[name] == kind) for name, kind in shape.items())


def detect(conn: psycopg.Connection, schema: str) -> list[HistoryTable]:
    """Every other tool's history table in `schema` (one catalog statement). Stock yoyo's counts only
    while our own table is absent (ours keeps yoyo's)."""
    names = sorted({*DEFAULT_TABLE.values(), _OURS})
    found = _columns(conn, schema, names)
    tables = []
    for tool in DETECTED:
        table = DEFAULT_TABLE[tool]
        if tool == "yoyo" and _OURS in found:
            continue
        if _fits(tool, found.get(table)):
            tables.append(HistoryTable(tool, schema, table))
    return tables


def refusal(tables: Sequence[HistoryTable], database: str) -> ForeignHistory:
    """Why `upgrade` will not run on a database another tool manages, and what to do instead."""
    named = "; ".join(f"{t.tool}'s history in {t.display}" for t in tables)
    first = tables[0].tool
    how = (
        "'z4j-migrate adopt --to REV' (REV: the revision whose SQL matches the alembic revision the database is at)"
        if first == "alembic"
        else f"'z4j-migrate adopt --from {first}'"
    )
    return ForeignHistory(
        f"refusing to upgrade {database}: it holds {named}, and no z4j-migrate bookkeeping. Running the "
        "revisions now would apply again what that tool already applied. Take the database over first with "
        f"{how}: it builds those revisions in a scratch database, compares the catalogs and, only if they "
        "match, records them as applied (docs/adoption.md). Nothing was changed.",
        tool=first,
    )


def locate(conn: psycopg.Connection, tool: str, schema: str, table: str | None) -> HistoryTable:
    """The tool's history table, checked in the catalog: it must exist with the tool's columns."""
    if tool == "alembic":
        raise ConfigError(
            "adopt --from alembic: alembic's history names a revision hash that no SQL file carries. Write the "
            "SQL of each alembic revision as a revision pair, then 'z4j-migrate adopt --to REV' with the one the "
            "database is at (docs/adoption.md, From Alembic); alembic_version is left out of the comparison."
        )
    if tool not in TOOLS:
        raise ConfigError(f"adopt --from {tool!r}: give one of {', '.join(TOOLS)}.")
    where = HistoryTable(tool, *split_table(table or DEFAULT_TABLE[tool], schema))
    found = _columns(conn, where.schema, [where.table, _OURS])
    columns = found.get(where.table)
    if columns is None:
        raise ConfigError(
            f"adopt --from {tool}: there is no table {where.display}, where {tool} keeps its history. If it "
            "lives elsewhere, give --history-table TABLE or SCHEMA.TABLE."
        )
    if not _fits(tool, columns):
        have = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        raise ConfigError(
            f"adopt --from {tool}: {where.display} ({have}) is not {tool}'s history table; check --from and "
            "--history-table."
        )
    return where


def read(conn: psycopg.Connection, where: HistoryTable) -> ToolHistory:
    """The whole history (its rows are few), in the tool's own terms."""
    reader = {"golang-migrate": _golang, "dbmate": _dbmate, "yoyo": _yoyo, "flyway": _flyway}[where.tool]
    table = sql.Identifier(where.schema, where.table)
    try:
        with conn.transaction():  # a savepoint when the caller holds a transaction
            return reader(conn, table, where)
    except pgerrors.InsufficientPrivilege as exc:
        raise PrivilegeError(
            f"role {conn.info.user} may not read {where.display}, {where.tool}'s history "
            f"({exc.diag.message_primary}): adopt needs SELECT on it. Have its owner run: GRANT SELECT ON "
            f"{where.display} TO {conn.info.user}. Nothing was changed."
        ) from None


def _golang(conn: psycopg.Connection, table: sql.Identifier, where: HistoryTable) -> ToolHistory:
    rows = conn.execute(sql.SQL("SELECT version, dirty FROM {}").format(table)).fetchall()
    if not rows:
        return ToolHistory(where)
    if len(rows) > 1:
        listed = ", ".join(str(v) for v, _ in rows)
        return ToolHistory(
            where,
            problem=f"{where.display} holds {len(rows)} rows (versions {listed}); golang-migrate keeps exactly one. "
            "Find out which version the database is at, and leave only that row",
        )
    version, dirty = rows[0]
    stated = f"version {version}"
    if dirty:
        return ToolHistory(
            where,
            upto=version,
            stated=stated,
            problem=f"{where.display} says version {version} is dirty: that migration failed part-way and "
            "golang-migrate does not know what it left behind. Repair the schema by hand, then mark the version "
            f"you reached with 'migrate force N' (dirty = false), and adopt again",
        )
    return ToolHistory(where, upto=version, stated=stated)


def _number(text: str, where: HistoryTable, what: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise DriftError(
            f"{where.display} lists {what} {text!r}, which is not a whole number: z4j-migrate numbers revisions by "
            "whole numbers, so it cannot tell which revision that is. Nothing was recorded."
        )
    return int(text)


def _dbmate(conn: psycopg.Connection, table: sql.Identifier, where: HistoryTable) -> ToolHistory:
    texts = [r[0] for r in conn.execute(sql.SQL("SELECT version::text FROM {}").format(table)).fetchall()]
    versions = tuple(sorted(_number(t.strip(), where, "version") for t in texts))
    stated = f"versions {', '.join(map(str, versions))}" if versions else "nothing applied"
    return ToolHistory(where, versions=versions, stated=stated)


def _yoyo(conn: psycopg.Connection, table: sql.Identifier, where: HistoryTable) -> ToolHistory:
    query = sql.SQL("SELECT migration_id::text FROM {} ORDER BY applied_at_utc, migration_id").format(table)
    ids = tuple(r[0] for r in conn.execute(query).fetchall() if r[0] is not None)
    return ToolHistory(where, ids=ids, stated=f"migrations {', '.join(ids)}" if ids else "nothing applied")


def _flyway(conn: psycopg.Connection, table: sql.Identifier, where: HistoryTable) -> ToolHistory:
    rows = conn.execute(
        sql.SQL("SELECT installed_rank, version::text, type::text, script::text, success FROM {} ORDER BY 1").format(
            table
        )
    ).fetchall()
    applied: set[int] = set()
    baseline: int | None = None
    for rank, version, kind, script, success in rows:
        if not success:
            return ToolHistory(
                where,
                problem=f"{where.display} records a failed migration (installed_rank {rank}, version {version}, "
                f"{script}): Flyway stopped there. Repair the schema, run 'flyway repair' to remove the failed "
                "row, and adopt again",
            )
        if version is None:  # the schema marker, repeatable migrations: no version to adopt
            continue
        number = _number(version.strip(), where, "version")
        if kind == "BASELINE":
            baseline = number
        elif kind in _FLYWAY_REMOVE:
            applied.discard(number)
        elif kind in _FLYWAY_APPLY:
            applied.add(number)
    versions = tuple(sorted(applied))
    parts = ([f"baseline {baseline}"] if baseline is not None else []) + (
        [f"versions {', '.join(map(str, versions))}"] if versions else []
    )
    return ToolHistory(where, versions=versions, upto=baseline, stated=", ".join(parts) or "nothing applied")


def revisions_for(history: ToolHistory, revisions: Sequence[Revision], directory: str) -> list[Revision]:
    """The revisions the history says are applied, in order; refused (DriftError) when it names one the
    directory lacks (the database is ahead of the files) or skips one below its newest (a gap)."""
    where = f"{history.where.tool}'s history in {history.where.display}"
    if history.ids:
        known = {r.id for r in revisions}
        unknown = [i for i in history.ids if i not in known]
        if unknown:
            raise _ahead(where, ", ".join(unknown), directory)
        applied = set(history.ids)
        last = max(i for i, r in enumerate(revisions) if r.id in applied)
        chosen = list(revisions[: last + 1])
    else:
        numbers = {r.version for r in revisions}
        named = sorted(set(history.versions) | ({history.upto} if history.upto is not None else set()))
        unknown_numbers = [v for v in named if v not in numbers]
        # A flyway baseline need not be a file of its own: the versions below it are what it stands for.
        if history.where.tool == "flyway" and history.upto in unknown_numbers:
            unknown_numbers.remove(history.upto)
        if unknown_numbers:
            raise _ahead(where, ", ".join(f"version {v}" for v in unknown_numbers), directory)
        if not named:
            return []
        newest = max(named)
        floor = history.upto if history.upto is not None else -1
        chosen = [r for r in revisions if r.version <= newest]
        applied = {r.id for r in chosen if r.version <= floor or r.version in history.versions}
    gaps = [r.id for r in chosen if r.id not in applied]
    if gaps:
        raise DriftError(
            f"{where} ({history.stated}) does not list {', '.join(gaps)}, which the directory has below the newest "
            "revision that history lists: it was never applied, or applied out of order. Apply it with that tool "
            "first, or remove it from the directory, then adopt again. Nothing was recorded."
        )
    return chosen


def _ahead(where: str, names: str, directory: str) -> DriftError:
    return DriftError(
        f"{where} names {names}, which {directory} does not have: the database is ahead of these files. "
        "Adopt from the checkout that has every revision the database ran. Nothing was recorded."
    )
