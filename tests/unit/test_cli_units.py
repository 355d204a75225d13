"""The thin CLI without a database: the click-free upgrade parser builds the same Settings as click,
values of 0 are kept, revisions are found by number, the log handler leaves printed events out,
and the offline library functions behind check, hash and new."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import REPO, write_pair

from z4j_migrate import api, cli, directory, manifest
from z4j_migrate.errors import ConfigError, RevisionFileError
from z4j_migrate.logs import EVENT_APPLIED, EVENT_ROLLED_BACK, log
from z4j_migrate.revisions import discover

URL = "postgresql://app@db.invalid:5432/app"
OTHER = "postgresql://other@elsewhere.invalid/other"


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch):
    """No Z4J_* from the caller; the package logger as it was."""
    for name in list(os.environ):
        if name.startswith("Z4J_"):
            monkeypatch.delenv(name)
    saved = (list(log.handlers), log.level, log.propagate)
    yield
    log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def revdir(tmp_path: Path) -> Path:
    folder = tmp_path / "revs"
    folder.mkdir()
    write_pair(folder, "0001_a", "CREATE TABLE a (id bigint);", "DROP TABLE a;")
    write_pair(folder, "0002_b", "CREATE TABLE b (id bigint);", "DROP TABLE b;")
    return folder


def _through_click(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[object, str | None, int]:
    """What the click command passes to api.upgrade, and the verbosity it ends with."""
    seen: dict[str, object] = {}

    def fake_upgrade(settings, *, to=None, dry_run=False):
        seen.update(settings=settings, to=to)
        return api.UpgradeResult()

    monkeypatch.setattr(api, "upgrade", fake_upgrade)
    from z4j_migrate.commands import cli as group

    with group.make_context("z4j-migrate", list(args)) as ctx:
        group.invoke(ctx)
        verbosity = ctx.obj.verbosity
    return seen["settings"], seen["to"], verbosity  # type: ignore[return-value]


def _through_fast_path(args: list[str]) -> tuple[object, str | None, int]:
    options = cli.parse_upgrade(args)
    assert options is not None, f"{args} should take the fast path"
    run = cli.Invocation()
    settings = run.settings(options)
    return settings, cli.revision_id(settings, options.get("target")), run.verbosity


FAST = [
    [],
    ["upgrade"],
    ["-q", "--database-url", URL, "--migrations-dir", "{dir}", "upgrade"],
    ["upgrade", "-q", f"--database-url={URL}", "--migrations-dir={dir}"],
    ["--database-url", URL, "--migrations-dir", "{dir}"],
    ["--lock-timeout", "0", "--statement-lock-timeout", "0", "upgrade", "--database-url", URL],
    ["upgrade", "--lock-timeout=0", "--statement-timeout", "2.5", "--wait", "0", "--database-url", URL],
    ["--schema", "s1", "upgrade", "--schema", "s2", "--database-url", URL],
    ["--database-url", OTHER, "upgrade", "--database-url", URL],
    ["--database-url", URL, "upgrade", "--lock-timeout", "5", "--lock-timeout", "7"],
    ["-v", "--database-url", URL, "upgrade", "-vv"],
    ["--verbose", "upgrade", "--quiet", "--database-url", URL],
    ["--database-url", URL, "--migrations-dir", "{dir}", "upgrade", "--to", "1"],
    ["--database-url", URL, "--migrations-dir", "{dir}", "upgrade", "--to=0002"],
    ["--database-url", URL, "--migrations-dir", "{dir}", "upgrade", "--to", "0002_b"],
    ["--database-url", URL, "--migrations-dir", "{dir}", "upgrade", "--to", "9"],
    ["--direct-url", OTHER, "upgrade", "--database-url", URL, "--lock-timeout", "1e1"],
    ["--database-url", URL, "--schema", "upgrade"],  # `upgrade` is the schema's name here
    ["--migrations-dir", "{dir}/not-yet", "--database-url", URL],
]


@pytest.mark.parametrize("template", FAST, ids=lambda a: " ".join(a) or "(none)")
def test_the_fast_parser_builds_the_settings_click_builds(template, revdir, monkeypatch):
    monkeypatch.setenv("Z4J_DATABASE_URL", OTHER)
    args = [a.replace("{dir}", str(revdir)) for a in template]
    assert _through_fast_path(args) == _through_click(args, monkeypatch)


def test_option_values_of_zero_are_kept_on_both_paths(monkeypatch):
    args = ["--database-url", URL, "upgrade", "--lock-timeout", "0", "--statement-lock-timeout", "0"]
    for settings, _to, _v in (_through_fast_path(args), _through_click(args, monkeypatch)):
        assert settings.lock_timeout_s == 0.0 and settings.statement_lock_timeout_s == 0.0
        assert settings.connect_wait_s == 0.0


def test_the_fast_parser_resolves_a_revision_number_to_its_id(revdir):
    base = ["--database-url", URL, "--migrations-dir", str(revdir), "upgrade", "--to"]
    for ref in ("2", "02", "0002", "000002", "0002_b"):
        assert _through_fast_path([*base, ref])[1] == "0002_b"
    assert _through_fast_path([*base, "7"])[1] == "7"  # not here: the library names the problem


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["-h"],
        ["upgrade", "--help"],
        ["--version"],
        ["upgrade", "--dry-run"],
        ["--status"],
        ["status"],
        ["downgrade", "--to", "base"],
        ["--to", "1"],  # a command option before the command: click's error
        ["upgrade", "extra"],
        ["upgrade", "upgrade"],
        ["--lock-timeout", "abc"],
        ["--lock-timeout", "-1"],
        ["--database-url"],
        ["upgrade", "--to"],
        ["--database-url", "-q"],
        ["-qv"],
        ["--quiet=yes"],
        ["--bogus"],
        ["--database", URL],  # click does not expand abbreviations, and neither does the fast path
        ["-"],
        ["--"],
    ],
    ids=" ".join,
)
def test_anything_else_goes_to_click(args):
    assert cli.parse_upgrade(args) is None


def test_a_migrations_dir_that_is_a_file_goes_to_click(revdir):
    assert cli.parse_upgrade(["--migrations-dir", str(revdir / "0001_a.up.sql")]) is None


def test_negative_and_infinite_seconds_are_configuration_errors():
    with pytest.raises(ConfigError, match=r"--lock-timeout -1: must be 0 or more seconds"):
        cli.settings_from_options({"database_url": URL, "lock_timeout": -1.0})
    with pytest.raises(ConfigError, match=r"--wait inf: must be a finite number of seconds"):
        cli.settings_from_options({"database_url": URL, "wait_": float("inf")})
    with pytest.raises(ConfigError, match=r"--statement-timeout nan"):
        cli.settings_from_options({"database_url": URL, "statement_timeout": float("nan")})


def test_the_command_name_is_found_past_option_values():
    assert cli.command_of(["--database-url", "status", "downgrade", "--to", "base"]) == "downgrade"
    assert cli.command_of(["-q", "--schema=x", "status"]) == "status"
    assert cli.command_of(["-v"]) is None


def _run_main(code: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)


def test_no_upgrade_invocation_imports_click():
    """Every form of upgrade stops at the URL check here (exit 2), before connecting."""
    code = (
        "import sys\nfrom z4j_migrate import cli\n"
        "for args in ([], ['upgrade'], ['-q', '--database-url', 'nonsense', '--migrations-dir', 'sql', 'upgrade'],"
        " ['--database-url=nonsense', 'upgrade', '--to', '3', '--lock-timeout', '0']):\n"
        "    try:\n        cli.main(args)\n    except SystemExit as exc:\n        assert exc.code == 2, exc.code\n"
        "print('click' in sys.modules)\n"
    )
    r = _run_main(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    assert r.stderr.count("error: ") == 4


def test_the_error_boundary_reports_click_usage_errors_and_bad_values():
    r = _run_main("from z4j_migrate import cli\ncli.main(['--lock-timeout', 'abc', 'upgrade'])")
    assert r.returncode == 2 and "'abc' is not a valid float" in r.stderr and "Traceback" not in r.stderr
    r = _run_main("from z4j_migrate import cli\ncli.main(['--database-url', 'x=y', 'upgrade', '--lock-timeout', '-1'])")
    assert r.returncode == 2 and "error: --lock-timeout -1: must be 0 or more seconds." in r.stderr
    r = _run_main("from z4j_migrate import cli\ncli.main(['--nope'])")
    assert r.returncode == 2 and "No such option" in r.stderr and "(see z4j-migrate --help)" in r.stderr
    r = _run_main("from z4j_migrate import cli\ncli.main(['upgrade', '--help'])")
    assert r.returncode == 0 and "--dry-run" in r.stdout and "--to" in r.stdout


# --------------------------------------------------------------------------- logging


def test_the_log_handler_drops_the_events_the_cli_prints(capsys):
    cli.setup_logging(0)
    log.info("applied 0001_a (a) in 3 ms", extra=EVENT_APPLIED)
    log.info("rolled back 0001_a in 2 ms", extra=EVENT_ROLLED_BACK)
    log.info("waiting for the migration lock")
    log.warning("a warning")
    err = capsys.readouterr().err
    assert "applied 0001_a" not in err and "rolled back" not in err
    assert "waiting for the migration lock" in err and "a warning" in err


def test_quiet_keeps_warnings_only(capsys):
    run = cli.Invocation({"quiet": True})
    run.settings({"database_url": URL})
    run.say("progress")
    log.info("info line")
    log.warning("warned")
    out, err = capsys.readouterr()
    assert out == "" and "info line" not in err and "warned" in err


def test_verbosity_lives_in_the_invocation_not_the_module():
    loud, quiet = cli.Invocation({"verbose": 2}), cli.Invocation({"quiet": True})
    loud.settings({"database_url": URL, "verbose": 1})
    quiet.settings({"database_url": URL})
    assert (loud.verbosity, quiet.verbosity) == (3, -1)
    assert not hasattr(cli, "_quiet")


# --------------------------------------------------------------------------- revisions by number


def test_find_resolves_numbers_with_any_padding_and_ids(revdir):
    revset = discover(revdir)
    for ref in ("2", "02", "0002", "000002", " 2 ", "0002_b"):
        assert revset.find(ref).id == "0002_b", ref
    for ref in ("3", "0002_a", "b", "", "²", "-1", "0002_b.up.sql"):
        assert revset.find(ref) is None, ref


# --------------------------------------------------------------------------- JSON durations


def test_status_json_rounds_durations_to_three_decimals():
    from z4j_migrate.status import RevisionState, RevisionStatus, StatusReport

    rows = (
        RevisionStatus("0001_a", RevisionState.APPLIED, "a", duration_ms=1.4909999999999999 + 1e-12),
        RevisionStatus("0002_b", RevisionState.PENDING, "b"),
    )
    text = cli.render_status_json(StatusReport("postgresql://x/y", rows, (), None))
    assert '"duration_ms": 1.491,' in text and '"duration_ms": null' in text


# --------------------------------------------------------------------------- packaging


def test_squawk_is_a_dependency_not_an_extra():
    """A plain `pip install z4j-migrate` has squawk, so `check` (which lints) works out of the box."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = [d.split("==")[0].split(">")[0].strip() for d in project["dependencies"]]
    assert "squawk-cli" in names
    for extra, deps in project["optional-dependencies"].items():
        assert not [d for d in deps if d.startswith("squawk")], extra


