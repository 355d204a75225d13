"""Discovery and directive parsing: pure, no database."""

from __future__ import annotations

from pathlib import Path

import pytest

from z4j_migrate.errors import ConfigError, RevisionFileError
from z4j_migrate.revisions import checksum, discover, parse_pair
from z4j_migrate.sqlcheck import check_revision, split_statements


def pair(up: bytes | str, down: bytes | str = "DROP TABLE t;\n"):
    up_b = up.encode() if isinstance(up, str) else up
    down_b = down.encode() if isinstance(down, str) else down
    return parse_pair(1, "0001_x", "0001_x.up.sql", up_b, "0001_x.down.sql", down_b)


def test_message_and_defaults():
    rev = pair("-- message: create t\nCREATE TABLE t (id int);\n")
    assert rev.message == "create t"
    assert rev.up.transactional and rev.down.transactional
    assert rev.irreversible is None and rev.preflights == ()


def test_bom_crlf_and_trailing_whitespace_are_tolerated():
    rev = pair(b"\xef\xbb\xbf-- message: m  \r\n-- transactional: false \t\r\nCREATE TABLE t (id int);\r\n")
    assert rev.message == "m"
    assert rev.up.transactional is False
    assert "\r" not in rev.up.text and not rev.up.text.startswith("\ufeff")


def test_checksum_ignores_bom_and_line_endings():
    a = pair(b"\xef\xbb\xbf-- message: m\r\nSELECT 1;\r\n")
    b = pair(b"-- message: m\nSELECT 1;\n")
    assert a.up.checksum == b.up.checksum == checksum("-- message: m\nSELECT 1;\n")
    assert a.up.checksum.startswith("sha256:")


def test_down_follows_up_mode_unless_it_says_otherwise():
    rev = pair("-- message: m\n-- transactional: false\nSELECT 1;", "SELECT 1;")
    assert rev.down.transactional is False
    rev = pair("-- message: m\n-- transactional: false\nSELECT 1;", "-- transactional: true\nSELECT 1;")
    assert rev.down.transactional is True


def test_preflights_are_repeatable_and_keep_their_line():
    rev = pair(
        "-- message: m\nSELECT 1;", "-- preflight: SELECT true\n-- preflight: SELECT NOT EXISTS (SELECT 1)\nSELECT 1;"
    )
    assert [(p.sql, p.line) for p in rev.preflights] == [("SELECT true", 1), ("SELECT NOT EXISTS (SELECT 1)", 2)]


def test_irreversible_down_has_no_statements():
    rev = pair("-- message: m\nSELECT 1;", "-- irreversible: restore the backup\n")
    assert rev.irreversible == "restore the backup"
    with pytest.raises(RevisionFileError, match="irreversible down must not contain statements"):
        pair("-- message: m\nSELECT 1;", "-- irreversible: x\nDROP TABLE t;")


@pytest.mark.parametrize(
    ("up", "down", "match", "line"),
    [
        ("CREATE TABLE t (id int);", "SELECT 1;", "missing '-- message", 1),
        ("-- message:\nSELECT 1;", "SELECT 1;", "missing '-- message", 1),
        ("-- message: m\n-- transactional: maybe\nSELECT 1;", "SELECT 1;", "must be true or false", 2),
        ("-- message: m\n-- transactonal: false\nSELECT 1;", "SELECT 1;", "did you mean '-- transactional:'", 2),
        ("-- message: m\n-- message: n\nSELECT 1;", "SELECT 1;", "more than once", 2),
        ("-- message: m\n", "SELECT 1;", "has no SQL statements", None),
        ("-- message: m\nSELECT 1;", "", "has no SQL statements", None),
        ("-- message: m\nSELECT 1;", "-- irreversible:\n", "needs a message", 1),
        ("-- message: m\nSELECT 1;", "-- preflight:\nSELECT 1;", "needs a query", 1),
        ("-- message: m\nSELECT 1;", "-- message: no\nSELECT 1;", "'-- message:' is not allowed in a .down.sql", 1),
        ("-- message: m\n\n-- transactional: false\nSELECT 1;", "SELECT 1;", "below the header", 3),
        (b"-- message: m\nSELECT '\xff';", "SELECT 1;", "not valid UTF-8", 2),
    ],
)
def test_bad_headers_name_file_and_line(up, down, match, line):
    with pytest.raises(RevisionFileError, match=match) as info:
        pair(up, down)
    assert info.value.path in ("0001_x.up.sql", "0001_x.down.sql")
    if line is not None:
        assert info.value.line == line


