"""Other tools' migration directories, read as published: golang-migrate, dbmate, yoyo, Flyway.

Each layout is one reader that turns the tool's files into the same `Revision` objects as our own
`revisions.discover`, so planning, running and recording are shared. A reader follows its tool's
rules (names, pairing, order, the tool's own transaction markers) and asks nothing of the z4j
format: the message comes from the title, and a file without a transaction marker is marked
`decided_by_sql` (its statements decide, read by sqlcheck just before it runs and in `check`).
Like discovery itself this is cheap: no SQL parser, no yoyo (docs/revision-format.md, "Layouts").

Problems: a reader hands each file's (or version's) problem to `_Problems.report`. Without a list
(upgrade, start-up) that raises the first one, as a deploy needs; with one (`check`) it is
appended, the revision it belongs to is left out and reading goes on, so one report lists them all.
Readers catch with try/except, not a context manager: free when nothing is wrong (the start-up
reads every file through here).

Order: `Revision.version` is the number a revision is ordered by. It is the tool's own integer
version where the tool orders by it (golang-migrate, Flyway, dbmate when file-name order agrees
with it), else the revision's 1-based position in the tool's order (yoyo: dependencies, then
name; dbmate when names and numbers disagree). The planner orders the ids it knows by it.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, RevisionFileError
from .revisions import (
    LAYOUTS,
    Revision,
    RevisionSet,
    SqlFile,
    _list_dir,
    _parse_bool,
    _read,
    _statement_timeout,
    checksum,
    normalise,
    read_config,
)

_MAX_VERSION = 2**63 - 1  # the bookkeeping keeps a revision's number in a BIGINT
# Our own directives a foreign file may carry in its leading comments; never required there.
_OURS = re.compile(r"^--\s*(?P<key>transactional|statement-timeout)\s*:(?P<value>.*)$", re.IGNORECASE)
_IRREVERSIBLE = re.compile(r"^--\s*irreversible\s*:(?P<value>.*)$", re.IGNORECASE)
_MORPH_NONTRANSACTIONAL = re.compile(r"^--\s*morph:nontransactional\s*$")  # golang-migrate files run by morph


class _Dir:
    """The directory being read: file names, and each file's text (UTF-8, BOM dropped, LF)."""

    def __init__(self, directory: Path, dir_fd: int) -> None:
        self.directory, self.dir_fd = directory, dir_fd
        base = str(directory)
        self.prefix = "" if base == "." else base if base.endswith("/") else base + "/"

    def path(self, name: str) -> str:
        return self.prefix + name

    def text(self, name: str) -> str:
        path = self.path(name)
        return normalise(_read(name, self.dir_fd, path), path)


class _Problems:
    """Where a reader puts what is wrong. Without a list the first problem raises (upgrade, start-up:
    the same error as before); with one (check) each is appended and the reader goes on.
    `count` grows with each one appended: a reader compares it to tell whether a version failed."""

    __slots__ = ("count", "found")

    def __init__(self, found: list[RevisionFileError] | None) -> None:
        self.found, self.count = found, 0

    def report(self, error: RevisionFileError) -> None:
        if self.found is None:
            raise error
        self.found.append(error)
        self.count += 1


def discover_layout(directory: Path, layout: str, *, problems: list[RevisionFileError] | None = None) -> RevisionSet:
    """The revisions of a directory written in another tool's layout (see LAYOUTS). The first wrong
    file raises; with `problems` (check) every problem is appended there, the revisions they concern
    are left out and the others are returned. A missing or unreadable directory raises either way."""
    reader = _READERS.get(layout)
    if reader is None:
        raise ConfigError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}.")
    names = [n for n in _list_dir(directory) if not n.startswith(".")]
    collect = _Problems(problems)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        revisions = reader(_Dir(directory, dir_fd), names, collect)
    finally:
        os.close(dir_fd)
    extensions: tuple[str, ...] = ()
    try:
        extensions = read_config(directory)
    except RevisionFileError as exc:
        collect.report(exc)
    return RevisionSet(directory, tuple(revisions), extensions, layout=layout)


# ------------------------------------------------------------------------------- shared pieces


