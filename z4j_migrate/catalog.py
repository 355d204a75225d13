"""Snapshot "our" schema from the PostgreSQL system catalogs, diff and render it.

One snapshot function is shared by ``verify`` (prove a down migration restores the
schema the up found), ``schema`` (generate docs/schema.md) and the tests, so all three
agree on what counts as part of the schema.  A snapshot renders as JSON
(:func:`render_json`), as the Markdown reference (:func:`render_markdown`) or as a
Mermaid ``erDiagram`` of its tables and foreign keys (:func:`render_mermaid`).

Design notes:

* A snapshot is plain JSON data: ``{kind: {key: description}}``.  Keys are readable
  names ("tasks.state", "ix_tasks_state on tasks") so a difference can be reported
  without looking anything up, and a snapshot can be stored with :func:`render_json`
  and compared later.
* Objects owned by extensions (``pg_depend.deptype = 'e'``) are not ours and are left
  out, as are the migration tool's bookkeeping tables and everything hanging off them.
* One catalog query per kind, never one per object, so the number of round trips
  does not grow with the schema.  Comments are read from pg_description by index, not
  with ``obj_description()``: a SQL function that is planned again in every query.
* Every catalog relation and function is qualified with ``pg_catalog`` so objects in
  the user's schemas cannot shadow them.  No GUCs are set: ``format_type``,
  ``pg_get_expr`` and friends print names of objects visible on the session's
  ``search_path`` unqualified, so snapshots compared with each other must come from
  sessions with the same ``search_path`` (the default one, in practice).
* Object keys carry the schema name only for schemas other than ``public``.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .state import TABLES

__all__ = [
    "BOOKKEEPING_FUNCTIONS",
    "BOOKKEEPING_TABLES",
    "KINDS",
    "SCHEMA_FORMATS",
    "Difference",
    "Piece",
    "RootKey",
    "Snapshot",
    "diff",
    "object_names",
    "render_json",
    "render_markdown",
    "render_mermaid",
    "snapshot",
    "snapshot_pieces",
]

# Ours (state.TABLES), and the lock table stock yoyo creates when it runs against the database.
BOOKKEEPING_TABLES: frozenset[str] = frozenset(TABLES) | {"yoyo_lock"}
# The bookkeeping's own function (the head digest's trigger function): never part of a schema.
BOOKKEEPING_FUNCTIONS: frozenset[str] = frozenset({"_z4j_migrate_head_track"})

Snapshot = dict[str, dict[str, Any]]

# Every snapshot has all of these kinds (possibly empty), in this order; diffs and
# object lists are ordered the same way so output reads from the big picture down.
KINDS: tuple[str, ...] = (
    "table",
    "partition",
    "column",
    "constraint",
    "index",
    "trigger",
    "policy",
    "sequence",
    "view",
    "materialized view",
    "type",
    "function",
    "comment",
    "grant",
)
# "enum label" only ever appears in differences, right after its type.
_ORDER = {
    kind: i
    for i, kind in enumerate(
        ("table", "partition", "column", "constraint", "index", "trigger", "policy")
        + ("sequence", "view", "materialized view", "type", "enum label", "function")
        + ("comment", "grant")
    )
}
_CHANGE_ORDER = {"left behind": 0, "missing": 1, "changed": 2}


@dataclass(frozen=True)
class Difference:
    """One way in which two snapshots differ, phrased for a human."""

    kind: str
    name: str
    change: str  # 'left behind' | 'missing' | 'changed'
    detail: str = ""

    @property
    def subject(self) -> str:
        """The object alone, e.g. for "leaves index ix on tasks"."""
        return f"{self.kind} {self.name}"

    def __str__(self) -> str:
        # Changes carry their own verb ("default changed: a -> b") in the detail.
        if self.change == "changed" and self.detail:
            return f"{self.subject} {self.detail}"
        text = f"{self.subject} {self.change}"
        return f"{text}: {self.detail}" if self.detail else text


# --------------------------------------------------------------------------- queries

_NOT_EXTENSION = """
    NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = '{catalog}'::pg_catalog.regclass
          AND d.objid = {oid} AND d.deptype = 'e')
"""

_RELATIONS_SQL = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpersistence,
       c.relrowsecurity, c.relforcerowsecurity, c.relreplident, c.relispopulated,
       c.relispartition, c.reloptions, ts.spcname AS tablespace,
       CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partkey,
       CASE WHEN c.relispartition
            THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END AS bound,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END AS viewdef,
       (SELECT ds.description FROM pg_catalog.pg_description ds WHERE ds.objoid = c.oid
        AND ds.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND ds.objsubid = 0) AS comment,
       ARRAY(SELECT pn.nspname || '.' || p.relname
             FROM pg_catalog.pg_inherits i
             JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
             JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
             WHERE i.inhrelid = c.oid ORDER BY i.inhseqno) AS parents,
       pg_catalog.format_type(s.seqtypid, NULL) AS seqtype, s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
       own.deptype AS own_deptype, own_n.nspname AS own_nspname,
       own_c.relname AS own_relname, own_a.attname AS own_attname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_tablespace ts ON ts.oid = c.reltablespace
LEFT JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
LEFT JOIN LATERAL (
    SELECT d.refobjid, d.refobjsubid, d.deptype FROM pg_catalog.pg_depend d
    WHERE c.relkind = 'S'
      AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND d.deptype IN ('a', 'i')
    LIMIT 1) own ON true
LEFT JOIN pg_catalog.pg_class own_c ON own_c.oid = own.refobjid
LEFT JOIN pg_catalog.pg_namespace own_n ON own_n.oid = own_c.relnamespace
LEFT JOIN pg_catalog.pg_attribute own_a
       ON own_a.attrelid = own.refobjid AND own_a.attnum = own.refobjsubid
WHERE n.nspname = ANY(%(schemas)s::pg_catalog.text[])
  AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
  AND {_NOT_EXTENSION.format(catalog="pg_catalog.pg_class", oid="c.oid")}
"""

_COLUMNS_SQL = """
SELECT a.attrelid, a.attname, a.attnum,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull, a.attidentity, a.attgenerated,
       pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) AS expr,
       CASE WHEN a.attcollation <> t.typcollation THEN
            CASE WHEN cn.nspname = 'pg_catalog' THEN co.collname
                 ELSE cn.nspname || '.' || co.collname END END AS collation,
       (SELECT ds.description FROM pg_catalog.pg_description ds WHERE ds.objoid = a.attrelid
        AND ds.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND ds.objsubid = a.attnum) AS comment
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
WHERE a.attrelid = ANY(%(colrels)s::pg_catalog.oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

# contype 'n' (NOT NULL constraints, PG18+) is left out: nullability is a column
# property here, which keeps PG15 and PG18 snapshots alike.  Constraint triggers
# ('t') are reported as triggers.
_CONSTRAINTS_SQL = """
SELECT c.oid AS con_oid, c.conrelid, c.conname, c.contype,
       pg_catalog.pg_get_constraintdef(c.oid) AS definition,
       (NOT c.conislocal OR c.conparentid <> 0) AS inherited,
       (SELECT ds.description FROM pg_catalog.pg_description ds WHERE ds.objoid = c.oid
        AND ds.classoid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND ds.objsubid = 0) AS comment
FROM pg_catalog.pg_constraint c
WHERE c.conrelid = ANY(%(rels)s::pg_catalog.oid[]) AND c.contype NOT IN ('n', 't')
"""

_INDEXES_SQL = """
SELECT i.indexrelid, i.indrelid, ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid) AS definition,
       i.indisvalid, ic.relispartition, con.conname,
       (SELECT ds.description FROM pg_catalog.pg_description ds WHERE ds.objoid = i.indexrelid
        AND ds.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND ds.objsubid = 0) AS comment
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_catalog.pg_constraint con
       ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
      AND con.contype IN ('p', 'u', 'x')
WHERE i.indrelid = ANY(%(rels)s::pg_catalog.oid[])
"""

_TRIGGERS_SQL = """
SELECT t.oid AS tg_oid, t.tgrelid, t.tgname, pg_catalog.pg_get_triggerdef(t.oid) AS definition,
       t.tgenabled, t.tgparentid <> 0 AS inherited,
       (SELECT ds.description FROM pg_catalog.pg_description ds WHERE ds.objoid = t.oid
        AND ds.classoid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND ds.objsubid = 0) AS comment
