"""The lint part of `z4j-migrate check`: squawk per file, and destructive statements in up files.

squawk (https://squawkhq.com, the `squawk-cli` package) is told whether each
file runs inside a transaction (`--assume-in-transaction`), so it judges a
transactional revision as the single transaction z4j-migrate runs it in. Which
of its rules are errors, and which are not reported at all, is configured in
the nearest pyproject.toml:

    [tool.z4j-migrate.lint]
    error_rules = ["adding-required-field"]          # findings of these fail `check` (exit 3)
    ignore_rules = ["require-lock-timeout", "require-statement-timeout"]
    down_ignore_rules = ["ban-drop-*"]               # extra rules not reported for .down.sql files
                                                     # (default: DEFAULT_DOWN_IGNORE_RULES; a list replaces it)
    pg_version = "15"                                # passed to squawk --pg-version
    squawk = "/path/to/squawk"                       # default: next to python, then PATH

Rule names may be shell-style patterns (`ban-drop-*`).

Our own rule, `destructive-statement`, finds with PostgreSQL's parser (pglast)
what destroys data in an up file: DROP TABLE, ALTER TABLE ... DROP COLUMN,
ALTER COLUMN ... TYPE and TRUNCATE, on a table the same file did not create.
Such a revision must say so in its header (`-- destructive: <why>`) or have an
irreversible down; otherwise the finding is an error. It is not configurable.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .revisions import Revision, RevisionSet, SqlFile

ENV_SQUAWK = "Z4J_SQUAWK"
DESTRUCTIVE_RULE = "destructive-statement"
UNUSED_DIRECTIVE_RULE = "destructive-directive-unused"
# z4j-migrate runs every statement with lock_timeout set (--statement-lock-timeout), and a
# statement_timeout would abort legitimate long backfills: both squawk reminders are noise here.
DEFAULT_IGNORE_RULES = ("require-lock-timeout", "require-statement-timeout")
# Not reported for down files: a down undoes its up, and each of these findings is the undo itself
# (docs/verify.md, "Down files"). Kept for downs: what fails or rewrites at run time (adding-required-field,
# adding-field-with-default, syntax-error, ban-concurrent-index-creation-in-transaction, transaction-nesting,
# ...) and prefer-robust-stmts (a non-transactional down re-run after a failure).
DEFAULT_DOWN_IGNORE_RULES = (
    "ban-drop-*",  # undoing a CREATE, ADD or SET NOT NULL is a DROP
    # The safe forms of these split a statement over transactions (CONCURRENTLY, NOT VALID then
    # VALIDATE): the down would become non-transactional, giving up the atomic undo on the path
    # that runs rarely and under pressure, for what the up changed moments before.
    "require-concurrent-index-*",
    "constraint-missing-not-valid",
    "adding-foreign-key-constraint",
    "disallowed-unique-constraint",
    "adding-not-nullable-field",
    "renaming-*",  # undoing a rename is renaming back
    "changing-column-type",  # only the reverse change restores the old type
    # A down restores the definition that was there; choosing a better type is the up's job.
    "prefer-bigint-over-int",
    "prefer-bigint-over-smallint",
    "prefer-identity",
    "prefer-text-field",
    "prefer-timestamp-tz",
    "ban-char-field",
)
_KEYS = {"error_rules", "ignore_rules", "down_ignore_rules", "pg_version", "squawk"}


@dataclass(frozen=True)
class LintConfig:
    error_rules: tuple[str, ...] = ()
    ignore_rules: tuple[str, ...] = DEFAULT_IGNORE_RULES
    down_ignore_rules: tuple[str, ...] = DEFAULT_DOWN_IGNORE_RULES
    pg_version: str | None = None
    squawk: str | None = None
    source: str | None = None  # the pyproject.toml it was read from


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    column: int
    rule: str
    severity: str  # error | warning
    message: str
    help: str | None = None
    source: str = "squawk"  # squawk | z4j-migrate

    def render(self) -> str:
        text = f"{self.line}:{self.column}  {self.severity:<7}  {self.rule}  {self.message}"
        return f"{text} ({self.help})" if self.help else text


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    squawk: str | None = None  # "squawk 2.70.0", or None when squawk did not run
    config: LintConfig = field(default_factory=LintConfig)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


# ------------------------------------------------------------------------ config


def find_pyproject(*starts: str | os.PathLike[str]) -> Path | None:
    """The nearest pyproject.toml upward from each start directory in turn."""
    for start in starts:
        here = Path(start).resolve()
        for folder in (here, *here.parents):
            candidate = folder / "pyproject.toml"
            if candidate.is_file():
                return candidate
    return None


def _rules(value: object, key: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{path}: [tool.z4j-migrate.lint] {key} must be a list of squawk rule names.")
    return tuple(v.strip() for v in value)


def load_config(migrations_dir: str | os.PathLike[str] | None = None) -> LintConfig:
    """[tool.z4j-migrate.lint] of the nearest pyproject.toml (from the migrations dir, then the cwd)."""
    starts = [d for d in (migrations_dir, Path.cwd()) if d is not None]
    path = find_pyproject(*starts)
    if path is None:
        return LintConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: cannot be parsed ({exc}).") from None
    section = data.get("tool", {}).get("z4j-migrate", {}).get("lint")
    if section is None:
        return LintConfig(source=str(path))
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [tool.z4j-migrate.lint] must be a table.")
    unknown = set(section) - _KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {sorted(unknown)} in [tool.z4j-migrate.lint]; known: {', '.join(sorted(_KEYS))}."
        )
    kwargs: dict[str, object] = {"source": str(path)}
    for key in ("error_rules", "ignore_rules", "down_ignore_rules"):
        if key in section:
            kwargs[key] = _rules(section[key], key, path)
    for key in ("pg_version", "squawk"):
        if key in section:
            if not isinstance(section[key], (str, int, float)) or not str(section[key]).strip():
                raise ConfigError(f"{path}: [tool.z4j-migrate.lint] {key} must be a string.")
            kwargs[key] = str(section[key]).strip()
    if "squawk" in kwargs and not Path(str(kwargs["squawk"])).is_absolute():
        kwargs["squawk"] = str(path.parent / str(kwargs["squawk"]))
    return LintConfig(**kwargs)  # type: ignore[arg-type]


def _matches(rule: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(rule, p) for p in patterns)


# ------------------------------------------------------------------------ squawk


def find_squawk(config: LintConfig) -> str:
    """The squawk binary: config `squawk`, $Z4J_SQUAWK, next to this Python, then PATH."""
    explicit = config.squawk or os.environ.get(ENV_SQUAWK)
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        where = "[tool.z4j-migrate.lint] squawk" if config.squawk else ENV_SQUAWK
        raise ConfigError(f"squawk not found at {explicit} ({where}); fix the path, or run check --no-lint.")
    beside = Path(sys.executable).parent / ("squawk.exe" if os.name == "nt" else "squawk")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("squawk")
    if found:
        return found
    raise ConfigError(
        "squawk is not installed (looked next to this Python and on PATH): install it with "
        "pip install 'z4j-migrate[lint]' (the squawk-cli package), set Z4J_SQUAWK, or run check --no-lint."
    )


def squawk_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        raise ConfigError(f"cannot run squawk ({binary}): {exc.strerror or exc}.") from None
    return out.stdout.strip() or "squawk"


def run_squawk(binary: str, files: list[SqlFile], *, in_transaction: bool, pg_version: str | None) -> list[dict]:
    """squawk's JSON findings for files that all run the same way (in a transaction or not)."""
    if not files:
        return []
    args = [binary, "--reporter", "json", "--no-error-on-unmatched-pattern"]
    args.append("--assume-in-transaction" if in_transaction else "--no-assume-in-transaction")
    if pg_version:
        args.append(f"--pg-version={pg_version}")
    args += [str(Path(f.path).resolve()) for f in files]
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    except OSError as exc:
        raise ConfigError(f"cannot run squawk ({binary}): {exc.strerror or exc}.") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"squawk ({binary}) did not finish within 300s.") from None
    text = out.stdout.strip()
    try:
        found = json.loads(text) if text else []
    except json.JSONDecodeError:
        found = None
    if out.returncode not in (0, 1) or not isinstance(found, list):
        detail = (out.stderr or out.stdout).strip().splitlines()
        raise ConfigError(
            f"squawk failed (exit {out.returncode}): {detail[-1] if detail else 'no output'}; run check --no-lint "
            "to skip it."
        )
    return found


