"""Run a plan: each revision in its own locked transaction, or statement by statement.

A transactional revision is one query message (BEGIN, its settings, the lock guard, the file
as written, the bookkeeping, COMMIT): one round trip, SQL and history rows commit or vanish
together, and the lock dies with the transaction, on any pooler (lock.py). A
non-transactional one is split by PostgreSQL's own parser, each statement journaled before
and after it runs, under the session lock on a connection that is one server session.
Both run through yoyo's model (yoyo_adapter). A run that stops part-way raises an error that
says what it applied (`applied`) and where it stopped (`failed`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import errors as pgerrors

from . import diagnose, interrupt
from .backoff import Backoff
from .config import Settings
from .db import ensure_extensions, migration_settings
from .errors import IncompleteRevision, LockTimeout, PreflightFailed, RevisionFailed, Z4jMigrateError
from .lock import ALREADY_DONE, BUSY, LockWait, abort, guard_sql, locked_transaction, session_lock
from .logs import EVENT, EVENT_APPLIED, EVENT_ROLLED_BACK, log
from .plan import DowngradeStep, plan_upgrade
from .progress import PLANNED
from .revisions import Revision, RevisionSet, SqlFile
from .state import DbState, ProgressRow, migration_hash
from .store import Store

_RESET_SETTINGS = (
    "RESET lock_timeout; RESET statement_timeout; RESET idle_in_transaction_session_timeout; "
    "RESET client_connection_check_interval"
)


@dataclass(frozen=True)
class RevisionRun:
    """One revision this run applied (or rolled back)."""

    id: str
    duration_ms: float
    retries: int = 0  # attempts rolled back because a table lock timed out (lock_timeout), before it went through


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
class RunContext:
    """What every revision of one run shares: the settings, and the connection non-transactional
    revisions use (one server session: the main connection, unless that goes through a
    transaction pooler; then the direct URL's)."""

    settings: Settings
    session_conn: psycopg.Connection | None

    @property
    def schema(self) -> str:
        return self.settings.schema

    @property
    def key(self) -> int:
        return self.settings.lock_key


# --------------------------------------------------------------------------- a plan


def prepare(conn: psycopg.Connection, ctx: RunContext, revset: RevisionSet, state: DbState) -> list[str]:
    """Bookkeeping tables, the head digest and missing extensions, in one transaction holding the
    lock (concurrent first runs would otherwise race on CREATE TABLE / CREATE EXTENSION)."""
    missing = [e for e in revset.extensions if e not in state.extensions]
    if state.bookkeeping and state.has_head and not missing:
        return []
    with locked_transaction(conn, ctx.key, ctx.settings.lock_timeout_s), interrupt.cancellable(conn):
        conn.execute(migration_settings(ctx.settings, search_path=False))  # extensions: the role's schema
        store = Store(conn, ctx.schema)
        if not state.bookkeeping:
            store.create_tables()
        elif not state.has_head:  # bookkeeping made before the head digest existed: track from now on
            store.repair_head(create=True)
        return ensure_extensions(conn, revset.extensions, state.extensions)


def run_upgrade(
    conn: psycopg.Connection,
    ctx: RunContext,
    revset: RevisionSet,
    state: DbState,
    to: str | None,
    *,
    pending: list[Revision] | None = None,
) -> tuple[RevisionRun, ...]:
    """Apply what is pending, in order. A revision another run applied first is skipped, and the plan
    is read again (that run may have applied more)."""
    if pending is None:  # the caller has usually planned already, from this same state
        pending = plan_upgrade(revset.revisions, state, to)
    runs: list[RevisionRun] = []
    _announce(len(pending), "apply")
    with _partial(runs, lambda: pending[0].id if pending else None):
        while pending:
            revision = pending[0]
            with interrupt.critical():  # a signal cancels the SQL (cancellable) or waits until it is counted
                run = apply_revision(conn, ctx, revision, journaled=revision.id in state.in_progress)
                if run is not None:
                    runs.append(run)
            if run is None:  # another run applied it first: see what else it did
                state = Store(conn, ctx.schema).state(revset.extensions, details=False)
                pending = plan_upgrade(revset.revisions, state, to)
                continue
            log.info(
                "applied %s (%s) in %.0f ms",
                *(run.id, revision.message, run.duration_ms),
                extra={**EVENT_APPLIED, "item": run.id},
            )
            pending = pending[1:]
            interrupt.check()
    return tuple(runs)


def run_downgrade(
    conn: psycopg.Connection, ctx: RunContext, plan: Sequence[DowngradeStep], in_progress: dict[str, ProgressRow]
) -> tuple[RevisionRun, ...]:
    """Undo the plan's revisions, newest first; one another run undid meanwhile is skipped."""
    runs: list[RevisionRun] = []
    current: list[str | None] = [None]
    _announce(len(plan), "roll back")
    with _partial(runs, lambda: current[0], direction="rollback"):
        for step in plan:
            current[0] = rev_id = step.revision.id
            with interrupt.critical():
                run = rollback_revision(conn, ctx, step.revision, journaled=rev_id in in_progress)
                if run is not None:
                    runs.append(run)
            if run is None:
                log.info("%s was rolled back by another run meanwhile", rev_id)
                continue
            log.info("rolled back %s in %.0f ms", rev_id, run.duration_ms, extra={**EVENT_ROLLED_BACK, "item": rev_id})
            interrupt.check()
    return tuple(runs)


def _announce(total: int, verb: str) -> None:
    """How much work a run has, for the live progress line (progress.py); silent by default."""
    if total:
        log.info("%d revision(s) to %s", total, verb, extra={EVENT: PLANNED, "total": total, "unit": "revision"})


@contextlib.contextmanager
def _partial(runs: list[RevisionRun], current: Callable[[], str | None], direction: str = "apply") -> Iterator[None]:
    """An error that stops a run part-way says what the run did before it (goose's PartialError)."""
    try:
        yield
    except interrupt.Interrupted as stop:
        stop.applied, stop.direction = tuple(r.id for r in runs), direction
        raise
    except Z4jMigrateError as exc:
        exc.applied, exc.failed = tuple(r.id for r in runs), current()
        raise


def check_preflights(
    conn: psycopg.Connection, plan: Sequence[DowngradeStep], *, search_path: str | None = None
) -> None:
    """Every guard of the whole plan must hold before the first step runs. Read-only.
    `search_path`: Settings.search_path_value, the one the revisions run with (schema-per-tenant)."""
    failures = []
    for step in plan:
        for pf in step.revision.preflights:
            where = f"{step.revision.down.path}:{pf.line}"
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION READ ONLY")
                    if search_path is not None:
                        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (search_path,))
                    row = conn.execute(pf.sql).fetchone()
            except psycopg.Error as exc:
                raise PreflightFailed(
                    f"refusing to downgrade: preflight at {where} failed to run ({diagnose.primary(exc)}). "
                    "Nothing was changed."
                ) from exc
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


