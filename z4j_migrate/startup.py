"""The start-up check: is the database already at this code's head? Two statements at any size.

Every boot of every replica runs it, so it never imports yoyo or the SQL parser. A catalog probe
(which bookkeeping tables exist, which extensions, which server answered), then the head digest
(one row), compared with the digest the revision files, or their manifest z4j-migrate.sum, say
a fully applied database has (docs/revision-format.md). Only when they differ is the whole
history read and planned (api.upgrade).
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import psycopg

from . import manifest
from .config import Settings
from .lock import abort, try_locked_transaction
from .logs import log
from .plan import find_drift
from .revisions import RevisionSet, discover
from .state import DbState, Probe, head_digest
from .store import Store

_THREAD_WORTH_FILES = 64  # about 30 revisions: below that a thread costs more than it saves


def _many(directory: Path, files: int = _THREAD_WORTH_FILES) -> bool:
    try:
        with os.scandir(directory) as entries:
            return sum(1 for _ in itertools.islice(entries, files)) >= files
    except OSError:
        return False  # discover() reports it


class StartupScan:
    """What the revision directory says, for the start-up check.

    With a manifest (z4j-migrate.sum) that matches the directory listing, that is enough. Without
    one, discover() reads and hashes every file; that runs on a thread while the caller connects,
    since connecting mostly waits on the server. A thread costs something to start and join and
    competes for the GIL, so the manifest is read in line, and so are small directories. With
    --wait (connect retries) everything runs first, so a file error is reported at once.
    """

    def __init__(self, directory: Path, *, wait: bool, layout: str | None = None) -> None:
        self._directory = directory
        self._layout = layout  # Settings.layout: None reads the directory's z4j-migrate.toml
        self._manifest: manifest.Manifest | None = None
        self._revset: RevisionSet | None = None
        self._files_digest: int | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if not wait and not os.path.exists(directory / manifest.MANIFEST_FILE) and _many(directory):
            self._thread = threading.Thread(target=self._run, name="z4j-migrate-discover", daemon=True)
            self._thread.start()
        else:
            self._run()

    def _run(self) -> None:
        try:
            if self._layout in (None, "z4j"):  # `hash` writes manifests for our layout only
                self._manifest = manifest.trusted(self._directory)
            if self._manifest is None:
                self._revset = discover(self._directory, self._layout)
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
            revs = self.result().revisions
            self._files_digest = head_digest((r.id, r.up.checksum, r.down.checksum) for r in revs)
        return self._files_digest

    def result(self) -> RevisionSet:
        """Every revision, read and parsed (from the files, never from the manifest)."""
        self._join()
        if self._revset is None:
            self._revset = discover(self._directory, self._layout)
        return self._revset


@dataclass(frozen=True)
class HeadCheck:
    """The start-up check's answer: at head, or what the slow path needs to go on from."""

    at_head: bool
    probe: Probe
    stored: int | None  # the head digest the database holds (None: missing or invalidated)


def check_head(store: Store, scan: StartupScan, *, to: str | None) -> HeadCheck:
    """The two statements. A file error found meanwhile wins over a database error, as it would
    have if the files had been read first."""
    try:
        found = store.probe_all_extensions()
        if not found.ours:  # a first run (never the no-op): is this database another tool's?
            refuse_foreign_history(store)
        expected, extensions = scan.expected()
        stored = None
        if found.head and all(e in found.extensions for e in extensions):
            stored = store.read_head()
        return HeadCheck(stored == expected and to is None, found, stored)
    except BaseException:
        scan.expected()
        raise


def refuse_foreign_history(store: Store) -> None:
    """No bookkeeping of ours: if another tool's history is here (foreign.py), running the revisions
    would apply again what it applied, so refuse before anything runs, naming `adopt`. One catalog
    statement, on the first run only."""
    from . import foreign

    tables = foreign.detect(store.conn, store.schema)
    if tables:
        raise foreign.refusal(tables, f"database {store.conn.info.dbname}")


def all_applied(revset: RevisionSet, state: DbState) -> bool:
    """Every revision applied by z4j-migrate (checksums recorded), nothing else, nothing in progress:
    the state whose head digest the start-up check expects."""
    if state.in_progress or len(state.applied) != len(revset.revisions):
        return False
    return all((row := state.applied.get(r.id)) is not None and row.up_checksum is not None for r in revset.revisions)


def repair_head(conn: psycopg.Connection, settings: Settings, *, create: bool) -> None:
    """Make the next start-up cheap again: the head digest is missing (bookkeeping made by an older
    z4j-migrate) or stale (rows changed with triggers off). Skipped when another run holds the lock."""
    if not try_locked_transaction(conn, settings.lock_key):
        return
    try:
        repaired = Store(conn, settings.schema).repair_head(create=create)
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


def warn_if_manifest_stale(revset: RevisionSet) -> None:
    stale = manifest.stale_files(revset)
    if stale:
        log.warning("%s", manifest.stale_message(revset.directory, stale))


def warn_unknown(revset: RevisionSet, state: DbState) -> tuple[str, ...]:
    """Revisions the database has and this code does not (an older release against a newer schema)."""
    unknown = find_drift(revset.revisions, state).unknown
    if unknown:
        log.warning(
            "the database has revision(s) this code does not know: %s (database ahead of code; "
            "an older release is running against a newer schema)",
            ", ".join(unknown),
        )
    return unknown
