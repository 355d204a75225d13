"""Rendering and diffing of catalog snapshots: pure functions, no database.

The snapshot below is built by hand to reach every branch of the Markdown reference
(docs/schema.md is rendered by the same code), so a change to the text shows here first.
"""

from __future__ import annotations

import copy
import json

from z4j_migrate.catalog import Difference, collapse_daily_partitions, diff, object_names, render_json, render_markdown


def table(**facts: object) -> dict[str, object]:
    """A table's description: an ordinary logged table but for `facts` (spaces spelt "_")."""
    plain = {
        "kind": "table",
        "partition key": None,
        "unlogged": False,
        "row security": False,
        "force row security": False,
        "replica identity": "default",
        "options": [],
        "tablespace": None,
        "inherits": [],
    }
    return {**plain, **{name.replace("_", " "): value for name, value in facts.items()}}


def column(table: str, position: int, sql_type: str, **facts: object) -> dict[str, object]:
    """A column's description: nullable, no default, but for `facts`."""
    plain = {"nullable": True, "default": None, "generated": None, "identity": None, "collation": None}
    return {"table": table, "position": position, "type": sql_type, **plain, **facts}


SNAP = {
    "table": {
        "events": table(
            kind="partitioned table",
            partition_key="RANGE (at)",
            row_security=True,
            force_row_security=True,
            replica_identity="full",
        ),
        "events_2024": table(kind="partitioned table", partition_key="LIST (kind)"),
        "events_2024_a": table(),
        "remote": table(
            kind="foreign table", unlogged=True, replica_identity="nothing", inherits=["events", "other.base"]
        ),
        "plain": table(row_security=True, options=["fillfactor=70"], tablespace="fast"),
    },
    "partition": {
        "events_2024 of events": {
            "child": "events_2024",
            "parent": "events",
            "bound": "FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        },
        "events_2024_a of events_2024": {
            "child": "events_2024_a",
            "parent": "events_2024",
            "bound": "FOR VALUES IN ('a')",
        },
    },
    "column": {
        "events.id": column("events", 1, "bigint", nullable=False, identity="always"),
        "events.at": column("events", 2, "date", nullable=False, default="CURRENT_DATE"),
        "events.kind": column("events", 3, "text", default="'a|b'::text", collation="C"),
        "events.twice": column("events", 4, "bigint", generated="(id * 2) stored"),
        "plain.x": column("plain", 1, "integer"),
    },
    "constraint": {
        "events_pkey on events": {
            "table": "events",
            "type": "primary key",
            "definition": "PRIMARY KEY (id, at)",
            "inherited": False,
        },
        "events_pkey on events_2024": {
            "table": "events_2024",
            "type": "primary key",
            "definition": "PRIMARY KEY (id, at)",
            "inherited": True,
        },
        "ck_local on events_2024_a": {
            "table": "events_2024_a",
            "type": "check",
            "definition": "CHECK (id > 0)",
            "inherited": False,
        },
    },
    "index": {
        "events_pkey on events": {
            "table": "events",
            "definition": "CREATE UNIQUE INDEX events_pkey ON ONLY events",
            "valid": True,
            "constraint": "events_pkey",
            "inherited": False,
        },
        "ix_kind on events": {
            "table": "events",
            "definition": "CREATE INDEX ix_kind ON ONLY events USING btree (kind)",
            "valid": False,
            "constraint": None,
            "inherited": False,
        },
        "ix_x on plain": {
            "table": "plain",
            "definition": "CREATE INDEX ix_x ON plain USING btree (x)",
            "valid": True,
            "constraint": None,
            "inherited": False,
        },
    },
    "trigger": {
        "t_touch on events": {
            "table": "events",
            "definition": "CREATE TRIGGER t_touch BEFORE UPDATE ON events",
            "state": "disabled",
            "inherited": False,
        },
        "t_on on plain": {
            "table": "plain",
            "definition": "CREATE TRIGGER t_on AFTER INSERT ON plain",
            "state": "enabled",
            "inherited": False,
        },
    },
    "policy": {
        "p_all on events": {
            "table": "events",
            "command": "ALL",
            "permissive": True,
            "roles": ["PUBLIC"],
            "using": "(kind = 'a'::text)",
            "with check": None,
        },
        "p_ins on events": {
            "table": "events",
            "command": "INSERT",
            "permissive": False,
            "roles": ["alice", "bob"],
            "using": None,
            "with check": "(id > 0)",
        },
    },
    "sequence": {
        "ticket_seq": {
            "type": "bigint",
            "start": 100,
            "increment": 5,
            "min": 1,
            "max": 9223372036854775807,
            "cache": 1,
            "cycle": True,
            "owned by": None,
            "identity": False,
        },
        "events_id_seq": {
            "type": "bigint",
            "start": 1,
            "increment": 1,
            "min": 1,
            "max": 9223372036854775807,
            "cache": 1,
            "cycle": False,
            "owned by": "events.id",
            "identity": True,
        },
        "plain_x_seq": {
            "type": "integer",
            "start": 1,
            "increment": 1,
            "min": 1,
            "max": 2147483647,
            "cache": 1,
            "cycle": False,
            "owned by": "plain.x",
            "identity": False,
        },
    },
    "view": {
        "v_plain": {"definition": " SELECT plain.x\n   FROM plain;", "options": ["security_barrier=true"]},
    },
    "materialized view": {
        "mv_events": {
            "definition": " SELECT count(*) AS n\n   FROM events;",
            "options": [],
            "populated": False,
            "tablespace": None,
        },
    },
    "type": {
        "mood": {"type": "enum", "labels": ["happy", "sad"]},
        "email": {
            "type": "domain",
            "base": "text",
            "nullable": False,
            "default": "'x@y'::text",
            "constraints": ["email_has_at: CHECK (VALUE ~ '@'::text)"],
            "collation": "C",
        },
        "loose": {
            "type": "domain",
            "base": "integer",
            "nullable": True,
            "default": None,
            "constraints": [],
            "collation": None,
        },
        "pair": {"type": "composite", "attributes": ["a integer", "b text"]},
        "floatrange": {"type": "range", "subtype": "double precision"},
        "blob": {"type": "base"},
    },
    "function": {
        "touch()": {
            "kind": "function",
            "arguments": "",
            "returns": "trigger",
            "language": "plpgsql",
            "volatility": "volatile",
            "strict": False,
            "security definer": False,
            "leakproof": False,
            "parallel": "unsafe",
            "config": [],
            "body": "\n    BEGIN\n        RETURN NEW;\n    END\n",
        },
        "add(a integer, b integer)": {
            "kind": "function",
            "arguments": "a integer, b integer DEFAULT 1",
            "returns": "integer",
            "language": "sql",
            "volatility": "immutable",
            "strict": True,
            "security definer": True,
            "leakproof": True,
            "parallel": "safe",
            "config": [],
            "body": "SELECT a + b -- uses `` backticks\n" + "SELECT 1;\n" * 3,
        },
        "noop()": {
            "kind": "procedure",
            "arguments": "",
            "returns": None,
            "language": "sql",
            "volatility": "volatile",
            "strict": False,
            "security definer": False,
            "leakproof": False,
            "parallel": "restricted",
            "config": ["search_path=pg_catalog"],
            "body": None,
        },
    },
    "comment": {
        "on table events": {"object": "table events", "text": "All the events."},
        "on column events.kind": {"object": "column events.kind", "text": "What\nhappened | how", "table": "events"},
        "on index ix_kind on events": {
            "object": "index ix_kind on events",
            "text": "Being rebuilt.",
            "table": "events",
        },
        "on constraint ck_local on events_2024_a": {
            "object": "constraint ck_local on events_2024_a",
            "text": "Local only.",
            "table": "events_2024_a",
        },
        "on policy p_all on events": {"object": "policy p_all on events", "text": "Everyone.", "table": "events"},
        "on type mood": {"object": "type mood", "text": "How it feels."},
        "on function touch()": {"object": "function touch()", "text": "Lower-cases."},
        "on view v_plain": {"object": "view v_plain", "text": "Plain, viewed."},
    },
    "grant": {
        "SELECT on table events to alice": {
            "object": "table events",
            "privilege": "SELECT",
            "grantee": "alice",
            "grantable": True,
        },
        "INSERT on table events to bob": {
            "object": "table events",
            "privilege": "INSERT",
            "grantee": "bob",
            "grantable": False,
        },
        "EXECUTE on function add(a integer, b integer) revoked from PUBLIC": {
            "object": "function add(a integer, b integer)",
            "privilege": "EXECUTE",
            "grantee": "PUBLIC",
            "revoked": True,
        },
        "USAGE on type mood to alice": {
            "object": "type mood",
            "privilege": "USAGE",
            "grantee": "alice",
            "grantable": False,
        },
    },
}


EXPECTED_MARKDOWN = r"""# Schema reference

## Tables

### `events`

All the events.

Partitioned by `RANGE (at)`. Row-level security enabled (forced for the owner too). Replica identity: full.

| Column | Type | Nullable | Default | Comment |
|---|---|---|---|---|
| `id` | `bigint` | not null | identity (always) |  |
| `at` | `date` | not null | `CURRENT_DATE` |  |
| `kind` | `text COLLATE "C"` | null | `'a\|b'::text` | What happened \| how |
| `twice` | `bigint` | null | generated: `(id * 2) stored` |  |

- constraint `events_pkey` (primary key): `PRIMARY KEY (id, at)`
- index `events_pkey`: `CREATE UNIQUE INDEX events_pkey ON ONLY events`
- index `ix_kind` **(invalid)**: `CREATE INDEX ix_kind ON ONLY events USING btree (kind)` — Being rebuilt.
- trigger `t_touch` **(disabled)**: `CREATE TRIGGER t_touch BEFORE UPDATE ON events`
- policy `p_all` (permissive, ALL, to PUBLIC) using `(kind = 'a'::text)` — Everyone.
- policy `p_ins` (restrictive, INSERT, to alice, bob) with check `(id > 0)`

Partitions:

- `events_2024`: `FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`, partitioned by `LIST (kind)`
  - `events_2024_a`: `FOR VALUES IN ('a')`
    - constraint `ck_local` (check): `CHECK (id > 0)` — Local only.

Grants: INSERT to bob; SELECT to alice with grant option.

### `plain`

Row-level security enabled. Options: `fillfactor=70`. Tablespace: `fast`.

| Column | Type | Nullable | Default |
|---|---|---|---|
| `x` | `integer` | null |  |

- index `ix_x`: `CREATE INDEX ix_x ON plain USING btree (x)`
- trigger `t_on`: `CREATE TRIGGER t_on AFTER INSERT ON plain`

### `remote`

Foreign table. Inherits `events`, `other.base`. Unlogged. Replica identity: nothing.

## Enums

### `mood`

How it feels.

Labels, in order: `happy`, `sad`.

Grants: USAGE to alice.

## Other types

### `blob`

Base type.

### `email`

Domain over `text`, collation `C`, not null, default `'x@y'::text`.

- `email_has_at: CHECK (VALUE ~ '@'::text)`

### `floatrange`

Range over `double precision`.

### `loose`

Domain over `integer`.

### `pair`

Composite type:

- `a integer`
- `b text`

## Sequences

### `events_id_seq`

`bigint`, start 1, increment 1, min 1, max 9223372036854775807, cache 1, no cycle, identity of `events.id`.

### `plain_x_seq`

`integer`, start 1, increment 1, min 1, max 2147483647, cache 1, no cycle, owned by `plain.x`.

### `ticket_seq`

`bigint`, start 100, increment 5, min 1, max 9223372036854775807, cache 1, cycle.

## Functions

### `add(a integer, b integer)`

Function, returns `integer`, language `sql`, immutable, strict, **security definer**, leakproof, parallel safe.

Arguments: `a integer, b integer DEFAULT 1`.

```sql
SELECT a + b -- uses `` backticks
SELECT 1;
-- … 2 more lines
```

Grants: EXECUTE revoked from PUBLIC.

### `noop()`

Procedure, language `sql`, volatile, parallel restricted, set `search_path=pg_catalog`.

### `touch()`

Lower-cases.

Function, returns `trigger`, language `plpgsql`, volatile.

```sql
BEGIN
    RETURN NEW;
-- … 1 more line
```

## Views

### `v_plain`

Plain, viewed.

Options: `security_barrier=true`.

```sql
SELECT plain.x
  FROM plain;
```

## Materialized views

### `mv_events`

Not populated (created WITH NO DATA or not yet refreshed).

```sql
SELECT count(*) AS n
  FROM events;
```
"""


def test_render_markdown_reaches_every_branch() -> None:
    assert render_markdown(SNAP, max_body_lines=2) == EXPECTED_MARKDOWN


def test_render_markdown_is_the_same_after_a_json_round_trip() -> None:
    assert render_markdown(json.loads(render_json(SNAP)), max_body_lines=2) == EXPECTED_MARKDOWN


def test_function_bodies_whole_or_left_out() -> None:
    whole = render_markdown(SNAP, max_body_lines=None)
    assert "SELECT 1;\nSELECT 1;\nSELECT 1;\n```" in whole and "more line" not in whole
    none = render_markdown(SNAP, max_body_lines=0)
    assert "RETURN NEW" not in none and "SELECT a + b" not in none
    assert "```sql\nSELECT plain.x" in none  # view definitions are never trimmed


def test_empty_snapshot_renders_only_the_title() -> None:
    assert render_markdown({}, title="Nothing") == "# Nothing\n"


def test_diff_names_causes_not_symptoms() -> None:
    after = copy.deepcopy(SNAP)
    after["type"]["mood"]["labels"] = ["happy", "meh", "sad"]
    after["table"]["extra"] = dict(SNAP["table"]["plain"])
    after["column"]["extra.y"] = {**SNAP["column"]["plain.x"], "table": "extra"}
    after["index"]["ix_y on extra"] = {**SNAP["index"]["ix_x on plain"], "table": "extra"}
    after["comment"]["on table extra"] = {"object": "table extra", "text": "x"}
    del after["sequence"]["ticket_seq"]
    after["column"]["events.at"]["default"] = "now()"
    after["trigger"]["t_touch on events"]["state"] = "enabled"
    assert [str(d) for d in diff(SNAP, after)] == [
        "table extra left behind",
        "column events.at default changed: CURRENT_DATE -> now()",
        "trigger t_touch on events state changed: disabled -> enabled",
        "sequence ticket_seq missing",
        "type mood labels changed: ['happy', 'sad'] -> ['happy', 'meh', 'sad']",
        "enum label 'meh' on type mood left behind",
    ]
    assert [str(d) for d in diff(after, SNAP)][-1] == "enum label 'meh' on type mood missing"
    assert diff(SNAP, copy.deepcopy(SNAP)) == []


def test_diff_cuts_long_values_around_the_change() -> None:
    before, after = copy.deepcopy(SNAP), copy.deepcopy(SNAP)
    before["function"]["noop()"]["body"] = "x" * 200 + "A" + "y" * 200
    after["function"]["noop()"]["body"] = "x" * 200 + "B" + "y" * 200
    [d] = diff(before, after)
    assert d == Difference(
        "function", "noop()", "changed", f"body changed: …{'x' * 30}A{'y' * 30}… -> …{'x' * 30}B{'y' * 30}…"
    )


def test_diff_of_scalar_values_and_unknown_kinds() -> None:
    assert [str(d) for d in diff({"zzz": {"q": 1}}, {"zzz": {"q": 2}, "aaa": {"r": 1}})] == [
        "aaa r left behind",
        "zzz q 1 -> 2",
    ]


def test_object_names_follow_the_kind_order() -> None:
    snap = {"type": {"b": {}, "a": {}}, "table": {"t": {}}, "zzz": {"q": 1}, "grant": {}}
    assert object_names(snap) == ["table t", "type a", "type b", "zzz q"]


def test_daily_partitions_fold_into_one_line() -> None:
    snap = copy.deepcopy(SNAP)
    for day in ("2024_01_01", "2024_01_02"):
        child = f"events_{day}"
        snap["table"][child] = dict(SNAP["table"]["events_2024_a"])
        snap["partition"][f"{child} of events"] = {"child": child, "parent": "events", "bound": f"FOR VALUES ({day})"}
        snap["index"][f"{child}_pkey on {child}"] = {**SNAP["index"]["ix_x on plain"], "table": child}
    folded = collapse_daily_partitions(snap)
    assert folded["partition"]["events_YYYY_MM_DD of events"] == {
        "child": "events_YYYY_MM_DD",
        "parent": "events",
        "bound": "FOR VALUES FROM ('<day>') TO ('<day + 1>'): 2 daily partitions at creation",
    }
    assert not [k for kind in folded.values() for k in kind if "2024_01_0" in k]
    assert collapse_daily_partitions(SNAP) is SNAP
