"""Fan-out over many targets (z4j_migrate/fleet.py; docs/kubernetes.md), on a real PostgreSQL.

The "Operations at scale" must-show list: 50 databases of one server upgraded with the bundled set
and --jobs 4, every target at head with bookkeeping of its own; one target made to fail by a
conflicting object fails alone, named in the summary, the others complete, its exit code is the
command's; --shard over 3 shards covers every target exactly once; status --json over the fleet
parses and counts per state. Then 20 tenant schemas of one database (--schemas), whose extension
is created once while tenants run in parallel, and the refusal of revisions that name a fixed schema.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from helpers import REPO, applied_ids, query, run_cli, scalar, write_pair
from psycopg import sql

from z4j_migrate.config import BUNDLED_DIR, settings_from_env
from z4j_migrate.fleet import run_fleet, tenant_targets
from z4j_migrate.revisions import discover

BUNDLED = [r.id for r in discover(BUNDLED_DIR).revisions]
FLEET_SIZE = 50
BROKEN = 17  # the target made to fail: it already has a type the bundled 0001 creates
TENANTS = 20


def _create_databases(pg_server, names: list[str]) -> None:
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def fleet(pg_server, tmp_path_factory):
    """50 databases, a targets file naming them (with a comment and a blank line), and what two
    upgrades did: the first with one target holding a conflicting type, the second after it is gone.
    The status of the fleet is taken after each (read-only, so the tests below may run in any order)."""
    tag = uuid.uuid4().hex[:6]
    names = [f"fleet_{tag}_{i:02d}" for i in range(FLEET_SIZE)]
    urls = [pg_server.url_for(name) for name in names]
    _create_databases(pg_server, names)
    folder = tmp_path_factory.mktemp("fleet")
    targets = folder / "targets.txt"
    targets.write_text("# the fleet\n\n" + "\n".join(urls) + "\n", encoding="utf-8")
    displays = {url: settings_from_env(url).database.display for url in urls}
    query(urls[BROKEN], "CREATE TYPE agent_state AS ENUM ('conflict')")
    common = ("--targets", str(targets), "--migrations-dir", str(BUNDLED_DIR))
    try:
        started = time.monotonic()
        first = run_cli("upgrade", *common, "--jobs", "4", timeout=300)
        first_s = time.monotonic() - started
        status_before = run_cli("status", *common, "--json", "--jobs", "4")
        query(urls[BROKEN], "DROP TYPE agent_state")
        started = time.monotonic()
        second = run_cli("upgrade", *common, "--jobs", "4", "--json", timeout=300)
        second_s = time.monotonic() - started
        status_after = run_cli("status", *common, "--json", "--jobs", "4")
        print(
            f"\n{FLEET_SIZE} databases x {len(BUNDLED)} revisions, --jobs 4: {first_s:.1f} s (one failing), "
            f"then {second_s:.1f} s"
        )
        yield {
            "urls": urls,
            "displays": displays,
            "file": targets,
            "common": common,
            "first": first,
            "second": second,
            "status_before": status_before,
            "status_after": status_after,
        }
    finally:
        for name in names:
            pg_server.drop_database(name)


def _doc(proc: subprocess.CompletedProcess[str]) -> dict:
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"not one JSON document (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def test_fifty_databases_upgrade_with_four_jobs_each_at_head_with_its_own_bookkeeping(fleet):
    second = fleet["second"]
    assert second.returncode == 0, second.stdout + second.stderr
    doc = _doc(second)
    assert doc["targets"] == FLEET_SIZE and doc["exit_code"] == 0 and doc["jobs"] == 4
    assert doc["by_state"] == {"up_to_date": FLEET_SIZE - 1, "upgraded": 1}  # the first run did the 49 others
    for url in fleet["urls"]:
        assert applied_ids(url) == BUNDLED, url
        # Each database's bookkeeping holds its own history, once: a row per revision, one apply each.
        rows = query(
            url,
            "SELECT (SELECT count(*) FROM public._yoyo_migration), (SELECT count(*) FROM public._z4j_migrate_revision),"
            " (SELECT count(*) FROM public._yoyo_log WHERE operation = 'apply'),"
            " (SELECT count(DISTINCT migration_id) FROM public._yoyo_log)",
        )
        assert rows == [(len(BUNDLED),) * 4], (url, rows)


def test_a_conflicting_target_fails_alone_and_its_exit_code_is_the_commands(fleet):
    first, broken = fleet["first"], fleet["displays"][fleet["urls"][BROKEN]]
    assert first.returncode == 1, first.stdout + first.stderr  # RevisionFailed: that target's own code
    failed = [line for line in first.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and broken in failed[0], first.stdout
    assert "(exit 1)" in failed[0] and "agent_state" in failed[0] and "already exists" in failed[0], failed[0]
    assert "0001_baseline" in failed[0]
    summary = first.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"upgrade: {FLEET_SIZE} target(s): 1 failed, {FLEET_SIZE - 1} upgraded"), summary
    assert summary.endswith("exit 1"), summary
    doc = _doc(fleet["status_before"])  # the 49 others completed while it failed
    assert doc["by_state"] == {"pending": 1, "up_to_date": FLEET_SIZE - 1}, doc["by_state"]
    (pending,) = [r for r in doc["results"] if r["state"] == "pending"]
    assert pending["target"] == broken and pending["result"]["counts"] == {"pending": len(BUNDLED)}


def test_status_json_over_the_fleet_parses_and_counts_per_state(fleet):
    proc = fleet["status_after"]
    assert proc.returncode == 0, proc.stderr
    doc = _doc(proc)
    assert doc["command"] == "status" and doc["targets"] == FLEET_SIZE and doc["failed"] == []
    assert doc["by_state"] == {"up_to_date": FLEET_SIZE}
    assert sorted(r["target"] for r in doc["results"]) == sorted(fleet["displays"].values())
    for result in doc["results"]:
        assert result["result"]["counts"] == {"applied": len(BUNDLED)}
        assert result["result"]["current"] == BUNDLED[-1] and result["exit_code"] == 0


def test_three_shards_cover_every_target_exactly_once(fleet):
    seen: list[str] = []
    for index in range(3):
        proc = run_cli("status", *fleet["common"], "--shard", f"{index}/3", "--json")
        assert proc.returncode == 0, proc.stderr
        doc = _doc(proc)
        assert doc["shard"] == f"{index}/3" and doc["targets"] in (16, 17)
        seen += [r["target"] for r in doc["results"]]
    assert sorted(seen) == sorted(fleet["displays"].values())  # each once: 50 names, none twice
    # An Indexed Job's pod: the index comes from JOB_COMPLETION_INDEX.
    auto = run_cli("status", *fleet["common"], "--shard", "auto/3", "--json", env={"JOB_COMPLETION_INDEX": "1"})
    manual = run_cli("status", *fleet["common"], "--shard", "1/3", "--json")
    assert [r["target"] for r in _doc(auto)["results"]] == [r["target"] for r in _doc(manual)["results"]]


# ------------------------------------------------------------------------------- schema-per-tenant

SMALL_SET = [
    (
        "0001_accounts",
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email citext NOT NULL UNIQUE);",
        "DROP TABLE accounts;",
    ),
    (
        "0002_orders",
        "CREATE TABLE orders (id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id),\n"
        "  placed_at timestamptz NOT NULL DEFAULT now());\nCREATE INDEX orders_account ON orders (account_id);",
        "DROP TABLE orders;",
    ),
    ("0003_order_note", "ALTER TABLE orders ADD COLUMN note text;", "ALTER TABLE orders DROP COLUMN note;"),
]


def _small_set(folder: Path, extensions: tuple[str, ...] = ("citext",)) -> Path:
    for rev_id, up, down in SMALL_SET:
        write_pair(folder, rev_id, up, down)
    (folder / "z4j-migrate.toml").write_text(f"extensions = {json.dumps(list(extensions))}\n", encoding="utf-8")
    return folder


def _tenants(url: str, count: int, prefix: str = "tenant_") -> list[str]:
    names = [f"{prefix}{i:02d}" for i in range(1, count + 1)]
    query(url, "".join(f"CREATE SCHEMA {name};" for name in names) + "CREATE SCHEMA not_a_tenant;")
    return names


def test_twenty_tenant_schemas_upgrade_with_four_jobs_each_with_its_own_bookkeeping(database_url, migrations):
    _small_set(migrations)
    tenants = _tenants(database_url, TENANTS)
    args = ("--database-url", database_url, "--migrations-dir", str(migrations), "--schemas", "tenant\\_%")
    started = time.monotonic()
    proc = run_cli("upgrade", *args, "--jobs", "4", "--json")
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = _doc(proc)
    assert doc["by_state"] == {"upgraded": TENANTS}, doc["by_state"]
    assert [r["target"].rsplit("#", 1)[1] for r in doc["results"]] == tenants
    created = [r["result"]["created_extensions"] for r in doc["results"]]
    assert sum(created, []) == ["citext"]  # by exactly one tenant; the others found it
    ids = [rev_id for rev_id, _, _ in SMALL_SET]
    column = "SELECT 1 FROM pg_attribute WHERE attrelid = pg_catalog.to_regclass(%s || '.orders') AND attname = 'note'"
    for tenant in tenants:
        # The revisions ran in the tenant (unqualified names), the bookkeeping is the tenant's alone.
        have = {r[0] for r in query(database_url, "SELECT tablename FROM pg_tables WHERE schemaname = %s", (tenant,))}
        assert {"accounts", "orders", "_yoyo_migration", "_z4j_migrate_revision"} <= have, (tenant, have)
        history = query(database_url, f"SELECT migration_id FROM {tenant}._yoyo_migration ORDER BY 1")
        assert [r[0] for r in history] == ids, tenant
        assert scalar(database_url, f"SELECT count(*) FROM {tenant}._yoyo_log") == len(ids)
        assert scalar(database_url, f"SELECT count(*) FROM {tenant}._z4j_migrate_revision") == len(ids)
        assert query(database_url, column, (tenant,)) == [(1,)]
    public = {
        r[0]
        for r in query(database_url, "SELECT tablename FROM pg_tables WHERE schemaname IN ('public', 'not_a_tenant')")
    }
    assert public == set(), public  # nothing landed outside the tenants
    assert query(
        database_url, "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'citext'"
    ) == [("public",)]
    status = _doc(run_cli("status", *args, "--json", "--jobs", "4"))
    assert status["by_state"] == {"up_to_date": TENANTS}
    # A tenant's downgrade runs in that tenant only (its search_path), and the others stay at head.
    one = run_cli("downgrade", *args[:4], "--schemas", "tenant\\_07", "--to", "0001", "-y")
    assert one.returncode == 0, one.stdout + one.stderr
    assert query(database_url, column, ("tenant_07",)) == [] and query(database_url, column, ("tenant_08",)) == [(1,)]
    print(f"\n{TENANTS} tenant schemas x {len(ids)} revisions, --jobs 4: {took:.1f} s")


def test_tenants_create_their_extensions_once_in_parallel(database_url, migrations, pg_server):
    """Many tenants of one database start together, none with its extensions: each holds its own
    migration lock, and CREATE EXTENSION IF NOT EXISTS of one extension by two sessions at once fails
    with a unique violation; the extensions lock serialises them (db.EXTENSIONS_LOCK_KEY)."""
    _small_set(migrations, ("citext", "pg_trgm", "pgcrypto"))
    names = _tenants(database_url, 12, prefix="t_")
    targets = tenant_targets(settings_from_env(database_url, migrations), "t\\_%")
    assert [t.settings.schema for t in targets] == names
    assert targets[0].settings.search_path == "t_01,public"
    from z4j_migrate import api

    report = run_fleet(targets, api.upgrade, jobs=len(targets))
    assert report.failed == [] and report.worst_exit_code == 0, [o.error for o in report.failed]
    created = [e for o in report.outcomes for e in o.result.created_extensions]
    assert sorted(created) == ["citext", "pg_trgm", "pgcrypto"]
    rows = query(database_url, "SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1")
    assert rows == [("citext",), ("pg_trgm",), ("pgcrypto",)]


def test_tenant_revisions_that_name_a_fixed_schema_are_refused(database_url, migrations):
    write_pair(migrations, "0001_accounts", "CREATE TABLE accounts (id bigint PRIMARY KEY);", "DROP TABLE accounts;")
    write_pair(
        migrations,
        "0002_audit",
        "CREATE TABLE audit (id bigint);\nINSERT INTO public.audit_log SELECT id FROM accounts;",
        "DROP TABLE audit;",
    )
    tenants = _tenants(database_url, 3)
    check = run_cli("check", "--no-lint", "--tenant-mode", str(migrations))
    assert check.returncode == 3, check.stdout + check.stderr
    assert "0002_audit.up.sql:3" in check.stderr and "public.audit_log" in check.stderr, check.stderr
    assert run_cli("check", "--no-lint", str(migrations)).returncode == 0  # fine for one schema
    args = ("--database-url", database_url, "--migrations-dir", str(migrations), "--schemas", "tenant%")
    proc = run_cli("upgrade", *args, "--jobs", "2")
    assert proc.returncode == 3 and "public.audit_log" in proc.stderr, proc.stdout + proc.stderr
    for tenant in tenants:  # refused before any tenant ran anything
        assert scalar(database_url, "SELECT to_regclass(%s)", (f"{tenant}._yoyo_migration",)) is None


def test_sigterm_stops_every_running_target_and_skips_the_rest(pg_server, migrations):
    """What a Job pod's SIGTERM does to a fan-out: every statement in flight is cancelled and rolled
    back, no new target starts, the process exits 12 at once."""
    write_pair(migrations, "0001_slow", "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);", "DROP TABLE slow;")
    names = [f"fleet_sig_{uuid.uuid4().hex[:6]}_{i}" for i in range(5)]
    _create_databases(pg_server, names)
    try:
        targets = migrations.parent / "targets.txt"
        targets.write_text("\n".join(pg_server.url_for(n) for n in names), encoding="utf-8")
        cmd = [sys.executable, "-m", "z4j_migrate", "upgrade", "--targets", str(targets), "--jobs", "3"]
        cmd += ["--migrations-dir", str(migrations), "--json"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        try:
            deadline = time.monotonic() + 30
            busy = (
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(60)%' "
                "AND pid <> pg_backend_pid()"
            )
            while scalar(pg_server.admin_url, busy) < 3:
                assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
                time.sleep(0.05)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
            took = time.monotonic() - sent
        finally:
            proc.kill()
        assert proc.returncode == 12, out + err
        assert took < 5, took  # the children were cancelled, not waited for (they sleep 60 s)
        doc = json.loads(out)
        assert doc["interrupted"] and doc["by_state"] == {"interrupted": 3, "skipped": 2}, doc["by_state"]
        for result in doc["results"]:
            if result["state"] == "interrupted":
                assert "cancelled 0001_slow" in result["error"] and result["exit_code"] == 12
        for name in names:
            assert scalar(pg_server.url_for(name), "SELECT to_regclass('slow')") is None
        assert scalar(pg_server.admin_url, busy) == 0  # nothing left running on the server
    finally:
        for name in names:
            pg_server.drop_database(name)