# --------------------------------------------------------------------------- one revision


def apply_revision(
    conn: psycopg.Connection, ctx: RunContext, revision: Revision, *, journaled: bool = False
) -> RevisionRun | None:
    """Apply one revision and record it; None if another run applied it first.
    `journaled`: a progress row may exist for it (a run stopped part-way), which recording clears."""
    return _run_one(conn, ctx, revision, "apply", journaled=journaled)


def rollback_revision(
    conn: psycopg.Connection, ctx: RunContext, revision: Revision, *, journaled: bool = False
) -> RevisionRun | None:
    """Undo one revision with its down SQL and remove its history rows (None: another run did)."""
    return _run_one(conn, ctx, revision, "rollback", journaled=journaled)


def _run_one(
    conn: psycopg.Connection, ctx: RunContext, revision: Revision, direction: str, *, journaled: bool
) -> RevisionRun | None:
    from .sqlcheck import settle

    revision = settle(revision)  # as it runs: mode decided, a BEGIN ... COMMIT wrapper dropped (no-op if settled)
    sql_file = revision.up if direction == "apply" else revision.down
    clear = journaled or not sql_file.transactional  # a journal row to delete with the history rows

    def record(store: Store, duration_ms: float) -> None:
        if direction == "apply":
            store.record_applied(revision, duration_ms=duration_ms, clear_progress=clear)
        else:
            store.record_rolled_back(revision.id, clear_progress=clear)

    def statement() -> str:  # the same rows as one SQL text, to travel in the revision's own message
        store = Store(conn, ctx.schema)
        if direction == "apply":
            return store.applied_statement(revision, clear_progress=clear)
        return store.rolled_back_statement(revision.id, clear_progress=clear)

    if sql_file.transactional:
        return _run_transactional(conn, ctx, revision, sql_file, direction, statement)
    return _run_statements(ctx, revision, sql_file, direction, record)


