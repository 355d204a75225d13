"""Discover revision pairs on disk and parse their header directives.

This is the first step of the data path and the only one that reads revision
files. It is cheap on purpose (no SQL parser): it runs on every application
start. The SQL-level checks that need a real parser live in `sqlcheck` and run
on the revisions a command is about to execute, and on all of them in `check`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, RevisionFileError

CHECKSUM_ALGORITHM = "sha256"
CONFIG_FILE = "z4j-migrate.toml"

REVISION_FILE_NAME = re.compile(r"^(?P<version>\d{4,})_(?P<slug>[a-z0-9]+(?:_[a-z0-9]+)*)\.(?P<kind>up|down)\.sql$")
_DIRECTIVE = re.compile(r"^--\s*(?P<key>[A-Za-z][A-Za-z_-]*)\s*:(?P<value>.*)$")
_UP_KEYS = frozenset({"message", "transactional", "destructive", "statement-timeout"})
_DOWN_KEYS = frozenset({"transactional", "irreversible", "preflight", "statement-timeout", "verify-accept"})
_DURATION = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|min|h)?$")
_UNIT_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, None: 1000}
_ALL_KEYS = _UP_KEYS | _DOWN_KEYS
_LATE_DIRECTIVE = re.compile(
    r"^[ \t]*--[ \t]*(?P<key>" + "|".join(sorted(_ALL_KEYS)) + r")[ \t]*:", re.MULTILINE | re.IGNORECASE
)
_EXTENSION = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Preflight:
    """A query that must return true before a downgrade may start."""

    sql: str
    line: int


@dataclass(frozen=True)
class SqlFile:
    """One side of a revision, as text ready to send (BOM stripped, LF line endings)."""

    path: str
    text: str = field(repr=False)
    checksum: str
    transactional: bool
    has_sql: bool
    statement_timeout_ms: int | None = None  # '-- statement-timeout:'; None: the run's setting
    # No marker said whether the file runs in a transaction (foreign layouts): `transactional` is a
    # cheap guess until sqlcheck reads the statements, just before the revision runs or in `check`.
    decided_by_sql: bool = False
    # sqlcheck.settle has read the statements: the mode is decided and a BEGIN ... COMMIT wrapper is
    # blanked out of `text` (newlines kept); `checksum` stays that of the file as published.
    settled: bool = False


@dataclass(frozen=True)
class Revision:
    version: int
    id: str  # e.g. "0001_baseline": yoyo's migration_id
    message: str
    up: SqlFile
    down: SqlFile
    irreversible: str | None = None  # operator message when the down cannot undo the up
    preflights: tuple[Preflight, ...] = ()
    destructive: str | None = None  # the up's '-- destructive: <why>': it drops or rewrites data on purpose
    # The down's '-- verify-accept: <difference>' lines: differences verify reports as accepted, not as failures.
    accepted_differences: tuple[str, ...] = ()


@dataclass(frozen=True)
class RevisionSet:
    """What a migrations directory holds: the ordered revisions and their settings."""

    directory: Path
    revisions: tuple[Revision, ...]
    extensions: tuple[str, ...] = ()
    layout: str = "z4j"  # whose file layout the directory is written in (LAYOUTS; layouts.py)

    def by_id(self) -> dict[str, Revision]:
        return {r.id: r for r in self.revisions}

    def find(self, ref: str) -> Revision | None:
        """The revision `ref` names: its number with any zero padding (`7`, `0007`, `000007`) or its
        id (`0007_tasks_fingerprint`); None when no revision here has it."""
        text = ref.strip()
        if text.isascii() and text.isdigit():
            version = int(text)
            return next((r for r in self.revisions if r.version == version), None)
        return next((r for r in self.revisions if r.id == text), None)


def normalise(raw: bytes, path: str) -> str:
    """Decode strictly as UTF-8, drop a BOM, turn CRLF/CR into LF."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RevisionFileError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the file as UTF-8.",
            path=path,
            line=line,
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    nul = text.find("\x00")
    if nul >= 0:  # libpq and the parser stop at a NUL: the SQL after it would be silently ignored
        raise RevisionFileError(
            "contains a NUL character (0x00); nothing after it would reach the server. Remove it.",
            path=path,
            line=text.count("\n", 0, nul) + 1,
        )
    return text


