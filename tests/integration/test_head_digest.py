"""The head digest (record.py) and the manifest-backed start-up check, on a real server.

The start-up check compares one stored 256-bit digest with the digest the revision files
(or z4j-migrate.sum) promise. These tests hold it to its contract: the triggers keep the
digest equal to a from-scratch recomputation whatever writes the bookkeeping tables, every
way it can go missing or stale is repaired by the next run, and a mismatch always falls
back to reading the whole history, so a pending revision is never skipped.
"""

from __future__ import annotations

import logging
import random

import digest
import psycopg
import pytest
from helpers import applied_ids, query, scalar, write_pair
from pgauth import login_role
from psycopg import sql

import z4j_migrate
from z4j_migrate import manifest
from z4j_migrate.revisions import discover

_stored, _recomputed, _expected = digest.stored, digest.recomputed, digest.expected


def _fill(folder, n: int) -> None:
    for i in range(1, n + 1):
        write_pair(folder, f"{i:04d}_t{i}", f"CREATE TABLE t{i} (id bigint PRIMARY KEY);", f"DROP TABLE t{i};")


def test_triggers_keep_the_digest_equal_to_a_full_recomputation(database_url, migrations):
    _fill(migrations, 8)
    rng = random.Random(20261125)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert _stored(database_url) == _recomputed(database_url) == _expected(migrations)
    for _ in range(12):  # random walk: partial upgrades and downgrades
        if rng.random() < 0.5:
            z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations, to=str(rng.randint(1, 8)))
        else:
            z4j_migrate.downgrade(database_url=database_url, migrations_dir=migrations, steps=rng.randint(1, 3))
        ids = applied_ids(database_url)
        assert _stored(database_url) == _recomputed(database_url) == _expected(migrations, ids), ids
    z4j_migrate.downgrade(database_url=database_url, migrations_dir=migrations, to="base")
    assert _stored(database_url) == 0 == _recomputed(database_url)


def test_foreign_writes_keep_the_digest_equal_to_a_full_recomputation(database_url, migrations):
    """Writers that are not z4j-migrate (stock yoyo, an operator's psql) go through the triggers."""
    _fill(migrations, 4)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    rng = random.Random(7)
    ops = [
        "INSERT INTO _yoyo_migration VALUES (md5('{n}') || md5('{n}'), 'x{n}', now())",
        "DELETE FROM _yoyo_migration WHERE migration_id = (SELECT min(migration_id) FROM _yoyo_migration)",
        "UPDATE _yoyo_migration SET applied_at_utc = now()",  # no digest input changes: delta 0
        "INSERT INTO _z4j_migrate_revision (migration_hash, migration_id, version, up_checksum, down_checksum, "
        "down_sql, down_transactional) VALUES (md5('r{n}'), 'r{n}', {n}, 'sha256:u{n}', 'sha256:d{n}', '', true)",
        "UPDATE _z4j_migrate_revision SET up_checksum = up_checksum || 'x' "
        "WHERE migration_id = (SELECT max(migration_id) FROM _z4j_migrate_revision)",
        "DELETE FROM _z4j_migrate_revision WHERE migration_id = (SELECT max(migration_id) FROM _z4j_migrate_revision)",
        "INSERT INTO _z4j_migrate_progress (migration_id, direction, statements_done, statements_total) "
        "VALUES ('p{n}', 'apply', 1, 2)",
        "DELETE FROM _z4j_migrate_progress WHERE migration_id = (SELECT min(migration_id) FROM _z4j_migrate_progress)",
    ]
    before = _stored(database_url)
    for n in range(40):
        query(database_url, rng.choice(ops).format(n=n))
        assert _stored(database_url) == _recomputed(database_url), n
    assert _stored(database_url) != before


def test_a_run_recomputes_the_digest_even_when_a_revision_fails(database_url, migrations):
    """z4j-migrate's own writes go through the triggers, in each revision's own transaction: the digest
    is right after every revision, also when a run stops on an error (or is interrupted)."""
    _fill(migrations, 2)
    write_pair(migrations, "0003_bad", "CREATE TABLE t3 (id int); SELECT 1/0;", "DROP TABLE t3;")
    with pytest.raises(z4j_migrate.RevisionFailed):
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert applied_ids(database_url) == ["0001_t1", "0002_t2"]
    assert _stored(database_url) == _recomputed(database_url) == _expected(migrations, ["0001_t1", "0002_t2"])
    with psycopg.connect(database_url, autocommit=True, options="-c z4j_migrate.writer=on") as conn:
        conn.execute("DELETE FROM _z4j_migrate_progress")  # no row: nothing to show
        conn.execute(
            "INSERT INTO _z4j_migrate_progress (migration_id, direction, statements_done, "
            "statements_total) VALUES ('zz', 'apply', 0, 1)"
        )
    assert _stored(database_url) != _recomputed(database_url)  # a session that sets the setting bypasses them


