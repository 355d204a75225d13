"""The thin CLI against a real PostgreSQL: each defect of the "thin CLI" issue, one test each."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psycopg
import pytest
from helpers import applied_ids, query, run_cli, scalar, write_pair

import z4j_migrate
from z4j_migrate.lock import lock_key

THREE = [
    ("0001_users", "CREATE TABLE users (id bigint PRIMARY KEY);", "DROP TABLE users;"),
    ("0002_posts", "CREATE TABLE posts (id bigint PRIMARY KEY);", "DROP TABLE posts;"),
    ("0003_posts_ix", "CREATE INDEX ix_posts_id ON posts (id);", "DROP INDEX ix_posts_id;"),
]


@pytest.fixture
def env(database_url, migrations):
    for rev_id, up, down in THREE:
        write_pair(migrations, rev_id, up, down)
    return {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}


def test_each_applied_and_rolled_back_revision_is_printed_once(env):
    r = run_cli("upgrade", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("applied 0001_users (") == 1 and r.stdout.count("applied 0003_posts_ix (") == 1
    assert "applied" not in r.stderr, r.stderr  # the library's log line of the same event is not repeated
    r = run_cli("downgrade", "--to", "1", "-y", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("rolled back 0003_posts_ix (") == 1 and "rolled back" not in r.stderr, r.stderr
    assert applied_ids(env["Z4J_DATABASE_URL"]) == ["0001_users"]


@pytest.mark.parametrize("flag", ["--lock-timeout", "--statement-lock-timeout"])
def test_a_timeout_of_zero_stays_zero(env, flag):
    """`--lock-timeout 0` against a held lock fails at once (it used to wait the default 60 s); a
    `--statement-lock-timeout 0` is PostgreSQL's lock_timeout = 0 (it used to become 5 s)."""
    url = env["Z4J_DATABASE_URL"]
    if flag == "--lock-timeout":
        with psycopg.connect(url, autocommit=True, application_name="holder") as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("public"),))
            started = time.monotonic()
            r = run_cli("-q", "--database-url", url, "upgrade", "--lock-timeout", "0", env=env)
            took = time.monotonic() - started
        assert r.returncode == 6, r.stderr
        assert took < 10 and "holder" in r.stderr
        assert applied_ids(url) == []
        return
    write_pair(
        Path(env["Z4J_MIGRATIONS_DIR"]),
        "0004_show",
        "CREATE TABLE shown AS SELECT current_setting('lock_timeout') AS v;",
        "DROP TABLE shown;",
    )
    r = run_cli(flag, "0", env=env)
    assert r.returncode == 0, r.stderr
    assert scalar(url, "SELECT v FROM shown") == "0"


def test_revisions_are_named_by_number_on_every_command(env):
    url = env["Z4J_DATABASE_URL"]
    r = run_cli("-q", "--database-url", url, "--migrations-dir", env["Z4J_MIGRATIONS_DIR"], "upgrade", "--to", "2")
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    assert applied_ids(url) == ["0001_users", "0002_posts"]
    assert run_cli("upgrade", "--to", "000003", env=env).returncode == 0
    assert run_cli("downgrade", "--to", "0001", "--yes", env=env).returncode == 0
    assert applied_ids(url) == ["0001_users"]
    assert run_cli("upgrade", "--to", "0003_posts_ix", env=env).returncode == 0
    with open(f"{env['Z4J_MIGRATIONS_DIR']}/0003_posts_ix.down.sql", "w") as f:
        f.write("DROP INDEX IF EXISTS ix_posts_id;\n")
    for ref in ("362", "000362"):
        r = run_cli("accept", ref, env=env)
        assert r.returncode == 2 and f"accept: {ref} is not a revision" in r.stderr, r.stderr
    r = run_cli("accept", "3", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "accepted the current files of 0003_posts_ix\n"
    with open(f"{env['Z4J_MIGRATIONS_DIR']}/0002_posts.down.sql", "w") as f:
        f.write("DROP TABLE IF EXISTS posts;\n")
    assert run_cli("accept", "0002", env=env).returncode == 0
    assert run_cli("status", "--exit-code", env=env).returncode == 0


def test_resolve_takes_a_revision_number(env):
    url = env["Z4J_DATABASE_URL"]
    write_pair(
        Path(env["Z4J_MIGRATIONS_DIR"]),
        "0009_two_steps",
        "-- message: two steps\n-- transactional: false\nCREATE TABLE a (id int);\nCREATE TABLE b (id nosuchtype);\n",
        "DROP TABLE IF EXISTS b;\nDROP TABLE IF EXISTS a;\n",
    )
    assert run_cli("upgrade", env=env).returncode == 8
    query(url, "CREATE TABLE b (id int)")  # the operator finishes it by hand
    r = run_cli("resolve", "9", "--applied", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "resolved 0009_two_steps as applied\n"
    assert applied_ids(url)[-1] == "0009_two_steps"


def test_status_json_durations_have_three_decimals_at_most(env):
    url = env["Z4J_DATABASE_URL"]
    z4j_migrate.upgrade(database_url=url, migrations_dir=env["Z4J_MIGRATIONS_DIR"])
    query(url, "UPDATE _z4j_migrate_revision SET duration_ms = 1.4909999999999999 + 1e-9")
    r = run_cli("status", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert [row["duration_ms"] for row in json.loads(r.stdout)["revisions"]] == [1.491] * 3
    assert "1.490999" not in r.stdout and "1.491000" not in r.stdout
