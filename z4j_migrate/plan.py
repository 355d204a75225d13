"""Pure planning: revisions on disk + history in the database -> what to run.

No I/O here, so every ordering and drift rule is unit-tested without a server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import ConfigError, DriftError, IncompleteRevision, IrreversibleRevision
from .revisions import Revision, RevisionSet, parse_stored_down
from .state import DbState, StoredDown, by_number, revision_number

BACKUP_DOC = "docs/backup-restore.md"


@dataclass(frozen=True)
class Drift:
    """What differs between code and database, as status reports it."""

    edited: tuple[str, ...]  # applied, file changed since (up or down checksum differs)
    unknown: tuple[str, ...]  # applied in the database, absent from the code
    unverified: tuple[str, ...]  # applied by stock yoyo: no checksum to compare


def ranker(revisions: tuple[Revision, ...]) -> Callable[[str], int]:
    """An id's place in the order: its revision's number (`Revision.version`) when the directory has
    it, else the number the id starts with. In our layout the two are the same; a foreign layout
    may number by position (yoyo orders by dependencies, then name: layouts.py)."""
    known = {r.id: r.version for r in revisions}
    return lambda rev_id: known.get(rev_id, revision_number(rev_id))


def order_key(revisions: tuple[Revision, ...]) -> Callable[[str], tuple[int, str]]:
    """Sort key for ids: by place in the order (ranker), then id; state.by_number for our layout."""
    rank = ranker(revisions)
    return lambda rev_id: (rank(rev_id), rev_id)


def find_drift(revisions: tuple[Revision, ...], state: DbState) -> Drift:
    known = {r.id: r for r in revisions}
    edited, unverified = [], []
    for rev_id, row in state.applied.items():
        rev = known.get(rev_id)
        if rev is None:
            continue
        if row.up_checksum is None:
            unverified.append(rev_id)
        elif row.up_checksum != rev.up.checksum or row.down_checksum != rev.down.checksum:
            edited.append(rev_id)
    unknown = sorted((i for i in state.applied if i not in known), key=by_number)
    return Drift(tuple(sorted(edited)), tuple(unknown), tuple(sorted(unverified)))


def edited_error(revisions: tuple[Revision, ...], state: DbState, edited: tuple[str, ...]) -> DriftError:
    known = {r.id: r for r in revisions}
    parts = []
    for rev_id in edited:
        row, rev = state.applied[rev_id], known[rev_id]
        files = []
        if row.up_checksum != rev.up.checksum:
            files.append(rev.up.path)
        if row.down_checksum != rev.down.checksum:
            files.append(rev.down.path)
        parts.append(" and ".join(files))
    return DriftError(
        f"applied revision(s) changed on disk since they were applied: {'; '.join(parts)}. "
        "An applied revision must never be edited; restore the file (git checkout) and put the "
        "change in a new revision (z4j-migrate new)."
    )


def resolve_target(revisions: tuple[Revision, ...], applied_ids: list[str], target: str) -> int:
    """A target is a number (`7`, `0007`) or an id (`0007_tasks_fingerprint`); returns its version."""
    text = target.strip()
    if text.isdigit():
        return int(text)
    ids = {r.id for r in revisions} | set(applied_ids)
    rank = ranker(revisions)
    if rank(text) >= 0 and text in ids:
        return rank(text)
    raise ConfigError(f"unknown revision {target!r}: give a revision number or id (see z4j-migrate status).")


def plan_upgrade(revisions: tuple[Revision, ...], state: DbState, target: str | None = None) -> list[Revision]:
    """Pending revisions in order, or a typed error if applying them would be unsafe."""
    drift = find_drift(revisions, state)
    if drift.edited:
        raise edited_error(revisions, state, drift.edited)
    limit = resolve_target(revisions, list(state.applied), target) if target else None
    pending = [r for r in revisions if r.id not in state.applied and (limit is None or r.version <= limit)]
    _refuse_if_stopped(state, "rollback")
    if not pending:
        return []
    rank = ranker(revisions)
    highest_applied = max((rank(i) for i in state.applied), default=-1)
    out_of_order = [r.id for r in pending if r.version <= highest_applied]
    if out_of_order:
        newest = max(state.applied, key=order_key(revisions))
        raise DriftError(
            f"revision(s) {', '.join(out_of_order)} would be applied out of order: the database "
            f"already has {newest} applied. Renumber the new revision(s) above "
            f"{newest.split('_', 1)[0]} (or, if {newest} is unknown to this code, you are running "
            "an older release against a newer database)."
        )
    return pending


def _refuse_if_stopped(state: DbState, direction: str) -> None:
    """A non-transactional revision stopped part-way in the other direction must be finished first."""
    stuck = [p for p in state.in_progress.values() if p.direction == direction]
    if not stuck:
        return
    p = stuck[0]
    if direction == "rollback":
        raise IncompleteRevision(
            f"revision {p.id} was being rolled back and stopped after statement {p.statements_done} "
            f"of {p.statements_total}; finish it with 'z4j-migrate downgrade' before upgrading."
        )
    raise IncompleteRevision(
        f"revision {p.id} stopped part-way through its upgrade (statement {p.statements_done + 1} of "
        f"{p.statements_total}); run z4j-migrate upgrade to finish it before downgrading."
    )


def needs_run(revset: RevisionSet, state: DbState, pending: list[Revision]) -> bool:
    """Whether an upgrade has anything to do: revisions to apply, a stopped one to finish, the
    bookkeeping or an extension to create."""
    if not state.bookkeeping or state.in_progress:
        return True
    return bool(pending) or any(e not in state.extensions for e in revset.extensions)


@dataclass(frozen=True)
class DowngradeStep:
    revision: Revision
    from_database: bool  # the down SQL comes from the database (code does not have it)


def downgrade_targets(
    state: DbState, revisions: tuple[Revision, ...], *, to: str | None, steps: int | None
) -> list[str]:
    """Applied ids to undo, newest first."""
    rank = ranker(revisions)
    applied = sorted(state.applied, key=order_key(revisions), reverse=True)
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps {steps}: give 1 or more.")
        return applied[:steps]
    if to is None:
        raise ConfigError("downgrade needs --to REV|base or --steps N.")
    if to.strip().lower() == "base":
        return applied
    version = resolve_target(revisions, applied, to)
    if not any(rank(i) == version for i in applied):
        raise ConfigError(f"--to {to}: that revision is not applied, so the database cannot be downgraded to it.")
    return [i for i in applied if rank(i) > version]


def plan_downgrade(
    state: DbState,
    revisions: tuple[Revision, ...],
    stored: dict[str, StoredDown],
    *,
    to: str | None,
    steps: int | None,
) -> list[DowngradeStep]:
    """Which revisions to undo, newest first, with the down SQL to use: the file, or the copy the
    database keeps for a revision this code does not have (`stored`). Refuses the whole plan, before
    anything runs, when a step cannot be undone or its down file may not match what was applied."""
    _refuse_if_stopped(state, "apply")
    ids = downgrade_targets(state, revisions, to=to, steps=steps)
    drift = find_drift(revisions, state)
    edited = [i for i in ids if i in drift.edited]
    if edited:
        raise DriftError(
            f"cannot downgrade: applied revision(s) {', '.join(edited)} changed on disk since they were applied, "
            "so the down file may not match what was applied. Restore the original files first."
        )
    known = {r.id: r for r in revisions}
    plan = [_step(rev_id, known, stored) for rev_id in ids]
    check_reversible(plan)
    return plan


def _step(rev_id: str, known: dict[str, Revision], stored: dict[str, StoredDown]) -> DowngradeStep:
    if rev_id in known:
        return DowngradeStep(known[rev_id], from_database=False)
    if rev_id in stored:
        down = stored[rev_id]
        return DowngradeStep(parse_stored_down(rev_id, down.sql, down.transactional), from_database=True)
    raise DriftError(
        f"cannot downgrade {rev_id}: it is not in this code and the database holds no down SQL for it "
        "(it was applied by stock yoyo). Run the release that has it."
    )


def check_reversible(steps: list[DowngradeStep]) -> None:
    """Refuse the whole plan up front if any step cannot be undone."""
    for step in steps:
        rev = step.revision
        if rev.irreversible is not None:
            raise IrreversibleRevision(
                f"refusing to downgrade: revision {rev.id} is irreversible: {rev.irreversible} "
                f"To go back past it, restore the backup taken before it was applied (see "
                f"{BACKUP_DOC}). Nothing was changed."
            )