def _has_sql(text: str) -> bool:
    """Anything but blank lines and `--` comments (a block comment counts: the server reads it)."""
    return any(line.strip() and not line.lstrip().startswith("--") for line in text.split("\n"))


def _leading_comments(text: str) -> list[tuple[int, str]]:
    """(line number, stripped line) of the `--` lines before the first SQL line (blank lines allowed)."""
    found = []
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            break
        if stripped:
            found.append((number, stripped))
    return found


def sql_file(path: str, text: str, marker: bool | None) -> SqlFile:
    """One side of a foreign revision. `marker`: the tool's own transaction marker said so (None: it
    said nothing). Our `-- transactional:` and `-- statement-timeout:` are honoured when present."""
    ours = [
        (m["key"].lower(), m["value"].strip(), n) for n, line in _leading_comments(text) if (m := _OURS.match(line))
    ]
    for key, value, line in ours:
        if key == "transactional" and marker is None:
            marker = _parse_bool(value, key, path, line)
    has_sql = _has_sql(text)
    if not has_sql:  # a no-op: nothing to split, one transaction records it
        return SqlFile(path, text, checksum(text), True, False, _statement_timeout(ours, path))
    transactional = True if marker is None else marker
    return SqlFile(path, text, checksum(text), transactional, True, _statement_timeout(ours, path), marker is None)


def _missing_down(path: str, what: str) -> SqlFile:
    """The down of a revision the tool gives none: our irreversible directive, so the copy the database
    keeps (for a release that no longer has the file) refuses too, instead of doing nothing."""
    text = f"-- irreversible: {what}\n"
    return SqlFile(path, text, checksum(text), True, False)


def _message(title: str, rev_id: str) -> str:
    """`add_users_table` -> "add users table"."""
    words = " ".join(title.replace("_", " ").replace("-", " ").split())
    return words or rev_id


def _revision(number: int, rev_id: str, title: str, up: SqlFile, down: SqlFile | None, missing: str) -> Revision:
    """`down` None: the tool has no down for it, and `missing` says what a person would look for."""
    if down is None:
        irreversible = f"it has no down migration ({missing})."
        return Revision(number, rev_id, _message(title, rev_id), up, _missing_down(missing, irreversible), irreversible)
    return Revision(number, rev_id, _message(title, rev_id), up, down, _declared_irreversible(down))


def _declared_irreversible(down: SqlFile) -> str | None:
    """Our `-- irreversible: <message>` in a down with no SQL (what `export` writes where the tool needs a
    down section, e.g. dbmate's): irreversible, not a no-op."""
    if down.has_sql:
        return None
    for _line, text in _leading_comments(down.text):
        match = _IRREVERSIBLE.match(text)
        if match and match["value"].strip():
            return match["value"].strip()
    return None


def _version(digits: str, path: str) -> int:
    version = int(digits)
    if version > _MAX_VERSION:
        raise RevisionFileError(
            f"version {digits} is larger than {_MAX_VERSION}, the largest this tool keeps.", path=path
        )
    return version


def _by_position(revisions: list[Revision]) -> list[Revision]:
    """Number revisions 1, 2, 3 ... in the order given (the tool's order is not that of any number)."""
    return [
        Revision(i, r.id, r.message, r.up, r.down, r.irreversible, r.preflights, r.destructive, r.accepted_differences)
        for i, r in enumerate(revisions, start=1)
    ]


def _no_rule(directory: _Dir, name: str, layout: str, rule: str) -> RevisionFileError:
    return RevisionFileError(
        f"matches no rule of the {layout} layout ({rule}); rename it, or move it out of the directory.",
        path=directory.path(name),
    )


def _duplicate(directory: _Dir, version: int, first: str, second: str) -> RevisionFileError:
    return RevisionFileError(
        f"version {version} is used twice: {first} and {second}; the tool would apply only one of them.",
        path=directory.path(second),
    )


# ------------------------------------------------------------------------------- golang-migrate

_GOLANG = re.compile(r"^([0-9]+)_(.*)\.(up|down)\.sql$")  # its source.Regex, for .sql files