def _squawk_findings(revset: RevisionSet, config: LintConfig, binary: str) -> tuple[list[Finding], int]:
    files: list[tuple[SqlFile, bool]] = []
    for rev in revset.revisions:
        files.append((rev.up, False))
        if rev.down.has_sql:
            files.append((rev.down, True))
    by_path = {str(Path(f.path).resolve()): (f, is_down) for f, is_down in files}
    findings = []
    for in_tx in (True, False):
        group = [f for f, _ in files if f.transactional is in_tx]
        for item in run_squawk(binary, group, in_transaction=in_tx, pg_version=config.pg_version):
            rule = str(item.get("rule_name") or "unknown")
            sql_file, is_down = by_path.get(str(Path(str(item.get("file", ""))).resolve()), (None, False))
            if sql_file is None:
                continue
            if _matches(rule, config.ignore_rules) or (is_down and _matches(rule, config.down_ignore_rules)):
                continue
            if rule == "transaction-nesting" and sql_file.settled:
                continue  # sqlcheck.settle dropped a whole-file BEGIN ... COMMIT and refuses any other control
            severity = "error" if rule == "syntax-error" or _matches(rule, config.error_rules) else "warning"
            findings.append(
                Finding(
                    sql_file.path,
                    int(item.get("line") or 0) + 1,  # squawk counts lines and columns from 0
                    int(item.get("column") or 0) + 1,
                    rule,
                    severity,
                    str(item.get("message") or "").strip(),
                    (str(item["help"]).strip() or None) if item.get("help") else None,
                )
            )
    return findings, len(files)


