"""Transactions decided by the SQL (sqlcheck.settle), on a real server: a BEGIN ... COMMIT wrapper is
dropped and the revision runs in z4j-migrate's own transaction, bookkeeping included; a
CONCURRENTLY file without '-- transactional: false' is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import applied_ids, run_cli, scalar, state_fingerprint, write_pair

from z4j_migrate import api
from z4j_migrate.errors import RevisionFailed, RevisionFileError
from z4j_migrate.revisions import checksum

WRAPPED_UP = (
    "-- message: wrapped as psql users write it\n"
    "-- NOTE: the BEGIN/COMMIT below is dropped; z4j-migrate's own transaction replaces it\n"
    "BEGIN;\n"
    "CREATE TABLE w (id int PRIMARY KEY);\n"
    "INSERT INTO w VALUES (1);\n"
    "COMMIT;\n"
)
WRAPPED_DOWN = "START TRANSACTION;\nDROP TABLE w;\nEND;\n"


def test_a_wrapped_revision_applies_atomically_and_downgrades(database_url: str, migrations: Path):
    write_pair(migrations, "0001_base", "CREATE TABLE t (id int);\n", "DROP TABLE t;\n")
    write_pair(migrations, "0002_wrapped", WRAPPED_UP, WRAPPED_DOWN)
    result = api.upgrade(database_url=database_url, migrations_dir=migrations)
    assert [r.id for r in result.applied] == ["0001_base", "0002_wrapped"]
    assert scalar(database_url, "SELECT count(*) FROM w") == 1
    # One transaction wrote the table and the history row: had the file's COMMIT reached the
    # server, the bookkeeping would have been written by a later transaction.
    table_xmin = scalar(database_url, "SELECT xmin::text FROM pg_class WHERE oid = 'public.w'::regclass")
    row_xmin = scalar(database_url, "SELECT xmin::text FROM _yoyo_migration WHERE migration_id = '0002_wrapped'")
    assert table_xmin == row_xmin
    stored = scalar(database_url, "SELECT up_checksum FROM _z4j_migrate_revision WHERE migration_id = '0002_wrapped'")
    assert stored == checksum(WRAPPED_UP)  # the file as published
    assert api.upgrade(database_url=database_url, migrations_dir=migrations).applied == ()  # no drift
    rolled = api.downgrade(database_url=database_url, migrations_dir=migrations, to="0001")
    assert [r.id for r in rolled.rolled_back] == ["0002_wrapped"]
    assert scalar(database_url, "SELECT to_regclass('public.w')") is None
    assert applied_ids(database_url) == ["0001_base"]


def test_an_error_inside_a_wrapper_names_the_line_of_the_file(database_url: str, migrations: Path):
    write_pair(
        migrations,
        "0001_bad",
        "-- message: bad\nBEGIN;\nCREATE TABLE x (id int);\n\nINSERT INTO x VALUES ('not a number');\nCOMMIT;\n",
        "BEGIN;\nDROP TABLE x;\nCOMMIT;\n",
    )
    with pytest.raises(RevisionFailed) as info:
        api.upgrade(database_url=database_url, migrations_dir=migrations)
    assert f"{migrations / '0001_bad.up.sql'}:5" in str(info.value)
    assert scalar(database_url, "SELECT to_regclass('public.x')") is None
    assert applied_ids(database_url) == []


def test_concurrently_without_the_directive_is_refused_before_anything_runs(database_url: str, migrations: Path):
    write_pair(migrations, "0001_base", "CREATE TABLE t (id int);\n", "DROP TABLE t;\n")
    api.upgrade(database_url=database_url, migrations_dir=migrations)
    write_pair(migrations, "0002_fine", "CREATE TABLE f (id int);\n", "DROP TABLE f;\n")
    write_pair(
        migrations,
        "0003_index",
        "-- message: index\nCREATE TABLE y (id int);\nCREATE INDEX CONCURRENTLY iy ON y (id);\n",
        "DROP TABLE y;\n",
    )
    before = state_fingerprint(database_url)
    with pytest.raises(RevisionFileError, match="CREATE INDEX CONCURRENTLY cannot run inside a transaction") as info:
        api.upgrade(database_url=database_url, migrations_dir=migrations)
    assert (info.value.path, info.value.line) == (str(migrations / "0003_index.up.sql"), 3)
    assert "'-- transactional: false'" in str(info.value)
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
    cli = run_cli("upgrade", env=env)
    assert cli.returncode == 3 and "Traceback" not in cli.stderr and "0003_index.up.sql:3" in cli.stderr
    assert state_fingerprint(database_url) == before  # 0002_fine did not run either
    # The fix the message names: the file then runs statement by statement, and the index is valid.
    text = (migrations / "0003_index.up.sql").read_text().replace("-- message: index\n", "")
    (migrations / "0003_index.up.sql").write_text("-- message: index\n-- transactional: false\n" + text)
    applied = api.upgrade(database_url=database_url, migrations_dir=migrations).applied
    assert [r.id for r in applied] == ["0002_fine", "0003_index"]
    assert scalar(database_url, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.iy'::regclass") is True