def _run_transactional(
    conn: psycopg.Connection,
    ctx: RunContext,
    revision: Revision,
    sql_file: SqlFile,
    direction: str,
    bookkeeping: Callable[[], str],
) -> RevisionRun | None:
    """One transaction, one round trip. The server parses the whole message before running any of it
    (a syntax error anywhere runs nothing) and an error anywhere aborts the transaction. Retried as a
    whole while the lock is busy, and when a table lock times out."""
    from .yoyo_adapter import run_message

    guard = guard_sql(ctx.key, ctx.schema, migration_hash(revision.id), applied=direction == "rollback")
    prefix = f"BEGIN;\n{migration_settings(ctx.settings, sql_file.statement_timeout_ms)};\n{guard};\n"
    wait = LockWait(conn, ctx.key, ctx.settings.lock_timeout_s)
    backoff = Backoff(0.25, 8.0)
    retries = 0
    while True:
        interrupt.check()
        started = time.perf_counter()
        try:
            with interrupt.cancellable(conn):
                run_message(conn, revision, direction, f"{prefix}{sql_file.text}\n;\n{bookkeeping()};\nCOMMIT")
            return RevisionRun(revision.id, (time.perf_counter() - started) * 1000, retries)
        except interrupt.Interrupted as stop:  # cancelled on the server: the transaction was rolled back
            with interrupt.critical():
                abort(conn)
            stop.undone = revision.id
            raise
        except psycopg.Error as exc:
            with interrupt.critical():
                abort(conn)
            if exc.sqlstate == BUSY:  # wait with cheap tries, not by re-sending the revision
                wait.pause()
                wait.until_free()
            elif exc.sqlstate == ALREADY_DONE:
                return None
            elif isinstance(exc, pgerrors.LockNotAvailable) and retries < ctx.settings.lock_retries:
                retries += 1
                delay = backoff.next_s()
                log.warning(
                    "%s: lock_timeout (%s); retry %d/%d in %.1fs",
                    *(revision.id, diagnose.describe(exc), retries, ctx.settings.lock_retries, delay),
                )
                interrupt.sleep(delay)
            else:
                raise _failed(conn, exc, revision, sql_file, ctx.settings, retries, len(prefix)) from exc