# ------------------------------------------------------------ destructive statements


@dataclass(frozen=True)
class Destructive:
    line: int
    column: int
    what: str  # e.g. "drops column tasks.payload"


def _dotted(names: tuple | list) -> str:
    return ".".join(n.sval for n in names)


def _relname(rangevar: object) -> str:
    schema = getattr(rangevar, "schemaname", None)
    return f"{schema}.{rangevar.relname}" if schema else rangevar.relname  # type: ignore[attr-defined]


def _bare(name: str) -> str:
    return name.split(".")[-1]


def destructive_statements(sql_file: SqlFile) -> list[Destructive]:
    """Statements that destroy data already in the database, found with PostgreSQL's parser."""
    import pglast
    from pglast import ast
    from pglast.enums import AlterTableType, ObjectType

    text = sql_file.text
    try:
        statements = pglast.parse_sql(text)
    except pglast.parser.ParseError:
        return []  # check_revision reports syntax errors, with their line
    created: set[str] = set()  # tables this file created: dropping or changing them loses nothing
    added: set[tuple[str, str]] = set()  # columns this file added
    found: list[Destructive] = []

    def where(raw: ast.RawStmt) -> tuple[int, int]:
        start = raw.stmt_location or 0
        chunk = text[start : start + (raw.stmt_len or len(text))]
        start += len(chunk) - len(chunk.lstrip())
        return text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1

    for raw in statements:
        node = raw.stmt
        line, column = where(raw)
        if isinstance(node, (ast.CreateStmt, ast.CreateTableAsStmt)):
            relation = node.relation if isinstance(node, ast.CreateStmt) else node.into.rel
            created.add(_bare(_relname(relation)))
        elif isinstance(node, ast.RenameStmt) and node.renameType == ObjectType.OBJECT_TABLE and node.relation:
            if _bare(_relname(node.relation)) in created:
                created.add(node.newname)
        elif isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
            for names in node.objects or ():
                table = _dotted(names)
                if _bare(table) not in created:
                    found.append(Destructive(line, column, f"drops table {table}"))
        elif isinstance(node, ast.TruncateStmt):
            for rel in node.relations or ():
                if _bare(_relname(rel)) not in created:
                    found.append(Destructive(line, column, f"truncates table {_relname(rel)}"))
        elif isinstance(node, ast.AlterTableStmt) and node.objtype == ObjectType.OBJECT_TABLE:
            table = _relname(node.relation)
            fresh = _bare(table) in created
            for cmd in node.cmds or ():
                if not isinstance(cmd, ast.AlterTableCmd):
                    continue
                if cmd.subtype == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
                    added.add((_bare(table), cmd.def_.colname))
                elif fresh or (_bare(table), cmd.name) in added:
                    continue
                elif cmd.subtype == AlterTableType.AT_DropColumn:
                    found.append(Destructive(line, column, f"drops column {table}.{cmd.name}"))
                elif cmd.subtype == AlterTableType.AT_AlterColumnType:
                    found.append(Destructive(line, column, f"changes the type of column {table}.{cmd.name}"))
    return found