# --------------------------------------------------------------------------- directory functions


def test_check_directory_reports_what_check_prints(revdir):
    report = directory.check_directory(revdir, lint=False)
    assert (report.directory, report.revisions, report.has_manifest, report.ok) == (revdir, 2, False, True)
    assert report.lint.squawk is None
    report.raise_for_problems()
    directory.write_manifest(revdir)
    assert directory.check_directory(revdir, lint=False).has_manifest


def test_check_directory_uses_the_environment_then_reports_bad_files(revdir, monkeypatch):
    monkeypatch.setenv("Z4J_MIGRATIONS_DIR", str(revdir))
    assert directory.check_directory(lint=False).directory == revdir
    directory.write_manifest()
    (revdir / "0002_b.up.sql").write_text("-- message: b\nCREATE TABLE b (id int);\n", encoding="utf-8")
    report = directory.check_directory(lint=False)  # stale manifest: reported, then raised
    assert [(p.kind, p.path) for p in report.problems] == [("manifest", str(revdir / manifest.MANIFEST_FILE))]
    assert "0002_b.up.sql" in report.problems[0].message
    with pytest.raises(RevisionFileError, match="0002_b.up.sql"):
        report.raise_for_problems()
    (revdir / "0002_b.up.sql").write_text("CREATE TABLE b (id int);\n", encoding="utf-8")
    report = directory.check_directory(lint=False)
    assert [(p.kind, p.line) for p in report.problems] == [("files", 1)] and "message" in report.problems[0].message
    with pytest.raises(RevisionFileError, match="message"):
        report.raise_for_problems()


