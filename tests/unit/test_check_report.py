"""`check` lists every problem of a directory in one run (file, line, what, how to fix), then exits 3 once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli, write_pair

from z4j_migrate import directory, manifest
from z4j_migrate.errors import RevisionFileError
from z4j_migrate.revisions import discover

# (file, line, what the problem line says): five different problems, one per file
EXPECTED = [
    ("0002_lonely.up.sql", None, "has no matching 0002_lonely.down.sql"),
    ("0003_typo.up.sql", 2, "did you mean '-- transactional:'"),
    ("0004_index.up.sql", 3, "CREATE INDEX CONCURRENTLY cannot run inside a transaction block"),
    ("0005_syntax.up.sql", 3, "SQL syntax error"),
    ("7_Bad-Name.up.sql", None, "malformed revision file name"),
]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    folder = tmp_path / "revs"
    folder.mkdir()
    write_pair(folder, "0001_ok", "CREATE TABLE t (id int);\n", "DROP TABLE t;\n")
    (folder / "0002_lonely.up.sql").write_text("-- message: m\nSELECT 1;\n", encoding="utf-8")
    write_pair(folder, "0003_typo", "-- message: m\n-- transactonal: false\nSELECT 1;\n", "SELECT 1;\n")
    write_pair(
        folder, "0004_index", "-- NOTE: a plain comment\nCREATE INDEX CONCURRENTLY i ON t (id);\n", "SELECT 1;\n"
    )
    write_pair(folder, "0005_syntax", "-- https://example.com/ticket/5\nCREAT TABLE u (id int);\n", "SELECT 1;\n")
    (folder / "7_Bad-Name.up.sql").write_text("-- message: m\nSELECT 1;\n", encoding="utf-8")
    return folder


def _found(report: directory.CheckReport, folder: Path) -> list[tuple[str, int | None, str]]:
    return [(Path(p.path or "").name, p.line, p.message) for p in report.problems]


def test_the_library_reports_all_five(broken: Path):
    report = directory.check_directory(broken, lint=False)
    found = _found(report, broken)
    assert [(name, line) for name, line, _ in found] == [(name, line) for name, line, _ in EXPECTED]
    for (_, _, message), (_, _, what) in zip(found, EXPECTED, strict=True):
        assert what in message
    assert report.revisions == 3 and not report.ok  # read; two of them with SQL problems
    with pytest.raises(RevisionFileError, match=r"5 problem\(s\)") as info:
        report.raise_for_problems()
    assert info.value.exit_code == 3


def test_the_cli_reports_all_five_in_one_run(broken: Path):
    result = run_cli("check", "--no-lint", str(broken))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stdout.splitlines()
    for name, line, what in EXPECTED:
        where = f"{broken / name}:{line}: " if line else f"{broken / name}: "
        assert [ln for ln in lines if ln.startswith(where) and what in ln], (where, result.stdout)
    assert lines[-1].startswith(f"check: 5 problem(s) in {broken} (") and not result.stdout.startswith("ok:")
    assert result.stderr.count("\n") == 1 and "5 problem(s)" in result.stderr  # one paragraph

    as_json = run_cli("check", "--no-lint", "--json", str(broken))
    assert as_json.returncode == 3
    document = json.loads(as_json.stdout)
    assert document["ok"] is False and len(document["problems"]) == 5
    assert [(Path(p["path"]).name, p["line"]) for p in document["problems"]] == [(n, ln) for n, ln, _ in EXPECTED]


def test_collecting_discover_keeps_the_first_error_path_unchanged(broken: Path):
    with pytest.raises(RevisionFileError, match="7_Bad-Name.up.sql: malformed revision file name"):
        discover(broken)  # upgrade and start-up: the first problem, raised at once
    problems: list[RevisionFileError] = []
    assert [r.id for r in discover(broken, problems=problems).revisions] == ["0001_ok", "0004_index", "0005_syntax"]
    assert len(problems) == 3


def test_a_stale_manifest_and_lint_errors_join_the_report(tmp_path: Path):
    folder = tmp_path / "revs"
    folder.mkdir()
    write_pair(folder, "0001_a", "CREATE TABLE a (id int);\n", "DROP TABLE a;\n")
    directory.write_manifest(folder)
    write_pair(folder, "0002_drop", "DROP TABLE a;\n", "CREATE TABLE a (id int);\n")  # destructive, unhashed
    report = directory.check_directory(folder, lint=False)
    assert [p.kind for p in report.all_problems] == ["manifest", "lint"]
    assert report.problems[0].path == str(folder / manifest.MANIFEST_FILE) and "0002_drop" in report.problems[0].message
    text = report.render()
    assert text.splitlines()[-1] == f"check: 2 problem(s) in {folder} (1 in the manifest, 1 lint error(s))"


def test_a_clean_directory_says_ok(tmp_path: Path):
    folder = tmp_path / "revs"
    folder.mkdir()
    write_pair(
        folder,
        "0001_a",
        "-- NOTE: see the ticket\n-- transactional: true\nCREATE TABLE a (id int);\n",
        "DROP TABLE a;\n",
    )
    report = directory.check_directory(folder, lint=False)
    assert report.ok and report.problems == () and report.render().splitlines()[-1] == f"ok: 1 revision(s) in {folder}"
    report.raise_for_problems()