FROM pg_catalog.pg_trigger t
WHERE t.tgrelid = ANY(%(rels)s::pg_catalog.oid[]) AND NOT t.tgisinternal
"""

_POLICIES_SQL = """
SELECT p.oid AS pol_oid, p.polrelid, p.polname, p.polcmd, p.polpermissive,
       ARRAY(SELECT CASE WHEN r.oid = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(r.oid) END
             FROM pg_catalog.unnest(p.polroles) AS r(oid) ORDER BY 1) AS roles,
       pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS using_expr,
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr,
       (SELECT ds.description FROM pg_catalog.pg_description ds WHERE ds.objoid = p.oid
        AND ds.classoid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND ds.objsubid = 0) AS comment
FROM pg_catalog.pg_policy p
WHERE p.polrelid = ANY(%(rels)s::pg_catalog.oid[])
"""

# Implicit row types of tables/views, array types and the multirange types that come
# with every range type are created by PostgreSQL, not by us: left out.
_TYPES_SQL = f"""
SELECT t.oid, n.nspname, t.typname, t.typtype,
       CASE WHEN t.typtype = 'e' THEN
            ARRAY(SELECT e.enumlabel::pg_catalog.text FROM pg_catalog.pg_enum e
                  WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) END AS labels,
       CASE WHEN t.typtype = 'd' THEN
            pg_catalog.format_type(t.typbasetype, t.typtypmod) END AS base,
       t.typnotnull, t.typdefault,
       CASE WHEN t.typtype = 'd' THEN
            ARRAY(SELECT k.conname || ': ' || pg_catalog.pg_get_constraintdef(k.oid)
                  FROM pg_catalog.pg_constraint k
                  WHERE k.contypid = t.oid AND k.contype <> 'n' ORDER BY k.conname) END
            AS constraints,
       CASE WHEN t.typtype = 'c' THEN
            ARRAY(SELECT a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
                  FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
                  ORDER BY a.attnum) END AS attributes,
       (SELECT pg_catalog.format_type(r.rngsubtype, NULL) FROM pg_catalog.pg_range r
        WHERE r.rngtypid = t.oid) AS subtype,
       CASE WHEN t.typtype = 'd' AND co.collname <> 'default' THEN co.collname END AS collation,
       (SELECT ds.description FROM pg_catalog.pg_description ds WHERE ds.objoid = t.oid
        AND ds.classoid = 'pg_catalog.pg_type'::pg_catalog.regclass AND ds.objsubid = 0) AS comment
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_catalog.pg_collation co ON co.oid = t.typcollation
WHERE n.nspname = ANY(%(schemas)s::pg_catalog.text[])
  AND t.typtype IN ('b', 'c', 'd', 'e', 'r')
  AND (t.typtype <> 'c' OR EXISTS (
        SELECT 1 FROM pg_catalog.pg_class rc WHERE rc.oid = t.typrelid AND rc.relkind = 'c'))
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type el WHERE el.typarray = t.oid)
  AND {_NOT_EXTENSION.format(catalog="pg_catalog.pg_type", oid="t.oid")}
"""

# deptype 'i': constructors PostgreSQL creates along with a range type.
_FUNCTIONS_SQL = """
SELECT p.oid, n.nspname, p.proname, p.prokind,
       pg_catalog.pg_get_function_identity_arguments(p.oid) AS identity,
       pg_catalog.pg_get_function_arguments(p.oid) AS arguments,
       pg_catalog.pg_get_function_result(p.oid) AS result,
       l.lanname, p.provolatile, p.prosecdef, p.proisstrict, p.proleakproof,
       p.proparallel, p.proconfig,
       CASE WHEN p.prokind = 'a' THEN NULL
            WHEN p.prosqlbody IS NOT NULL THEN pg_catalog.pg_get_function_sqlbody(p.oid)
            ELSE p.prosrc END AS body,
       (SELECT ds.description FROM pg_catalog.pg_description ds WHERE ds.objoid = p.oid
        AND ds.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND ds.objsubid = 0) AS comment
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE n.nspname = ANY(%(schemas)s::pg_catalog.text[])
  AND NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_depend d
        WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
          AND d.objid = p.oid AND d.deptype IN ('e', 'i'))
"""

# Privileges are recorded relative to what the object would have with a NULL ACL
# (acldefault): extra grants, and revoked defaults (e.g. EXECUTE revoked from PUBLIC).
# Entries for the owner are dropped so the snapshot does not depend on which role
# ran the migrations.  The grantor is ignored for the same reason.
_GRANTS_SQL = """
WITH objs(objclass, oid, subid, acl, owner, defacl) AS (
    SELECT 'rel', c.oid, 0, c.relacl, c.relowner,
           pg_catalog.acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                 c.relowner)
    FROM pg_catalog.pg_class c WHERE c.oid = ANY(%(rels)s::pg_catalog.oid[])
    UNION ALL
    SELECT 'col', a.attrelid, a.attnum, a.attacl, c.relowner, NULL::pg_catalog.aclitem[]
    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    WHERE a.attrelid = ANY(%(rels)s::pg_catalog.oid[]) AND a.attnum > 0
      AND NOT a.attisdropped AND a.attacl IS NOT NULL
    UNION ALL
    SELECT 'func', p.oid, 0, p.proacl, p.proowner, pg_catalog.acldefault('f', p.proowner)
    FROM pg_catalog.pg_proc p WHERE p.oid = ANY(%(funcs)s::pg_catalog.oid[])
    UNION ALL
    SELECT 'type', t.oid, 0, t.typacl, t.typowner, pg_catalog.acldefault('T', t.typowner)
    FROM pg_catalog.pg_type t WHERE t.oid = ANY(%(types)s::pg_catalog.oid[])
)
SELECT o.objclass, o.oid, o.subid, x.privilege_type, x.is_grantable, x.revoked,
       CASE WHEN x.grantee = 0 THEN 'PUBLIC'
            ELSE pg_catalog.pg_get_userbyid(x.grantee) END AS grantee
