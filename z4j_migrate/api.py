"""The library API: upgrade, downgrade, status and the start-up call.

The data path reads top to bottom: discover revisions -> connect -> read the
history -> plan -> lock -> re-read and re-plan inside the lock -> apply (each
revision recorded in its own transaction) -> unlock.

The no-op path (everything applied) costs two statements and never imports
yoyo or the SQL parser: it runs on every boot of every replica.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from . import interrupt, manifest, record
from .config import ENV_AUTO_MIGRATE, ENV_DIRECT_DATABASE_URL, Settings, parse_bool_env, settings_from_env
from .db import connect, ensure_extensions, migration_settings, read_only_error, typed_connection_loss
from .errors import ConfigError, DeclinedByOperator, DriftError, IncompleteRevision, PreflightFailed
from .lock import LockHolder, abort, lock_holder, locked_transaction, try_locked_transaction
from .logs import EVENT_APPLIED, EVENT_ROLLED_BACK, log
from .plan import DowngradeStep, check_reversible, downgrade_targets, find_drift, plan_upgrade
from .record import DbState
from .revisions import Revision, RevisionSet, discover, parse_stored_down

if TYPE_CHECKING:
    from .runner import RunContext


@dataclass(frozen=True)
class RevisionRun:
    id: str
    duration_ms: float


@dataclass(frozen=True)
class UpgradeResult:
    applied: tuple[RevisionRun, ...] = ()
    unknown: tuple[str, ...] = ()  # applied in the database, not in this code (database ahead)
    created_extensions: tuple[str, ...] = ()
    skipped: bool = False  # Z4J_AUTO_MIGRATE=false
    planned: tuple[Revision, ...] = ()  # dry run: what would be applied

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.created_extensions)


@dataclass(frozen=True)
class DowngradeResult:
    rolled_back: tuple[RevisionRun, ...] = ()
    planned: tuple[DowngradeStep, ...] = ()


@dataclass(frozen=True)
class RevisionStatus:
    id: str
    state: str  # applied | pending | edited | unknown | partial | unverified
    message: str = ""
    applied_at: datetime | None = None
    duration_ms: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class StatusReport:
    database: str
    revisions: tuple[RevisionStatus, ...]
    missing_extensions: tuple[str, ...]
    lock_holder: LockHolder | None
    invalid_indexes: tuple[str, ...] = ()
    bookkeeping: bool = True
    manifest_stale: tuple[str, ...] | None = None  # None: no z4j-migrate.sum; (): it matches the files

    def count(self, state: str) -> int:
        return sum(1 for r in self.revisions if r.state == state)

    @property
    def current(self) -> str | None:
        applied = [r.id for r in self.revisions if r.state in ("applied", "edited", "unknown", "unverified")]
        return applied[-1] if applied else None

    @property
    def clean(self) -> bool:
        return not any(r.state in ("edited", "unknown", "partial") for r in self.revisions)


def _settings(settings: Settings | None, database_url: str | None, migrations_dir: object, **kw: object) -> Settings:
    if settings is not None:
        return settings
    return settings_from_env(database_url, migrations_dir, **kw)  # type: ignore[arg-type]


def _nothing_to_do(revset: RevisionSet, state: DbState, target: str | None) -> bool:
    if not state.bookkeeping or state.in_progress:
        return False
    if any(e not in state.extensions for e in revset.extensions):
        return False
    return not plan_upgrade(revset.revisions, state, target)


def _unknown(revset: RevisionSet, state: DbState) -> tuple[str, ...]:
    unknown = find_drift(revset.revisions, state).unknown
    if unknown:
        log.warning(
            "the database has revision(s) this code does not know: %s (database ahead of code; "
            "an older release is running against a newer schema)",
            ", ".join(unknown),
        )
    return unknown


@typed_connection_loss
def upgrade(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    migrations_dir: object = None,
    to: str | None = None,
    dry_run: bool = False,
    **overrides: object,
) -> UpgradeResult:
    """Apply every pending revision (up to `to`). Nothing pending: returns at once, empty.

    The start-up check is two statements whatever the number of revisions: a catalog
    probe, then the head digest (one row), compared with the digest the revision files
    (or their manifest, z4j-migrate.sum) say a fully applied database has. Only when
    they differ is the whole history read and planned.
    """
    settings = _settings(settings, database_url, migrations_dir, **overrides)
    scan = _Discovery(settings.migrations_dir, wait=bool(settings.connect_wait_s))
    try:
        conn = connect(settings)
    except BaseException:
        scan.expected()  # a revision file error was found first, as before: it wins over a database error
        raise
    with conn:
        try:
            found = record.probe(conn, settings.schema, None)  # every installed extension
            expected, extensions = scan.expected()
            stored = None
            if found.head and all(e in found.extensions for e in extensions):
                stored = record.read_head(conn, settings.schema)
                if stored == expected and to is None:
                    return UpgradeResult()
            revset = scan.result()
            state = record.read_state(conn, settings.schema, None, details=False, probed=found)
        except BaseException:
            scan.expected()
            raise
        _warn_if_manifest_stale(revset)
        if _nothing_to_do(revset, state, to):
            # The digest is missing or stale (against the files: a stale manifest is not its fault).
            # A standby cannot write it; its start-up keeps reading the whole history until the primary's does.
            if _all_applied(revset, state) and stored != scan.files_digest() and not found.read_only:
                _repair_head(conn, settings, create=not found.head)
            return UpgradeResult(unknown=_unknown(revset, state))
        if dry_run:
            return UpgradeResult(
                planned=tuple(plan_upgrade(revset.revisions, state, to)), unknown=_unknown(revset, state)
            )
        if found.read_only:
            raise read_only_error(
                settings.database.display,
                "a hot standby in recovery" if found.in_recovery else "default_transaction_read_only is on",
            )
        pooled = found.backend_pid != conn.info.backend_pid
        return _upgrade_pending(conn, settings, revset, state, to, pooled=pooled)


def _all_applied(revset: RevisionSet, state: DbState) -> bool:
    """Every revision applied by z4j-migrate (checksums recorded), nothing else, nothing in progress:
    the state whose head digest the start-up check expects."""
    if state.in_progress or len(state.applied) != len(revset.revisions):
        return False
    return all((row := state.applied.get(r.id)) is not None and row.up_checksum is not None for r in revset.revisions)


def _repair_head(conn: psycopg.Connection, settings: Settings, *, create: bool) -> None:
    """Make the next start-up cheap again: the head digest is missing (bookkeeping made by an older
    z4j-migrate) or stale (rows changed with triggers off). Skipped when another run holds the lock."""
    if not try_locked_transaction(conn, settings.lock_key):
        return
    try:
        repaired = record.repair_head(conn, settings.schema, create=create)
        conn.execute("COMMIT")
    except BaseException:
        abort(conn)
        raise
    if repaired:
        log.info("rebuilt the bookkeeping head digest in schema %s", settings.schema)
    else:
        log.info(
            "role %s may not %s the bookkeeping head digest; start-up reads the whole history until the "
            "owner of the bookkeeping tables runs z4j-migrate once (it keeps every role's grants)",
            conn.info.user,
            "create" if create else "rebuild",
        )


def _warn_if_manifest_stale(revset: RevisionSet) -> None:
    stale = manifest.stale_files(revset)
    if stale:
        log.warning("%s", manifest.stale_message(revset.directory, stale))


def _many(directory: Path, files: int = 64) -> bool:
    """At least `files` entries (about 30 revisions): below that a thread costs more than it saves."""
    try:
        with os.scandir(directory) as entries:
            return sum(1 for _ in itertools.islice(entries, files)) >= files
    except OSError:
        return False  # discover() reports it


class _Discovery:
    """What the revision directory says, for the start-up check.

    With a manifest (z4j-migrate.sum) that matches the directory listing, that is enough
    and costs about 1 ms for 1000 revisions. Without one, discover() reads and hashes every
    file (about 18 ms for 1000); that runs on a thread while the caller connects, since
    connecting mostly waits on the server. A thread costs about 0.3 ms to start and join and
    competes for the GIL, so the manifest is read in line, and so are small directories.
    With --wait (connect retries) everything runs first, so a file error is reported at once.
    """

    def __init__(self, directory: Path, *, wait: bool) -> None:
        self._directory = directory
        self._manifest: manifest.Manifest | None = None
        self._revset: RevisionSet | None = None
        self._files_digest: int | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if not wait and not os.path.exists(directory / manifest.MANIFEST_FILE) and _many(directory):
            self._thread = threading.Thread(target=self._run, name="z4j-migrate-discover")
            self._thread.daemon = True
            self._thread.start()
        else:
            self._run()

    def _run(self) -> None:
        try:
            self._manifest = manifest.trusted(self._directory)
            if self._manifest is None:
                self._revset = discover(self._directory)
        except BaseException as exc:  # handed to the caller's thread by expected()/result()
            self._error = exc

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def expected(self) -> tuple[int, tuple[str, ...]]:
        """The head digest of a fully applied database, and the extensions to ensure."""
        self._join()
        if self._manifest is not None:
            return self._manifest.head, self._manifest.extensions
        return self.files_digest(), self.result().extensions

    def files_digest(self) -> int:
        """The head digest of a database holding exactly these files' revisions (never the manifest's)."""
        if self._files_digest is None:
            revset = self.result()
            self._files_digest = record.head_digest((r.id, r.up.checksum, r.down.checksum) for r in revset.revisions)
        return self._files_digest

    def result(self) -> RevisionSet:
        """Every revision, read and parsed (from the files, never from the manifest)."""
        self._join()
        if self._revset is None:
            self._revset = discover(self._directory)
        return self._revset


def _upgrade_pending(
    conn: psycopg.Connection,
    settings: Settings,
    revset: RevisionSet,
    state: DbState,
    target: str | None,
    *,
    pooled: bool,
) -> UpgradeResult:
    """Apply what is pending, each revision in its own locked transaction (or, non-transactional,
    under the session lock). A revision another run applied first is skipped, and the plan re-read."""
    from .runner import RunContext, apply_revision
    from .sqlcheck import check_revision

    pending = plan_upgrade(revset.revisions, state, target)
    for revision in pending:  # parse everything before running anything
        check_revision(revision)
    needs_session = any(not r.up.transactional for r in pending)
    applied: list[RevisionRun] = []
    with session_connection(conn, settings, pooled=pooled, needed=needs_session) as session_conn:
        ctx = RunContext(settings, settings.lock_key, session_conn)
        try:
            created = _prepare(conn, ctx, revset, state)
            while pending:
                revision = pending[0]
                duration = apply_revision(conn, ctx, revision, journaled=revision.id in state.in_progress)
                if duration is None:  # another run applied it first: see what else it did
                    state = record.read_state(conn, settings.schema, revset.extensions, details=False)
                    pending = plan_upgrade(revset.revisions, state, target)
                    continue
                log.info("applied %s (%s) in %.0f ms", revision.id, revision.message, duration, extra=EVENT_APPLIED)
                applied.append(RevisionRun(revision.id, duration))
                pending = pending[1:]
                interrupt.check()
        except interrupt.Interrupted as stop:
            stop.applied = tuple(r.id for r in applied)
            raise
    return UpgradeResult(applied=tuple(applied), unknown=_unknown(revset, state), created_extensions=tuple(created))


def _prepare(conn: psycopg.Connection, ctx: RunContext, revset: RevisionSet, state: DbState) -> list[str]:
    """Bookkeeping tables, the head digest and missing extensions, in one transaction holding the
    lock (concurrent first runs would otherwise race on CREATE TABLE / CREATE EXTENSION)."""
    missing = [e for e in revset.extensions if e not in state.extensions]
    if state.bookkeeping and state.has_head and not missing:
        return []
    with locked_transaction(conn, ctx.key, ctx.settings.lock_timeout_s), interrupt.cancellable(conn):
        conn.execute(migration_settings(ctx.settings))
        if not state.bookkeeping:
            record.ensure_tables(conn, ctx.schema)
        elif not state.has_head:  # bookkeeping made before the head digest existed: track from now on
            record.repair_head(conn, ctx.schema, create=True)
        return ensure_extensions(conn, revset.extensions, state.extensions)


def plan_downgrade(
    conn: psycopg.Connection,
    settings: Settings,
    revset: RevisionSet,
    *,
    to: str | None,
    steps: int | None,
) -> list[DowngradeStep]:
    """Which revisions to undo, newest first, with the down SQL to use (file or database).

    A down is SQL-checked only when nobody checked it before: z4j-migrate checks both
    files of a revision before applying it, and the drift check proves the down file
    (or the stored down) is the one checked then. Only revisions applied by stock
    yoyo (no checksum) are checked here, which keeps the parser out of most downgrades.
    """
    state = record.read_state(conn, settings.schema, (), details=False)
    stuck = [p for p in state.in_progress.values() if p.direction == "apply"]
    if stuck:
        p = stuck[0]
        raise IncompleteRevision(
            f"revision {p.id} stopped part-way through its upgrade (statement {p.statements_done + 1} of "
            f"{p.statements_total}); run z4j-migrate upgrade to finish it before downgrading."
        )
    ids = downgrade_targets(state, revset.revisions, to=to, steps=steps)
    known = revset.by_id()
    drift = find_drift(revset.revisions, state)
    edited = [i for i in ids if i in drift.edited]
    if edited:
        raise DriftError(
            f"cannot downgrade: applied revision(s) {', '.join(edited)} changed on disk since they were applied, "
            "so the down file may not match what was applied. Restore the original files first."
        )
    missing = [i for i in ids if i not in known]
    stored = record.stored_downs(conn, settings.schema, missing) if missing else {}
    plan = []
    for rev_id in ids:
        if rev_id in known:
            plan.append(DowngradeStep(known[rev_id], from_database=False))
        elif rev_id in stored:
            text, transactional = stored[rev_id]
            plan.append(DowngradeStep(parse_stored_down(rev_id, text, transactional), from_database=True))
        else:
            raise DriftError(
                f"cannot downgrade {rev_id}: it is not in this code and the database holds no down SQL for it "
                "(it was applied by stock yoyo). Run the release that has it."
            )
    check_reversible(plan)
    unchecked = [s.revision.down for s in plan if s.revision.down.has_sql and s.revision.id in drift.unverified]
    if unchecked:
        from .sqlcheck import check_file_fast

        for down in unchecked:
            check_file_fast(down, is_down=True)
    return plan


def run_preflights(conn: psycopg.Connection, plan: list[DowngradeStep]) -> None:
    """Every guard of the whole plan must hold before the first step runs. Read-only."""
    failures = []
    for step in plan:
        for pf in step.revision.preflights:
            where = f"{step.revision.down.path}:{pf.line}"
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION READ ONLY")
                    row = conn.execute(pf.sql).fetchone()
            except psycopg.Error as exc:
                msg = exc.diag.message_primary or str(exc).strip()
                raise PreflightFailed(
                    f"refusing to downgrade: preflight at {where} failed to run ({msg}). Nothing was changed."
                ) from None
            if row is None or len(row) != 1 or not isinstance(row[0], bool):
                raise PreflightFailed(
                    f"refusing to downgrade: preflight at {where} must return exactly one boolean, got {row!r}. "
                    "Nothing was changed."
                )
            if not row[0]:
                failures.append(f"{where}: {pf.sql}")
    if failures:
        raise PreflightFailed(
            "refusing to downgrade: it would lose live data. These preflight checks are false: "
            + "; ".join(failures)
            + ". Move or delete that data first, or restore from a backup (docs/backup-restore.md). "
            "Nothing was changed."
        )


@typed_connection_loss
def downgrade(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    migrations_dir: object = None,
    to: str | None = None,
    steps: int | None = None,
    confirm: Callable[[list[DowngradeStep]], bool] | None = None,
    dry_run: bool = False,
    **overrides: object,
) -> DowngradeResult:
    """Undo applied revisions down to `to` (a revision or 'base') or by `steps`.

    The whole plan is checked first (irreversible revisions, preflights); a
    refusal changes nothing. `confirm` is asked before anything is dropped.
    """
    from .runner import RunContext, rollback_revision

    settings = _settings(settings, database_url, migrations_dir, **overrides)
    revset = discover(settings.migrations_dir)
    _warn_if_manifest_stale(revset)
    with connect(settings) as conn:
        plan = plan_downgrade(conn, settings, revset, to=to, steps=steps)
        if not plan:
            return DowngradeResult()
        run_preflights(conn, plan)
        if dry_run:
            return DowngradeResult(planned=tuple(plan))
        if confirm is not None and not confirm(plan):
            raise DeclinedByOperator("downgrade cancelled; nothing was changed.")
        state = record.read_state(conn, settings.schema, (), details=False)  # for the journal
        pooled = _server_pid(conn) != conn.info.backend_pid
        needs_session = any(not step.revision.down.transactional for step in plan)
        done: list[RevisionRun] = []
        with session_connection(conn, settings, pooled=pooled, needed=needs_session) as session_conn:
            ctx = RunContext(settings, settings.lock_key, session_conn)
            try:
                for step in plan:
                    rev_id = step.revision.id
                    duration = rollback_revision(conn, ctx, step.revision, journaled=rev_id in state.in_progress)
                    if duration is None:
                        log.info("%s was rolled back by another run meanwhile", rev_id)
                        continue
                    log.info("rolled back %s in %.0f ms", rev_id, duration, extra=EVENT_ROLLED_BACK)
                    done.append(RevisionRun(rev_id, duration))
                    interrupt.check()
            except interrupt.Interrupted as stop:
                stop.applied, stop.direction = tuple(r.id for r in done), "rollback"
                raise
    return DowngradeResult(rolled_back=tuple(done))


def _server_pid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_catalog.pg_backend_pid()").fetchone()
    return int(row[0]) if row else 0


@contextmanager
def session_connection(
    conn: psycopg.Connection, settings: Settings, *, pooled: bool, needed: bool
) -> Iterator[psycopg.Connection | None]:
    """The connection non-transactional revisions run on: one server session from start to end.

    A pooler announces a backend pid of its own at connect, which is how `pooled` is known. Behind
    one, the direct URL is used when given; else session pooling is proven (our connection keeps
    its server backend while a second connection gets another) or the run is refused before
    anything runs: a transaction pooler may move every statement to another server connection.
    """
    if not needed or not pooled:
        yield conn if needed else None
        return
    if settings.direct_database is not None:
        direct = connect(settings, settings.direct_database)
        try:
            if _server_pid(direct) != direct.info.backend_pid:
                raise ConfigError(
                    f"--direct-url / {ENV_DIRECT_DATABASE_URL} ({settings.direct_database.display}) also goes "
                    "through a connection pooler; give the database server's own address. Nothing was changed."
                )
            yield direct
        finally:
            direct.close()
        return
    if _session_pooled(conn, settings):
        yield conn
        return
    raise ConfigError(
        f"{settings.database.display} goes through a transaction pooler (e.g. PgBouncer pool_mode=transaction: "
        "two of our connections ran on one server backend), and a pending revision is non-transactional "
        "(-- transactional: false), which needs one server session from start to end. Give the database "
        f"server's own address with --direct-url or {ENV_DIRECT_DATABASE_URL}; transactional revisions "
        "keep using the pooler. Nothing was changed."
    )


def _session_pooled(conn: psycopg.Connection, settings: Settings) -> bool:
    """True when `conn` owns its server backend: it stays on one backend while another connection
    through the same pooler runs on a different one (a transaction pooler hands the idle backend on)."""
    with connect(settings) as other:
        first = _server_pid(conn)
        theirs = _server_pid(other)
        return first == _server_pid(conn) and theirs != first


@typed_connection_loss
def status(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    migrations_dir: object = None,
    **overrides: object,
) -> StatusReport:
    """What is applied, pending, edited or unknown; who holds the lock. Takes no lock."""
    settings = _settings(settings, database_url, migrations_dir, **overrides)
    revset = discover(settings.migrations_dir)
    with connect(settings) as conn:
        state = record.read_state(conn, settings.schema, revset.extensions)
        holder = lock_holder(conn, settings.lock_key)
        invalid: tuple[str, ...] = ()
        if state.in_progress:
            from .runner import invalid_indexes

            invalid = tuple(f"{s}.{n}" for s, n in invalid_indexes(conn))
    report = build_status(revset, state, settings.database.display, holder, invalid)
    stale = manifest.stale_files(revset)
    return dataclasses.replace(report, manifest_stale=None if stale is None else tuple(stale))


def build_status(
    revset: RevisionSet, state: DbState, display: str, holder: LockHolder | None, invalid: tuple[str, ...] = ()
) -> StatusReport:
    drift = find_drift(revset.revisions, state)
    rows: list[RevisionStatus] = []
    known = revset.by_id()
    all_ids = sorted(
        set(known) | set(state.applied) | set(state.in_progress),
        key=lambda i: (int(i.split("_", 1)[0]) if i.split("_", 1)[0].isdigit() else -1, i),
    )
    for rev_id in all_ids:
        rev = known.get(rev_id)
        row = state.applied.get(rev_id)
        message = rev.message if rev else ""
        if rev_id in state.in_progress:
            p = state.in_progress[rev_id]
            path = (rev.up.path if p.direction == "apply" else rev.down.path) if rev else rev_id
            where = f" ({path}:{p.next_line})" if p.next_line else ""
            err = f"; last error: {p.last_error}" if p.last_error else ""
            rows.append(
                RevisionStatus(
                    rev_id,
                    "partial",
                    message,
                    p.started_at,
                    None,
                    f"{p.direction} stopped after statement {p.statements_done} of {p.statements_total}; "
                    + (
                        f"next is statement {p.statements_done + 1}{where}{err}"
                        if p.statements_done < p.statements_total
                        else "every statement ran, only recording it was interrupted: run the command again"
                    ),
                )
            )
        elif row is None:
            rows.append(RevisionStatus(rev_id, "pending", message))
        elif rev_id in drift.unknown:
            rows.append(
                RevisionStatus(rev_id, "unknown", "", row.applied_at, row.duration_ms, "applied, not in this code")
            )
        elif rev_id in drift.edited:
            rows.append(
                RevisionStatus(rev_id, "edited", message, row.applied_at, row.duration_ms, "file changed since applied")
            )
        elif rev_id in drift.unverified:
            rows.append(
                RevisionStatus(
                    rev_id, "unverified", message, row.applied_at, row.duration_ms, "applied by stock yoyo; no checksum"
                )
            )
        else:
            rows.append(RevisionStatus(rev_id, "applied", message, row.applied_at, row.duration_ms))
    missing = tuple(e for e in revset.extensions if e not in state.extensions)
    return StatusReport(display, tuple(rows), missing, holder, invalid, state.bookkeeping or state.legacy_yoyo)


def migrate_on_startup(
    database_url: str | None = None,
    migrations_dir: object = None,
    *,
    lock_timeout_s: float | None = None,
    **overrides: object,
) -> UpgradeResult:
    """Call at application start. Honours Z4J_AUTO_MIGRATE (true/false) and Z4J_DATABASE_URL.

    Returns fast when nothing is pending. A database ahead of the code is
    logged as a warning and accepted (the schema is additive within a release
    line). Raises a Z4jMigrateError subclass on failure.
    """
    if not parse_bool_env(ENV_AUTO_MIGRATE, default=True):
        log.info("%s=false: skipping migrations", ENV_AUTO_MIGRATE)
        return UpgradeResult(skipped=True)
    if lock_timeout_s is not None:
        overrides["lock_timeout_s"] = lock_timeout_s
    started = time.perf_counter()
    try:
        with interrupt.signals():  # for the call only, and only on the main thread
            result = upgrade(database_url=database_url, migrations_dir=migrations_dir, **overrides)
    except interrupt.Interrupted as stop:
        # Cleaned up (cancelled, rolled back, unlocked): hand the signal to the application's own
        # handlers, now restored, as if it had arrived just now (SIGTERM's default ends the process).
        log.error("%s", stop.summary())
        signal.raise_signal(stop.signum)
        raise
    if result.applied:
        log.info("applied %d revision(s) in %.0f ms", len(result.applied), (time.perf_counter() - started) * 1000)
    return result
