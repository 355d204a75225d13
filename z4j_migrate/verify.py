"""`z4j-migrate verify`: prove on a real PostgreSQL that every down undoes its up.

The proof runs the real engine (`api.upgrade` / `api.downgrade`, so yoyo, the
bookkeeping, preflights and locks are exactly what production runs) against a
scratch database, and compares catalog snapshots (`catalog.snapshot`, the same
function the tests and `z4j-migrate schema` use):

1. stepwise, for each revision k in order: apply k, roll k back, snapshot (it
   must equal the snapshot before k), apply k again and snapshot (the schema
   with k applied); when the down left a warning or an accepted difference, the
   down and the up once more (they must give the same schemas again); go on;
2. the whole range: head -> optional seed SQL -> base (nothing of ours may
   remain; extensions and bookkeeping aside) -> head (the same schema as
   before) -> optional smoke SQL.

An irreversible revision is applied but not rolled back, and the range goes
down to it instead of to base. The first mismatch stops the run; the report
names the revision, the file and the object. With `keep_going` a mismatch is
recorded and the scratch database is rebuilt from nothing up to that revision (a
known state, whatever the bad down left), and the next revision is checked.

Differences are classified (`classify`): a column that only moved (re-added at the
end) is a warning unless `strict`; an enum label left behind is a failure that says
PostgreSQL cannot drop one; a difference the down declares with
`-- verify-accept: <difference>` is accepted. The stepwise pass drives the engine's
own per-revision calls (runner.apply_revision / rollback_revision, with the
preflights) on one connection: the revisions are discovered once, not on every call.
In a scratch database where the role may create event triggers, the snapshots come
from the change journal (journal.py): only what each step touched is described again.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import KW_ONLY, asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.conninfo import make_conninfo

from . import api, diagnose, journal, progress
from .catalog import Difference, Snapshot, diff, snapshot
from .config import Settings, parse_database_url
from .db import connect, connected
from .errors import (
    ConfigError,
    ConnectionFailed,
    PrivilegeError,
    RefusedError,
    VerificationFailed,
    Z4jMigrateError,
)
from .revisions import Revision, RevisionSet, discover
from .state import DbState, revision_number
from .store import Store

SCRATCH_PREFIX = "z4j_verify_"

# Schemas of our own: everything but the system's and those extensions own.
_SCHEMAS_SQL = """
SELECT n.nspname FROM pg_catalog.pg_namespace n
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname <> 'z4j_verify_journal'
  AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                    AND d.objid = n.oid AND d.deptype = 'e')