def _failed(
    conn: psycopg.Connection,
    exc: psycopg.Error,
    revision: Revision,
    sql_file: SqlFile,
    settings: Settings,
    retries: int,
    char_offset: int,
) -> Z4jMigrateError:
    """The error a failed transactional revision raises (it was rolled back)."""
    if diagnose.connection_lost(exc, conn):
        return diagnose.lost(exc, f"running {revision.id}")
    if isinstance(exc, pgerrors.ReadOnlySqlTransaction):
        return diagnose.read_only(settings.database.display, diagnose.first_line(exc))
    if isinstance(exc, pgerrors.LockNotAvailable):
        return LockTimeout(
            f"{sql_file.path}: gave up after {retries + 1} attempts, each waiting at most "
            f"lock_timeout for {diagnose.who_holds(conn, sql_file)} ({diagnose.describe(exc)}). The revision "
            "was rolled back each time and left nothing behind; retry when the application "
            "lets go, or raise --statement-lock-timeout."
        )
    return RevisionFailed(
        f"{diagnose.position(exc, sql_file, char_offset=char_offset)}: {diagnose.describe(exc)}. Revision "
        f"{revision.id} was rolled back and left no trace; revisions before it stay applied."
        f"{diagnose.timeout_hint(exc, sql_file, settings.statement_timeout_s)}",
        revision=revision.id,
        path=sql_file.path,
        sqlstate=exc.sqlstate,
    )


# --------------------------------------------------------------------------- non-transactional


def _run_statements(
    ctx: RunContext,
    revision: Revision,
    sql_file: SqlFile,
    direction: str,
    bookkeeping: Callable[[Store, float], None],
) -> RevisionRun | None:
    """Under the session lock on the run's session connection, with the session's settings set for
    the revision and reset afterwards. None when another run did it first."""
    conn = ctx.session_conn
    assert conn is not None, "the caller checks for a session connection before running anything"
    with session_lock(conn, ctx.key, ctx.settings.lock_timeout_s):
        store = Store(conn, ctx.schema)
        applied, progress = store.revision_state(revision.id)
        if applied == (direction == "apply") and progress is None:
            return None
        conn.execute(migration_settings(ctx.settings, sql_file.statement_timeout_ms, local=False))
        try:
            return _Statements(conn, ctx, revision, sql_file, direction, progress).run(bookkeeping)
        finally:
            with interrupt.critical(), contextlib.suppress(psycopg.Error):
                conn.execute(_RESET_SETTINGS + ("; RESET search_path" if ctx.settings.search_path else ""))


