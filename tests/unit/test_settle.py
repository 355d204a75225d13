"""sqlcheck.settle: the SQL decides a file's transaction, and a BEGIN ... COMMIT wrapper is dropped."""

from __future__ import annotations

from dataclasses import replace

import pytest

from z4j_migrate.errors import RevisionFileError
from z4j_migrate.revisions import Revision, SqlFile, checksum, parse_pair
from z4j_migrate.sqlcheck import check_revision, check_unverified_downs, settle, split_statements


def pair(up: str, down: str = "SELECT 1;\n") -> Revision:
    revision = parse_pair(1, "0001_x", "0001_x.up.sql", up.encode(), "0001_x.down.sql", down.encode())
    assert revision is not None
    return revision


def foreign(up: str, down: str = "SELECT 1;\n", *, guess: bool = True) -> Revision:
    """As a foreign layout's reader builds it: no marker, so the SQL decides (decided_by_sql)."""
    revision = pair("-- message: m\n" + up, down)
    return replace(
        revision,
        up=replace(revision.up, transactional=guess, decided_by_sql=True),
        down=replace(revision.down, transactional=guess, decided_by_sql=True),
    )


WRAPPED = "-- message: m\n-- a comment\nBEGIN;\nCREATE TABLE t (id int);\n\nINSERT INTO t VALUES (1);\nCOMMIT;\n"


def test_a_wrapped_file_is_transactional_and_the_wrapper_is_blanked_keeping_lines_and_checksum():
    revision = pair(WRAPPED, "begin transaction;\nDROP TABLE t;\nEND;\n")
    for settled in (settle(revision), check_revision(revision)):
        assert settled is not None and settled.up.transactional and settled.down.transactional
        up = settled.up
        assert up.checksum == revision.up.checksum == checksum(WRAPPED)  # the file as published
        assert len(up.text) == len(WRAPPED) and up.text.count("\n") == WRAPPED.count("\n")
        assert "BEGIN" not in up.text and "COMMIT" not in up.text and "CREATE TABLE t" in up.text
        lines = up.text.split("\n")
        assert lines[2].strip() == "" and lines[3] == "CREATE TABLE t (id int);" and lines[6].strip() == ""
        assert "begin" not in settled.down.text.lower() and "END" not in settled.down.text
        assert settle(settled) is settled  # settled once, a no-op after


def test_wrapper_forms_start_transaction_end_and_no_semicolon():
    revision = pair("-- message: m\nSTART TRANSACTION;\nSELECT 1;\nEND", "BEGIN WORK; SELECT 2; COMMIT WORK;")
    settled = settle(revision)
    assert settled.up.text.split() == ["--", "message:", "m", "SELECT", "1;"]
    assert settled.down.text.split() == ["SELECT", "2;"]


@pytest.mark.parametrize(
    ("up", "match", "line"),
    [
        ("BEGIN;\nSELECT 1;\nROLLBACK;\n", r"transaction control \(BEGIN\)", 2),
        ("BEGIN;\nSELECT 1;\nSAVEPOINT a;\nSELECT 2;\nCOMMIT;\n", r"\(SAVEPOINT A\).*inside the BEGIN", 4),
        ("BEGIN;\nSELECT 1;\nCOMMIT;\nBEGIN;\nSELECT 2;\nCOMMIT;\n", r"\(COMMIT\) is not allowed", 4),
        ("BEGIN;\nBEGIN;\nSELECT 1;\nCOMMIT;\n", r"\(BEGIN\) is not allowed", 3),
        ("BEGIN;\nSELECT 1;\n", r"\(BEGIN\) is not allowed", 2),
        ("SELECT 1;\nCOMMIT AND CHAIN;\n", r"\(COMMIT AND\)", 3),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT;\n", "with options", 2),
        ("CREATE INDEX CONCURRENTLY i ON t (id);\n", "CREATE INDEX CONCURRENTLY cannot run inside a transaction", 2),
        ("SELECT 1;\n\n  DROP INDEX CONCURRENTLY i;\n", "DROP INDEX CONCURRENTLY cannot run", 4),
        ("BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (id);\nCOMMIT;\n", "wraps its statements in BEGIN", 3),
        ("VACUUM t;\n", "VACUUM cannot run", 2),
        ("REINDEX INDEX CONCURRENTLY i;\n", "REINDEX CONCURRENTLY cannot run", 2),
        ("CREATE DATABASE d;\n", "CREATE DATABASE cannot run", 2),
        ("ALTER SYSTEM SET work_mem = '8MB';\n", "ALTER SYSTEM cannot run", 2),
        ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY;\n", "DETACH PARTITION CONCURRENTLY cannot", 2),
    ],
)
def test_refused_in_ours_naming_the_line(up, match, line):
    """check_revision (check, and every run before it starts) refuses each; settle (just before a
    revision runs) also refuses what it reads, a file that starts with a transaction statement."""
    revision = pair("-- message: m\n" + up)
    for check in (settle, check_revision) if up.startswith(("BEGIN", "START")) else (check_revision,):
        with pytest.raises(RevisionFileError, match=match) as info:
            check(revision)
        assert info.value.line == line and info.value.path == "0001_x.up.sql"


