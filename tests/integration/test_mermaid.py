"""`z4j-migrate schema --format mermaid` against a real PostgreSQL: the diagram against pg_catalog.

What the diagram should hold is read here straight from the system catalogs (not through
z4j_migrate.catalog's snapshot), and the rendered Mermaid is parsed back, so the two sides
share no code: every table, every foreign key, and each foreign key's cardinality.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from helpers import run_cli

import z4j_migrate
from z4j_migrate.catalog import (
    BOOKKEEPING_TABLES,
    collapse_daily_partitions,
    render_mermaid,
    schema_reference,
    snapshot,
)

# ------------------------------------------------------------------ the Mermaid side

_ENTITY = re.compile(r'^    "(?P<name>[^"%]+)" \{$')
_WORD = r"[A-Za-z_][A-Za-z0-9_]*"
_ATTRIBUTE = re.compile(
    rf"^        (?P<type>{_WORD}) (?P<name>{_WORD})"
    r'(?: (?P<keys>(?:PK|FK|UK)(?:, (?:PK|FK|UK))*))?(?: "(?P<comment>[^"]*)")?$'
)
_RELATIONSHIP = re.compile(
    r'^    "(?P<parent>[^"%]+)" (?P<left>\|\||\|o)(?P<link>--|\.\.)(?P<right>o\||o\{) '
    r'"(?P<child>[^"%]+)" : "(?P<label>[^"]*)"$'
)


@dataclass
class Relationship:
    parent: str
    child: str
    label: str
    mandatory: bool
    one_to_one: bool
    identifying: bool

    @property
    def name(self) -> str:
        """The constraint's name: the label without the "(on partition)" note."""
        return self.label.split(" (", 1)[0]


@dataclass
class Diagram:
    entities: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    relationships: list[Relationship] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


def parse_mermaid(text: str) -> Diagram:
    """The entities and relationships of an erDiagram in the subset render_mermaid writes.

    Strict: any line it does not understand fails the test, so the subset stays small.
    """
    lines = text.splitlines()
    assert lines[0] == "erDiagram", lines[:1]
    diagram = Diagram()
    current: list[dict[str, Any]] | None = None
    for line in lines[1:]:
        if current is not None:
            if line == "    }":
                current = None
                continue
            match = _ATTRIBUTE.match(line)
            assert match, f"not an attribute line: {line!r}"
            keys = match["keys"].split(", ") if match["keys"] else []
            current.append({"type": match["type"], "name": match["name"], "keys": keys, "comment": match["comment"]})
        elif line.startswith("    %% "):
            diagram.comments.append(line[7:])
        elif match := _ENTITY.match(line):
            assert match["name"] not in diagram.entities, f"entity {match['name']} twice"
            current = diagram.entities[match["name"]] = []
        elif match := _RELATIONSHIP.match(line):
            diagram.relationships.append(
                Relationship(
                    parent=match["parent"],
                    child=match["child"],
                    label=match["label"],
                    mandatory=match["left"] == "||",
                    one_to_one=match["right"] == "o|",
                    identifying=match["link"] == "--",
                )
            )
        else:
            pytest.fail(f"a line the diagram should not have: {line!r}")
    assert current is None, "an entity block is not closed"
    return diagram


# ------------------------------------------------------------------ the catalog side

_TABLES_SQL = """
SELECT CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND NOT (c.relname = ANY(%(bookkeeping)s))
"""

