"""pytest plugin for projects whose migrations z4j-migrate runs (docs/verify.md).

Installing z4j-migrate registers it through the `pytest11` entry point, so these
fixtures exist in every pytest run:

- `z4j_server` (session): a PostgreSQL server where throwaway databases are
  made: `--z4j-database-url URL`, else $Z4J_TEST_DATABASE_URL, else a throwaway
  cluster from local binaries (z4j_migrate.localpg; $Z4J_PG_BINDIR picks them);
- `z4j_config` (session): which revisions, seed, smoke and schema reference to
  test; from `--z4j-migrations` and the `z4j_*` ini keys, or override it in a
  conftest.py;
- `z4j_database_url`: a fresh, empty database for one test, dropped afterwards;
- `z4j_migrated_url`: the same, upgraded to head.

The ready-made tests live in `z4j_migrate.testing`; a test module switches them
on with one line: `from z4j_migrate.testing import *`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from .testing import Z4jServer, local_server

__all__ = ["Z4jConfig", "Z4jServer"]

ENV_TEST_DATABASE_URL = "Z4J_TEST_DATABASE_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("z4j-migrate")
    group.addoption(
        "--z4j-migrations",
        default=None,
        help="Revision directory to test [ini z4j_migrations; env Z4J_MIGRATIONS_DIR; default: the bundled set].",
    )
    group.addoption(
        "--z4j-database-url",
        default=None,
        help="A database on the server to make throwaway databases on (the role needs CREATEDB) "
        f"[env {ENV_TEST_DATABASE_URL}; default: a throwaway local cluster].",
    )
    parser.addini("z4j_migrations", "z4j-migrate: revision directory to test (relative to the ini file).")
    parser.addini("z4j_seed", "z4j-migrate: SQL file run at head before the round trip to base.")
    parser.addini("z4j_smoke", "z4j-migrate: SQL file run at head after the round trip.")
    parser.addini("z4j_schema_reference", "z4j-migrate: committed output of `z4j-migrate schema` (.md or .json).")


@dataclass(frozen=True)
class Z4jConfig:
    """What the ready-made tests check. Override the `z4j_config` fixture to build your own."""

    migrations_dir: Path
    seed: Path | None = None
    smoke: Path | None = None
    schema_reference: Path | None = None
    schema: str = "public"  # schema of the bookkeeping tables


@pytest.fixture(scope="session")
def z4j_server(request: pytest.FixtureRequest) -> Iterator[Z4jServer]:
    """The PostgreSQL server the z4j fixtures and ready-made tests make their databases on."""
    url = request.config.getoption("--z4j-database-url") or os.environ.get(ENV_TEST_DATABASE_URL)
    if url:
        yield Z4jServer.at(url)
        return
    from .localpg import LocalPostgresError

    with ExitStack() as stack:
        try:
            server = stack.enter_context(local_server("z4j-pytest-"))
        except LocalPostgresError as exc:
            pytest.fail(
                f"z4j-migrate: no PostgreSQL server for the tests: {exc}\nPass --z4j-database-url URL or set "
                f"{ENV_TEST_DATABASE_URL} to a server where the role may CREATE DATABASE, or set Z4J_PG_BINDIR "
                "to a directory with initdb, pg_ctl and postgres.",
                pytrace=False,
            )
        yield server


def _ini_path(config: pytest.Config, key: str) -> Path | None:
    value = str(config.getini(key) or "").strip()
    if not value:
        return None
    base = config.inipath.parent if config.inipath else config.rootpath
    return (base / value).resolve()


@pytest.fixture(scope="session")
def z4j_config(request: pytest.FixtureRequest) -> Z4jConfig:
    """--z4j-migrations, else ini z4j_migrations, else $Z4J_MIGRATIONS_DIR, else the bundled revisions."""
    from .config import resolve_migrations_dir

    config = request.config
    option = config.getoption("--z4j-migrations")
    migrations = Path(option).resolve() if option else _ini_path(config, "z4j_migrations")
    migrations = migrations or resolve_migrations_dir().resolve()
    return Z4jConfig(
        migrations_dir=migrations,
        seed=_ini_path(config, "z4j_seed"),
        smoke=_ini_path(config, "z4j_smoke"),
        schema_reference=_ini_path(config, "z4j_schema_reference"),
    )


@pytest.fixture
def z4j_database_url(z4j_server: Z4jServer) -> Iterator[str]:
    """A fresh, empty database for one test; dropped afterwards."""
    with z4j_server.database() as url:
        yield url


@pytest.fixture
def z4j_migrated_url(z4j_database_url: str, z4j_config: Z4jConfig) -> str:
    """A fresh database with every revision of `z4j_config` applied."""
    from .api import upgrade

    upgrade(database_url=z4j_database_url, migrations_dir=z4j_config.migrations_dir, schema=z4j_config.schema)
    return z4j_database_url
