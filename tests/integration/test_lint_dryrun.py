"""`z4j-migrate check` lint (squawk + destructive statements) and `--dry-run` (issue #6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import applied_ids, run_cli, state_fingerprint, write_pair

from z4j_migrate.errors import ConfigError
from z4j_migrate.lint import LintConfig, destructive_statements, find_squawk, lint, load_config
from z4j_migrate.revisions import SqlFile, discover

BASE = ("0001_t", "CREATE TABLE t (id bigint PRIMARY KEY, a text);\nCREATE INDEX ix_t_fresh ON t (a);", "DROP TABLE t;")


def project(tmp_path: Path, lint_section: str = "") -> Path:
    """A migrations dir inside a project whose pyproject.toml holds `lint_section`."""
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "app"\n{lint_section}', encoding="utf-8")
    folder = tmp_path / "migrations"
    folder.mkdir()
    write_pair(folder, *BASE)
    return folder


def findings(stdout: str) -> list[tuple[str, str, str]]:
    """(file, line:col, "severity rule") of each location listed under its rule's line."""
    out, current = [], None
    for line in stdout.splitlines():
        if line.startswith(("warning  ", "error  ")):
            severity, rule = line.split()[:2]
            current = f"{severity} {rule}"
        elif line.startswith("    ") and current and not line.lstrip().startswith("..."):
            path, where = line.split()[0].split(":", 1)
            out.append((Path(path).name, where, current))
    return out


# ------------------------------------------------------------------------ squawk


def test_lint_reports_blocking_index_and_required_column_per_file_and_rule(tmp_path):
    folder = project(tmp_path)
    write_pair(folder, "0002_ix", "CREATE INDEX ix_t_a ON t (a);", "DROP INDEX ix_t_a;")
    write_pair(folder, "0003_b", "ALTER TABLE t ADD COLUMN b bigint NOT NULL;", "ALTER TABLE t DROP COLUMN b;")
    r = run_cli("check", str(folder))
    assert r.returncode == 0, r.stdout + r.stderr  # warnings only
    found = findings(r.stdout)
    assert ("0002_ix.up.sql", "2:1", "warning require-concurrent-index-creation") in found
    assert ("0003_b.up.sql", "2:15", "warning adding-required-field") in found
    # The index on the table created in the same (transactional) file blocks nobody: no finding.
    assert not [f for f in found if f[0] == "0001_t.up.sql" and "concurrent" in f[2]]
    assert "During normal index creation" in r.stdout
    assert "lint: 0 error(s)" in r.stdout and "squawk 2.70.0" in r.stdout
    assert "warning  adding-required-field  1: " in r.stdout
    assert "warning  require-concurrent-index-creation  1: " in r.stdout


def test_error_rules_fail_check_and_ignore_rules_silence_it(tmp_path):
    folder = project(
        tmp_path,
        '[tool.z4j-migrate.lint]\nerror_rules = ["adding-required-field"]\nignore_rules = ["require-*", "prefer-*"]\n',
    )
    write_pair(folder, "0002_ix", "CREATE INDEX ix_t_a ON t (a);", "DROP INDEX ix_t_a;")
    write_pair(folder, "0003_b", "ALTER TABLE t ADD COLUMN b bigint NOT NULL;", "ALTER TABLE t DROP COLUMN b;")
    r = run_cli("check", str(folder))
    assert r.returncode == 3, r.stdout + r.stderr
    assert findings(r.stdout) == [("0003_b.up.sql", "2:15", "error adding-required-field")]
    assert "1 lint error(s)" in r.stderr and "0003_b.up.sql:2: adding-required-field" in r.stderr
    r = run_cli("check", "--no-lint", str(folder))
    assert r.returncode == 0 and findings(r.stdout) == [] and "squawk skipped (--no-lint)" in r.stdout


def test_squawk_is_told_whether_the_file_runs_in_a_transaction(tmp_path):
    folder = project(tmp_path, '[tool.z4j-migrate.lint]\nignore_rules = ["require-*"]\n')
    write_pair(folder, "0002_in_tx", "CREATE TABLE u (id bigint PRIMARY KEY);", "DROP TABLE u;")
    no_tx = "-- message: m\n-- transactional: false\nCREATE TABLE v (id bigint PRIMARY KEY);"
    write_pair(folder, "0003_no_tx", no_tx, "-- transactional: false\nDROP TABLE v;")
    found = {(f[0], f[2]) for f in findings(run_cli("check", str(folder)).stdout)}
    # Statement by statement without a transaction, a re-run after a failure needs IF NOT EXISTS ...
    assert ("0003_no_tx.up.sql", "warning prefer-robust-stmts") in found
    assert ("0003_no_tx.down.sql", "warning prefer-robust-stmts") in found
    # ... while a transactional file is all or nothing.
    assert not [f for f in found if f[0].startswith("0002_in_tx")]