FROM objs o
CROSS JOIN LATERAL (
    (SELECT e.grantee, e.privilege_type, e.is_grantable, false AS revoked
     FROM pg_catalog.aclexplode(COALESCE(o.acl, o.defacl)) e
     EXCEPT
     SELECT d.grantee, d.privilege_type, d.is_grantable, false
     FROM pg_catalog.aclexplode(o.defacl) d)
    UNION ALL
    SELECT d.grantee, d.privilege_type, false, true
    FROM pg_catalog.aclexplode(o.defacl) d
    WHERE NOT EXISTS (
        SELECT 1 FROM pg_catalog.aclexplode(COALESCE(o.acl, o.defacl)) e
        WHERE e.grantee = d.grantee AND e.privilege_type = d.privilege_type)
) x
WHERE x.grantee <> o.owner
"""

_RELKINDS = {
    "r": "table",
    "p": "table",
    "f": "table",
    "v": "view",
    "m": "materialized view",
    "S": "sequence",
}
_TABLE_KINDS = {"r": "table", "p": "partitioned table", "f": "foreign table"}
_REPLIDENT = {"d": "default", "n": "nothing", "f": "full", "i": "index"}
_CONTYPES = {
    "c": "check",
    "f": "foreign key",
    "p": "primary key",
    "u": "unique",
    "x": "exclusion",
}
_TRIGGER_STATES = {"O": "enabled", "D": "disabled", "R": "replica", "A": "always"}
_POLCMDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}
_TYPTYPES = {"b": "base", "c": "composite", "d": "domain", "e": "enum", "r": "range"}
_PROKINDS = {"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}
_VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}
_PARALLEL = {"s": "safe", "r": "restricted", "u": "unsafe"}
_IDENTITY = {"a": "always", "d": "by default"}
_GENERATED = {"s": "stored", "v": "virtual"}


def _qual(nspname: str, name: str) -> str:
    """Schema-qualify only outside ``public`` so the common case reads naturally."""
    return name if nspname == "public" else f"{nspname}.{name}"


def _qual_dotted(dotted: str) -> str:
    nspname, _, name = dotted.partition(".")
    return _qual(nspname, name)


_Row = dict[str, Any]  # one catalog row, by column name
_Describe = Callable[[_Row], dict[str, Any]]


# The catalog queries that run after _RELATIONS_SQL, in this order, keyed by the kind of
# their rows; _GRANTS_SQL runs last, as it needs the types and functions these find.
_OBJECT_QUERIES: dict[str, str] = {
    "column": _COLUMNS_SQL,
    "constraint": _CONSTRAINTS_SQL,
    "index": _INDEXES_SQL,
    "trigger": _TRIGGERS_SQL,
    "policy": _POLICIES_SQL,
    "type": _TYPES_SQL,
    "function": _FUNCTIONS_SQL,
}


def snapshot(
    conn: psycopg.Connection[Any],
    *,
    schemas: Sequence[str] = ("public",),
    exclude_tables: Collection[str] = BOOKKEEPING_TABLES,
) -> Snapshot:
    """Describe every object of ours in ``schemas`` as deterministic JSON data.

    ``exclude_tables`` holds bare or schema-qualified table names; their columns,
    constraints, indexes, triggers, policies, owned sequences, comments and grants are
    left out too.  Runs inside ``conn.transaction()`` so an autocommit connection gets
    one consistent read and no transaction is left open either way.
    """
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        rows = _read_catalog(cur, list(schemas), set(exclude_tables))
    return _SnapshotBuilder(rows).build()


# A root is an object that the snapshot describes together with everything hanging off it:
# ("rel", oid) a table, view or sequence with its columns, constraints, indexes, triggers,
# policies, comments and grants; ("type", oid) a type; ("func", oid) a function.
RootKey = tuple[str, int]
ROOT_KINDS: tuple[str, ...] = ("rel", "type", "func")


@dataclass(frozen=True)
class Piece:
    """The part of a snapshot that one root makes up (see :func:`snapshot_pieces`)."""

    snap: Snapshot  # only the kinds it has entries of
    name: str  # the root's own name, unqualified
    schema: str
    children: frozenset[tuple[str, int]]  # (catalog, oid) of its indexes, constraints, triggers, policies
    indexes: frozenset[str]  # names of its indexes (in its schema)


def snapshot_pieces(
    conn: psycopg.Connection[Any],
    *,
    schemas: Sequence[str] = ("public",),
    exclude_tables: Collection[str] = BOOKKEEPING_TABLES,
    roots: Collection[RootKey] | None = None,
    prepare: bool | None = None,
) -> dict[RootKey, Piece]:
    """:func:`snapshot`, cut into one piece per root, for ``roots`` only when given.

    The same queries and the same description code as :func:`snapshot`, with an oid filter on the
    relations, types and functions: merging the pieces of every root gives exactly the snapshot,
    and re-describing only the roots that changed keeps a merged snapshot up to date (verify's
    journal). A root that no longer exists (or is not ours) has no piece. `prepare` is psycopg's.
    """
    if roots is None:
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            rows = _read_catalog(cur, list(schemas), set(exclude_tables))
    else:
        only = {kind: sorted(oid for k, oid in roots if k == kind) for kind in ROOT_KINDS}
        rows = _read_scoped(conn, list(schemas), set(exclude_tables), only, prepare)
    groups: dict[RootKey, dict[str, list[_Row]]] = defaultdict(lambda: {kind: [] for kind in rows})
    for kind, kind_rows in rows.items():
        for row in kind_rows:
            groups[_root_of(kind, row)][kind].append(row)
    return {root: _piece(group) for root, group in groups.items()}


# kind of catalog rows -> (root kind, the row's column holding the root's oid)
_ROOT_COLUMN: dict[str, tuple[str, str]] = {
    "relation": ("rel", "oid"),
    "column": ("rel", "attrelid"),
    "constraint": ("rel", "conrelid"),
    "index": ("rel", "indrelid"),
    "trigger": ("rel", "tgrelid"),
    "policy": ("rel", "polrelid"),
    "type": ("type", "oid"),
    "function": ("func", "oid"),
}
_GRANT_ROOT = {"rel": "rel", "col": "rel", "func": "func", "type": "type"}
# kind of catalog rows -> (catalog, the row's column holding the object's own oid): a dropped
# object of these is found in its root's Piece.children
_CHILD_COLUMN: dict[str, tuple[str, str]] = {
    "constraint": ("pg_constraint", "con_oid"),
    "index": ("pg_class", "indexrelid"),
    "trigger": ("pg_trigger", "tg_oid"),
    "policy": ("pg_policy", "pol_oid"),
}


def _root_of(kind: str, row: _Row) -> RootKey:
    if kind == "grant":
        return (_GRANT_ROOT[row["objclass"]], row["oid"])
    root_kind, column = _ROOT_COLUMN[kind]
    return (root_kind, row[column])


def _piece(group: dict[str, list[_Row]]) -> Piece:
    snap = {kind: objects for kind, objects in _SnapshotBuilder(group).build().items() if objects}
    own = group["relation"] or group["type"] or group["function"]
    name = own[0].get("relname") or own[0].get("typname") or own[0].get("proname") if own else ""
    children = frozenset(
        (catalog, row[column]) for kind, (catalog, column) in _CHILD_COLUMN.items() for row in group[kind]
    )
    indexes = frozenset(row["relname"] for row in group["index"])
    return Piece(snap, name or "", own[0]["nspname"] if own else "", children, indexes)


def _read_catalog(cur: psycopg.Cursor[_Row], schemas: list[str], excluded: set[str]) -> dict[str, list[_Row]]:
    """The rows of every catalog query, by kind ("relation", "column", ... "grant")."""
    params: dict[str, Any] = {"schemas": schemas}
    cur.execute(_RELATIONS_SQL, params)
    relations = [row for row in cur.fetchall() if not _is_excluded(row, excluded)]
    params["rels"] = [row["oid"] for row in relations]
    params["colrels"] = [row["oid"] for row in relations if row["relkind"] != "S"]
    rows: dict[str, list[_Row]] = {"relation": relations}
    for kind, query in _OBJECT_QUERIES.items():
        cur.execute(query, params)
        rows[kind] = cur.fetchall()
    rows["function"] = [r for r in rows["function"] if r["proname"] not in BOOKKEEPING_FUNCTIONS]
    params["types"] = [row["oid"] for row in rows["type"]]
    params["funcs"] = [row["oid"] for row in rows["function"]]
    cur.execute(_GRANTS_SQL, params)
    rows["grant"] = cur.fetchall()
    return rows


def _is_excluded(row: _Row, excluded: set[str]) -> bool:
    """A relation of `excluded` (bare or schema-qualified), or a sequence one of them owns."""
    for nspname, relname in ((row["nspname"], row["relname"]), (row["own_nspname"], row["own_relname"])):
        if relname is not None and (relname in excluded or f"{nspname}.{relname}" in excluded):
            return True
    return False


# kind of rows -> (query, alias of the root's catalog in it, kind of root it is scoped to)
_SCOPED_QUERIES: dict[str, tuple[str, str, str]] = {
    "relation": (_RELATIONS_SQL, "c", "rel"),
    **{kind: (query, "", "rel") for kind, query in _OBJECT_QUERIES.items() if kind not in ("type", "function")},
    "type": (_TYPES_SQL, "t", "type"),
    "function": (_FUNCTIONS_SQL, "p", "func"),
    "grant": (_GRANTS_SQL, "", ""),
}


def _read_scoped(
    conn: psycopg.Connection[Any],
    schemas: list[str],
    excluded: set[str],
    only: dict[str, list[int]],
    prepare: bool | None,
) -> dict[str, list[_Row]]:
    """The rows of the roots in `only`: every query sent at once (one round trip, psycopg's pipeline),
    with the oids asked for; what the full read leaves out (excluded tables, columns of sequences,
    objects of other schemas or of extensions) is left out here from the rows that come back."""
    params: dict[str, Any] = {"schemas": schemas, "rels": only["rel"], "colrels": only["rel"]}
    params |= {"types": only["type"], "funcs": only["func"]}
    params |= {f"only_{kind}": oids for kind, oids in only.items()}
    cursors: dict[str, psycopg.Cursor[_Row]] = {}
    with conn.pipeline():
        for kind, (query, alias, root) in _SCOPED_QUERIES.items():
            if root and not only[root]:
                continue
            text = f"{query.rstrip()}\n  AND {alias}.oid = ANY(%(only_{root})s::pg_catalog.oid[])\n" if alias else query
            cursors[kind] = cur = conn.cursor(row_factory=dict_row)
            cur.execute(text, params, prepare=prepare)
    rows = {kind: cursors[kind].fetchall() if kind in cursors else [] for kind in _SCOPED_QUERIES}
    relations = [row for row in rows["relation"] if not _is_excluded(row, excluded)]
    kept = {"rel": {row["oid"] for row in relations}}
    tables = {row["oid"] for row in relations if row["relkind"] != "S"}
    rows["relation"] = relations
    rows["function"] = [r for r in rows["function"] if r["proname"] not in BOOKKEEPING_FUNCTIONS]
    kept |= {"type": {r["oid"] for r in rows["type"]}, "func": {r["oid"] for r in rows["function"]}}
    for kind in ("column", "constraint", "index", "trigger", "policy"):
        root_kind, column = _ROOT_COLUMN[kind]
        wanted = tables if kind == "column" else kept[root_kind]
        rows[kind] = [row for row in rows[kind] if row[column] in wanted]
    rows["grant"] = [row for row in rows["grant"] if row["oid"] in kept[_GRANT_ROOT[row["objclass"]]]]
    return rows


# ------------------------------------------------------- catalog rows -> descriptions


def _options(row: _Row) -> list[str]:
    return sorted(row["reloptions"]) if row["reloptions"] else []


def _table(row: _Row) -> dict[str, Any]:
    return {
        "kind": _TABLE_KINDS[row["relkind"]],
        "partition key": row["partkey"],
        "unlogged": row["relpersistence"] == "u",
        "row security": row["relrowsecurity"],
        "force row security": row["relforcerowsecurity"],
        "replica identity": _REPLIDENT.get(row["relreplident"], row["relreplident"]),
        "options": _options(row),
        "tablespace": row["tablespace"],
        "inherits": ([] if row["relispartition"] else [_qual_dotted(p) for p in row["parents"]]),
    }


def _view(row: _Row) -> dict[str, Any]:
    return {"definition": row["viewdef"], "options": _options(row)}


def _materialized_view(row: _Row) -> dict[str, Any]:
    return {
        "definition": row["viewdef"],
        "options": _options(row),
        "populated": row["relispopulated"],
        "tablespace": row["tablespace"],
    }


def _sequence(row: _Row) -> dict[str, Any]:
    owned_by = None
    if row["own_relname"] is not None:
        owned_by = f"{_qual(row['own_nspname'], row['own_relname'])}.{row['own_attname']}"
    return {
        "type": row["seqtype"],
        "start": row["seqstart"],
        "increment": row["seqincrement"],
        "min": row["seqmin"],
        "max": row["seqmax"],
        "cache": row["seqcache"],
        "cycle": row["seqcycle"],
        "owned by": owned_by,
        "identity": row["own_deptype"] == "i",
    }


_RELATIONS: dict[str, _Describe] = {
    "r": _table,
    "p": _table,
    "f": _table,
    "v": _view,
    "m": _materialized_view,
    "S": _sequence,
}


def _column(row: _Row) -> dict[str, Any]:
    generated = _GENERATED.get(row["attgenerated"]) if row["attgenerated"] else None
    return {
        "type": row["type"],
        "nullable": not row["attnotnull"],
        "default": None if generated else row["expr"],
        "generated": f"{row['expr']} {generated}" if generated else None,
        "identity": _IDENTITY.get(row["attidentity"]) if row["attidentity"] else None,
        "collation": row["collation"],
    }


def _constraint(row: _Row) -> dict[str, Any]:
    return {
        "type": _CONTYPES.get(row["contype"], row["contype"]),
        "definition": row["definition"],
        "inherited": row["inherited"],
    }


def _index(row: _Row) -> dict[str, Any]:
    return {
        "definition": row["definition"],
        "valid": row["indisvalid"],
        "constraint": row["conname"],
        "inherited": row["relispartition"],
    }


def _trigger(row: _Row) -> dict[str, Any]:
    return {
        "definition": row["definition"],
        "state": _TRIGGER_STATES.get(row["tgenabled"], row["tgenabled"]),
        "inherited": row["inherited"],
    }


def _policy(row: _Row) -> dict[str, Any]:
    return {
        "command": _POLCMDS.get(row["polcmd"], row["polcmd"]),
        "permissive": row["polpermissive"],
        "roles": list(row["roles"]),
        "using": row["using_expr"],
        "with check": row["check_expr"],
    }


# Objects that hang off a table, keyed "name on table":
# kind -> (the row's column with the table's oid, the one with the object's name, description).
_ON_TABLE: dict[str, tuple[str, str, _Describe]] = {
    "constraint": ("conrelid", "conname", _constraint),
    "index": ("indrelid", "relname", _index),
    "trigger": ("tgrelid", "tgname", _trigger),
    "policy": ("polrelid", "polname", _policy),
}


def _type(row: _Row) -> dict[str, Any]:
    typtype = row["typtype"]
    desc: dict[str, Any] = {"type": _TYPTYPES.get(typtype, typtype)}
    if typtype == "e":
        desc["labels"] = list(row["labels"])
    elif typtype == "d":
        desc.update(
            base=row["base"],
            nullable=not row["typnotnull"],
            default=row["typdefault"],
            constraints=list(row["constraints"]),
            collation=row["collation"],
        )
    elif typtype == "c":
        desc["attributes"] = list(row["attributes"])
    elif typtype == "r":
        desc["subtype"] = row["subtype"]
    return desc


def _function(row: _Row) -> dict[str, Any]:
    return {
        "kind": _PROKINDS.get(row["prokind"], row["prokind"]),
        "arguments": row["arguments"],
        "returns": row["result"],
        "language": row["lanname"],
        "volatility": _VOLATILITY.get(row["provolatile"], row["provolatile"]),
        "strict": row["proisstrict"],
        "security definer": row["prosecdef"],
        "leakproof": row["proleakproof"],
        "parallel": _PARALLEL.get(row["proparallel"], row["proparallel"]),
        "config": sorted(row["proconfig"]) if row["proconfig"] else [],
        "body": row["body"],
    }


class _SnapshotBuilder:
    """Catalog rows to a snapshot.

    Grant rows point at their object by oid; ``refs`` remembers what each object is
    called ("table tasks", "column tasks.state") so a grant can name it.
    """

    def __init__(self, rows: dict[str, list[_Row]]) -> None:
        self.rows = rows
        self.snap: Snapshot = {kind: {} for kind in KINDS}
        relations = rows["relation"]
        self.rel_key = {row["oid"]: _qual(row["nspname"], row["relname"]) for row in relations}
        self.rel_kind = {row["oid"]: row["relkind"] for row in relations}
        # (objclass of _GRANTS_SQL, oid, column number or 0) -> "kind name"
        self.refs: dict[tuple[str, int, int], str] = {}

    def build(self) -> Snapshot:
        for row in self.rows["relation"]:
            self.relation(row)
        self.columns(self.rows["column"])
        for kind, (relcol, namecol, describe) in _ON_TABLE.items():
            self.on_table(kind, self.rows[kind], relcol, namecol, describe)
        for row in self.rows["type"]:
            self.schema_object("type", "type", row, _qual(row["nspname"], row["typname"]), _type)
        for row in self.rows["function"]:
            key = f"{_qual(row['nspname'], row['proname'])}({row['identity']})"
            self.schema_object("function", "func", row, key, _function)
        for row in self.rows["grant"]:
            self.grant(row)
        return {kind: dict(sorted(objs.items())) for kind, objs in self.snap.items()}

    def comment(self, ref: str, text: str | None, table: str | None = None) -> None:
        if text is None:
            return
        desc: dict[str, Any] = {"object": ref, "text": text}
        if table is not None:
            desc["table"] = table
        self.snap["comment"][f"on {ref}"] = desc

    def relation(self, row: _Row) -> None:
        oid, relkind = row["oid"], row["relkind"]
        key = self.rel_key[oid]
        ref = self.refs[("rel", oid, 0)] = f"{_RELKINDS[relkind]} {key}"
        self.comment(ref, row["comment"])
        self.snap[_RELKINDS[relkind]][key] = _RELATIONS[relkind](row)
        if relkind in _TABLE_KINDS and row["relispartition"] and row["parents"]:
            parent = _qual_dotted(row["parents"][0])
            self.snap["partition"][f"{key} of {parent}"] = {"child": key, "parent": parent, "bound": row["bound"]}

    def columns(self, rows: list[_Row]) -> None:
        """Table columns, numbered 1, 2, ... skipping dropped ones, so a rebuilt table compares equal.

        Columns of (materialized) views count only for their comments and grants.
        """
        position: dict[int, int] = defaultdict(int)
        for row in rows:
            oid = row["attrelid"]
            table = self.rel_key[oid]
            ref = self.refs[("col", oid, row["attnum"])] = f"column {table}.{row['attname']}"
            self.comment(ref, row["comment"], table)
            if self.rel_kind[oid] not in _TABLE_KINDS:
                continue
            position[oid] += 1
            desc = {"table": table, "position": position[oid], **_column(row)}
            self.snap["column"][f"{table}.{row['attname']}"] = desc

    def on_table(self, kind: str, rows: list[_Row], relcol: str, namecol: str, describe: _Describe) -> None:
        for row in rows:
            table = self.rel_key[row[relcol]]
            key = f"{row[namecol]} on {table}"
            self.snap[kind][key] = {"table": table, **describe(row)}
            self.comment(f"{kind} {key}", row["comment"], table)

    def schema_object(self, kind: str, objclass: str, row: _Row, key: str, describe: _Describe) -> None:
        ref = self.refs[(objclass, row["oid"], 0)] = f"{kind} {key}"
        self.snap[kind][key] = describe(row)
        self.comment(ref, row["comment"])

    def grant(self, row: _Row) -> None:
        ref = self.refs[(row["objclass"], row["oid"], row["subid"])]
        privilege, grantee = row["privilege_type"], row["grantee"]
        desc: dict[str, Any] = {"object": ref, "privilege": privilege, "grantee": grantee}
        if row["objclass"] == "col":
            desc["table"] = self.rel_key[row["oid"]]
        if row["revoked"]:
            desc["revoked"] = True
            self.snap["grant"][f"{privilege} on {ref} revoked from {grantee}"] = desc
        else:
            desc["grantable"] = row["is_grantable"]
            self.snap["grant"][f"{privilege} on {ref} to {grantee}"] = desc


# ----------------------------------------------------------------------------- diff


def _one_line(text: str) -> str:
    """Every run of white space (line breaks too) as one space."""
    return re.sub(r"\s+", " ", text)


def _kind_order(kind: str) -> tuple[int, str]:
    """Kinds in the order of KINDS ("enum label" after "type"); unknown ones last."""
    return (_ORDER.get(kind, 99), kind)


def _fmt(value: Any) -> str:
    """Show a description value the way a reader expects (SQL-ish, not Python)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(f"'{v}'" if isinstance(v, str) else _fmt(v) for v in value) + "]"
    if isinstance(value, str):
        return _one_line(value).strip()
    return json.dumps(value, sort_keys=True)


def _fmt_pair(before: Any, after: Any, *, limit: int = 120, context: int = 30) -> str:
    """Render "a -> b", cutting long values down to the part around the first difference."""
    old, new = _fmt(before), _fmt(after)
    if len(old) <= limit and len(new) <= limit:
        return f"{old} -> {new}"
    prefix = 0
    while prefix < min(len(old), len(new)) and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(old), len(new)) - prefix and old[len(old) - 1 - suffix] == new[len(new) - 1 - suffix]:
        suffix += 1

    def cut(text: str) -> str:
        start = max(prefix - context, 0)
        end = min(len(text) - suffix + context, len(text))
        return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")

    return f"{cut(old)} -> {cut(new)}"


