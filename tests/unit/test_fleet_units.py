"""Fan-out without a database (z4j_migrate/fleet.py): targets files, shards, the worst exit code, the
JSON summary, the bounded pool and --fail-fast, the tenant settings, and the fixed-schema check."""

from __future__ import annotations

import json
import threading
import time

import pytest

from z4j_migrate import fleet
from z4j_migrate.config import Settings, parse_database_url
from z4j_migrate.db import migration_settings
from z4j_migrate.errors import ConfigError, DriftError, LockTimeout, RevisionFailed, RevisionFileError
from z4j_migrate.fleet import Done, FanOut, Target, parse_shard, parse_targets, run_fleet, shard, worst
from z4j_migrate.revisions import SqlFile
from z4j_migrate.sqlcheck import fixed_schema_references

BASE = Settings(parse_database_url("postgresql://app@db.invalid/app"))


def _targets(n: int) -> list[Target]:
    return [Target(f"postgresql://app@db.invalid/t{i:02d}", BASE) for i in range(n)]


# ------------------------------------------------------------------------------- targets files


def test_a_targets_file_takes_one_url_or_libpq_string_per_line_with_comments():
    text = (
        "# production fleet\n"
        "\n"
        "postgresql://app:s3cret@db1.invalid:5432/app   # primary of shard 1\n"
        "   postgres://app@db2.invalid/app\n"
        "  # an indented comment\n"
        "host=db3.invalid dbname=app user=app password='p #1'\n"
    )
    found = parse_targets(text, "fleet.txt")
    assert [n for n, _ in found] == [3, 4, 6]
    assert [db.display for _, db in found] == [
        "postgresql://app:***@db1.invalid:5432/app",
        "postgresql://app@db2.invalid/app",
        "postgresql://app:***@db3.invalid/app",
    ]
    assert found[2][1].params["password"] == "p #1"  # a key=value line is taken whole


def test_a_bad_line_is_a_configuration_error_naming_file_and_line():
    with pytest.raises(ConfigError, match=r"fleet.txt:2"):
        parse_targets("postgresql://db1.invalid/a\nmysql://db2.invalid/b\n", "fleet.txt")


