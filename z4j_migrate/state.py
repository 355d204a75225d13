"""Pure values of the bookkeeping: what the database says was applied, and the head digest.

No I/O and no SQL here: the planner (plan.py), the manifest and the catalog snapshot read
these values without importing the store (store.py) that reads and writes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# yoyo's three tables (their layout is stock yoyo's, so its CLI can read them), then ours.
YOYO_TABLES = ("_yoyo_migration", "_yoyo_log", "_yoyo_version")
TABLES = (*YOYO_TABLES, "_z4j_migrate_revision", "_z4j_migrate_progress", "_z4j_migrate_head")
HEAD_TABLE = "_z4j_migrate_head"
# Which rows of which table feed the head digest: the tag starts each row's text (see row_text).
HEAD_SOURCES = (("m", "_yoyo_migration"), ("r", "_z4j_migrate_revision"), ("p", "_z4j_migrate_progress"))


def revision_number(rev_id: str) -> int:
    """The number an id starts with ("0007_add_x" -> 7); -1 for an id that has none."""
    head = rev_id.split("_", 1)[0]
    return int(head) if head.isdigit() else -1


def by_number(rev_id: str) -> tuple[int, str]:
    """Sort key: by revision number, then id."""
    return (revision_number(rev_id), rev_id)


def migration_hash(rev_id: str) -> str:
    """yoyo's identity: sha256 of the migration id (not of the content)."""
    return hashlib.sha256(rev_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AppliedRow:
    id: str
    up_checksum: str | None  # None: applied by stock yoyo, before z4j-migrate kept checksums
    down_checksum: str | None
    applied_at: datetime | None
    duration_ms: float | None
    down_transactional: bool | None

    @property
    def version(self) -> int:
        return revision_number(self.id)


@dataclass(frozen=True)
class ProgressRow:
    """A non-transactional revision that started and has not finished."""

    id: str
    direction: str  # "apply" or "rollback"
    statements_done: int
    statements_total: int
    next_line: int | None
    last_error: str | None
    started_at: datetime | None


@dataclass(frozen=True)
class DbState:
    bookkeeping: bool  # our tables exist
    legacy_yoyo: bool  # only yoyo's tables exist (managed by stock yoyo before)
    applied: dict[str, AppliedRow]
    in_progress: dict[str, ProgressRow]
    extensions: frozenset[str]
    has_head: bool = False  # the head digest table exists (bookkeeping made before it was added has none)


@dataclass(frozen=True)
class Probe:
    """Which bookkeeping tables exist, which extensions are installed, and what server session
    answered (its pid, and whether it can write): one catalog-only statement."""

    yoyo: bool
    ours: bool
    head: bool
    extensions: frozenset[str]
    backend_pid: int = 0  # the server's pid; a pooler announces a pid of its own at connect
    in_recovery: bool = False  # a hot standby
    read_only: bool = False  # transaction_read_only: a standby, or default_transaction_read_only


@dataclass(frozen=True)
class StoredDown:
    """The down SQL kept in the database for a revision, for when the code no longer has it."""

    sql: str
    transactional: bool


def row_text(tag: str, rev_id: str, up_checksum: str = "", down_checksum: str = "") -> str:
    """The text hashed for one bookkeeping row; the trigger (head_track.sql) builds the same."""
    if tag == "r":
        return f"r {rev_id} {up_checksum} {down_checksum}"
    return f"{tag} {rev_id}"


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest(), "big")


def head_digest(revisions: Iterable[tuple[str, str, str]]) -> int:
    """The head digest of a database where exactly these (id, up checksum, down checksum) are applied
    by z4j-migrate and nothing is in progress: what the triggers maintain, computed client-side."""
    digest = 0
    for rev_id, up, down in revisions:
        digest ^= _h(row_text("m", rev_id)) ^ _h(row_text("r", rev_id, up, down))
    return digest
