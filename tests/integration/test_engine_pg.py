"""The core engine against a real PostgreSQL: every promise of the core issue, one test each."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from helpers import applied_ids, query, run_cli, scalar, state_fingerprint, tables, write_pair

import z4j_migrate
from z4j_migrate.errors import (
    ConfigError,
    DriftError,
    IrreversibleRevision,
    PreflightFailed,
    RevisionFailed,
    RevisionFileError,
)

MINIMAL = Path(__file__).resolve().parent.parent / "fixtures" / "minimal"

THREE = [
    ("0001_users", "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);", "DROP TABLE users;"),
    (
        "0002_posts",
        "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users ON DELETE CASCADE);",
        "DROP TABLE posts;",
    ),
    ("0003_posts_ix", "CREATE INDEX ix_posts_user ON posts (user_id);", "DROP INDEX ix_posts_user;"),
]


def fill(folder: Path, revisions=THREE) -> Path:
    for rid, up, down in revisions:
        write_pair(folder, rid, up, down)
    return folder


def install_ddl_recorder(url: str) -> None:
    """An event trigger that records every DDL command: proof from the server that none ran."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE SCHEMA audit; CREATE TABLE audit.ddl (tag text, at timestamptz DEFAULT now());"
            "CREATE FUNCTION audit.rec() RETURNS event_trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO audit.ddl (tag) VALUES (tg_tag); END $$;"
            "CREATE EVENT TRIGGER rec_ddl ON ddl_command_start EXECUTE FUNCTION audit.rec();"
        )


def test_upgrade_from_empty_then_noop_sends_no_ddl(database_url, migrations):
    fill(migrations)
    result = z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert [r.id for r in result.applied] == ["0001_users", "0002_posts", "0003_posts_ix"]
    assert tables(database_url) == {"users", "posts"}
    assert applied_ids(database_url) == ["0001_users", "0002_posts", "0003_posts_ix"]
    # yoyo's own identity: sha256 of the id, so stock `yoyo list` reads our rows.
    from yoyo.migrations import get_migration_hash

    hashes = {r[0] for r in query(database_url, "SELECT migration_hash FROM _yoyo_migration")}
    assert hashes == {get_migration_hash(i) for i in applied_ids(database_url)}
    assert scalar(database_url, "SELECT max(version) FROM _yoyo_version") == 2

    install_ddl_recorder(database_url)
    again = z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert again.applied == ()
    assert scalar(database_url, "SELECT count(*) FROM audit.ddl") == 0


def test_checksums_and_down_sql_are_stored(database_url, migrations):
    fill(migrations)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    rows = query(
        database_url,
        "SELECT migration_id, checksum_algorithm, up_checksum, down_sql FROM _z4j_migrate_revision ORDER BY 1",
    )
    from z4j_migrate.revisions import discover

    revs = discover(migrations).by_id()
    assert [r[0] for r in rows] == sorted(revs) and rows
    for rid, algo, up_sum, down_sql in rows:
        assert algo == "sha256"
        assert up_sum == revs[rid].up.checksum
        assert down_sql == revs[rid].down.text


def test_downgrade_to_revision_by_steps_and_base_then_reupgrade(database_url, migrations):
    fill(migrations)
    (migrations / "z4j-migrate.toml").write_text('extensions = ["pgcrypto", "citext", "pg_trgm"]\n')
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    exts = "SELECT extname FROM pg_extension WHERE extname IN ('pgcrypto','citext','pg_trgm') ORDER BY 1"
    assert [r[0] for r in query(database_url, exts)] == ["citext", "pg_trgm", "pgcrypto"]

    result = z4j_migrate.downgrade(database_url=database_url, migrations_dir=migrations, to="0001_users")
    assert [r.id for r in result.rolled_back] == ["0003_posts_ix", "0002_posts"]
    assert tables(database_url) == {"users"} and applied_ids(database_url) == ["0001_users"]

    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    z4j_migrate.downgrade(database_url=database_url, migrations_dir=migrations, steps=1)
    assert applied_ids(database_url) == ["0001_users", "0002_posts"]
    assert scalar(database_url, "SELECT to_regclass('ix_posts_user')") is None

    z4j_migrate.downgrade(database_url=database_url, migrations_dir=migrations, to="base")
    assert tables(database_url) == set() and applied_ids(database_url) == []
    assert [r[0] for r in query(database_url, exts)] == ["citext", "pg_trgm", "pgcrypto"]
    log = query(database_url, "SELECT operation, count(*) FROM _yoyo_log GROUP BY 1 ORDER BY 1")
    assert log == [("apply", 5), ("rollback", 5)]

    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert tables(database_url) == {"users", "posts"}


