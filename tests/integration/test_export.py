"""`export` on real PostgreSQL: stock yoyo (yoyo-migrations 9, installed with us) applies our yoyo
export to the catalog `z4j-migrate upgrade` builds and rolls it back to nothing; each exported
layout, run by z4j-migrate's reader of that layout, builds the same catalog and its no-op start-up
still sends two statements."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from helpers import applied_ids, query, write_pair
from test_statement_counts import _run, server_log  # noqa: F401  (server_log is a fixture)

import z4j_migrate
from z4j_migrate.catalog import snapshot
from z4j_migrate.export import EXPORT_LAYOUTS
from z4j_migrate.revisions import discover

YOYO = Path(sys.executable).with_name("yoyo")


def revisions(folder: Path) -> Path:
    """What yoyo's statement splitting and pairing, and file-name order, could get wrong: a function
    body with semicolons, ups and downs of different lengths, a non-transactional pair, a
    transactional up with a non-transactional down, and 10000 after 9999 (yoyo sorts by name)."""
    folder.mkdir()
    write_pair(
        folder,
        "0001_users",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n"
        "CREATE TYPE mood AS ENUM ('ok', 'meh');\n"
        "CREATE FUNCTION users_count() RETURNS bigint LANGUAGE plpgsql AS $$\n"
        "DECLARE n bigint;\nBEGIN\n  SELECT count(*) INTO n FROM users;\n  RETURN n;\nEND;\n$$;\n"
        "INSERT INTO users VALUES (1, 'a@example.org');\n",
        "DROP FUNCTION users_count();\nDROP TYPE mood;\nDROP TABLE users;\n",
    )
    write_pair(
        folder,
        "0002_users_email",
        "-- message: index users.email\n-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY ix_users_email ON users (email);\n",
        "-- transactional: false\nDROP INDEX CONCURRENTLY ix_users_email;\n",
    )
    write_pair(
        folder,
        "9999_tags",
        "CREATE TABLE tags (id bigint PRIMARY KEY, name text);\nCREATE INDEX ix_tags_name ON tags (name);\n"
        "COMMENT ON TABLE tags IS 'free-form; labels';\n",
        "-- transactional: false\nDROP INDEX CONCURRENTLY ix_tags_name;\nDROP TABLE tags;\n",
    )
    write_pair(
        folder,
        "10000_user_tags",
        "CREATE TABLE user_tags (user_id bigint REFERENCES users, tag_id bigint REFERENCES tags);\n"
        "CREATE VIEW tagged AS SELECT u.email, t.name FROM users u JOIN user_tags ut ON ut.user_id = u.id "
        "JOIN tags t ON t.id = ut.tag_id;\n",
        "DROP VIEW tagged;\nDROP TABLE user_tags;\n",
    )
    return folder


def catalog(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        return snapshot(conn)


def yoyo(command: str, url: str, folder: Path) -> subprocess.CompletedProcess[str]:
    info = psycopg.conninfo.conninfo_to_dict(url)
    yoyo_url = f"postgresql+psycopg://{info['user']}@{info['host']}:{info['port']}/{info['dbname']}"
    args = [str(YOYO), command, "--batch", "--no-config-file", "--database", yoyo_url, str(folder)]
    if command == "rollback":
        args.append("--all")  # batch mode rolls back only what it is told to
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_stock_yoyo_applies_the_export_to_our_catalog_and_rolls_it_back(pg_server, database_url, tmp_path):
    folder = revisions(tmp_path / "migrations")
    out = z4j_migrate.export("yoyo", tmp_path / "yoyo", migrations_dir=folder).directory
    empty = catalog(database_url)
    with pg_server.database("t_") as ours:
        z4j_migrate.upgrade(database_url=ours, migrations_dir=folder)
        expected = catalog(ours)
    applied = yoyo("apply", database_url, out)
    assert applied.returncode == 0, applied.stderr
    assert catalog(database_url) == expected
    assert sorted(applied_ids(database_url)) == sorted(r.id for r in discover(folder).revisions)
    rolled_back = yoyo("rollback", database_url, out)
    assert rolled_back.returncode == 0, rolled_back.stderr
    assert catalog(database_url) == empty
    assert applied_ids(database_url) == []


@pytest.mark.parametrize("layout", EXPORT_LAYOUTS)
def test_an_exported_directory_upgrades_alike_and_its_noop_stays_at_two_statements(
    pg_server,
    server_log,  # noqa: F811  (the fixture imported above)
    tmp_path,
    layout,
):
    folder = revisions(tmp_path / "migrations")
    out = z4j_migrate.export(layout, tmp_path / layout, migrations_dir=folder).directory
    ours, theirs = pg_server.create_database(), pg_server.create_database()
    try:
        z4j_migrate.upgrade(database_url=pg_server.url_for(ours), migrations_dir=folder)
        first = _run(server_log, pg_server, theirs, z4j_migrate.upgrade, migrations_dir=out, layout=layout)
        assert first.errors == [], first.errors
        assert catalog(pg_server.url_for(theirs)) == catalog(pg_server.url_for(ours))
        noop = _run(server_log, pg_server, theirs, z4j_migrate.upgrade, migrations_dir=out, layout=layout)
        assert len(noop.statements) == 2, noop.statements
        assert noop.errors == []
    finally:
        pg_server.drop_database(ours)
        pg_server.drop_database(theirs)


def test_stock_yoyo_on_a_paired_directory_runs_each_down_as_a_migration(database_url, migrations):
    """Why README and docs/revision-format.md warn: the downs become migrations of their own, each run
    just before its up (".down" sorts first), and yoyo exits 0 with the data gone."""
    write_pair(
        migrations,
        "0001_a",
        "CREATE TABLE IF NOT EXISTS a (id int);\nINSERT INTO a VALUES (1);",
        "DROP TABLE IF EXISTS a;",
    )
    write_pair(migrations, "0002_b", "INSERT INTO a VALUES (2);", "DELETE FROM a;")
    applied = yoyo("apply", database_url, migrations)
    assert applied.returncode == 0, applied.stderr
    history = "SELECT migration_id FROM _yoyo_migration ORDER BY applied_at_utc, migration_id"
    order = [r[0] for r in query(database_url, history)]
    assert order == ["0001_a.down", "0001_a.up", "0002_b.down", "0002_b.up"]
    assert query(database_url, "SELECT id FROM a") == [(2,)]  # row 1 deleted by 0002_b.down
