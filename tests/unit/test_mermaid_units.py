"""The Mermaid erDiagram renderer: pure functions, no database.

The definitions below are the text PostgreSQL prints (pg_get_constraintdef, pg_get_indexdef,
format_type); the renderer reads keys back from them, so each shape it must understand is here.
tests/integration/test_mermaid.py compares the rendered diagram with pg_catalog.
"""

from __future__ import annotations

import random

import pytest

from z4j_migrate.catalog import (
    _constraint_columns,
    _foreign_key,
    _mermaid_type,
    _mermaid_word,
    _unique_index_columns,
    render_mermaid,
    schema_reference,
)


@pytest.mark.parametrize(
    ("sql_type", "word"),
    [
        ("uuid", "uuid"),
        ("timestamp with time zone", "timestamptz"),
        ("timestamp without time zone", "timestamp"),
        ("timestamp(3) with time zone", "timestamptz_3"),
        ("time with time zone", "timetz"),
        ("time(0) without time zone", "time_0"),
        ("character varying", "varchar"),
        ("character varying(255)", "varchar_255"),
        ("character(1)", "char_1"),
        ("bit(256)", "bit_256"),
        ("bit varying(8)", "varbit_8"),
        ("double precision", "float8"),
        ("numeric(10,2)", "numeric_10_2"),
        ("text[]", "text_array"),
        ("character varying(20)[]", "varchar_20_array"),
        ("timestamp with time zone[]", "timestamptz_array"),
        ("interval second(3)", "interval_second_3"),
        ('"char"', "char"),
        ("other.kind", "other_kind"),
        ('"My Type"', "My_Type"),
        ('"2fa"', "_2fa"),
        ("pk", "pk_"),
    ],
)
def test_types_become_one_mermaid_word(sql_type, word):
    assert _mermaid_type(sql_type) == word


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("id", "id"),
        ("Id", "Id"),
        ("end", "end"),
        ("pk", "pk_"),
        ("UK", "UK_"),
        ("na%me", "na_me"),
        ("9lives", "_9lives"),
    ],
)
def test_attribute_names_become_words_mermaid_cannot_misread(name, word):
    assert _mermaid_word(name) == word


@pytest.mark.parametrize(
    ("definition", "parsed"),
    [
        ("FOREIGN KEY (project_id) REFERENCES projects(id) ON DELETE CASCADE", (["project_id"], "projects")),
        ("FOREIGN KEY (a, b) REFERENCES tags(parent_id, n) MATCH FULL", (["a", "b"], "tags")),
        ('FOREIGN KEY ("Parent Id") REFERENCES "Weird Table"("Id")', (["Parent Id"], "Weird Table")),
        ('FOREIGN KEY ("a, b") REFERENCES "x""y"(id)', (["a, b"], 'x"y')),
        ("FOREIGN KEY (log_id) REFERENCES audit.log(id)", (["log_id"], "audit.log")),
        ("FOREIGN KEY (x) REFERENCES public.users(id)", (["x"], "users")),
        ('FOREIGN KEY (x) REFERENCES "Audit"."Log"(id) NOT VALID', (["x"], "Audit.Log")),
        ("FOREIGN KEY (a, b) REFERENCES t(a, b) ON DELETE SET NULL (b)", (["a", "b"], "t")),
        ("FOREIGN KEY (id, PERIOD valid_at) REFERENCES t(id, PERIOD valid_at)", (["id", "valid_at"], "t")),
        ("CHECK ((a > 0))", None),
        ("FOREIGN KEY (a) REFERENCES", None),
    ],
)
def test_foreign_key_definitions_are_read_back(definition, parsed):
    assert _foreign_key(definition) == parsed


