"""`check --layout golang-migrate|dbmate|yoyo|flyway` lists every problem of a foreign directory in
one report, like ours (layouts.py collects per file; directory.check_directory). The revisions
beside the problems are still read, and their SQL is still checked. Without a list, discovery
still raises the first problem, as upgrade and the start-up need. No database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import run_cli

from z4j_migrate.directory import check_directory
from z4j_migrate.errors import RevisionFileError
from z4j_migrate.revisions import discover

SYNTAX = "CREATE TABLE (;\n"  # read fine by the layout; sqlcheck finds it (a "sql" problem)

# layout -> (files, revisions read without a problem, [(file, line, kind, words)]: every problem)
CASES: dict[str, tuple[dict[str, str], int, list[tuple[str, int | None, str, str]]]] = {
    "golang-migrate": (
        {
            "1_init.up.sql": "-- NOTE: first\nCREATE TABLE t (id int);\n",
            "1_init.down.sql": "DROP TABLE t;\n",
            "2_v6.0-add.up.sql": "ALTER TABLE t ADD c int;\n",  # no down: irreversible, not a problem
            "3_syntax.up.sql": SYNTAX,
            "3_syntax.down.sql": "",
            "4_bad.up.sql": "-- transactional: maybe\nSELECT 1;\n",
            "4_bad.down.sql": "SELECT 4;\n",
            "6_down.up.sql": "SELECT 6;\n",
            "6_down.down.sql": "-- transactional: nope\nSELECT 6;\n",  # a good up does not keep it
            "05_first.up.sql": "SELECT 5;\n",
            "5_second.up.sql": "SELECT 5;\n",
            "9_orphan.down.sql": "SELECT 9;\n",
            "seed.sql": "SELECT 1;\n",
            "main.go": "package migrations\n",  # not .sql: ignored
        },
        4,  # 1, 2, 3 and the first file of version 5
        [
            ("3_syntax.up.sql", 1, "sql", "SQL syntax error"),
            ("4_bad.up.sql", 1, "files", "'-- transactional: maybe' must be true or false"),
            ("5_second.up.sql", None, "files", "version 5 is used twice: 05_first.up.sql and 5_second.up.sql"),
            ("6_down.down.sql", 1, "files", "'-- transactional: nope' must be true or false"),
            ("9_orphan.down.sql", None, "files", "has no up file of version 9"),
            ("seed.sql", None, "files", "matches no rule of the golang-migrate layout"),
        ],
    ),
    "dbmate": (
        {
            "20240101000000_create.sql": "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n",
            "20240101000000_dup.sql": "-- migrate:up\nSELECT 1;\n-- migrate:down\n",
            "20240102000000_comment.sql": "-- migrate:up\nCOMMENT ON TABLE t IS 'x';\n-- migrate:down\n",
            "20240103000000_syntax.sql": f"-- migrate:up\n{SYNTAX}-- migrate:down\n",
            "20240104000000_plain.sql": "CREATE TABLE a (id int);\n",
            "20240105000000_nodown.sql": "-- migrate:up\nSELECT 1;\n",
            "notes.sql": "SELECT 1;\n",
        },
        3,
        [
            ("20240101000000_dup.sql", None, "files", "version 20240101000000 is used twice"),
            ("20240103000000_syntax.sql", 2, "sql", "SQL syntax error"),
            ("20240104000000_plain.sql", None, "files", "has no '-- migrate:up' line"),
            ("20240105000000_nodown.sql", None, "files", "has no '-- migrate:down' line"),
            ("notes.sql", None, "files", "matches no rule of the dbmate layout"),
        ],
    ),
    "yoyo": (
        {
            "20240101_01_AbCdE-create.sql": "CREATE TABLE t (id int);\n",
            "20240101_01_AbCdE-create.rollback.sql": "DROP TABLE t;\n",
            "20240101_02_FgHiJ-add.sql": "-- depends: 20240101_01_AbCdE-create\nALTER TABLE t ADD c int;\n",
            "20240101_03_KlMnO-py.py": "steps = []\n",
            "a.sql": "-- depends: b\nSELECT 1;\n",
            "b.sql": "-- depends: a\nSELECT 2;\n",
            "after.sql": "-- depends: bad\nSELECT 3;\n",  # on a file with a problem: not a second problem
            "bad.sql": "-- transactional: maybe\nSELECT 1;\n",
            "gone.rollback.sql": "SELECT 1;\n",
            "needs.sql": "-- depends: nope\nSELECT 1;\n",
            "syntax.sql": SYNTAX,
            "yoyo.ini": "[DEFAULT]\n",
        },
        4,  # create, add, after, syntax
        [
            ("20240101_03_KlMnO-py.py", None, "files", "is a yoyo Python migration"),
            ("a.sql", None, "files", "circular '-- depends:' among a, b."),  # once, naming both
            ("bad.sql", 1, "files", "'-- transactional: maybe' must be true or false (as yoyo requires)"),
            ("gone.rollback.sql", None, "files", "has no migration gone.sql to roll back"),
            ("needs.sql", None, "files", "'-- depends: nope' names no migration"),
            ("syntax.sql", 1, "sql", "SQL syntax error"),
        ],
    ),
    "flyway": (
        {
            "V1__Create.sql": "CREATE TABLE t (id int);\n",
            "U1__Create.sql": "DROP TABLE t;\n",
            "V2__Index.sql": "CREATE INDEX CONCURRENTLY t_id ON t (id);\n",
            "V2__Index.sql.conf": "executeInTransaction=false\n",
            "V03__first.sql": "SELECT 3;\n",
            "V3__second.sql": "SELECT 3;\n",
            "V4__Syntax.sql": SYNTAX,
            "V1.1__dotted.sql": "SELECT 1;\n",
            "R__views.sql": "SELECT 1;\n",
            "U7__orphan.sql": "SELECT 1;\n",
            "afterMigrate.sql": "SELECT 1;\n",
        },
        4,  # V1, V2, the first file of version 3, V4
        [
            ("R__views.sql", None, "files", "is a Flyway repeatable migration (R__)"),
            ("U7__orphan.sql", None, "files", "undoes version 7, which has no V7__ migration"),
            ("V1.1__dotted.sql", None, "files", "dotted version 1.1 is not supported"),
            ("V3__second.sql", None, "files", "version 3 is used twice: V03__first.sql and V3__second.sql"),
            ("V4__Syntax.sql", 1, "sql", "SQL syntax error"),
            ("afterMigrate.sql", None, "files", "matches no rule of the flyway layout"),
        ],
    ),
}


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("layout", list(CASES))
def test_check_lists_every_problem_of_a_foreign_directory(tmp_path: Path, layout: str):
    files, read, expected = CASES[layout]
    folder = _write(tmp_path / layout, files)
    report = check_directory(folder, lint=False, layout=layout)
    got = sorted((os.path.basename(p.path or ""), p.line, p.kind, p.message) for p in report.problems)
    assert len(got) == len(expected), "\n".join(map(str, got))
    for (name, line, kind, words), (g_name, g_line, g_kind, g_message) in zip(expected, got, strict=True):
        assert (g_name, g_line, g_kind) == (name, line, kind) and words in g_message, (name, g_message)
    assert report.revisions == read and report.layout == layout and not report.ok

    # Without a list (upgrade, start-up): the first of those problems raises, the same error.
    found: list[RevisionFileError] = []
    discover(folder, layout, problems=found)
    assert len(found) == sum(kind == "files" for *_, kind, _ in expected)
    with pytest.raises(RevisionFileError) as caught:
        discover(folder, layout)
    assert str(caught.value) == str(found[0])


def test_a_dependency_on_a_file_with_a_problem_is_passed_over_in_yoyo_order(tmp_path: Path):
    """yoyo: `after` depends on `bad` (unreadable) and `later` on `needs` (names a missing one);
    both are still ordered and read, in name order, with yoyo's numbering by position."""
    files = {
        "bad.sql": "-- transactional: maybe\nSELECT 1;\n",
        "after.sql": "-- depends: bad\nSELECT 2;\n",
        "needs.sql": "-- depends: nope\nSELECT 3;\n",
        "later.sql": "-- depends: needs after\nSELECT 4;\n",
    }
    found: list[RevisionFileError] = []
    revset = discover(_write(tmp_path / "y", files), "yoyo", problems=found)
    assert [(r.version, r.id) for r in revset.revisions] == [(1, "after"), (2, "later")]
    assert [os.path.basename(e.path or "") for e in found] == ["bad.sql", "needs.sql"]  # nothing about the others
    assert "must be true or false" in found[0].message and "names no migration" in found[1].message


def test_cli_check_in_a_foreign_layout_reports_everything_at_once(tmp_path: Path):
    files, _read, expected = CASES["golang-migrate"]
    folder = _write(tmp_path / "gm", files)
    result = run_cli("check", "--no-lint", "--layout", "golang-migrate", str(folder))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for name, line, _kind, words in expected:
        where = f"{folder / name}:{line}: " if line else f"{folder / name}: "
        assert [ln for ln in lines if ln.startswith(where) and words in ln], (where, result.stdout)
    assert lines[-1].startswith(f"check: {len(expected)} problem(s) in {folder} (")
    assert result.stderr.count("\n") == 1 and f"{len(expected)} problem(s)" in result.stderr  # one paragraph
