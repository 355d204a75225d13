"""`--dry-run`: the exact SQL a run would send, in order, with its transaction boundaries."""

from __future__ import annotations

from collections.abc import Iterable

from .config import Settings
from .db import migration_settings
from .plan import DowngradeStep
from .revisions import Revision, SqlFile


def _body(settings: Settings, sql_file: SqlFile, bookkeeping: str) -> list[str]:
    key = settings.lock_key
    timeout_ms = sql_file.statement_timeout_ms
    if sql_file.transactional:
        return [
            "BEGIN;",
            migration_settings(settings, timeout_ms) + ";  -- SET LOCAL: this transaction only",
            f"-- guard: pg_catalog.pg_try_advisory_xact_lock({key}) (busy: roll back, wait, retry), "
            "then skip if another run got there first",
            sql_file.text.rstrip(),
            f"-- bookkeeping, same transaction: {bookkeeping}",
            "COMMIT;",
        ]
    from .sqlcheck import split_statements

    out = [
        f"SELECT pg_catalog.pg_try_advisory_lock({key});"
        f"  -- session lock, polled for up to {settings.lock_timeout_s:g}s",
        migration_settings(settings, timeout_ms, local=False) + ";",
        "-- non-transactional: each statement runs and commits on its own (autocommit), journaled",
    ]
    for statement in split_statements(sql_file):
        out.append(f"-- statement {statement.index} ({sql_file.path}:{statement.line})")
        out.append(statement.sql.rstrip(";") + ";")
    out += ["BEGIN;", f"-- bookkeeping: {bookkeeping}", "COMMIT;", f"SELECT pg_catalog.pg_advisory_unlock({key});"]
    return out


def _lock(settings: Settings) -> list[str]:
    return [
        f"-- target: {settings.database.display}",
        f"-- each revision takes the migration lock (advisory key {settings.lock_key}) in its own "
        f"transaction, waiting up to {settings.lock_timeout_s:g}s; DDL waits at most "
        f"lock_timeout = {settings.statement_lock_timeout_s:g}s for a table lock",
    ]


def render_upgrade(settings: Settings, planned: Iterable[Revision]) -> str:
    planned = list(planned)
    if not planned:
        return "-- nothing to apply\n"
    from .revisions import discover

    lines = _lock(settings)
    lines.append(
        f"-- first run only: CREATE TABLE IF NOT EXISTS {settings.schema}._yoyo_migration, _yoyo_log, _yoyo_version, "
        "_z4j_migrate_revision, _z4j_migrate_progress, _z4j_migrate_head and the head digest's triggers "
        "(one transaction)"
    )
    for ext in discover(settings.migrations_dir, settings.layout).extensions:
        lines.append(f"CREATE EXTENSION IF NOT EXISTS {ext};  -- only if not installed")
    from .sqlcheck import settle  # as the run decides: a BEGIN ... COMMIT wrapper dropped, the mode from the SQL

    for rev in map(settle, planned):
        lines += ["", f"-- ==== {rev.id}: {rev.message} ({rev.up.path})"]
        lines += _body(
            settings, rev.up, f"record {rev.id} in {settings.schema}._yoyo_migration, _yoyo_log, _z4j_migrate_revision"
        )
    return "\n".join(lines) + "\n"


def render_downgrade(settings: Settings, plan: list[DowngradeStep]) -> str:
    if not plan:
        return "-- nothing to undo\n"
    lines = _lock(settings)
    for step in plan:
        for pf in step.revision.preflights:
            lines.append(f"-- preflight (must be true; checked before any step): {pf.sql}")
    from .sqlcheck import settle

    for step in plan:
        rev = settle(step.revision)
        src = " (down SQL stored in the database)" if step.from_database else ""
        lines += ["", f"-- ==== undo {rev.id}{src} ({rev.down.path})"]
        lines += _body(
            settings,
            rev.down,
            f"remove {rev.id} from {settings.schema}._yoyo_migration and _z4j_migrate_revision; log 'rollback'",
        )
    return "\n".join(lines) + "\n"
