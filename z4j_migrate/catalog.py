"""Snapshot "our" schema from the PostgreSQL system catalogs, diff and render it.

One snapshot function is shared by ``verify`` (prove a down migration restores the
schema the up found), ``schema`` (generate docs/schema.md) and the tests, so all three
agree on what counts as part of the schema.

Design notes:

* A snapshot is plain JSON data: ``{kind: {key: description}}``.  Keys are readable
  names ("tasks.state", "ix_tasks_state on tasks") so a difference can be reported
  without looking anything up, and a snapshot can be stored with :func:`render_json`
  and compared later.
* Objects owned by extensions (``pg_depend.deptype = 'e'``) are not ours and are left
  out, as are the migration tool's bookkeeping tables and everything hanging off them.
* One catalog query per kind, never one per object, so a schema of a few hundred
  objects snapshots in well under a second.
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
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

__all__ = [
    "BOOKKEEPING_FUNCTIONS",
    "BOOKKEEPING_TABLES",
    "KINDS",
    "Difference",
    "Snapshot",
    "diff",
    "object_names",
    "render_json",
    "render_markdown",
    "snapshot",
]

BOOKKEEPING_TABLES: frozenset[str] = frozenset(
    {
        "_yoyo_migration",
        "_yoyo_log",
        "_yoyo_version",
        "yoyo_lock",
        "_z4j_migrate_revision",
        "_z4j_migrate_progress",
        "_z4j_migrate_head",
    }
)
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
       pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
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
       pg_catalog.col_description(a.attrelid, a.attnum) AS comment
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
SELECT c.conrelid, c.conname, c.contype,
       pg_catalog.pg_get_constraintdef(c.oid) AS definition,
       (NOT c.conislocal OR c.conparentid <> 0) AS inherited,
       pg_catalog.obj_description(c.oid, 'pg_constraint') AS comment
FROM pg_catalog.pg_constraint c
WHERE c.conrelid = ANY(%(rels)s::pg_catalog.oid[]) AND c.contype NOT IN ('n', 't')
"""

_INDEXES_SQL = """
SELECT i.indrelid, ic.relname, pg_catalog.pg_get_indexdef(i.indexrelid) AS definition,
       i.indisvalid, ic.relispartition, con.conname,
       pg_catalog.obj_description(i.indexrelid, 'pg_class') AS comment
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_catalog.pg_constraint con
       ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
      AND con.contype IN ('p', 'u', 'x')
WHERE i.indrelid = ANY(%(rels)s::pg_catalog.oid[])
"""

_TRIGGERS_SQL = """
SELECT t.tgrelid, t.tgname, pg_catalog.pg_get_triggerdef(t.oid) AS definition,
       t.tgenabled, t.tgparentid <> 0 AS inherited,
       pg_catalog.obj_description(t.oid, 'pg_trigger') AS comment
FROM pg_catalog.pg_trigger t
WHERE t.tgrelid = ANY(%(rels)s::pg_catalog.oid[]) AND NOT t.tgisinternal
"""