def _golang_migrate(directory: _Dir, names: list[str], problems: _Problems) -> list[Revision]:
    """`{version}_{title}.up.sql` and `.down.sql`, paired by version (titles may differ), in version
    order. No down: irreversible; an empty or comment-only down: a no-op down."""
    sides: dict[str, dict[int, tuple[str, str]]] = {"up": {}, "down": {}}
    for name in names:
        if name.endswith(".sql"):
            try:
                _golang_name(directory, name, sides)
            except RevisionFileError as exc:
                problems.report(exc)
    for version, (name, _) in sides["down"].items():
        if version not in sides["up"]:
            problems.report(RevisionFileError(f"has no up file of version {version}.", path=directory.path(name)))
    revisions = []
    for version in sorted(sides["up"]):
        name, rev_id = sides["up"][version]
        down_name = sides["down"][version][0] if version in sides["down"] else None
        failed = problems.count  # each side on its own: a bad up and a bad down are two problems
        up = _golang_side(directory, name, problems)
        down = None if down_name is None else _golang_side(directory, down_name, problems)
        if problems.count == failed and up is not None:
            title = rev_id.split("_", 1)[1]
            revisions.append(_revision(version, rev_id, title, up, down, directory.path(f"{rev_id}.down.sql")))
    return revisions


def _golang_name(directory: _Dir, name: str, sides: dict[str, dict[int, tuple[str, str]]]) -> None:
    """File `name` under its side and version (the first of a version keeps it)."""
    match = _GOLANG.match(name)
    if match is None:
        raise _no_rule(directory, name, "golang-migrate", "{version}_{title}.up.sql or .down.sql")
    version = _version(match[1], directory.path(name))
    found = sides[match[3]]
    if version in found:
        raise _duplicate(directory, version, found[version][0], name)
    found[version] = (name, f"{match[1]}_{match[2]}")


def _golang_side(directory: _Dir, name: str, problems: _Problems) -> SqlFile | None:
    """One file of a version; None (check): it has a problem, reported."""
    try:
        text = directory.text(name)
        return sql_file(directory.path(name), text, _morph(text))
    except RevisionFileError as exc:
        problems.report(exc)
        return None


def _morph(text: str) -> bool | None:
    """Mattermost's morph runs golang-migrate files; its `-- morph:nontransactional` means no transaction."""
    return False if any(_MORPH_NONTRANSACTIONAL.match(line) for _, line in _leading_comments(text)) else None


# ------------------------------------------------------------------------------- dbmate

_DBMATE_NAME = re.compile(r"^(\d+)(.*)\.sql$")  # its migrationFileRegexp
_DBMATE_UP = re.compile(r"^--\s*migrate:up(?:[ \t]*$|[ \t]+(?P<options>.*)$)", re.MULTILINE)
_DBMATE_DOWN = re.compile(r"^--\s*migrate:down(?:[ \t]*$|[ \t]+(?P<options>.*)$)", re.MULTILINE)


def _dbmate(directory: _Dir, names: list[str], problems: _Problems) -> list[Revision]:
    """One `{version}_{name}.sql` file each, `-- migrate:up` then `-- migrate:down`, applied in
    file-name order (as dbmate does). An empty down section is a no-op down."""
    revisions: list[Revision] = []
    versions: dict[int, str] = {}
    for name in names:  # _list_dir sorts by name
        if name.endswith(".sql"):
            try:
                revisions.append(_dbmate_file(directory, name, versions))
            except RevisionFileError as exc:
                problems.report(exc)
    numbers = [r.version for r in revisions]
    return revisions if numbers == sorted(numbers) else _by_position(revisions)


def _dbmate_file(directory: _Dir, name: str, versions: dict[int, str]) -> Revision:
    """One file's revision; its version is taken (in `versions`) even when its sections are wrong."""
    match = _DBMATE_NAME.match(name)
    if match is None:
        raise _no_rule(directory, name, "dbmate", "{version}_{name}.sql, the version in digits")
    version = _version(match[1], directory.path(name))
    if version in versions:
        raise _duplicate(directory, version, versions[version], name)
    versions[version] = name
    up, down = _dbmate_sections(directory.path(name), directory.text(name))
    return _revision(version, name[: -len(".sql")], match[2], up, down, "")


