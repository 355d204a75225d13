"""adopt's pure parts: which revisions a tool's history stands for, table names, and how a
catalog difference reads (no database)."""

from __future__ import annotations

import pytest

import z4j_migrate
from z4j_migrate.adopt import AdoptResult, describe
from z4j_migrate.catalog import Difference
from z4j_migrate.errors import EXIT_CODES, ConfigError, DriftError
from z4j_migrate.foreign import HistoryTable, ToolHistory, _fits, revisions_for, split_table
from z4j_migrate.revisions import parse_pair


def _revs(*versions: int):
    return [
        parse_pair(
            v,
            f"{v:04d}_r{v}",
            f"{v:04d}_r{v}.up.sql",
            b"-- message: m\nSELECT 1;\n",
            f"{v:04d}_r{v}.down.sql",
            b"SELECT 1;\n",
        )
        for v in versions
    ]


def _history(tool: str, **kw) -> ToolHistory:
    return ToolHistory(HistoryTable(tool, "public", "t"), **kw)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (_history("golang-migrate", upto=2, stated="version 2"), [1, 2]),
        (_history("golang-migrate"), []),
        (_history("dbmate", versions=(1, 2, 3)), [1, 2, 3]),
        (_history("dbmate", versions=(1,)), [1]),
        (_history("flyway", versions=(3,), upto=2), [1, 2, 3]),  # baseline 2, then V3
        (_history("flyway", upto=5), [1, 2, 3]),  # a baseline need not be a file of its own
        (_history("yoyo", ids=("0001_r1", "0002_r2")), [1, 2]),
    ],
)
def test_revisions_a_history_stands_for(history, expected):
    assert [r.version for r in revisions_for(history, _revs(1, 2, 3), "sql/")] == expected


@pytest.mark.parametrize(
    ("history", "message"),
    [
        (_history("golang-migrate", upto=4, stated="version 4"), r"names version 4, which sql/ does not have"),
        (_history("dbmate", versions=(1, 3)), r"does not list 0002_r2, which the directory has below"),
        (_history("dbmate", versions=(1, 9)), r"names version 9"),
        (_history("yoyo", ids=("0001_r1", "0007_gone")), r"names 0007_gone, which sql/ does not have"),
        (_history("yoyo", ids=("0002_r2",)), r"does not list 0001_r1"),
    ],
)
def test_a_history_ahead_of_the_files_or_with_a_gap_is_refused(history, message):
    with pytest.raises(DriftError, match=message) as refused:
        revisions_for(history, _revs(1, 2, 3), "sql/")
    assert refused.value.exit_code == 5 and "Nothing was recorded" in refused.value.message


def test_tables_and_shapes():
    assert split_table("schema_migrations", "public") == ("public", "schema_migrations")
    assert split_table("ops.flyway_schema_history", "public") == ("ops", "flyway_schema_history")
    with pytest.raises(ConfigError):
        split_table('x"; DROP TABLE y', "public")
    assert _fits("golang-migrate", {"version": "bigint", "dirty": "boolean"})
    assert not _fits("dbmate", {"version": "bigint", "dirty": "boolean"})
    assert _fits("dbmate", {"version": "character varying"})
    assert not _fits("golang-migrate", {"version": "bigint", "dirty": "boolean", "app": "text"})  # someone else's


def test_differences_read_revisions_then_database():
    assert describe(Difference("column", "users.nick", "left behind")) == (
        "column users.nick: in the database, not built by the revisions"
    )
    assert describe(Difference("index", "ix on t", "missing")) == (
        "index ix on t: built by the revisions, missing from the database"
    )
    assert describe(Difference("column", "t.a", "changed", "type changed: integer -> bigint")) == (
        "column t.a: type changed: integer -> bigint (revisions -> database)"
    )


def test_result_and_errors_are_public():
    result = AdoptResult("dbmate", ("0001_a", "0002_b"), "public.schema_migrations", "versions 1, 2", 9)
    assert "2 revision(s) (0001_a .. 0002_b)" in result.summary() and "was left as it was" in result.summary()
    assert z4j_migrate.ForeignHistory.exit_code == 4 and z4j_migrate.AdoptionMismatch.exit_code == 5
    assert {4, 5} <= set(EXIT_CODES)