def _parents(kind: str, desc: Any) -> list[str]:
    """Objects whose appearance/disappearance already implies this one's."""
    if not isinstance(desc, dict):
        return []
    refs: list[str] = []
    table = desc.get("table")
    if table is not None:
        refs += [f"table {table}", f"view {table}", f"materialized view {table}"]
        if kind == "index" and desc.get("constraint"):
            refs.append(f"constraint {desc['constraint']} on {table}")
    if kind in ("comment", "grant") and desc.get("object"):
        refs.append(desc["object"])
    if kind == "sequence" and desc.get("owned by"):
        owner = desc["owned by"]
        refs += [f"column {owner}", f"table {owner.rpartition('.')[0]}"]
    return refs


def _label_changes(key: str, old: list[str], new: list[str]) -> list[Difference]:
    """Enum labels added and removed, one difference a label."""
    added = [Difference("enum label", f"'{label}' on type {key}", "left behind") for label in new if label not in old]
    gone = [Difference("enum label", f"'{label}' on type {key}", "missing") for label in old if label not in new]
    return added + gone


def _changes(kind: str, key: str, old: Any, new: Any) -> list[Difference]:
    """How one object present on both sides differs: attribute by attribute."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [Difference(kind, key, "changed", _fmt_pair(old, new))]
    found = [
        Difference(kind, key, "changed", f"{attr} changed: {_fmt_pair(old.get(attr), new.get(attr))}")
        for attr in sorted(old.keys() | new.keys())
        if old.get(attr) != new.get(attr)
    ]
    if kind == "type" and "labels" in old and "labels" in new:
        found += _label_changes(key, old["labels"], new["labels"])
    return found


def _sort_key(d: Difference) -> tuple[Any, ...]:
    return (*_kind_order(d.kind), d.name, _CHANGE_ORDER.get(d.change, 9), d.detail)


def diff(expected: Snapshot, actual: Snapshot) -> list[Difference]:
    """Everything ``actual`` (after) has that ``expected`` (before) lacks, and vice versa.

    Objects that only come and go with a parent (the columns, indexes, comments... of
    a left-behind table) are not listed separately, so the report names causes, not
    every symptom.  Enum label changes are reported per label too, since the usual
    culprit is an ``ALTER TYPE ... ADD VALUE`` that a down migration cannot undo.
    """
    found: list[tuple[Difference, Any]] = []
    for kind in sorted(set(expected) | set(actual), key=_kind_order):
        before, after = expected.get(kind, {}), actual.get(kind, {})
        found += [(Difference(kind, key, "left behind"), after[key]) for key in after.keys() - before.keys()]
        found += [(Difference(kind, key, "missing"), before[key]) for key in before.keys() - after.keys()]
        for key in before.keys() & after.keys():
            if before[key] != after[key]:
                found += [(d, None) for d in _changes(kind, key, before[key], after[key])]

    implied = {change: {d.subject for d, _ in found if d.change == change} for change in ("left behind", "missing")}
    result = [
        d
        for d, desc in found
        if d.change == "changed" or not any(ref in implied[d.change] for ref in _parents(d.kind, desc))
    ]
    return sorted(result, key=_sort_key)


def object_names(snap: Snapshot) -> list[str]:
    """Flat "kind name" list of every object, e.g. to prove nothing of ours remains."""
    kinds = sorted(snap, key=_kind_order)
    return [f"{kind} {key}" for kind in kinds for key in sorted(snap[kind])]


# ------------------------------------------------------------------------ rendering


def render_json(snap: Snapshot) -> str:
    """Stable JSON for storing a snapshot and diffing it later."""
    return json.dumps(snap, sort_keys=True, indent=2)


def _cell(text: Any) -> str:
    """Text on one line that does not end a Markdown table cell."""
    return _one_line(str(text)).replace("|", "\\|")


def _code(text: Any) -> str:
    """Inline code that survives backticks and table pipes in the content."""
    value = _cell(text).strip()
    if "`" in value:
        return f"`` {value} ``"
    return f"`{value}`"


def _fence(text: str, max_lines: int | None = None) -> list[str]:
    """A fenced SQL block longer than any backtick run inside it."""
    lines = textwrap.dedent(text.strip("\n")).splitlines()
    lines = [line.rstrip() for line in lines]
    if max_lines is not None and len(lines) > max_lines:
        hidden = len(lines) - max_lines
        lines = [*lines[:max_lines], f"-- … {hidden} more line{'s' * (hidden != 1)}"]
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}sql", *lines, fence]


def _sentence(facts: list[str]) -> str:
    return ", ".join(facts) + "."


def _bullets(items: list[str]) -> list[str]:
    return [f"- {_code(item)}" for item in items]


def _options_fact(options: list[str]) -> str:
    return "Options: " + ", ".join(_code(o) for o in options) + "."


_Grouped = dict[str, list[tuple[str, dict[str, Any]]]]


def _name_on_table(key: str, table: str) -> str:
    """The name in a key such as "ix_tasks_state on tasks"."""
    return key.rpartition(" on ")[0]


def _column_name(key: str, table: str) -> str:
    """The name in a key such as "tasks.state"."""
    return key[len(table) + 1 :]


def _by_table(objs: dict[str, Any], name_of: Callable[[str, str], str] = _name_on_table) -> _Grouped:
    """Objects that belong to a table, by table: (name, description) pairs in key order."""
    grouped: _Grouped = defaultdict(list)
    for key, desc in sorted(objs.items()):
        grouped[desc["table"]].append((name_of(key, desc["table"]), desc))
    return grouped


def _grant_texts(grants: dict[str, Any]) -> dict[str, list[str]]:
    """Each granted or revoked privilege, phrased, by the object it is on."""
    texts: dict[str, list[str]] = defaultdict(list)
    for desc in grants.values():
        if desc.get("revoked"):
            text = f"{desc['privilege']} revoked from {desc['grantee']}"
        else:
            option = " with grant option" if desc.get("grantable") else ""
            text = f"{desc['privilege']} to {desc['grantee']}{option}"
        texts[desc["object"]].append(text)
    return texts


def _partitions_by_parent(partitions: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for desc in sorted(partitions.values(), key=lambda d: d["child"]):
        children[desc["parent"]].append(desc)
    return children


def _table_facts(desc: dict[str, Any]) -> list[str]:
    facts = []
    if desc["kind"] == "foreign table":
        facts.append(desc["kind"].capitalize() + ".")
    if desc["partition key"]:
        facts.append(f"Partitioned by {_code(desc['partition key'])}.")
    if desc["inherits"]:
        facts.append("Inherits " + ", ".join(_code(p) for p in desc["inherits"]) + ".")
    if desc["unlogged"]:
        facts.append("Unlogged.")
    if desc["row security"]:
        forced = " (forced for the owner too)" if desc["force row security"] else ""
        facts.append(f"Row-level security enabled{forced}.")
    if desc["replica identity"] != "default":
        facts.append(f"Replica identity: {desc['replica identity']}.")
    if desc["options"]:
        facts.append(_options_fact(desc["options"]))
    if desc["tablespace"]:
        facts.append(f"Tablespace: {_code(desc['tablespace'])}.")
    return facts


def _column_default(desc: dict[str, Any]) -> str:
    if desc["identity"]:
        return f"identity ({desc['identity']})"
    if desc["generated"]:
        return f"generated: {_code(desc['generated'])}"
    if desc["default"] is not None:
        return _code(desc["default"])
    return ""


def _column_cells(col: str, desc: dict[str, Any]) -> list[str]:
    """Column, Type, Nullable and Default of a column's row."""
    type_text = desc["type"]
    if desc["collation"]:
        type_text += f' COLLATE "{desc["collation"]}"'
    return [_code(col), _code(type_text), "null" if desc["nullable"] else "not null", _column_default(desc)]


