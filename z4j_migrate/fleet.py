"""Fan-out: one command over many databases, or over many tenant schemas of one database.

The targets come from a file (`--targets FILE`: one URL or libpq string per line), from a query
(`--targets-query SQL`, run on --database-url: one target per row), or from the schemas of one
database (`--schemas PATTERN`, schema-per-tenant). Each target is an ordinary single-target run of
the same engine (api.upgrade, api.status, ...) with its own Settings and its own connection; a pool
of at most `--jobs` threads runs them. Nothing here schedules across machines: `--shard I/N` keeps
every N-th target, and a Kubernetes Indexed Job runs one shard per pod (docs/kubernetes.md).

- Order: targets are sorted by display name (passwords masked), which is also what `--shard` cuts.
- A failing target does not stop the others, unless `fail_fast`: then no new target starts, and the
  ones running finish. The report names every failed target and why (one paragraph each).
- Exit code: the worst of the targets' (`worst_exit_code`, ranked by SEVERITY below, not numerically).
- Signals: interrupt.signals() belongs to the main thread. The handler cancels the statement in flight
  on every worker's connection (interrupt.py); each worker rolls back (or journals) and ends with
  Interrupted (exit 12); the main thread, which only waits, stops starting targets. Targets that never
  started are reported as skipped. The whole fan-out therefore stops as fast as one run does.
- Schema-per-tenant: each tenant schema is its own bookkeeping schema (Settings.schema, hence its own
  lock key) and the revisions run with search_path = "<tenant>", public (Settings.search_path; public
  is where CREATE EXTENSION puts extensions, which are per database and created once, under
  db.EXTENSIONS_LOCK_KEY). Revisions that name a fixed schema are refused up front
  (sqlcheck.check_tenant_revision; `z4j-migrate check --tenant-mode` offline).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from . import interrupt
from .config import Database, Settings, parse_database_url
from .errors import ConfigError, Z4jMigrateError, redact
from .logs import EVENT, log

R = TypeVar("R")

ENV_SHARD_INDEX = "JOB_COMPLETION_INDEX"  # set by Kubernetes in each pod of an Indexed Job
SHARED_SCHEMA = "public"  # second on a tenant's search_path: where extensions live

# Worst first: a failure no retry can fix outranks one a retry may fix, so a Job's podFailurePolicy
# sees a fail-fast code whenever any target has one (docs/kubernetes.md). Codes not listed rank as 1.
SEVERITY = (8, 5, 3, 2, 9, 4, 11, 1, 7, 6, 13, 12, 10, 0)
INTERRUPTED_EXIT = interrupt.EXIT_CODE


def severity(code: int) -> int:
    """Rank of an exit code: higher is worse."""
    return len(SEVERITY) - SEVERITY.index(code if code in SEVERITY else 1)


def worst(codes: Iterable[int]) -> int:
    """The worst exit code of `codes` (0 when empty); between equals, the higher number."""
    return max(codes, key=lambda code: (severity(code), code), default=0)


# ------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One database (or one tenant schema of one): `name` is safe to print and is the sort key."""

    name: str
    settings: Settings


