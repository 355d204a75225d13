"""`z4j-migrate.sum`: the checksum manifest of a revision directory.

Why it exists: the start-up check must know the checksum of every revision to
compare it with the database, and reading and hashing every file costs time in
proportion to their number (docs/performance.md) on every boot of every replica.
The manifest holds those checksums, written once by `z4j-migrate hash`, so the
no-op start-up reads one small file and the directory listing instead.

What it trusts, and what catches the rest: the boot check trusts the manifest's
checksums when its own total verifies and its file names match the directory. A
file edited after `hash` without re-running it is therefore invisible to the
boot check alone; `z4j-migrate check` (CI) refuses such a directory, `status`
reports it, and every run that applies or undoes revisions reads the files and
warns. Like atlas.sum, its `total` line also makes two branches that each add a
revision conflict in git.

Format (LF, sorted by file name, every line after `total` covered by it):

    # z4j-migrate.sum ... (comment lines)
    total sha256:<hex of everything after this line>
    head <hex>                     the head digest when every revision is applied
    extensions <name> ...          from z4j-migrate.toml
    files sha256:<hex>             of the sorted .sql file names, to compare with a directory listing
    <file name> sha256:<hex>       one line per .sql file and for z4j-migrate.toml
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import RevisionFileError
from .revisions import CONFIG_FILE, REVISION_FILE_NAME, RevisionSet, checksum, normalise, read_config
from .state import head_digest

MANIFEST_FILE = "z4j-migrate.sum"
_HEADER = (
    "# z4j-migrate.sum: checksums of the revision files. Written by `z4j-migrate hash`; do not edit.\n"
    "# A merge conflict here means two branches changed revisions: fix the .sql files, then run hash again.\n"
)


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest whose total verified (it is what `hash` wrote, though maybe not for these files)."""

    path: Path
    head: int
    extensions: tuple[str, ...]
    files: dict[str, str]  # file name -> checksum; left empty by trusted(), which never parses the entries


def _names_digest(names: Iterable[bytes]) -> str:
    return "sha256:" + hashlib.sha256(b"\n".join(sorted(names))).hexdigest()


def _total(body: str | bytes) -> str:
    return "sha256:" + hashlib.sha256(body.encode("utf-8") if isinstance(body, str) else body).hexdigest()


def render(files: dict[str, str], extensions: tuple[str, ...]) -> str:
    """The manifest text for these file checksums; pure, so `check` can compare it with the file."""
    pairs: dict[str, dict[str, str]] = {}
    for name, digest in files.items():
        match = REVISION_FILE_NAME.match(name)
        if match is not None:
            pairs.setdefault(f"{match['version']}_{match['slug']}", {})[match["kind"]] = digest
    complete = [(rev_id, s["up"], s["down"]) for rev_id, s in pairs.items() if "up" in s and "down" in s]
    lines = [
        f"head {head_digest(complete):064x}",
        f"extensions {' '.join(extensions)}".rstrip(),
        f"files {_names_digest(n.encode('utf-8') for n in files if n.endswith('.sql'))}",
    ]
    lines += [f"{name} {files[name]}" for name in sorted(files)]
    body = "\n".join(lines) + "\n"
    return f"{_HEADER}total {_total(body)}\n{body}"


def for_revisions(revset: RevisionSet) -> str:
    """The manifest a fully parsed directory should have."""
    return render(_checksums(revset), revset.extensions)


def _checksums(revset: RevisionSet) -> dict[str, str]:
    files = {}
    for rev in revset.revisions:
        files[os.path.basename(rev.up.path)] = rev.up.checksum
        files[os.path.basename(rev.down.path)] = rev.down.checksum
    config = revset.directory / CONFIG_FILE
    if os.path.exists(config):
        files[CONFIG_FILE] = checksum(normalise(config.read_bytes(), str(config)))
    return files


def for_directory(directory: Path) -> str:
    """The manifest of whatever revision files are there, without validating their headers: what
    `new` writes next to a freshly scaffolded (not yet valid) pair. `hash` validates first."""
    files = {}
    for name in sorted(os.listdir(directory)):
        if REVISION_FILE_NAME.match(name) or name == CONFIG_FILE:
            path = directory / name
            files[name] = checksum(normalise(path.read_bytes(), str(path)))
    return render(files, read_config(directory))


def read(directory: Path) -> Manifest | None:
    """The manifest of `directory` if it has one whose total verifies; None otherwise.

    Never raises for a damaged manifest: an untrusted manifest only means the slow,
    file-reading path runs, and that path names the problem.
    """
    body = _verified_body(directory)
    header = _header(body) if body is not None else None
    if header is None:
        return None
    head, extensions, _names, entries = header
    try:
        lines = entries.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return None
    files = dict(line.split(" ", 1) for line in lines if " " in line)
    return Manifest(directory / MANIFEST_FILE, head, extensions, files)


