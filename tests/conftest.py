"""A real PostgreSQL for every test, never a mock.

Where the server comes from, in order:
1. Z4J_TEST_DATABASE_URL: a server you run (the role must be able to CREATE DATABASE);
2. a throwaway cluster from local binaries (z4j_migrate.localpg; Z4J_PG_BINDIR picks
   the version, which is how .ci/run tests PostgreSQL 15 and 18);
3. testcontainers postgres:18, when a Docker engine answers;
otherwise the session fails and says how to get a server.
Each test gets its own fresh database (the `database_url` fixture).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql


@dataclass
class PgServer:
    admin_url: str  # a URL to a maintenance database with CREATE DATABASE rights
    major: int
    local: object | None = None  # LocalPostgres when we started it (gives log_path, restart)

    def url_for(self, dbname: str, **params: str) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.admin_url)
        info["dbname"] = dbname
        info.update(params)
        return psycopg.conninfo.make_conninfo(**info)

    def create_database(self, prefix: str = "t_", owner: str | None = None) -> str:
        """A new empty database (owned by `owner` if given); its name."""
        name = f"{prefix}{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            if owner:
                owned = sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(owner))
                conn.execute(owned)
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _major(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    url = os.environ.get("Z4J_TEST_DATABASE_URL")
    if url:
        yield PgServer(url, _major(url))
        return
    from z4j_migrate.localpg import LocalPostgres, LocalPostgresError, find_bindir, make_base_dir

    try:
        find_bindir()
        have_binaries = True
    except LocalPostgresError as exc:
        have_binaries, reason = False, str(exc)
    if have_binaries:
        base = make_base_dir("z4j-test-")
        cluster = LocalPostgres(
            base,
            settings={
                "log_statement": "all",
                "log_line_prefix": "%m [%p] app=%a ",
                "max_connections": "200",
                "synchronous_commit": "on",  # crash tests need committed = durable
            },
        )
        cluster.start()
        try:
            yield PgServer(cluster.url, cluster.major_version, cluster)
        finally:
            cluster.stop()
            shutil.rmtree(base, ignore_errors=True)
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:18", driver=None) as container:
            url = container.get_connection_url()
            yield PgServer(url, _major(url))
        return
    pytest.fail(
        "No PostgreSQL server for the tests. " + reason + "\nOr set Z4J_TEST_DATABASE_URL to a server "
        "where the role may CREATE DATABASE, or start a Docker engine (testcontainers).",
        pytrace=False,
    )


@pytest.fixture
def database_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    name = pg_server.create_database()
    try:
        yield pg_server.url_for(name)
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """An empty revision directory to fill with helpers.write_pair."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    return folder