@pytest.mark.parametrize(
    ("definition", "columns"),
    [
        ("CREATE UNIQUE INDEX pk_t ON public.t USING btree (id)", ["id"]),
        ("CREATE UNIQUE INDEX ux ON ONLY public.events USING btree (project_id, at)", ["project_id", "at"]),
        ('CREATE UNIQUE INDEX "Ux" ON "S"."T" USING btree ("a, b" DESC NULLS LAST, c text_pattern_ops)', ["a, b", "c"]),
        ("CREATE UNIQUE INDEX ux ON public.t USING btree (a) INCLUDE (b)", ["a"]),
        ("CREATE UNIQUE INDEX ux ON public.t USING btree (a) NULLS NOT DISTINCT", ["a"]),
        ('CREATE UNIQUE INDEX ux ON public.t USING btree (a COLLATE "C")', ["a"]),
        ("CREATE UNIQUE INDEX ux ON public.t USING btree (a) WHERE (a > 0)", None),
        ("CREATE UNIQUE INDEX ux ON public.t USING btree (lower(email))", None),
        ("CREATE UNIQUE INDEX ux ON public.t USING btree (((a + 0)))", None),
        ("CREATE INDEX ix ON public.t USING btree (a)", None),
    ],
)
def test_unique_index_definitions_are_read_back(definition, columns):
    assert _unique_index_columns(definition) == columns


@pytest.mark.parametrize(
    ("definition", "columns"),
    [
        ("PRIMARY KEY (project_id, occurred_at, id)", ["project_id", "occurred_at", "id"]),
        ("UNIQUE NULLS NOT DISTINCT (a)", ["a"]),
        ("PRIMARY KEY (id) INCLUDE (b)", ["id"]),
        ("PRIMARY KEY (id, valid_at WITHOUT OVERLAPS)", ["id", "valid_at"]),
        ('UNIQUE ("A""B")', ['A"B']),
    ],
)
def test_key_constraint_definitions_are_read_back(definition, columns):
    assert _constraint_columns(definition) == columns


# ------------------------------------------------------------------ a whole diagram


def _table(partition_key: str | None = None) -> dict[str, object]:
    return {"kind": "partitioned table" if partition_key else "table", "partition key": partition_key}


def _column(table: str, position: int, sql_type: str, nullable: bool = True) -> dict[str, object]:
    return {"table": table, "position": position, "type": sql_type, "nullable": nullable}


def _constraint(table: str, kind: str, definition: str, inherited: bool = False) -> dict[str, object]:
    return {"table": table, "type": kind, "definition": definition, "inherited": inherited}


def _index(table: str, definition: str) -> dict[str, object]:
    return {"table": table, "definition": definition, "valid": True, "constraint": None, "inherited": False}


