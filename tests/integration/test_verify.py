"""`z4j-migrate verify`, the pytest plugin and its ready-made tests (issue #6).

The bundled set must verify cleanly; a set with known-bad downs must be caught,
each offender named by file and object; a throwaway downstream project uses the
plugin through its entry point, green as shipped and red with a broken down.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from helpers import REPO, applied_ids, query, run_cli, scalar, tables, write_pair

from z4j_migrate.config import BUNDLED_DIR, settings_from_env
from z4j_migrate.errors import VerificationFailed
from z4j_migrate.pytest_plugin import Z4jConfig, Z4jServer
from z4j_migrate.revisions import discover

# The ready-made tests, run here on the bundled set (z4j_server / z4j_config below).
from z4j_migrate.testing import (  # noqa: F401
    test_z4j_schema_reference,
    test_z4j_seed_round_trip,
    test_z4j_single_linear_history,
    test_z4j_upgrade_to_head,
)
from z4j_migrate.verify import verify

DOWNSTREAM = REPO / "tests" / "downstream" / "project"

BUNDLED_SEED = """
INSERT INTO projects (id, slug, name) VALUES ('00000000-0000-0000-0000-0000000000a1', 'demo', 'Demo');
INSERT INTO users (id, email, password_hash) VALUES ('00000000-0000-0000-0000-0000000000b1', 'Ops@Example.com', 'x');
INSERT INTO memberships (user_id, project_id, role)
    VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'admin');
INSERT INTO tasks (project_id, engine, task_id, name)
    VALUES ('00000000-0000-0000-0000-0000000000a1', 'celery', 't-1', 'app.tasks.send');
INSERT INTO agents (id, project_id, name, token_hash, protocol_version, framework_adapter)
    VALUES ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'w1', 'h', '1', 'django');
INSERT INTO events (project_id, agent_id, engine, kind, occurred_at)
    VALUES ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-0000000000c1', 'celery', 'task.started',
            now());
"""
BUNDLED_SMOKE = """
INSERT INTO projects (slug, name) VALUES ('smoke', 'Smoke');
DO $$ BEGIN
    IF (SELECT count(*) FROM projects WHERE slug = 'smoke') <> 1 THEN RAISE EXCEPTION 'smoke row missing'; END IF;
END $$;
"""


def scratch_databases(url: str) -> set[str]:
    return {r[0] for r in query(url, "SELECT datname FROM pg_database WHERE datname LIKE 'z4j\\_verify\\_%'")}


@pytest.fixture(scope="module")
def z4j_server(pg_server) -> Z4jServer:
    """The plugin's server, but the one this suite already runs (no second cluster): the same class."""
    return pg_server


@pytest.fixture(scope="module")
def z4j_config(tmp_path_factory) -> Z4jConfig:
    folder = tmp_path_factory.mktemp("bundled-verify")
    (folder / "seed.sql").write_text(BUNDLED_SEED, encoding="utf-8")
    (folder / "smoke.sql").write_text(BUNDLED_SMOKE, encoding="utf-8")
    return Z4jConfig(BUNDLED_DIR, folder / "seed.sql", folder / "smoke.sql", REPO / "docs" / "schema.md")


# ------------------------------------------------------------------ bundled set


