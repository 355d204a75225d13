"""What `status` reports: each revision's state, from the files and the history. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .lock import LockHolder
from .plan import Drift, find_drift, order_key
from .revisions import Revision, RevisionSet
from .state import DbState, ProgressRow


class RevisionState(StrEnum):
    """A revision's state; the value is what `status` prints and `--json` carries."""

    APPLIED = "applied"
    PENDING = "pending"
    EDITED = "edited"  # applied, a file changed since
    UNKNOWN = "unknown"  # applied, not in this code (database ahead)
    PARTIAL = "partial"  # a non-transactional revision stopped part-way
    UNVERIFIED = "unverified"  # applied by stock yoyo: no checksum to compare


# States in which a revision's SQL is in the database.
IN_DATABASE = (RevisionState.APPLIED, RevisionState.EDITED, RevisionState.UNKNOWN, RevisionState.UNVERIFIED)


@dataclass(frozen=True)
class RevisionStatus:
    id: str
    state: RevisionState
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
    layout: str = "z4j"  # the directory's layout: only ours has a manifest

    def count(self, state: RevisionState | str) -> int:
        return sum(1 for r in self.revisions if r.state == state)

    @property
    def current(self) -> str | None:
        applied = [r.id for r in self.revisions if r.state in IN_DATABASE]
        return applied[-1] if applied else None

    @property
    def clean(self) -> bool:
        bad = (RevisionState.EDITED, RevisionState.UNKNOWN, RevisionState.PARTIAL)
        return not any(r.state in bad for r in self.revisions)


def build_status(
    revset: RevisionSet,
    state: DbState,
    display: str,
    holder: LockHolder | None,
    invalid: tuple[str, ...] = (),
    manifest_stale: tuple[str, ...] | None = None,
) -> StatusReport:
    known = revset.by_id()
    drift = find_drift(revset.revisions, state)
    ids = sorted(set(known) | set(state.applied) | set(state.in_progress), key=order_key(revset.revisions))
    rows = tuple(_row(rev_id, known.get(rev_id), state, drift) for rev_id in ids)
    missing = tuple(e for e in revset.extensions if e not in state.extensions)
    bookkeeping = state.bookkeeping or state.legacy_yoyo
    return StatusReport(display, rows, missing, holder, invalid, bookkeeping, manifest_stale, revset.layout)


def _row(rev_id: str, rev: Revision | None, state: DbState, drift: Drift) -> RevisionStatus:
    message = rev.message if rev else ""
    if rev_id in state.in_progress:
        return _partial(rev_id, rev, state.in_progress[rev_id], message)
    row = state.applied.get(rev_id)
    if row is None:
        return RevisionStatus(rev_id, RevisionState.PENDING, message)
    if rev_id in drift.unknown:
        return RevisionStatus(
            rev_id, RevisionState.UNKNOWN, "", row.applied_at, row.duration_ms, "applied, not in this code"
        )
    if rev_id in drift.edited:
        detail = "file changed since applied"
        return RevisionStatus(rev_id, RevisionState.EDITED, message, row.applied_at, row.duration_ms, detail)
    if rev_id in drift.unverified:
        detail = "applied by stock yoyo; no checksum"
        return RevisionStatus(rev_id, RevisionState.UNVERIFIED, message, row.applied_at, row.duration_ms, detail)
    return RevisionStatus(rev_id, RevisionState.APPLIED, message, row.applied_at, row.duration_ms)


def _partial(rev_id: str, rev: Revision | None, p: ProgressRow, message: str) -> RevisionStatus:
    path = (rev.up.path if p.direction == "apply" else rev.down.path) if rev else rev_id
    where = f" ({path}:{p.next_line})" if p.next_line else ""
    err = f"; last error: {p.last_error}" if p.last_error else ""
    done = f"{p.direction} stopped after statement {p.statements_done} of {p.statements_total}; "
    if p.statements_done < p.statements_total:
        detail = done + f"next is statement {p.statements_done + 1}{where}{err}"
    else:
        detail = done + "every statement ran, only recording it was interrupted: run the command again"
    return RevisionStatus(rev_id, RevisionState.PARTIAL, message, p.started_at, None, detail)