_POLICIES_SQL = """
SELECT p.polrelid, p.polname, p.polcmd, p.polpermissive,
       ARRAY(SELECT CASE WHEN r.oid = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(r.oid) END
             FROM pg_catalog.unnest(p.polroles) AS r(oid) ORDER BY 1) AS roles,
       pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS using_expr,
       pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr,
       pg_catalog.obj_description(p.oid, 'pg_policy') AS comment
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
       pg_catalog.obj_description(t.oid, 'pg_type') AS comment
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
       pg_catalog.obj_description(p.oid, 'pg_proc') AS comment
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
    excluded = set(exclude_tables)

    def is_excluded(nspname: str | None, relname: str | None) -> bool:
        return relname is not None and (relname in excluded or f"{nspname}.{relname}" in excluded)

    snap: Snapshot = {kind: {} for kind in KINDS}
    params: dict[str, Any] = {"schemas": list(schemas)}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_RELATIONS_SQL, params)
        relations = [
            row
            for row in cur.fetchall()
            if not is_excluded(row["nspname"], row["relname"])
            and not is_excluded(row["own_nspname"], row["own_relname"])
        ]
        rel_key = {row["oid"]: _qual(row["nspname"], row["relname"]) for row in relations}
        rel_kind = {row["oid"]: row["relkind"] for row in relations}
        params["rels"] = list(rel_key)
        params["colrels"] = [oid for oid, kind in rel_kind.items() if kind != "S"]
        queries = {
            name: sql
            for name, sql in (
                ("columns", _COLUMNS_SQL),
                ("constraints", _CONSTRAINTS_SQL),
                ("indexes", _INDEXES_SQL),
                ("triggers", _TRIGGERS_SQL),
                ("policies", _POLICIES_SQL),
                ("types", _TYPES_SQL),
                ("functions", _FUNCTIONS_SQL),
            )
        }
        rows: dict[str, list[dict[str, Any]]] = {}
        for name, sql in queries.items():
            cur.execute(sql, params)
            rows[name] = cur.fetchall()
        rows["functions"] = [r for r in rows["functions"] if r["proname"] not in BOOKKEEPING_FUNCTIONS]
        params["types"] = [row["oid"] for row in rows["types"]]
        params["funcs"] = [row["oid"] for row in rows["functions"]]
        cur.execute(_GRANTS_SQL, params)
        grants = cur.fetchall()

    def rel_ref(oid: int) -> str:
        return f"{_RELKINDS[rel_kind[oid]]} {rel_key[oid]}"

    def add_comment(ref: str, text: str | None, table: str | None = None) -> None:
        if text is None:
            return
        desc: dict[str, Any] = {"object": ref, "text": text}
        if table is not None:
            desc["table"] = table
        snap["comment"][f"on {ref}"] = desc

    for row in relations:
        key = rel_key[row["oid"]]
        relkind = row["relkind"]
        add_comment(rel_ref(row["oid"]), row["comment"])
        options = sorted(row["reloptions"]) if row["reloptions"] else []
        if relkind in _TABLE_KINDS:
            snap["table"][key] = {
                "kind": _TABLE_KINDS[relkind],
                "partition key": row["partkey"],
                "unlogged": row["relpersistence"] == "u",
                "row security": row["relrowsecurity"],
                "force row security": row["relforcerowsecurity"],
                "replica identity": _REPLIDENT.get(row["relreplident"], row["relreplident"]),
                "options": options,
                "tablespace": row["tablespace"],
                "inherits": ([] if row["relispartition"] else [_qual_dotted(p) for p in row["parents"]]),
            }
            if row["relispartition"] and row["parents"]:
                parent = _qual_dotted(row["parents"][0])
                snap["partition"][f"{key} of {parent}"] = {
                    "child": key,
                    "parent": parent,
                    "bound": row["bound"],
                }
        elif relkind == "v":
            snap["view"][key] = {"definition": row["viewdef"], "options": options}
        elif relkind == "m":
            snap["materialized view"][key] = {
                "definition": row["viewdef"],
                "options": options,
                "populated": row["relispopulated"],
                "tablespace": row["tablespace"],
            }
        elif relkind == "S":
            owned_by = None
            if row["own_relname"] is not None:
                owned_by = f"{_qual(row['own_nspname'], row['own_relname'])}.{row['own_attname']}"
            snap["sequence"][key] = {
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

    column_ref: dict[tuple[int, int], str] = {}
    position: dict[int, int] = defaultdict(int)
    for row in rows["columns"]:
        oid = row["attrelid"]
        table = rel_key[oid]
        ref = f"column {table}.{row['attname']}"
        column_ref[(oid, row["attnum"])] = ref
        add_comment(ref, row["comment"], table)
        if rel_kind[oid] not in _TABLE_KINDS:
            continue
        position[oid] += 1
        generated = _GENERATED.get(row["attgenerated"]) if row["attgenerated"] else None
        snap["column"][f"{table}.{row['attname']}"] = {
            "table": table,
            "position": position[oid],
            "type": row["type"],
            "nullable": not row["attnotnull"],
            "default": None if generated else row["expr"],
            "generated": f"{row['expr']} {generated}" if generated else None,
            "identity": _IDENTITY.get(row["attidentity"]) if row["attidentity"] else None,
            "collation": row["collation"],
        }

    for row in rows["constraints"]:
        table = rel_key[row["conrelid"]]
        key = f"{row['conname']} on {table}"
        snap["constraint"][key] = {
            "table": table,
            "type": _CONTYPES.get(row["contype"], row["contype"]),
            "definition": row["definition"],
            "inherited": row["inherited"],
        }
        add_comment(f"constraint {key}", row["comment"], table)

    for row in rows["indexes"]:
        table = rel_key[row["indrelid"]]
        key = f"{row['relname']} on {table}"
        snap["index"][key] = {
            "table": table,
            "definition": row["definition"],
            "valid": row["indisvalid"],
            "constraint": row["conname"],
            "inherited": row["relispartition"],
        }
        add_comment(f"index {key}", row["comment"], table)

    for row in rows["triggers"]:
        table = rel_key[row["tgrelid"]]
        key = f"{row['tgname']} on {table}"
        snap["trigger"][key] = {
            "table": table,
            "definition": row["definition"],
            "state": _TRIGGER_STATES.get(row["tgenabled"], row["tgenabled"]),
            "inherited": row["inherited"],
        }
        add_comment(f"trigger {key}", row["comment"], table)

    for row in rows["policies"]:
        table = rel_key[row["polrelid"]]
        key = f"{row['polname']} on {table}"
        snap["policy"][key] = {
            "table": table,
            "command": _POLCMDS.get(row["polcmd"], row["polcmd"]),
            "permissive": row["polpermissive"],
            "roles": list(row["roles"]),
            "using": row["using_expr"],
            "with check": row["check_expr"],
        }
        add_comment(f"policy {key}", row["comment"], table)

    type_ref: dict[int, str] = {}
    for row in rows["types"]:
        key = _qual(row["nspname"], row["typname"])
        type_ref[row["oid"]] = f"type {key}"
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
        snap["type"][key] = desc
        add_comment(f"type {key}", row["comment"])

    func_ref: dict[int, str] = {}
    for row in rows["functions"]:
        key = f"{_qual(row['nspname'], row['proname'])}({row['identity']})"
        func_ref[row["oid"]] = f"function {key}"
        snap["function"][key] = {
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
        add_comment(f"function {key}", row["comment"])

    for row in grants:
        table = None
        if row["objclass"] == "rel":
            ref = rel_ref(row["oid"])
        elif row["objclass"] == "col":
            ref = column_ref[(row["oid"], row["subid"])]
            table = rel_key[row["oid"]]
        elif row["objclass"] == "func":
            ref = func_ref[row["oid"]]
        else:
            ref = type_ref[row["oid"]]
        privilege, grantee = row["privilege_type"], row["grantee"]
        desc = {"object": ref, "privilege": privilege, "grantee": grantee}
        if table is not None:
            desc["table"] = table
        if row["revoked"]:
            desc["revoked"] = True
            snap["grant"][f"{privilege} on {ref} revoked from {grantee}"] = desc
        else:
            desc["grantable"] = row["is_grantable"]
            snap["grant"][f"{privilege} on {ref} to {grantee}"] = desc

    return {kind: dict(sorted(objs.items())) for kind, objs in snap.items()}


# ----------------------------------------------------------------------------- diff


def _fmt(value: Any) -> str:
    """Show a description value the way a reader expects (SQL-ish, not Python)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(f"'{v}'" if isinstance(v, str) else _fmt(v) for v in value) + "]"
    if isinstance(value, str):
        return re.sub(r"\s+", " ", value).strip()
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


