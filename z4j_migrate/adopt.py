"""`z4j-migrate adopt`: take over a database that another tool (or a person) built, safely.

A database golang-migrate, dbmate, stock yoyo or Flyway manages has no bookkeeping of ours, so an
`upgrade` would run every revision again (startup.check_head refuses that, naming this command).
`adopt` proves, before it records anything, that the database is what the revisions build:

1. read the other tool's history (foreign.py; left untouched, so the team can go back): which
   revisions it says are applied. A dirty or failed history is refused, and so is one that names a
   revision the directory lacks or skips one below its newest. `--to REV` instead: a database
   built by hand up to REV.
2. build exactly those revisions with the real engine in a scratch database on the same server
   (verify.py's scratch database: CREATE DATABASE, the bookkeeping schema, extensions, upgrade).
3. snapshot both catalogs (catalog.py; bookkeeping and the other tool's table left out) and
   compare. Any difference is reported object by object and nothing is recorded.
4. only then, in one transaction holding the migration lock (the history read again under it),
   record each revision as applied with its checksums (store.record_adopted, so the head digest
   stays right and the next start-up is the usual two statements).

Imported by the package, so only light modules at the top: the catalog and the scratch database
(verify.py) load when a call runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from . import foreign
from .config import Settings, given_or_from_env
from .db import connected, ensure_extensions, migration_settings
from .errors import AdoptionMismatch, ConfigError, ConnectionFailed, ForeignHistory, RefusedError, Z4jMigrateError
from .lock import locked_transaction
from .revisions import Revision, RevisionSet, discover
from .store import Store

if TYPE_CHECKING:
    from .catalog import Difference, Snapshot

HAND = "hand"  # AdoptResult.source for `--to`: a database built without a migration tool


@dataclass(frozen=True)
class AdoptResult:
    """What adopt found and did. `adopted`: the revision ids recorded as applied (with `dry_run`,
    the ones that would be); `history`: the other tool's table, left as it was."""

    source: str  # golang-migrate | dbmate | yoyo | flyway | hand
    adopted: tuple[str, ...]
    history: str | None = None  # schema.table
    stated: str = ""  # what that history says, in the tool's terms ("version 7")
    objects: int = 0  # objects of the catalog compared
    dry_run: bool = False
    duration_ms: float = 0.0

    def summary(self) -> str:
        """One line for a person."""
        span = f" ({self.adopted[0]} .. {self.adopted[-1]})" if self.adopted else ""
        what = f"{len(self.adopted)} revision(s){span}"
        origin = f"{self.source}'s history in {self.history} ({self.stated})" if self.history else "the database"
        verb = "would record" if self.dry_run else "recorded"
        left = f"; {self.history} was left as it was" if self.history else ""
        return (
            f"adopt: the catalog matches what {what} build ({self.objects} objects compared); {verb} them as "
            f"applied, from {origin}{left}."
        )


@dataclass(frozen=True)
class _Plan:
    """What to adopt: the revisions, where they came from, and the tables the comparison leaves out."""

    chosen: tuple[Revision, ...]
    history: foreign.ToolHistory | None
    exclude: tuple[foreign.HistoryTable, ...] = ()


