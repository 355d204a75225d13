"""verify --keep-going and classified differences (issue 12): every bad down in one run, on real PostgreSQL.

One set holds three bad downs among good revisions; one run must name all three (library and CLI), and
the good revisions after each failure must still be checked. A column re-added at another position is a
warning (an error with --strict), an enum label left behind says PostgreSQL cannot drop it, and a
difference the down declares with '-- verify-accept:' is reported as accepted, not failed.
"""

from __future__ import annotations

import json

import psycopg
from helpers import run_cli, write_pair
from psycopg.conninfo import conninfo_to_dict

from z4j_migrate.config import settings_from_env
from z4j_migrate.verify import verify

BASE_UP = "CREATE TYPE mood AS ENUM ('happy', 'sad');\nCREATE TABLE t (id int PRIMARY KEY, a int, b int, m mood);"
BASE_DOWN = "DROP TABLE t;\nDROP TYPE mood;"


def three_bad_downs(folder) -> None:
    write_pair(folder, "0001_base", BASE_UP, BASE_DOWN)
    write_pair(folder, "0002_ix", "CREATE INDEX ix_t_a ON t (a);", "SELECT 1; -- forgot DROP INDEX")
    write_pair(folder, "0003_good", "CREATE TABLE u (id int);", "DROP TABLE u;")
    write_pair(folder, "0004_default", "ALTER TABLE t ALTER a SET DEFAULT 5;", "ALTER TABLE t ALTER a SET DEFAULT 7;")
    write_pair(folder, "0005_good", "CREATE INDEX ix_u_id ON u (id);", "DROP INDEX ix_u_id;")
    write_pair(folder, "0006_fn", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;", "SELECT 1;")
    write_pair(folder, "0007_good", "CREATE VIEW v AS SELECT id FROM u;", "DROP VIEW v;")


def test_keep_going_names_every_bad_down_and_checks_the_rest(pg_server, migrations):
    three_bad_downs(migrations)
    settings = settings_from_env(pg_server.admin_url, migrations)
    report = verify(settings, keep_going=True)
    assert [(r.id, r.status) for r in report.revisions] == [
        ("0001_base", "ok"),
        ("0002_ix", "failed"),
        ("0003_good", "ok"),
        ("0004_default", "failed"),
        ("0005_good", "ok"),  # checked on the database rebuilt after 0004
        ("0006_fn", "failed"),
        ("0007_good", "ok"),
    ]
    assert [(p.revision, p.messages) for p in report.problems] == [
        ("0002_ix", ["0002_ix.down.sql leaves index ix_t_a on t"]),
        ("0004_default", ["0004_default.down.sql does not restore column t.a: default changed: NULL -> 7"]),
        ("0006_fn", ["0006_fn.down.sql leaves function f()"]),
    ]
    assert report.round_trip == "not run"
    # Without --keep-going the first failure still ends the run.
    assert [r.status for r in verify(settings).revisions][1:3] == ["failed", "not run"]

    r = run_cli("verify", "--database-url", pg_server.admin_url, "--migrations-dir", str(migrations), "--keep-going")
    assert r.returncode == 9, r.stdout + r.stderr
    for line in ("leaves index ix_t_a on t", "does not restore column t.a", "leaves function f()"):
        assert line in r.stdout
    assert "3 revisions failed: 0002_ix, 0004_default, 0006_fn" in r.stdout
    r = run_cli(
        "verify", "--database-url", pg_server.admin_url, "--migrations-dir", str(migrations), "--keep-going", "--json"
    )
    assert r.returncode == 9
    data = json.loads(r.stdout)
    assert [p["revision"] for p in data["problems"]] == ["0002_ix", "0004_default", "0006_fn"]
    assert [x["status"] for x in data["revisions"]].count("ok") == 4
    r = run_cli(
        "verify",
        "--database-url",
        pg_server.admin_url,
        "--migrations-dir",
        str(migrations),
        "--keep-going",
        "--no-scratch",
    )
    assert r.returncode == 2 and "needs a scratch database" in r.stderr


def base_and_a_moved_column(folder) -> None:
    write_pair(folder, "0001_base", BASE_UP, BASE_DOWN)
    # The down drops b and adds it back: same column, now after m (position 3 -> 4).
    write_pair(
        folder,
        "0002_b_type",
        "ALTER TABLE t ALTER b TYPE bigint;",
        "ALTER TABLE t DROP COLUMN b;\nALTER TABLE t ADD COLUMN b int;",
    )


def test_position_warning_enum_reason_and_accepted_difference(pg_server, migrations):
    base_and_a_moved_column(migrations)
    write_pair(migrations, "0003_label", "ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh';", "SELECT 1;")
    settings = settings_from_env(pg_server.admin_url, migrations)

    report = verify(settings, keep_going=True)
    assert [r.status for r in report.revisions] == ["ok", "ok", "failed"]
    # After the down; the second down and up (run because of it) give the same schemas as the first.
    assert [(w.revision, w.severity) for w in report.warnings] == [("0002_b_type", "warning")]
    warning = report.warnings[0]
    assert {(d["name"], d["detail"]) for d in warning.differences} == {
        ("t.b", "position changed: 3 -> 4"),
        ("t.m", "position changed: 4 -> 3"),
    }
    [problem] = report.problems
    assert problem.revision == "0003_label"
    [message] = problem.messages
    assert message.startswith("0003_label.down.sql leaves enum label 'meh' on type mood (PostgreSQL cannot drop")
    assert problem.differences[0]["reason"].startswith("PostgreSQL cannot drop a value from an enum type")

    assert [p.revision for p in verify(settings, keep_going=True, strict=True).problems] == [
        "0002_b_type",
        "0003_label",
    ]

    # Declared: accepted, not failed. Matching ignores case, spacing and a public. qualifier.
    (migrations / "0003_label.down.sql").write_text(
        "-- verify-accept: Enum Label 'meh' on type public.mood\nSELECT 1;\n"
    )
    (migrations / "0002_b_type.down.sql").write_text(
        "-- verify-accept: column t.b position\n-- verify-accept: column t.m position\n"
        "ALTER TABLE t DROP COLUMN b;\nALTER TABLE t ADD COLUMN b int;\n"
    )
    report = verify(settings, strict=True)
    assert report.ok, report.problems
    assert {(p.revision, p.severity) for p in report.accepted} == {
        ("0002_b_type", "accepted"),
        ("0003_label", "accepted"),
        (None, "accepted"),  # the round trip's fresh head has b back at 3: any revision's acceptance counts
    }
    assert report.warnings == [] and report.round_trip == "ok"
    r = run_cli("verify", "--database-url", pg_server.admin_url, "--migrations-dir", str(migrations))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "accepted (stepwise) at 0003_label:" in r.stdout


def test_a_down_with_a_warning_is_run_a_second_time(pg_server, migrations):
    """The up ran on another catalog the second time (b moved): the down and the up run once more."""
    base_and_a_moved_column(migrations)
    report = verify(settings_from_env(pg_server.admin_url, migrations), keep=True)
    scratch = conninfo_to_dict(report.database)["dbname"]
    try:
        with psycopg.connect(pg_server.url_for(scratch)) as conn:
            ops = conn.execute(
                "SELECT migration_id, operation, count(*) FROM _yoyo_log GROUP BY 1, 2 ORDER BY 1, 2"
            ).fetchall()
            # the change journal is gone from the kept database: no event trigger of verify's fires there
            leftovers = conn.execute(
                "SELECT (SELECT count(*) FROM pg_event_trigger), to_regnamespace('z4j_verify_journal')"
            ).fetchone()
    finally:
        pg_server.drop_database(scratch)
    assert leftovers == (0, None)
    assert report.ok
    assert [(w.phase, w.revision) for w in report.warnings] == [("stepwise", "0002_b_type"), ("round trip", None)]
    # stepwise (0001: up, down, up; 0002: up, down, up, down, up), then the round trip (down, up each)
    assert ops == [
        ("0001_base", "apply", 3),
        ("0001_base", "rollback", 2),
        ("0002_b_type", "apply", 4),
        ("0002_b_type", "rollback", 3),
    ]