def diff(expected: Snapshot, actual: Snapshot) -> list[Difference]:
    """Everything ``actual`` (after) has that ``expected`` (before) lacks, and vice versa.

    Objects that only come and go with a parent (the columns, indexes, comments... of
    a left-behind table) are not listed separately, so the report names causes, not
    every symptom.  Enum label changes are reported per label too, since the usual
    culprit is an ``ALTER TYPE ... ADD VALUE`` that a down migration cannot undo.
    """
    found: list[tuple[Difference, Any]] = []
    for kind in sorted(set(expected) | set(actual), key=lambda k: (_ORDER.get(k, 99), k)):
        before, after = expected.get(kind, {}), actual.get(kind, {})
        for key in after.keys() - before.keys():
            found.append((Difference(kind, key, "left behind"), after[key]))
        for key in before.keys() - after.keys():
            found.append((Difference(kind, key, "missing"), before[key]))
        for key in before.keys() & after.keys():
            old, new = before[key], after[key]
            if old == new:
                continue
            if not (isinstance(old, dict) and isinstance(new, dict)):
                found.append((Difference(kind, key, "changed", _fmt_pair(old, new)), None))
                continue
            for attr in sorted(old.keys() | new.keys()):
                if old.get(attr) != new.get(attr):
                    detail = f"{attr} changed: {_fmt_pair(old.get(attr), new.get(attr))}"
                    found.append((Difference(kind, key, "changed", detail), None))
            if kind == "type" and "labels" in old and "labels" in new:
                for label in new["labels"]:
                    if label not in old["labels"]:
                        name = f"'{label}' on type {key}"
                        found.append((Difference("enum label", name, "left behind"), None))
                for label in old["labels"]:
                    if label not in new["labels"]:
                        name = f"'{label}' on type {key}"
                        found.append((Difference("enum label", name, "missing"), None))

    implied = {change: {d.subject for d, _ in found if d.change == change} for change in ("left behind", "missing")}
    result = [
        d
        for d, desc in found
        if d.change == "changed" or not any(ref in implied[d.change] for ref in _parents(d.kind, desc))
    ]
    return sorted(
        result,
        key=lambda d: (
            _ORDER.get(d.kind, 99),
            d.kind,
            d.name,
            _CHANGE_ORDER.get(d.change, 9),
            d.detail,
        ),
    )