def test_a_hand_edit_of_the_history_is_seen_and_the_revision_applied_again(database_url, migrations):
    """An operator undoes 0003 by hand and deletes its rows: the next start-up must not call that a no-op."""
    _fill(migrations, 3)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    query(
        database_url,
        "DROP TABLE t3; DELETE FROM _yoyo_migration WHERE migration_id = '0003_t3';"
        "DELETE FROM _z4j_migrate_revision WHERE migration_id = '0003_t3'",
    )
    assert _stored(database_url) == _recomputed(database_url) == _expected(migrations, ["0001_t1", "0002_t2"])
    result = z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert [r.id for r in result.applied] == ["0003_t3"]
    assert scalar(database_url, "SELECT to_regclass('public.t3') IS NOT NULL") is True


def test_truncate_invalidates_and_the_next_run_rebuilds(database_url, migrations):
    _fill(migrations, 2)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    query(database_url, "TRUNCATE _z4j_migrate_progress")
    assert scalar(database_url, "SELECT digest IS NULL FROM _z4j_migrate_head") is True
    assert z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations).applied == ()
    assert _stored(database_url) == _expected(migrations)


def test_bookkeeping_without_a_head_gets_one_and_later_writes_are_tracked(database_url, migrations):
    """Bookkeeping made before the head digest existed: the first no-op creates it, triggers included."""
    _fill(migrations, 2)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    query(database_url, "DROP TABLE _z4j_migrate_head; DROP FUNCTION _z4j_migrate_head_track() CASCADE")
    assert scalar(database_url, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '_z4j_migrate_head%'") == 0
    assert z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations).applied == ()
    assert _stored(database_url) == _expected(migrations)
    assert scalar(database_url, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '_z4j_migrate_head%'") == 6
    write_pair(migrations, "0003_t3", "CREATE TABLE t3 (id int);", "DROP TABLE t3;")
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert _stored(database_url) == _recomputed(database_url) == _expected(migrations)


def test_a_second_head_row_is_distrusted_and_repaired(database_url, migrations):
    _fill(migrations, 2)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    query(database_url, "INSERT INTO _z4j_migrate_head SELECT digest FROM _z4j_migrate_head")
    assert _stored(database_url) is None  # two rows: not trusted
    assert z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations).applied == ()
    assert scalar(database_url, "SELECT count(*) FROM _z4j_migrate_head") == 1
    assert _stored(database_url) == _expected(migrations)


def test_a_role_that_may_not_create_the_head_still_migrates(pg_server, database_url, migrations, caplog):
    """DML-only application role, head dropped by the owner: the start-up check reads the full history."""
    _fill(migrations, 2)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    query(database_url, "DROP TABLE _z4j_migrate_head; DROP FUNCTION _z4j_migrate_head_track() CASCADE")
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with login_role(pg_server, prefix="app") as role:
        query(
            database_url,
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}")
            .format(sql.Identifier(role))
            .as_string(None),
        )
        url = pg_server.url_for(dbname, user=role)
        with caplog.at_level(logging.INFO, logger="z4j_migrate"):
            assert z4j_migrate.upgrade(database_url=url, migrations_dir=migrations).applied == ()
        assert any("may not create the bookkeeping head digest" in r.getMessage() for r in caplog.records)
        assert scalar(database_url, "SELECT to_regclass('public._z4j_migrate_head')") is None
        write_pair(migrations, "0003_t3", "CREATE TABLE t3 (id int);", "DROP TABLE t3;")
        query(database_url, sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(role)).as_string(None))
        assert [r.id for r in z4j_migrate.upgrade(database_url=url, migrations_dir=migrations).applied] == ["0003_t3"]
        assert scalar(database_url, "SELECT to_regclass('public.t3') IS NOT NULL") is True


# --------------------------------------------------------------------------- with a manifest


def _hashed(folder) -> None:
    manifest.write(folder, manifest.for_revisions(discover(folder)))