def test_verify_passes_on_the_bundled_set(pg_server, z4j_config):
    before = scratch_databases(pg_server.admin_url)
    r = run_cli(
        "verify",
        "--database-url",
        pg_server.admin_url,
        "--seed",
        str(z4j_config.seed),
        "--smoke",
        str(z4j_config.smoke),
        "--json",
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    ids = [rev.id for rev in discover(BUNDLED_DIR).revisions]
    assert report["ok"] and report["problems"] == []
    assert [(x["id"], x["status"]) for x in report["revisions"]] == [(i, "ok") for i in ids]
    assert report["round_trip"] == "ok" and report["round_trip_to"] == "base"
    assert report["scratch"] and report["server_version"].startswith(str(pg_server.major))
    assert scratch_databases(pg_server.admin_url) == before  # dropped


# --------------------------------------------------------------- known-bad downs

BASE_UP = """
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE t (id int PRIMARY KEY, a int DEFAULT 1, m mood);
CREATE FUNCTION t_touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t_touch BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION t_touch();
"""
BASE_DOWN = "DROP TABLE t;\nDROP FUNCTION t_touch();\nDROP TYPE mood;\n"

BAD_DOWNS = {
    "leftover_index": (
        "CREATE INDEX ix_t_a ON t (a);\nALTER TABLE t ADD COLUMN b int;",
        "ALTER TABLE t DROP COLUMN b;",
        "0002_leftover_index.down.sql leaves index ix_t_a on t",
    ),
    "leftover_enum_type": (
        "CREATE TYPE color AS ENUM ('red', 'green');\nALTER TABLE t ADD COLUMN c color;",
        "ALTER TABLE t DROP COLUMN c;",
        "0002_leftover_enum_type.down.sql leaves type color",
    ),
    "leftover_function": (
        "CREATE FUNCTION t_total() RETURNS bigint LANGUAGE sql AS $$ SELECT sum(a) FROM t $$;\n"
        "CREATE VIEW t_summary AS SELECT t_total() AS total;",
        "DROP VIEW t_summary;",
        "0002_leftover_function.down.sql leaves function t_total()",
    ),
    "leftover_trigger": (
        "CREATE TRIGGER t_touch_insert BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION t_touch();",
        "SELECT 1; -- forgot DROP TRIGGER",
        "0002_leftover_trigger.down.sql leaves trigger t_touch_insert on t",
    ),
    "default_not_restored": (
        "ALTER TABLE t ALTER COLUMN a SET DEFAULT 5;",
        "ALTER TABLE t ALTER COLUMN a DROP DEFAULT;",
        "0002_default_not_restored.down.sql does not restore column t.a: default changed: 1 -> NULL",
    ),
    "enum_label_not_removed": (
        "ALTER TYPE mood ADD VALUE 'meh';",
        "SELECT 1; -- a label cannot be dropped without rebuilding the type",
        "0002_enum_label_not_removed.down.sql leaves enum label 'meh' on type mood",
    ),
    "trigger_left_disabled": (
        "ALTER TABLE t DISABLE TRIGGER t_touch;",
        "SELECT 1;",
        "0002_trigger_left_disabled.down.sql does not restore trigger t_touch on t: state changed: enabled -> disabled",
    ),
    "leftover_schema": (
        "CREATE SCHEMA archive;\nCREATE TABLE archive.t_old (id int);",
        "DROP TABLE archive.t_old;",
        "0002_leftover_schema.down.sql leaves schema archive",
    ),
}


def bad_set(folder: Path, case: str) -> Path:
    up, down, _ = BAD_DOWNS[case]
    write_pair(folder, "0001_base", BASE_UP, BASE_DOWN)
    write_pair(folder, f"0002_{case}", up, down)
    write_pair(folder, "0003_after", "CREATE TABLE after_t (id int);", "DROP TABLE after_t;")
    return folder


@pytest.mark.parametrize("case", sorted(BAD_DOWNS))
def test_verify_names_each_offender(pg_server, migrations, case):
    bad_set(migrations, case)
    settings = settings_from_env(pg_server.admin_url, migrations)
    report = verify(settings)
    assert not report.ok
    [problem] = report.problems
    assert (problem.phase, problem.revision) == ("stepwise", f"0002_{case}")
    why = " (PostgreSQL cannot drop a value from an enum type" if case == "enum_label_not_removed" else ""
    [message] = problem.messages
    assert message == BAD_DOWNS[case][2] + (message[len(BAD_DOWNS[case][2]) :] if why else "")
    assert message[len(BAD_DOWNS[case][2]) :].startswith(why)
    assert [(r.id, r.status) for r in report.revisions] == [
        ("0001_base", "ok"),
        (f"0002_{case}", "failed"),
        ("0003_after", "not run"),  # it stops at the first mismatch
    ]
    with pytest.raises(VerificationFailed, match="verification failed at 0002_") as info:
        report.raise_for_problems()
    assert info.value.exit_code == 9 and info.value.differences == [message]


def test_cli_verify_exit_code_json_and_scratch_dropped_on_failure(pg_server, migrations):
    bad_set(migrations, "leftover_index")
    before = scratch_databases(pg_server.admin_url)
    r = run_cli("verify", "--database-url", pg_server.admin_url, "--migrations-dir", str(migrations))
    assert r.returncode == 9, r.stdout + r.stderr
    assert "ok            0001_base" in r.stdout
    assert "0002_leftover_index.down.sql leaves index ix_t_a on t" in r.stdout
    assert "error: verification failed at 0002_leftover_index: 0002_leftover_index.down.sql leaves index" in r.stderr
    r = run_cli("verify", "--database-url", pg_server.admin_url, "--migrations-dir", str(migrations), "--json")
    assert r.returncode == 9
    report = json.loads(r.stdout)
    assert report["ok"] is False and report["problems"][0]["differences"] == [
        {"kind": "index", "name": "ix_t_a on t", "change": "left behind", "detail": "", "severity": "error"}
    ]
    assert scratch_databases(pg_server.admin_url) == before


def test_round_trip_with_seed_data_and_smoke(pg_server, migrations, tmp_path):
    write_pair(migrations, "0001_base", "CREATE TABLE t (id int PRIMARY KEY, a int NOT NULL);", "DROP TABLE t;")
    # Correct on an empty table; with the seed's NULL in a, the down cannot bring NOT NULL back.
    write_pair(
        migrations,
        "0002_a_optional",
        "ALTER TABLE t ALTER COLUMN a DROP NOT NULL;",
        "ALTER TABLE t ALTER a SET NOT NULL;",
    )
    seed, smoke = tmp_path / "seed.sql", tmp_path / "smoke.sql"
    seed.write_text("INSERT INTO t VALUES (1, NULL);\n")
    smoke.write_text("INSERT INTO t VALUES (2, 2);\nSELECT 1 / 0;\n")
    settings = settings_from_env(pg_server.admin_url, migrations)

    report = verify(settings, smoke=smoke)  # no seed: the downs are right on empty tables
    assert [r.status for r in report.revisions] == ["ok", "ok"] and report.round_trip == "ok"
    assert report.problems[0].phase == "smoke"
    assert report.problems[0].messages == [f"smoke file {smoke}:2 failed: division by zero"]

    report = verify(settings, seed=seed)
    assert report.round_trip == "failed" and report.problems[0].error == "RevisionFailed"
    [message] = report.problems[0].messages
    assert message.startswith("downgrade from head to base with the seed data failed: ")
    assert "0002_a_optional.down.sql: " in message and 'column "a" of relation "t" contains null values' in message

    seed.write_text("INSERT INTO t VALUES (1, 1);\n")
    smoke.write_text("INSERT INTO t VALUES (2, NULL);\n")
    report = verify(settings, seed=seed, smoke=smoke)
    assert report.ok and report.round_trip == "ok", report.problems


def test_round_trip_names_what_is_left_at_base(pg_server, migrations):
    # Each down is right on its own; dropping t CASCADE in 0001 takes the view of 0002
    # with it, but not the function 0002 created: the range finds it, stepwise does not.
    write_pair(migrations, "0001_base", "CREATE TABLE t (id int);", "DROP TABLE t CASCADE;")
    write_pair(
        migrations,
        "0002_view",
        "CREATE FUNCTION t_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM t $$;\n"
        "CREATE VIEW t_counts AS SELECT t_count();",
        "DROP VIEW t_counts;\nDROP FUNCTION t_count();",
    )
    report = verify(settings_from_env(pg_server.admin_url, migrations))
    assert report.ok  # both are fine: SQL functions do not record their table dependency
    (migrations / "0002_view.down.sql").write_text("DROP VIEW t_counts;\n")
    write_pair(migrations, "0003_noop", "SELECT 1;", "SELECT 1;")
    report = verify(settings_from_env(pg_server.admin_url, migrations), stepwise=False)
    assert report.problems[0].messages == [
        "after downgrading to base: function t_count() left behind"  # stepwise did not run: no "created by"
    ]


def test_irreversible_revision_is_applied_and_the_round_trip_stops_there(pg_server, migrations):
    write_pair(migrations, "0001_base", "CREATE TABLE t (id int);", "DROP TABLE t;")
    write_pair(migrations, "0002_purge", "ALTER TABLE t ADD COLUMN z int;", "-- irreversible: restore a backup\n")
    write_pair(migrations, "0003_more", "CREATE INDEX ix_t_z ON t (z);", "DROP INDEX ix_t_z;")
    report = verify(settings_from_env(pg_server.admin_url, migrations))
    assert report.ok, report.problems
    assert [r.status for r in report.revisions] == ["ok", "irreversible", "ok"]
    assert report.round_trip == "ok" and report.round_trip_to == "0002_purge"


def test_no_scratch_uses_the_given_empty_database_and_refuses_a_used_one(database_url, migrations):
    write_pair(migrations, "0001_base", "CREATE TABLE t (id int);", "DROP TABLE t;")
    r = run_cli("verify", "--no-scratch", "--database-url", database_url, "--migrations-dir", str(migrations))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verified 1 revision(s)" in r.stdout
    assert applied_ids(database_url) == ["0001_base"] and tables(database_url) == {"t"}  # left at head
    r = run_cli("verify", "--no-scratch", "--database-url", database_url, "--migrations-dir", str(migrations))
    assert r.returncode == 4 and "it has revisions applied (0001_base)" in r.stderr
    query(database_url, "DROP TABLE t; DROP TABLE _yoyo_migration, _z4j_migrate_revision CASCADE;")
    query(database_url, "CREATE TABLE junk (id int)")
    r = run_cli("verify", "--no-scratch", "--database-url", database_url, "--migrations-dir", str(migrations))
    assert r.returncode == 4 and "it is not empty (table junk)" in r.stderr


def test_a_role_without_createdb_is_told_what_to_do(pg_server, database_url, migrations):
    write_pair(migrations, "0001_base", "CREATE TABLE t (id int);", "DROP TABLE t;")
    role = f"z4j_nocreatedb_{uuid.uuid4().hex[:8]}"
    query(pg_server.admin_url, f"CREATE ROLE {role} LOGIN NOCREATEDB")
    try:
        url = pg_server.url_for(scalar(database_url, "SELECT current_database()"), user=role)
        r = run_cli("verify", "--database-url", url, "--migrations-dir", str(migrations))
        assert r.returncode == 7 and "may not CREATE DATABASE" in r.stderr and "--no-scratch" in r.stderr
    finally:
        query(pg_server.admin_url, f"DROP ROLE {role}")


def test_bad_seed_path_and_malformed_revisions_fail_before_any_database_work(pg_server, migrations):
    write_pair(migrations, "0001_base", "CREATE TABLE t (id int);\nCOMMIT;", "DROP TABLE t;")
    before = scratch_databases(pg_server.admin_url)
    r = run_cli("verify", "--database-url", pg_server.admin_url, "--migrations-dir", str(migrations))
    assert r.returncode == 3 and "0001_base.up.sql:3: transaction control" in r.stderr
    (migrations / "0001_base.up.sql").write_text("-- message: t\nCREATE TABLE t (id int);\n")
    r = run_cli(
        "verify", "--database-url", pg_server.admin_url, "--migrations-dir", str(migrations), "--seed", "/nonexistent"
    )
    assert r.returncode == 2 and "--seed /nonexistent: cannot be read" in r.stderr
    assert scratch_databases(pg_server.admin_url) == before


# ------------------------------------------------------------ downstream project


def _run_downstream(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:randomly", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _server_args(pg_server) -> list[str]:
    """The downstream run starts its own throwaway cluster when it can; else it gets our server."""
    from z4j_migrate.localpg import LocalPostgresError, find_bindir

    if os.environ.get("Z4J_TEST_DATABASE_URL"):
        return []
    try:
        find_bindir()
        return []
    except LocalPostgresError:
        return ["--z4j-database-url", pg_server.admin_url]


def test_downstream_project_runs_the_ready_made_tests_green(pg_server):
    r = _run_downstream(DOWNSTREAM, *_server_args(pg_server))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "plugins: " in r.stdout and "z4j-migrate" in r.stdout  # loaded through the pytest11 entry point
    for name in (
        "test_z4j_single_linear_history",
        "test_z4j_upgrade_to_head",
        "test_z4j_up_down_consistency",
        "test_z4j_seed_round_trip",
        "test_z4j_schema_reference",
    ):
        assert f"test_migrations.py::{name} PASSED" in r.stdout
    assert "5 passed" in r.stdout


def test_downstream_project_with_a_broken_down_goes_red(pg_server, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(DOWNSTREAM, project)
    (project / "migrations" / "0003_accounts_email_index.down.sql").write_text("SELECT 1;\n")
    r = _run_downstream(project, "--z4j-database-url", pg_server.admin_url)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "test_migrations.py::test_z4j_up_down_consistency FAILED" in r.stdout
    assert "0003_accounts_email_index.down.sql leaves index ix_accounts_lower_email on accounts" in r.stdout
    assert "4 passed" in r.stdout and "1 failed" in r.stdout


def test_downstream_project_with_a_gap_or_a_stale_reference_goes_red(pg_server, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(DOWNSTREAM, project)
    for side in ("up", "down"):
        src = project / "migrations" / f"0003_accounts_email_index.{side}.sql"
        src.rename(src.with_name(f"0005_accounts_email_index.{side}.sql"))
    (project / "migrations" / "0002_accounts_touch.up.sql").open("a").write(
        "COMMENT ON COLUMN accounts.email IS 'x';\n"
    )
    r = _run_downstream(project, "--z4j-database-url", pg_server.admin_url, "-k", "history or reference")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "gaps (0002 -> 0005)" in r.stdout
    assert "schema.md does not match the schema at head" in r.stdout
    assert "+| `email` | `text` | not null |  | x |" in r.stdout  # the diff shows what changed


def test_plugin_gives_a_fresh_empty_database(z4j_database_url, z4j_server):
    assert tables(z4j_database_url) == set() and applied_ids(z4j_database_url) == []
    assert psycopg.conninfo.conninfo_to_dict(z4j_database_url)["dbname"].startswith("z4j_test_")
    assert scalar(z4j_database_url, "SELECT current_setting('server_version_num')::int / 10000") == z4j_server.major


def test_plugin_gives_a_database_at_head(z4j_migrated_url):
    assert applied_ids(z4j_migrated_url)[-1] == discover(BUNDLED_DIR).revisions[-1].id