# What follows the name of a table's constraint, index or trigger, before its definition.
_ATTACHED_FLAGS: dict[str, Callable[[dict[str, Any]], str]] = {
    "constraint": lambda desc: f" ({desc['type']})",
    "index": lambda desc: "" if desc["valid"] else " **(invalid)**",
    "trigger": lambda desc: "" if desc["state"] == "enabled" else f" **({desc['state']})**",
}


def _policy_text(name: str, desc: dict[str, Any]) -> str:
    kind = "permissive" if desc["permissive"] else "restrictive"
    roles = ", ".join(desc["roles"])
    text = f"- policy {_code(name)} ({kind}, {desc['command']}, to {roles})"
    if desc["using"] is not None:
        text += f" using {_code(desc['using'])}"
    if desc["with check"] is not None:
        text += f" with check {_code(desc['with check'])}"
    return text


def _domain_facts(desc: dict[str, Any]) -> list[str]:
    facts = [f"Domain over {_code(desc['base'])}"]
    if desc.get("collation"):
        facts.append(f"collation {_code(desc['collation'])}")
    if not desc["nullable"]:
        facts.append("not null")
    if desc["default"] is not None:
        facts.append(f"default {_code(desc['default'])}")
    return facts


def _sequence_facts(desc: dict[str, Any]) -> list[str]:
    facts = [
        f"{_code(desc['type'])}",
        f"start {desc['start']}",
        f"increment {desc['increment']}",
        f"min {desc['min']}",
        f"max {desc['max']}",
        f"cache {desc['cache']}",
        "cycle" if desc["cycle"] else "no cycle",
    ]
    if desc["owned by"]:
        how = "identity of" if desc["identity"] else "owned by"
        facts.append(f"{how} {_code(desc['owned by'])}")
    return facts


