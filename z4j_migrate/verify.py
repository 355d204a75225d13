"""`z4j-migrate verify`: prove on a real PostgreSQL that every down undoes its up.

The proof runs the real engine (`api.upgrade` / `api.downgrade`, so yoyo, the
bookkeeping, preflights and locks are exactly what production runs) against a
scratch database, and compares catalog snapshots (`catalog.snapshot`, the same
function the tests and `z4j-migrate schema` use):

1. stepwise, for each revision k in order: snapshot, apply k, roll k back,
   snapshot again (the two must be equal), apply k again (the schema must be
   the one the first apply gave), go on;
2. the whole range: head -> optional seed SQL -> base (nothing of ours may
   remain; extensions and bookkeeping aside) -> head (the same schema as
   before) -> optional smoke SQL.

An irreversible revision is applied but not rolled back, and the range goes
down to it instead of to base. The first mismatch stops the run; the report
names the revision, the file and the object.
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

from . import api, diagnose, progress
from .catalog import Difference, Snapshot, diff, snapshot
from .config import Settings, parse_database_url
from .db import connected, ensure_extensions
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
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            first = self.problems[0]
            messages = [m for p in self.problems for m in p.messages]
            raise VerificationFailed(f"verification failed at {first.summary}", messages)

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["ok"] = self.ok
        return json.dumps(data, indent=2)


class _Stop(Exception):
    """A problem was recorded; end the run."""


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


def _as_dict(d: Difference) -> dict[str, str]:
    return {"kind": d.kind, "name": d.name, "change": d.change, "detail": d.detail}


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
) -> VerifyReport:
    """Run the verification and return its report (`report.raise_for_problems()` to fail).

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
    started = time.perf_counter()
    where = _scratch_database(settings, keep=keep, say=say) if scratch else nullcontext(settings)
    with where as target:
        directory = str(revset.directory.resolve())
        report = VerifyReport(target.database.display, scratch, directory, seed=seed_name, smoke=smoke_name)
        _Run(target, revset, report, say, seed_sql, smoke_sql, require_empty=not scratch).run(stepwise, round_trip)
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


def drop_database(settings: Settings, name: str) -> None:
    """Drop database `name` on the server of `settings`, ending any session still in it."""
    with connected(settings) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass(eq=False)
class _Run:
    """One verification: the engine calls, the snapshots taken so far and the problem that ends it."""

    settings: Settings
    revset: RevisionSet
    report: VerifyReport
    say: Callable[[str], None]
    seed_sql: str | None
    smoke_sql: str | None
    _: KW_ONLY
    require_empty: bool  # no scratch database: the one given must hold nothing of ours
    # revision id -> schema with it (and all before it) applied
    after: dict[str, Snapshot] = field(default_factory=dict, init=False)
    initial: Snapshot = field(default_factory=dict, init=False)  # the schema before the first revision
    stepwise_done: bool = field(default=False, init=False)
    conn: psycopg.Connection | None = field(default=None, init=False)

    # ---------------------------------------------------------------- helpers

    def snap(self) -> Snapshot:
        assert self.conn is not None
        return take_snapshot(self.conn, self.settings.schema)

    def applied(self) -> list[str]:
        assert self.conn is not None
        state = Store(self.conn, self.settings.schema).state(())
        return sorted(state.applied, key=revision_number)

    def fail(self, phase: str, revision: str | None, messages: list[str], diffs: list[Difference] = (), **kw: Any):
        self.report.problems.append(Problem(phase, revision, messages, [_as_dict(d) for d in diffs], **kw))
        raise _Stop

    def expect(
        self, phase: str, revision: str | None, expected: Snapshot, message: Callable[[Difference], str]
    ) -> Snapshot:
        """The schema now; any difference from `expected` fails the run, each phrased by `message`."""
        actual = self.snap()
        found = differences(expected, actual)
        if found:
            self.fail(phase, revision, [message(d) for d in found], found)
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

    # ------------------------------------------------------------------- run

    def run(self, stepwise: bool, round_trip: bool) -> None:
        with connected(self.settings) as conn:
            self.conn = conn
            self.report.server_version = conn.execute("SHOW server_version").fetchone()[0]
            state = Store(conn, self.settings.schema).state(self.revset.extensions)
            self.refuse_unless_empty(state)
            if not self.require_empty:  # a scratch database: give it the bookkeeping schema production has
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.settings.schema)))
            ensure_extensions(conn, self.revset.extensions, state.extensions)
            self.initial = self.snap()
            self.report.revisions = [RevisionCheck(r.id, "not run") for r in self.revset.revisions]
            try:
                if stepwise:
                    self.stepwise()
                if round_trip:
                    self.round_trip()
            except _Stop:
                pass
            finally:
                self.conn = None

    def refuse_unless_empty(self, state: DbState) -> None:
        """No revision may be applied; without a scratch database, nothing of ours may exist either."""
        where = self.settings.database.display
        if state.applied or state.in_progress:
            raise RefusedError(
                f"refusing to verify in {where}: it has revisions applied "
                f"({', '.join(sorted(state.applied) or sorted(state.in_progress))}); verify needs an empty "
                "database. Leave out --no-scratch to use a scratch database."
            )
        ours = [d.subject for d in differences({}, self.snap())] if self.require_empty else []
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
            finally:
                check.duration_ms = _ms_since(started)
            if check.status == "ok":
                self.say(f"  ok            {rev.id}  (up, down, up: {check.duration_ms:.0f} ms)")
            else:
                self.say(f"  irreversible  {rev.id}  (applied; its down is not run)")
            progress.advance(rev.id, "check")
        self.stepwise_done = True

    def step(self, rev: Revision, check: RevisionCheck, before: Snapshot) -> Snapshot:
        """Apply, roll back, compare, apply again, compare; returns the schema with `rev` applied."""
        up, down = _name(rev.up.path), _name(rev.down.path)
        self.engine("stepwise", rev.id, f"{up} failed", lambda: api.upgrade(self.settings, to=rev.id))
        applied = self.snap()
        if rev.irreversible is not None:
            check.status = "irreversible"
            self.after[rev.id] = applied
            return applied
        self.engine(
            "stepwise", rev.id, f"{down} failed right after its up", lambda: api.downgrade(self.settings, steps=1)
        )
        self.expect("stepwise", rev.id, before, lambda d: f"{down} {phrase(d)}")
        if rev.id in self.applied():
            self.fail("stepwise", rev.id, [f"{rev.id} is still recorded as applied after its down"])
        self.engine(
            "stepwise",
            rev.id,
            f"{up} failed when applied again after its down",
            lambda: api.upgrade(self.settings, to=rev.id),
        )
        again = self.expect(
            "stepwise", rev.id, applied, lambda d: f"{up} applied again after its down gives a different schema: {d}"
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
    for problem in report.problems:
        lines.append(f"FAILED ({problem.phase}){f' at {problem.revision}' if problem.revision else ''}:")
        lines.extend(f"  {m}" for m in problem.messages)
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