def write(folder: Path, name: str, text: str = "-- message: m\nSELECT 1;\n") -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_discover_orders_by_number_and_ignores_other_files(tmp_path):
    for rid in ("0010_b", "0002_a"):
        write(tmp_path, f"{rid}.up.sql")
        write(tmp_path, f"{rid}.down.sql", "SELECT 1;\n")
    write(tmp_path, "README.md", "notes")
    write(tmp_path, ".hidden.sql", "x")
    assert [r.id for r in discover(tmp_path).revisions] == ["0002_a", "0010_b"]


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (["0001_a.up.sql"], "no matching 0001_a.down.sql"),
        (["0001_a.down.sql"], "no matching 0001_a.up.sql"),
        (["0001_a.up.sql", "0001_a.down.sql", "0001_b.up.sql", "0001_b.down.sql"], "duplicate revision number 1"),
        (["1_a.up.sql"], "malformed revision file name"),
        (["0001_Add.up.sql"], "malformed revision file name"),
        (["0001-add.up.sql"], "malformed revision file name"),
        (["0001_a.sql"], "malformed revision file name"),
        (["0001_a__b.up.sql"], "malformed revision file name"),
    ],
)
def test_discover_rejects_bad_directories(tmp_path, names, match):
    for name in names:
        write(tmp_path, name)
    with pytest.raises(RevisionFileError, match=match):
        discover(tmp_path)


def test_missing_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        discover(tmp_path / "nope")


def test_extensions_come_from_the_directory_config(tmp_path):
    write(tmp_path, "z4j-migrate.toml", 'extensions = ["pgcrypto", "citext"]\n')
    assert discover(tmp_path).extensions == ("pgcrypto", "citext")
    write(tmp_path, "z4j-migrate.toml", 'extensions = ["x; DROP TABLE y"]\n')
    with pytest.raises(RevisionFileError, match="is not an extension name"):
        discover(tmp_path)


def test_bundled_directory_declares_the_three_extensions():
    from z4j_migrate.config import BUNDLED_DIR

    assert discover(BUNDLED_DIR).extensions == ("pgcrypto", "citext", "pg_trgm")


@pytest.mark.parametrize(
    ("up", "down", "match", "line"),
    [
        ("-- message: m\nCREATE TABLE t (id int);\nCOMMIT;\n", "SELECT 1;", r"transaction control \(COMMIT\)", 3),
        ("-- message: m\nBEGIN;\nCREATE TABLE t (id int);\n", "SELECT 1;", "transaction control", 2),
        ("-- message: m\nSELECT 1;", "SELECT 1;\nDROP EXTENSION pg_trgm;", "DROP EXTENSION is not allowed", 2),
        ("-- message: m\nCREAT TABLE t (id int);", "SELECT 1;", "SQL syntax error", 2),
        ("-- message: m\nSELECT 1;", "DROP TABLE t;;\nDROPP x;", "SQL syntax error", 2),
    ],
)
def test_sql_checks_name_file_and_line(up, down, match, line):
    with pytest.raises(RevisionFileError, match=match) as info:
        check_revision(pair(up, down))
    assert info.value.line == line


def test_sql_that_only_looks_like_transaction_control_is_fine():
    up = (
        "-- message: m\nCREATE TABLE t (begin int, commit text);\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;\n"
        "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n"
        "DO $$ BEGIN PERFORM 1; COMMIT; END $$;\n"
    )
    check_revision(pair(up, "DROP TABLE t;"))


def test_split_keeps_dollar_quotes_and_reports_lines():
    rev = pair(
        "-- message: m\n-- transactional: false\nCREATE TABLE t (begin int);\n\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;\n"
        "CREATE INDEX CONCURRENTLY i ON t (begin);\n"
    )
    statements = split_statements(rev.up)
    assert [s.line for s in statements] == [3, 5, 6]
    assert statements[1].sql.endswith("$$") and "RETURN 1;" in statements[1].sql