def _function_facts(desc: dict[str, Any]) -> list[str]:
    facts = [desc["kind"].capitalize()]
    if desc["returns"] is not None:
        facts.append(f"returns {_code(desc['returns'])}")
    facts.append(f"language {_code(desc['language'])}")
    facts.append(desc["volatility"])
    if desc["strict"]:
        facts.append("strict")
    if desc["security definer"]:
        facts.append("**security definer**")
    if desc["leakproof"]:
        facts.append("leakproof")
    if desc["parallel"] != "unsafe":
        facts.append(f"parallel {desc['parallel']}")
    facts.extend(f"set {_code(c)}" for c in desc["config"])
    return facts


def render_markdown(
    snap: Snapshot,
    *,
    title: str = "Schema reference",
    max_body_lines: int | None = 40,
) -> str:
    """Human reference of a snapshot: same schema in, byte-identical text out.

    ``max_body_lines`` trims function bodies (``None``: whole body, ``0``: no bodies).
    """
    return _Markdown(snap, max_body_lines).render(title)


class _Markdown:
    """One rendering: the snapshot indexed by object and by table, and the lines so far."""

    def __init__(self, snap: Snapshot, max_body_lines: int | None) -> None:
        self.snap = snap
        self.max_body_lines = max_body_lines
        self.tables = snap.get("table", {})
        self.comments = {d["object"]: d["text"] for d in snap.get("comment", {}).values()}
        self.grants = _grant_texts(snap.get("grant", {}))
        self.on_table = {kind: _by_table(snap.get(kind, {})) for kind in (*_ATTACHED_FLAGS, "policy")}
        self.columns = _by_table(snap.get("column", {}), _column_name)
        self.children = _partitions_by_parent(snap.get("partition", {}))
        self.partitions = {desc["child"] for group in self.children.values() for desc in group}
        self.out: list[str] = []

    def render(self, title: str) -> str:
        self.para(f"# {title}")
        self.section("Tables", "table", self.tables, self.table_body, skip=self.partitions)
        types = self.snap.get("type", {})
        self.section("Enums", "type", {k: v for k, v in types.items() if v["type"] == "enum"}, self.enum_body)
        self.section("Other types", "type", {k: v for k, v in types.items() if v["type"] != "enum"}, self.type_body)
        self.section("Sequences", "sequence", self.snap.get("sequence", {}), self.sequence_body)
        self.section("Functions", "function", self.snap.get("function", {}), self.function_body)
        self.section("Views", "view", self.snap.get("view", {}), self.view_body)
        self.section("Materialized views", "materialized view", self.snap.get("materialized view", {}), self.view_body)
        while self.out and self.out[-1] == "":
            self.out.pop()
        return "\n".join(self.out) + "\n"

    def para(self, *lines: str) -> None:
        self.out.extend([*lines, ""])

    def section(
        self,
        heading: str,
        kind: str,
        objs: dict[str, Any],
        body: Callable[[str, dict[str, Any]], None],
        skip: Collection[str] = (),
    ) -> None:
        """A "## heading" and, per object: a "###" heading, its comment, `body`, its grants."""
        if not objs:
            return
        self.para(f"## {heading}")
        for key in sorted(objs):
            if key in skip:
                continue
            ref = f"{kind} {key}"
            self.para(f"### {_code(key)}")
            if ref in self.comments:
                self.para(self.comments[ref])
            body(key, objs[key])
            if self.grants.get(ref):
                self.para("Grants: " + "; ".join(sorted(self.grants[ref])) + ".")

    def note(self, kind: str, name: str, table: str) -> str:
        text = self.comments.get(f"{kind} {name} on {table}")
        return f" — {text}" if text else ""

    def attached(self, table: str, local_only: bool, indent: str = "") -> list[str]:
        """One line per constraint, index, trigger and policy of `table`."""
        lines: list[str] = []
        for kind, flag in _ATTACHED_FLAGS.items():
            for name, desc in self.on_table[kind].get(table, []):
                if not (local_only and desc["inherited"]):
                    text = f"{indent}- {kind} {_code(name)}{flag(desc)}: {_code(desc['definition'])}"
                    lines.append(text + self.note(kind, name, table))
        for name, desc in self.on_table["policy"].get(table, []):
            lines.append(indent + _policy_text(name, desc) + self.note("policy", name, table))
        return lines

    def attached_para(self, table: str) -> None:
        lines = self.attached(table, local_only=False)
        if lines:
            self.para(*lines)

    def partition_lines(self, parent: str, indent: str) -> list[str]:
        """The partitions of `parent`, each with what it has of its own, and theirs below them."""
        lines: list[str] = []
        for desc in self.children.get(parent, []):
            child = desc["child"]
            text = f"{indent}- {_code(child)}: {_code(desc['bound'])}"
            if self.tables.get(child, {}).get("partition key"):
                text += f", partitioned by {_code(self.tables[child]['partition key'])}"
            lines.append(text)
            lines.extend(self.attached(child, local_only=True, indent=indent + "  "))
            lines.extend(self.partition_lines(child, indent + "  "))
        return lines

    def column_table(self, table: str) -> None:
        cols = sorted(self.columns.get(table, []), key=lambda item: item[1]["position"])
        if not cols:
            return
        with_notes = any(f"column {table}.{col}" in self.comments for col, _ in cols)
        header = "| Column | Type | Nullable | Default |" + (" Comment |" if with_notes else "")
        self.out.extend([header, "|---" * (5 if with_notes else 4) + "|"])
        for col, desc in cols:
            cells = _column_cells(col, desc)
            if with_notes:
                cells.append(_cell(self.comments.get(f"column {table}.{col}", "")))
            self.out.append("| " + " | ".join(cells) + " |")
        self.out.append("")

    def table_body(self, name: str, desc: dict[str, Any]) -> None:
        facts = _table_facts(desc)
        if facts:
            self.para(" ".join(facts))
        self.column_table(name)
        self.attached_para(name)
        if self.children.get(name):
            self.para("Partitions:", "", *self.partition_lines(name, ""))

    def enum_body(self, key: str, desc: dict[str, Any]) -> None:
        self.para("Labels, in order: " + ", ".join(_code(label) for label in desc["labels"]) + ".")

    def type_body(self, key: str, desc: dict[str, Any]) -> None:
        if desc["type"] == "domain":
            self.para(_sentence(_domain_facts(desc)))
            if desc["constraints"]:
                self.para(*_bullets(desc["constraints"]))
        elif desc["type"] == "composite":
            self.para("Composite type:", "", *_bullets(desc["attributes"]))
        elif desc["type"] == "range":
            self.para(f"Range over {_code(desc['subtype'])}.")
        else:
            self.para(f"{desc['type'].capitalize()} type.")

    def sequence_body(self, key: str, desc: dict[str, Any]) -> None:
        self.para(_sentence(_sequence_facts(desc)))

    def function_body(self, key: str, desc: dict[str, Any]) -> None:
        self.para(_sentence(_function_facts(desc)))
        if desc["arguments"]:
            self.para(f"Arguments: {_code(desc['arguments'])}.")
        if desc["body"] and self.max_body_lines != 0:
            self.para(*_fence(desc["body"], self.max_body_lines))

    def view_body(self, key: str, desc: dict[str, Any]) -> None:
        if desc["options"]:
            self.para(_options_fact(desc["options"]))
        if desc.get("populated") is False:
            self.para("Not populated (created WITH NO DATA or not yet refreshed).")
        self.para(*_fence(desc["definition"]))
        self.attached_para(key)


