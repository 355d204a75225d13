"""The Python floor: the least any psycopg 3 migration runner can do.

Each revision file is sent verbatim as one simple-protocol query inside its own
transaction, with one INSERT (or DELETE) of bookkeeping; nothing is checked. It reads
the z4j layout (NNNN_slug.up.sql / .down.sql) and keeps its history in
`_floor_migrations`, like the psql floor. Importable (in-process timing) and runnable:

    python bench/pyfloor.py apply|rollback|status|select1 URL DIR
"""

from __future__ import annotations

import os
import sys

import psycopg

TABLE = "_floor_migrations"


def _pairs(directory: str) -> list[str]:
    return sorted(n[: -len(".up.sql")] for n in os.listdir(directory) if n.endswith(".up.sql"))


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def applied(conn: psycopg.Connection) -> list[str]:
    if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0] is None:
        return []
    return [r[0] for r in conn.execute(f"SELECT version FROM {TABLE} ORDER BY version")]


def apply(url: str, directory: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        done = set(applied(conn))
        pending = [i for i in _pairs(directory) if i not in done]
        if not pending:
            return 0
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (version text PRIMARY KEY, applied_at timestamptz)")
        for rev in pending:
            text = _read(os.path.join(directory, f"{rev}.up.sql"))
            with conn.transaction():
                conn.execute(text.encode())  # bytes: no placeholder parsing, sent as is
                conn.execute(f"INSERT INTO {TABLE} (version, applied_at) VALUES (%s, now())", (rev,))
        return len(pending)


def rollback(url: str, directory: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        done = applied(conn)
        for rev in reversed(done):
            text = _read(os.path.join(directory, f"{rev}.down.sql"))
            with conn.transaction():
                conn.execute(text.encode())
                conn.execute(f"DELETE FROM {TABLE} WHERE version = %s", (rev,))
        return len(done)


def status(url: str, directory: str) -> list[tuple[str, bool]]:
    with psycopg.connect(url, autocommit=True) as conn:
        done = set(applied(conn))
    return [(i, i in done) for i in _pairs(directory)]


def select1(url: str, directory: str | None = None) -> int:
    """The fixed cost every Python tool pays: connect and one query."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT 1").fetchone()[0]


if __name__ == "__main__":
    command, url = sys.argv[1], sys.argv[2]
    directory = sys.argv[3] if len(sys.argv) > 3 else None
    result = {"apply": apply, "rollback": rollback, "status": status, "select1": select1}[command](url, directory)
    if command == "status":
        for rev, ok in result:
            print("applied" if ok else "pending", rev)