def checksum(text: str) -> str:
    return f"{CHECKSUM_ALGORITHM}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def _parse_bool(value: str, key: str, path: str, line: int) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise RevisionFileError(f"'-- {key}: {value.strip()}' must be true or false.", path=path, line=line)


def parse_header(text: str, path: str, allowed: frozenset[str]) -> tuple[list[tuple[str, str, int]], bool]:
    """Return the directives of a file's header and whether SQL follows.

    The header is the block of `--` lines at the very top. Only lines naming a known directive are
    directives; any other `-- word: ...` line is a plain comment (a URL, a NOTE:, another tool's
    marker), unless its word is a near miss of a directive name (`-- transactonal: false`), which
    is an error rather than a silently ignored setting. A known directive below the header (past a
    blank line, or after the first statement) is an error too, which is the yoyo behaviour we
    refuse to copy.
    """
    directives: list[tuple[str, str, int]] = []
    in_header = True
    offset = 0
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not stripped.startswith("--"):
            if stripped == "":
                in_header = False
                offset += len(line) + 1
                continue
            _refuse_late_directives(text, offset, path)  # a statement or a block comment: SQL from here
            return directives, True
        offset += len(line) + 1
        match = _DIRECTIVE.match(stripped)
        if match is None:
            continue
        key = _directive_key(match["key"], path, number)
        if key is None:
            continue
        if not in_header:
            raise _below_header(key, path, number)
        if key not in allowed:
            where = "an .up.sql" if allowed is _UP_KEYS else "a .down.sql"
            raise RevisionFileError(
                f"directive '-- {match['key']}:' is not allowed in {where} header (allowed there: "
                f"{', '.join(sorted(allowed))}).",
                path=path,
                line=number,
            )
        directives.append((key, match["value"].strip(), number))
    return directives, False


def _directive_key(word: str, path: str, line: int) -> str | None:
    """The directive `-- word:` names; None when it is an ordinary comment. A near miss of a
    directive name raises, suggesting the right one (difflib: only on lines that are no directive)."""
    key = word.lower()
    if key in _ALL_KEYS:
        return key
    import difflib

    spelled = key.replace("_", "-")
    close = [spelled] if spelled in _ALL_KEYS else difflib.get_close_matches(spelled, _ALL_KEYS, n=1, cutoff=0.8)
    if not close:
        return None
    raise RevisionFileError(
        f"'-- {word}:' looks like a misspelt directive; did you mean '-- {close[0]}:'? If it is a plain "
        f"comment, reword it so that it does not start with '{word}:'.",
        path=path,
        line=line,
    )


def _below_header(key: str, path: str, line: int) -> RevisionFileError:
    return RevisionFileError(
        f"directive '-- {key}:' is below the header and would be ignored; "
        "move it into the block of '--' lines at the top of the file.",
        path=path,
        line=line,
    )


def _refuse_late_directives(text: str, start: int, path: str) -> None:
    """A known directive after the first statement would be ignored: refuse it (one regex scan)."""
    late = _LATE_DIRECTIVE.search(text, start)
    if late is not None:
        raise _below_header(late["key"].lower(), path, text.count("\n", 0, late.start()) + 1)


def _statement_timeout(directives: list[tuple[str, str, int]], path: str) -> int | None:
    """'-- statement-timeout: 30s' (ms, s, min, h; a bare number is seconds; 0 or none: no limit)."""
    found = _single(directives, "statement-timeout", path)
    if found is None:
        return None
    value, line = found
    if value.lower() in ("none", "off"):
        return 0
    match = _DURATION.match(value.lower())
    if match is None:
        raise RevisionFileError(
            f"'-- statement-timeout: {value}' is not a duration; write e.g. 30s, 500ms, 10min or 0 (no limit).",
            path=path,
            line=line,
        )
    return int(float(match["number"]) * _UNIT_MS[match["unit"]])


def _single(directives: list[tuple[str, str, int]], key: str, path: str) -> tuple[str, int] | None:
    found = [(v, n) for k, v, n in directives if k == key]
    if len(found) > 1:
        raise RevisionFileError(f"'-- {key}:' is given more than once.", path=path, line=found[1][1])
    return found[0] if found else None