def test_failing_revision_leaves_no_trace_and_names_the_file(database_url, migrations):
    fill(migrations, THREE[:1])
    write_pair(
        migrations,
        "0002_broken",
        "CREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\nSELECT * FROM no_such_table;\n",
        "DROP TABLE half;",
    )
    fill(migrations, THREE[2:])
    with pytest.raises(RevisionFailed) as info:
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert "0002_broken.up.sql:4:" in str(info.value)  # line 4: the header line shifts it by one
    assert "no_such_table" in str(info.value)
    assert tables(database_url) == {"users"}
    assert applied_ids(database_url) == ["0001_users"]
    assert scalar(database_url, "SELECT count(*) FROM _yoyo_log WHERE migration_id = '0002_broken'") == 0

    r = run_cli("upgrade", env={"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)})
    assert r.returncode == 1
    assert "0002_broken.up.sql" in r.stderr and "Traceback" not in r.stderr


TRICKY = (
    'CREATE TABLE tricky (id int, "begin" int, commit text);\n'
    "CREATE FUNCTION semi(a text) RETURNS text LANGUAGE plpgsql AS $body$\n"
    "BEGIN\n  RETURN a || ';' || $x$;$x$;\nEND;\n$body$;\n"
    "DO $$ BEGIN INSERT INTO tricky VALUES (1, 2, 'x;y'); END $$;\n"
    "CREATE FUNCTION atomic_one() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n"
    "COMMENT ON TABLE tricky IS 'it''s; fine';\n"
    "INSERT INTO tricky (id, commit) SELECT 2, '100%' WHERE 'a%b' LIKE 'a%';\n"
    "SELECT id, commit FROM tricky ORDER BY id;\n"
)


def test_tricky_sql_applies_whole(database_url, migrations, capsys):
    write_pair(
        migrations, "0001_tricky", TRICKY, "DROP FUNCTION atomic_one();\nDROP FUNCTION semi(text);\nDROP TABLE tricky;"
    )
    bom_crlf = "\ufeff-- message: crlf file\r\n\r\nCREATE TABLE crlf (id int);\r\nINSERT INTO crlf VALUES (1);\r\n"
    (migrations / "0002_crlf.up.sql").write_bytes(bom_crlf.encode())
    (migrations / "0002_crlf.down.sql").write_bytes("\ufeffDROP TABLE crlf;\r\n".encode())
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert "100%" not in capsys.readouterr().out  # a SELECT in a revision prints nothing (yoyo would)
    assert scalar(database_url, "SELECT semi('a')") == "a;;"
    assert query(database_url, 'SELECT id, "begin", commit FROM tricky') == [(1, 2, "x;y"), (2, None, "100%")]
    assert scalar(database_url, "SELECT atomic_one()") == 1
    assert scalar(database_url, "SELECT count(*) FROM crlf") == 1
    z4j_migrate.downgrade(database_url=database_url, migrations_dir=migrations, to="base")
    assert tables(database_url) == set()


def test_non_transactional_revision_runs_concurrently_and_reports_partial(database_url, migrations):
    fill(migrations, THREE[:2])
    write_pair(
        migrations,
        "0003_cic",
        "-- message: concurrent index\n-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY ix_users_email ON users (email);\n"
        "CREATE UNIQUE INDEX CONCURRENTLY ux_users_email ON users (email);\n"
        "CREATE TABLE after_cic (id int);\n",
        "DROP TABLE IF EXISTS after_cic;\nDROP INDEX CONCURRENTLY IF EXISTS ux_users_email;\n"
        "DROP INDEX CONCURRENTLY IF EXISTS ix_users_email;\n",
    )
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations, to="2")
    query(database_url, "INSERT INTO users VALUES (1, 'a@x'), (2, 'a@x')")  # the unique build will fail
    with pytest.raises(z4j_migrate.IncompleteRevision) as info:
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    message = str(info.value)
    assert "0003_cic.up.sql:4" in message and "statement 2 of 3" in message
    assert "ux_users_email" in message  # the INVALID index left behind is named
    report = z4j_migrate.status(database_url=database_url, migrations_dir=migrations)
    partial = [r for r in report.revisions if r.state == "partial"]
    assert [r.id for r in partial] == ["0003_cic"] and "statement 2" in partial[0].detail
    assert report.invalid_indexes == ("public.ux_users_email",)
    assert applied_ids(database_url) == ["0001_users", "0002_posts"]
    # The operator does what the message says, then resumes.
    query(database_url, "DELETE FROM users WHERE id = 2")
    query(database_url, "DROP INDEX CONCURRENTLY IF EXISTS public.ux_users_email")
    result = z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert [r.id for r in result.applied] == ["0003_cic"]
    assert scalar(database_url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
    assert {"after_cic"} <= tables(database_url)
    assert scalar(database_url, "SELECT count(*) FROM _z4j_migrate_progress") == 0
    z4j_migrate.downgrade(database_url=database_url, migrations_dir=migrations, steps=1)
    assert scalar(database_url, "SELECT to_regclass('ix_users_email')") is None


def test_edited_applied_revision_stops_the_run(database_url, migrations):
    fill(migrations)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    path = migrations / "0002_posts.up.sql"
    path.write_text(path.read_text() + "-- sneaky edit\n")
    write_pair(migrations, "0004_more", "CREATE TABLE more (id int);", "DROP TABLE more;")
    before = state_fingerprint(database_url)
    with pytest.raises(DriftError, match="0002_posts.up.sql"):
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert state_fingerprint(database_url) == before
    report = z4j_migrate.status(database_url=database_url, migrations_dir=migrations)
    assert {r.id: r.state for r in report.revisions}["0002_posts"] == "edited"
    r = run_cli("upgrade", "--database-url", database_url, "--migrations-dir", str(migrations))
    assert r.returncode == 5 and "0002_posts.up.sql" in r.stderr


def test_database_ahead_of_code(database_url, migrations, tmp_path, caplog):
    fill(migrations)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    older = tmp_path / "older"
    older.mkdir()
    fill(older, THREE[:2])
    report = z4j_migrate.status(database_url=database_url, migrations_dir=older)
    assert {r.id: r.state for r in report.revisions}["0003_posts_ix"] == "unknown"
    with caplog.at_level("WARNING", logger="z4j_migrate"):
        result = z4j_migrate.migrate_on_startup(database_url, older)
    assert result.unknown == ("0003_posts_ix",) and result.applied == ()
    assert "0003_posts_ix" in caplog.text
    # An older release can still step the schema back, with the down SQL stored at apply time.
    z4j_migrate.downgrade(database_url=database_url, migrations_dir=older, steps=1)
    assert scalar(database_url, "SELECT to_regclass('ix_posts_user')") is None
    assert applied_ids(database_url) == ["0001_users", "0002_posts"]
    # A new revision numbered below an applied one is out of order.
    fill(migrations)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    write_pair(older, "0002_posts", THREE[1][1], THREE[1][2])
    write_pair(older, "0003_other", "CREATE TABLE other (id int);", "DROP TABLE other;")
    with pytest.raises(DriftError, match="0003_other would be applied out of order"):
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=older)


def test_irreversible_and_preflight_refusals_change_nothing(database_url, migrations):
    fill(migrations, THREE[:1])
    write_pair(
        migrations,
        "0002_flag",
        "ALTER TABLE users ADD COLUMN vip boolean NOT NULL DEFAULT false;",
        "-- preflight: SELECT NOT EXISTS (SELECT 1 FROM users WHERE vip)\nALTER TABLE users DROP COLUMN vip;",
    )
    write_pair(
        migrations,
        "0003_gone",
        "CREATE TABLE scratch (id int);",
        "-- irreversible: scratch data cannot be recreated; restore the pre-upgrade backup\n",
    )
    write_pair(migrations, "0004_last", "CREATE TABLE last (id int);", "DROP TABLE last;")
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    query(database_url, "INSERT INTO users VALUES (1, 'a', true)")
    before = state_fingerprint(database_url)

    with pytest.raises(IrreversibleRevision, match=r"0003_gone is irreversible: scratch data.*docs/backup-restore.md"):
        z4j_migrate.downgrade(database_url=database_url, migrations_dir=migrations, to="base")
    assert state_fingerprint(database_url) == before
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
    r = run_cli("downgrade", "--to", "base", "--yes", env=env)
    assert r.returncode == 4 and "backup-restore" in r.stderr and "Traceback" not in r.stderr
    assert state_fingerprint(database_url) == before

    # Preflight: remove the irreversible one from the path, keep the data guard.
    (migrations / "0003_gone.down.sql").write_text("DROP TABLE scratch;\n")
    query(
        database_url,
        "UPDATE _z4j_migrate_revision SET down_checksum = %s WHERE migration_id = '0003_gone'",
        (z4j_migrate.revisions.discover(migrations).by_id()["0003_gone"].down.checksum,),
    )
    before = state_fingerprint(database_url)
    with pytest.raises(PreflightFailed, match="0002_flag.down.sql:1"):
        z4j_migrate.downgrade(database_url=database_url, migrations_dir=migrations, to="0001")
    assert state_fingerprint(database_url) == before  # 0004 and 0003 were not undone either
    r = run_cli("downgrade", "--to", "0001", env=env)
    assert r.returncode == 4 and "preflight" in r.stderr
    assert state_fingerprint(database_url) == before
    query(database_url, "UPDATE users SET vip = false")
    z4j_migrate.downgrade(database_url=database_url, migrations_dir=migrations, to="0001")
    assert applied_ids(database_url) == ["0001_users"]


def test_auto_migrate_switch(database_url, migrations, monkeypatch):
    fill(migrations)
    monkeypatch.setenv("Z4J_AUTO_MIGRATE", "FALSE")
    assert z4j_migrate.migrate_on_startup(database_url, migrations).skipped
    assert scalar(database_url, "SELECT to_regclass('public._yoyo_migration')") is None
    monkeypatch.setenv("Z4J_AUTO_MIGRATE", "maybe")
    with pytest.raises(ConfigError, match="Z4J_AUTO_MIGRATE='maybe'"):
        z4j_migrate.migrate_on_startup(database_url, migrations)
    monkeypatch.setenv("Z4J_AUTO_MIGRATE", "True")
    monkeypatch.setenv("Z4J_DATABASE_URL", database_url)
    monkeypatch.setenv("Z4J_MIGRATIONS_DIR", str(migrations))
    assert len(z4j_migrate.migrate_on_startup().applied) == 3


@pytest.mark.parametrize("scheme", ["postgresql://", "postgres://", "postgresql+psycopg://", "kv"])
def test_url_forms(database_url, migrations, scheme):
    fill(migrations, THREE[:1])
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    if scheme == "kv":
        url = psycopg.conninfo.make_conninfo(**info)
    else:
        url = f"{scheme}{info.get('user', '')}@{info['host']}:{info['port']}/{info['dbname']}"
    z4j_migrate.upgrade(database_url=url, migrations_dir=migrations)
    assert applied_ids(database_url) == ["0001_users"]


def test_lock_holder_makes_waiters_time_out_naming_it(database_url, migrations):
    fill(migrations)
    from z4j_migrate.lock import lock_key

    with psycopg.connect(database_url, autocommit=True, application_name="deploy-holder") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("public"),))
        pid = holder.info.backend_pid
        started = time.monotonic()
        r = run_cli(
            "upgrade",
            "--lock-timeout",
            "1",
            env={"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)},
        )
        assert time.monotonic() - started < 15
        assert r.returncode == 6, r.stderr
        assert f"pid {pid}" in r.stderr and "deploy-holder" in r.stderr
        report = z4j_migrate.status(database_url=database_url, migrations_dir=migrations)
        assert report.lock_holder is not None and report.lock_holder.pid == pid
    assert tables(database_url) == set()
    assert applied_ids(database_url) == []


def test_table_lock_timeout_retries_then_names_the_table(database_url, migrations):
    fill(migrations, THREE[:1])
    write_pair(
        migrations, "0002_alter", "ALTER TABLE users ADD COLUMN nick text;", "ALTER TABLE users DROP COLUMN nick;"
    )
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations, to="1")
    with psycopg.connect(database_url, application_name="busy-app") as app:
        app.execute("SELECT * FROM users")  # holds ACCESS SHARE until the transaction ends
        started = time.monotonic()
        with pytest.raises(z4j_migrate.LockTimeout, match="table users held by pid .*busy-app"):
            z4j_migrate.upgrade(
                database_url=database_url, migrations_dir=migrations, statement_lock_timeout_s=0.2, lock_retries=2
            )
        assert time.monotonic() - started < 10
        app.rollback()
    assert "nick" not in {
        r[0] for r in query(database_url, "SELECT attname FROM pg_attribute WHERE attrelid = 'users'::regclass")
    }
    # Once the application lets go, the same run succeeds.
    with psycopg.connect(database_url, application_name="brief-app") as app:
        app.execute("SELECT * FROM users")
        import threading

        threading.Timer(0.5, app.rollback).start()
        z4j_migrate.upgrade(
            database_url=database_url, migrations_dir=migrations, statement_lock_timeout_s=0.2, lock_retries=5
        )
    assert applied_ids(database_url) == ["0001_users", "0002_alter"]


