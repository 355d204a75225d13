"""The library's verbs: upgrade, downgrade, status and the start-up call.

Each is a short function over the data path: discover the revisions (revisions.py), read the
history (store.py), plan (plan.py), and run the plan (runner.py), where each revision takes
the lock (lock.py) in its own transaction and records itself there. The no-op start-up
(startup.py) costs two statements and never imports yoyo or the SQL parser.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable

import psycopg

from . import interrupt, manifest
from .config import ENV_AUTO_MIGRATE, Settings, given_or_from_env, parse_bool_env
from .db import connect, connected, server_pid, session_connection, typed_connection_loss
from .diagnose import invalid_indexes, read_only
from .errors import DeclinedByOperator
from .lock import lock_holder
from .logs import log
from .plan import DowngradeStep, find_drift, needs_run, plan_downgrade, plan_upgrade
from .revisions import Revision, RevisionSet, discover
from .runner import DowngradeResult, UpgradeResult
from .startup import StartupScan, all_applied, check_head, repair_head, warn_if_manifest_stale, warn_unknown
from .state import DbState
from .status import StatusReport, build_status
from .store import Store


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
    """Apply every pending revision (up to `to`). Nothing pending: returns after two statements."""
    settings = given_or_from_env(settings, database_url, migrations_dir, **overrides)
    scan = StartupScan(settings.migrations_dir, wait=bool(settings.connect_wait_s), layout=settings.layout)
    try:
        conn = connect(settings)
    except BaseException:
        scan.expected()  # a revision file error was found first, as before: it wins over a database error
        raise
    with contextlib.closing(conn):
        store = Store(conn, settings.schema)
        head = check_head(store, scan, to=to)
        if head.at_head:
            return UpgradeResult()
        revset = scan.result()
        state = store.read_state(head.probe, details=False)
        warn_if_manifest_stale(revset)
        pending = plan_upgrade(revset.revisions, state, to)
        if dry_run:
            return UpgradeResult(planned=tuple(pending), unknown=warn_unknown(revset, state))
        if not needs_run(revset, state, pending):
            # The digest is missing or stale (against the files: a stale manifest is not its fault).
            # A standby cannot write it; the primary's next run will.
            if all_applied(revset, state) and head.stored != scan.files_digest() and not head.probe.read_only:
                repair_head(conn, settings, create=not head.probe.head)
            return UpgradeResult(unknown=warn_unknown(revset, state))
        if head.probe.read_only:
            why = "a hot standby in recovery" if head.probe.in_recovery else "default_transaction_read_only is on"
            raise read_only(settings.database.display, why)
        return _apply(
            conn, settings, revset, state, pending, to, pooled=head.probe.backend_pid != conn.info.backend_pid
        )


def _apply(
    conn: psycopg.Connection,
    settings: Settings,
    revset: RevisionSet,
    state: DbState,
    pending: list[Revision],
    to: str | None,
    *,
    pooled: bool,
) -> UpgradeResult:
    from .runner import RunContext, prepare, run_upgrade
    from .sqlcheck import check_revision

    pending = [check_revision(r) for r in pending]  # parse all before running any; settled (sqlcheck.settle)
    needed = any(not r.up.transactional for r in pending)
    with session_connection(conn, settings, pooled=pooled, needed=needed) as session_conn:
        ctx = RunContext(settings, session_conn)
        created = prepare(conn, ctx, revset, state)
        runs = run_upgrade(conn, ctx, revset, state, to, pending=pending)
    return UpgradeResult(applied=runs, unknown=warn_unknown(revset, state), created_extensions=tuple(created))


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

    The whole plan is checked first (irreversible revisions, edited files, preflights); a refusal
    changes nothing. `confirm` is asked before anything is dropped.
    """
    from .runner import RunContext, check_preflights, run_downgrade

    settings = given_or_from_env(settings, database_url, migrations_dir, **overrides)
    revset = discover(settings.migrations_dir, settings.layout)
    warn_if_manifest_stale(revset)
    with connected(settings) as conn:
        store = Store(conn, settings.schema)
        state = store.state((), details=False)
        unknown = list(find_drift(revset.revisions, state).unknown)
        plan = plan_downgrade(
            state, revset.revisions, store.stored_downs(unknown) if unknown else {}, to=to, steps=steps
        )
        if plan:
            from .sqlcheck import check_unverified_downs

            plan = check_unverified_downs(plan, find_drift(revset.revisions, state).unverified)  # settled
        if not plan:
            return DowngradeResult()
        check_preflights(conn, plan, search_path=settings.search_path_value)
        if dry_run:
            return DowngradeResult(planned=tuple(plan))
        if confirm is not None and not confirm(plan):
            raise DeclinedByOperator("downgrade cancelled; nothing was changed.")
        pooled = server_pid(conn) != conn.info.backend_pid
        needed = any(not step.revision.down.transactional for step in plan)
        with session_connection(conn, settings, pooled=pooled, needed=needed) as session_conn:
            runs = run_downgrade(conn, RunContext(settings, session_conn), plan, state.in_progress)
    return DowngradeResult(rolled_back=runs)


@typed_connection_loss
def status(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    migrations_dir: object = None,
    **overrides: object,
) -> StatusReport:
    """What is applied, pending, edited or unknown; who holds the lock. Takes no lock, writes nothing."""
    settings = given_or_from_env(settings, database_url, migrations_dir, **overrides)
    revset = discover(settings.migrations_dir, settings.layout)
    with connected(settings) as conn:
        state = Store(conn, settings.schema).state(revset.extensions)
        holder = lock_holder(conn, settings.lock_key)
        invalid = tuple(invalid_indexes(conn)) if state.in_progress else ()
    stale = manifest.stale_files(revset)
    return build_status(
        revset, state, settings.database.display, holder, invalid, None if stale is None else tuple(stale)
    )


def migrate_on_startup(
    database_url: str | None = None,
    migrations_dir: object = None,
    *,
    lock_timeout_s: float | None = None,
    **overrides: object,
) -> UpgradeResult:
    """Call at application start. Honours Z4J_AUTO_MIGRATE (true/false) and Z4J_DATABASE_URL.

    Returns fast when nothing is pending. A database ahead of the code is logged as a warning and
    accepted (the schema is additive within a release line). Raises a Z4jMigrateError subclass on
    failure. SIGTERM/SIGINT during the call stop it cleanly (interrupt.py), then reach the
    application's own handlers.
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