def _dbmate_sections(path: str, text: str) -> tuple[SqlFile, SqlFile]:
    ups, downs = list(_DBMATE_UP.finditer(text)), list(_DBMATE_DOWN.finditer(text))
    if not ups:
        raise RevisionFileError("has no '-- migrate:up' line; dbmate requires one.", path=path)
    if not downs:
        raise RevisionFileError(
            "has no '-- migrate:down' line; dbmate requires one (an empty section is a down that does nothing).",
            path=path,
        )
    if len(ups) > 1 or len(downs) > 1:
        extra = (ups if len(ups) > 1 else downs)[1]
        raise RevisionFileError(
            "a second '-- migrate:up' or '-- migrate:down' section is not supported; split the file in two.",
            path=path,
            line=text.count("\n", 0, extra.start()) + 1,
        )
    up_at, down_at = ups[0].start(), downs[0].start()
    if down_at < up_at:
        raise RevisionFileError("'-- migrate:down' comes before '-- migrate:up'; dbmate requires up first.", path=path)
    if _has_sql(text[:up_at]):
        raise RevisionFileError("has statements before '-- migrate:up'; dbmate does not run them.", path=path)
    # Each side keeps its place in the file, so a line number the server reports is the file's.
    up_text = text[:down_at]
    down_text = "\n" * text.count("\n", 0, down_at) + text[down_at:]
    up = sql_file(path, up_text, _dbmate_transaction(ups[0]["options"]))
    return up, sql_file(path, down_text, _dbmate_transaction(downs[0]["options"]))


def _dbmate_transaction(options: str | None) -> bool | None:
    """`transaction:false` on the marker line: no transaction (dbmate: anything else but "false" is one)."""
    pairs = dict(p.split(":", 1) for p in (options or "").split() if p.count(":") == 1)
    return None if "transaction" not in pairs else pairs["transaction"] != "false"


# ------------------------------------------------------------------------------- yoyo

_YOYO_TEMP = "_tmp_yoyonew"  # `yoyo new` writes its draft under this prefix; yoyo skips it
_YOYO_DIRECTIVE = re.compile(r"^--\s*(?P<key>transactional|depends)\s*:(?P<value>.*)$")
_YOYO_DEFAULT_NAME = re.compile(r"^\d{8}_\d+_[A-Za-z0-9]{5}-?")  # `yoyo new`: 20240101_01_AbCdE-create-users


@dataclass
class _YoyoFile:
    name: str
    text: str
    depends: list[str]
    transactional: bool | None


def _yoyo(directory: _Dir, names: list[str], problems: _Problems) -> list[Revision]:
    """`X.sql` with an optional `X.rollback.sql`; the id is yoyo's migration id (the stem). Ordered
    as yoyo orders them: by `-- depends:`, then by name. No rollback file: irreversible."""
    migrations: dict[str, _YoyoFile] = {}
    unread: set[str] = set()  # ids whose file has a problem (check): naming one is not a second problem
    for name in names:
        if name.startswith(_YOYO_TEMP) or not name.endswith((".sql", ".py")) or name.endswith(".rollback.sql"):
            continue
        try:
            migrations[name.rsplit(".", 1)[0]] = _yoyo_file(directory, name)
        except RevisionFileError as exc:
            problems.report(exc)
            unread.add(name.rsplit(".", 1)[0])
    for name in names:
        if name.endswith(".rollback.sql"):
            stem = name[: -len(".rollback.sql")]
            if stem not in migrations and stem not in unread:
                problems.report(
                    RevisionFileError(f"has no migration {stem}.sql to roll back.", path=directory.path(name))
                )
    revisions = []
    for rev_id in _yoyo_order(directory, migrations, unread, problems):
        found = migrations[rev_id]
        rollback = f"{rev_id}.rollback.sql"
        failed = problems.count  # each side on its own: a bad up and a bad rollback are two problems
        up = _yoyo_side(directory, found.name, found.text, found.transactional, problems)
        down = None if rollback not in names else _yoyo_side(directory, rollback, None, found.transactional, problems)
        if problems.count == failed and up is not None:
            title = _YOYO_DEFAULT_NAME.sub("", rev_id)
            revisions.append(_revision(0, rev_id, title, up, down, directory.path(rollback)))
    return _by_position(revisions)