# ------------------------------------------------------------------------- Mermaid
#
# The renderer reads keys and foreign keys back from the definitions PostgreSQL prints
# (pg_get_constraintdef, pg_get_indexdef), so the snapshot needs nothing more than it has.

_IDENT = r'(?:"(?:[^"]|"")*"|[^\s(),."]+)'
_UNIQUE_INDEX = re.compile(rf"^CREATE UNIQUE INDEX {_IDENT} ON (?:ONLY )?{_IDENT}(?:\.{_IDENT})? USING {_IDENT} ")
_REFERENCES = re.compile(rf"\s*REFERENCES ({_IDENT}(?:\.{_IDENT})?)\(")
_KEY_ELEMENT = re.compile(rf"^(?:PERIOD\s+)?({_IDENT})(?:\s.*)?$", re.S)
# Multi-word type names as one word (PostgreSQL's own short names where it has them).
_MERMAID_TYPES = {
    "timestamp with time zone": "timestamptz",
    "timestamp without time zone": "timestamp",
    "time with time zone": "timetz",
    "time without time zone": "time",
    "character varying": "varchar",
    "character": "char",
    "bit varying": "varbit",
    "double precision": "float8",
}
_MERMAID_KEYWORDS = {"PK", "FK", "UK"}  # a bare attribute word that Mermaid would read as a key
_MERMAID_COMMENT_MAX = 80


def _scan(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, parenthesis depth) of each character from `start`, skipping quoted text."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""  # a doubled quote closes and reopens: same outcome
            continue
        if ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        yield i, ch, depth


def _group(text: str, start: int) -> tuple[str, int] | None:
    """What the first parentheses at or after `start` enclose, and the index after them."""
    opened = None
    for i, ch, depth in _scan(text, start):
        if ch == "(" and opened is None:
            opened = i
        elif ch == ")" and depth == 0 and opened is not None:
            return text[opened + 1 : i], i + 1
    return None


def _split_top(text: str, sep: str) -> list[str]:
    """`text` cut at each `sep` outside quotes and parentheses."""
    cuts = [i for i, ch, depth in _scan(text) if ch == sep and depth == 0]
    bounds = [-1, *cuts, len(text)]
    return [text[a + 1 : b].strip() for a, b in zip(bounds, bounds[1:], strict=False)]


def _unquote(ident: str) -> str:
    if len(ident) >= 2 and ident.startswith('"') and ident.endswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident


def _key_columns(inner: str) -> list[str] | None:
    """The columns of a key's column list; None when one of its elements is an expression."""
    names = []
    for element in _split_top(inner, ","):
        match = _KEY_ELEMENT.match(element)
        if match is None:
            return None
        names.append(_unquote(match[1]))
    return names


def _constraint_columns(definition: str) -> list[str] | None:
    """The columns of "PRIMARY KEY (a, b)", "UNIQUE NULLS NOT DISTINCT (a)" and the like."""
    group = _group(definition, 0)
    return _key_columns(group[0]) if group else None


def _unique_index_columns(definition: str) -> list[str] | None:
    """The columns of a unique index over plain columns, without WHERE; None for any other index."""
    match = _UNIQUE_INDEX.match(definition)
    group = _group(definition, match.end()) if match else None
    if group is None or " WHERE " in definition[group[1] :]:
        return None
    return _key_columns(group[0])


def _foreign_key(definition: str) -> tuple[list[str], str] | None:
    """The referencing columns and the referenced table (a snapshot key) of a foreign key's definition."""
    if not definition.startswith("FOREIGN KEY"):
        return None
    group = _group(definition, len("FOREIGN KEY"))
    match = _REFERENCES.match(definition, group[1]) if group else None
    columns = _key_columns(group[0]) if group else None
    if match is None or not columns:
        return None
    parts = [_unquote(p) for p in _split_top(match[1], ".")]
    return columns, (parts[0] if len(parts) == 1 else _qual(parts[0], parts[1]))


def _mermaid_word(text: str) -> str:
    """`text` as one attribute word Mermaid reads the same way in every version: [A-Za-z_][A-Za-z0-9_]*."""
    word = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "_"
    if word[0].isdigit():
        word = "_" + word
    return word + "_" if word.upper() in _MERMAID_KEYWORDS else word


def _mermaid_type(sql_type: str) -> str:
    """A column's type as one Mermaid word.

    ``timestamp with time zone`` -> ``timestamptz`` (and the other multi-word names to
    PostgreSQL's short ones), modifiers as suffixes (``character varying(255)`` ->
    ``varchar_255``, ``numeric(10,2)`` -> ``numeric_10_2``), one ``_array`` per ``[]``
    (``text[]`` -> ``text_array``), and any other character outside ``[A-Za-z0-9_]``
    as ``_`` (``other.kind`` -> ``other_kind``).
    """
    text = sql_type.strip()
    arrays = 0
    while text.endswith("[]"):
        text, arrays = text[:-2].rstrip(), arrays + 1
    modifiers: list[str] = []
    group = _group(text, 0) if "(" in text else None
    if group is not None:
        inner, end = group
        modifiers = [m.strip() for m in inner.split(",") if m.strip()]
        text = (text[: end - len(inner) - 2] + " " + text[end:]).strip()
    text = _MERMAID_TYPES.get(" ".join(text.split()), text)
    return _mermaid_word("_".join([text, *modifiers] + ["array"] * arrays))


def _mermaid_quoted(text: str) -> str:
    """A quoted entity name or label: the characters a quoted Mermaid string cannot hold become "_"."""
    return '"' + re.sub(r'["%\\\r\n\v\b]', "_", text) + '"'


def _mermaid_comment(text: str) -> str:
    text = _one_line(text).strip().replace('"', "'")
    if len(text) > _MERMAID_COMMENT_MAX:
        text = text[: _MERMAID_COMMENT_MAX - 1].rstrip() + "…"
    return f'"{text}"'


@dataclass(frozen=True)
class _Relationship:
    parent: str
    child: str
    label: str
    mandatory: bool  # every referencing column NOT NULL: each child row has exactly one parent
    one_to_one: bool  # a unique key of the child lies within the referencing columns
    identifying: bool  # the referencing columns lie within the child's primary key

    def line(self) -> str:
        left = "||" if self.mandatory else "|o"
        right = "o|" if self.one_to_one else "o{"
        link = "--" if self.identifying else ".."
        parent, child = _mermaid_quoted(self.parent), _mermaid_quoted(self.child)
        return f"    {parent} {left}{link}{right} {child} : {_mermaid_quoted(self.label)}"