def parse_pair(
    version: int,
    rev_id: str,
    up_path: str,
    up_raw: bytes,
    down_path: str,
    down_raw: bytes,
    *,
    problems: list[RevisionFileError] | None = None,
) -> Revision | None:
    """Build one Revision from the bytes of its two files; pure, testable without disk.

    With `problems` (check), each file's first error is appended there instead of raised, both
    files are read, and None is returned when either is wrong.
    """
    up: tuple[SqlFile, str, str | None] | None = None
    down: tuple[SqlFile, str | None, tuple[Preflight, ...], tuple[str, ...]] | None = None
    try:
        up = _parse_up(up_path, up_raw)
    except RevisionFileError as exc:
        if problems is None:
            raise
        problems.append(exc)
    try:
        down = _parse_down(down_path, down_raw, up[0].transactional if up else True)
    except RevisionFileError as exc:
        if problems is None:
            raise
        problems.append(exc)
    if up is None or down is None:
        return None
    (up_file, message, destructive), (down_file, irreversible, preflights, accepted) = up, down
    return Revision(
        version=version,
        id=rev_id,
        message=message,
        up=up_file,
        down=down_file,
        irreversible=irreversible,
        preflights=preflights,
        destructive=destructive,
        accepted_differences=accepted,
    )


def _parse_up(path: str, raw: bytes) -> tuple[SqlFile, str, str | None]:
    """An up file: its SqlFile, message and destructive reason."""
    text = normalise(raw, path)
    directives, has_sql = parse_header(text, path, _UP_KEYS)
    message, destructive = _up_directives(directives, path, has_sql)
    tx = _single(directives, "transactional", path)
    transactional = _parse_bool(tx[0], "transactional", path, tx[1]) if tx else True
    timeout = _statement_timeout(directives, path)
    return SqlFile(path, text, checksum(text), transactional, True, timeout), message, destructive


def _parse_down(
    path: str, raw: bytes, up_transactional: bool
) -> tuple[SqlFile, str | None, tuple[Preflight, ...], tuple[str, ...]]:
    """A down file: its SqlFile (in the up's mode unless it says), irreversible message, preflights,
    accepted differences."""
    text = normalise(raw, path)
    directives, has_sql = parse_header(text, path, _DOWN_KEYS)
    tx = _single(directives, "transactional", path)
    transactional = _parse_bool(tx[0], "transactional", path, tx[1]) if tx else up_transactional
    irreversible, preflights = _down_directives(directives, path, has_sql)
    accepted = _accepted_differences(directives, path)
    timeout = _statement_timeout(directives, path)
    return SqlFile(path, text, checksum(text), transactional, has_sql, timeout), irreversible, preflights, accepted


def _accepted_differences(directives: list[tuple[str, str, int]], path: str) -> tuple[str, ...]:
    """'-- verify-accept: <difference as verify words it>' (repeatable): a difference the down knowingly leaves."""
    accepted = [(v, n) for k, v, n in directives if k == "verify-accept"]
    for value, line in accepted:
        if not value:
            raise RevisionFileError(
                "'-- verify-accept:' needs the difference it accepts, as verify reports it "
                "(e.g. '-- verify-accept: column public.users.nick position').",
                path=path,
                line=line,
            )
    return tuple(v for v, _ in accepted)


def _up_directives(directives: list[tuple[str, str, int]], path: str, has_sql: bool) -> tuple[str, str | None]:
    """The up's message (required) and destructive reason (optional, but not empty)."""
    message = _single(directives, "message", path)
    if message is None or not message[0]:
        raise RevisionFileError(
            "missing '-- message: <what this revision does>' in the header.",
            path=path,
            line=message[1] if message else 1,
        )
    if not has_sql:
        raise RevisionFileError("has no SQL statements.", path=path)
    destructive = _single(directives, "destructive", path)
    if destructive is not None and not destructive[0]:
        raise RevisionFileError(
            "'-- destructive:' needs a reason (why losing that data is acceptable).", path=path, line=destructive[1]
        )
    return message[0], destructive[0] if destructive else None