ORDER BY 1
"""


@dataclass
class Problem:
    """One reason the verification failed."""

    phase: str  # stepwise | round trip | seed | smoke
    revision: str | None
    messages: list[str]
    differences: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None  # class of the engine error, when a step raised one
    severity: str = "error"  # error | warning | accepted

    @property
    def summary(self) -> str:
        where = f"{self.revision}: " if self.revision else f"{self.phase}: "
        shown = self.messages[:10]
        more = f"; … {len(self.messages) - 10} more" if len(self.messages) > 10 else ""
        return where + "; ".join(shown) + more


@dataclass
class RevisionCheck:
    id: str
    status: str  # ok | irreversible | failed | not run
    duration_ms: float = 0.0


@dataclass
class VerifyReport:
    database: str
    scratch: bool
    migrations_dir: str
    server_version: str = ""
    revisions: list[RevisionCheck] = field(default_factory=list)
    round_trip: str = "not run"  # ok | failed | skipped | not run
    round_trip_to: str = "base"
    seed: str | None = None
    smoke: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # e.g. a column re-added at another position
    accepted: list[Problem] = field(default_factory=list)  # differences a down declares (-- verify-accept:)
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            first = self.problems[0]
            messages = [m for p in self.problems for m in p.messages]
            failed = sorted({p.revision for p in self.problems if p.revision}, key=revision_number)
            more = f" ({len(failed)} revisions failed: {', '.join(failed)})" if len(failed) > 1 else ""
            raise VerificationFailed(f"verification failed at {first.summary}{more}", messages)

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["ok"] = self.ok
        return json.dumps(data, indent=2)


class _Stop(Exception):
    """A problem was recorded; end the run (or, keeping going, this revision's check)."""


# Why a kind of difference is what it is; shown with it in the report.
ENUM_LABEL_REASON = (
    "PostgreSQL cannot drop a value from an enum type, there is no ALTER TYPE ... DROP VALUE: the down must "
    "recreate the type without it, or accept it with '-- verify-accept: {subject}'"
)
POSITION_REASON = (
    "only the column's position differs (it was dropped and added again, so it is now last); rarely matters, "
    "as queries name their columns. --strict makes it an error"
)


def _norm(text: str) -> str:
    """Text compared for '-- verify-accept:': one space between words, lower case, no 'public.' qualifier."""
    words = " ".join(text.split()).lower()
    return " ".join(w[len("public.") :] if w.startswith("public.") else w for w in words.split(" "))


def accepts(accepted: tuple[str, ...] | list[str], d: Difference) -> bool:
    """Whether a '-- verify-accept:' line names `d`.

    After `_norm` on both sides it must equal one of: the object (`column users.nick`, `enum label 'meh'
    on type mood`), the object and the changed attribute (`column users.nick position`), the difference
    as verify phrases it after the file name (`leaves enum label 'meh' on type mood`) or as printed whole
    (`column users.nick position changed: 2 -> 3`).
    """
    forms = {d.subject, phrase(d), str(d)}
    if d.change == "changed" and " changed:" in d.detail:
        forms.add(f"{d.subject} {d.detail.partition(' changed:')[0]}")
    wanted = {_norm(f) for f in forms}
    return any(_norm(a) in wanted for a in accepted)


def classify(d: Difference, accepted: tuple[str, ...] | list[str] = (), *, strict: bool = False) -> tuple[str, str]:
    """(severity, reason) of a difference: error, warning (only without `strict`) or accepted."""
    if accepts(accepted, d):
        return "accepted", "declared by '-- verify-accept:'"
    if d.kind == "column" and d.change == "changed" and d.detail.startswith("position changed:"):
        return ("error" if strict else "warning"), POSITION_REASON
    if d.kind == "enum label" and d.change == "left behind":
        return "error", ENUM_LABEL_REASON.format(subject=d.subject)
    return "error", ""


def _read_sql(path: str | Path | None, option: str) -> tuple[str | None, str | None]:
    if path is None:
        return None, None
    try:
        return str(path), Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{option} {path}: cannot be read ({reason}).") from None


def _schemas(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute(_SCHEMAS_SQL).fetchall()]


def take_snapshot(conn: psycopg.Connection, bookkeeping_schema: str = "public") -> Snapshot:
    """The catalog snapshot over every schema of ours, plus the schemas themselves."""
    schemas = _schemas(conn)
    snap = snapshot(conn, schemas=schemas)
    snap["schema"] = {name: {} for name in schemas if name not in ("public", bookkeeping_schema)}
    return snap


def differences(expected: Snapshot, actual: Snapshot) -> list[Difference]:
    """catalog.diff, plus schemas, without the "labels changed" echo of per-label differences."""
    if expected == actual:  # the usual case, and cheap: unchanged descriptions are the same objects
        return []
    found = diff(
        {k: v for k, v in expected.items() if k != "schema"}, {k: v for k, v in actual.items() if k != "schema"}
    )
    for name in sorted(actual.get("schema", {}).keys() - expected.get("schema", {}).keys()):
        found.insert(0, Difference("schema", name, "left behind"))
    for name in sorted(expected.get("schema", {}).keys() - actual.get("schema", {}).keys()):
        found.insert(0, Difference("schema", name, "missing"))
    per_label = {d.name.rpartition(" on type ")[2] for d in found if d.kind == "enum label"}
    return [
        d for d in found if not (d.kind == "type" and d.name in per_label and d.detail.startswith("labels changed"))
    ]


def phrase(d: Difference) -> str:
    """How a difference reads after the name of the file that caused it."""
    if d.change == "left behind":
        return f"leaves {d.subject}"
    if d.change == "missing":
        return f"does not restore {d.subject}"
    return f"does not restore {d.subject}: {d.detail}" if d.detail else f"changes {d.subject}"


def _as_dict(d: Difference, severity: str = "error", reason: str = "") -> dict[str, str]:
    return {"kind": d.kind, "name": d.name, "change": d.change, "detail": d.detail, "severity": severity} | (
        {"reason": reason} if reason else {}
    )


def _name(path: str) -> str:
    return Path(path).name


def verify(
    settings: Settings,
    *,
    seed: str | Path | None = None,
    smoke: str | Path | None = None,
    scratch: bool = True,
    keep: bool = False,
    stepwise: bool = True,
    round_trip: bool = True,
    on_progress: Callable[[str], None] | None = None,
    keep_going: bool = False,
    strict: bool = False,
) -> VerifyReport:
    """Run the verification and return its report (`report.raise_for_problems()` to fail).

    `keep_going`: a revision whose down does not undo its up is recorded and the next one is
    checked (on a scratch database rebuilt up to it), so one run lists them all; the round trip
    runs only when every revision passed. `strict`: warnings (a column that only moved) fail too.

    With `scratch` (the default) a database with a random name is created on the
    server of `settings.database` and dropped at the end, even on failure (unless
    `keep`). Without it, `settings.database` itself is used and must be empty; it
    is left at head.
    Raises ConfigError / ConnectionFailed / RefusedError / RevisionFileError when
    the verification cannot run at all.
    """
    revset = _checked_revisions(settings)
    seed_name, seed_sql = _read_sql(seed, "--seed")
    smoke_name, smoke_sql = _read_sql(smoke, "--smoke")
    say = on_progress or (lambda _text: None)
    if keep_going and not scratch:
        raise ConfigError(
            "verify --keep-going rebuilds its database after each failure, so it needs a scratch database: "
            "leave out --no-scratch."
        )
    started = time.perf_counter()
    where = _scratch_database(settings, keep=keep, say=say) if scratch else nullcontext(settings)
    with where as target:
        directory = str(revset.directory.resolve())
        report = VerifyReport(target.database.display, scratch, directory, seed=seed_name, smoke=smoke_name)
        rebuild = (lambda: _recreate(settings, target)) if keep_going else None
        run = _Run(target, revset, report, say, seed_sql, smoke_sql, require_empty=not scratch, strict=strict)
        run.rebuild = rebuild
        run.run(stepwise, round_trip)
    report.duration_ms = _ms_since(started)
    return report


def _checked_revisions(settings: Settings) -> RevisionSet:
    """The revisions, each file checked: a malformed one fails (exit 3) before any database work."""
    from .sqlcheck import check_revision

    revset = discover(settings.migrations_dir, settings.layout)
    for revision in revset.revisions:
        check_revision(revision)
    return revset


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@contextmanager
def _scratch_database(settings: Settings, *, keep: bool, say: Callable[[str], None]) -> Iterator[Settings]:
    """Settings for a new database with a random name on the server of `settings`.

    It is dropped when the block ends, even on failure, unless `keep`.
    """
    name = f"{SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
    create_database(settings, name)
    conninfo = make_conninfo(settings.database.conninfo, dbname=name)
    target = replace(settings, database=parse_database_url(conninfo, source="scratch database"))
    say(f"scratch database {name} on {settings.database.display}")
    try:
        yield target
    finally:
        if keep:
            say(f"kept the scratch database: {target.database.display}")
        else:
            drop_database(settings, name)


def create_database(settings: Settings, name: str) -> None:
    """Create database `name` on the server of `settings`; a role that may not is told what to do."""
    with connected(settings) as admin:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except pgerrors.InsufficientPrivilege:
            raise PrivilegeError(
                f"cannot create a scratch database on {settings.database.display}: the role may not CREATE "
                "DATABASE. Grant it CREATEDB, or pass --no-scratch with an empty database to verify in."
            ) from None
        except psycopg.Error as exc:
            raise ConfigError(
                f"cannot create a scratch database on {settings.database.display}: {diagnose.primary(exc)}."
            ) from exc


def _recreate(settings: Settings, target: Settings) -> None:
    """Drop the scratch database of `target` and create it again, empty."""
    name = psycopg.conninfo.conninfo_to_dict(target.database.conninfo)["dbname"]
    drop_database(settings, str(name))
    create_database(settings, str(name))


def drop_database(settings: Settings, name: str) -> None:
    """Drop database `name` on the server of `settings`, ending any session still in it."""
    with connected(settings) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass(eq=False)
class _Run:
    """One verification: the engine calls, the snapshots taken so far and the problems found."""

    settings: Settings
    revset: RevisionSet
    report: VerifyReport
    say: Callable[[str], None]
    seed_sql: str | None
    smoke_sql: str | None
    _: KW_ONLY
    require_empty: bool  # no scratch database: the one given must hold nothing of ours
    strict: bool = False
    rebuild: Callable[[], None] | None = None  # keep going: make the scratch database empty again
    # revision id -> schema with it (and all before it) applied
    after: dict[str, Snapshot] = field(default_factory=dict, init=False)
    initial: Snapshot = field(default_factory=dict, init=False)  # the schema before the first revision
    stepwise_done: bool = field(default=False, init=False)
    conn: psycopg.Connection | None = field(default=None, init=False)  # snapshots and scripts
    engine_conn: psycopg.Connection | None = field(default=None, init=False)  # the stepwise engine calls
    tracker: journal.Tracker | None = field(default=None, init=False)  # snapshots from the change journal

    # ---------------------------------------------------------------- helpers

    def snap(self) -> Snapshot:
        assert self.conn is not None
        if self.tracker is not None:
            return self.tracker.snapshot()
        return take_snapshot(self.conn, self.settings.schema)

    def applied(self) -> list[str]:
        assert self.conn is not None
        state = Store(self.conn, self.settings.schema).state(())
        return sorted(state.applied, key=revision_number)

    def is_applied(self, rev_id: str) -> bool:
        """Whether the bookkeeping records `rev_id` as applied (one row read, not the whole history)."""
        assert self.conn is not None
        return Store(self.conn, self.settings.schema).revision_state(rev_id)[0]

    def fail(self, phase: str, revision: str | None, messages: list[str], diffs: list[dict[str, str]] = (), **kw: Any):
        self.report.problems.append(Problem(phase, revision, messages, list(diffs), **kw))
        raise _Stop

    def accepted_by(self, rev: Revision | None) -> tuple[str, ...]:
        """The '-- verify-accept:' lines that apply: the revision's own, or any revision's in the range."""
        if rev is not None:
            return rev.accepted_differences
        return tuple(a for r in self.revset.revisions for a in r.accepted_differences)

    def expect(
        self,
        phase: str,
        rev: Revision | None,
        expected: Snapshot,
        message: Callable[[Difference], str],
        actual: Snapshot | None = None,
    ) -> Snapshot:
        """The schema now; a difference from `expected` fails the run (warnings and accepted ones are kept)."""
        actual = self.snap() if actual is None else actual
        found = differences(expected, actual)
        if not found:
            return actual
        accepted = self.accepted_by(rev)
        by_severity: dict[str, list[tuple[Difference, str]]] = {"error": [], "warning": [], "accepted": []}
        for d in found:
            severity, reason = classify(d, accepted, strict=self.strict)
            by_severity[severity].append((d, reason))
        revision = rev.id if rev is not None else None
        for severity, kept in (("warning", self.report.warnings), ("accepted", self.report.accepted)):
            if by_severity[severity]:
                items = by_severity[severity]
                messages = [message(d) for d, _ in items]
                dicts = [_as_dict(d, severity, reason) for d, reason in items]
                kept.append(Problem(phase, revision, messages, dicts, severity=severity))
        errors = by_severity["error"]
        if errors:
            messages = [message(d) + (f" ({reason})" if reason else "") for d, reason in errors]
            self.fail(phase, revision, messages, [_as_dict(d, "error", reason) for d, reason in errors])
        return actual

    def engine(self, phase: str, revision: str | None, what: str, call: Callable[[], object]) -> None:
        """Run an engine call; its typed error becomes a problem that names `what` failed."""
        try:
            call()
        except ConnectionFailed:
            raise
        except Z4jMigrateError as exc:
            self.fail(phase, revision, [f"{what}: {exc.message}"], error=type(exc).__name__)

    def script(self, phase: str, name: str, text: str) -> None:
        """Run a seed/smoke file in one transaction, statement by statement to name the failing line."""
        from .revisions import SqlFile
        from .sqlcheck import split_statements

        assert self.conn is not None
        try:
            statements = split_statements(SqlFile(name, text, "", True, True))
        except Z4jMigrateError as exc:  # a syntax error, with its line
            self.fail(phase, None, [f"{phase} file {exc.message}"], error=type(exc).__name__)
        line = 1
        try:
            with self.conn.transaction():
                for statement in statements:
                    line = statement.line
                    self.conn.execute(statement.sql.encode("utf-8"))
        except psycopg.Error as exc:
            problem = f"{phase} file {name}:{line} failed: {diagnose.primary(exc)}"
            self.fail(phase, None, [problem], error=type(exc).__name__)

    # ------------------------------------------------------------ the engine

    def open(self, *, check_empty: bool) -> None:
        """Connect (snapshots, engine) and give the database the bookkeeping and the extensions."""
        from .runner import RunContext, prepare

        self.conn = connect(self.settings)
        if check_empty:
            self.report.server_version = self.conn.execute("SHOW server_version").fetchone()[0]
        state = Store(self.conn, self.settings.schema).state(self.revset.extensions)
        if check_empty:
            self.refuse_unless_empty(state)
        if not self.require_empty:  # a scratch database: give it the bookkeeping schema production has
            self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.settings.schema)))
        self.engine_conn = connect(self.settings)
        self.ctx = RunContext(self.settings, self.engine_conn)
        prepare(self.engine_conn, self.ctx, self.revset, Store(self.engine_conn, self.settings.schema).state(()))
        if not self.require_empty:  # a scratch database: the journal may live there (journal.py)
            self.tracker = journal.start(connect(self.settings), _schemas, self.settings.schema)

    def close(self) -> None:
        for conn in (self.conn, self.engine_conn):
            if conn is not None:
                conn.close()
        if self.tracker is not None:
            self.tracker.close()
        self.conn = self.engine_conn = None
        self.tracker = None

    def up(self, rev: Revision) -> None:
        """The engine's own apply of one revision: its locked transaction (or statements), its bookkeeping."""
        from .runner import apply_revision

        apply_revision(self.engine_conn, self.ctx, rev)

    def down(self, rev: Revision) -> None:
        """The engine's own rollback of one revision, after its preflights (as `downgrade --steps 1`)."""
        from .plan import DowngradeStep
        from .runner import check_preflights, rollback_revision

        check_preflights(self.engine_conn, [DowngradeStep(rev, False)], search_path=self.settings.search_path_value)
        rollback_revision(self.engine_conn, self.ctx, rev)

    # ------------------------------------------------------------------- run

    def run(self, stepwise: bool, round_trip: bool) -> None:
        self.open(check_empty=True)
        try:
            self.initial = self.snap()
            self.report.revisions = [RevisionCheck(r.id, "not run") for r in self.revset.revisions]
            try:
                if stepwise:
                    self.stepwise()
                if round_trip and not self.report.problems:
                    self.round_trip()
                elif round_trip:
                    failed = sum(1 for r in self.report.revisions if r.status == "failed")
                    self.say(f"  round trip not run: {failed} revision(s) failed stepwise")
            except _Stop:
                pass
        finally:
            self.close()

    def refuse_unless_empty(self, state: DbState) -> None:
        """No revision may be applied; without a scratch database, nothing of ours may exist either."""
        where = self.settings.database.display
        if state.applied or state.in_progress:
            raise RefusedError(
                f"refusing to verify in {where}: it has revisions applied "
                f"({', '.join(sorted(state.applied) or sorted(state.in_progress))}); verify needs an empty "
                "database. Leave out --no-scratch to use a scratch database."
            )
        ours = [d.subject for d in differences({}, take_snapshot(self.conn))] if self.require_empty else []
        if ours:
            shown = ", ".join(ours[:5]) + (f" and {len(ours) - 5} more" if len(ours) > 5 else "")
            raise RefusedError(
                f"refusing to verify in {where}: it is not empty ({shown}). "
                "Give an empty database, or leave out --no-scratch to use a scratch database."
            )

    def stepwise(self) -> None:
        before = self.initial
        progress.announce(len(self.revset.revisions), "check")
        for check, rev in zip(self.report.revisions, self.revset.revisions, strict=True):
            started = time.perf_counter()
            check.status = "failed"
            try:
                before = self.step(rev, check, before)
            except _Stop:
                if self.rebuild is None or check.status == "up failed":
                    check.status = "failed"
                    raise
                check.status = "failed"
                before = self.reestablish(rev)
            finally:
                check.duration_ms = _ms_since(started)
            if check.status == "ok":
                self.say(f"  ok            {rev.id}  (up, down, up: {check.duration_ms:.0f} ms)")
            elif check.status == "irreversible":
                self.say(f"  irreversible  {rev.id}  (applied; its down is not run)")
            else:
                self.say(f"  FAILED        {rev.id}  (rebuilt the scratch database up to it; going on)")
            progress.advance(rev.id, "check")
        self.stepwise_done = True

    def reestablish(self, rev: Revision) -> Snapshot:
        """A known state after a failed check: an empty database, every revision up to `rev` applied afresh."""
        assert self.rebuild is not None
        self.close()
        self.rebuild()
        self.open(check_empty=False)
        for earlier in self.revset.revisions:
            self.engine("stepwise", rev.id, f"rebuilding up to {rev.id} failed", lambda r=earlier: self.up(r))
            if earlier is rev:
                break
        self.after[rev.id] = self.snap()
        return self.after[rev.id]

    def step(self, rev: Revision, check: RevisionCheck, before: Snapshot) -> Snapshot:
        """Apply, roll back, compare, apply again; returns the schema with `rev` applied.

        The schema is not read between the first up and its down: the down must give back `before`,
        and the up applied again gives the schema with `rev` applied (the same SQL on the same catalog
        builds the same catalog). When the down left a warning or an accepted difference, the up ran
        on another catalog the second time, so the down and the up run once more and must give the
        same schemas again (docs/verify.md).
        """
        up, down = _name(rev.up.path), _name(rev.down.path)
        check.status = "up failed"
        self.engine("stepwise", rev.id, f"{up} failed", lambda: self.up(rev))
        check.status = "failed"
        if rev.irreversible is not None:
            check.status = "irreversible"
            self.after[rev.id] = self.snap()
            return self.after[rev.id]
        self.engine("stepwise", rev.id, f"{down} failed right after its up", lambda: self.down(rev))
        undone = self.expect("stepwise", rev, before, lambda d: f"{down} {phrase(d)}")
        if self.is_applied(rev.id):
            self.fail("stepwise", rev.id, [f"{rev.id} is still recorded as applied after its down"])
        self.engine("stepwise", rev.id, f"{up} failed when applied again after its down", lambda: self.up(rev))
        again = self.snap()
        if undone != before:
            self.engine("stepwise", rev.id, f"{down} failed when run a second time", lambda: self.down(rev))
            self.expect("stepwise", rev, undone, lambda d: f"{down} run a second time gives a different schema: {d}")
            self.engine("stepwise", rev.id, f"{up} failed when applied a third time", lambda: self.up(rev))
            again = self.expect(
                "stepwise", rev, again, lambda d: f"{up} applied again after its down gives a different schema: {d}"
            )
        check.status = "ok"
        self.after[rev.id] = again
        return again

    def created_by(self, d: Difference) -> str:
        """Which up first created a left-behind object (known when the stepwise pass ran)."""
        if d.change != "left behind" or not self.stepwise_done:
            return ""
        for rev in self.revset.revisions:
            snap = self.after.get(rev.id)
            if snap is None:
                continue
            if d.kind == "enum label":
                label, _, type_name = d.name.partition(" on type ")
                present = label[1:-1] in snap.get("type", {}).get(type_name, {}).get("labels", [])
            else:
                present = d.name in snap.get(d.kind, {})
            if present:
                return f" (created by {_name(rev.up.path)})"
        return ""

    def round_trip(self) -> None:
        """Head, then down to the floor (base, or the newest irreversible revision), then head again."""
        revisions = self.revset.revisions
        if not revisions:
            self.report.round_trip = "skipped"
            return
        irreversible = [r for r in revisions if r.irreversible is not None]
        floor: Revision | None = irreversible[-1] if irreversible else None
        self.report.round_trip_to = floor.id if floor else "base"
        floor_snap = self.schema_at(floor, floor.id) if floor else self.initial
        head = revisions[-1]
        head_snap = self.schema_at(head, None)
        self.report.round_trip = "failed"
        if floor is head:
            self.report.round_trip = "skipped"
            self.say(f"  round trip skipped: the newest revision {head.id} is irreversible")
        else:
            self.down_and_up(floor, floor_snap, head_snap)
        if self.smoke_sql is not None:
            self.script("smoke", self.report.smoke or "smoke", self.smoke_sql)
            self.say("  ok            smoke")

    def schema_at(self, rev: Revision, to: str | None) -> Snapshot:
        """The schema with `rev` and all before it applied: as the stepwise pass left it, or
        after upgrading to `to` (None: head) now."""
        if rev.id not in self.after:
            what = f"upgrade to {to or 'head'} failed"
            self.engine("round trip", to, what, lambda: api.upgrade(self.settings, to=to))
            self.after[rev.id] = self.snap()
        return self.after[rev.id]

    def down_and_up(self, floor: Revision | None, floor_snap: Snapshot, head_snap: Snapshot) -> None:
        """(Seed,) downgrade to the floor, compare, upgrade to head, compare."""
        to = self.report.round_trip_to
        if self.seed_sql is not None:
            self.script("seed", self.report.seed or "seed", self.seed_sql)
        with_seed = " with the seed data" if self.seed_sql is not None else ""
        down = f"downgrade from head to {to}{with_seed} failed"
        self.engine("round trip", None, down, lambda: api.downgrade(self.settings, to=to))
        self.expect(
            "round trip", None, floor_snap, lambda d: f"after downgrading to {to}{with_seed}: {d}{self.created_by(d)}"
        )
        expected_ids = [r.id for r in self.revset.revisions if floor is not None and r.version <= floor.version]
        if self.applied() != expected_ids:
            self.fail("round trip", None, [f"after downgrading to {to}, the bookkeeping lists {self.applied()}"])
        self.engine("round trip", None, f"upgrade from {to} to head failed", lambda: api.upgrade(self.settings))
        self.expect("round trip", None, head_snap, lambda d: f"head after the round trip differs from head before: {d}")
        self.report.round_trip = "ok"
        self.say(f"  ok            round trip: head -> {'seed -> ' if self.seed_sql else ''}{to} -> head")


