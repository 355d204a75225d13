"""The head digest as the tests read it: stored, recomputed from the tables, expected from the files."""

from __future__ import annotations

from pathlib import Path

import psycopg

from z4j_migrate.revisions import discover
from z4j_migrate.state import head_digest
from z4j_migrate.store import Store


def stored(url: str, schema: str = "public") -> int | None:
    """The digest the database holds (None: missing, doubled or invalidated)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return Store(conn, schema).read_head()


def recomputed(url: str, schema: str = "public") -> int | None:
    """What a rebuild computes from the bookkeeping rows right now (in a transaction rolled back)."""
    with psycopg.connect(url) as conn:
        store = Store(conn, schema)
        store.repair_head(create=False)
        value = store.read_head()
        conn.rollback()
    return value


def expected(folder: Path, ids: list[str] | None = None) -> int:
    """The digest of a database where these revisions of `folder` (default: all) are applied."""
    revs = discover(folder).revisions
    return head_digest((r.id, r.up.checksum, r.down.checksum) for r in revs if ids is None or r.id in ids)
