"""Catalog snapshots against a real PostgreSQL: what is ours, what differs, what is rendered."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus

from z4j_migrate import catalog
from z4j_migrate.catalog import Difference, diff, object_names, render_markdown, snapshot


@pytest.fixture
def catalog_db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the fresh database of the shared `database_url` fixture."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def role(catalog_db: psycopg.Connection[Any]) -> Iterator[str]:
    """A throwaway role; roles are cluster-wide, so it is dropped by name afterwards."""
    name = f"z4j_catalog_role_{uuid.uuid4().hex[:8]}"
    catalog_db.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        ident = sql.Identifier(name)
        catalog_db.execute(sql.SQL("DROP OWNED BY {}").format(ident))
        catalog_db.execute(sql.SQL("DROP ROLE {}").format(ident))


def run(conn: psycopg.Connection[Any], script: str) -> None:
    """Run a multi-statement script (simple query protocol, no parameters)."""
    conn.execute(script.encode())


def changes(conn: psycopg.Connection[Any], setup: str, change: str) -> list[str]:
    """Differences, as text, that ``change`` makes to the schema built by ``setup``."""
    if setup:
        run(conn, setup)
    before = snapshot(conn)
    run(conn, change)
    return [str(d) for d in diff(before, snapshot(conn))]


EVERYTHING = """
CREATE EXTENSION citext;
CREATE TYPE task_state AS ENUM ('pending', 'running', 'done');
CREATE DOMAIN email AS citext CONSTRAINT email_has_at CHECK (VALUE ~ '@');
CREATE TYPE pair AS (a integer, b text);
CREATE TYPE floatrange AS RANGE (subtype = float8);
CREATE SEQUENCE ticket_seq START 100 INCREMENT 5;
CREATE TABLE tasks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project text NOT NULL,
    fingerprint text,
    state task_state NOT NULL DEFAULT 'pending',
    mail email,
    doubled bigint GENERATED ALWAYS AS (id * 2) STORED,
    CONSTRAINT ck_tasks_fingerprint CHECK (fingerprint <> '')
);
CREATE INDEX ix_tasks_project_fingerprint ON tasks (project, fingerprint);
CREATE TABLE events (
    id serial PRIMARY KEY,
    task_id bigint REFERENCES tasks (id),
    kind text COLLATE "C"
);
CREATE TABLE log (id integer, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE log_2024 PARTITION OF log FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN NEW.project := lower(NEW.project); RETURN NEW; END$$;
CREATE PROCEDURE noop() LANGUAGE sql AS $$SELECT 1$$;
CREATE TRIGGER trg_touch BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW open_tasks AS SELECT id, state FROM tasks WHERE state <> 'done';
CREATE MATERIALIZED VIEW task_counts AS SELECT state, count(*) AS n FROM tasks GROUP BY state;
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_project ON tasks USING (project = current_user);
COMMENT ON TABLE tasks IS 'Units of work';
COMMENT ON COLUMN tasks.state IS 'Lifecycle state';
REVOKE EXECUTE ON FUNCTION touch() FROM PUBLIC;
"""


def test_empty_database_with_extensions_has_nothing_of_ours(
    catalog_db: psycopg.Connection[Any],
) -> None:
    run(
        catalog_db,
        "CREATE EXTENSION pgcrypto; CREATE EXTENSION citext; CREATE EXTENSION pg_trgm;",
    )
    snap = snapshot(catalog_db)
    assert object_names(snap) == []
    assert set(snap) == set(catalog.KINDS)


def test_every_kind_of_object_is_named(catalog_db: psycopg.Connection[Any], role: str) -> None:
    run(catalog_db, EVERYTHING)
    catalog_db.execute(sql.SQL("GRANT SELECT ON tasks TO {}").format(sql.Identifier(role)))
    names = object_names(snapshot(catalog_db))
    expected = [
        "table tasks",
        "table log",
        "table log_2024",
        "partition log_2024 of log",
        "column tasks.state",
        "column tasks.doubled",
        "column events.kind",
        "constraint ck_tasks_fingerprint on tasks",
        "constraint tasks_pkey on tasks",
        "constraint events_task_id_fkey on events",
        "index ix_tasks_project_fingerprint on tasks",
        "index tasks_pkey on tasks",
        "trigger trg_touch on tasks",
        "policy own_project on tasks",
        "sequence ticket_seq",
        "sequence tasks_id_seq",
        "sequence events_id_seq",
        "view open_tasks",
        "materialized view task_counts",
        "type task_state",
        "type email",
        "type pair",
        "type floatrange",
        "function touch()",
        "function noop()",
        "comment on table tasks",
        "comment on column tasks.state",
        f"grant SELECT on table tasks to {role}",
        "grant EXECUTE on function touch() revoked from PUBLIC",
    ]
    missing = [name for name in expected if name not in names]
    assert missing == []
    # Extension members, implicit row/array/multirange types and range constructors
    # are PostgreSQL's or citext's, not ours.
    assert not [n for n in names if "citext" in n or "multirange" in n]
    assert not [n for n in names if n.startswith(("type _", "function floatrange("))]
    assert not {"type tasks", "type open_tasks", "type task_counts"} & set(names)


def test_descriptions_carry_the_details(catalog_db: psycopg.Connection[Any]) -> None:
    run(catalog_db, EVERYTHING)
    snap = snapshot(catalog_db)
    assert snap["column"]["tasks.state"] == {
        "table": "tasks",
        "position": 4,
        "type": "task_state",
        "nullable": False,
        "default": "'pending'::task_state",
        "generated": None,
        "identity": None,
        "collation": None,
    }
    assert snap["column"]["tasks.id"]["identity"] == "always"
    assert snap["column"]["tasks.doubled"]["generated"] == "(id * 2) stored"
    assert snap["column"]["events.kind"]["collation"] == "C"
    assert snap["type"]["task_state"] == {
        "type": "enum",
        "labels": ["pending", "running", "done"],
    }
    assert snap["type"]["email"]["constraints"] == ["email_has_at: CHECK ((VALUE ~ '@'::citext))"]
    assert snap["type"]["pair"]["attributes"] == ["a integer", "b text"]
    assert snap["table"]["log"]["partition key"] == "RANGE (at)"
    assert snap["table"]["tasks"]["row security"] is True
    assert snap["sequence"]["ticket_seq"]["start"] == 100
    assert snap["sequence"]["ticket_seq"]["increment"] == 5
    assert snap["sequence"]["tasks_id_seq"]["owned by"] == "tasks.id"
    assert snap["sequence"]["tasks_id_seq"]["identity"] is True
    assert snap["sequence"]["events_id_seq"]["owned by"] == "events.id"
    assert snap["function"]["noop()"]["kind"] == "procedure"
    assert snap["function"]["touch()"]["returns"] == "trigger"
    assert snap["function"]["touch()"]["language"] == "plpgsql"
    assert snap["trigger"]["trg_touch on tasks"]["state"] == "enabled"
    assert snap["index"]["ix_tasks_project_fingerprint on tasks"]["valid"] is True
    assert snap["comment"]["on table tasks"]["text"] == "Units of work"


def test_identical_snapshots_do_not_differ(catalog_db: psycopg.Connection[Any]) -> None:
    run(catalog_db, EVERYTHING)
    first = snapshot(catalog_db)
    assert diff(first, snapshot(catalog_db)) == []
    # A stored snapshot compares equal to a live one.
    assert diff(json.loads(catalog.render_json(first)), first) == []


@pytest.mark.parametrize(
    ("setup", "change", "expected"),
    [
        pytest.param(
            "CREATE TABLE tasks (project text, fingerprint text);",
            "CREATE INDEX ix_tasks_project_fingerprint ON tasks (project, fingerprint);",
            ["index ix_tasks_project_fingerprint on tasks left behind"],
            id="leftover-index",
        ),
        pytest.param(
            "",
            "CREATE TYPE task_state AS ENUM ('pending', 'done');",
            ["type task_state left behind"],
            id="leftover-enum-type",
        ),
        pytest.param(
            "",
            "CREATE FUNCTION f(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1';",
            ["function f(integer) left behind"],
            id="leftover-function",
        ),
        pytest.param(
            """CREATE TABLE tasks (id integer);
               CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql
                   AS $$BEGIN RETURN NEW; END$$;""",
            "CREATE TRIGGER trg_touch BEFORE UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION touch();",
            ["trigger trg_touch on tasks left behind"],
            id="leftover-trigger",
        ),
        pytest.param(
            """CREATE TYPE task_state AS ENUM ('pending', 'done');
               CREATE TABLE tasks (state task_state NOT NULL DEFAULT 'pending');""",
            "ALTER TABLE tasks ALTER COLUMN state DROP DEFAULT;",
            ["column tasks.state default changed: 'pending'::task_state -> NULL"],
            id="column-default-not-restored",
        ),
        pytest.param(
            "CREATE TYPE task_state AS ENUM ('a', 'b');",
            "ALTER TYPE task_state ADD VALUE 'c';",
            [
                "type task_state labels changed: ['a', 'b'] -> ['a', 'b', 'c']",
                "enum label 'c' on type task_state left behind",
            ],
            id="enum-label-not-removed",
        ),
        pytest.param(
            # No column references: PostgreSQL 15 qualifies them in view text, 18 does not.
            "CREATE VIEW open_tasks AS SELECT 'done'::text AS state;",
            "CREATE OR REPLACE VIEW open_tasks AS SELECT 'open'::text AS state;",
            ["view open_tasks definition changed: SELECT 'done'::text AS state; -> SELECT 'open'::text AS state;"],
            id="changed-view-definition",
        ),
        pytest.param(
            """CREATE TABLE log (at date NOT NULL) PARTITION BY RANGE (at);
               CREATE TABLE log_2024 PARTITION OF log
                   FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');""",
            """ALTER TABLE log DETACH PARTITION log_2024;
               ALTER TABLE log ATTACH PARTITION log_2024
                   FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');""",
            [
                "partition log_2024 of log bound changed: "
                "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') -> "
                "FOR VALUES FROM ('2024-01-01') TO ('2024-07-01')"
            ],
            id="changed-partition-bound",
        ),
        pytest.param(
            """CREATE TABLE tasks (id integer);
               CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql
                   AS $$BEGIN RETURN NEW; END$$;
               CREATE TRIGGER trg_touch BEFORE UPDATE ON tasks
                   FOR EACH ROW EXECUTE FUNCTION touch();""",
            "ALTER TABLE tasks DISABLE TRIGGER trg_touch;",
            ["trigger trg_touch on tasks state changed: enabled -> disabled"],
            id="disabled-trigger",
        ),
        pytest.param(
            "CREATE TABLE tasks (fingerprint text CONSTRAINT ck_fp CHECK (fingerprint <> ''));",
            "ALTER TABLE tasks DROP CONSTRAINT ck_fp;",
            ["constraint ck_fp on tasks missing"],
            id="dropped-check-constraint",
        ),
        pytest.param(
            "CREATE TABLE tasks (id integer); COMMENT ON TABLE tasks IS 'old words';",
            "COMMENT ON TABLE tasks IS 'new words';",
            ["comment on table tasks text changed: old words -> new words"],
            id="comment-change",
        ),
        pytest.param(
            "CREATE FUNCTION f(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1';",
            "REVOKE EXECUTE ON FUNCTION f(integer) FROM PUBLIC;",
            ["grant EXECUTE on function f(integer) revoked from PUBLIC left behind"],
            id="revoked-default-grant",
        ),
        pytest.param(
            "CREATE TABLE tasks (id integer, note text);COMMENT ON COLUMN tasks.note IS 'free text';",
            "ALTER TABLE tasks DROP COLUMN note;",
            ["column tasks.note missing"],
            id="dropped-column-implies-its-comment",
        ),
        pytest.param(
            "",
            """CREATE TABLE extra (id serial PRIMARY KEY, name text UNIQUE);
               CREATE INDEX ix_extra_name ON extra (lower(name));
               COMMENT ON TABLE extra IS 'left over';
               COMMENT ON COLUMN extra.name IS 'a name';""",
            ["table extra left behind"],
            id="leftover-table-implies-its-parts",
        ),
        pytest.param(
            "CREATE TABLE tasks (id integer);",
            "CREATE TYPE pair AS (a integer); ALTER TABLE tasks ADD COLUMN p pair;",
            ["column tasks.p left behind", "type pair left behind"],
            id="leftover-column-and-type",
        ),
        pytest.param(
            "CREATE TABLE tasks (a integer, b integer, c integer);",
            "ALTER TABLE tasks DROP COLUMN b; ALTER TABLE tasks ADD COLUMN b integer;",
            [
                "column tasks.b position changed: 2 -> 3",
                "column tasks.c position changed: 3 -> 2",
            ],
            id="column-order",
        ),
    ],
)
def test_diff_names_what_changed(
    catalog_db: psycopg.Connection[Any], setup: str, change: str, expected: list[str]
) -> None:
    assert changes(catalog_db, setup, change) == expected