def parse_targets(text: str, source: str) -> list[tuple[int, Database]]:
    """(line number, database) for each target line of a targets file.

    One URL (postgresql://...) or libpq key=value string per line. Blank lines and lines whose
    first non-blank character is `#` are skipped; on a URL line, ` #` (whitespace, then #) starts a
    comment too (a URL holds no blank). A key=value line is taken whole: a password may hold '#'.
    """
    found: list[tuple[int, Database]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "://" in line.split("=", 1)[0]:
            line = re.split(r"\s+#", line, maxsplit=1)[0].strip()
        found.append((number, parse_database_url(line, source=f"{source}:{number}")))
    return found


def read_targets_file(path: str | os.PathLike[str]) -> list[tuple[int, Database]]:
    """parse_targets on a file, with the file's problems as configuration errors (exit 2)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"--targets {path}: cannot be read ({reason}).") from None
    return parse_targets(text, str(path))


def targets_from_file(
    path: str | os.PathLike[str], base: Settings, entries: Sequence[tuple[int, Database]] | None = None
) -> list[Target]:
    """A target per line of `path` (or of its `entries`, already read), each `base` with its own
    database, sorted by name."""
    entries = read_targets_file(path) if entries is None else entries
    if not entries:
        raise ConfigError(f"--targets {path}: no targets in the file (one URL or libpq string per line).")
    _no_direct_url(base, "--targets")
    seen: dict[str, int] = {}
    for number, database in entries:
        if database.display in seen:
            raise ConfigError(
                f"--targets {path}: line {number} repeats the target of line {seen[database.display]} "
                f"({database.display})."
            )
        seen[database.display] = number
    return _sorted(Target(db.display, replace(base, database=db)) for _, db in entries)


def targets_from_query(settings: Settings, query: str) -> list[Target]:
    """A target per row of `query`, run read-only on settings.database. The first column of each row
    is a URL, a libpq string, or the name of a database on the same server as settings.database."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from .db import connected
    from .diagnose import primary

    _no_direct_url(settings, "--targets-query")
    with connected(settings) as conn:
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                rows = conn.execute(query).fetchall()  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise ConfigError(f"--targets-query failed on {settings.database.display}: {primary(exc)}.") from None
    targets: dict[str, Target] = {}
    for number, row in enumerate(rows, start=1):
        value = row[0] if row else None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(
                f"--targets-query: row {number} has {value!r} in its first column; each row must give a URL, "
                "a libpq string or a database name."
            )
        value = value.strip()
        source = f"--targets-query row {number}"
        if "://" in value or "=" in value:
            database = parse_database_url(value, source=source)
        else:  # a database name on the server of --database-url
            database = parse_database_url(make_conninfo(settings.database.conninfo, dbname=value), source=source)
        if database.display in targets:
            raise ConfigError(f"--targets-query: row {number} repeats the target {database.display}.")
        targets[database.display] = Target(database.display, replace(settings, database=database))
    return _sorted(targets.values())


_TENANT_SCHEMAS_SQL = """
SELECT n.nspname::text FROM pg_catalog.pg_namespace n
WHERE n.nspname LIKE %s
  AND n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'information_schema'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                    AND d.objid = n.oid AND d.deptype = 'e')
ORDER BY 1
"""


def tenant_targets(settings: Settings, pattern: str) -> list[Target]:
    """A target per schema of settings.database whose name matches the SQL LIKE `pattern` (`tenant_%`;
    `_` matches any one character, `\\_` a literal underscore). System schemas (pg_*,
    information_schema) and schemas owned by an extension are never tenants. Each tenant's
    bookkeeping lives in the tenant schema, and its revisions run with search_path "<tenant>", public."""
    from .db import connected

    with connected(settings) as conn:
        names = [r[0] for r in conn.execute(_TENANT_SCHEMAS_SQL, (pattern,)).fetchall()]
    targets = []
    for name in names:
        try:
            tenant = replace(settings, schema=name, search_path=f"{name},{SHARED_SCHEMA}")
        except ConfigError:
            raise ConfigError(
                f"--schemas {pattern!r}: schema {name!r} of {settings.database.display} matches, but z4j-migrate "
                "only takes plain identifiers (letters, digits, underscore) as schema names; narrow the pattern."
            ) from None
        targets.append(Target(f"{settings.database.display}#{name}", tenant))
    return _sorted(targets)


def _no_direct_url(settings: Settings, option: str) -> None:
    if settings.direct_database is not None:
        raise ConfigError(
            f"{option}: --direct-url / Z4J_DIRECT_DATABASE_URL names one server, and each target here is its own "
            "database; unset it (it can be used with --schemas, whose tenants share one database)."
        )


def _sorted(targets: Iterable[Target]) -> list[Target]:
    return sorted(targets, key=lambda t: t.name)


# ------------------------------------------------------------------------------- shards


def parse_shard(spec: str, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """`I/N` (I from 0 to N-1) or `auto/N`, which reads I from JOB_COMPLETION_INDEX (an Indexed Job)."""
    env = os.environ if environ is None else environ
    match = re.fullmatch(r"\s*(\d+|auto)\s*/\s*(\d+)\s*", spec)
    if match is None:
        raise ConfigError(
            f"--shard {spec!r}: use I/N, I from 0 to N-1 (--shard 0/3), or auto/N to read I from "
            f"{ENV_SHARD_INDEX} (a Kubernetes Indexed Job)."
        )
    count = int(match[2])
    if count < 1:
        raise ConfigError(f"--shard {spec!r}: the number of shards must be 1 or more.")
    if match[1] == "auto":
        raw = env.get(ENV_SHARD_INDEX, "").strip()
        if not raw.isdigit():
            raise ConfigError(
                f"--shard {spec!r}: {ENV_SHARD_INDEX} is {'not set' if not raw else repr(raw)}; it is set by "
                "Kubernetes in the pods of an Indexed Job (completionMode: Indexed). Elsewhere give I/N."
            )
        index = int(raw)
    else:
        index = int(match[1])
    if index >= count:
        raise ConfigError(f"--shard {spec!r}: shard index {index} is out of range 0..{count - 1}.")
    return index, count


def shard(targets: Sequence[Target], index: int, count: int) -> list[Target]:
    """Every `count`-th target, starting at `index`, in name order: shards 0..count-1 together hold every
    target exactly once, whatever order the list came in."""
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"shard {index}/{count}: the index must be in 0..{count - 1}.")
    return _sorted(targets)[index::count]


# ------------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Done:
    """What a successful target reports: its state (e.g. upgraded, up_to_date, pending), one phrase
    for the text summary, a JSON-ready dict, and its exit code (status --exit-code: 10 or 5)."""

    state: str = "ok"
    summary: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0


NOT_OK = ("failed", "interrupted", "skipped")


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """One target's outcome. `state`: Done.state, or failed (an error), interrupted (a signal stopped
    it: exit 12), skipped (never started: --fail-fast or a signal). `error`: one paragraph, passwords
    masked."""

    target: str
    state: str
    exit_code: int | None
    error: str | None = None
    duration_ms: float = 0.0
    done: Done | None = None
    result: R | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.state not in NOT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "state": self.state,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "error": self.error,
            "duration_ms": round(self.duration_ms, 1),
            "summary": self.done.summary if self.done else None,
            "result": self.done.data if self.done else None,
        }