def test_targets_files_refuse_repeats_and_emptiness(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("postgresql://a@h.invalid/x\npostgresql://a@h.invalid/y\npostgresql://a@h.invalid/x\n")
    with pytest.raises(ConfigError, match="line 3 repeats the target of line 1"):
        fleet.targets_from_file(path, BASE)
    path.write_text("# nothing yet\n\n")
    with pytest.raises(ConfigError, match="no targets"):
        fleet.targets_from_file(path, BASE)
    with pytest.raises(ConfigError, match="cannot be read"):
        fleet.targets_from_file(tmp_path / "missing.txt", BASE)


def test_targets_from_a_file_are_sorted_and_keep_the_commands_settings(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("postgresql://a@h.invalid/zeta\npostgresql://a@h.invalid/alpha\n")
    base = Settings(parse_database_url("postgresql://x@elsewhere.invalid/x"), schema="ops", lock_timeout_s=7)
    targets = fleet.targets_from_file(path, base)
    assert [t.name for t in targets] == ["postgresql://a@h.invalid/alpha", "postgresql://a@h.invalid/zeta"]
    assert all(t.settings.schema == "ops" and t.settings.lock_timeout_s == 7 for t in targets)
    assert targets[0].settings.database.params["dbname"] == "alpha"


def test_one_direct_url_cannot_serve_many_servers(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("postgresql://a@h.invalid/x\n")
    direct = Settings(BASE.database, direct_database=parse_database_url("postgresql://a@direct.invalid/x"))
    with pytest.raises(ConfigError, match="direct-url"):
        fleet.targets_from_file(path, direct)


# ------------------------------------------------------------------------------- shards


@pytest.mark.parametrize(
    ("spec", "env", "expected"), [("0/3", {}, (0, 3)), (" 2 / 3 ", {}, (2, 3)), ("0/1", {}, (0, 1))]
)
def test_shard_specs(spec, env, expected):
    assert parse_shard(spec, env) == expected


def test_auto_shard_reads_the_indexed_job_index():
    assert parse_shard("auto/4", {"JOB_COMPLETION_INDEX": "3"}) == (3, 4)
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX is not set"):
        parse_shard("auto/4", {})
    with pytest.raises(ConfigError, match="out of range"):
        parse_shard("auto/4", {"JOB_COMPLETION_INDEX": "4"})


@pytest.mark.parametrize("spec", ["3/3", "1/0", "-1/3", "a/b", "1", "1/3/5", ""])
def test_bad_shard_specs_are_configuration_errors(spec):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(spec, {})


@pytest.mark.parametrize("count", [1, 2, 3, 7, 50, 60])
def test_shards_together_hold_every_target_exactly_once_whatever_the_input_order(count):
    targets = _targets(50)
    shuffled = targets[1::2] + targets[::2]
    pieces = [shard(shuffled, i, count) for i in range(count)]
    names = [t.name for piece in pieces for t in piece]
    assert sorted(names) == sorted(t.name for t in targets) and len(names) == len(set(names))
    assert pieces[0][0].name == targets[0].name  # every count-th in name order, from the index
    if count == 3:
        assert [t.name for t in pieces[1]] == [t.name for t in targets[1::3]]
    assert max(len(p) for p in pieces) - min(len(p) for p in pieces) <= 1


# ------------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], 0),
        ([0, 0], 0),
        ([0, 10], 10),  # status --exit-code: pending
        ([0, 12], 12),
        ([6, 7, 12], 7),  # all retriable: the result is retriable
        ([6, 1], 1),  # a revision failed: worse than a busy lock
        ([1, 3], 3),  # bad files: no retry helps
        ([6, 2, 1, 0], 2),
        ([1, 8], 8),  # a non-transactional revision stopped part-way needs a person
        ([5, 8], 8),
        ([1, 130], 130),  # an unknown code ranks as 1; between equals, the higher number
    ],
)
def test_the_worst_exit_code_puts_what_no_retry_fixes_first(codes, expected):
    assert worst(codes) == expected


def test_every_fail_fast_code_outranks_every_retriable_one():
    fail_fast, retry = (2, 3, 4, 5, 8, 9, 11), (6, 7, 12, 13)
    assert min(map(fleet.severity, fail_fast)) > max(map(fleet.severity, retry))
    assert fleet.severity(1) > max(map(fleet.severity, retry))


# ------------------------------------------------------------------------------- running


def _action(fail: dict[str, Exception], delay: float = 0.0, seen: list | None = None):
    lock, running = threading.Lock(), [0]

    def action(settings: Settings) -> str:
        with lock:
            running[0] += 1
            if seen is not None:
                seen.append(running[0])
        try:
            time.sleep(delay)
            name = settings.database.params.get("dbname", "")
            if name in fail:
                raise fail[name]
            return name
        finally:
            with lock:
                running[0] -= 1

    return action


def _named(n: int) -> list[Target]:
    return [Target(f"t{i:02d}", Settings(parse_database_url(f"postgresql://a@h.invalid/t{i:02d}"))) for i in range(n)]


def test_a_failing_target_does_not_stop_the_others_and_the_report_names_it():
    failure = RevisionFailed("sql/0001.up.sql:3:1: type x already exists. Revision 0001 was rolled back.")
    report = run_fleet(_named(6), _action({"t03": failure}), jobs=3, command="upgrade")
    assert [o.state for o in report.outcomes] == ["ok", "ok", "ok", "failed", "ok", "ok"]
    assert [o.target for o in report.failed] == ["t03"] and report.worst_exit_code == 1
    assert report.outcomes[3].error == failure.message and report.outcomes[0].result == "t00"
    text = fleet.render_text(report)
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0].startswith("FAILED  t03  (exit 1) sql/0001.up.sql:3:1")
    assert lines[1].startswith("upgrade: 6 target(s): 1 failed, 5 ok (--jobs 3, ") and lines[1].endswith("exit 1")


def test_the_pool_is_bounded_by_jobs():
    seen: list[int] = []
    report = run_fleet(_named(10), _action({}, delay=0.02, seen=seen), jobs=3)
    assert max(seen) <= 3 and max(seen) >= 2 and report.worst_exit_code == 0