def render_text(report: VerifyReport) -> str:
    """The closing lines of `verify` (progress lines are printed while it runs)."""
    lines = []
    for heading, problems in (("accepted", report.accepted), ("warning", report.warnings), ("FAILED", report.problems)):
        for problem in problems:
            lines.append(f"{heading} ({problem.phase}){f' at {problem.revision}' if problem.revision else ''}:")
            notes = (
                [""] * len(problem.messages)
                if heading == "FAILED"
                else [f" ({d.get('reason', '')})" if d.get("reason") else "" for d in problem.differences]
            )
            lines.extend(f"  {m}{note}" for m, note in zip(problem.messages, notes, strict=False))
    failed = [r.id for r in report.revisions if r.status == "failed"]
    if len(failed) > 1:
        lines.append(f"{len(failed)} revisions failed: {', '.join(failed)}")
    if report.ok:
        checked = sum(1 for r in report.revisions if r.status == "ok")
        irreversible = sum(1 for r in report.revisions if r.status == "irreversible")
        extra = f", {irreversible} irreversible" if irreversible else ""
        trip = {
            "ok": f"; round trip head -> {report.round_trip_to} -> head ok",
            "skipped": "; round trip skipped",
            "not run": "",
        }.get(report.round_trip, "")
        lines.append(
            f"verified {checked} revision(s){extra}{trip} on PostgreSQL {report.server_version} "
            f"in {report.duration_ms / 1000:.1f}s: every down undoes its up."
        )
    return "\n".join(lines) + "\n"
