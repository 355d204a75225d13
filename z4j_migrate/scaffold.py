"""`z4j-migrate new`: write the next pair with its headers filled in."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .config import resolve_layout, resolve_migrations_dir
from .errors import ConfigError
from .revisions import discover


def slugify(message: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    return slug[:50].rstrip("_") or "revision"


def new_revision(
    directory: str | os.PathLike[str] | None, message: str, *, transactional: bool = True
) -> tuple[Path, Path]:
    """Create NNNN_slug.up.sql/.down.sql after the highest existing number; refuse to overwrite."""
    if not message.strip() or "\n" in message:
        raise ConfigError('new: give a one-line message, e.g. z4j-migrate new "add tasks.priority".')
    folder = resolve_migrations_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    revset = discover(folder, resolve_layout(None, source="Z4J_LAYOUT"))
    if revset.layout != "z4j":
        raise ConfigError(
            f"new writes z4j pairs; {folder} is in the {revset.layout} layout: name the new file as that tool "
            "does (docs/revision-format.md, Layouts)."
        )
    version = max((r.version for r in revset.revisions), default=0) + 1
    width = max([4] + [len(r.id.split("_", 1)[0]) for r in revset.revisions])
    stem = f"{version:0{width}d}_{slugify(message)}"
    up, down = folder / f"{stem}.up.sql", folder / f"{stem}.down.sql"
    tx = "" if transactional else "-- transactional: false\n"
    up.write_text(f"-- message: {message.strip()}\n{tx}\n-- Write the change here.\n", encoding="utf-8")
    down.write_text(
        f"{tx}\n-- Undo exactly what {up.name} does. If that is impossible, replace this file's\n"
        "-- content with a single header line: -- irreversible: <what the operator should do>\n"
        "-- Guard data loss with header lines: -- preflight: SELECT NOT EXISTS (...)\n",
        encoding="utf-8",
    )
    return up, down
