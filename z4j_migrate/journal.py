"""Verify's change journal: catalog snapshots whose cost follows the change, not the schema.

`verify` compares two catalog snapshots around every step, about 800 of them for 400 revisions,
and a full snapshot (catalog.snapshot) costs more the bigger the schema is. In a scratch database
where the role may create event triggers, verify installs two (ddl_command_end, sql_drop) that
write every object a DDL command creates, alters or drops into a journal table. A snapshot is then
the previous one with only the roots (catalog.RootKey: a relation, a type or a function, with all
that hangs off it) re-described that the journal names, or that depend on one it names through
pg_depend (a renamed table changes the text of a foreign key or a view of another root). A root
the journal names as dropped, or that no longer exists, loses its piece.

A full snapshot is taken instead whenever the journal cannot say what changed: the first time, a
GRANT/REVOKE (its event names no object), a command on any other kind of object (schemas,
extensions, casts, collations, operators, statistics...), a new object named like an existing one
in another schema (it could change what the others' definitions print), or a journal that is gone.
What the journal cannot see at all is documented in docs/verify.md: DDL-free catalog changes (an
UPDATE of pg_catalog tables by hand) and renamed roles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import errors as pgerrors

from .catalog import KINDS, Piece, RootKey, Snapshot, snapshot_pieces

JOURNAL_SCHEMA = "z4j_verify_journal"

# SECURITY DEFINER: a revision that does SET ROLE to a role without rights on the journal must
# still be journaled (the functions belong to the role that installed them, who may write there).
_INSTALL_SQL = f"""
CREATE SCHEMA {JOURNAL_SCHEMA};
CREATE UNLOGGED TABLE {JOURNAL_SCHEMA}.changes (
    classid pg_catalog.oid, objid pg_catalog.oid, dropped boolean NOT NULL, schema_name text, object_name text);
CREATE FUNCTION {JOURNAL_SCHEMA}.on_ddl() RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO {JOURNAL_SCHEMA}.changes
    SELECT c.classid, c.objid, false, c.schema_name, NULL FROM pg_catalog.pg_event_trigger_ddl_commands() c;
END $$;
CREATE FUNCTION {JOURNAL_SCHEMA}.on_drop() RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    INSERT INTO {JOURNAL_SCHEMA}.changes
    SELECT d.classid, d.objid, true, d.schema_name, d.object_name FROM pg_catalog.pg_event_trigger_dropped_objects() d;
