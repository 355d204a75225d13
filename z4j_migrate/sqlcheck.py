"""SQL-level checks and statement splitting with PostgreSQL's own parser (pglast).

Imported only when a revision is about to run or when `check` lints a
directory, never on the no-op startup path: pglast costs import time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pglast
from pglast import ast, visitors
from pglast.enums import GrantTargetType

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
        raise _syntax_error(sql_file, exc) from None


# ------------------------------------------------------------------ what a file's statements say

# In the C parser's JSON text, what may need a closer look: transaction control, statements that
# cannot run in a transaction block, DROP EXTENSION. Anything else (most files) is decided by this
# one search, without building a syntax tree (string literals are escaped there, so SQL cannot fake
# a match; a false match only costs the closer look).
_SUSPECT = re.compile(
    r'"(?:TransactionStmt|VacuumStmt|CreatedbStmt|DropdbStmt|AlterSystemStmt|CreateTableSpaceStmt|'
    r'DropTableSpaceStmt|ReindexStmt|ClusterStmt|DiscardStmt|CreateSubscriptionStmt|OBJECT_EXTENSION)"'
    r'|"concurrent":true'
)
# settle's text-only filter: a wrapper starts the file; the rest only matters where the SQL decides.
_OPENS_WITH = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z))*(?:/\*|begin\b|start\b)", re.IGNORECASE)
_NO_TRANSACTION_WORDS = ("concurrently", "vacuum", "database", "system", "tablespace", "cluster", "discard")
_OPENERS = ("TRANS_STMT_BEGIN", "TRANS_STMT_START")
_FALSE = ("false", "off", "0", "no")


@dataclass(frozen=True)
class _Verdict:
    """What one file's statements say: problems (in line order), the BEGIN/COMMIT wrapper's spans,
    and the statements that cannot run in a transaction block."""

    has_statements: bool
    problems: tuple[RevisionFileError, ...] = ()
    wrapper: tuple[tuple[int, int], ...] = ()
    no_transaction: tuple[tuple[int, str], ...] = ()  # (line, what)


def _syntax_error(sql_file: SqlFile, exc: pglast.parser.ParseError) -> RevisionFileError:
    message, offset = exc.args[0], exc.args[1] if len(exc.args) > 1 else 0
    if offset is None:  # "syntax error at end of input": pglast gives no position
        offset = len(sql_file.text.rstrip())
    line = _line_of(sql_file.text, offset)
    column = offset - (sql_file.text.rfind("\n", 0, offset) + 1) + 1
    return RevisionFileError(f"SQL syntax error at column {column}: {message}.", path=sql_file.path, line=line)


def _examine(sql_file: SqlFile, *, is_down: bool, thorough: bool = False) -> _Verdict:
    """One parse (the C parser's JSON text); the statements are looked at only when that text holds
    something suspect (`thorough`: always, which the tests use to prove the shortcut)."""
    try:
        tree = pglast.parser.parse_sql_json(sql_file.text)
    except pglast.parser.ParseError as exc:
        return _Verdict(False, (_syntax_error(sql_file, exc),))
    if not thorough and _SUSPECT.search(tree) is None:
        return _Verdict('"stmt":' in tree)  # every top-level statement is {"stmt": {...}}
    return _Reading(sql_file, is_down, json.loads(tree).get("stmts", [])).verdict()


class _Reading:
    """The top-level statements of one file, as (kind, fields, start, end) from the JSON tree."""

    def __init__(self, sql_file: SqlFile, is_down: bool, stmts: list[dict[str, Any]]) -> None:
        self.file, self.is_down, self.text = sql_file, is_down, sql_file.text
        self.stmts = []
        for raw in stmts:
            ((kind, fields),) = raw["stmt"].items()
            start = raw.get("stmt_location", 0)
            end = start + raw["stmt_len"] if raw.get("stmt_len") else len(self.text)
            self.stmts.append((kind, fields, start, end))
        self.problems: list[RevisionFileError] = []

    def line(self, index: int) -> int:
        return _line_of(self.text, self.stmts[index][2])

    def problem(self, index: int, message: str) -> None:
        self.problems.append(RevisionFileError(message, path=self.file.path, line=self.line(index)))

    def verdict(self) -> _Verdict:
        wrapper = self._wrapper()
        control = [i for i, s in enumerate(self.stmts) if s[0] == "TransactionStmt" and i not in wrapper]
        for index in control:
            transactional = self.file.transactional or self.file.decided_by_sql
            self.problem(index, _control_message(self._keyword(index), bool(wrapper), transactional))
        no_tx = [(i, what) for i, s in enumerate(self.stmts) if (what := _cannot_run_in_transaction(*s[:2]))]
        self._judge(wrapper, no_tx)
        if self.is_down:
            for index, (kind, fields, _, _) in enumerate(self.stmts):
                if kind == "DropStmt" and fields.get("removeType") == "OBJECT_EXTENSION":
                    self.problem(
                        index,
                        "DROP EXTENSION is not allowed in a down file: extensions are shared with other "
                        "applications and are never dropped by z4j-migrate.",
                    )
        spans = tuple(self._span(i) for i in wrapper)
        return _Verdict(
            len(self.stmts) > len(wrapper),
            tuple(sorted(self.problems, key=lambda p: p.line or 0)),
            spans,
            tuple((self.line(i), what) for i, what in no_tx),
        )

    def _wrapper(self) -> tuple[int, ...]:
        """(first, last) when the file's statements are wrapped in one BEGIN ... COMMIT, else ()."""
        if len(self.stmts) < 2:
            return ()
        (first, opening, _, _), (last, closing, _, _) = self.stmts[0], self.stmts[-1]
        if first != "TransactionStmt" or opening.get("kind") not in _OPENERS:
            return ()
        if last != "TransactionStmt" or closing.get("kind") != "TRANS_STMT_COMMIT" or closing.get("chain"):
            return ()
        if opening.get("options"):
            self.problem(
                0,
                f"{self._keyword(0)} with options (isolation level, read only, ...) is not honoured: the "
                "file runs in z4j-migrate's own transaction, at the server's default settings. Drop the "
                "options (or the whole BEGIN ... COMMIT wrapper, which is not needed).",
            )
        return (0, len(self.stmts) - 1)

    def _judge(self, wrapper: tuple[int, ...], no_tx: list[tuple[int, str]]) -> None:
        """A wrapper or a statement that cannot run in a transaction, against what the file says."""
        if wrapper and not self.file.transactional and not self.file.decided_by_sql:
            self.problem(
                0,
                "this file says '-- transactional: false' but wraps its statements in BEGIN ... COMMIT; "
                "remove one of the two.",
            )
        for index, what in no_tx:
            if wrapper:
                self.problem(
                    index,
                    f"{what} cannot run inside a transaction block, and this file wraps its statements in "
                    f"BEGIN ... COMMIT (line {self.line(0)}). Remove the wrapper"
                    + ("." if self.file.decided_by_sql else " and add '-- transactional: false' to the header."),
                )
            elif self.file.transactional and not self.file.decided_by_sql:
                self.problem(
                    index,
                    f"{what} cannot run inside a transaction block, and this file runs in one. Add "
                    "'-- transactional: false' to its header: it then runs statement by statement, each "
                    "journaled (docs/revision-format.md); keep such a revision small.",
                )

    def _keyword(self, index: int) -> str:
        start, end = self.stmts[index][2:]
        words = self.text[start:end].split(";", 1)[0].split()
        return " ".join(words[:2]).upper() or "BEGIN"

    def _span(self, index: int) -> tuple[int, int]:
        """A wrapper statement's characters and its semicolon."""
        start, end = self.stmts[index][2:]
        rest = len(self.text) - len(self.text[end:].lstrip())
        return start, rest + 1 if self.text[rest : rest + 1] == ";" else end


def _control_message(keyword: str, wrapped: bool, transactional: bool) -> str:
    if not transactional:
        return (
            f"transaction control ({keyword}) is not allowed in a non-transactional file: each of its "
            "statements runs on its own, journaled, so that a stop part-way can be resumed. Remove it."
        )
    where = " inside the BEGIN ... COMMIT around it" if wrapped else ""
    return (
        f"transaction control ({keyword}) is not allowed in a transactional file{where}: z4j-migrate "
        "runs the file in its own transaction, so that the revision and its bookkeeping commit "
        "together. The one form accepted is a BEGIN (or START TRANSACTION) as the file's first "
        "statement with a COMMIT (or END) as its last, which are dropped. Remove it (split the file "
        "into revisions if it commits part-way); for statements that cannot run in a transaction, "
        "use '-- transactional: false'."
    )


def _cannot_run_in_transaction(kind: str, fields: dict[str, Any]) -> str | None:
    """The statement, named, when PostgreSQL refuses it inside a transaction block."""
    simple = {
        "CreatedbStmt": "CREATE DATABASE",
        "DropdbStmt": "DROP DATABASE",
        "AlterSystemStmt": "ALTER SYSTEM",
        "CreateTableSpaceStmt": "CREATE TABLESPACE",
        "DropTableSpaceStmt": "DROP TABLESPACE",
    }
    if kind in simple:
        return simple[kind]
    if kind == "IndexStmt" and fields.get("concurrent"):
        return "CREATE INDEX CONCURRENTLY"
    if kind == "DropStmt" and fields.get("concurrent"):
        return "DROP INDEX CONCURRENTLY"
    if kind == "VacuumStmt" and fields.get("is_vacuumcmd"):
        return "VACUUM"
    if kind == "ReindexStmt":
        if any(_defname(o) == "concurrently" for o in fields.get("params", ())):
            return "REINDEX CONCURRENTLY"
        if fields.get("kind") in ("REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE"):
            return f"REINDEX {fields['kind'].rsplit('_', 1)[1]}"
    if kind == "ClusterStmt" and not fields.get("relation"):
        return "CLUSTER (of every table)"
    if kind == "DiscardStmt" and fields.get("target") == "DISCARD_ALL":
        return "DISCARD ALL"
    if kind == "CreateSubscriptionStmt" and not any(
        _defname(o) in ("create_slot", "connect") and _defvalue(o) in _FALSE for o in fields.get("options", ())
    ):
        return "CREATE SUBSCRIPTION (creating its slot)"
    if kind == "AlterTableStmt" and any(
        c.get("AlterTableCmd", {}).get("def", {}).get("PartitionCmd", {}).get("concurrent")
        for c in fields.get("cmds", ())
    ):
        return "ALTER TABLE ... DETACH PARTITION CONCURRENTLY"
    return None


def _defname(option: dict[str, Any]) -> str | None:
    return option.get("DefElem", {}).get("defname")


def _defvalue(option: dict[str, Any]) -> str:
    arg = option.get("DefElem", {}).get("arg", {})
    value = arg.get("String", {}).get("sval") or arg.get("A_Const", {}).get("sval", {}).get("sval")
    if value is None and "Integer" in arg:
        value = str(arg["Integer"].get("ival", 0))
    return str(value).lower()


def _blank(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """The text with each span turned into spaces, every newline kept: lines and offsets stay put."""
    chars = list(text)
    for start, end in spans:
        for i in range(start, end):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def _first_problem(verdict: _Verdict) -> None:
    if verdict.problems:
        raise verdict.problems[0]


def check_file(sql_file: SqlFile, *, is_down: bool) -> tuple[ast.RawStmt, ...]:
    """Reject what would break atomicity or our promises, naming file and line; the statements
    (syntax trees) without a BEGIN ... COMMIT wrapper. Every statement is looked at."""
    verdict = _examine(sql_file, is_down=is_down, thorough=True)
    _first_problem(verdict)
    statements = pglast.parse_sql(sql_file.text)
    return statements[1:-1] if verdict.wrapper else statements


def check_file_fast(sql_file: SqlFile, *, is_down: bool) -> bool:
    """check_file's verdict at about a tenth of its cost; returns whether the file has statements.

    Building pglast's Python syntax tree is most of the client time of a large upgrade
    (docs/performance.md); the same C parser's JSON text is enough to see that nothing is refused,
    and is read (json) only when it holds something suspect.
    """
    verdict = _examine(sql_file, is_down=is_down)
    _first_problem(verdict)
    return verdict.has_statements


def _settled(sql_file: SqlFile, *, is_down: bool, verdict: _Verdict | None = None) -> SqlFile:
    """The file as it will run (see settle); `verdict`: already examined (check_revision)."""
    if sql_file.settled or not sql_file.has_sql:
        return sql_file
    if verdict is None:
        if not _may_need_the_parser(sql_file):
            return sql_file if sql_file.transactional or not sql_file.decided_by_sql else _decided(sql_file, True)
        verdict = _examine(sql_file, is_down=is_down)
    _first_problem(verdict)
    if not verdict.wrapper and not sql_file.decided_by_sql:
        return sql_file  # nothing to decide (most files): no copy; settle's text filter stays cheap
    transactional = not verdict.no_transaction if sql_file.decided_by_sql else sql_file.transactional
    text = _blank(sql_file.text, verdict.wrapper) if verdict.wrapper else sql_file.text
    return replace(sql_file, text=text, transactional=transactional, settled=True)


def _decided(sql_file: SqlFile, transactional: bool) -> SqlFile:
    return replace(sql_file, transactional=transactional, settled=True)


def _may_need_the_parser(sql_file: SqlFile) -> bool:
    """Whether settle must read the statements: a file that might start with BEGIN, or, where the
    SQL decides the mode, one that names a statement that cannot run in a transaction."""
    if _OPENS_WITH.match(sql_file.text):
        return True
    if not sql_file.decided_by_sql:
        return False
    lowered = sql_file.text.lower()
    return any(word in lowered for word in _NO_TRANSACTION_WORDS) or "subscription" in lowered


def settle(revision: Revision) -> Revision:
    """The revision as it runs: each side's transaction mode decided by its statements, and a
    top-level BEGIN ... COMMIT around a whole file dropped (blanked out, newlines kept, so the
    server's error positions still name the file's lines; the checksum stays the published file's).

    In ours (`decided_by_sql` False) the directives decide and a statement that cannot run in a
    transaction block, in a transactional file, is refused (RevisionFileError, exit 3). In foreign
    layouts without a marker, such a file runs without a transaction. Other top-level transaction
    control is refused, naming the line. Cheap when there is nothing to decide (a text filter, no
    parse) and a no-op on a settled revision; check_revision settles as it checks.
    """
    up, down = _settled(revision.up, is_down=False), _settled(revision.down, is_down=True)
    if up is revision.up and down is revision.down:
        return revision
    return replace(revision, up=up, down=down)


def check_revision(revision: Revision, problems: list[RevisionFileError] | None = None) -> Revision | None:
    """Full SQL check of both sides of a revision; returns it settled (see settle).

    Raises the first problem; with `problems` (check: every problem in one report), appends every
    problem of both files there instead and returns None if there was one.
    """
    found: list[RevisionFileError] = []
    verdicts = []
    for sql_file, is_down in ((revision.up, False), (revision.down, True)):
        verdict = _examine(sql_file, is_down=is_down) if sql_file.has_sql else None
        verdicts.append(verdict)
        found += verdict.problems if verdict else ()
    up, down = verdicts
    if up is not None and not up.problems and not up.has_statements:
        found.append(RevisionFileError("has no SQL statements.", path=revision.up.path))
    if down is not None and not down.problems:
        if revision.irreversible is None and not down.has_statements:
            found.append(
                RevisionFileError(
                    "has no SQL statements; write the undo, or declare '-- irreversible: <message>'.",
                    path=revision.down.path,
                )
            )
        elif revision.irreversible is not None and down.has_statements:
            found.append(
                RevisionFileError("an irreversible down must not contain statements.", path=revision.down.path)
            )
    if found:
        if problems is None:
            raise found[0]
        problems.extend(found)
        return None
    up_file = _settled(revision.up, is_down=False, verdict=up)
    down_file = _settled(revision.down, is_down=True, verdict=down)
    if up_file is revision.up and down_file is revision.down:
        return revision
    return replace(revision, up=up_file, down=down_file)


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


def check_unverified_downs(plan: Sequence[DowngradeStep], unverified: Collection[str]) -> list[DowngradeStep]:
    """The plan with each down settled (see settle), as it will run.

    A down is SQL-checked at downgrade time only when nobody checked it before: z4j-migrate checks
    both files of a revision before applying it, and the drift check proves the down file (or the
    stored down) is the one checked then. Only revisions applied by stock yoyo (no checksum) are
    left, which keeps the parser out of most downgrades (settle reads a down only when its text
    might start with BEGIN, or when its SQL decides its mode)."""
    settled = []
    for step in plan:
        down = step.revision.down
        verdict = None
        if down.has_sql and step.revision.id in unverified:
            verdict = _examine(down, is_down=True)
            _first_problem(verdict)
        down = _settled(down, is_down=True, verdict=verdict)
        settled.append(
            step if down is step.revision.down else replace(step, revision=replace(step.revision, down=down))
        )
    return settled


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