def test_the_fix_is_named_and_works():
    text = "-- message: m\nCREATE INDEX CONCURRENTLY i ON t (id);\n"
    with pytest.raises(RevisionFileError, match="Add '-- transactional: false' to its header"):
        check_revision(pair(text))
    fixed = check_revision(pair("-- message: m\n-- transactional: false\nCREATE INDEX CONCURRENTLY i ON t (id);\n"))
    assert fixed is not None and not fixed.up.transactional and not fixed.down.transactional


def test_allowed_in_a_transaction_stays_transactional():
    """What only looks like it: ANALYZE, CLUSTER t, REFRESH ... CONCURRENTLY, plpgsql BEGIN/COMMIT."""
    up = (
        "-- message: m\nANALYZE t;\nCLUSTER t USING i;\nREFRESH MATERIALIZED VIEW CONCURRENTLY m;\n"
        "CREATE TABLE database (system int, tablespace int);\n"
        "DO $$ BEGIN PERFORM 1; COMMIT; END $$;\n"
        "CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p WITH (connect = false);\n"
    )
    settled = check_revision(pair(up))
    assert settled is not None and settled.up.transactional and settled.up.text == pair(up).up.text


def test_foreign_layouts_let_the_sql_decide():
    concurrent = foreign("CREATE INDEX CONCURRENTLY i ON t (id);\n", "DROP INDEX CONCURRENTLY i;\n")
    for settled in (settle(concurrent), check_revision(concurrent)):
        assert settled is not None and not settled.up.transactional and not settled.down.transactional
        assert [s.sql for s in split_statements(settled.up)] == ["CREATE INDEX CONCURRENTLY i ON t (id)"]
    plain = foreign("CREATE TABLE t (id int);\n", guess=False)  # the reader's guess was wrong
    assert settle(plain).up.transactional and check_revision(plain).up.transactional  # type: ignore[union-attr]
    wrapped = foreign("BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n")
    assert "BEGIN" not in settle(wrapped).up.text and settle(wrapped).up.transactional
    both = foreign("BEGIN;\nCREATE INDEX CONCURRENTLY i ON t (id);\nCOMMIT;\n")
    with pytest.raises(RevisionFileError, match=r"wraps its statements in BEGIN \.\.\. COMMIT \(line 2\)") as info:
        check_revision(both)
    assert info.value.line == 3


def test_a_wrapper_in_a_non_transactional_file_is_refused():
    with pytest.raises(RevisionFileError, match="says '-- transactional: false' but wraps") as info:
        settle(pair("-- message: m\n-- transactional: false\nBEGIN;\nSELECT 1;\nCOMMIT;\n"))
    assert info.value.line == 3


def test_only_a_wrapper_is_no_statement():
    with pytest.raises(RevisionFileError, match="has no SQL statements"):
        check_revision(pair("-- message: m\nBEGIN;\nCOMMIT;\n"))


def test_collecting_lists_every_problem_of_both_files():
    revision = pair(
        "-- message: m\nCREATE INDEX CONCURRENTLY a ON t (id);\nSAVEPOINT x;\nVACUUM;\n",
        "DROP EXTENSION pgcrypto;\nROLLBACK;\n",
    )
    problems: list[RevisionFileError] = []
    assert check_revision(revision, problems) is None
    assert [(p.path, p.line) for p in problems] == [
        ("0001_x.up.sql", 2),
        ("0001_x.up.sql", 3),
        ("0001_x.up.sql", 4),
        ("0001_x.down.sql", 1),
        ("0001_x.down.sql", 2),
    ]


def test_downgrade_plan_is_settled_and_the_parser_skipped_when_nothing_can_change():
    from z4j_migrate.plan import DowngradeStep

    wrapped = pair("-- message: m\nSELECT 1;\n", "BEGIN;\nDROP TABLE t;\nCOMMIT;\n")
    plain = pair("-- message: m\nSELECT 1;\n", "DROP TABLE t;\n")
    steps = check_unverified_downs([DowngradeStep(wrapped, False), DowngradeStep(plain, False)], ())
    assert "BEGIN" not in steps[0].revision.down.text and steps[0].revision.down.settled
    assert steps[1].revision is plain  # not read: it cannot start with BEGIN


def test_stored_downs_are_settled_too():
    stored = SqlFile("<database: 0001_x.down.sql>", "BEGIN;\nDROP TABLE t;\nCOMMIT;\n", "", True, True)
    revision = replace(pair("-- message: m\nSELECT 1;\n"), down=stored)
    assert settle(revision).down.text.split() == ["DROP", "TABLE", "t;"]