def test_lint_errors_are_in_the_report_and_raise_after_printing(revdir):
    write_pair(revdir, "0003_drop", "DROP TABLE a;", "CREATE TABLE a (id bigint);")
    report = directory.check_directory(revdir, lint=False)
    assert not report.ok and report.lint.errors[0].rule == "destructive-statement"
    with pytest.raises(RevisionFileError, match=r"1 problem\(s\) .*\(1 lint error\(s\)\)") as caught:
        report.raise_for_problems()
    assert caught.value.exit_code == 3


def test_write_manifest_returns_path_changed_and_count(revdir):
    path = revdir / manifest.MANIFEST_FILE
    assert directory.write_manifest(revdir) == (path, True, 2)
    assert directory.write_manifest(revdir) == (path, False, 2)
    assert manifest.stale_files(discover(revdir)) == []


def test_new_revision_scaffolds_and_updates_an_existing_manifest(revdir):
    created = directory.new_revision("add c", directory=revdir)
    assert created.up == revdir / "0003_add_c.up.sql" and created.down.exists() and created.manifest is None
    assert not (revdir / manifest.MANIFEST_FILE).exists()
    created.up.unlink()
    created.down.unlink()
    directory.write_manifest(revdir)
    created = directory.new_revision("add c", directory=revdir, transactional=False)
    assert created.manifest == revdir / manifest.MANIFEST_FILE
    assert "-- transactional: false" in created.up.read_text(encoding="utf-8")
    assert manifest.trusted(revdir) is not None


def test_new_revision_defaults_to_the_environment(revdir, monkeypatch):
    monkeypatch.setenv("Z4J_MIGRATIONS_DIR", str(revdir))
    assert directory.new_revision("x").up.parent == revdir