def test_fail_fast_starts_no_new_target_once_one_failed():
    fail = {"t00": LockTimeout("busy"), "t05": DriftError("edited")}
    report = run_fleet(_named(8), _action(fail, delay=0.05), jobs=1, fail_fast=True)
    assert report.outcomes[0].state == "failed"
    assert {o.state for o in report.outcomes[1:]} == {"skipped"}
    assert report.outcomes[1].error == "not run: another target failed (--fail-fast)." and report.worst_exit_code == 6
    assert not report.interrupted


def test_an_unexpected_exception_is_that_targets_failure_with_the_password_masked():
    boom = RuntimeError("connection to postgresql://a:hunter2@h.invalid/x\nreset")
    report = run_fleet(_named(2), _action({"t01": boom}))
    assert report.outcomes[1].exit_code == 1
    assert report.outcomes[1].error == "unexpected RuntimeError: connection to postgresql://a:***@h.invalid/x reset"


def test_the_json_summary_is_one_document_with_a_row_per_target():
    done = Done("upgraded", "applied 2 revision(s)", {"applied": ["0001_a", "0002_b"]})
    fail = {"t01": RevisionFileError("bad header", path="sql/0002_b.up.sql", line=1)}

    def action(settings: Settings) -> Done:
        _action(fail)(settings)
        return done

    report = run_fleet(_named(3), action, jobs=2, command="upgrade", shard_spec="0/1")
    doc = json.loads(report.to_json())
    assert doc["command"] == "upgrade" and doc["exit_code"] == 3 and doc["targets"] == 3 and doc["ok"] == 2
    assert doc["failed"] == ["t01"] and doc["by_state"] == {"failed": 1, "upgraded": 2} and doc["shard"] == "0/1"
    first, second = doc["results"][:2]
    assert first == {
        "target": "t00",
        "state": "upgraded",
        "ok": True,
        "exit_code": 0,
        "error": None,
        "duration_ms": first["duration_ms"],
        "summary": "applied 2 revision(s)",
        "result": {"applied": ["0001_a", "0002_b"]},
    }
    assert second["exit_code"] == 3 and second["error"] == "sql/0002_b.up.sql:1: bad header"


def test_no_targets_is_an_empty_report():
    report = run_fleet([], _action({}), jobs=4, command="status")
    assert report.outcomes == [] and report.worst_exit_code == 0
    assert fleet.render_text(report).startswith("status: 0 target(s): none")