# Foreign keys a user declared (conparentid = 0: not PostgreSQL's clones for partitions), each
# drawn between the roots of the partition trees at its two ends, with what its cardinality rests
# on: NOT NULL referencing columns, a unique index (no WHERE, no expressions) whose key columns lie
# within them, a primary key that holds them.
_FOREIGN_KEYS_SQL = """
WITH fk AS (
    SELECT con.conname, con.conrelid, con.conkey,
           COALESCE(pg_catalog.pg_partition_root(con.conrelid), con.conrelid) AS child,
           COALESCE(pg_catalog.pg_partition_root(con.confrelid), con.confrelid) AS parent
    FROM pg_catalog.pg_constraint con
    WHERE con.contype = 'f' AND con.conparentid = 0
)
SELECT fk.conname,
       CASE WHEN pn.nspname = 'public' THEN p.relname ELSE pn.nspname || '.' || p.relname END AS parent,
       CASE WHEN cn.nspname = 'public' THEN c.relname ELSE cn.nspname || '.' || c.relname END AS child,
       NOT EXISTS (
           SELECT 1 FROM pg_catalog.pg_attribute a
           WHERE a.attrelid = fk.conrelid AND a.attnum = ANY(fk.conkey) AND NOT a.attnotnull) AS mandatory,
       EXISTS (
           SELECT 1 FROM pg_catalog.pg_index i
           WHERE i.indrelid = fk.conrelid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
             AND ARRAY(SELECT k.attnum FROM pg_catalog.unnest(i.indkey::pg_catalog.int2[])
                       WITH ORDINALITY AS k(attnum, n) WHERE k.n <= i.indnkeyatts) <@ fk.conkey) AS one_to_one,
       COALESCE((SELECT fk.conkey <@ pk.conkey FROM pg_catalog.pg_constraint pk
                 WHERE pk.conrelid = fk.conrelid AND pk.contype = 'p'), false) AS identifying
FROM fk
JOIN pg_catalog.pg_class c ON c.oid = fk.child
JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = fk.parent
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
WHERE cn.nspname = ANY(%(schemas)s)
"""


def catalog_tables(conn: psycopg.Connection[Any], schemas: Sequence[str] = ("public",)) -> set[str]:
    params = {"schemas": list(schemas), "bookkeeping": sorted(BOOKKEEPING_TABLES)}
    return {row[0] for row in conn.execute(_TABLES_SQL, params)}


def catalog_foreign_keys(conn: psycopg.Connection[Any], schemas: Sequence[str] = ("public",)) -> list[Relationship]:
    rows = conn.execute(_FOREIGN_KEYS_SQL, {"schemas": list(schemas)}).fetchall()
    return [Relationship(parent, child, name, *flags) for name, parent, child, *flags in rows]


def _ends(relationships: Sequence[Relationship]) -> list[tuple[str, str, str]]:
    return sorted((r.child, r.name, r.parent) for r in relationships)


def _cardinality(relationships: Sequence[Relationship]) -> dict[tuple[str, str], tuple[bool, bool, bool]]:
    return {(r.child, r.name): (r.mandatory, r.one_to_one, r.identifying) for r in relationships}


# ------------------------------------------------------------------ the bundled schema


@pytest.fixture(scope="module")
def head_url(pg_server) -> Iterator[str]:
    with pg_server.database("mermaid_head_") as url:
        z4j_migrate.upgrade(database_url=url)
        yield url


def test_the_bundled_diagram_has_every_table_and_every_foreign_key_of_the_catalog(head_url):
    with psycopg.connect(head_url, autocommit=True) as conn:
        diagram = parse_mermaid(schema_reference(conn, format="mermaid"))
        tables = catalog_tables(conn)
        foreign_keys = catalog_foreign_keys(conn)
    assert len(tables) > 40 and len(foreign_keys) > 50  # the bundled schema, not an empty database
    assert set(diagram.entities) == tables
    assert _ends(diagram.relationships) == _ends(foreign_keys)  # lists: each foreign key exactly once
    assert _cardinality(diagram.relationships) == _cardinality(foreign_keys)
    assert not BOOKKEEPING_TABLES & set(diagram.entities)
    # The partitioned tables are there once; their partitions (default and dailies) are not.
    assert {"events", "schedule_fires"} <= set(diagram.entities)
    assert not [name for name in diagram.entities if name.endswith("_default") or re.search(r"_\d{4}_", name)]
    assert "events: partitioned by RANGE (occurred_at)" in diagram.comments


def test_the_bundled_diagram_marks_keys_and_draws_cardinality(head_url):
    with psycopg.connect(head_url, autocommit=True) as conn:
        diagram = parse_mermaid(schema_reference(conn, format="mermaid"))
    events = {a["name"]: a for a in diagram.entities["events"]}
    assert events["project_id"]["keys"] == ["PK", "FK"] and events["agent_id"]["keys"] == ["FK"]
    assert events["occurred_at"]["type"] == "timestamptz"
    agents = {a["name"]: a for a in diagram.entities["agents"]}
    assert agents["engine_adapters"]["type"] == "text_array" and agents["name"]["type"] == "varchar_200"
    flags = {r.name: (r.parent, r.child, r.mandatory, r.one_to_one) for r in diagram.relationships}
    assert flags["fk_memberships_user_id_users"] == ("users", "memberships", True, False)  # NOT NULL, many
    assert flags["fk_commands_issued_by_users"] == ("users", "commands", False, False)  # nullable
    # Nullable and unique: commands.bulk_retry_child_id has a unique index of its own.
    fk = "fk_commands_bulk_retry_child_id_bulk_retry_request_children"
    assert flags[fk] == ("bulk_retry_request_children", "commands", False, True)
    by_name = {r.name: r for r in diagram.relationships}
    assert by_name["events_project_id_fkey"].identifying  # project_id is part of pk_events