def test_a_pair_added_without_rehashing_is_still_applied(database_url, migrations, caplog):
    _fill(migrations, 2)
    _hashed(migrations)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    write_pair(migrations, "0003_t3", "CREATE TABLE t3 (id int);", "DROP TABLE t3;")  # manifest now stale
    with caplog.at_level(logging.WARNING, logger="z4j_migrate"):
        result = z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert [r.id for r in result.applied] == ["0003_t3"]
    assert scalar(database_url, "SELECT to_regclass('public.t3') IS NOT NULL") is True
    assert any("z4j-migrate.sum is out of date" in r.getMessage() for r in caplog.records)
    report = z4j_migrate.status(database_url=database_url, migrations_dir=migrations)
    assert report.manifest_stale == ("0003_t3.down.sql", "0003_t3.up.sql")


def test_an_edited_applied_file(database_url, migrations):
    """Re-hashed: the start-up check sees the new checksum and refuses. Not re-hashed: the
    documented blind spot (the no-op trusts the manifest), caught by status and check."""
    _fill(migrations, 2)
    _hashed(migrations)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    (migrations / "0002_t2.up.sql").write_text("-- message: t2\nCREATE TABLE t2 (id bigint PRIMARY KEY, x int);\n")
    assert z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations).applied == ()
    x_column = "SELECT count(*) FROM pg_attribute WHERE attrelid = 't2'::regclass AND attname = 'x'"
    assert scalar(database_url, x_column) == 0
    report = z4j_migrate.status(database_url=database_url, migrations_dir=migrations)
    assert [r.state for r in report.revisions] == ["applied", "edited"]
    assert report.manifest_stale == ("0002_t2.up.sql",)
    _hashed(migrations)
    with pytest.raises(z4j_migrate.DriftError, match="0002_t2.up.sql"):
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)


def test_no_op_with_manifest_reads_no_revision_file(database_url, migrations, monkeypatch):
    _fill(migrations, 3)
    _hashed(migrations)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    import z4j_migrate.startup as startup

    def refuse(_directory, _layout=None):
        raise AssertionError("the no-op read the revision files")

    monkeypatch.setattr(startup, "discover", refuse)
    assert z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations).applied == ()
    query(database_url, "CREATE TABLE t4 (id int)")  # the database moves on: not a no-op any more
    query(database_url, "DELETE FROM _yoyo_migration WHERE migration_id = '0003_t3'")
    with pytest.raises(AssertionError, match="read the revision files"):
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)


def test_the_bundled_manifest_matches_what_the_database_holds_at_head(database_url):
    from z4j_migrate.config import BUNDLED_DIR

    z4j_migrate.upgrade(database_url=database_url)
    assert manifest.trusted(BUNDLED_DIR) is not None, "sql/z4j-migrate.sum is stale: run make hash"
    assert _stored(database_url) == manifest.trusted(BUNDLED_DIR).head == _recomputed(database_url)


def test_a_stale_manifest_costs_a_slow_start_but_never_a_write(database_url, migrations):
    """A revision written after `hash` and applied: the database matches the files, not the manifest.
    Every start-up then reads the history (and warns), but must not rebuild the digest each time."""
    _fill(migrations, 2)
    write_pair(migrations, "0003_t3", "SELECT 1;", "SELECT 1;")  # as scaffolded, then hashed
    _hashed(migrations)
    write_pair(migrations, "0003_t3", "CREATE TABLE t3 (id int);", "DROP TABLE t3;")  # written afterwards
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert manifest.trusted(migrations) is not None  # same names: trusted, but its head is not the database's
    version = scalar(database_url, "SELECT xmin::text FROM _z4j_migrate_head")
    for _ in range(2):
        assert z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations).applied == ()
    assert scalar(database_url, "SELECT xmin::text FROM _z4j_migrate_head") == version
    assert _stored(database_url) == _expected(migrations)


def test_a_server_below_the_supported_version_is_refused_before_anything(database_url, migrations, monkeypatch):
    """The gate sits in connect: with the minimum raised above this real server, nothing is created."""
    import z4j_migrate.db as db

    _fill(migrations, 1)
    monkeypatch.setattr(db, "MIN_SERVER_VERSION", 10**7)
    with pytest.raises(z4j_migrate.ConfigError, match="needs PostgreSQL 14 or newer") as info:
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    assert info.value.exit_code == 2
    assert scalar(database_url, "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace") == 0