class _Statements:
    """One non-transactional file, statement by statement, resumable from its journal."""

    def __init__(
        self,
        conn: psycopg.Connection,
        ctx: RunContext,
        revision: Revision,
        sql_file: SqlFile,
        direction: str,
        progress: ProgressRow | None,
    ) -> None:
        from .sqlcheck import split_statements

        self.conn, self.ctx, self.revision, self.sql_file, self.direction = conn, ctx, revision, sql_file, direction
        self.store = Store(conn, ctx.schema)
        self.statements = split_statements(sql_file)
        self.resumed = progress is not None and progress.direction == direction
        self.done = progress.statements_done if self.resumed and progress else 0
        # The file's statement_timeout is set for the session; our own writes must not be cut by it.
        self.limited = (sql_file.statement_timeout_ms or ctx.settings.statement_timeout_ms) > 0
        self.in_flight = self.statements[min(self.done, len(self.statements) - 1)]
        self.journaled = self.resumed  # a journal row exists (else a stop before the first statement left none)

    def run(self, bookkeeping: Callable[[Store, float], None]) -> RevisionRun:
        from .yoyo_adapter import run_steps

        total = len(self.statements)
        if self.resumed:
            log.warning("%s: resuming %s at statement %d of %d", self.revision.id, self.direction, self.done + 1, total)
        if self.resumed and self.done < total:  # also when statement 1 was the one interrupted
            with interrupt.cancellable(self.conn):
                _drop_leftover_index(self.conn, self.statements[self.done].sql)
        started = time.perf_counter()
        steps = [self._step(s.index) for s in self.statements[self.done :]]
        try:
            run_steps(self.conn, self.revision, self.direction, steps)
        except interrupt.Interrupted as stop:  # the journal already says which statement is next
            if self.journaled:  # stopped before its first journal row: nothing of it ran, nothing to report
                stop.journaled = self.revision.id
            raise
        except psycopg.Error as exc:
            raise self._stopped(exc) from exc
        with interrupt.critical(), _unlimited(self.conn, True):
            bookkeeping(self.store, (time.perf_counter() - started) * 1000)
        return RevisionRun(self.revision.id, (time.perf_counter() - started) * 1000)

    def _journal(self, done: int, next_line: int | None, error: str | None = None) -> None:
        with interrupt.critical(), _unlimited(self.conn, self.limited):
            self.store.record_progress(
                self.revision.id,
                direction=self.direction,
                done=done,
                total=len(self.statements),
                next_line=next_line,
                error=error,
            )
        self.journaled = True

    def _step(self, index: int) -> Callable[[], None]:
        statement = self.statements[index - 1]
        following = self.statements[index].line if index < len(self.statements) else None  # where to resume

        def run() -> None:
            interrupt.check()
            self.in_flight = statement
            with interrupt.critical():  # from the journal row before to the one after: never half-counted
                self._journal(index - 1, statement.line)
                interrupt.check()  # a signal during the journal write: stop before the statement starts
                with interrupt.cancellable(self.conn):
                    self.conn.execute(statement.sql)
                self._journal(index, following)
            interrupt.check()

        return run

    def _stopped(self, exc: psycopg.Error) -> Z4jMigrateError:
        failed, total, path = self.in_flight, len(self.statements), self.sql_file.path
        if diagnose.connection_lost(exc, self.conn):
            verb = "applying" if self.direction == "apply" else "rolling back"
            where = f"statement {failed.index} of {total} ({path}:{failed.line})"
            return diagnose.lost(exc, f"{verb} {self.revision.id}", where=where)
        with contextlib.suppress(psycopg.Error):
            self._journal(failed.index - 1, failed.line, diagnose.describe(exc))
        if isinstance(exc, pgerrors.ReadOnlySqlTransaction):
            return diagnose.read_only(self.ctx.settings.database.display, diagnose.first_line(exc))
        hint = diagnose.timeout_hint(exc, self.sql_file, self.ctx.settings.statement_timeout_s)
        return IncompleteRevision(
            f"{path}:{failed.line}: statement {failed.index} of {total} failed: {diagnose.describe(exc)}. This "
            f"revision runs without a transaction: {_in_effect(failed.index)}{hint}"
            f"{diagnose.invalid_index_hint(self.conn)} Fix the cause and run z4j-migrate again to resume at "
            f"statement {failed.index} (an INVALID index that statement left is dropped first)."
        )


@contextlib.contextmanager
def _unlimited(conn: psycopg.Connection, limited: bool) -> Iterator[None]:
    """Bookkeeping between a non-transactional revision's statements: in a transaction of its own
    without the revision's statement_timeout when one is set (else in autocommit, one round trip)."""
    if not limited:
        yield
        return
    with conn.transaction():
        conn.execute("SET LOCAL statement_timeout = 0")
        yield


def _in_effect(failed_index: int) -> str:
    if failed_index <= 1:
        return "none of its statements is in effect."
    span = "statement 1 is" if failed_index == 2 else f"statements 1-{failed_index - 1} are"
    return f"{span} in effect and not undone."


def _drop_leftover_index(conn: psycopg.Connection, statement_sql: str) -> None:
    """The statement to resume is a CREATE INDEX CONCURRENTLY that was cancelled, killed or timed out:
    the journal proves it never finished, so an INVALID index of its name is its leftover, and
    running it again would fail with "already exists". Drop that one index (never any other)."""
    from .sqlcheck import concurrent_index_name

    name = concurrent_index_name(statement_sql)
    if name is None:
        return
    row = conn.execute(
        "SELECT NOT i.indisvalid FROM pg_catalog.pg_index i WHERE i.indexrelid = pg_catalog.to_regclass(%s)", (name,)
    ).fetchone()
    if row and row[0]:
        log.warning("dropping INVALID index %s left by the interrupted statement, then running it again", name)
        conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