def object_names(snap: Snapshot) -> list[str]:
    """Flat "kind name" list of every object, e.g. to prove nothing of ours remains."""
    kinds = sorted(snap, key=lambda k: (_ORDER.get(k, 99), k))
    return [f"{kind} {key}" for kind in kinds for key in sorted(snap[kind])]


# ------------------------------------------------------------------------ rendering


def render_json(snap: Snapshot) -> str:
    """Stable JSON for storing a snapshot and diffing it later."""
    return json.dumps(snap, sort_keys=True, indent=2)


def _code(text: Any) -> str:
    """Inline code that survives backticks and table pipes in the content."""
    value = re.sub(r"\s+", " ", str(text)).strip().replace("|", "\\|")
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


def _by_table(objs: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    grouped: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for key, desc in sorted(objs.items()):
        grouped[desc["table"]].append((key.rpartition(" on ")[0], desc))
    return grouped


def render_markdown(
    snap: Snapshot,
    *,
    title: str = "Schema reference",
    max_body_lines: int | None = 40,
) -> str:
    """Human reference of a snapshot: same schema in, byte-identical text out.

    ``max_body_lines`` trims function bodies (``None``: whole body, ``0``: no bodies).
    """
    tables = snap.get("table", {})
    columns = snap.get("column", {})
    comments = {d["object"]: d["text"] for d in snap.get("comment", {}).values()}
    grants: dict[str, list[str]] = defaultdict(list)
    for desc in snap.get("grant", {}).values():
        if desc.get("revoked"):
            text = f"{desc['privilege']} revoked from {desc['grantee']}"
        else:
            option = " with grant option" if desc.get("grantable") else ""
            text = f"{desc['privilege']} to {desc['grantee']}{option}"
        grants[desc["object"]].append(text)
    constraints = _by_table(snap.get("constraint", {}))
    indexes = _by_table(snap.get("index", {}))
    triggers = _by_table(snap.get("trigger", {}))
    policies = _by_table(snap.get("policy", {}))
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for desc in sorted(snap.get("partition", {}).values(), key=lambda d: d["child"]):
        children[desc["parent"]].append(desc)
    partitions = {desc["child"] for group in children.values() for desc in group}
    table_columns: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for key, desc in columns.items():
        table_columns[desc["table"]].append((key[len(desc["table"]) + 1 :], desc))

    out: list[str] = [f"# {title}", ""]

    def para(*lines: str) -> None:
        out.extend([*lines, ""])

    def grant_lines(ref: str) -> None:
        if grants.get(ref):
            para("Grants: " + "; ".join(sorted(grants[ref])) + ".")

    def attached(table: str, local_only: bool, indent: str = "") -> list[str]:
        lines: list[str] = []
        for name, desc in constraints.get(table, []):
            if local_only and desc["inherited"]:
                continue
            note = comments.get(f"constraint {name} on {table}")
            lines.append(
                f"{indent}- constraint {_code(name)} ({desc['type']}): {_code(desc['definition'])}"
                + (f" — {note}" if note else "")
            )
        for name, desc in indexes.get(table, []):
            if local_only and desc["inherited"]:
                continue
            flags = "" if desc["valid"] else " **(invalid)**"
            note = comments.get(f"index {name} on {table}")
            lines.append(
                f"{indent}- index {_code(name)}{flags}: {_code(desc['definition'])}" + (f" — {note}" if note else "")
            )
        for name, desc in triggers.get(table, []):
            if local_only and desc["inherited"]:
                continue
            state = "" if desc["state"] == "enabled" else f" **({desc['state']})**"
            note = comments.get(f"trigger {name} on {table}")
            lines.append(
                f"{indent}- trigger {_code(name)}{state}: {_code(desc['definition'])}" + (f" — {note}" if note else "")
            )
        for name, desc in policies.get(table, []):
            kind = "permissive" if desc["permissive"] else "restrictive"
            roles = ", ".join(desc["roles"])
            text = f"{indent}- policy {_code(name)} ({kind}, {desc['command']}, to {roles})"
            if desc["using"] is not None:
                text += f" using {_code(desc['using'])}"
            if desc["with check"] is not None:
                text += f" with check {_code(desc['with check'])}"
            note = comments.get(f"policy {name} on {table}")
            lines.append(text + (f" — {note}" if note else ""))
        return lines

    def partition_lines(parent: str, indent: str) -> list[str]:
        lines: list[str] = []
        for desc in children.get(parent, []):
            child = desc["child"]
            text = f"{indent}- {_code(child)}: {_code(desc['bound'])}"
            if tables.get(child, {}).get("partition key"):
                text += f", partitioned by {_code(tables[child]['partition key'])}"
            lines.append(text)
            lines.extend(attached(child, local_only=True, indent=indent + "  "))
            lines.extend(partition_lines(child, indent + "  "))
        return lines

    if tables:
        para("## Tables")
    for name in sorted(tables):
        if name in partitions:
            continue
        desc = tables[name]
        para(f"### {_code(name)}")
        ref = f"table {name}"
        if ref in comments:
            para(comments[ref])
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
            facts.append("Options: " + ", ".join(_code(o) for o in desc["options"]) + ".")
        if desc["tablespace"]:
            facts.append(f"Tablespace: {_code(desc['tablespace'])}.")
        if facts:
            para(" ".join(facts))
        cols = sorted(table_columns.get(name, []), key=lambda item: item[1]["position"])
        if cols:
            with_notes = any(f"column {name}.{col}" in comments for col, _ in cols)
            header = "| Column | Type | Nullable | Default |" + (" Comment |" if with_notes else "")
            out.extend([header, "|---" * (5 if with_notes else 4) + "|"])
            for col, cdesc in cols:
                if cdesc["identity"]:
                    default = f"identity ({cdesc['identity']})"
                elif cdesc["generated"]:
                    default = f"generated: {_code(cdesc['generated'])}"
                elif cdesc["default"] is not None:
                    default = _code(cdesc["default"])
                else:
                    default = ""
                type_text = cdesc["type"]
                if cdesc["collation"]:
                    type_text += f' COLLATE "{cdesc["collation"]}"'
                cells = [
                    _code(col),
                    _code(type_text),
                    "null" if cdesc["nullable"] else "not null",
                    default,
                ]
                if with_notes:
                    note = comments.get(f"column {name}.{col}", "")
                    cells.append(re.sub(r"\s+", " ", note).replace("|", "\\|"))
                out.append("| " + " | ".join(cells) + " |")
            out.append("")
        lines = attached(name, local_only=False)
        if lines:
            para(*lines)
        if children.get(name):
            para("Partitions:", "", *partition_lines(name, ""))
        grant_lines(ref)

    def section(heading: str, kind: str, objs: dict[str, Any], body: Any) -> None:
        if not objs:
            return
        para(f"## {heading}")
        for key in sorted(objs):
            para(f"### {_code(key)}")
            if f"{kind} {key}" in comments:
                para(comments[f"{kind} {key}"])
            body(key, objs[key])
            grant_lines(f"{kind} {key}")

    types = snap.get("type", {})
    enums = {k: v for k, v in types.items() if v["type"] == "enum"}
    others = {k: v for k, v in types.items() if v["type"] != "enum"}

    def enum_body(key: str, desc: dict[str, Any]) -> None:
        para("Labels, in order: " + ", ".join(_code(label) for label in desc["labels"]) + ".")

    def type_body(key: str, desc: dict[str, Any]) -> None:
        if desc["type"] == "domain":
            facts = [f"Domain over {_code(desc['base'])}"]
            if desc.get("collation"):
                facts.append(f"collation {_code(desc['collation'])}")
            if not desc["nullable"]:
                facts.append("not null")
            if desc["default"] is not None:
                facts.append(f"default {_code(desc['default'])}")
            para(", ".join(facts) + ".")
            if desc["constraints"]:
                para(*(f"- {_code(c)}" for c in desc["constraints"]))
        elif desc["type"] == "composite":
            para("Composite type:", "", *(f"- {_code(a)}" for a in desc["attributes"]))
        elif desc["type"] == "range":
            para(f"Range over {_code(desc['subtype'])}.")
        else:
            para(f"{desc['type'].capitalize()} type.")

    def sequence_body(key: str, desc: dict[str, Any]) -> None:
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
        para(", ".join(facts) + ".")

    def function_body(key: str, desc: dict[str, Any]) -> None:
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
        para(", ".join(facts) + ".")
        if desc["arguments"]:
            para(f"Arguments: {_code(desc['arguments'])}.")
        if desc["body"] and max_body_lines != 0:
            para(*_fence(desc["body"], max_body_lines))

    def view_body(key: str, desc: dict[str, Any]) -> None:
        if desc["options"]:
            para("Options: " + ", ".join(_code(o) for o in desc["options"]) + ".")
        if desc.get("populated") is False:
            para("Not populated (created WITH NO DATA or not yet refreshed).")
        para(*_fence(desc["definition"]))
        lines = attached(key, local_only=False)
        if lines:
            para(*lines)

    section("Enums", "type", enums, enum_body)
    section("Other types", "type", others, type_body)
    section("Sequences", "sequence", snap.get("sequence", {}), sequence_body)
    section("Functions", "function", snap.get("function", {}), function_body)
    section("Views", "view", snap.get("view", {}), view_body)
    section("Materialized views", "materialized view", snap.get("materialized view", {}), view_body)

    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


def schema_reference(conn: psycopg.Connection, *, as_json: bool = False) -> str:
    """The reference text of `z4j-migrate schema` and docs/schema.md.

    Session settings are pinned first so the text does not depend on who runs it
    (time zone in partition bounds, search_path in type names).
    """
    conn.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET search_path = public")
    snap = collapse_daily_partitions(snapshot(conn))
    return render_json(snap) if as_json else render_markdown(snap, title="z4j schema reference")


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