def _yoyo_file(directory: _Dir, name: str) -> _YoyoFile:
    path = directory.path(name)
    if name.endswith(".py"):
        raise RevisionFileError(
            "is a yoyo Python migration; only SQL migrations are read. Rewrite it in SQL.", path=path
        )
    if name.startswith("post-apply"):
        raise RevisionFileError("is a yoyo post-apply hook, which is not supported; run it separately.", path=path)
    text = directory.text(name)
    return _YoyoFile(name, text, *_yoyo_directives(path, text))


def _yoyo_side(
    directory: _Dir, name: str, text: str | None, transactional: bool | None, problems: _Problems
) -> SqlFile | None:
    """A migration (`text` read already) or its rollback; None (check): it has a problem, reported."""
    try:
        return sql_file(directory.path(name), directory.text(name) if text is None else text, transactional)
    except RevisionFileError as exc:
        problems.report(exc)
        return None


def _yoyo_directives(path: str, text: str) -> tuple[list[str], bool | None]:
    """yoyo's own header: `-- depends: a b` (repeatable) and `-- transactional: true|false`."""
    depends, transactional = [], None
    for number, line in _leading_comments(text):
        match = _YOYO_DIRECTIVE.match(line)
        if match is None:
            continue
        value = match["value"].strip()
        if match["key"] == "depends":
            depends += value.split()
        elif value.lower() in ("true", "false"):
            transactional = value.lower() == "true"
        else:
            raise RevisionFileError(
                f"'-- transactional: {value}' must be true or false (as yoyo requires).", path=path, line=number
            )
    return depends, transactional


def _yoyo_order(directory: _Dir, migrations: dict[str, _YoyoFile], unread: set[str], problems: _Problems) -> list[str]:
    """yoyo's topological order: whenever several are free to go, the first by name goes first.
    (check) A migration naming a missing one is left out; a dependency on one in `unread` (whose
    file has its own problem) is passed over, so the migrations after it are still read."""
    names = sorted(migrations)
    waiting: dict[str, set[str]] = {}
    for rev_id in names:
        missing = [dep for dep in migrations[rev_id].depends if dep not in migrations and dep not in unread]
        for dep in missing:
            problems.report(
                RevisionFileError(
                    f"'-- depends: {dep}' names no migration in this directory.",
                    path=directory.path(migrations[rev_id].name),
                )
            )
        if not missing:
            waiting[rev_id] = set(migrations[rev_id].depends) - {rev_id}
    if unread or len(waiting) < len(names):  # (check) one unread or left out: reported already, passed over
        waiting = {r: {d for d in deps if d in waiting} for r, deps in waiting.items()}
        names = list(waiting)  # still in name order
    index = {rev_id: i for i, rev_id in enumerate(names)}
    ready = [(index[r], r) for r in names if not waiting[r]]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, rev_id = heapq.heappop(ready)
        order.append(rev_id)
        for other in names:
            if rev_id in waiting[other]:
                waiting[other].discard(rev_id)
                if not waiting[other]:
                    heapq.heappush(ready, (index[other], other))
    stuck = [r for r in names if r not in order]
    if stuck:  # one problem of the set, naming every migration in it
        problems.report(
            RevisionFileError(
                f"circular '-- depends:' among {', '.join(stuck)}.", path=directory.path(migrations[stuck[0]].name)
            )
        )
    return order


# ------------------------------------------------------------------------------- Flyway

_FLYWAY = re.compile(r"^(?P<kind>[VU])(?P<version>\d+(?:[._]\d+)*)__(?P<desc>.*)\.sql$")
_FLYWAY_RULE = "V{version}__{description}.sql, or U{version}__{description}.sql for its undo"
_FLYWAY_NO_TX = re.compile(r"^\s*executeInTransaction\s*=\s*false\s*$", re.MULTILINE | re.IGNORECASE)


