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

    The header is the block of `--` lines at the very top. A directive found
    after it (past a blank line or a block comment) is an error rather than
    silently ignored, which is the yoyo behaviour we refuse to copy.
    """
    directives: list[tuple[str, str, int]] = []
    in_header = True
    has_sql = False
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not stripped.startswith("--"):
            if stripped == "":
                in_header = False
                continue
            has_sql = True  # a statement or a block comment: SQL (or at least not a header)
            break
        match = _DIRECTIVE.match(stripped)
        if match is None:
            continue
        key = match["key"].lower()
        if not in_header:
            if key in _ALL_KEYS:
                raise RevisionFileError(
                    f"directive '-- {key}:' is below the header and would be ignored; "
                    "move it into the block of '--' lines at the top of the file.",
                    path=path,
                    line=number,
                )
            continue
        if key not in allowed:
            where = "an .up.sql" if allowed is _UP_KEYS else "a .down.sql"
            raise RevisionFileError(
                f"unknown directive '-- {match['key']}:' in {where} header (allowed: "
                f"{', '.join(sorted(allowed))}). A plain comment in the header must not "
                "look like '-- word: ...'; put it after a blank line.",
                path=path,
                line=number,
            )
        directives.append((key, match["value"].strip(), number))
    else:
        has_sql = False
    if not has_sql:
        has_sql = any(ln.strip() and not ln.strip().startswith("--") for ln in text.split("\n"))
    return directives, has_sql


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


def parse_pair(version: int, rev_id: str, up_path: str, up_raw: bytes, down_path: str, down_raw: bytes) -> Revision:
    """Build one Revision from the bytes of its two files; pure, testable without disk."""
    up_text, down_text = normalise(up_raw, up_path), normalise(down_raw, down_path)
    up_directives, up_has_sql = parse_header(up_text, up_path, _UP_KEYS)
    down_directives, down_has_sql = parse_header(down_text, down_path, _DOWN_KEYS)
    message, destructive = _up_directives(up_directives, up_path, up_has_sql)
    up_tx = _single(up_directives, "transactional", up_path)
    up_transactional = _parse_bool(up_tx[0], "transactional", up_path, up_tx[1]) if up_tx else True
    down_tx = _single(down_directives, "transactional", down_path)
    down_transactional = (
        _parse_bool(down_tx[0], "transactional", down_path, down_tx[1]) if down_tx else up_transactional
    )
    irreversible, preflights = _down_directives(down_directives, down_path, down_has_sql)
    accepted = _accepted_differences(down_directives, down_path)
    up_timeout = _statement_timeout(up_directives, up_path)
    down_timeout = _statement_timeout(down_directives, down_path)
    return Revision(
        version=version,
        id=rev_id,
        message=message,
        up=SqlFile(up_path, up_text, checksum(up_text), up_transactional, True, up_timeout),
        down=SqlFile(down_path, down_text, checksum(down_text), down_transactional, down_has_sql, down_timeout),
        irreversible=irreversible,
        preflights=preflights,
        destructive=destructive,
        accepted_differences=accepted,
    )


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


def read_config(directory: Path) -> tuple[str, ...]:
    path = directory / CONFIG_FILE
    if not path.exists():
        return ()
    import tomllib  # only when there is a config file: it costs import time on every start

    try:
        data = tomllib.loads(normalise(path.read_bytes(), str(path)))  # BOM and CRLF as for revisions
    except tomllib.TOMLDecodeError as exc:
        raise RevisionFileError(f"cannot be parsed: {exc}.", path=str(path)) from None
    unknown = set(data) - {"extensions"}
    if unknown:
        raise RevisionFileError(f"unknown setting(s) {sorted(unknown)}; only 'extensions' is known.", path=str(path))
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


def discover(directory: str | os.PathLike[str], layout: str | None = None) -> RevisionSet:
    """Find and pair every NNNN_slug.{up,down}.sql in `directory`, ordered by number.

    `layout` names another tool's file layout (see LAYOUTS); its reader (layouts.py) produces the
    same Revision objects, so everything after discovery is shared. None or "z4j": ours.
    """
    if layout not in (None, "z4j"):
        from .layouts import discover_layout

        return discover_layout(Path(directory), layout)
    directory = Path(directory)
    pairs: dict[str, dict[str, str]] = {}
    versions: dict[int, str] = {}
    for name in _list_dir(directory):
        if name.startswith(".") or not name.endswith(".sql"):
            continue
        match = REVISION_FILE_NAME.match(name)
        if match is None:
            raise RevisionFileError(
                "malformed revision file name; expected NNNN_slug.up.sql or NNNN_slug.down.sql "
                "(4+ digit number, lowercase slug of a-z, 0-9 and single underscores).",
                path=str(directory / name),
            )
        rev_id = f"{match['version']}_{match['slug']}"
        version = int(match["version"])
        other = versions.setdefault(version, rev_id)
        if other != rev_id:
            raise RevisionFileError(
                f"duplicate revision number {version}: {other} and {rev_id}; renumber one of them.",
                path=str(directory / name),
            )
        pairs.setdefault(rev_id, {})[match["kind"]] = name
    revisions = []
    base = str(directory)
    prefix = "" if base == "." else base if base.endswith("/") else base + "/"
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if pairs else -1
    try:
        for rev_id, sides in pairs.items():
            for kind, missing in (("up", "down"), ("down", "up")):
                if kind in sides and missing not in sides:
                    raise RevisionFileError(
                        f"has no matching {rev_id}.{missing}.sql; every revision is a pair.",
                        path=str(directory / sides[kind]),
                    )
            up, down = sides["up"], sides["down"]
            up_path, down_path = prefix + up, prefix + down  # == str(directory / name)
            up_raw, down_raw = _read(up, dir_fd, up_path), _read(down, dir_fd, down_path)
            revisions.append(parse_pair(int(rev_id.split("_", 1)[0]), rev_id, up_path, up_raw, down_path, down_raw))
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    revisions.sort(key=lambda r: r.version)
    return RevisionSet(directory, tuple(revisions), read_config(directory))
