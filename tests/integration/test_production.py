"""Where operators run it: through a real PgBouncer (transaction and session pooling, default
settings) and against a real streaming hot standby. Assertions read the server's own catalog
and pg_locks through a direct connection, never our log lines."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from helpers import REPO, applied_ids, query, run_cli, scalar, write_pair

import z4j_migrate
from z4j_migrate.lock import lock_key

MODES = ["pgbouncer_transaction", "pgbouncer_session"]
BUNDLED = REPO / "sql"


def _env(url: str, folder: Path, **extra: str) -> dict[str, str]:
    return {"Z4J_DATABASE_URL": url, "Z4J_MIGRATIONS_DIR": str(folder), **extra}


def _advisory_locks(direct_url: str) -> int:
    """Advisory locks held by anyone in that database, read on the server directly (not via the pooler)."""
    return scalar(
        direct_url,
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE l.locktype = 'advisory' AND d.datname = current_database()",
    )


@pytest.mark.parametrize("mode", MODES)
def test_bundled_set_upgrades_noops_reports_and_downgrades_through_pgbouncer(request, mode, pg_server, database_url):
    bouncer = request.getfixturevalue(mode)
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    url = bouncer.url_for(dbname)
    env = _env(url, BUNDLED)
    r = run_cli("upgrade", env=env)
    assert r.returncode == 0, r.stderr
    expected = sorted(p.name[: -len(".up.sql")] for p in BUNDLED.glob("*.up.sql"))
    assert applied_ids(database_url) == expected
    assert (
        scalar(database_url, "SELECT count(*) FROM pg_extension WHERE extname IN ('pgcrypto','citext','pg_trgm')") == 3
    )
    assert z4j_migrate.upgrade(database_url=url, migrations_dir=BUNDLED).applied == ()  # the no-op
    r = run_cli("status", "--json", env=env)
    assert r.returncode == 0 and '"current": "' + expected[-1] + '"' in r.stdout, r.stdout
    r = run_cli("downgrade", "--to", "base", "--yes", env=env)
    assert r.returncode == 0, r.stderr
    assert applied_ids(database_url) == []
    assert scalar(database_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename !~ '^_'") == 0
    assert _advisory_locks(database_url) == 0


def _counting_set(folder: Path) -> Path:
    """Revisions of plain INSERTs: a revision applied twice leaves two rows."""
    write_pair(folder, "0001_ledger", "CREATE TABLE ledger (rev text NOT NULL);", "DROP TABLE ledger;")
    for n in range(2, 6):
        write_pair(
            folder,
            f"000{n}_row_{n}",
            f"INSERT INTO ledger VALUES ('{n}');\nSELECT pg_sleep(0.05);",
            f"DELETE FROM ledger WHERE rev = '{n}';",
        )
    return folder


@pytest.mark.parametrize("mode", MODES)
def test_eight_upgrades_at_once_through_pgbouncer_apply_each_revision_exactly_once(
    request, mode, pg_server, migrations
):
    bouncer = request.getfixturevalue(mode)
    folder = _counting_set(migrations)
    for round_ in range(5):
        name = pg_server.create_database("pool_")
        direct = pg_server.url_for(name)
        try:
            env = {k: v for k, v in run_env().items()}
            env.update(_env(bouncer.url_for(name), folder))
            procs = [
                subprocess.Popen(
                    [sys.executable, "-m", "z4j_migrate", "upgrade"],
                    env=env,
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(8)
            ]
            results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
            for p in procs:
                p.stdout.close()
                p.stderr.close()
            assert [code for code, _ in results] == [0] * 8, (round_, [err for _, err in results])
            rows = dict(query(direct, "SELECT rev, count(*) FROM ledger GROUP BY rev"))
            assert rows == {str(n): 1 for n in range(2, 6)}, (round_, rows)
            log = dict(query(direct, "SELECT migration_id, count(*) FROM _yoyo_log GROUP BY 1"))
            assert set(log.values()) == {1} and len(log) == 5, log
            assert _advisory_locks(direct) == 0
        finally:
            pg_server.drop_database(name)


def run_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}


@pytest.mark.parametrize("mode", MODES)
def test_a_revision_sees_the_configured_lock_timeout_through_pgbouncer(request, mode, database_url, migrations):
    bouncer = request.getfixturevalue(mode)
    url = bouncer.url_for(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"])
    write_pair(
        migrations,
        "0001_seen",
        "CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lock_timeout, "
        "current_setting('statement_timeout') AS statement_timeout;",
        "DROP TABLE seen;",
    )
    r = run_cli("--statement-lock-timeout", "3", "upgrade", env=_env(url, migrations))
    assert r.returncode == 0, r.stderr
    assert query(database_url, "SELECT lock_timeout, statement_timeout FROM seen") == [("3s", "0")]


@pytest.mark.parametrize("mode", MODES)
def test_ddl_behind_an_application_lock_retries_and_the_application_never_queues_past_lock_timeout(
    request, mode, database_url, migrations
):
    bouncer = request.getfixturevalue(mode)
    url = bouncer.url_for(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"])
    write_pair(migrations, "0001_t", "CREATE TABLE t (id int); INSERT INTO t VALUES (1);", "DROP TABLE t;")
    assert run_cli("upgrade", env=_env(url, migrations)).returncode == 0
    write_pair(migrations, "0002_alter", "ALTER TABLE t ADD COLUMN x int;", "ALTER TABLE t DROP COLUMN x;")
    lock_timeout_s = 0.5
    holder = psycopg.connect(database_url)  # the application, mid-transaction on t
    holder.execute("SELECT * FROM t")
    proc = subprocess.Popen(
        [sys.executable, "-m", "z4j_migrate", "--statement-lock-timeout", str(lock_timeout_s), "upgrade"],
        env={**run_env(), **_env(url, migrations)},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        attempts: set[object] = set()
        waits: list[float] = []
        deadline = time.monotonic() + 60
        with psycopg.connect(database_url, autocommit=True) as watcher:
            while len(attempts) < 3:  # the DDL waited, gave up, and came back at least three times
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
                row = watcher.execute(
                    "SELECT xact_start FROM pg_stat_activity WHERE application_name = 'z4j-migrate' "
                    "AND wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchone()
                if row:
                    attempts.add(row[0])
                    started = time.monotonic()  # an application query arrives behind the waiting DDL
                    watcher.execute("SELECT count(*) FROM t")
                    waits.append(time.monotonic() - started)
                time.sleep(0.02)
        assert max(waits) < lock_timeout_s + 1.0, waits  # queued at most about lock_timeout
    finally:
        holder.rollback()
        holder.close()
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    proc.stderr.close()
    assert scalar(database_url, "SELECT count(*) FROM information_schema.columns WHERE table_name='t'") == 2


def _cic_set(folder: Path) -> Path:
    write_pair(
        folder, "0001_t", "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 1000);", "DROP TABLE t;"
    )
    write_pair(
        folder,
        "0002_ix",
        "-- message: index\n-- transactional: false\nCREATE INDEX CONCURRENTLY ix_t_id ON t (id);",
        "-- transactional: false\nDROP INDEX CONCURRENTLY ix_t_id;",
    )
    return folder


def test_non_transactional_revision_through_a_transaction_pooler_is_refused_before_anything_runs(
    pgbouncer_transaction, database_url, migrations
):
    url = pgbouncer_transaction.url_for(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"])
    r = run_cli("upgrade", env=_env(url, _cic_set(migrations)))
    assert r.returncode == 2, r.stderr
    assert "transaction pooler" in r.stderr and "--direct-url" in r.stderr and "Z4J_DIRECT_DATABASE_URL" in r.stderr
    assert "Traceback" not in r.stderr
    assert scalar(database_url, "SELECT to_regclass('public._yoyo_migration')") is None  # nothing at all ran
    assert scalar(database_url, "SELECT to_regclass('public.t')") is None


def test_non_transactional_revision_through_a_transaction_pooler_runs_on_the_direct_url(
    pgbouncer_transaction, database_url, migrations
):
    url = pgbouncer_transaction.url_for(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"])
    folder = _cic_set(migrations)
    r = run_cli("upgrade", env=_env(url, folder, Z4J_DIRECT_DATABASE_URL=database_url))
    assert r.returncode == 0, r.stderr
    assert applied_ids(database_url) == ["0001_t", "0002_ix"]
    assert scalar(database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_t_id'::regclass") is True
    r = run_cli("downgrade", "--to", "base", "--direct-url", database_url, env=_env(url, folder))
    assert r.returncode == 0, r.stderr
    assert scalar(database_url, "SELECT to_regclass('public.t')") is None
    assert _advisory_locks(database_url) == 0


def test_non_transactional_revision_through_a_session_pooler_needs_no_direct_url(
    pgbouncer_session, database_url, migrations
):
    url = pgbouncer_session.url_for(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"])
    r = run_cli("upgrade", env=_env(url, _cic_set(migrations)))
    assert r.returncode == 0, r.stderr
    assert scalar(database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_t_id'::regclass") is True
    assert _advisory_locks(database_url) == 0


def test_status_through_the_pooler_names_a_holder_that_holds_the_lock_on_another_connection(
    pgbouncer_transaction, database_url, migrations
):
    url = pgbouncer_transaction.url_for(psycopg.conninfo.conninfo_to_dict(database_url)["dbname"])
    write_pair(migrations, "0001_t", "CREATE TABLE t (id int);", "DROP TABLE t;")
    assert run_cli("upgrade", env=_env(url, migrations)).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("public"),))
        pid = holder.info.backend_pid
        report = z4j_migrate.status(database_url=url, migrations_dir=migrations)
        assert report.lock_holder is not None and report.lock_holder.pid == pid


# --------------------------------------------------------------------------- standby


def _replicated(pg_server, standby, migrations: Path, *, null_digest: bool) -> tuple[str, str, str]:
    name = pg_server.create_database("stby_")
    primary = pg_server.url_for(name)
    write_pair(migrations, "0001_t", "CREATE TABLE t (id int);", "DROP TABLE t;")
    assert run_cli("upgrade", env=_env(primary, migrations)).returncode == 0
    if null_digest:  # what a run killed on the primary by an older release left behind
        query(primary, "UPDATE _z4j_migrate_head SET digest = NULL")
    standby.wait_for_replay()
    return name, primary, standby.url_for(name)


@pytest.mark.parametrize("null_digest", [False, True], ids=["valid-digest", "null-digest"])
def test_a_no_op_on_a_hot_standby_succeeds(pg_server, standby, migrations, null_digest):
    name, primary, replica = _replicated(pg_server, standby, migrations, null_digest=null_digest)
    try:
        assert scalar(replica, "SELECT pg_is_in_recovery()") is True
        r = run_cli("upgrade", env=_env(replica, migrations))
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        assert z4j_migrate.upgrade(database_url=replica, migrations_dir=migrations).applied == ()
        digest = scalar(primary, "SELECT digest IS NULL FROM _z4j_migrate_head")
        assert digest is null_digest  # the standby repaired nothing (it cannot); the primary's next run will
    finally:
        pg_server.drop_database(name)


def test_pending_work_on_a_hot_standby_gets_its_own_code_and_the_fix(pg_server, standby, migrations):
    name, primary, replica = _replicated(pg_server, standby, migrations, null_digest=False)
    try:
        write_pair(migrations, "0002_u", "CREATE TABLE u (id int);", "DROP TABLE u;")
        r = run_cli("upgrade", env=_env(replica, migrations))
        assert r.returncode == 11, r.stderr
        assert "read-only" in r.stderr and "hot standby" in r.stderr and "target_session_attrs=read-write" in r.stderr
        assert "Traceback" not in r.stderr
        with pytest.raises(z4j_migrate.Z4jMigrateError) as info:
            z4j_migrate.upgrade(database_url=replica, migrations_dir=migrations)
        assert info.value.exit_code == 11
        assert applied_ids(primary) == ["0001_t"]
    finally:
        pg_server.drop_database(name)


def test_default_transaction_read_only_gets_the_read_only_code(database_url, migrations):
    write_pair(migrations, "0001_t", "CREATE TABLE t (id int);", "DROP TABLE t;")
    query(
        database_url,
        "ALTER DATABASE "
        + psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
        + " SET default_transaction_read_only = on",
    )
    r = run_cli("upgrade", env=_env(database_url, migrations))
    assert r.returncode == 11 and "default_transaction_read_only" in r.stderr, r.stderr


def test_a_multi_host_url_listing_the_standby_first_migrates_the_primary(pg_server, standby, migrations):
    name, primary, _replica = _replicated(pg_server, standby, migrations, null_digest=False)
    try:
        write_pair(migrations, "0002_u", "CREATE TABLE u (id int);", "DROP TABLE u;")
        primary_port = psycopg.conninfo.conninfo_to_dict(primary)["port"]
        url = f"postgresql://postgres@127.0.0.1:{standby.port},127.0.0.1:{primary_port}/{name}?target_session_attrs=read-write"
        r = run_cli("upgrade", env=_env(url, migrations))
        assert r.returncode == 0, r.stderr
        assert applied_ids(primary) == ["0001_t", "0002_u"]
    finally:
        pg_server.drop_database(name)