def _flyway(directory: _Dir, names: list[str], problems: _Problems) -> list[Revision]:
    """`V{n}__{desc}.sql` with an optional undo `U{n}__{desc}.sql`, in version order; no undo:
    irreversible. A `V1__x.sql.conf` saying `executeInTransaction=false` is its transaction marker.
    Repeatable (`R__`) migrations and dotted versions are refused (docs/revision-format.md)."""
    sides: dict[str, dict[int, str]] = {"V": {}, "U": {}}
    for name in names:
        try:
            _flyway_name(directory, name, sides)
        except RevisionFileError as exc:
            problems.report(exc)
    for version, name in sides["U"].items():
        if version not in sides["V"]:
            problems.report(
                RevisionFileError(
                    f"undoes version {version}, which has no V{version}__ migration.", path=directory.path(name)
                )
            )
    revisions = []
    for version in sorted(sides["V"]):
        name = sides["V"][version]
        match = _FLYWAY.match(name)
        assert match is not None
        undo = sides["U"].get(version)
        failed = problems.count  # each side on its own: a bad migration and a bad undo are two problems
        up = _flyway_side(directory, name, names, problems)
        down = None if undo is None else _flyway_side(directory, undo, names, problems)
        if problems.count == failed and up is not None:
            rev_id = f"{match['version']}_{match['desc']}"
            missing = directory.path(f"U{match['version']}__{match['desc']}.sql")
            revisions.append(_revision(version, rev_id, match["desc"], up, down, missing))
    return revisions


def _flyway_name(directory: _Dir, name: str, sides: dict[str, dict[int, str]]) -> None:
    """File `name` under its kind (V or U) and version (the first of a version keeps it)."""
    if not name.endswith(".sql"):
        _refuse_flyway_subdirectory(directory, name)
        return
    match = _FLYWAY.match(name)
    if match is None:
        if name.startswith("R__"):
            raise RevisionFileError(
                "is a Flyway repeatable migration (R__), which is not supported: make it a versioned "
                "V{n}__ migration, or run it after the upgrade yourself.",
                path=directory.path(name),
            )
        raise _no_rule(directory, name, "flyway", _FLYWAY_RULE)
    if not match["version"].isdigit():
        raise RevisionFileError(
            f"dotted version {match['version']} is not supported: z4j-migrate orders revisions by an "
            "integer version, and renaming the file would change Flyway's history. Read this directory "
            "with Flyway, or keep integer versions (V1__, V2__, ...).",
            path=directory.path(name),
        )
    version = _version(match["version"], directory.path(name))
    found = sides[match["kind"]]
    if version in found:
        raise _duplicate(directory, version, found[version], name)
    found[version] = name


def _flyway_side(directory: _Dir, name: str, names: list[str], problems: _Problems) -> SqlFile | None:
    """A migration or its undo, with its config file; None (check): it has a problem, reported."""
    try:
        return sql_file(directory.path(name), directory.text(name), _flyway_conf(directory, name, names))
    except RevisionFileError as exc:
        problems.report(exc)
        return None


def _flyway_conf(directory: _Dir, name: str, names: list[str]) -> bool | None:
    """Flyway's per-script config file (`V1__x.sql.conf`): `executeInTransaction=false` means no transaction."""
    conf = f"{name}.conf"
    if conf not in names:
        return None
    return False if _FLYWAY_NO_TX.search(directory.text(conf)) else None


def _refuse_flyway_subdirectory(directory: _Dir, name: str) -> None:
    """Flyway also reads sub-directories; we do not, so migrations in one would be skipped unseen."""
    sub = directory.directory / name
    if sub.is_dir() and any(n.endswith(".sql") for n in os.listdir(sub)):
        raise RevisionFileError(
            "is a sub-directory with .sql files; Flyway reads those too, z4j-migrate does not. Move them up.",
            path=directory.path(name),
        )


_READERS: dict[str, Callable[[_Dir, list[str], _Problems], list[Revision]]] = {
    "golang-migrate": _golang_migrate,
    "dbmate": _dbmate,
    "yoyo": _yoyo,
    "flyway": _flyway,
}
