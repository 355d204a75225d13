"""verify's change journal (z4j_migrate/journal.py) on real PostgreSQL: after every DDL step, the
snapshot kept up to date from the journal equals a full catalog snapshot, and the steps the journal
can follow are followed without one.

The steps are chosen for what an incremental snapshot could get wrong: renames that change the text
of other roots (a foreign key, a view, a default, a trigger, a function body, a composite type, a
sequence's OWNED BY), deletions that leave the parent's catalog row alone (DROP INDEX / TRIGGER /
POLICY, a comment removed, OWNED BY NONE), partitions, DDL run from a DO block, and the commands
the journal cannot follow (GRANT, a schema, an extension, a name shared across schemas).
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from helpers import run_cli, write_pair

from z4j_migrate import journal
from z4j_migrate.verify import _schemas, take_snapshot

# (DDL, whether the journal must fall back to a full snapshot for it)
STEPS: list[tuple[str, bool]] = [
    ("CREATE TYPE mood AS ENUM ('happy', 'sad')", False),
    ("CREATE TABLE parent (id int PRIMARY KEY, m mood DEFAULT 'happy', note text)", False),
    ("CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id), n serial)", False),
    ("CREATE VIEW v AS SELECT id, note FROM parent", False),
    ("ALTER TABLE parent RENAME COLUMN note TO remark", False),
    ("ALTER TABLE parent RENAME TO mother", False),
    ("ALTER TYPE mood RENAME VALUE 'happy' TO 'glad'", False),
    ("ALTER TYPE mood RENAME TO feeling", False),
    ("CREATE INDEX ix ON child (parent_id); COMMENT ON INDEX ix IS 'the index'", False),
    ("DROP INDEX ix", False),
    ("CREATE INDEX ix2 ON child (parent_id)", False),
    ("REINDEX INDEX CONCURRENTLY ix2", False),  # a new oid for ix2, and no event before PostgreSQL 17
    ("DROP INDEX ix2", False),
    (
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;"
        "CREATE TRIGGER tg BEFORE UPDATE ON child FOR EACH ROW EXECUTE FUNCTION touch()",
        False,
    ),
    ("ALTER FUNCTION touch() RENAME TO touch2", False),
    ("DROP TRIGGER tg ON child", False),
    ("COMMENT ON COLUMN child.id IS 'c'; COMMENT ON CONSTRAINT child_pkey ON child IS 'pk'", False),
    ("COMMENT ON COLUMN child.id IS NULL; COMMENT ON CONSTRAINT child_pkey ON child IS NULL", False),
    ("ALTER TABLE child ENABLE ROW LEVEL SECURITY; CREATE POLICY p ON child USING (id > 0)", False),
    ("DROP POLICY p ON child", False),
    ("CREATE SEQUENCE s; ALTER SEQUENCE s OWNED BY child.id", False),
    ("ALTER TABLE child RENAME COLUMN id TO cid", False),
    ("ALTER SEQUENCE s OWNED BY NONE", False),
    ("CREATE DOMAIN posint AS int CHECK (VALUE > 0); CREATE TYPE pair AS (a posint, b text)", False),
    ("ALTER DOMAIN posint RENAME TO pint", False),
    ("CREATE FUNCTION cnt() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM mother; END", False),
    ("ALTER TABLE mother RENAME TO mom", False),
    ("ALTER TABLE mom ADD COLUMN extra int, ADD CONSTRAINT pos CHECK (id > 0)", False),
    ("ALTER TABLE mom DROP COLUMN extra, DROP CONSTRAINT pos", False),
    (
        "CREATE TABLE events (id int, at date) PARTITION BY RANGE (at);"
        "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        False,
    ),
    ("ALTER TABLE events DETACH PARTITION events_2024", False),
    ("DO $$ BEGIN EXECUTE 'CREATE TABLE dyn (x int)'; END $$", False),
    ("CREATE MATERIALIZED VIEW mv AS SELECT 1 AS x WITH NO DATA", False),
    ("REFRESH MATERIALIZED VIEW mv", False),
    ("ALTER TABLE child ALTER parent_id SET DEFAULT 1", False),
    ("ALTER TABLE child ALTER parent_id DROP DEFAULT", False),
    ("GRANT SELECT ON child TO PUBLIC", True),
    ("CREATE SCHEMA other", True),
    ("CREATE TABLE other.things (id int)", False),
    ("CREATE TABLE other.mom (id int)", True),  # named like public.mom
    ("CREATE EXTENSION IF NOT EXISTS citext", True),
    # A schema named after the role comes first on the default search_path ("$user", public).
    ("CREATE SCHEMA AUTHORIZATION CURRENT_USER", True),
    ("CREATE TABLE public.vis (id int); CREATE VIEW public.vv AS SELECT id FROM public.vis", False),
    ("DO $$ BEGIN EXECUTE format('CREATE TABLE %I.vis (id int)', current_user); END $$", True),
    ("DO $$ BEGIN EXECUTE format('DROP TABLE %I.vis', current_user); END $$", True),
    ("DROP VIEW public.vv; DROP TABLE public.vis", False),
    ("CREATE TABLE ci (x citext)", False),
    ("DROP VIEW v; DROP TABLE child CASCADE", False),
    ("DROP TYPE feeling CASCADE", False),
    ("DROP TABLE mom, events, events_2024, dyn, ci CASCADE; DROP MATERIALIZED VIEW mv", True),  # other.mom
    ("DROP FUNCTION touch2(); DROP TYPE pair; DROP DOMAIN pint; DROP SEQUENCE s", False),
]


@pytest.fixture
def tracked(database_url):
    """A tracker on one connection, and another connection for the DDL (as verify's engine)."""
    with psycopg.connect(database_url, autocommit=True) as conn, psycopg.connect(database_url, autocommit=True) as ddl:
        if not journal.install(conn):
            pytest.skip("the role may not create event triggers")
        tracker = journal.Tracker(conn, lambda: _schemas(conn), "public")
        yield tracker, ddl


def test_every_step_matches_a_full_snapshot(tracked):
    tracker, ddl = tracked
    assert tracker.snapshot() == take_snapshot(tracker.conn)
    for statement, full in STEPS:
        fulls = tracker.full_count
        ddl.execute(statement)
        assert tracker.snapshot() == take_snapshot(tracker.conn), statement
        assert tracker.full_count == fulls + int(full), statement


def test_two_snapshots_in_a_row_and_a_rolled_back_step(tracked):
    tracker, ddl = tracked
    ddl.execute("CREATE TABLE t (id int)")
    first = tracker.snapshot()
    assert tracker.snapshot() == first and "t" in first["table"]
    with pytest.raises(psycopg.errors.DivisionByZero), ddl.transaction():
        ddl.execute("ALTER TABLE t ADD COLUMN gone int; SELECT 1 / 0")
    assert tracker.snapshot() == first == take_snapshot(tracker.conn)


def test_a_journal_dropped_by_hand_means_full_snapshots(tracked):
    tracker, ddl = tracked
    tracker.snapshot()
    ddl.execute(f"DROP SCHEMA {journal.JOURNAL_SCHEMA} CASCADE; CREATE TABLE t (id int)")
    assert tracker.snapshot() == take_snapshot(tracker.conn) and "t" in tracker.snapshot()["table"]


def test_verify_without_the_journal_still_finds_a_bad_down(pg_server, migrations):
    """A role that may create databases but not event triggers: verify takes full snapshots."""
    write_pair(migrations, "0001_base", "CREATE TABLE t (id int);", "DROP TABLE t;")
    write_pair(migrations, "0002_ix", "CREATE INDEX ix ON t (id);", "SELECT 1;")
    role = f"z4j_nosuper_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN CREATEDB NOSUPERUSER")
    try:
        url = pg_server.url_for("postgres", user=role)
        r = run_cli("verify", "--database-url", url, "--migrations-dir", str(migrations))
        assert r.returncode == 9 and "0002_ix.down.sql leaves index ix on t" in r.stdout, r.stdout + r.stderr
    finally:
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