def test_diff_reports_missing_objects_too(catalog_db: psycopg.Connection[Any]) -> None:
    run(catalog_db, EVERYTHING)
    before = snapshot(catalog_db)
    run(
        catalog_db,
        "DROP INDEX ix_tasks_project_fingerprint; DROP VIEW open_tasks; DROP PROCEDURE noop();",
    )
    after = snapshot(catalog_db)
    assert [str(d) for d in diff(before, after)] == [
        "index ix_tasks_project_fingerprint on tasks missing",
        "view open_tasks missing",
        "function noop() missing",
    ]
    assert diff(after, before) == [
        Difference("index", "ix_tasks_project_fingerprint on tasks", "left behind"),
        Difference("view", "open_tasks", "left behind"),
        Difference("function", "noop()", "left behind"),
    ]


def test_grant_changes(catalog_db: psycopg.Connection[Any], role: str) -> None:
    run(catalog_db, "CREATE TABLE tasks (id integer, secret text);")
    before = snapshot(catalog_db)
    grantee = sql.Identifier(role)
    catalog_db.execute(sql.SQL("GRANT SELECT, INSERT ON tasks TO {}").format(grantee))
    catalog_db.execute(sql.SQL("GRANT UPDATE (secret) ON tasks TO {}").format(grantee))
    after = snapshot(catalog_db)
    assert [str(d) for d in diff(before, after)] == [
        f"grant INSERT on table tasks to {role} left behind",
        f"grant SELECT on table tasks to {role} left behind",
        f"grant UPDATE on column tasks.secret to {role} left behind",
    ]
    catalog_db.execute(sql.SQL("REVOKE INSERT ON tasks FROM {}").format(grantee))
    catalog_db.execute(sql.SQL("GRANT SELECT ON tasks TO {} WITH GRANT OPTION").format(grantee))
    assert [str(d) for d in diff(after, snapshot(catalog_db))] == [
        f"grant INSERT on table tasks to {role} missing",
        f"grant SELECT on table tasks to {role} grantable changed: false -> true",
    ]