_SQL_NAMES = re.compile(rb"\n([^.\n][^\n]*\.sql)(?=\n)")  # directory entries that are .sql files, not hidden


def trusted(directory: Path) -> Manifest | None:
    """The start-up check's view of the directory, from the manifest alone, or None to read the files.

    Trusted when its total verifies, the .sql files in the directory are exactly the ones it
    lists, and z4j-migrate.toml (small; read every time) is the one it hashed. Never parses the
    entries: it compares the listing with the `files` line, using C-level work (reads, hashing,
    a regex scan) rather than a Python loop over 2000 lines.
    """
    body = _verified_body(directory)
    header = _header(body) if body is not None else None
    if header is None:
        return None
    head, extensions, names_digest, entries = header
    try:
        names = os.listdir(os.fsencode(directory))
    except OSError:
        return None
    if _names_digest(_SQL_NAMES.findall(b"\n" + b"\n".join(names) + b"\n")).encode() != names_digest:
        return None
    _, found, after = (b"\n" + entries).partition(b"\n" + CONFIG_FILE.encode() + b" ")
    config_sum = after.partition(b"\n")[0] if found else None
    if (os.fsencode(CONFIG_FILE) in names) != (config_sum is not None):
        return None
    if config_sum is not None:
        try:
            raw_config = (directory / CONFIG_FILE).read_bytes()
            if checksum(normalise(raw_config, CONFIG_FILE)).encode() != config_sum:
                return None
        except (OSError, RevisionFileError):
            return None
    return Manifest(directory / MANIFEST_FILE, head, extensions, {})


def _verified_body(directory: Path) -> bytes | None:
    """Everything after the `total` line, if the manifest exists and that line is its sha256."""
    try:
        fd = os.open(os.path.join(directory, MANIFEST_FILE), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
    except OSError:  # e.g. a directory of that name
        return None
    finally:
        os.close(fd)
    marker = raw.find(b"\ntotal ")
    end = raw.find(b"\n", marker + 1) if marker >= 0 else -1
    if end < 0 or _total(raw[end + 1 :]).encode() != raw[marker + 7 : end]:
        return None
    return raw[end + 1 :]


def _header(body: bytes) -> tuple[int, tuple[str, ...], bytes, bytes] | None:
    """The head digest, the extensions, the names digest and the entry lines; None if malformed."""
    head_line, _, rest = body.partition(b"\n")
    ext_line, _, rest = rest.partition(b"\n")
    files_line, _, entries = rest.partition(b"\n")
    if not (head_line.startswith(b"head ") and ext_line.startswith(b"extensions") and files_line.startswith(b"files ")):
        return None
    try:
        return int(head_line[5:], 16), tuple(ext_line[10:].decode("utf-8").split()), files_line[6:], entries
    except (ValueError, UnicodeDecodeError):
        return None


def stale_files(revset: RevisionSet, *, thorough: bool = False) -> list[str] | None:
    """Files whose manifest entry is wrong or missing (or listed and gone); None without a manifest.

    Compares checksums entry by entry, without re-rendering the file (status and every run that
    executes revisions call it). `thorough` (check) also requires the file to be byte for byte
    what `hash` would write now, which catches a hand-made head or files line too.
    """
    path = revset.directory / MANIFEST_FILE
    if not os.path.exists(path):
        return None
    want = _checksums(revset)
    found = read(revset.directory)
    if found is None:  # damaged or hand-edited: everything is suspect
        return sorted(want) or [MANIFEST_FILE]
    stale = sorted(n for n in want.keys() | found.files.keys() if want.get(n) != found.files.get(n))
    if stale:
        return stale
    if found.extensions != revset.extensions:
        return [MANIFEST_FILE]
    if thorough:
        try:
            same = path.read_bytes() == render(want, revset.extensions).encode("utf-8")
        except OSError:
            same = False
        if not same:
            return [MANIFEST_FILE]
    return []


def stale_message(directory: Path, stale: list[str]) -> str:
    shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
    return (
        f"{directory / MANIFEST_FILE} is out of date for {shown}. Run z4j-migrate hash "
        f"(make hash) after changing revision files, and commit the result."
    )


def write(directory: Path, text: str) -> bool:
    """Write the manifest if its content changes; returns whether it did."""
    path = directory / MANIFEST_FILE
    try:
        if path.read_bytes() == text.encode("utf-8"):  # bytes: a CRLF copy must be rewritten
            return False
    except OSError:
        pass
    tmp = path.with_name(f".{MANIFEST_FILE}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)
    return True
