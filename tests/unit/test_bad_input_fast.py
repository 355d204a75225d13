"""The bad inputs that fail before any database is touched (tests/bad_inputs.py), in-process.

Each case runs what the CLI runs before it connects, as library calls: the settings from
the arguments and the environment (config.settings_from_env, which parses the URLs and
the numbers), then discovery (revisions.discover: names, pairing, directives, encoding,
z4j-migrate.toml) and the SQL checks (sqlcheck.check_revision). Each must raise the
documented error type with its exit code, in one paragraph that names the file and line.
No subprocess, no database; tests/integration/test_bad_input.py runs one case per exit
code end to end through the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bad_inputs import BASE, PURE, Bad, Scene, Where
from helpers import write_pair

from z4j_migrate.config import settings_from_env
from z4j_migrate.errors import ConfigError, RevisionFileError, Z4jMigrateError
from z4j_migrate.revisions import discover
from z4j_migrate.sqlcheck import check_revision

ERROR_OF_CODE = {2: ConfigError, 3: RevisionFileError}
NOWHERE = "postgresql://nobody@127.0.0.1:1/never_connected"


def _option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def offline_run(scene: Scene) -> int:
    """What `z4j-migrate upgrade` does with its inputs before connecting; the number of revisions."""
    settings = settings_from_env(_option(scene.args, "--database-url"), _option(scene.args, "--migrations-dir"))
    revset = discover(settings.migrations_dir)
    for revision in revset.revisions:
        check_revision(revision)
    return len(revset.revisions)


@pytest.fixture
def scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scene:
    """BASE in a fresh directory, and an environment that names it and a database never reached."""
    for name in [k for k in os.environ if k.startswith("Z4J_")]:
        monkeypatch.delenv(name)
    folder = tmp_path / "migrations"
    folder.mkdir()
    for rev_id, up, down in BASE:
        write_pair(folder, rev_id, up, down)
    monkeypatch.setenv("Z4J_DATABASE_URL", NOWHERE)
    monkeypatch.setenv("Z4J_MIGRATIONS_DIR", str(folder))
    return Scene(folder)


def test_the_unbroken_directory_passes(scene: Scene):
    """The harness itself refuses nothing: BASE and its settings are valid."""
    assert offline_run(scene) == len(BASE)


def test_every_case_has_a_known_code_and_something_to_look_for():
    assert len(PURE) >= 60 and len({c.id for c in PURE}) == len(PURE)
    assert all(c.code in ERROR_OF_CODE for c in PURE)


@pytest.mark.parametrize("bad", PURE, ids=[c.id for c in PURE])
def test_bad_input_offline(scene: Scene, bad: Bad, monkeypatch: pytest.MonkeyPatch):
    bad.setup(scene)
    for name, value in scene.env.items():
        monkeypatch.setenv(name, value)
    needles = bad.needles(scene)
    assert needles
    with pytest.raises(Z4jMigrateError) as raised:
        offline_run(scene)
    exc = raised.value
    message = str(exc)
    assert type(exc) is ERROR_OF_CODE[bad.code] and exc.exit_code == bad.code, (type(exc), message)
    assert message.strip() and "\n" not in message, message  # one paragraph
    for needle in needles:
        assert needle in message, (needle, message)
        if isinstance(needle, Where):  # the file and line are the error's own, not just words in it
            assert (exc.path, exc.line) == (needle.path, needle.line), (exc.path, exc.line, message)
            assert message.startswith(needle), message