@dataclass
class FleetReport(Generic[R]):
    command: str
    outcomes: list[Outcome[R]]
    jobs: int
    fail_fast: bool = False
    shard: str | None = None
    interrupted: bool = False  # a signal stopped the fan-out
    duration_ms: float = 0.0

    @property
    def failed(self) -> list[Outcome[R]]:
        return [o for o in self.outcomes if o.state in ("failed", "interrupted")]

    @property
    def skipped(self) -> list[Outcome[R]]:
        return [o for o in self.outcomes if o.state == "skipped"]

    @property
    def worst_exit_code(self) -> int:
        codes = [o.exit_code for o in self.outcomes if o.exit_code is not None]
        return worst(codes + ([INTERRUPTED_EXIT] if self.interrupted else []))

    def by_state(self) -> dict[str, int]:
        return dict(sorted(Counter(o.state for o in self.outcomes).items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.worst_exit_code,
            "targets": len(self.outcomes),
            "ok": sum(1 for o in self.outcomes if o.ok),
            "failed": [o.target for o in self.failed],
            "skipped": len(self.skipped),
            "by_state": self.by_state(),
            "jobs": self.jobs,
            "fail_fast": self.fail_fast,
            "shard": self.shard,
            "interrupted": self.interrupted,
            "duration_ms": round(self.duration_ms, 1),
            "results": [o.as_dict() for o in self.outcomes],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


_current = threading.local()  # the target a worker thread runs: the prefix of its log lines


def current_target() -> str | None:
    return getattr(_current, "name", None)


def _run_one(
    target: Target,
    action: Callable[[Settings], R],
    describe: Callable[[R], Done] | None,
    stopping: threading.Event,
    fail_fast: bool,
) -> Outcome[R]:
    if stopping.is_set() or interrupt.requested() is not None:  # picked up after the fan-out was told to stop
        return Outcome(target.name, "skipped", None, None)
    outcome = _attempt(target, action, describe)
    if fail_fast and not outcome.ok:
        stopping.set()
    return outcome


def _attempt(target: Target, action: Callable[[Settings], R], describe: Callable[[R], Done] | None) -> Outcome[R]:
    _current.name = target.name
    started = time.perf_counter()

    def took() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        result = action(target.settings)
        done = describe(result) if describe is not None else (result if isinstance(result, Done) else Done())
    except interrupt.Interrupted as stop:
        return Outcome(target.name, "interrupted", stop.exit_code, stop.summary(), took())
    except Z4jMigrateError as exc:
        return Outcome(target.name, "failed", exc.exit_code, exc.message, took())
    except Exception as exc:  # one target's surprise is that target's failure, not the fleet's
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        return Outcome(target.name, "failed", 1, redact(f"unexpected {exc.__class__.__name__}: {reason}"), took())
    finally:
        _current.name = None
    return Outcome(target.name, done.state, done.exit_code, None, took(), done, result)


def _announce(total: int) -> None:
    """The live progress line (progress.py, on a terminal) counts targets, not revisions."""
    from .progress import PLANNED

    log.info("%d target(s) to run", total, extra={EVENT: PLANNED, "total": total, "unit": "target"})


def _finished(outcome: Outcome[Any]) -> None:
    log.info("%s: %s", outcome.target, outcome.state, extra={EVENT: "target", "item": outcome.target})


def run_fleet(
    targets: Sequence[Target],
    action: Callable[[Settings], R],
    *,
    jobs: int = 1,
    fail_fast: bool = False,
    describe: Callable[[R], Done] | None = None,
    command: str = "",
    shard_spec: str | None = None,
    poll_s: float = 0.05,
) -> FleetReport[R]:
    """Run `action(target.settings)` for every target, at most `jobs` at a time, each on a worker
    thread with its own connection(s). The report keeps the order of `targets`."""
    started = time.perf_counter()
    jobs = max(1, int(jobs))
    outcomes: dict[int, Outcome[R]] = {}
    stop: str | None = None
    stopping = threading.Event()  # set by a failing worker (--fail-fast) or by the main thread (a signal)
    report = FleetReport[R](command, [], jobs, fail_fast, shard_spec)
    if not targets:
        return report
    pool = ThreadPoolExecutor(max_workers=min(jobs, len(targets)), thread_name_prefix="z4j-fleet")
    futures: dict[Future[Outcome[R]], int] = {}
    try:
        # The main thread only waits: under critical(), a signal never raises in here; it is polled.
        with interrupt.critical():
            futures = {
                pool.submit(_run_one, t, action, describe, stopping, fail_fast): i for i, t in enumerate(targets)
            }
            pending: set[Future[Outcome[R]]] = set(futures)
            _announce(len(targets))
            while pending:
                done, pending = wait(pending, timeout=poll_s, return_when=FIRST_COMPLETED)
                for future in done:
                    if not future.cancelled():
                        outcome = outcomes[futures[future]] = future.result()
                        _finished(outcome)
                if stop is None:
                    if interrupt.requested() is not None:
                        stop = "interrupted"
                    elif stopping.is_set():
                        stop = "--fail-fast"
                    if stop is not None:
                        stopping.set()
                        for future in pending:
                            future.cancel()  # those not started yet; running ones finish (or are cancelled)
    finally:
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
    why = "a signal stopped the run first" if stop == "interrupted" else "another target failed (--fail-fast)"
    for i, target in enumerate(targets):
        if i not in outcomes or (outcomes[i].state == "skipped" and outcomes[i].error is None):
            outcomes[i] = Outcome(target.name, "skipped", None, f"not run: {why}.")
    report.outcomes = [outcomes[i] for i in range(len(targets))]
    report.interrupted = stop == "interrupted"
    report.duration_ms = (time.perf_counter() - started) * 1000
    return report


# ------------------------------------------------------------------------------- output


class _TargetFilter(logging.Filter):
    """Records logged on a worker thread: `[target] message` (the redaction filter ran before);
    below WARNING only when `verbose`; never their progress events (logs.EVENT), which would mix
    the revisions of parallel targets on the live progress line: the fan-out announces its own,
    one per target (run_fleet)."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        name = current_target()
        if name is None:
            return True
        if hasattr(record, EVENT) or (record.levelno < logging.WARNING and not self.verbose):
            return False
        record.msg = f"[{name}] {record.getMessage()}"
        record.args = None
        return True


@contextlib.contextmanager
def fleet_logging(verbosity: int) -> Iterator[None]:
    """For the fan-out: each target's own progress is quiet (its warnings and errors only) unless -v,
    and every line a worker logs names its target, so the lines of parallel targets stay readable."""
    only = _TargetFilter(verbose=verbosity > 0)
    log.addFilter(only)
    try:
        yield
    finally:
        log.removeFilter(only)


def render_text(report: FleetReport[Any], *, verbose: bool = False, every_target: bool = False) -> str:
    """One line per failed target (per target with `every_target` or `verbose`), then a count line."""
    lines = []
    width = max((len(o.state) for o in report.outcomes), default=0)
    for o in report.outcomes:
        if o.state in ("failed", "interrupted"):
            lines.append(f"{o.state.upper():<{width}}  {o.target}  (exit {o.exit_code}) {o.error}")
        elif o.state == "skipped":
            if verbose or every_target:
                lines.append(f"{'skipped':<{width}}  {o.target}  {o.error}")
        elif verbose or every_target:
            lines.append(f"{o.state:<{width}}  {o.target}" + (f"  {o.done.summary}" if o.done else ""))
    counts = ", ".join(f"{n} {state}" for state, n in report.by_state().items())
    where = f"shard {report.shard}, " if report.shard else ""
    lines.append(
        f"{report.command}: {len(report.outcomes)} target(s): {counts or 'none'} "
        f"({where}--jobs {report.jobs}, {report.duration_ms / 1000:.1f} s); exit {report.worst_exit_code}"
        + ("; interrupted" if report.interrupted else "")
    )
    return "\n".join(lines)


# ------------------------------------------------------------------------------- the CLI's fan-out


@dataclass(frozen=True)
class FanOut:
    """The fan-out options of a command (commands.py); `given`: at least one target source."""

    targets_file: str | None = None
    targets_query: str | None = None
    schemas: str | None = None
    jobs: int | None = None
    fail_fast: bool = False
    shard: str | None = None

    KEYS = ("targets_file", "targets_query", "schemas", "jobs", "fail_fast", "shard")

    @classmethod
    def pop(cls, options: dict[str, Any]) -> FanOut:
        """Take the fan-out options out of a command's options; refuse combinations that mean nothing."""
        given = [k for k in cls.KEYS if options.get(k) is not None and options.get(k) is not False]
        fan = cls(**{k: options.pop(k) for k in given})
        sources = [s for s in (fan.targets_file, fan.targets_query, fan.schemas) if s is not None]
        if len(sources) > 1:
            raise ConfigError("give one of --targets, --targets-query and --schemas, not several.")
        if not sources and (fan.jobs is not None or fan.fail_fast or fan.shard is not None):
            raise ConfigError("--jobs, --fail-fast and --shard need --targets, --targets-query or --schemas.")
        if fan.jobs is not None and fan.jobs < 1:
            raise ConfigError(f"--jobs {fan.jobs}: must be 1 or more.")
        return fan

    @property
    def given(self) -> bool:
        return any(s is not None for s in (self.targets_file, self.targets_query, self.schemas))

    def select(
        self, settings_for: Callable[[str | None], Settings], environ: Mapping[str, str] | None = None
    ) -> list[Target]:
        """The targets (this shard's), sorted by name. `settings_for(url)`: the command's Settings with
        that database URL (None: the command's own --database-url / Z4J_DATABASE_URL)."""
        if self.targets_file is not None:
            entries = read_targets_file(self.targets_file)
            if not entries:
                raise ConfigError(f"--targets {self.targets_file}: no targets in the file (one URL per line).")
            first = entries[0][1].conninfo  # any of them: each target gets its own database
            targets = targets_from_file(self.targets_file, settings_for(first), entries)
        elif self.targets_query is not None:
            targets = targets_from_query(settings_for(None), self.targets_query)
        elif self.schemas is not None:
            targets = tenant_targets(settings_for(None), self.schemas)
        else:  # no source (--json alone): the command's own database, as a fan-out of one
            settings = settings_for(None)
            targets = [Target(settings.database.display, settings)]
        if self.shard is not None:
            index, count = parse_shard(self.shard, environ)
            targets = shard(targets, index, count)
        return targets

    @property
    def tenant_mode(self) -> bool:
        return self.schemas is not None


def check_tenant_revisions(migrations_dir: Path, layout: str | None = None) -> None:
    """Schema-per-tenant: refuse (exit 3) before any tenant runs a revision that names a fixed schema."""
    from .config import resolve_layout
    from .revisions import discover
    from .sqlcheck import check_tenant_revision

    for revision in discover(migrations_dir, resolve_layout(layout)).revisions:
        check_tenant_revision(revision)


def warn_if_empty(fan: FanOut, targets: Sequence[Target]) -> None:
    if targets:
        return
    if fan.shard is not None:
        log.warning("shard %s holds no target (fewer targets than shards): nothing to do", fan.shard)
    elif fan.schemas is not None:
        log.warning("--schemas %r matched no schema: nothing to do", fan.schemas)
    else:
        log.warning("--targets-query returned no rows: nothing to do")


# ------------------------------------------------------------------------------- per command


def _ids(ids: Sequence[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"


def describe_upgrade(result: Any) -> Done:
    """api.upgrade's UpgradeResult."""
    applied = [r.id for r in result.applied]
    took = sum(r.duration_ms for r in result.applied)
    data = {
        "applied": applied,
        "unknown": list(result.unknown),
        "created_extensions": list(result.created_extensions),
        "revisions_ms": round(took, 1),
    }
    if not applied:
        return Done("up_to_date", "nothing to do", data)
    return Done("upgraded", f"applied {len(applied)} revision(s) ({_ids(applied)}) in {took:.0f} ms", data)


def describe_downgrade(result: Any) -> Done:
    """api.downgrade's DowngradeResult."""
    undone = [r.id for r in result.rolled_back]
    data = {"rolled_back": undone}
    if not undone:
        return Done("unchanged", "nothing to do", data)
    return Done("downgraded", f"rolled back {len(undone)} revision(s) ({_ids(undone)})", data)


def describe_status(report: Any, *, exit_code: bool = False) -> Done:
    """api.status's StatusReport: up_to_date, pending or drift (an edited, unknown or partial revision);
    with `exit_code` (status --exit-code) drift is exit 5 and pending exit 10, as for one database."""
    from .status import RevisionState

    counts = {str(s): report.count(s) for s in RevisionState if report.count(s)}
    pending = [r.id for r in report.revisions if r.state == RevisionState.PENDING]
    bad = (RevisionState.EDITED, RevisionState.UNKNOWN, RevisionState.PARTIAL)
    drift = [f"{r.id} ({r.state})" for r in report.revisions if r.state in bad]
    state = "drift" if drift else "pending" if pending else "up_to_date"
    code = (5 if drift else 10 if pending else 0) if exit_code else 0
    data = {
        "current": report.current,
        "counts": counts,
        "pending": pending,
        "drift": drift,
        "missing_extensions": list(report.missing_extensions),
        "invalid_indexes": list(report.invalid_indexes),
        "lock_holder": report.lock_holder.describe() if report.lock_holder else None,
    }
    shown = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no revisions"
    extra = f"; drift: {', '.join(drift)}" if drift else ""
    return Done(state, f"at {report.current or 'base'} ({shown}){extra}", data, code)


def describe_wait(result: Any) -> Done:
    """wait.wait_for_head's WaitResult."""
    data = {"waited_s": round(result.waited_s, 3), "polls": result.polls, "unknown": list(result.unknown)}
    return Done("ready", f"at head ({result.revisions} revision(s)) after {result.waited_s:.1f} s", data)


def verified(report: Any) -> Any:
    """verify's VerifyReport, or VerificationFailed (exit 9) when it found a problem."""
    report.raise_for_problems()
    return report


def describe_verify(report: Any) -> Done:
    data = {
        "revisions": len(report.revisions),
        "round_trip": report.round_trip,
        "server_version": report.server_version,
        "duration_ms": report.duration_ms,
    }
    return Done("verified", f"{len(report.revisions)} revision(s) verified, round trip {report.round_trip}", data)
