"""Offline work on a revision directory (no database): check it, write its manifest, scaffold a revision.

These are what `z4j-migrate check`, `hash` and `new` call; a CI script or an editor plugin can call
them the same way. Each takes the directory (default: Z4J_MIGRATIONS_DIR, else the bundled sql/) and
returns a value to render; files that are wrong raise RevisionFileError (exit code 3), naming the file.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
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
class Problem:
    """One thing wrong in a directory: where, what, and how to fix it (one paragraph)."""

    path: str | None
    line: int | None
    message: str  # without the path:line prefix
    kind: str  # files (names, pairing, headers, encoding), sql, manifest, lint

    @classmethod
    def of(cls, error: RevisionFileError, kind: str) -> Problem:
        where = f"{error.path}:{error.line}: " if error.path and error.line else f"{error.path}: " if error.path else ""
        return cls(error.path, error.line, error.message.removeprefix(where), kind)

    def render(self) -> str:
        where = f"{self.path}:{self.line}: " if self.path and self.line else f"{self.path}: " if self.path else ""
        return f"{where}{self.message}"


@dataclass(frozen=True)
class CheckReport:
    """Everything check_directory found: the problems of the revision files and the manifest, and lint."""

    directory: Path
    revisions: int  # the revisions read without a problem in their files
    has_manifest: bool  # z4j-migrate.sum is there
    lint: LintReport
    problems: tuple[Problem, ...] = ()  # in files, SQL and the manifest, by file and line; lint errors: `lint`
    layout: str = "z4j"  # the layout the directory was read in (a manifest is for ours only)

    @property
    def all_problems(self) -> tuple[Problem, ...]:
        """Every problem, lint errors included (each is an exit 3)."""
        lint = tuple(Problem(f.path, f.line, f"{f.rule}: {f.message}", "lint") for f in self.lint.errors)
        return self.problems + lint

    @property
    def ok(self) -> bool:
        return not self.problems and not self.lint.errors

    def summary(self) -> str:
        if self.ok:
            return f"ok: {self.revisions} revision(s) in {self.directory}"
        counts = Counter(p.kind for p in self.all_problems)
        parts = ", ".join(f"{counts[kind]} {name}" for kind, name in _KIND_NAMES.items() if counts[kind])
        return f"check: {sum(counts.values())} problem(s) in {self.directory} ({parts})"

    def render(self, *, verbose: bool = False) -> str:
        """One line per problem in the files, lint's own report, then the summary count."""
        from .lint import render as render_lint

        lines = [p.render() for p in self.problems]
        if not self.has_manifest and not self.problems and self.layout == "z4j":
            lines.append(
                f"note: no {manifest.MANIFEST_FILE}: every start-up reads and hashes every revision file "
                "(z4j-migrate hash writes it; docs/revision-format.md)"
            )
        text = "\n".join(lines) + "\n" if lines else ""
        return text + render_lint(self.lint, verbose=verbose) + self.summary() + "\n"

    def to_json(self) -> dict[str, object]:
        return {
            "directory": str(self.directory),
            "ok": self.ok,
            "revisions": self.revisions,
            "manifest": self.has_manifest,
            "problems": [
                {"path": p.path, "line": p.line, "kind": p.kind, "message": p.message} for p in self.all_problems
            ],
            "lint": {"errors": len(self.lint.errors), "warnings": len(self.lint.warnings), "squawk": self.lint.squawk},
        }

    def raise_for_problems(self) -> None:
        """RevisionFileError (exit 3) counting the problems (each listed by render), if there is one."""
        if not self.ok:
            raise RevisionFileError(
                f"{self.summary()}, each listed above with its file and line; the first: "
                f"{self.all_problems[0].render()} Fix them and run z4j-migrate check again."
            )


_KIND_NAMES = {
    "files": "in revision files",
    "sql": "in SQL",
    "manifest": "in the manifest",
    "lint": "lint error(s)",
}


def check_directory(directory: Directory = None, *, lint: bool = True, layout: str | None = None) -> CheckReport:
    """Validate every revision (files, headers, SQL) and the manifest, then lint them: every problem
    of the directory in one report (CheckReport.problems, lint errors in .lint; raise_for_problems
    raises RevisionFileError, exit 3, when there is any).

    The manifest is compared only when every file was read (a file that cannot be read cannot be
    hashed either). `lint=False` skips squawk only: destructive statements are still found. A
    missing squawk, a bad [tool.z4j-migrate.lint] section or a missing directory is a ConfigError.
    `layout`: whose file layout (--layout; else Z4J_LAYOUT, the toml, z4j).
    """
    from .lint import lint as run_lint
    from .sqlcheck import check_revision

    found: list[RevisionFileError] = []
    revset = discover(resolve_migrations_dir(directory), resolve_layout(layout), problems=found)
    problems = [Problem.of(e, "files") for e in found]
    settled = []  # as they would run (sqlcheck.settle): lint sees each file's decided transaction mode
    for revision in revset.revisions:
        in_sql: list[RevisionFileError] = []
        settled.append(check_revision(revision, in_sql) or revision)
        problems += [Problem.of(e, "sql") for e in in_sql]
    stale = manifest.stale_files(revset, thorough=True) if not found else None
    if stale:
        path = str(revset.directory / manifest.MANIFEST_FILE)
        message = manifest.stale_message(revset.directory, stale).removeprefix(f"{path} ")
        problems.append(Problem(path, None, message, "manifest"))
    has_manifest = (revset.directory / manifest.MANIFEST_FILE).exists()
    report = run_lint(replace(revset, revisions=tuple(settled)), squawk=lint)
    problems.sort(key=lambda p: (p.path or "", p.line or 0))  # file by file, in directory order
    return CheckReport(revset.directory, len(revset.revisions), has_manifest, report, tuple(problems), revset.layout)


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
