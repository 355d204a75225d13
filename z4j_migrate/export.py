"""`z4j-migrate export`: the revisions written in another tool's layout, for a team that leaves.

Each writer produces the files the way that tool's own documentation writes them, so the tool
runs them with nothing edited by hand (docs/revision-format.md, "Exporting to another tool"):

- golang-migrate: `{version}_{title}.up.sql` and `.down.sql`;
- dbmate: one `{version}_{title}.sql` with `-- migrate:up` and `-- migrate:down` blocks;
- yoyo: `{id}.sql` and `{id}.rollback.sql`, each chained to the one before by `-- depends:`;
- flyway: `V{version}__{title}.sql` and the undo `U{version}__{title}.sql`, with a script
  configuration file (`.sql.conf`) for the ones that must run outside a transaction.

The SQL is copied byte for byte. Only our markers the tool expresses its own way are translated:
`-- transactional: false` becomes the tool's marker (dbmate's `transaction:false`, Flyway's
`executeInTransaction=false`, yoyo's own `-- transactional: false` written once in the up, which
yoyo reads for both directions), and an irreversible down becomes no down
file (golang-migrate, yoyo, Flyway) or an empty dbmate down block holding our `-- irreversible:`
line. What a tool cannot express is kept as a comment and reported in `ExportResult.notes`.

Everything is built in memory and checked before the first file is written, so an export that
is refused leaves the directory as it was.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ConfigError, RevisionFileError
from .revisions import Revision, RevisionSet, discover

EXPORT_LAYOUTS = ("golang-migrate", "dbmate", "yoyo", "flyway")

# Our markers, in a file's header (the leading block of `--` lines), that a writer may translate.
_MARKER = re.compile(r"^--\s*(?P<key>transactional|irreversible)\s*:", re.IGNORECASE)
_DBMATE_BLOCK = re.compile(r"^--\s*migrate:(up|down)\b")  # dbmate splits the file at such a line
_YOYO_DEPENDS = re.compile(r"^\s*--\s*depends\s*:")  # as yoyo matches it
_COMMENT_OR_BLANK = re.compile(r"^\s*(--.*)?$")  # the lines of yoyo's leading block


@dataclass(frozen=True)
class ExportResult:
    """What `export` wrote: the files (in writing order), how many revisions, and what to know."""

    layout: str
    directory: Path
    files: tuple[Path, ...]
    revisions: int
    notes: tuple[str, ...] = ()  # what the tool does differently, one line each


@dataclass
class _Plan:
    """The files of an export before any is written: name -> text, and the notes."""

    files: dict[str, str]
    notes: list[str]

    def add(self, name: str, text: str) -> None:
        self.files[name] = text


# ------------------------------------------------------------------ text helpers


def _leading_block(text: str) -> int:
    """The number of lines before the first SQL line (`--` comments and blank lines): where our
    header directives are, and where yoyo reads its directives."""
    count = 0
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            break
        count += 1
    return count


def _without_markers(text: str, keys: frozenset[str]) -> str:
    """`text` without the header lines of the markers in `keys` (translated to the tool's own)."""
    lines = text.split("\n")
    end = _leading_block(text)
    kept = [
        line
        for n, line in enumerate(lines)
        if n >= end or not ((m := _MARKER.match(line.strip())) and m["key"].lower() in keys)
    ]
    return "\n".join(kept)


def _ends_with_newline(text: str) -> str:
    return text if text.endswith("\n") or not text else text + "\n"


def _title(revision: Revision) -> str:
    return revision.id.split("_", 1)[1]


def _digits(revision: Revision) -> str:
    """The version as our file name writes it (`0007`): golang-migrate and Flyway order by number."""
    return revision.id.split("_", 1)[0]


def _padded(revset: RevisionSet) -> Callable[[Revision], str]:
    """Versions padded to the widest one, for dbmate, which orders by file name: `10000_x` would run
    before `9999_y`. Unchanged when every version has the same width (the usual case)."""
    width = max(len(_digits(r)) for r in revset.revisions)
    return lambda r: _digits(r).zfill(width)


def _ids(revisions: list[Revision]) -> str:
    shown = ", ".join(r.id for r in revisions[:5])
    return shown + (f" and {len(revisions) - 5} more" if len(revisions) > 5 else "")


def _common_notes(revset: RevisionSet, tool: str) -> list[str]:
    """Our directives no other tool honours: kept as comments, said once each."""
    notes = []
    with_preflight = [r for r in revset.revisions if r.preflights]
    if with_preflight:
        notes.append(
            f"'-- preflight:' is kept as a comment; {tool} does not check it before a down ({_ids(with_preflight)})."
        )
    timed = [
        r for r in revset.revisions if r.up.statement_timeout_ms is not None or r.down.statement_timeout_ms is not None
    ]
    if timed:
        notes.append(
            f"'-- statement-timeout:' is kept as a comment; {tool} does not apply it ({_ids(timed)}); "
            "set statement_timeout for the role or in the database URL instead."
        )
    if revset.extensions:
        notes.append(
            f"z4j-migrate.toml extensions ({', '.join(revset.extensions)}) are created by z4j-migrate before "
            f"the first revision; {tool} does not: create them beforehand (CREATE EXTENSION IF NOT EXISTS)."
        )
    return notes


def _irreversible_note(revset: RevisionSet, tool: str, behaviour: str) -> list[str]:
    irreversible = [r for r in revset.revisions if r.irreversible is not None]
    if not irreversible:
        return []
    return [f"irreversible revisions have no down: {tool} {behaviour} ({_ids(irreversible)})."]


# ------------------------------------------------------------------ writers


def _several_outside_a_transaction(rev: Revision) -> bool:
    """A side that must run outside a transaction and holds more than one statement: golang-migrate
    sends a file as one query string, which PostgreSQL runs as one implicit transaction."""
    from .sqlcheck import split_statements

    sides = (rev.up, rev.down) if rev.down.has_sql else (rev.up,)
    return any(not side.transactional and len(split_statements(side)) > 1 for side in sides)


def _golang_migrate(revset: RevisionSet) -> _Plan:
    """`{version}_{title}.up.sql` / `.down.sql`; no down file for an irreversible revision."""
    plan = _Plan({}, _common_notes(revset, "golang-migrate"))
    for rev in revset.revisions:
        stem = f"{_digits(rev)}_{_title(rev)}"
        plan.add(f"{stem}.up.sql", rev.up.text)
        if rev.irreversible is None:
            plan.add(f"{stem}.down.sql", rev.down.text)
    plan.notes += _irreversible_note(
        revset, "golang-migrate", "treats a missing down file as nothing to run and still moves the version down"
    )
    untx = [r for r in revset.revisions if _several_outside_a_transaction(r)]
    if untx:
        plan.notes.append(
            "golang-migrate has no per-file transaction marker: '-- transactional: false' stays as a comment. Its "
            "PostgreSQL driver sends a file as one multi-statement query (an implicit transaction), so a file "
            "with CONCURRENTLY and other statements needs x-multi-statement=true in the database URL "
            f"({_ids(untx)})."
        )
    return plan


def _dbmate_block(direction: str, text: str, transactional: bool, path: str) -> str:
    for number, line in enumerate(text.split("\n"), start=1):
        if _DBMATE_BLOCK.match(line.strip()):
            raise RevisionFileError(
                f"has the line {line.strip()!r}, where dbmate would split the file; reword that comment "
                "before exporting to dbmate.",
                path=path,
                line=number,
            )
    marker = f"-- migrate:{direction}" + ("" if transactional else " transaction:false")
    body = _without_markers(text, frozenset({"transactional"}))
    return f"{marker}\n{_ends_with_newline(body)}"


def _dbmate(revset: RevisionSet) -> _Plan:
    """One `{version}_{title}.sql` per revision: `-- migrate:up` then `-- migrate:down` (dbmate requires
    both blocks; an irreversible down is an empty block with our `-- irreversible:` line as its comment)."""
    number = _padded(revset)
    plan = _Plan({}, _common_notes(revset, "dbmate"))
    for rev in revset.revisions:
        up = _dbmate_block("up", rev.up.text, rev.up.transactional, rev.up.path)
        down = _dbmate_block("down", rev.down.text, rev.down.transactional or not rev.down.has_sql, rev.down.path)
        plan.add(f"{number(rev)}_{_title(rev)}.sql", up + "\n" + down)
    plan.notes += _irreversible_note(
        revset, "dbmate", "runs the empty down block and removes the version: rolling back undoes nothing"
    )
    return plan


def _yoyo_check(rev: Revision) -> None:
    """yoyo reads `-- depends:` anywhere in the leading comment block of a migration (blank lines
    included): such a comment of the user's would become a dependency."""
    for number, line in enumerate(rev.up.text.split("\n"), start=1):
        if not _COMMENT_OR_BLANK.match(line):
            return
        if _YOYO_DEPENDS.match(line):
            raise RevisionFileError(
                "has a '-- depends:' comment before its first statement, which yoyo would read as a dependency; "
                "reword it before exporting to yoyo.",
                path=rev.up.path,
                line=number,
            )


def _yoyo(revset: RevisionSet) -> _Plan:
    """`{id}.sql` + `{id}.rollback.sql`, ids unchanged (so stock yoyo and z4j-migrate agree on what is
    applied), each up chained to the previous revision with `-- depends:` (yoyo orders by file name,
    which puts 10000_x before 9999_y). yoyo reads `-- transactional:` from the up file for both
    directions, matching the name case-sensitively: the up gets one marker, written by us."""
    plan = _Plan({}, _common_notes(revset, "yoyo"))
    previous: Revision | None = None
    mixed = []
    for rev in revset.revisions:
        _yoyo_check(rev)
        lines = [f"-- depends: {previous.id}"] if previous else []
        down_untx = rev.down.has_sql and not rev.down.transactional
        if not rev.up.transactional or down_untx:
            lines.append("-- transactional: false")
        if rev.up.transactional and down_untx:
            mixed.append(rev)
        head = "".join(f"{line}\n" for line in lines)
        plan.add(f"{rev.id}.sql", head + _without_markers(rev.up.text, frozenset({"transactional"})))
        if rev.irreversible is None:
            plan.add(f"{rev.id}.rollback.sql", rev.down.text)
        previous = rev
    plan.notes += _irreversible_note(
        revset, "yoyo", "rolls a migration without a rollback file back as a no-op and marks it unapplied"
    )
    if mixed:
        plan.notes.append(
            "yoyo runs a migration and its rollback the same way: these have a non-transactional down, so "
            f"their up runs outside a transaction too ({_ids(mixed)})."
        )
    return plan


def _flyway(revset: RevisionSet) -> _Plan:
    """`V{version}__{title}.sql` and `U{version}__{title}.sql`; a `.sql.conf` script configuration
    with `executeInTransaction=false` beside each one that must run outside a transaction."""
    plan = _Plan({}, _common_notes(revset, "Flyway"))
    untranslated = frozenset({"transactional"})
    for rev in revset.revisions:
        stem = f"{_digits(rev)}__{_title(rev)}.sql"
        plan.add(f"V{stem}", _without_markers(rev.up.text, untranslated))
        if not rev.up.transactional:
            plan.add(f"V{stem}.conf", "executeInTransaction=false\n")
        if rev.irreversible is None:
            plan.add(f"U{stem}", _without_markers(rev.down.text, untranslated))
            if not rev.down.transactional:
                plan.add(f"U{stem}.conf", "executeInTransaction=false\n")
    plan.notes += _irreversible_note(revset, "Flyway", "refuses to undo them")
    if any(r.irreversible is None for r in revset.revisions):
        plan.notes.append("Flyway runs undo migrations (U files) only in its Teams and Enterprise editions.")
    placeholders = [r for r in revset.revisions if "${" in r.up.text or "${" in r.down.text]
    if placeholders:
        plan.notes.append(
            "these contain '${', which Flyway replaces as a placeholder by default: run Flyway with "
            f"-placeholderReplacement=false ({_ids(placeholders)})."
        )
    return plan


_WRITERS: dict[str, Callable[[RevisionSet], _Plan]] = {
    "golang-migrate": _golang_migrate,
    "dbmate": _dbmate,
    "yoyo": _yoyo,
    "flyway": _flyway,
}


# ------------------------------------------------------------------ the directory


def _is_layout_file(name: str) -> bool:
    """Files an export writes (and --force replaces): .sql files and Flyway's .sql.conf."""
    return name.endswith((".sql", ".sql.conf"))


def _prepare(out: Path, source: Path, force: bool) -> list[Path]:
    """Check that `out` may be written; the files --force will replace."""
    if out.resolve() == source.resolve():
        raise ConfigError(f"export: {out} is the migrations directory itself; write the export somewhere else.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"export: {out} exists and is not a directory.")
    present = sorted(p for p in out.iterdir()) if out.is_dir() else []
    if not present:
        return []
    if not force:
        raise ConfigError(
            f"export: {out} is not empty ({len(present)} entr{'y' if len(present) == 1 else 'ies'}, e.g. "
            f"{present[0].name}); export writes into an empty or new directory. With --force it replaces the .sql "
            "and .sql.conf files there and leaves every other file alone."
        )
    return [p for p in present if p.is_file() and _is_layout_file(p.name)]


def _source(migrations_dir: str | os.PathLike[str] | None, from_layout: str | None) -> RevisionSet:
    """The revisions as z4j-migrate runs them: each side's transaction mode decided (a foreign
    layout's statements decide it; a BEGIN ... COMMIT around a whole file is blanked out), checked."""
    from .config import resolve_layout, resolve_migrations_dir
    from .sqlcheck import settle

    revset = discover(resolve_migrations_dir(migrations_dir), resolve_layout(from_layout, source="--from-layout"))
    if not revset.revisions:
        raise ConfigError(f"export: {revset.directory} holds no revisions.")
    return replace(revset, revisions=tuple(settle(r) for r in revset.revisions))


def export(
    layout: str,
    out_dir: str | os.PathLike[str],
    *,
    migrations_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
    from_layout: str | None = None,
) -> ExportResult:
    """Write the revisions of `migrations_dir` (default: Z4J_MIGRATIONS_DIR, else the bundled sql/)
    into `out_dir` in `layout` (one of EXPORT_LAYOUTS).

    `out_dir` must be empty or new; `force=True` replaces the `.sql` and `.sql.conf` files already
    there (a stale file from an earlier export would otherwise run as a migration) and leaves the
    others. `from_layout`: the layout `migrations_dir` is written in (default: Z4J_LAYOUT, else the
    directory's z4j-migrate.toml, else ours), so one tool's directory can be written in another's.
    Raises ConfigError for an unknown layout or a directory it may not write, and RevisionFileError
    for a revision the layout cannot carry unchanged; nothing is written then.
    """
    writer = _WRITERS.get(layout)
    if writer is None:
        raise ConfigError(f"export: unknown layout {layout!r}; choose one of {', '.join(EXPORT_LAYOUTS)}.")
    revset = _source(migrations_dir, from_layout)
    plan = writer(revset)
    out = Path(out_dir)
    stale = _prepare(out, revset.directory, force)
    out.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.unlink()
    written = []
    for name, text in plan.files.items():
        path = out / name
        path.write_bytes(text.encode("utf-8"))  # bytes: no newline translation on any platform
        written.append(path)
    return ExportResult(layout, out, tuple(written), len(revset.revisions), tuple(plan.notes))
