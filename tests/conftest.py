"""A real PostgreSQL for every test, never a mock.

Where the server comes from, in order:
1. Z4J_TEST_DATABASE_URL: a server you run (the role must be able to CREATE DATABASE);
2. a throwaway cluster from local binaries (z4j_migrate.localpg; Z4J_PG_BINDIR picks
   the version, which is how .ci/run tests PostgreSQL 15 and 18);
3. testcontainers postgres:18, when a Docker engine answers;
otherwise the session fails and says how to get a server.
`pg_server` is the pytest plugin's own server class (z4j_migrate.testing.Z4jServer):
`pg_server.database(prefix)` is the one way to make a throwaway database.
Each test gets its own fresh database (the `database_url` fixture).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from z4j_migrate.testing import Z4jServer, local_server

# The suite's cluster logs every statement (test_security reads the log) and takes many clients.
SUITE_SETTINGS = {
    "log_statement": "all",
    "log_line_prefix": "%m [%p] app=%a ",
    "max_connections": "200",
    "synchronous_commit": "on",  # crash tests need committed = durable
}


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Z4jServer]:
    url = os.environ.get("Z4J_TEST_DATABASE_URL")
    if url:
        yield Z4jServer.at(url)
        return
    from z4j_migrate.localpg import LocalPostgresError, find_bindir

    try:
        find_bindir()
        have_binaries = True
    except LocalPostgresError as exc:
        have_binaries, reason = False, str(exc)
    if have_binaries:
        with local_server("z4j-test-", settings=SUITE_SETTINGS) as server:
            yield server
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as container:
            yield Z4jServer.at(container.get_connection_url())
        return
    pytest.fail(
        "No PostgreSQL server for the tests. " + reason + "\nOr set Z4J_TEST_DATABASE_URL to a server "
        "where the role may CREATE DATABASE, or start a Docker engine (testcontainers).",
        pytrace=False,
    )


@pytest.fixture
def database_url(pg_server: Z4jServer) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    with pg_server.database("t_") as url:
        yield url


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """An empty revision directory to fill with helpers.write_pair."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    return folder