def _kill_trial_dir(folder: Path) -> Path:
    for i in range(1, 7):
        write_pair(
            folder,
            f"{i:04d}_step{i}",
            f"CREATE TABLE k{i} (id int);\nSELECT pg_sleep(0.04);\nINSERT INTO k{i} VALUES ({i});\n",
            f"DROP TABLE k{i};",
        )
    return folder


def _wait_for_orphaned_backend(url: str, timeout: float = 30) -> None:
    """A killed client's backend finishes the query message it had received (a revision travels as one
    message: BEGIN, SQL, bookkeeping, COMMIT) and only then notices the client is gone. Wait it out."""
    deadline = time.monotonic() + timeout
    while scalar(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'z4j-migrate' AND pid <> pg_backend_pid()",
    ):
        assert time.monotonic() < deadline, "the killed client's backend is still alive"
        time.sleep(0.02)


def _assert_consistent(url: str) -> None:
    """Each revision: its table exists exactly when its bookkeeping rows exist."""
    ids = set(applied_ids(url))
    have = tables(url)
    ours = set()
    if scalar(url, "SELECT to_regclass('public._z4j_migrate_revision')"):
        ours = {r[0] for r in query(url, "SELECT migration_id FROM _z4j_migrate_revision")}
    for i in range(1, 7):
        rid = f"{i:04d}_step{i}"
        assert (f"k{i}" in have) == (rid in ids), (rid, have, ids)
        if ours or ids:
            assert (rid in ours) == (rid in ids), (rid, ours, ids)
    ordered = sorted(ids)
    assert ordered == [f"{i:04d}_step{i}" for i in range(1, len(ordered) + 1)]  # a prefix: revision boundary