def adopt(
    settings: Settings | None = None,
    *,
    source: str | None = None,
    to: str | None = None,
    database_url: str | None = None,
    migrations_dir: object = None,
    history_table: str | None = None,
    dry_run: bool = False,
    on_progress: Callable[[str], None] | None = None,
    **overrides: object,
) -> AdoptResult:
    """Record as applied the revisions `source`'s history lists (or those up to `to`), once a scratch
    database built from them has the same catalog as this one. Raises ForeignHistory (dirty or
    failed history), DriftError (history ahead of the files, a gap) or AdoptionMismatch (the
    catalogs differ), each before anything is recorded."""
    settings = given_or_from_env(settings, database_url, migrations_dir, **overrides)
    if (source is None) == (to is None):
        raise ConfigError(
            "adopt needs --from TOOL (golang-migrate, dbmate, yoyo, flyway: read that tool's history) or --to REV "
            "(a database built by hand up to REV), one of the two."
        )
    say = on_progress or (lambda _text: None)
    started = time.perf_counter()
    revset = _revisions(settings)
    with connected(settings) as conn:
        plan = _plan(conn, settings, revset, source, to, history_table)
    say(f"building {len(plan.chosen)} revision(s) in a scratch database to compare")
    expected = _built(settings, revset, plan, say)
    with connected(settings) as conn, locked_transaction(conn, settings.lock_key, settings.lock_timeout_s):
        again = _plan(conn, settings, revset, source, to, history_table)
        if [r.id for r in again.chosen] != [r.id for r in plan.chosen]:
            raise RefusedError(
                f"refusing to adopt {settings.database.display}: its history changed while adopt compared "
                f"catalogs (now {_stated(again)}); run adopt again. Nothing was recorded."
            )
        actual = _snapshot(conn, settings.schema, plan.exclude)
        _refuse_differences(settings, plan, expected, actual)
        if not dry_run:
            _record(conn, settings, plan)
    history = plan.history
    return AdoptResult(
        source=source or HAND,
        adopted=tuple(r.id for r in plan.chosen),
        history=history.where.display if history else None,
        stated=history.stated if history else "",
        objects=sum(len(objects) for objects in expected.values()),
        dry_run=dry_run,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _revisions(settings: Settings) -> RevisionSet:
    """Every revision, in the layout the settings name, each file checked (exit 3 before any database work)."""
    from .sqlcheck import check_revision

    revset = discover(settings.migrations_dir, getattr(settings, "layout", None))
    for revision in revset.revisions:
        check_revision(revision)
    return revset


def _stated(plan: _Plan) -> str:
    return plan.history.stated if plan.history else f"{len(plan.chosen)} revision(s)"


def _plan(
    conn: psycopg.Connection,
    settings: Settings,
    revset: RevisionSet,
    source: str | None,
    to: str | None,
    history_table: str | None,
) -> _Plan:
    """Which revisions to adopt, refused when our bookkeeping already records any or the history is unusable."""
    _refuse_if_ours(conn, settings)
    found = foreign.detect(conn, settings.schema)
    if source is None:
        assert to is not None
        target = revset.find(to)
        if target is None:
            raise ConfigError(f"adopt --to {to}: no such revision in {revset.directory} (give its number or id).")
        chosen = tuple(r for r in revset.revisions if r.version <= target.version)
        return _Plan(chosen, None, tuple(found))
    where = foreign.locate(conn, source, settings.schema, history_table)
    history = foreign.read(conn, where)
    if history.problem:
        raise ForeignHistory(
            f"refusing to adopt {settings.database.display}: {history.problem}. Nothing was recorded.", tool=source
        )
    chosen = tuple(foreign.revisions_for(history, revset.revisions, str(revset.directory)))
    return _Plan(chosen, history, tuple({*found, where}))


def _refuse_if_ours(conn: psycopg.Connection, settings: Settings) -> None:
    state = Store(conn, settings.schema).state(())
    if state.bookkeeping and (state.applied or state.in_progress):
        raise RefusedError(
            f"refusing to adopt {settings.database.display}: z4j-migrate already manages it ({len(state.applied)} "
            f"revision(s) recorded in schema {settings.schema}). Use z4j-migrate status and upgrade. Nothing was "
            "recorded."
        )


def _built(settings: Settings, revset: RevisionSet, plan: _Plan, say: Callable[[str], None]) -> Snapshot:
    """The catalog the chosen revisions build, with the real engine, in a scratch database (dropped after)."""
    from psycopg import sql

    from . import api
    from .verify import _scratch_database

    with _scratch_database(settings, keep=False, say=say) as scratch:
        with connected(scratch) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(settings.schema)))
            installed = Store(conn, settings.schema).probe(revset.extensions).extensions
            ensure_extensions(conn, revset.extensions, installed)
        if plan.chosen:
            try:
                api.upgrade(scratch, to=plan.chosen[-1].id)
            except ConnectionFailed:
                raise
            except Z4jMigrateError as exc:
                exc.message = (
                    f"adopt: building the revisions in a scratch database failed, so nothing was compared or "
                    f"recorded (the database itself was not touched): {exc.message}"
                )
                exc.args = (exc.message,)
                raise
        with connected(scratch) as conn:
            return _snapshot(conn, settings.schema, ())


def _snapshot(conn: psycopg.Connection, schema: str, exclude: tuple[foreign.HistoryTable, ...]) -> Snapshot:
    """verify.take_snapshot, with the other tools' history tables left out too (and a schema that
    holds only such a table)."""
    from .catalog import BOOKKEEPING_TABLES, snapshot
    from .verify import _schemas

    schemas = _schemas(conn)
    tables = BOOKKEEPING_TABLES | {f"{t.schema}.{t.table}" for t in exclude}
    snap = snapshot(conn, schemas=schemas, exclude_tables=tables)
    own = {"public", schema} | {t.schema for t in exclude}
    snap["schema"] = {name: {} for name in schemas if name not in own}
    return snap


def describe(d: Difference) -> str:
    """One difference, the revisions' catalog (scratch) on the left, the database's on the right."""
    if d.change == "left behind":
        return f"{d.subject}: in the database, not built by the revisions"
    if d.change == "missing":
        return f"{d.subject}: built by the revisions, missing from the database"
    return f"{d.subject}: {d.detail} (revisions -> database)" if d.detail else f"{d.subject} differs"


def _refuse_differences(settings: Settings, plan: _Plan, expected: Snapshot, actual: Snapshot) -> None:
    from .verify import differences

    found: list[Difference] = differences(expected, actual)
    if not found:
        return
    lines = [describe(d) for d in found]
    built = f"{plan.chosen[0].id} .. {plan.chosen[-1].id}" if plan.chosen else "no revisions"
    shown = "".join(f"\n  - {line}" for line in lines[:50])
    more = f"\n  - ... and {len(lines) - 50} more" if len(lines) > 50 else ""
    raise AdoptionMismatch(
        f"refusing to adopt {settings.database.display}: its catalog differs from what the revisions build "
        f"({built}, in a scratch database), in {len(lines)} object(s):{shown}{more}\nNothing was recorded. Make "
        "the database match the revisions (or write the revision that does what was done by hand), then adopt "
        "again.",
        lines,
    )


def _record(conn: psycopg.Connection, settings: Settings, plan: _Plan) -> None:
    """Our bookkeeping (created if missing) and one applied row per revision, in the caller's locked transaction."""
    conn.execute(migration_settings(settings, search_path=False))
    store = Store(conn, settings.schema)
    found = store.probe(())
    if not found.ours:
        store.create_tables()
    elif not found.head:
        store.repair_head(create=True)
    where = plan.history.where if plan.history else None
    origin = f"{where.tool}'s history in {where.display}" if where else "a database built by hand"
    comment = f"z4j-migrate adopt: from {origin}; the catalog matched"
    for revision in plan.chosen:
        store.record_adopted(revision, comment=comment)


def render(result: AdoptResult) -> str:
    """The closing line of `z4j-migrate adopt`."""
    return result.summary()
