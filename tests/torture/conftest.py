"""Fixtures of the torture suites (`pytest -m torture`).

- `figures`: what each suite tried and what held, written to
  bench/out/torture-pg<major>.json (git-ignored) when the session ends; the
  numbers in docs/reliability.md come from these files.
- `own_pg`: a private server (a z4j_migrate.testing.Z4jServer, its cluster in `.local`) that the
  restart tests may crash at will.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from helpers import REPO

from z4j_migrate.testing import local_server

OUT = REPO / "bench" / "out"


@pytest.fixture(scope="session")
def figures(pg_server) -> Iterator[dict[str, object]]:
    data: dict[str, object] = {}
    yield data
    if not data:
        return
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"torture-pg{pg_server.major}.json"
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        previous = {}
    suites = {**previous.get("suites", {}), **data}
    path.write_text(
        json.dumps(
            {"postgres_major": pg_server.major, "cpus": os.cpu_count(), "suites": suites},
            indent=2,
            sort_keys=True,
            default=str,
        )
        + "\n"
    )


@pytest.fixture(scope="session")
def own_pg(pg_server):
    """A cluster of our own for tests that crash the server (the shared one serves other tests)."""
    if os.environ.get("Z4J_TEST_DATABASE_URL"):
        pytest.skip("restart tests start and crash their own server; Z4J_TEST_DATABASE_URL is an external server")
    if pg_server.local is None:
        pytest.skip("restart tests need local PostgreSQL binaries (the session server is a container)")
    with local_server("z4j-torture-", bindir=pg_server.local.bindir, settings={"synchronous_commit": "on"}) as own:
        yield own