def test_the_cli_prints_the_diagram_and_keeps_json_as_an_alias(head_url):
    env = {"Z4J_DATABASE_URL": head_url}
    with psycopg.connect(head_url, autocommit=True) as conn:
        expected = {fmt: schema_reference(conn, format=fmt) for fmt in ("markdown", "json", "mermaid")}
    r = run_cli("schema", "--format", "mermaid", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected["mermaid"]
    assert run_cli("schema", "--json", env=env).stdout == expected["json"]
    assert run_cli("schema", "--format", "json", env=env).stdout == expected["json"]
    assert run_cli("schema", "--json", "--format", "json", env=env).stdout == expected["json"]
    assert run_cli("schema", env=env).stdout == expected["markdown"]
    r = run_cli("schema", "--json", "--format", "mermaid", env=env)
    assert r.returncode == 2 and "--json and --format mermaid" in r.stderr, r.stderr
    r = run_cli("schema", "--format", "svg", env=env)
    assert r.returncode == 2 and "svg" in r.stderr, r.stderr


# ------------------------------------------------------------------ a schema with the awkward cases

AWKWARD = """
CREATE SCHEMA audit;
CREATE TABLE parents (id bigint PRIMARY KEY, code text UNIQUE, tags text[], at timestamp(3) with time zone,
                      amount numeric(10,2), label character varying(40));
CREATE TABLE "Weird Table" ("Id" int PRIMARY KEY, pk text, "end" int, "na%me" text);
CREATE TABLE children (
    id bigint PRIMARY KEY,
    parent_id bigint NOT NULL REFERENCES parents,
    other_parent_id bigint REFERENCES parents,
    weird_id int REFERENCES "Weird Table",
    manager_id bigint REFERENCES children
);
COMMENT ON COLUMN children.parent_id IS 'the "main" parent';
CREATE TABLE profiles (parent_id bigint PRIMARY KEY REFERENCES parents);
CREATE TABLE tags (parent_id bigint NOT NULL REFERENCES parents, n int NOT NULL, PRIMARY KEY (parent_id, n));
CREATE TABLE pairs (a bigint, b int, CONSTRAINT fk_pairs_tags FOREIGN KEY (a, b) REFERENCES tags (parent_id, n));
CREATE TABLE unique_ref (parent_id bigint REFERENCES parents UNIQUE);
CREATE TABLE partial_ref (parent_id bigint NOT NULL REFERENCES parents);
CREATE UNIQUE INDEX ux_partial ON partial_ref (parent_id) WHERE parent_id > 0;
CREATE TABLE expr_ref (parent_id bigint NOT NULL REFERENCES parents);
CREATE UNIQUE INDEX ux_expr ON expr_ref ((parent_id + 0));
CREATE TABLE audit.log (id bigint PRIMARY KEY, parent_id bigint REFERENCES public.parents);
CREATE TABLE audit_refs (log_id bigint REFERENCES audit.log);
CREATE TABLE measurements (id bigint, at date, parent_id bigint REFERENCES parents, PRIMARY KEY (id, at))
    PARTITION BY RANGE (at);
CREATE TABLE measurements_2024 PARTITION OF measurements
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY RANGE (at);
CREATE TABLE measurements_2024_h1 PARTITION OF measurements_2024 FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
ALTER TABLE measurements_2025 ADD CONSTRAINT fk_only_2025 FOREIGN KEY (parent_id) REFERENCES children (id);
CREATE TABLE readings (m_id bigint NOT NULL, m_at date NOT NULL,
                       CONSTRAINT fk_readings_m FOREIGN KEY (m_id, m_at) REFERENCES measurements (id, at));
CREATE TABLE notes (m_id bigint, m_at date,
                    CONSTRAINT fk_notes_2025 FOREIGN KEY (m_id, m_at) REFERENCES measurements_2025 (id, at));
CREATE TABLE empty_one ();
"""
SCHEMAS = ("public", "audit")


@pytest.fixture
def awkward(database_url) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(AWKWARD)
        conn.execute("SET search_path = public")
        yield conn


def test_an_awkward_schema_is_drawn_whole_and_parses(awkward):
    text = render_mermaid(collapse_daily_partitions(snapshot(awkward, schemas=SCHEMAS)))
    diagram = parse_mermaid(text)
    assert set(diagram.entities) == catalog_tables(awkward, SCHEMAS)
    foreign_keys = catalog_foreign_keys(awkward, SCHEMAS)
    assert _ends(diagram.relationships) == _ends(foreign_keys)
    assert _cardinality(diagram.relationships) == _cardinality(foreign_keys)
    # PostgreSQL's clones (for the partitions of `measurements`, on both sides) are not drawn.
    assert len(diagram.relationships) == len(foreign_keys) == 16


def test_awkward_cases_are_drawn_as_documented(awkward):
    diagram = parse_mermaid(render_mermaid(snapshot(awkward, schemas=SCHEMAS)))
    rel = {r.label: r for r in diagram.relationships}
    flags = {label: (r.parent, r.child, r.mandatory, r.one_to_one, r.identifying) for label, r in rel.items()}
    assert flags["children_parent_id_fkey"] == ("parents", "children", True, False, False)
    assert flags["children_other_parent_id_fkey"] == ("parents", "children", False, False, False)
    assert flags["children_manager_id_fkey"] == ("children", "children", False, False, False)
    assert flags["children_weird_id_fkey"][0] == "Weird Table"
    assert flags["profiles_parent_id_fkey"] == ("parents", "profiles", True, True, True)
    assert flags["tags_parent_id_fkey"] == ("parents", "tags", True, False, True)
    assert flags["fk_pairs_tags"] == ("tags", "pairs", False, False, False)
    assert flags["unique_ref_parent_id_fkey"] == ("parents", "unique_ref", False, True, False)
    assert flags["partial_ref_parent_id_fkey"][3] is False  # a partial unique index promises nothing
    assert flags["expr_ref_parent_id_fkey"][3] is False  # nor does one over an expression
    assert flags["log_parent_id_fkey"][:2] == ("parents", "audit.log")
    assert flags["audit_refs_log_id_fkey"][:2] == ("audit.log", "audit_refs")
    # Partitions: a partition's own foreign key and one to a partition are drawn at the root table.
    assert flags["fk_only_2025 (on measurements_2025)"][:2] == ("children", "measurements")
    assert flags["fk_notes_2025 (to measurements_2025)"][:2] == ("measurements", "notes")
    assert flags["fk_readings_m"] == ("measurements", "readings", True, False, False)
    assert "measurements: partitioned by RANGE (at)" in diagram.comments
    assert "folded in: measurements_2024, measurements_2024_h1, measurements_2025" in diagram.comments
    # Attributes: one-word types, keys, comments; names Mermaid could not read are mended and say so.
    parents = {a["name"]: a for a in diagram.entities["parents"]}
    assert [parents[c]["type"] for c in ("tags", "at", "amount", "label")] == [
        "text_array",
        "timestamptz_3",
        "numeric_10_2",
        "varchar_40",
    ]
    assert parents["code"]["keys"] == ["UK"] and parents["id"]["keys"] == ["PK"]
    weird = diagram.entities["Weird Table"]
    assert [(a["name"], a["comment"]) for a in weird] == [
        ("Id", None),
        ("pk_", "column pk"),
        ("end", None),
        ("na_me", "column na%me"),
    ]
    children = {a["name"]: a for a in diagram.entities["children"]}
    assert children["parent_id"]["comment"] == "the 'main' parent"
    assert diagram.entities["empty_one"] == []
    assert {a["name"]: a["keys"] for a in diagram.entities["tags"]} == {"parent_id": ["PK", "FK"], "n": ["PK"]}
    assert {a["name"]: a["keys"] for a in diagram.entities["unique_ref"]} == {"parent_id": ["FK", "UK"]}