def test_a_whole_file_begin_commit_wrapper_is_not_reported_as_nesting(tmp_path):
    """settle drops the wrapper and refuses any other transaction control, so squawk's
    transaction-nesting (which reads the file as written) would only be noise."""
    folder = project(tmp_path)
    wrapped = "-- message: wrapped\nBEGIN;\nCREATE TABLE w (id bigint PRIMARY KEY);\nCOMMIT;"
    write_pair(folder, "0002_wrapped", wrapped, "DROP TABLE w;")
    r = run_cli("check", str(folder))
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [f for f in findings(r.stdout) if "transaction-nesting" in f[2]], r.stdout


def test_down_files_are_linted_without_the_rules_their_undo_sets_off(tmp_path):
    folder = project(tmp_path, "[tool.z4j-migrate.lint]\nignore_rules = []\n")
    write_pair(
        folder,
        "0002_c",
        "ALTER TABLE t ADD COLUMN c text;\nDROP INDEX ix_t_fresh;",
        "ALTER TABLE t DROP COLUMN c;\nCREATE INDEX ix_t_fresh ON t (a);\nALTER TABLE t ADD COLUMN d bigint NOT NULL;",
    )
    found = findings(run_cli("check", str(folder)).stdout)
    up = {f[2] for f in found if f[0] == "0002_c.up.sql"}
    down = {f[2] for f in found if f[0] == "0002_c.down.sql"}
    assert "warning require-concurrent-index-deletion" in up  # the up is judged as before
    assert "warning adding-required-field" in down  # a down can get this one wrong like an up
    assert not {"warning ban-drop-column", "warning require-concurrent-index-creation"} & down
    assert "warning require-lock-timeout" in up | down  # ignore_rules = [] replaces the default


def test_the_same_finding_in_many_files_is_one_line_with_a_count(tmp_path):
    folder = project(tmp_path, '[tool.z4j-migrate.lint]\nignore_rules = ["require-*-timeout"]\n')
    for n in range(2, 42):  # 40 revisions, each an index the ordinary way and a down that drops it
        write_pair(folder, f"{n:04d}_ix{n}", f"CREATE INDEX ix{n} ON t (a);", f"DROP INDEX ix{n};")
    r = run_cli("check", str(folder))
    assert r.returncode == 0, r.stdout + r.stderr
    rule_lines = [line for line in r.stdout.splitlines() if line.startswith("warning  ")]
    assert rule_lines == [rule_lines[0]] and rule_lines[0].startswith(
        "warning  require-concurrent-index-creation  40: During normal index creation"
    )
    assert [f[0] for f in findings(r.stdout)] == ["0002_ix2.up.sql", "0003_ix3.up.sql", "0004_ix4.up.sql"]
    assert "    ... and 37 more (check -v lists every finding)" in r.stdout
    assert len(r.stdout.splitlines()) < 10
    everything = findings(run_cli("check", "-v", str(folder)).stdout)
    assert len(everything) == 40 and {f[2] for f in everything} == {"warning require-concurrent-index-creation"}
    assert len(findings(run_cli("-v", "check", str(folder)).stdout)) == 40  # -v before the command too


def test_missing_squawk_and_bad_config_are_clear_errors(tmp_path, monkeypatch):
    folder = project(tmp_path)
    r = run_cli("check", str(folder), env={"Z4J_SQUAWK": str(tmp_path / "no-squawk")})
    assert r.returncode == 2 and "squawk not found at" in r.stderr and "--no-lint" in r.stderr
    assert run_cli("check", "--no-lint", str(folder), env={"Z4J_SQUAWK": str(tmp_path / "x")}).returncode == 0
    (tmp_path / "pyproject.toml").write_text('[tool.z4j-migrate.lint]\nerror_rule = ["x"]\n')
    r = run_cli("check", str(folder))
    assert r.returncode == 2 and "unknown key(s) ['error_rule']" in r.stderr
    with monkeypatch.context() as m:
        m.delenv("Z4J_SQUAWK", raising=False)
        m.setenv("PATH", str(tmp_path))
        m.setattr("sys.executable", str(tmp_path / "python"))
        with pytest.raises(ConfigError, match=r"pip install 'z4j-migrate\[lint\]'"):
            find_squawk(LintConfig())