def render_mermaid(snap: Snapshot) -> str:
    """Tables and foreign keys as a Mermaid ``erDiagram``: same schema in, byte-identical text out.

    * One entity per table, sorted by name, always quoted (``"users"``, ``"audit.log"``): a
      quoted name may hold a schema's dot and cannot clash with Mermaid's keywords (a table
      called ``end``, ``one`` or ``style`` breaks an unquoted diagram).
    * Partitions are folded into their root table, as in the Markdown reference: no entity of
      their own, a ``%%`` comment over the table names them.  The foreign keys PostgreSQL clones
      for partitions (of the referencing or the referenced table) are left out, the one they were
      cloned from stands for them; a foreign key only a partition has, or one that points at a
      partition, is drawn at the root table, its label saying where it is ("fk (on events_2024)").
    * Attributes are the columns in table order: ``type name keys "comment"``, the type one word
      (:func:`_mermaid_type`), ``PK`` for primary-key columns, ``FK`` for referencing ones, ``UK``
      for a column that is a unique key alone (a unique constraint or a unique index without
      WHERE); the column's comment, if it has one, cut to 80 characters.
    * One relationship per foreign key, labelled with its name, the referenced table on the left:
      ``||`` when every referencing column is NOT NULL, ``|o`` otherwise; ``o|`` (one to one)
      when a unique key of the referencing table lies within its columns, ``o{`` otherwise; a
      solid line (identifying) when they lie within its primary key, dashed otherwise.
    """
    return _Mermaid(snap).render()


class _Mermaid:
    """One rendering: keys and foreign keys of each table, read from their definitions."""

    def __init__(self, snap: Snapshot) -> None:
        self.tables = snap.get("table", {})
        self.columns = _by_table(snap.get("column", {}), _column_name)
        self.comments = {d["object"]: d["text"] for d in snap.get("comment", {}).values()}
        self.parent_of = {d["child"]: d["parent"] for d in snap.get("partition", {}).values()}
        self.primary: dict[str, set[str]] = defaultdict(set)
        self.unique: dict[str, list[frozenset[str]]] = defaultdict(list)
        for _name, desc in sorted(snap.get("constraint", {}).items()):
            if desc["type"] == "primary key":
                self.primary[desc["table"]].update(_constraint_columns(desc["definition"]) or ())
        for desc in snap.get("index", {}).values():
            columns = _unique_index_columns(desc["definition"])
            if columns:
                self.unique[desc["table"]].append(frozenset(columns))
        self.referencing: dict[str, set[str]] = defaultdict(set)  # drawn table -> its FK columns
        self.relationships = self.find_relationships(snap.get("constraint", {}))

    def root(self, table: str) -> str:
        seen = {table}
        while table in self.parent_of and self.parent_of[table] not in seen:
            table = self.parent_of[table]
            seen.add(table)
        return table

    def find_relationships(self, constraints: dict[str, Any]) -> list[_Relationship]:
        found: dict[tuple[str, str, str], _Relationship] = {}
        for key, desc in sorted(constraints.items()):
            table = desc["table"]
            # Inherited: PostgreSQL's clone for a partition of the referencing or the referenced
            # table; the foreign key it was cloned from stands for it.
            if desc["type"] != "foreign key" or desc["inherited"]:
                continue
            parsed = _foreign_key(desc["definition"])
            if parsed is None:
                continue
            columns, referenced = parsed
            child, parent = self.root(table), self.root(referenced)
            name = _name_on_table(key, table)
            notes = [f"on {table}"] if child != table else []
            notes += [f"to {referenced}"] if parent != referenced else []
            label = f"{name} ({', '.join(notes)})" if notes else name
            nullable = {col for col, c in self.columns.get(table, []) if c["nullable"]}
            self.referencing[child].update(columns)
            found[(child, label, parent)] = _Relationship(
                parent=parent,
                child=child,
                label=label,
                mandatory=not nullable.intersection(columns),
                one_to_one=any(k <= set(columns) for k in self.unique.get(table, [])),
                identifying=set(columns) <= self.primary.get(table, set()),
            )
        return [found[k] for k in sorted(found)]

    def render(self) -> str:
        out = ["erDiagram"]
        for table in sorted(self.tables):
            if table not in self.parent_of:
                out.extend(self.entity(table))
        out.extend(r.line() for r in self.relationships)
        return "\n".join(out) + "\n"

    def descendants(self, table: str) -> list[str]:
        return sorted(child for child in self.parent_of if child != table and self.root(child) == table)

    def entity(self, table: str) -> list[str]:
        lines = []
        key = self.tables[table].get("partition key")
        if key:
            lines.append(f"    %% {table}: partitioned by {_one_line(key)}")
            children = self.descendants(table)
            if children:
                lines.append(f"    %% folded in: {', '.join(children)}")
        columns = sorted(self.columns.get(table, []), key=lambda item: item[1]["position"])
        if not columns:
            return [*lines, f"    {_mermaid_quoted(table)} {{", "    }"]
        lines.append(f"    {_mermaid_quoted(table)} {{")
        single_unique = {next(iter(k)) for k in self.unique.get(table, []) if len(k) == 1}
        for col, desc in columns:
            keys = [
                mark
                for mark, present in (
                    ("PK", col in self.primary.get(table, set())),
                    ("FK", col in self.referencing.get(table, set())),
                    ("UK", col in single_unique and self.primary.get(table) != {col}),
                )
                if present
            ]
            text = f"        {_mermaid_type(desc['type'])} {_mermaid_word(col)}"
            if keys:
                text += " " + ", ".join(keys)
            notes = [] if _mermaid_word(col) == col else [f"column {col}"]
            if f"column {table}.{col}" in self.comments:
                notes.append(self.comments[f"column {table}.{col}"])
            if notes:
                text += " " + _mermaid_comment(": ".join(notes))
            lines.append(text)
        lines.append("    }")
        return lines


SCHEMA_FORMATS: tuple[str, ...] = ("markdown", "json", "mermaid")


def schema_reference(conn: psycopg.Connection, *, as_json: bool = False, format: str | None = None) -> str:
    """The text of `z4j-migrate schema` and docs/schema.md: one of SCHEMA_FORMATS.

    ``format`` wins over ``as_json`` (the older spelling of ``format="json"``); the
    default is Markdown.  Session settings are pinned first so the text does not depend
    on who runs it (time zone in partition bounds, search_path in type names).
    """
    chosen = format or ("json" if as_json else "markdown")
    if chosen not in SCHEMA_FORMATS:
        raise ValueError(f"unknown schema format {chosen!r}: one of {', '.join(SCHEMA_FORMATS)}")
    conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET search_path = public")
    snap = collapse_daily_partitions(snapshot(conn))
    if chosen == "json":
        return render_json(snap)
    if chosen == "mermaid":
        return render_mermaid(snap)
    return render_markdown(snap, title="z4j schema reference")


_DAILY = re.compile(r"^(?P<parent>.+)_\d{4}_\d{2}_\d{2}$")


def collapse_daily_partitions(snap: Snapshot) -> Snapshot:
    """Fold date-named daily partitions into one line per parent.

    Their names and bounds change with the calendar, so a reference that lists
    them would differ from one day to the next; their shape does not.
    """
    daily: dict[str, str] = {}
    for desc in snap.get("partition", {}).values():
        match = _DAILY.match(desc["child"])
        if match and match["parent"] == desc["parent"]:
            daily[desc["child"]] = desc["parent"]
    if not daily:
        return snap

    def belongs(key: str) -> bool:
        for child in daily:
            if (
                key == child
                or key.startswith(f"{child}.")
                or key.endswith(f" on {child}")
                or key.startswith(f"{child} of ")
            ):
                return True
        return False

    out: Snapshot = {kind: {k: v for k, v in objects.items() if not belongs(k)} for kind, objects in snap.items()}
    counts: dict[str, int] = {}
    for parent in daily.values():
        counts[parent] = counts.get(parent, 0) + 1
    for parent, count in counts.items():
        child = f"{parent}_YYYY_MM_DD"
        out.setdefault("partition", {})[f"{child} of {parent}"] = {
            "child": child,
            "parent": parent,
            "bound": f"FOR VALUES FROM ('<day>') TO ('<day + 1>'): {count} daily partitions at creation",
        }
    return out
