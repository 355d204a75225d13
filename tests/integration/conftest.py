"""Session-wide topology fixtures: real PgBouncer in both pool modes and a streaming hot standby.

All three stand on the suite's throwaway cluster (``pg_server.local``): PgBouncer relies on its
trust rules for 127.0.0.1 and the standby is a base backup of it.  A missing pgbouncer binary
fails (CI installs it; a skip would hide a broken install step).  See tests/topology.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from topology import INSTALL_HINT, PGBOUNCER_BIN, PgBouncer, Standby

from z4j_migrate.localpg import LocalPostgres


def _local_cluster(pg_server) -> LocalPostgres:
    if pg_server.local is None:
        pytest.skip("PgBouncer/standby fixtures need the local throwaway cluster (not Z4J_TEST_DATABASE_URL/Docker)")
    return pg_server.local


def _pgbouncer(pg_server, pool_mode: str) -> Iterator[PgBouncer]:
    cluster = _local_cluster(pg_server)
    if not PGBOUNCER_BIN.is_file():
        pytest.fail(INSTALL_HINT, pytrace=False)
    bouncer = PgBouncer(cluster.port, pool_mode)
    try:
        yield bouncer.start()
    finally:
        bouncer.stop()


@pytest.fixture(scope="session")
def pgbouncer_transaction(pg_server) -> Iterator[PgBouncer]:
    """PgBouncer with pool_mode = transaction and otherwise default settings."""
    yield from _pgbouncer(pg_server, "transaction")


@pytest.fixture(scope="session")
def pgbouncer_session(pg_server) -> Iterator[PgBouncer]:
    """PgBouncer with pool_mode = session and otherwise default settings."""
    yield from _pgbouncer(pg_server, "session")


@pytest.fixture(scope="session")
def standby(pg_server) -> Iterator[Standby]:
    """A streaming hot standby of the suite's cluster; call wait_for_replay() before reading it."""
    replica = Standby(_local_cluster(pg_server))
    try:
        yield replica.start()
    finally:
        replica.stop()