def _walk(tracker, settings, revisions) -> int:
    """Each revision up, then each down, through the engine; the tracker must match a full snapshot
    after every step. Returns how many full snapshots the tracker took."""
    from z4j_migrate import api

    fulls = tracker.full_count
    for rev in revisions:
        api.upgrade(settings, to=rev.id)
        assert tracker.snapshot() == take_snapshot(tracker.conn), f"after {rev.id} up"
    for rev in reversed(revisions):
        api.downgrade(settings, steps=1)
        assert tracker.snapshot() == take_snapshot(tracker.conn), f"after {rev.id} down"
    return tracker.full_count - fulls


def test_the_bundled_schema_up_and_down(tracked, database_url):
    from z4j_migrate.config import BUNDLED_DIR, settings_from_env
    from z4j_migrate.revisions import discover

    tracker, _ddl = tracked
    tracker.snapshot()
    settings = settings_from_env(database_url, BUNDLED_DIR)
    _walk(tracker, settings, discover(settings.migrations_dir).revisions)


def test_the_synthetic_benchmark_set_up_and_down(tracked, database_url, tmp_path):
    """bench/gen.py's revisions (tables, foreign keys, columns, functions, triggers, views, enums):
    followed from the journal alone, not one full snapshot after the first."""
    import sys
    from pathlib import Path

    from z4j_migrate.config import settings_from_env
    from z4j_migrate.revisions import discover

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import gen

    folder = gen.write_sets(tmp_path, [60])[60] / "z4j"
    tracker, _ddl = tracked
    tracker.snapshot()
    settings = settings_from_env(database_url, folder)
    assert _walk(tracker, settings, discover(folder).revisions) == 0


def test_ddl_under_another_role_is_journaled(tracked):
    """A revision may SET ROLE to a role that has no rights on the journal: its DDL still lands there."""
    tracker, ddl = tracked
    role = f"z4j_app_{uuid.uuid4().hex[:8]}"
    ddl.execute(f"CREATE ROLE {role}; GRANT CREATE ON SCHEMA public TO {role}")
    try:
        tracker.snapshot()
        fulls = tracker.full_count
        ddl.execute(f"SET ROLE {role}; CREATE TABLE app_t (id int); RESET ROLE")
        assert tracker.snapshot() == take_snapshot(tracker.conn) and "app_t" in tracker.snapshot()["table"]
        assert tracker.full_count == fulls
    finally:
        ddl.execute(f"DROP TABLE IF EXISTS app_t; REVOKE CREATE ON SCHEMA public FROM {role}; DROP ROLE {role}")