def test_kill_9_at_random_moments_leaves_a_revision_boundary(database_url, migrations):
    _kill_trial_dir(migrations)
    rng = random.Random(20261125)
    url = database_url
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    env.update(Z4J_DATABASE_URL=url, Z4J_MIGRATIONS_DIR=str(migrations))
    for _trial in range(20):
        if applied_ids(url):
            z4j_migrate.downgrade(database_url=url, migrations_dir=migrations, to="base")
        proc = subprocess.Popen(
            [sys.executable, "-m", "z4j_migrate"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.15, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _wait_for_orphaned_backend(url)
        _assert_consistent(url)
        z4j_migrate.upgrade(database_url=url, migrations_dir=migrations)
        assert len(applied_ids(url)) == 6


def test_eight_processes_at_once_apply_each_revision_once(database_url, migrations):
    fill(migrations, THREE[:2])
    write_pair(migrations, "0003_slow", "SELECT pg_sleep(0.3);\nCREATE TABLE slow (id int);", "DROP TABLE slow;")
    write_pair(
        migrations,
        "0004_cic",
        "-- message: cic\n-- transactional: false\nCREATE INDEX CONCURRENTLY ix_posts_u ON posts (user_id);",
        "DROP INDEX CONCURRENTLY ix_posts_u;",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    env.update(Z4J_DATABASE_URL=database_url, Z4J_MIGRATIONS_DIR=str(migrations))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "z4j_migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [o[1] for o in outs]
    counts = dict(
        query(database_url, "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' GROUP BY 1")
    )
    assert counts == {"0001_users": 1, "0002_posts": 1, "0003_slow": 1, "0004_cic": 1}
    assert scalar(database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_posts_u'::regclass") is True


def test_password_never_appears_in_any_output(pg_server, database_url, migrations, caplog):
    secret = "Zq9xSecretPw77"
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    good = f"postgresql://{info.get('user', 'postgres')}:{secret}@{info['host']}:{info['port']}/{info['dbname']}"
    bad_db = f"postgresql://{info.get('user', 'postgres')}:{secret}@{info['host']}:{info['port']}/no_such_db_x"
    bad_host = f"postgresql://u:{secret}@no-such-host.invalid:5432/x"
    kv = f"host={info['host']} port={info['port']} dbname=no_such_db_y password={secret}"
    fill(migrations)
    write_pair(migrations, "0004_fail", "SELECT * FROM nope;", "SELECT 1;")
    outputs = []
    for url in (good, bad_db, bad_host, kv, "mysql://u:" + secret + "@h/x"):
        for args in (
            ["upgrade"],
            ["status"],
            ["status", "--json"],
            ["-v", "upgrade"],
            ["downgrade", "--to", "base", "--yes"],
            ["upgrade", "--dry-run"],
            ["--status"],
        ):
            r = run_cli(*args, "--database-url", url, "--migrations-dir", str(migrations))
            outputs.append(r.stdout + r.stderr)
    assert any("***" in o for o in outputs)
    leaked = [o for o in outputs if secret in o]
    assert not leaked, leaked[0]
    # Library: exceptions raised to the caller and log records.
    with caplog.at_level("DEBUG", logger="z4j_migrate"):
        # Each fails: 0004_fail's SQL, an unknown database, an unknown host.
        for url, error in (
            (good, z4j_migrate.RevisionFailed),
            (bad_db, z4j_migrate.ConnectionFailed),
            (bad_host, z4j_migrate.ConnectionFailed),
        ):
            with pytest.raises(error) as raised:
                z4j_migrate.upgrade(database_url=url, migrations_dir=migrations)
            assert secret not in str(raised.value) and secret not in repr(raised.value.args)
    assert secret not in caplog.text


@pytest.mark.parametrize(
    ("args", "env", "code", "needle"),
    [
        (["upgrade"], {}, 2, "Z4J_DATABASE_URL"),
        (["upgrade", "--database-url", "mysql://x@y/z"], {}, 2, "unsupported URL scheme 'mysql'"),
        (["upgrade", "--lock-timeout", "abc"], {}, 2, "--lock-timeout"),
        (["upgrade", "--wait", "-1"], {"Z4J_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}, 2, "--wait"),
        (["downgrade"], {"Z4J_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}, 2, "--to REV|base or --steps N"),
        (["frobnicate"], {}, 2, "No such command"),
        (["upgrade"], {"Z4J_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}, 7, "cannot connect"),
        (
            ["upgrade", "--migrations-dir", "/nonexistent/dir"],
            {"Z4J_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"},
            2,
            "/nonexistent/dir does not exist",
        ),
    ],
)
def test_cli_errors_are_one_paragraph_with_documented_codes(args, env, code, needle):
    env = {"Z4J_MIGRATIONS_DIR": str(MINIMAL), **env}
    r = run_cli(*args, env=env)
    assert r.returncode == code, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


def test_wait_retries_until_deadline_then_fails_clearly():
    started = time.monotonic()
    r = run_cli(
        "upgrade",
        "--wait",
        "2",
        env={"Z4J_DATABASE_URL": "postgresql://x@127.0.0.1:1/x", "Z4J_MIGRATIONS_DIR": str(MINIMAL)},
    )
    elapsed = time.monotonic() - started
    assert r.returncode == 7 and "after retrying for 2s" in r.stderr
    assert 1.5 < elapsed < 10


def test_revision_file_errors_exit_3_and_touch_nothing(database_url, migrations):
    fill(migrations)
    write_pair(migrations, "0004_bad", "-- transactional: maybe\nSELECT 1;", "SELECT 1;")
    r = run_cli("upgrade", env={"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)})
    assert r.returncode == 3 and "0004_bad.up.sql:2" in r.stderr
    assert tables(database_url) == set()
    with pytest.raises(RevisionFileError):
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)


def test_sql_problems_in_pending_revisions_are_caught_before_anything_runs(database_url, migrations):
    fill(migrations)
    write_pair(migrations, "0004_commit", "CREATE TABLE c (id int);\nCOMMIT;", "DROP TABLE c;")
    with pytest.raises(RevisionFileError, match="0004_commit.up.sql:3"):
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert tables(database_url) == set()  # not even 0001-0003: parse everything, then run


def test_cli_status_new_and_check(database_url, migrations):
    fill(migrations)
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
    r = run_cli("--status", env=env)
    assert r.returncode == 0 and "pending    0001_users" in r.stdout
    assert run_cli(env=env).returncode == 0
    r = run_cli("status", "--json", env=env)
    import json

    data = json.loads(r.stdout)
    assert [x["state"] for x in data["revisions"]] == ["applied"] * 3 and data["current"] == "0003_posts_ix"
    r = run_cli("new", "Add posts.title column!", "--migrations-dir", str(migrations))
    assert r.returncode == 0 and (migrations / "0004_add_posts_title_column.up.sql").exists()
    r = run_cli("check", str(migrations))
    # the scaffold has no SQL yet
    assert r.returncode == 3 and "0004_add_posts_title_column.up.sql: has no SQL" in r.stdout
    (migrations / "0004_add_posts_title_column.up.sql").write_text(
        "-- message: title\nALTER TABLE posts ADD COLUMN title text;\n"
    )
    (migrations / "0004_add_posts_title_column.down.sql").write_text("ALTER TABLE posts DROP COLUMN title;\n")
    assert run_cli("check", str(migrations)).returncode == 0


def test_accept_an_edited_revision_is_audited(database_url, migrations):
    fill(migrations)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    down = migrations / "0003_posts_ix.down.sql"
    down.write_text("DROP INDEX IF EXISTS ix_posts_user;\n")
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
    assert run_cli("status", "--exit-code", env=env).returncode == 5
    r = run_cli("accept", "0003_posts_ix", env=env)
    assert r.returncode == 0, r.stderr
    stored = scalar(database_url, "SELECT down_sql FROM _z4j_migrate_revision WHERE migration_id = '0003_posts_ix'")
    assert stored == "DROP INDEX IF EXISTS ix_posts_user;\n"
    assert scalar(database_url, "SELECT count(*) FROM _yoyo_log WHERE comment LIKE 'z4j-migrate accept%%'") == 1
    assert run_cli("status", "--exit-code", env=env).returncode == 0
    assert run_cli("accept", "0002_posts", env=env).returncode == 2  # nothing to accept


def test_status_exit_code_reports_pending(database_url, migrations):
    fill(migrations)
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
    assert run_cli("status", "--exit-code", env=env).returncode == 10
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert run_cli("status", "--exit-code", env=env).returncode == 0


def test_resolve_a_stopped_non_transactional_revision(database_url, migrations):
    fill(migrations, THREE[:1])
    write_pair(
        migrations,
        "0002_two_steps",
        "-- message: two steps\n-- transactional: false\nCREATE TABLE a (id int);\nCREATE TABLE b (id nosuchtype);\n",
        "DROP TABLE IF EXISTS b;\nDROP TABLE IF EXISTS a;\n",
    )
    with pytest.raises(z4j_migrate.IncompleteRevision, match="statement 2 of 2"):
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
    r = run_cli("upgrade", env=env)
    assert r.returncode == 8 and "0002_two_steps.up.sql:4" in r.stderr
    query(database_url, "CREATE TABLE b (id int)")  # the operator finishes it by hand
    assert run_cli("resolve", "0002_two_steps", "--applied", env=env).returncode == 0
    assert applied_ids(database_url) == ["0001_users", "0002_two_steps"]
    assert scalar(database_url, "SELECT count(*) FROM _z4j_migrate_progress") == 0
    assert run_cli("resolve", "0002_two_steps", "--applied", env=env).returncode == 2
