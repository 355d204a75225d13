"""SQL-level checks and statement splitting with PostgreSQL's own parser (pglast).

Imported only when a revision is about to run or when `check` lints a
directory, never on the no-op startup path: pglast costs import time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pglast
from pglast import ast, visitors
from pglast.enums import GrantTargetType, ObjectType

from .errors import RevisionFileError
from .revisions import Revision, SqlFile

if TYPE_CHECKING:
    from .plan import DowngradeStep


@dataclass(frozen=True)
class Statement:
    """One statement of a non-transactional file, with where it starts."""

    index: int  # 1-based
    line: int
    sql: str


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _parse(sql_file: SqlFile) -> tuple[ast.RawStmt, ...]:
    try:
        return pglast.parse_sql(sql_file.text)
    except pglast.parser.ParseError as exc:
        message, offset = exc.args[0], exc.args[1] if len(exc.args) > 1 else 0
        if offset is None:  # "syntax error at end of input": pglast gives no position
            offset = len(sql_file.text.rstrip())
        line = _line_of(sql_file.text, offset)
        column = offset - (sql_file.text.rfind("\n", 0, offset) + 1) + 1
        raise RevisionFileError(
            f"SQL syntax error at column {column}: {message}.", path=sql_file.path, line=line
        ) from None


def check_file(sql_file: SqlFile, *, is_down: bool) -> tuple[ast.RawStmt, ...]:
    """Reject what would break atomicity or our promises, naming file and line."""
    statements = _parse(sql_file)
    for raw in statements:
        node = raw.stmt
        line = _line_of(sql_file.text, raw.stmt_location or 0)
        if isinstance(node, ast.TransactionStmt):
            mode = "transactional" if sql_file.transactional else "non-transactional"
            raise RevisionFileError(
                f"transaction control ({_keyword(sql_file.text, raw)}) is not allowed in a {mode} "
                "file: z4j-migrate owns the transaction so that the revision and its bookkeeping "
                "commit together. Remove it; use '-- transactional: false' for statements that "
                "cannot run in a transaction.",
                path=sql_file.path,
                line=line,
            )
        if is_down and isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_EXTENSION:
            raise RevisionFileError(
                "DROP EXTENSION is not allowed in a down file: extensions are shared with other "
                "applications and are never dropped by z4j-migrate.",
                path=sql_file.path,
                line=line,
            )
    return statements


def _keyword(text: str, raw: ast.RawStmt) -> str:
    start = raw.stmt_location or 0
    snippet = text[start : start + (raw.stmt_len or 12)].strip().split()
    return " ".join(snippet[:2]).upper() or "BEGIN"


def check_file_fast(sql_file: SqlFile, *, is_down: bool) -> bool:
    """check_file's verdict at about a tenth of its cost; returns whether the file has statements.

    Building pglast's Python syntax tree is most of the client time of a large upgrade
    (docs/performance.md); the same C parser's JSON text is enough to see that nothing is refused. When the
    text might hold a refused statement, or does not parse, check_file decides and names the line.
    """
    try:
        tree = pglast.parser.parse_sql_json(sql_file.text)
    except pglast.parser.ParseError:
        return bool(check_file(sql_file, is_down=is_down))
    if '"TransactionStmt"' in tree or (is_down and '"OBJECT_EXTENSION"' in tree):
        return bool(check_file(sql_file, is_down=is_down))
    return '"stmt":' in tree  # every top-level statement is {"stmt": {...}}; none is "stmts":[]


def check_revision(revision: Revision) -> None:
    """Full SQL check of both sides of a revision."""
    if revision.up.has_sql and not check_file_fast(revision.up, is_down=False):
        raise RevisionFileError("has no SQL statements.", path=revision.up.path)
    if revision.irreversible is None:
        if not check_file_fast(revision.down, is_down=True):
            raise RevisionFileError(
                "has no SQL statements; write the undo, or declare '-- irreversible: <message>'.",
                path=revision.down.path,
            )
    elif revision.down.has_sql and check_file_fast(revision.down, is_down=True):
        raise RevisionFileError("an irreversible down must not contain statements.", path=revision.down.path)


def split_statements(sql_file: SqlFile) -> list[Statement]:
    """Split a non-transactional file into statements, each run on its own in autocommit."""
    text = sql_file.text
    out = []
    for index, raw in enumerate(_parse(sql_file), start=1):
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(text)
        chunk = text[start:end].strip()
        # pglast's locations count characters of the str we gave it.
        out.append(
            Statement(index, _line_of(text, start + (len(text[start:end]) - len(text[start:end].lstrip()))), chunk)
        )
    return out


def referenced_tables(sql_file: SqlFile) -> list[str]:
    """Relation names a file touches; used to say which lock a revision waited for."""
    names: set[str] = set()
    try:
        statements = pglast.parse_sql(sql_file.text)
    except pglast.parser.ParseError:
        return []

    class Collector(visitors.Visitor):
        def visit_RangeVar(self, ancestors: object, node: ast.RangeVar) -> None:  # noqa: N802
            names.add(node.relname if not node.schemaname else f"{node.schemaname}.{node.relname}")

    collector = Collector()
    for raw in statements:
        collector(raw)
    return sorted(names)


def concurrent_index_name(statement_sql: str) -> str | None:
    """The (schema-qualified, quoted) index a `CREATE INDEX CONCURRENTLY name ...` statement builds,
    or None. A cancelled or killed CIC leaves that index INVALID; resuming drops it first."""
    try:
        (raw,) = pglast.parse_sql(statement_sql)
    except (pglast.parser.ParseError, ValueError):
        return None
    node = raw.stmt
    if not isinstance(node, ast.IndexStmt) or not node.concurrent or not node.idxname:
        return None
    from psycopg import sql

    parts = (node.relation.schemaname, node.idxname) if node.relation.schemaname else (node.idxname,)
    return sql.Identifier(*parts).as_string(None)


def check_unverified_downs(plan: Sequence[DowngradeStep], unverified: Collection[str]) -> None:
    """A down is SQL-checked at downgrade time only when nobody checked it before: z4j-migrate checks
    both files of a revision before applying it, and the drift check proves the down file (or the
    stored down) is the one checked then. Only revisions applied by stock yoyo (no checksum) are
    left, which keeps the parser out of most downgrades."""
    for step in plan:
        if step.revision.down.has_sql and step.revision.id in unverified:
            check_file_fast(step.revision.down, is_down=True)


# ------------------------------------------------------------------ schema-per-tenant (fleet.py)

# Schemas a tenant's SQL may name: the system's own, identical in every tenant.
_TENANT_ALLOWED_SCHEMAS = frozenset({"pg_catalog"})
# (node type, attribute): a qualified name as a tuple of String nodes (schema first when 2+ parts).
_NAME_LISTS = (
    (ast.TypeName, "names"),
    (ast.FuncCall, "funcname"),
    (ast.ObjectWithArgs, "objname"),
    (ast.CreateFunctionStmt, "funcname"),
    (ast.CreateTrigStmt, "funcname"),
    (ast.CreateEnumStmt, "typeName"),
    (ast.AlterEnumStmt, "typeName"),
    (ast.CreateDomainStmt, "domainname"),
    (ast.DefineStmt, "defnames"),
    (ast.CollateClause, "collname"),
)


def _qualifier(names: object) -> str | None:
    """The schema of a qualified name (a tuple of String nodes), if it has one we do not allow."""
    if not isinstance(names, tuple) or len(names) < 2 or not all(isinstance(n, ast.String) for n in names):
        return None
    schema = names[0].sval
    return None if schema in _TENANT_ALLOWED_SCHEMAS else schema


def fixed_schema_references(sql_file: SqlFile) -> list[tuple[int, str]]:
    """(line, what) for each name in the file that is qualified with a fixed schema other than
    pg_catalog, or that would move objects out of the tenant (CREATE SCHEMA, SET SCHEMA, SET
    search_path). In schema-per-tenant mode every tenant runs the same file with search_path set to
    itself, so `public.orders` would be the same table for every tenant. Function bodies and string
    literals (e.g. 'public.t'::regclass) are not parsed: they are not seen here."""
    text = sql_file.text
    found: list[tuple[int, str]] = []

    class Finder(visitors.Visitor):
        def __init__(self, start: int) -> None:
            self.start = start

        def at(self, node: object) -> int:
            location = getattr(node, "location", None)
            return _line_of(text, location if isinstance(location, int) and location >= 0 else self.start)

        def visit(self, ancestors: object, node: ast.Node) -> None:
            if isinstance(node, ast.RangeVar) and node.schemaname and node.schemaname not in _TENANT_ALLOWED_SCHEMAS:
                found.append((self.at(node), f"{node.schemaname}.{node.relname}"))
            for kind, attribute in _NAME_LISTS:
                if isinstance(node, kind):
                    names = getattr(node, attribute, None)
                    if _qualifier(names):
                        found.append((self.at(node), ".".join(n.sval for n in names)))  # type: ignore[union-attr]
            if isinstance(node, (ast.DropStmt, ast.CommentStmt, ast.RenameStmt, ast.AlterObjectSchemaStmt)):
                objects = node.objects if isinstance(node, ast.DropStmt) else (getattr(node, "object", None),)
                for obj in objects or ():
                    if _qualifier(obj):
                        found.append((self.at(node), ".".join(n.sval for n in obj)))  # type: ignore[union-attr]
            if isinstance(node, ast.AlterObjectSchemaStmt):
                found.append((self.at(node), f"SET SCHEMA {node.newschema}"))
            if isinstance(node, ast.CreateSchemaStmt):
                found.append((self.at(node), f"CREATE SCHEMA {node.schemaname}"))
            if isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() == "search_path":
                found.append((self.at(node), "SET search_path"))
            if isinstance(node, ast.GrantStmt) and node.targtype == GrantTargetType.ACL_TARGET_ALL_IN_SCHEMA:
                schemas = ", ".join(n.sval for n in node.objects or () if isinstance(n, ast.String))
                found.append((self.at(node), f"ALL ... IN SCHEMA {schemas}"))

    for raw in _parse(sql_file):
        Finder(raw.stmt_location or 0)(raw)
    return sorted(set(found))


def check_tenant_revision(revision: Revision) -> None:
    """Refuse (exit 3) a revision that cannot run once per tenant schema: see fixed_schema_references."""
    for sql_file in (revision.up, revision.down):
        if not sql_file.has_sql:
            continue
        refs = fixed_schema_references(sql_file)
        if refs:
            line, _what = refs[0]
            shown = ", ".join(f"{what} (line {at})" for at, what in refs[:5])
            more = f" and {len(refs) - 5} more" if len(refs) > 5 else ""
            raise RevisionFileError(
                f"names a fixed schema, which schema-per-tenant mode (--schemas) refuses: {shown}{more}. Each "
                "tenant runs this file with search_path set to its own schema (then public): write the names "
                "unqualified so they land in the tenant, or keep shared objects out of the tenant revisions.",
                path=sql_file.path,
                line=line,
            )
