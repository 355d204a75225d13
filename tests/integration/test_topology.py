"""The topology fixtures are the real thing: PgBouncer really pools, the standby really replicates.

Why: later tests prove the engine survives a transaction pooler and refuses a standby; they are
only worth something if these fixtures behave like production, so each property the engine
depends on is pinned here against the real processes.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from pgauth import login_role
from psycopg import errors

MODES = ["pgbouncer_transaction", "pgbouncer_session"]


@pytest.fixture
def dbname(database_url: str) -> str:
    """A fresh database on the primary (dropped WITH (FORCE) afterwards, pooled servers too)."""
    return psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]


def _one(url: str, query: str) -> object:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchone()[0]  # type: ignore[index]


@pytest.mark.parametrize("fixture", MODES)
def test_pgbouncer_runs_its_pool_mode_with_default_settings(request, fixture, dbname):
    bouncer = request.getfixturevalue(fixture)
    assert _one(bouncer.url_for(dbname), "SELECT current_database()") == dbname
    assert bouncer.config("pool_mode") == fixture.removeprefix("pgbouncer_")
    assert bouncer.config("ignore_startup_parameters") == ""
    assert any(row["database"] == dbname for row in bouncer.admin_console("SHOW POOLS"))


@pytest.mark.parametrize("fixture", MODES)
def test_startup_options_are_refused_by_default(request, fixture, dbname):
    """libpq's `options` (how one would pass `-c lock_timeout=...`) is not accepted by PgBouncer 1.18."""
    bouncer = request.getfixturevalue(fixture)
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(bouncer.url_for(dbname), options="-c lock_timeout=1000")


def test_a_role_created_by_a_test_logs_in_through_pgbouncer(pgbouncer_transaction, pg_server, dbname):
    """auth_type = trust plus auth_user: PgBouncer finds new roles by auth_query, no auth_file edit."""
    with login_role(pg_server) as role:
        assert _one(pgbouncer_transaction.url_for(dbname, user=role), "SELECT current_user") == role
    with pytest.raises(psycopg.OperationalError, match="no such user"):
        psycopg.connect(pgbouncer_transaction.url_for(dbname, user="no_such_role_z4j"))


def test_transaction_pooling_hands_one_backend_and_its_session_state_to_other_clients(pgbouncer_transaction, dbname):
    url = pgbouncer_transaction.url_for(dbname)
    with psycopg.connect(url, autocommit=True) as a, psycopg.connect(url, autocommit=True) as b:
        pid_a = a.execute("SELECT pg_backend_pid()").fetchone()
        assert b.execute("SELECT pg_backend_pid()").fetchone() == pid_a  # idle server reused (LIFO)
        a.execute("SET lock_timeout = '1234ms'")
        assert b.execute("SHOW lock_timeout").fetchone() == ("1234ms",)  # no reset between clients
        assert a.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)
        # The "other" client is the same session, so it gets the lock too: session locks mean nothing here.
        assert b.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)


def test_session_pooling_keeps_a_session_lock_on_one_backend(pgbouncer_session, dbname):
    url = pgbouncer_session.url_for(dbname)
    with psycopg.connect(url, autocommit=True) as a, psycopg.connect(url, autocommit=True) as b:
        pid_a = a.execute("SELECT pg_backend_pid()").fetchone()
        assert a.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)
        assert b.execute("SELECT pg_backend_pid()").fetchone() != pid_a
        assert b.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (False,)
        assert a.execute("SELECT pg_backend_pid()").fetchone() == pid_a
        assert a.execute("SELECT pg_advisory_unlock(4242)").fetchone() == (True,)


@pytest.mark.parametrize("how", ["cancel", "cancel_safe"])
@pytest.mark.parametrize("fixture", MODES)
def test_backend_key_is_pgbouncers_own_yet_cancel_reaches_the_server(request, fixture, how, pg_server, dbname):
    """BackendKeyData comes from PgBouncer (a random pid), but it forwards the cancel request."""
    bouncer = request.getfixturevalue(fixture)
    with psycopg.connect(bouncer.url_for(dbname), autocommit=True) as conn:
        real_pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        assert conn.info.backend_pid != real_pid
        assert real_pid in {row["remote_pid"] for row in bouncer.admin_console("SHOW SERVERS")}

        def cancel_once_running() -> None:
            deadline = time.monotonic() + 10
            with psycopg.connect(pg_server.admin_url, autocommit=True) as watcher:
                running = "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND query = 'SELECT pg_sleep(10)'"
                while not watcher.execute(running, [dbname]).fetchone() and time.monotonic() < deadline:
                    time.sleep(0.02)
            getattr(conn, how)()

        canceller = threading.Thread(target=cancel_once_running)
        started = time.monotonic()
        canceller.start()
        with pytest.raises(errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(10)")
        canceller.join()
        assert time.monotonic() - started < 9
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_standby_is_read_only_and_replays_what_the_primary_commits(standby, pg_server, dbname):
    with psycopg.connect(pg_server.url_for(dbname), autocommit=True) as primary:
        primary.execute("CREATE TABLE replicated (id int PRIMARY KEY)")
        primary.execute("INSERT INTO replicated VALUES (1), (2)")
    standby.wait_for_replay()
    with psycopg.connect(standby.url_for(dbname), autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM replicated").fetchone() == (2,)
        with pytest.raises(errors.ReadOnlySqlTransaction) as refused:
            conn.execute("INSERT INTO replicated VALUES (3)")
        assert refused.value.sqlstate == "25006"


@pytest.mark.parametrize("attrs", ["read-write", "standby"])
def test_multi_host_url_picks_the_server_by_target_session_attrs(standby, pg_server, attrs):
    """The unwanted server is listed first, so the choice is libpq's, not just "the first host"."""
    ports = [standby.port, pg_server.local.port] if attrs == "read-write" else [pg_server.local.port, standby.port]
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    with psycopg.connect(f"postgresql://postgres@{hosts}/postgres?target_session_attrs={attrs}") as conn:
        in_recovery, port = conn.execute("SELECT pg_is_in_recovery(), inet_server_port()").fetchone()  # type: ignore[misc]
    assert (in_recovery, port) == (attrs == "standby", ports[1])