END $$;
CREATE EVENT TRIGGER z4j_verify_journal_ddl ON ddl_command_end EXECUTE FUNCTION {JOURNAL_SCHEMA}.on_ddl();
CREATE EVENT TRIGGER z4j_verify_journal_drop ON sql_drop EXECUTE FUNCTION {JOURNAL_SCHEMA}.on_drop();
ALTER EVENT TRIGGER z4j_verify_journal_ddl ENABLE ALWAYS;
ALTER EVENT TRIGGER z4j_verify_journal_drop ENABLE ALWAYS;
"""

_TAKE_SQL = f"DELETE FROM {JOURNAL_SCHEMA}.changes RETURNING classid, objid, dropped, schema_name, object_name"

# The catalogs whose objects the snapshot describes: a journal entry of any other one (or none,
# a GRANT) means a full snapshot.
_KNOWN = ("pg_class", "pg_type", "pg_proc", "pg_constraint", "pg_trigger", "pg_policy", "pg_attrdef", "pg_rewrite")
_ROOT_CATALOGS = {"pg_class": "rel", "pg_type": "type", "pg_proc": "func"}
_CATALOG_OIDS_SQL = (
    "SELECT c.oid, c.relname FROM pg_catalog.pg_class c "
    "WHERE c.relnamespace = 'pg_catalog'::pg_catalog.regnamespace AND c.relname = ANY(%(names)s)"
)

# The roots that the touched objects (and what depends on them) belong to. An index stands for its
# table, a table's row type for the table, an array or multirange type for its element or range.
_ROOTS_SQL = """
WITH obj(classid, objid) AS (
    SELECT * FROM ROWS FROM (pg_catalog.unnest(%(classids)s::pg_catalog.oid[]),
                             pg_catalog.unnest(%(objids)s::pg_catalog.oid[]))
), touched AS (
    SELECT o.classid, o.objid FROM obj o
    UNION
    SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
    JOIN obj o ON d.refclassid = o.classid AND d.refobjid = o.objid
), owner(kind, oid) AS (
    SELECT 'c', x.objid FROM touched x WHERE x.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
    UNION SELECT 't', x.objid FROM touched x WHERE x.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
    UNION SELECT 'f', x.objid FROM touched x WHERE x.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
    UNION SELECT 'c', a.adrelid FROM touched x JOIN pg_catalog.pg_attrdef a ON a.oid = x.objid
          WHERE x.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
    UNION SELECT CASE WHEN k.conrelid <> 0 THEN 'c' ELSE 't' END,
                 CASE WHEN k.conrelid <> 0 THEN k.conrelid ELSE k.contypid END
          FROM touched x JOIN pg_catalog.pg_constraint k ON k.oid = x.objid
          WHERE x.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass
    UNION SELECT 'c', t.tgrelid FROM touched x JOIN pg_catalog.pg_trigger t ON t.oid = x.objid
          WHERE x.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass
    UNION SELECT 'c', p.polrelid FROM touched x JOIN pg_catalog.pg_policy p ON p.oid = x.objid
          WHERE x.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass
    UNION SELECT 'c', r.ev_class FROM touched x JOIN pg_catalog.pg_rewrite r ON r.oid = x.objid
          WHERE x.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass
), types AS (
    SELECT COALESCE(el.oid, mr.rngtypid, t.oid) AS oid
    FROM owner o JOIN pg_catalog.pg_type t ON t.oid = o.oid
    LEFT JOIN pg_catalog.pg_type el ON el.typarray = t.oid
    LEFT JOIN pg_catalog.pg_range mr ON mr.rngmultitypid = t.oid
    WHERE o.kind = 't'
), rels AS (
    SELECT COALESCE(i.indrelid, c.oid) AS oid
    FROM owner o JOIN pg_catalog.pg_class c ON c.oid = o.oid
    LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.oid
    WHERE o.kind = 'c'
    UNION SELECT t.typrelid FROM types y JOIN pg_catalog.pg_type t ON t.oid = y.oid WHERE t.typrelid <> 0
)
SELECT 'rel' AS kind, c.oid FROM rels r JOIN pg_catalog.pg_class c ON c.oid = r.oid
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
UNION SELECT 'type', c.reltype FROM rels r JOIN pg_catalog.pg_class c ON c.oid = r.oid WHERE c.relkind = 'c'
UNION SELECT 'type', t.oid FROM types y JOIN pg_catalog.pg_type t ON t.oid = y.oid WHERE t.typrelid = 0
UNION SELECT 'func', o.oid FROM owner o WHERE o.kind = 'f'
"""


class _FullSnapshot(Exception):
    """The journal cannot say what changed: describe everything."""


def install(conn: psycopg.Connection[Any]) -> bool:
    """Create the journal and its event triggers; False (nothing created) when the role may not."""
    try:
        with conn.transaction():
            conn.execute(_INSTALL_SQL)
    except (pgerrors.InsufficientPrivilege, pgerrors.FeatureNotSupported):
        return False
    return True


class Tracker:
    """A catalog snapshot kept up to date from the journal; `snapshot()` equals catalog.snapshot.

    `list_schemas` gives the schemas to describe (a full snapshot reads them again); `bookkeeping`
    is the bookkeeping schema, left out of the "schema" entries as verify.take_snapshot does.
    """

    def __init__(self, conn: psycopg.Connection[Any], list_schemas: Callable[[], list[str]], bookkeeping: str) -> None:
        self.conn = conn
        self.list_schemas = list_schemas
        self.bookkeeping = bookkeeping
        self.pieces: dict[RootKey, Piece] = {}
        self.merged: Snapshot = {}
        self.schemas: list[str] = []
        self.owner: dict[tuple[str, int], RootKey] = {}  # (catalog, oid) of a child -> its root
        # table -> the roots whose description names it as their partition parent or inherited table:
        # DETACH PARTITION, a command on the parent, changes the child and leaves no pg_depend row
        self.heirs: dict[str, set[RootKey]] = {}
        self.index_owner: dict[tuple[str | None, str | None], RootKey] = {}  # (schema, index name) -> table
        self.started = False
        self.journal_kept = True  # False once the journal is found gone: full snapshots from then on
        self.full_count = 0  # how many snapshots were full ones (tests and docs/performance.md)
        rows = conn.execute(_CATALOG_OIDS_SQL, {"names": list(_KNOWN)}).fetchall()
        self.catalog_name = {int(oid): name for oid, name in rows}
        # The describing queries are planned once, not on every snapshot (their planning costs more
        # than running them for a few roots), where prepared statements cannot be lost to a pooler.
        self.prepare = _direct(conn)
        if self.prepare:
            # psycopg prepares nothing with a threshold of None (db.connect's, for PgBouncer): a
            # threshold no query reaches prepares only the queries sent with prepare=True.
            conn.prepare_threshold = 1 << 30
            conn.execute("SET plan_cache_mode = force_generic_plan")

    def close(self) -> None:
        """Remove the journal (a scratch database kept with --keep holds no event triggers of ours) and
        disconnect."""
        try:
            self.conn.execute(f"DROP SCHEMA IF EXISTS {JOURNAL_SCHEMA} CASCADE")
        except psycopg.Error:
            pass  # the database is going away anyway, or the connection is
        finally:
            self.conn.close()

    def snapshot(self) -> Snapshot:
        """The catalog now: the journal's changes applied to the previous snapshot."""
        if self.journal_kept:
            try:
                with self.conn.transaction():
                    self.refresh()
            except pgerrors.UndefinedTable:  # the journal was dropped (DROP OWNED, its schema dropped)
                self.journal_kept = False
        if not self.journal_kept:
            with self.conn.transaction():
                self.rebuild()
        snap: Snapshot = {kind: dict(objects) for kind, objects in self.merged.items()}
        snap["schema"] = {name: {} for name in self.schemas if name not in ("public", self.bookkeeping)}
        return snap

    def refresh(self) -> None:
        try:
            if not self.started:
                raise _FullSnapshot
            self.apply(self.conn.execute(_TAKE_SQL, prepare=self.prepare).fetchall())
        except _FullSnapshot:
            self.rebuild()

    def rebuild(self) -> None:
        """Describe every root (the journal's entries so far are then moot)."""
        if self.journal_kept:
            self.conn.execute(_TAKE_SQL)
        self.schemas = self.list_schemas()
        self.pieces = {}
        self.merged = {kind: {} for kind in KINDS}
        self.owner = {}
        self.heirs = {}
        self.index_owner = {}
        self.put(snapshot_pieces(self.conn, schemas=self.schemas, prepare=self.prepare))
        self.started = True
        self.full_count += 1

    def apply(self, entries: list[tuple[int | None, int | None, bool, str | None, str | None]]) -> None:
        """Re-describe the roots the journal's entries touch (raises _FullSnapshot when it cannot)."""
        if not entries:
            return
        roots: set[RootKey] = set()
        live: list[tuple[int, int]] = []
        for classid, objid, dropped, schema, name in entries:
            catalog = self.catalog_name.get(classid) if classid is not None else None
            if catalog is None or objid is None:
                raise _FullSnapshot
            if dropped:
                roots.update(self.dropped_root(catalog, objid, schema, name))
            else:
                live.append((classid, objid))
        if live:
            params = {"classids": [c for c, _ in live], "objids": [o for _, o in live]}
            found = self.conn.execute(_ROOTS_SQL, params, prepare=self.prepare).fetchall()
            roots.update((kind, oid) for kind, oid in found)
        for root in list(roots):
            piece = self.pieces.get(root)
            for table in piece.snap.get("table", ()) if piece else ():
                roots.update(self.heirs.get(table, ()))
        if not roots:
            return
        fresh = snapshot_pieces(self.conn, schemas=self.schemas, roots=roots, prepare=self.prepare)
        self.refuse_visibility_changes(roots, fresh)
        for root in roots:
            self.drop(root)
        self.put(fresh)

    def dropped_root(self, catalog: str, objid: int, schema: str | None, name: str | None) -> list[RootKey]:
        """The root a dropped object was (part of), when the snapshot had it. An index is also found by
        name: REINDEX CONCURRENTLY gives it a new oid without an event before PostgreSQL 17."""
        kind = _ROOT_CATALOGS.get(catalog)
        if kind is not None and (kind, objid) in self.pieces:
            return [(kind, objid)]
        owner = self.owner.get((catalog, objid))
        if owner is None and catalog == "pg_class":
            owner = self.index_owner.get((schema, name))
        return [owner] if owner is not None else []

    def refuse_visibility_changes(self, roots: set[RootKey], fresh: dict[RootKey, Piece]) -> None:
        """A root that appears, goes or changes its name or schema while a root of another schema has the
        same name: definitions that print that name may now have to qualify it, or no longer (what the
        session's search_path shows), in roots that nothing else touched."""
        if len(self.schemas) < 2:
            return
        touched: set[tuple[bool, str]] = set()
        for root in roots:
            old, new = self.pieces.get(root), fresh.get(root)
            if (old and (old.name, old.schema)) != (new and (new.name, new.schema)):
                touched.update((root[0] == "func", piece.name) for piece in (old, new) if piece is not None)
        schemas_of: dict[tuple[bool, str], set[str]] = {}
        for root, piece in [*self.pieces.items(), *fresh.items()]:
            if (root[0] == "func", piece.name) in touched:
                schemas_of.setdefault((root[0] == "func", piece.name), set()).add(piece.schema)
        if any(len(schemas) > 1 for schemas in schemas_of.values()):
            raise _FullSnapshot

    def drop(self, root: RootKey) -> None:
        piece = self.pieces.pop(root, None)
        if piece is None:
            return
        for kind, objects in piece.snap.items():
            for key in objects:
                del self.merged[kind][key]
        for child in piece.children:
            self.owner.pop(child, None)
        for index in piece.indexes:
            if self.index_owner.get((piece.schema, index)) == root:
                del self.index_owner[(piece.schema, index)]
        for table in _parents(piece):
            self.heirs[table].discard(root)

    def put(self, pieces: dict[RootKey, Piece]) -> None:
        for root, piece in pieces.items():
            self.pieces[root] = piece
            for kind, objects in piece.snap.items():
                self.merged[kind].update(objects)
            for child in piece.children:
                self.owner[child] = root
            for index in piece.indexes:
                self.index_owner[(piece.schema, index)] = root
            for table in _parents(piece):
                self.heirs.setdefault(table, set()).add(root)


def _parents(piece: Piece) -> set[str]:
    """The tables a root's description names as its partition parent or as inherited from."""
    found = {desc["parent"] for desc in piece.snap.get("partition", {}).values()}
    for desc in piece.snap.get("table", {}).values():
        found.update(desc["inherits"])
    return found


def start(conn: psycopg.Connection[Any], list_schemas: Callable[[Any], list[str]], bookkeeping: str) -> Tracker | None:
    """A tracker that owns `conn` (its own connection: it prepares statements and plans them
    generically), or None, `conn` closed, when the journal cannot be installed in its database.
    `list_schemas(conn)` gives the schemas to describe."""
    if not install(conn):
        conn.close()
        return None
    return Tracker(conn, lambda: list_schemas(conn), bookkeeping)


def _direct(conn: psycopg.Connection[Any]) -> bool:
    """Whether `conn` reaches the server itself, not a pooler (whose other clients could not share
    prepared statements): the port the server listens on is the one connected to."""
    port = conn.execute("SELECT pg_catalog.inet_server_port()").fetchone()[0]
    return port is None or int(port) == int(conn.info.port)


__all__ = ["JOURNAL_SCHEMA", "Tracker", "install", "start"]
