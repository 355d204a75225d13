"""Other tools' directories, written as their own documentation writes them, run on PostgreSQL.

Each layout's directory upgrades to the same catalog as the same SQL in our layout (compared with
verify's snapshot, on two databases), downgrades to base (the catalog of an empty database) and
upgrades again; its no-op start-up stays at two statements (at most 3 allowed), without yoyo or
pglast imported. The transactions-decided-by-the-SQL cases (a BEGIN ... COMMIT wrapper, a lone
CREATE INDEX CONCURRENTLY without any marker) need sqlcheck.settle.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from helpers import applied_ids, write_pair
from test_statement_counts import _run, server_log  # noqa: F401  (server_log is a fixture)

import z4j_migrate
from z4j_migrate import sqlcheck
from z4j_migrate.verify import differences, take_snapshot

USERS_UP = "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n"
USERS_DOWN = "DROP TABLE users;\n"
NICK_UP = "ALTER TABLE users ADD COLUMN nick text;\n"
NICK_DOWN = "ALTER TABLE users DROP COLUMN nick;\n"
COMMENT_UP = "COMMENT ON TABLE users IS 'people';\n"  # its down does nothing (empty, or comments only)
INDEX_UP = "CREATE INDEX CONCURRENTLY users_email ON users (email);\n"
INDEX_DOWN = "DROP INDEX CONCURRENTLY users_email;\n"
# Decided by the SQL (sqlcheck.settle): a whole file wrapped in BEGIN ... COMMIT, and a lone
# CONCURRENTLY without the tool's marker.
AUDIT = "CREATE TABLE audit (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());\n"
WRAPPED_UP = f"BEGIN;\n{AUDIT}CREATE INDEX audit_id ON audit (id);\nCOMMIT;\n"
WRAPPED_DOWN = "BEGIN;\nDROP TABLE audit;\nCOMMIT;\n"
LONE_UP = "CREATE INDEX CONCURRENTLY audit_at ON audit (at);\n"
LONE_DOWN = "DROP INDEX CONCURRENTLY audit_at;\n"

NEEDS_SETTLE = pytest.mark.skipif(
    not hasattr(sqlcheck, "settle"),
    reason="needs sqlcheck.settle (A2: BEGIN/COMMIT wrappers and CONCURRENTLY decided by the SQL), not there yet",
)


def _files(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------- as each tool writes them


def golang_migrate(settled: bool) -> dict[str, str]:
    """`migrate create -ext sql -seq` style, unpadded; golang-migrate has no transaction marker."""
    if settled:
        return {
            "1_audit.up.sql": WRAPPED_UP,
            "1_audit.down.sql": WRAPPED_DOWN,
            "2_audit_at.up.sql": LONE_UP,
            "2_audit_at.down.sql": LONE_DOWN,
        }
    return {
        "1_create_users_table.up.sql": "-- https://github.com/golang-migrate/migrate\n-- NOTE: email required\n"
        + USERS_UP,
        "1_create_users_table.down.sql": USERS_DOWN,
        "2_v6.0-add-nick.up.sql": "-- action_user: admin\n" + NICK_UP,
        "2_v6.0-drop-nick.down.sql": NICK_DOWN,  # paired by version; the titles differ
        "10_comment.up.sql": COMMENT_UP,
        "10_comment.down.sql": "-- nothing to undo\n",
        "migrations.go": "package migrations\n",
        "README.md": "# migrations\n",
    }


def dbmate(settled: bool) -> dict[str, str]:
    """One file each, `-- migrate:up` / `-- migrate:down`, `transaction:false` on the marker line."""
    if settled:
        return {
            "1_audit.sql": f"-- migrate:up\n{WRAPPED_UP}\n-- migrate:down\n{WRAPPED_DOWN}",
            "2_audit_at.sql": f"-- migrate:up\n{LONE_UP}\n-- migrate:down\n{LONE_DOWN}",
        }
    return {
        "1_create_users_table.sql": f"-- the first one\n-- migrate:up\n{USERS_UP}\n-- migrate:down\n{USERS_DOWN}",
        "2_v1.2_add_nick.sql": f"-- migrate:up\n{NICK_UP}\n-- migrate:down\n{NICK_DOWN}",
        "3_comment.sql": f"-- migrate:up\n{COMMENT_UP}\n-- migrate:down\n",
        "4_email_index.sql": f"-- migrate:up transaction:false\n{INDEX_UP}\n-- migrate:down transaction:false\n"
        + INDEX_DOWN,
    }


def yoyo(settled: bool) -> dict[str, str]:
    """`yoyo new` names, `-- depends:` and `-- transactional: false` headers, `.rollback.sql` files."""
    if settled:
        return {
            "20240102_01_AaAaA-audit.sql": WRAPPED_UP,
            "20240102_01_AaAaA-audit.rollback.sql": WRAPPED_DOWN,
            "20240102_02_BbBbB-audit-at.sql": LONE_UP,
            "20240102_02_BbBbB-audit-at.rollback.sql": LONE_DOWN,
        }
    return {
        "20240101_01_AbCdE-create-users.sql": "-- Create the users table\n-- NOTE: email required\n" + USERS_UP,
        "20240101_01_AbCdE-create-users.rollback.sql": USERS_DOWN,
        "20240101_02_FgHiJ-v1.2-add-nick.sql": "-- depends: 20240101_01_AbCdE-create-users\n" + NICK_UP,
        "20240101_02_FgHiJ-v1.2-add-nick.rollback.sql": NICK_DOWN,
        "20240101_03_KlMnO-comment.sql": COMMENT_UP,
        "20240101_03_KlMnO-comment.rollback.sql": "",
        # First by name, but it depends on the column: yoyo (and we) run it after.
        "20240101_00_ZzZzZ-email-index.sql": "-- depends: 20240101_02_FgHiJ-v1.2-add-nick\n"
        "-- transactional: false\n" + INDEX_UP,
        "20240101_00_ZzZzZ-email-index.rollback.sql": INDEX_DOWN,
        "yoyo.ini": "[DEFAULT]\nsources = migrations\n",
    }


def flyway(settled: bool) -> dict[str, str]:
    """`V{n}__{desc}.sql` with `U{n}__` undo files; a script config file for no transaction."""
    if settled:
        return {
            "V1__Audit.sql": WRAPPED_UP,
            "U1__Audit.sql": WRAPPED_DOWN,
            "V2__Audit_at.sql": LONE_UP,
            "U2__Audit_at.sql": LONE_DOWN,
        }
    return {
        "V1__Create_users_table.sql": "-- Flyway sample\n" + USERS_UP,
        "U1__Create_users_table.sql": USERS_DOWN,
        "V2__v1.2_add_nick.sql": NICK_UP,
        "U2__v1.2_add_nick.sql": NICK_DOWN,
        "V10__Comment.sql": COMMENT_UP,
        "U10__Comment.sql": "-- nothing to undo\n",
        "V11__Email_index.sql": INDEX_UP,
        "V11__Email_index.sql.conf": "executeInTransaction=false\n",
        "U11__Email_index.sql": INDEX_DOWN,
        "U11__Email_index.sql.conf": "executeInTransaction=false\n",
    }


def ours(folder: Path, *, settled: bool, index: bool) -> Path:
    """The same SQL in our layout."""
    folder.mkdir(parents=True)
    if settled:
        write_pair(folder, "0001_audit", AUDIT + "CREATE INDEX audit_id ON audit (id);\n", "DROP TABLE audit;\n")
        write_pair(folder, "0002_audit_at", "-- message: at\n-- transactional: false\n" + LONE_UP, LONE_DOWN)
        return folder
    write_pair(folder, "0001_users", USERS_UP, USERS_DOWN)
    write_pair(folder, "0002_nick", NICK_UP, NICK_DOWN)
    write_pair(folder, "0003_comment", COMMENT_UP, "COMMENT ON TABLE users IS NULL;\n")
    if index:
        write_pair(folder, "0004_index", "-- message: index\n-- transactional: false\n" + INDEX_UP, INDEX_DOWN)
    return folder


LAYOUTS = {"golang-migrate": golang_migrate, "dbmate": dbmate, "yoyo": yoyo, "flyway": flyway}


def _snapshot(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        return take_snapshot(conn)


def _noop(url: str, folder: Path, layout: str) -> tuple[bool, bool]:
    """The start-up call as an application makes it; whether yoyo / pglast got imported."""
    code = (
        "import json, sys, z4j_migrate\n"
        f"z4j_migrate.migrate_on_startup({url!r}, {str(folder)!r}, layout={layout!r})\n"
        "print(json.dumps(['yoyo' in sys.modules, 'pglast' in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def _round_trip(pg_server, server_log, tmp_path: Path, layout: str, *, settled: bool) -> None:  # noqa: F811
    folder = _files(tmp_path / layout, LAYOUTS[layout](settled))
    mine = ours(tmp_path / "ours", settled=settled, index=layout != "golang-migrate")
    theirs_db, ours_db = pg_server.create_database(), pg_server.create_database()
    try:
        url, ours_url = pg_server.url_for(theirs_db), pg_server.url_for(ours_db)
        empty = _snapshot(url)
        z4j_migrate.upgrade(database_url=ours_url, migrations_dir=mine)
        expected = _snapshot(ours_url)
        first = z4j_migrate.upgrade(database_url=url, migrations_dir=folder, layout=layout)
        assert len(first.applied) == len(applied_ids(ours_url))
        assert differences(expected, _snapshot(url)) == []
        down = z4j_migrate.downgrade(database_url=url, migrations_dir=folder, layout=layout, to="base")
        assert [r.id for r in down.rolled_back] == [r.id for r in reversed(first.applied)]
        assert differences(empty, _snapshot(url)) == [] and applied_ids(url) == []
        again = z4j_migrate.upgrade(database_url=url, migrations_dir=folder, layout=layout)
        assert [r.id for r in again.applied] == [r.id for r in first.applied]
        assert differences(expected, _snapshot(url)) == []
        imported = []
        noop = _run(
            server_log, pg_server, theirs_db, lambda database_url: imported.append(_noop(database_url, folder, layout))
        )
        assert len(noop.statements) <= 3 and noop.errors == [], noop.statements
        assert imported == [(False, False)]  # neither yoyo nor pglast
    finally:
        pg_server.drop_database(theirs_db)
        pg_server.drop_database(ours_db)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_directory_as_published_runs_like_ours(pg_server, server_log, tmp_path, layout):  # noqa: F811
    """Comments, headers, unpadded versions, titles with dots, an empty down, the tool's own
    transaction marker (golang-migrate has none: its CONCURRENTLY case is in the next test)."""
    _round_trip(pg_server, server_log, tmp_path, layout, settled=False)


@NEEDS_SETTLE
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_transactions_decided_by_the_sql(pg_server, server_log, tmp_path, layout):  # noqa: F811
    """A BEGIN ... COMMIT-wrapped file runs in our transaction; a lone CONCURRENTLY without a marker
    runs without one (sqlcheck.settle)."""
    _round_trip(pg_server, server_log, tmp_path, layout, settled=True)


def test_cli_layout_option_and_check(pg_server, database_url, tmp_path):
    """`--layout` on the click-free fast path and on `check`; a stray .sql file is exit 3 naming it."""
    from helpers import run_cli

    folder = _files(tmp_path / "gm", golang_migrate(False))
    done = run_cli("--database-url", database_url, "--migrations-dir", str(folder), "--layout", "golang-migrate")
    assert done.returncode == 0, done.stderr
    assert sorted(applied_ids(database_url)) == ["10_comment", "1_create_users_table", "2_v6.0-add-nick"]
    (folder / "seed.sql").write_text("SELECT 1;\n", encoding="utf-8")
    bad = run_cli("check", str(folder), "--no-lint", env={"Z4J_LAYOUT": "golang-migrate"})
    assert bad.returncode == 3 and "seed.sql" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
