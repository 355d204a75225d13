"""Small helpers shared by the tests: write revisions, run the CLI, read the catalog."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from z4j_migrate.catalog import BOOKKEEPING_TABLES

REPO = Path(__file__).resolve().parent.parent


def write_pair(folder: Path, rev_id: str, up: str, down: str, *, message: str | None = None) -> None:
    """Write NNNN_slug.up.sql/.down.sql; a `-- message:` header is added unless `up` has one."""
    header = (
        ""
        if up.lstrip().startswith("--") and "message:" in up.split("\n", 1)[0]
        else f"-- message: {message or rev_id}\n"
    )
    (folder / f"{rev_id}.up.sql").write_text(header + up, encoding="utf-8")
    (folder / f"{rev_id}.down.sql").write_text(down, encoding="utf-8")


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    input: str | None = None,
    module: str = "z4j_migrate",
) -> subprocess.CompletedProcess[str]:
    """Run `z4j-migrate` (or `python -m module`) as a deploy script would: a separate process, without
    the caller's Z4J_* variables."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        input=input,
        cwd=REPO,
    )


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params or None)
        return cur.fetchall() if cur.description else []


def scalar(url: str, sql: str, params: tuple = ()) -> object:
    rows = query(url, sql, params)
    return rows[0][0] if rows else None


def tables(url: str) -> set[str]:
    return {r[0] for r in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")} - BOOKKEEPING


def applied_ids(url: str) -> list[str]:
    if scalar(url, "SELECT to_regclass('public._yoyo_migration')") is None:
        return []
    return [r[0] for r in query(url, "SELECT migration_id FROM public._yoyo_migration ORDER BY migration_id")]


BOOKKEEPING = set(BOOKKEEPING_TABLES)  # left out of tables(): the tool's own, not the schema's


def state_fingerprint(url: str) -> dict[str, object]:
    """Catalog plus bookkeeping, to prove a refused or failed command changed nothing."""
    from z4j_migrate.catalog import snapshot

    with psycopg.connect(url, autocommit=True) as conn:
        snap = snapshot(conn)
        book = {}
        for table in sorted(BOOKKEEPING - {"_yoyo_log"}):  # the log only by its count (below)
            if conn.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone()[0]:
                book[table] = sorted(map(repr, conn.execute(f"SELECT * FROM public.{table}").fetchall()))
        book["_yoyo_log_count"] = (
            conn.execute("SELECT count(*) FROM public._yoyo_log").fetchone()[0]
            if conn.execute("SELECT to_regclass('public._yoyo_log')").fetchone()[0]
            else 0
        )
    return {"catalog": snap, "bookkeeping": book}