def test_long_values_are_cut_around_the_change(catalog_db: psycopg.Connection[Any]) -> None:
    body = "SELECT " + " + ".join(f"{i}" for i in range(100))
    run(catalog_db, f"CREATE FUNCTION big() RETURNS integer LANGUAGE sql AS '{body}';")
    before = snapshot(catalog_db)
    run(
        catalog_db,
        f"CREATE OR REPLACE FUNCTION big() RETURNS integer LANGUAGE sql AS '{body.replace(' 50 ', ' 5000 ')}';",
    )
    (difference,) = diff(before, snapshot(catalog_db))
    assert difference.kind == "function"
    assert difference.change == "changed"
    assert difference.detail.startswith("body changed: …")
    assert " 50 " in difference.detail
    assert " 5000 " in difference.detail
    assert len(str(difference)) < 250


def test_bookkeeping_tables_are_excluded(catalog_db: psycopg.Connection[Any]) -> None:
    for table in sorted(catalog.BOOKKEEPING_TABLES):
        run(
            catalog_db,
            f"""CREATE TABLE {table} (id serial PRIMARY KEY, name text UNIQUE);
                CREATE INDEX ix_{table} ON {table} (name);
                COMMENT ON TABLE {table} IS 'bookkeeping';
                COMMENT ON COLUMN {table}.name IS 'bookkeeping';
                GRANT SELECT ON {table} TO PUBLIC;""",
        )
    assert object_names(snapshot(catalog_db)) == []
    everything = object_names(snapshot(catalog_db, exclude_tables=()))
    assert "table yoyo_lock" in everything
    assert "sequence _yoyo_log_id_seq" in everything
    assert "index ix__yoyo_log on _yoyo_log" in everything
    # Schema-qualified names work too.
    only_public_lock = snapshot(catalog_db, exclude_tables={"public.yoyo_lock"})
    assert "table yoyo_lock" not in object_names(only_public_lock)
    assert "table _yoyo_log" in object_names(only_public_lock)