def _destructive_findings(revision: Revision, *, foreign: bool = False) -> list[Finding]:
    """`foreign`: the directory is another tool's layout, which has no destructive marker: a warning."""
    found = destructive_statements(revision.up)
    if foreign and revision.destructive is None and revision.irreversible is None:
        severity, why = (
            "warning",
            (
                ", which destroys or rewrites data already there (another tool's layout has no '-- destructive:' "
                "marker, so this is a warning; make sure a backup precedes the release)"
            ),
        )
    elif revision.destructive is not None:
        severity, why = "warning", f"; declared destructive: {revision.destructive}"
    elif revision.irreversible is not None:
        severity, why = "warning", "; the revision is irreversible"
    else:
        severity, why = (
            "error",
            (
                ", which destroys or rewrites data already there. Say so in the header with "
                "'-- destructive: <why this is acceptable>', or make the down '-- irreversible: <message>'"
            ),
        )
    out = [
        Finding(revision.up.path, d.line, d.column, DESTRUCTIVE_RULE, severity, f"{d.what}{why}", source="z4j-migrate")
        for d in found
    ]
    if revision.destructive is not None and not found:
        out.append(
            Finding(
                revision.up.path,
                1,
                1,
                UNUSED_DIRECTIVE_RULE,
                "warning",
                "'-- destructive:' is declared but no statement drops a table or column, changes a column type "
                "or truncates; remove the directive",
                source="z4j-migrate",
            )
        )
    return out


# ------------------------------------------------------------------------- lint


def lint(revset: RevisionSet, config: LintConfig | None = None, *, squawk: bool = True) -> LintReport:
    """Every finding for a directory: squawk's (unless `squawk=False`) and destructive statements."""
    config = config or load_config(revset.directory)
    report = LintReport(config=config)
    for revision in revset.revisions:
        report.findings.extend(_destructive_findings(revision, foreign=revset.layout != "z4j"))
    report.files = sum(1 + (1 if r.down.has_sql else 0) for r in revset.revisions)
    if squawk:
        binary = find_squawk(config)
        report.squawk = squawk_version(binary)
        found, _ = _squawk_findings(revset, config, binary)
        report.findings.extend(found)
    order = {r.up.path: (r.version, 0) for r in revset.revisions} | {
        r.down.path: (r.version, 1) for r in revset.revisions
    }
    report.findings.sort(key=lambda f: (order.get(f.path, (1 << 30, 0)), f.line, f.column, f.rule))
    return report


def _display(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path


SHOWN_PER_RULE = 3  # locations listed under each rule unless verbose


def by_rule(findings: list[Finding]) -> list[list[Finding]]:
    """The findings grouped by severity and rule: errors first, then the most frequent rule first."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.severity, f.rule), []).append(f)
    return sorted(groups.values(), key=lambda g: (g[0].severity != "error", -len(g), g[0].rule))


def _render_rule(group: list[Finding], shown: int | None) -> list[str]:
    """One line for the rule (count, and its message when every finding has the same one), then where."""
    first = group[0]
    same_message = all(f.message == first.message and f.help == first.help for f in group)
    head = f"{first.severity}  {first.rule}  {len(group)}"
    if same_message:
        head += f": {first.message}" + (f" ({first.help})" if first.help else "")
    lines = [head]
    listed = group if shown is None else group[:shown]
    for f in listed:
        where = f"    {_display(f.path)}:{f.line}:{f.column}"
        lines.append(where if same_message else f"{where}  {f.message}" + (f" ({f.help})" if f.help else ""))
    if len(listed) < len(group):
        lines.append(f"    ... and {len(group) - len(listed)} more (check -v lists every finding)")
    return lines


def render(report: LintReport, *, verbose: bool = False) -> str:
    """One block per rule (its count, message and first few locations; every location when `verbose`),
    then the totals: a directory with the same finding in hundreds of files stays readable."""
    lines: list[str] = []
    for group in by_rule(report.findings):
        lines.extend(_render_rule(group, None if verbose else SHOWN_PER_RULE))
    tool = report.squawk or "squawk skipped (--no-lint)"
    config = f"; config {_display(report.config.source)}" if report.config.source else ""
    lines.append(
        f"lint: {len(report.errors)} error(s), {len(report.warnings)} warning(s) in {report.files} file(s) "
        f"({tool}{config})"
    )
    return "\n".join(lines) + "\n"