def _down_directives(
    directives: list[tuple[str, str, int]], path: str, has_sql: bool
) -> tuple[str | None, tuple[Preflight, ...]]:
    """The down's irreversible message (then it has no statements) and its preflights."""
    irreversible = _single(directives, "irreversible", path)
    preflights = tuple(Preflight(v, n) for k, v, n in directives if k == "preflight")
    for pf in preflights:
        if not pf.sql:
            raise RevisionFileError("'-- preflight:' needs a query returning one boolean.", path=path, line=pf.line)
    if irreversible is None:
        if not has_sql:
            raise RevisionFileError(
                "has no SQL statements; write the undo, or declare '-- irreversible: <message>'.", path=path
            )
        return None, preflights
    if not irreversible[0]:
        raise RevisionFileError(
            "'-- irreversible:' needs a message for the operator (why, and what to do instead).",
            path=path,
            line=irreversible[1],
        )
    if has_sql:
        raise RevisionFileError(
            "an irreversible down must not contain statements; remove them or drop the directive.", path=path
        )
    return irreversible[0], preflights


def parse_stored_down(rev_id: str, text: str, transactional: bool) -> Revision:
    """Rebuild a down-only Revision from SQL stored in the database (code is behind)."""
    version = int(rev_id.split("_", 1)[0])
    path = f"<database: {rev_id}.down.sql>"
    directives, has_sql = parse_header(text, path, _DOWN_KEYS)
    irreversible = _single(directives, "irreversible", path)
    down = SqlFile(path, text, checksum(text), transactional, has_sql, _statement_timeout(directives, path))
    return Revision(
        version=version,
        id=rev_id,
        message="(not in this code; from the database)",
        up=SqlFile(f"<database: {rev_id}.up.sql>", "", "", True, False),
        down=down,
        irreversible=irreversible[0] if irreversible else None,
        preflights=tuple(Preflight(v, n) for k, v, n in directives if k == "preflight"),
    )


def _config_data(directory: Path) -> dict[str, object]:
    """The directory's z4j-migrate.toml as a table ({} without one)."""
    path = directory / CONFIG_FILE
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except PermissionError:
        if not os.access(directory, os.R_OK | os.X_OK):  # the directory itself: _list_dir says so in its words
            _list_dir(directory)
        raise RevisionFileError("cannot be read (permission denied).", path=str(path)) from None
    import tomllib  # only when there is a config file: it costs import time on every start

    try:
        data = tomllib.loads(normalise(raw, str(path)))  # BOM and CRLF as for revisions
    except tomllib.TOMLDecodeError as exc:
        raise RevisionFileError(f"cannot be parsed: {exc}.", path=str(path)) from None
    unknown = set(data) - {"extensions", "layout"}
    if unknown:
        raise RevisionFileError(
            f"unknown setting(s) {sorted(unknown)}; only 'extensions' and 'layout' are known.", path=str(path)
        )
    return data


def config_layout(directory: Path) -> str:
    """`layout = "..."` in the directory's z4j-migrate.toml; "z4j" without one."""
    layout = _config_data(directory).get("layout", "z4j")
    if layout not in LAYOUTS:
        raise RevisionFileError(
            f"layout = {layout!r} is not a layout; choose one of {', '.join(LAYOUTS)}.",
            path=str(directory / CONFIG_FILE),
        )
    return str(layout)


def read_config(directory: Path) -> tuple[str, ...]:
    path = directory / CONFIG_FILE
    data = _config_data(directory)
    extensions = data.get("extensions", [])
    if not isinstance(extensions, list) or not all(isinstance(e, str) for e in extensions):
        raise RevisionFileError("'extensions' must be a list of extension names.", path=str(path))
    for name in extensions:  # always quoted when used; refused here so a hostile value fails loudly
        if not _EXTENSION.match(name):
            raise RevisionFileError(
                f"extensions: {name!r} is not an extension name (letters, digits, '_' and '-', such as "
                "uuid-ossp; at most 63 characters, not starting with a digit or '-').",
                path=str(path),
            )
    return tuple(extensions)


def _list_dir(directory: Path) -> Iterable[str]:
    try:
        return sorted(os.listdir(directory))
    except FileNotFoundError:
        raise ConfigError(
            f"migrations directory {directory} does not exist (--migrations-dir / Z4J_MIGRATIONS_DIR)."
        ) from None
    except NotADirectoryError:
        raise ConfigError(
            f"migrations directory {directory} is not a directory (--migrations-dir / Z4J_MIGRATIONS_DIR)."
        ) from None
    except PermissionError:
        raise ConfigError(f"migrations directory {directory} cannot be read (permission denied).") from None