def test_other_schemas_are_qualified(catalog_db: psycopg.Connection[Any]) -> None:
    run(
        catalog_db,
        """CREATE SCHEMA app;
           CREATE TABLE app.tasks (id serial PRIMARY KEY);
           CREATE TYPE app.task_state AS ENUM ('a');
           CREATE TABLE public.elsewhere (id integer);""",
    )
    names = object_names(snapshot(catalog_db, schemas=["app"]))
    assert "table app.tasks" in names
    assert "column app.tasks.id" in names
    assert "sequence app.tasks_id_seq" in names
    assert "type app.task_state" in names
    assert "index tasks_pkey on app.tasks" in names
    assert not [n for n in names if "elsewhere" in n]
    both = object_names(snapshot(catalog_db, schemas=["app", "public"]))
    assert "table elsewhere" in both
    assert "table app.tasks" in both


def test_catalog_names_cannot_be_shadowed(catalog_db: psycopg.Connection[Any]) -> None:
    run(
        catalog_db,
        """CREATE TABLE tasks (state text DEFAULT 'new');
           CREATE TABLE pg_class (relname text);
           CREATE FUNCTION pg_get_expr(pg_node_tree, oid) RETURNS text
               LANGUAGE sql AS $$SELECT 'shadowed'$$;
           SET search_path = public, pg_catalog;""",
    )
    snap = snapshot(catalog_db)
    assert snap["column"]["tasks.state"]["default"] == "'new'::text"
    assert {"tasks", "pg_class"} <= set(snap["table"])


