"""Operator repairs, each recorded in _yoyo_log with who and when.

`accept`: an applied revision's file was edited on purpose (a comment, a
fixed typo in a down) and the operator vouches for it. `resolve`: a
non-transactional revision stopped part-way and the operator finished or
undid it by hand.
"""

from __future__ import annotations

from .config import Settings
from .db import connected
from .errors import ConfigError
from .lock import locked_transaction
from .plan import find_drift
from .revisions import discover
from .store import Store


def accept_edit(settings: Settings, rev_id: str) -> None:
    """Store the current checksums (and down SQL) of an edited, applied revision."""
    revset = discover(settings.migrations_dir, settings.layout)
    revision = revset.by_id().get(rev_id)
    if revision is None:
        raise ConfigError(f"accept: {rev_id} is not a revision in {revset.directory}.")
    with connected(settings) as conn, locked_transaction(conn, settings.lock_key, settings.lock_timeout_s):
        store = Store(conn, settings.schema)
        state = store.state(())
        drift = find_drift(revset.revisions, state)
        if rev_id not in drift.edited and rev_id not in drift.unverified:
            raise ConfigError(f"accept: {rev_id} is not an applied revision whose files changed; nothing to accept.")
        from .sqlcheck import check_revision

        check_revision(revision)
        if rev_id in drift.unverified:  # applied by stock yoyo: adopt it with today's files
            store.record_applied(revision, duration_ms=0.0)
        store.accept_checksums(revision)


def resolve_partial(settings: Settings, rev_id: str, *, applied: bool) -> None:
    """Close the journal of a stopped non-transactional revision, as applied or as never applied."""
    revset = discover(settings.migrations_dir, settings.layout)
    with connected(settings) as conn, locked_transaction(conn, settings.lock_key, settings.lock_timeout_s):
        store = Store(conn, settings.schema)
        state = store.state(())
        progress = state.in_progress.get(rev_id)
        if progress is None:
            raise ConfigError(
                f"resolve: {rev_id} has not stopped part-way; nothing to resolve (see z4j-migrate status)."
            )
        revision = revset.by_id().get(rev_id)
        finished = applied if progress.direction == "apply" else not applied
        if progress.direction == "apply" and applied:
            if revision is None:
                raise ConfigError(f"resolve: {rev_id} is not in {revset.directory}; cannot record it as applied.")
            store.record_applied(revision, duration_ms=0.0)
        elif progress.direction == "rollback" and not applied:
            store.record_rolled_back(rev_id)
        what = "finished by hand" if finished else "undone by hand"
        store.clear_progress(rev_id, comment=f"z4j-migrate resolve: {progress.direction} {what}")