SNAP = {
    "table": {
        "users": _table(),
        "profiles": _table(),
        "events": _table("RANGE (at)"),
        "events_2024": _table(),
        "audit.log": _table(),
        "end": _table(),
    },
    "partition": {
        "events_2024 of events": {"child": "events_2024", "parent": "events", "bound": "FOR VALUES ..."},
    },
    "column": {
        "users.id": _column("users", 1, "uuid", nullable=False),
        "users.email": _column("users", 2, "character varying(255)", nullable=False),
        "users.manager_id": _column("users", 3, "uuid"),
        "profiles.user_id": _column("profiles", 1, "uuid", nullable=False),
        "events.user_id": _column("events", 1, "uuid", nullable=False),
        "events.at": _column("events", 2, "timestamp with time zone", nullable=False),
        "events.tags": _column("events", 3, "text[]"),
        "events_2024.user_id": _column("events_2024", 1, "uuid", nullable=False),
        "events_2024.at": _column("events_2024", 2, "timestamp with time zone", nullable=False),
        "events_2024.tags": _column("events_2024", 3, "text[]"),
        "audit.log.user_id": _column("audit.log", 1, "uuid"),
        "end.pk": _column("end", 1, "integer"),
    },
    "constraint": {
        "pk_users on users": _constraint("users", "primary key", "PRIMARY KEY (id)"),
        "fk_users_manager on users": _constraint(
            "users", "foreign key", "FOREIGN KEY (manager_id) REFERENCES users(id)"
        ),
        "pk_profiles on profiles": _constraint("profiles", "primary key", "PRIMARY KEY (user_id)"),
        "fk_profiles_user on profiles": _constraint(
            "profiles", "foreign key", "FOREIGN KEY (user_id) REFERENCES users(id) ON DELETE CASCADE"
        ),
        "pk_events on events": _constraint("events", "primary key", "PRIMARY KEY (user_id, at)"),
        "fk_events_user on events": _constraint("events", "foreign key", "FOREIGN KEY (user_id) REFERENCES users(id)"),
        "fk_events_user on events_2024": _constraint(
            "events_2024", "foreign key", "FOREIGN KEY (user_id) REFERENCES users(id)", inherited=True
        ),
        "fk_2024_only on events_2024": _constraint(
            "events_2024", "foreign key", "FOREIGN KEY (user_id) REFERENCES profiles(user_id)"
        ),
        "fk_log_user on audit.log": _constraint(
            "audit.log", "foreign key", "FOREIGN KEY (user_id) REFERENCES users(id)"
        ),
        "uq_log_user on audit.log": _constraint("audit.log", "unique", "UNIQUE (user_id)"),
    },
    "index": {
        "pk_users on users": _index("users", "CREATE UNIQUE INDEX pk_users ON public.users USING btree (id)"),
        "ux_users_email on users": _index(
            "users", "CREATE UNIQUE INDEX ux_users_email ON public.users USING btree (email)"
        ),
        "pk_profiles on profiles": _index(
            "profiles", "CREATE UNIQUE INDEX pk_profiles ON public.profiles USING btree (user_id)"
        ),
        "pk_events on events": _index(
            "events", "CREATE UNIQUE INDEX pk_events ON ONLY public.events USING btree (user_id, at)"
        ),
        "uq_log_user on audit.log": _index(
            "audit.log", "CREATE UNIQUE INDEX uq_log_user ON audit.log USING btree (user_id)"
        ),
    },
    "comment": {
        "on column users.email": {"object": "column users.email", "text": 'The "login"\nname', "table": "users"},
        "on column users.manager_id": {"object": "column users.manager_id", "text": "x" * 100, "table": "users"},
    },
}

EXPECTED = f"""\
erDiagram
    "audit.log" {{
        uuid user_id FK, UK
    }}
    "end" {{
        integer pk_ "column pk"
    }}
    %% events: partitioned by RANGE (at)
    %% folded in: events_2024
    "events" {{
        uuid user_id PK, FK
        timestamptz at PK
        text_array tags
    }}
    "profiles" {{
        uuid user_id PK, FK
    }}
    "users" {{
        uuid id PK
        varchar_255 email UK "The 'login' name"
        uuid manager_id FK "{"x" * 79}…"
    }}
    "users" |o..o| "audit.log" : "fk_log_user"
    "profiles" ||..o{{ "events" : "fk_2024_only (on events_2024)"
    "users" ||--o{{ "events" : "fk_events_user"
    "users" ||--o| "profiles" : "fk_profiles_user"
    "users" |o..o{{ "users" : "fk_users_manager"
"""


def test_a_snapshot_renders_as_documented():
    assert render_mermaid(SNAP) == EXPECTED


def test_the_diagram_does_not_depend_on_the_order_of_the_snapshot():
    rng = random.Random(7)
    for _ in range(5):
        shuffled = {}
        for kind, objects in sorted(SNAP.items(), key=lambda _item: rng.random()):
            items = list(objects.items())
            rng.shuffle(items)
            shuffled[kind] = dict(items)
        assert render_mermaid(shuffled) == EXPECTED


def test_an_empty_snapshot_is_an_empty_diagram():
    assert render_mermaid({}) == "erDiagram\n"


def test_a_foreign_key_to_a_table_outside_the_snapshot_still_draws_its_line():
    snap = {
        "table": {"t": _table()},
        "column": {"t.other_id": _column("t", 1, "bigint", nullable=False)},
        "constraint": {"fk on t": _constraint("t", "foreign key", "FOREIGN KEY (other_id) REFERENCES elsewhere.o(id)")},
    }
    assert render_mermaid(snap).splitlines()[-1] == '    "elsewhere.o" ||..o{ "t" : "fk"'


def test_an_unknown_format_is_refused_before_any_query():
    with pytest.raises(ValueError, match="unknown schema format 'svg'"):
        schema_reference(None, format="svg")  # type: ignore[arg-type]