def test_transaction_state_is_left_as_found(catalog_db: psycopg.Connection[Any]) -> None:
    run(catalog_db, "CREATE TABLE tasks (id integer);")
    snapshot(catalog_db)
    assert catalog_db.info.transaction_status == TransactionStatus.IDLE

    with psycopg.connect(make_conninfo(catalog_db.info.dsn)) as conn:
        assert not conn.autocommit
        snapshot(conn)
        assert conn.info.transaction_status == TransactionStatus.IDLE
        # Inside the caller's transaction: uncommitted DDL is seen, nothing is committed.
        conn.execute("CREATE TABLE uncommitted (id integer)")
        assert "table uncommitted" in object_names(snapshot(conn))
        assert conn.info.transaction_status == TransactionStatus.INTRANS
        conn.rollback()
        assert "table uncommitted" not in object_names(snapshot(conn))


def test_render_markdown_is_deterministic_and_complete(catalog_db: psycopg.Connection[Any], role: str) -> None:
    run(catalog_db, EVERYTHING)
    catalog_db.execute(sql.SQL("GRANT SELECT ON tasks TO {}").format(sql.Identifier(role)))
    snap = snapshot(catalog_db)
    text = render_markdown(snap)
    assert text == render_markdown(snapshot(catalog_db))
    assert text == render_markdown(json.loads(catalog.render_json(snap)))
    assert text.startswith("# Schema reference\n")
    for table in ("tasks", "events", "log"):
        assert f"### `{table}`" in text
    for name in ("task_state", "email", "pair", "floatrange", "ticket_seq", "touch()", "noop()"):
        assert f"### `{name}`" in text
    assert "Labels, in order: `pending`, `running`, `done`." in text
    assert "- `log_2024`: `FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`" in text
    assert "| `state` | `task_state` | not null | `'pending'::task_state` | Lifecycle state |" in text
    assert f"Grants: SELECT to {role}." in text
    assert "### `open_tasks`" in text and "### `task_counts`" in text
    assert render_markdown(snap, title="Ours").startswith("# Ours\n")
    assert render_markdown(snapshot(catalog_db, schemas=["nothing_here"])) == "# Schema reference\n"


def test_fifty_tables(catalog_db: psycopg.Connection[Any]) -> None:
    run(
        catalog_db,
        """CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql
               AS $$BEGIN RETURN NEW; END$$;""",
    )
    statements = []
    for i in range(50):
        parent = f", parent_id bigint REFERENCES t{i - 1} (id)" if i else ""
        statements.append(
            f"""CREATE TABLE t{i} (
                    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                    name text NOT NULL DEFAULT 'x' CHECK (name <> ''),
                    created_at timestamptz NOT NULL DEFAULT now(){parent});
                CREATE INDEX ix_t{i}_name ON t{i} (name);
                CREATE TRIGGER trg_t{i} BEFORE UPDATE ON t{i}
                    FOR EACH ROW EXECUTE FUNCTION touch();
                COMMENT ON TABLE t{i} IS 'table {i}';"""
        )
    run(catalog_db, "\n".join(statements))
    snap = snapshot(catalog_db)
    counts = {kind: len(objs) for kind, objs in snap.items() if objs}
    assert counts == {
        "table": 50,
        "column": 50 * 3 + 49,
        "constraint": 50 * 2 + 49,
        "index": 50 * 2,
        "trigger": 50,
        "sequence": 50,
        "function": 1,
        "comment": 50,
    }
    assert snap["constraint"]["t7_parent_id_fkey on t7"]["definition"] == ("FOREIGN KEY (parent_id) REFERENCES t6(id)")
    assert diff(snap, snapshot(catalog_db)) == []


def test_difference_text() -> None:
    assert (
        str(Difference("index", "ix_tasks_project_fingerprint on tasks", "left behind"))
        == "index ix_tasks_project_fingerprint on tasks left behind"
    )
    assert Difference("type", "task_state", "missing").subject == "type task_state"
    changed = Difference("column", "tasks.state", "changed", "default changed: 'pending'::task_state -> NULL")
    assert str(changed) == "column tasks.state default changed: 'pending'::task_state -> NULL"