def test_config_comes_from_the_nearest_pyproject(tmp_path, monkeypatch):
    folder = project(tmp_path, '[tool.z4j-migrate.lint]\nerror_rules = ["ban-*"]\npg_version = "15"\n')
    config = load_config(folder)
    assert config.error_rules == ("ban-*",) and config.pg_version == "15"
    assert config.ignore_rules == ("require-lock-timeout", "require-statement-timeout")  # the default
    assert config.source == str(tmp_path / "pyproject.toml")
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    assert load_config(None).source == str(tmp_path / "pyproject.toml")  # upward from the cwd


# ------------------------------------------------------------- destructive statements


def sql_file(text: str) -> SqlFile:
    return SqlFile("x.up.sql", text, "", True, True)


def test_destructive_statements_are_found_with_the_parser():
    found = destructive_statements(
        sql_file(
            "-- message: m\n"
            "DROP TABLE old_a, s.old_b;\n"
            "ALTER TABLE t DROP COLUMN c, ALTER COLUMN d TYPE bigint, ADD COLUMN e int;\n"
            "TRUNCATE logs;\n"
            "CREATE TABLE fresh (id int);\n"
            "ALTER TABLE fresh RENAME TO fresh2;\n"
            "ALTER TABLE fresh2 DROP COLUMN id;\n"
            "DROP TABLE fresh2;\n"
            "ALTER TABLE t ALTER COLUMN e TYPE text;\n"
            "-- 'DROP TABLE in_comment;' and strings are not statements\n"
            "SELECT 'DROP TABLE x';\n"
        )
    )
    assert [(d.line, d.what) for d in found] == [
        (2, "drops table old_a"),
        (2, "drops table s.old_b"),
        (3, "drops column t.c"),
        (3, "changes the type of column t.d"),
        (4, "truncates table logs"),
    ]


def test_destructive_up_needs_a_directive_or_an_irreversible_down(tmp_path):
    folder = project(tmp_path)
    write_pair(folder, "0002_drop_a", "ALTER TABLE t DROP COLUMN a;", "ALTER TABLE t ADD COLUMN a text;")
    r = run_cli("check", "--no-lint", str(folder))
    assert r.returncode == 3, r.stdout + r.stderr
    assert findings(r.stdout) == [("0002_drop_a.up.sql", "2:1", "error destructive-statement")]
    assert "drops column t.a" in r.stdout and "-- destructive: <why this is acceptable>" in r.stdout
    assert "1 lint error(s)" in r.stderr and "0002_drop_a.up.sql:2: destructive-statement" in r.stderr

    (folder / "0002_drop_a.up.sql").write_text(
        "-- message: drop t.a\n-- destructive: t.a has been unused since 2.0\nALTER TABLE t DROP COLUMN a;\n"
    )
    r = run_cli("check", "--no-lint", str(folder))
    assert r.returncode == 0 and "declared destructive: t.a has been unused since 2.0" in r.stdout
    assert discover(folder).revisions[1].destructive == "t.a has been unused since 2.0"

    (folder / "0002_drop_a.up.sql").write_text("-- message: drop t.a\nALTER TABLE t DROP COLUMN a;\n")
    (folder / "0002_drop_a.down.sql").write_text("-- irreversible: restore the backup taken before 0002\n")
    r = run_cli("check", "--no-lint", str(folder))
    assert r.returncode == 0 and "the revision is irreversible" in r.stdout

    (folder / "0002_drop_a.up.sql").write_text("-- message: m\n-- destructive:\nALTER TABLE t DROP COLUMN a;\n")
    r = run_cli("check", "--no-lint", str(folder))
    assert r.returncode == 3 and "0002_drop_a.up.sql:2: '-- destructive:' needs a reason" in r.stderr


def test_a_declared_but_harmless_revision_gets_a_warning(tmp_path):
    folder = project(tmp_path)
    write_pair(
        folder, "0002_c", "-- message: m\n-- destructive: why\nALTER TABLE t ADD c int;", "ALTER TABLE t DROP c;"
    )
    report = lint(discover(folder), squawk=False)
    assert [(f.rule, f.severity) for f in report.findings] == [("destructive-directive-unused", "warning")]


# ------------------------------------------------------------------------ dry-run