def _read(name: str, dir_fd: int, path: str) -> bytes:
    """A file's bytes with the fewest system calls (openat, read, the read that meets EOF, close):
    this runs for every revision file on every start, where pathlib and io cost more than reading."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            data = os.read(fd, 65536)
            chunk = os.read(fd, 65536) if data else b""
            if chunk:
                chunks = [data, chunk]
                while chunk:
                    chunk = os.read(fd, 1 << 20)
                    chunks.append(chunk)
                data = b"".join(chunks)
            return data
        finally:
            os.close(fd)
    except OSError as exc:
        raise RevisionFileError(f"cannot be read ({exc.strerror}).", path=path) from None


LAYOUTS = ("z4j", "golang-migrate", "dbmate", "yoyo", "flyway")


def discover(
    directory: str | os.PathLike[str], layout: str | None = None, *, problems: list[RevisionFileError] | None = None
) -> RevisionSet:
    """Find and pair every NNNN_slug.{up,down}.sql in `directory`, ordered by number.

    `layout` names another tool's file layout (see LAYOUTS); its reader (layouts.py) produces the
    same Revision objects, so everything after discovery is shared. None or "z4j": ours.

    The first wrong file raises RevisionFileError. With `problems` (`check`: every problem in one
    report) each wrong file's error is appended there instead, the revisions it belongs to are
    left out, and the rest is returned. A missing or unreadable directory raises either way.
    """
    if layout is None:  # the caller gave none (--layout, Z4J_LAYOUT): the directory's toml says, else ours
        layout = config_layout(Path(directory))
    if layout != "z4j":
        from .layouts import discover_layout

        return discover_layout(Path(directory), layout, problems=problems)
    directory = Path(directory)
    report = _raise if problems is None else problems.append
    pairs: dict[str, dict[str, str]] = {}
    versions: dict[int, str] = {}
    for name in _list_dir(directory):
        if name.startswith(".") or not name.endswith(".sql"):
            continue
        match = REVISION_FILE_NAME.match(name)
        if match is None:
            report(
                RevisionFileError(
                    "malformed revision file name; expected NNNN_slug.up.sql or NNNN_slug.down.sql "
                    "(4+ digit number, lowercase slug of a-z, 0-9 and single underscores).",
                    path=str(directory / name),
                )
            )
            continue
        rev_id = f"{match['version']}_{match['slug']}"
        version = int(match["version"])
        other = versions.setdefault(version, rev_id)
        if other != rev_id:
            report(
                RevisionFileError(
                    f"duplicate revision number {version}: {other} and {rev_id}; renumber one of them.",
                    path=str(directory / name),
                )
            )
            continue
        pairs.setdefault(rev_id, {})[match["kind"]] = name
    revisions = []
    base = str(directory)
    prefix = "" if base == "." else base if base.endswith("/") else base + "/"
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if pairs else -1
    try:
        for rev_id, sides in pairs.items():
            if len(sides) < 2:
                kind, missing = ("up", "down") if "up" in sides else ("down", "up")
                report(
                    RevisionFileError(
                        f"has no matching {rev_id}.{missing}.sql; every revision is a pair.",
                        path=str(directory / sides[kind]),
                    )
                )
                continue
            revision = _read_pair(rev_id, sides, prefix, dir_fd, problems)
            if revision is not None:
                revisions.append(revision)
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    revisions.sort(key=lambda r: r.version)
    try:
        extensions = read_config(directory)
    except RevisionFileError as exc:
        report(exc)
        extensions = ()
    return RevisionSet(directory, tuple(revisions), extensions)


def _raise(problem: RevisionFileError) -> None:
    raise problem


def _read_pair(
    rev_id: str, sides: dict[str, str], prefix: str, dir_fd: int, problems: list[RevisionFileError] | None
) -> Revision | None:
    up, down = sides["up"], sides["down"]
    up_path, down_path = prefix + up, prefix + down  # == str(directory / name)
    try:
        up_raw, down_raw = _read(up, dir_fd, up_path), _read(down, dir_fd, down_path)
    except RevisionFileError as exc:
        if problems is None:
            raise
        problems.append(exc)
        return None
    version = int(rev_id.split("_", 1)[0])
    return parse_pair(version, rev_id, up_path, up_raw, down_path, down_raw, problems=problems)