def _logged(verbosity: int, action) -> list[tuple[str, str | None]]:
    """(message, event) of every record the package logger passes while a fan-out of two runs `action`."""
    import logging

    from z4j_migrate.logs import EVENT, log

    records: list[tuple[str, str | None]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append((record.getMessage(), getattr(record, EVENT, None)))

    handler, level = Keep(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with fleet.fleet_logging(verbosity):
            run_fleet(_named(2), action, jobs=2)
            log.info("from the main thread")
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    return records


def _chatty(settings: Settings) -> None:
    from z4j_migrate.logs import EVENT_APPLIED, log

    log.info("created extension %s", "citext")
    log.warning("lock_timeout (%s); retry 1/5", "orders")
    log.info("applied %s", "0001_a", extra=EVENT_APPLIED)


def test_log_lines_of_a_worker_carry_its_target_and_only_warnings_by_default():
    plain = [m for m, event in _logged(0, _chatty) if event is None]
    assert sorted(plain[:2]) == ["[t00] lock_timeout (orders); retry 1/5", "[t01] lock_timeout (orders); retry 1/5"]
    assert plain[2:] == ["from the main thread"]
    verbose = sorted(m for m, event in _logged(1, _chatty) if event is None)
    assert "[t00] created extension citext" in verbose and "[t01] created extension citext" in verbose


def test_the_progress_events_count_targets_not_the_revisions_of_parallel_targets():
    events = [(m, e) for m, e in _logged(1, _chatty) if e is not None]
    assert events[0] == ("2 target(s) to run", "planned")
    assert sorted(events[1:]) == [("t00: ok", "target"), ("t01: ok", "target")]  # no worker's "applied"


# ------------------------------------------------------------------------------- the CLI options


def test_fan_out_options_are_taken_out_and_checked():
    options = {"targets_file": "f.txt", "jobs": 4, "fail_fast": False, "schema": "x"}
    fan = FanOut.pop(options)
    assert fan.given and fan.jobs == 4 and options == {"fail_fast": False, "schema": "x"}
    with pytest.raises(ConfigError, match="not several"):
        FanOut.pop({"targets_file": "f", "schemas": "t%"})
    with pytest.raises(ConfigError, match="need --targets"):
        FanOut.pop({"shard": "0/2"})
    with pytest.raises(ConfigError, match="1 or more"):
        FanOut.pop({"schemas": "t%", "jobs": 0})


# ------------------------------------------------------------------------------- schema-per-tenant


def test_a_tenant_search_path_is_validated_quoted_and_sent_with_every_revision():
    tenant = Settings(BASE.database, schema="Tenant_7", search_path="Tenant_7,public")
    assert tenant.search_path_value == '"Tenant_7", "public"'
    assert "set_config('search_path', '\"Tenant_7\", \"public\"', true)" in migration_settings(tenant)
    assert "set_config('search_path', '\"Tenant_7\", \"public\"', false)" in migration_settings(tenant, local=False)
    assert "search_path" not in migration_settings(tenant, search_path=False)  # bookkeeping set-up
    assert "search_path" not in migration_settings(BASE)  # one schema: unchanged
    with pytest.raises(ConfigError, match="search_path"):
        Settings(BASE.database, search_path="t1,'; DROP TABLE x; --")


def _refs(text: str) -> list[tuple[int, str]]:
    return fixed_schema_references(SqlFile("x.up.sql", text, "", True, True))


def test_unqualified_sql_is_fine_for_tenants():
    assert (
        _refs(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, email citext, n numeric(10, 2),\n"
            '  at timestamptz DEFAULT pg_catalog.now(), kind text COLLATE "C");\n'
            "CREATE INDEX ON accounts (lower(email));\n"
            "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n"
            "CREATE TRIGGER t BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION touch();\n"
            "SELECT pg_catalog.set_config('x.y', 'z', true), 1::int8, 'a'::text COLLATE pg_catalog.\"C\";"
        )
        == []
    )


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("CREATE TABLE public.accounts (id int);", "public.accounts"),
        ("CREATE TABLE a (e public.citext);", "public.citext"),
        ("SELECT public.gen_random_uuid();", "public.gen_random_uuid"),
        ("INSERT INTO shared.audit SELECT 1;", "shared.audit"),
        ("DROP TABLE public.accounts;", "public.accounts"),
        ("DROP FUNCTION public.f(int);", "public.f"),
        ("CREATE TYPE public.mood AS ENUM ('a');", "public.mood"),
        ("ALTER TYPE public.mood ADD VALUE 'b';", "public.mood"),
        ("CREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW EXECUTE FUNCTION public.f();", "public.f"),
        ("COMMENT ON TABLE public.a IS 'x';", "public.a"),
        ("ALTER TABLE a SET SCHEMA archive;", "SET SCHEMA archive"),
        ("CREATE SCHEMA reports;", "CREATE SCHEMA reports"),
        ("SET search_path = public;", "SET search_path"),
        ("GRANT SELECT ON ALL TABLES IN SCHEMA public TO r;", "ALL ... IN SCHEMA public"),
        ("ALTER TABLE a ADD COLUMN b int REFERENCES public.b (id);", "public.b"),
    ],
)
def test_names_with_a_fixed_schema_are_found_with_their_line(text, what):
    assert _refs("SELECT 1;\n\n" + text) == [(3, what)]


def test_the_cli_refuses_fan_out_options_that_mean_nothing(tmp_path):
    from helpers import run_cli

    targets = tmp_path / "fleet.txt"
    targets.write_text("postgresql://a@h.invalid/x\n")
    cases = [
        (("upgrade", "--jobs", "2"), "need --targets"),
        (("status", "--targets", str(tmp_path / "missing.txt")), "cannot be read"),
        (("upgrade", "--targets", str(targets), "--dry-run"), "--dry-run prints one database"),
        (("downgrade", "--to", "base", "--schemas", "t%", "--schema", "x", "-y"), "drop --schema"),
        (("verify", "--schemas", "t%"), "check --tenant-mode"),
        (("status", "--targets", str(targets), "--shard", "2/2"), "out of range"),
    ]
    for args, message in cases:
        proc = run_cli(*args, env={"Z4J_DATABASE_URL": "postgresql://a@h.invalid/x"})
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