DRY = [
    ("0001_users", "CREATE TABLE users (id bigint PRIMARY KEY, email text);", "DROP TABLE users;"),
    (
        "0002_users_email",
        "-- message: index\n-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_users_email ON users (email);",
        "-- preflight: SELECT NOT EXISTS (SELECT 1 FROM users)\nDROP INDEX CONCURRENTLY IF EXISTS ix_users_email;",
    ),
    ("0003_posts", "CREATE TABLE posts (id bigint PRIMARY KEY);", "DROP TABLE posts;"),
]


def assert_in_order(text: str, pieces: list[str]) -> None:
    """Each piece occurs after the one before it."""
    at = 0
    for piece in pieces:
        found = text.find(piece, at)
        assert found >= 0, f"{piece!r} not found after offset {at} in:\n{text}"
        at = found + len(piece)


def test_dry_run_prints_the_sql_in_order_and_touches_nothing(database_url, migrations):
    for rev in DRY:
        write_pair(migrations, *rev)
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
    before = state_fingerprint(database_url)
    r = run_cli("upgrade", "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    order = [
        "lock_timeout = 5s",
        "-- ==== 0001_users",
        "BEGIN;",
        "set_config('lock_timeout', '5000', true)",
        "pg_try_advisory_xact_lock",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text);",
        "record 0001_users",
        "COMMIT;",
        "-- ==== 0002_users_email",
        "pg_try_advisory_lock(",
        "set_config('statement_timeout', '0', false)",
        "-- non-transactional",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_users_email ON users (email);",
        "pg_advisory_unlock",
        "-- ==== 0003_posts",
        "pg_try_advisory_xact_lock",
        "CREATE TABLE posts (id bigint PRIMARY KEY);",
    ]
    assert_in_order(out, order)
    assert state_fingerprint(database_url) == before  # not even the bookkeeping tables were created
    assert run_cli("upgrade", "--to", "2", "--dry-run", env=env).stdout.count("-- ==== ") == 2

    assert run_cli("upgrade", env=env).returncode == 0
    before = state_fingerprint(database_url)
    r = run_cli("downgrade", "--to", "base", "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    order = [
        "-- preflight (must be true; checked before any step): SELECT NOT EXISTS (SELECT 1 FROM users)",
        "-- ==== undo 0003_posts",
        "pg_try_advisory_xact_lock",
        "DROP TABLE posts;",
        "-- ==== undo 0002_users_email",
        "pg_try_advisory_lock(",
        "DROP INDEX CONCURRENTLY IF EXISTS ix_users_email;",
        "pg_advisory_unlock",
        "-- ==== undo 0001_users",
        "DROP TABLE users;",
    ]
    assert_in_order(out, order)
    assert state_fingerprint(database_url) == before
    assert applied_ids(database_url) == ["0001_users", "0002_users_email", "0003_posts"]


def test_dry_run_shows_what_the_run_sends_for_a_wrapped_file(database_url, migrations):
    """The whole-file BEGIN ... COMMIT is dropped by settle, so the dry run shows one BEGIN (ours) and one COMMIT."""
    wrapped = "-- message: wrapped\nBEGIN;\nCREATE TABLE w (id bigint PRIMARY KEY);\nCOMMIT;"
    write_pair(migrations, "0001_wrapped", wrapped, "DROP TABLE w;")
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
    r = run_cli("upgrade", "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    body = r.stdout.split("-- ==== 0001_wrapped", 1)[1]
    assert body.count("BEGIN;") == 1 and body.count("COMMIT;") == 1, body
    assert "CREATE TABLE w (id bigint PRIMARY KEY);" in body
    assert applied_ids(database_url) == []


def test_a_destructive_statement_in_another_tools_layout_is_a_warning(tmp_path):
    """golang-migrate has no '-- destructive:' marker to ask for: the finding stays, as a warning."""
    folder = tmp_path / "gm"
    folder.mkdir()
    (folder / "1_t.up.sql").write_text("CREATE TABLE t (id bigint PRIMARY KEY, a text);\n")
    (folder / "1_t.down.sql").write_text("DROP TABLE t;\n")
    (folder / "2_drop_a.up.sql").write_text("ALTER TABLE t DROP COLUMN a;\n")
    (folder / "2_drop_a.down.sql").write_text("ALTER TABLE t ADD COLUMN a text;\n")
    r = run_cli("check", "--no-lint", "--layout", "golang-migrate", str(folder))
    assert r.returncode == 0, r.stdout + r.stderr
    assert findings(r.stdout) == [("2_drop_a.up.sql", "1:1", "warning destructive-statement")], r.stdout
