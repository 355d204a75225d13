"""Offline work on a revision directory (no database): check it, write its manifest, scaffold a revision.

These are what `z4j-migrate check`, `hash` and `new` call; a CI script or an editor plugin can call
them the same way. Each takes the directory (default: Z4J_MIGRATIONS_DIR, else the bundled sql/) and
returns a value to render; files that are wrong raise RevisionFileError (exit code 3), naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import manifest
from .config import resolve_layout, resolve_migrations_dir
from .errors import ConfigError, RevisionFileError
from .revisions import discover

if TYPE_CHECKING:
    from .lint import LintReport

Directory = str | os.PathLike[str] | None


@dataclass(frozen=True)
class CheckReport:
    """What check_directory found in a directory whose files and manifest are valid."""

    directory: Path
    revisions: int
    has_manifest: bool  # z4j-migrate.sum is there (and matches: a stale one raises)
    lint: LintReport

    @property
    def ok(self) -> bool:
        return not self.lint.errors

    def raise_for_problems(self) -> None:
        """RevisionFileError (exit 3) naming the first lint error, if there is one."""
        if self.lint.errors:
            first = self.lint.errors[0]
            raise RevisionFileError(
                f"lint found {len(self.lint.errors)} error(s), listed above; the first is {first.rule}.",
                path=first.path,
                line=first.line,
            )


def check_directory(directory: Directory = None, *, lint: bool = True, layout: str | None = None) -> CheckReport:
    """Validate every revision (files, headers, SQL) and the manifest, then lint them.

    Raises RevisionFileError for an invalid revision or a stale z4j-migrate.sum; lint errors are in
    the report (CheckReport.raise_for_problems raises for them). `lint=False` skips squawk only:
    destructive statements are still found. A missing squawk, or a bad [tool.z4j-migrate.lint]
    section, is a ConfigError. `layout`: whose file layout (--layout; else Z4J_LAYOUT, the toml, z4j).
    """
    from .lint import lint as run_lint
    from .sqlcheck import check_revision

    revset = discover(resolve_migrations_dir(directory), resolve_layout(layout))
    for revision in revset.revisions:
        check_revision(revision)
    stale = manifest.stale_files(revset, thorough=True)
    if stale:
        raise RevisionFileError(manifest.stale_message(revset.directory, stale))
    report = run_lint(revset, squawk=lint)
    return CheckReport(revset.directory, len(revset.revisions), stale is not None, report)


def write_manifest(directory: Directory = None, *, layout: str | None = None) -> tuple[Path, bool, int]:
    """Write the directory's z4j-migrate.sum from its (validated) revision files.

    Returns the manifest's path, whether the file changed, and the number of revisions. An
    invalid revision raises RevisionFileError and leaves any existing manifest as it was.
    """
    revset = discover(resolve_migrations_dir(directory), resolve_layout(layout))
    if revset.layout != "z4j":
        raise ConfigError(
            f"hash writes the manifest of the z4j layout only; {revset.directory} is read in the {revset.layout} "
            "layout, whose start-up check reads the files (docs/revision-format.md, Layouts)."
        )
    changed = manifest.write(revset.directory, manifest.for_revisions(revset))
    return revset.directory / manifest.MANIFEST_FILE, changed, len(revset.revisions)


@dataclass(frozen=True)
class NewRevision:
    up: Path
    down: Path
    manifest: Path | None  # the z4j-migrate.sum updated to list the new pair; None: the directory has none


def new_revision(message: str, *, directory: Directory = None, transactional: bool = True) -> NewRevision:
    """Scaffold the next NNNN_slug.up.sql / .down.sql pair (scaffold.new_revision).

    A directory with a manifest gets it updated at once, so the start-up check keeps trusting it;
    it must be written again (write_manifest) once the new files hold their SQL.
    """
    from .scaffold import new_revision as scaffold

    up, down = scaffold(directory, message, transactional=transactional)
    path = up.parent / manifest.MANIFEST_FILE
    if not path.exists():
        return NewRevision(up, down, None)
    manifest.write(up.parent, manifest.for_directory(up.parent))
    return NewRevision(up, down, path)
