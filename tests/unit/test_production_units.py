"""Pure pieces of the production work: the statement-timeout directive, the session settings
statement, the interrupt summary line, and the README's exit-code table against the code."""

from __future__ import annotations

import re
import signal

import pytest
from helpers import REPO

from z4j_migrate.config import Settings, parse_database_url
from z4j_migrate.db import migration_settings
from z4j_migrate.errors import EXIT_CODES, RevisionFileError
from z4j_migrate.interrupt import Interrupted
from z4j_migrate.revisions import parse_pair


def _pair(up_header: str = "", down_header: str = ""):
    up = f"-- message: m\n{up_header}SELECT 1;\n".encode()
    down = f"{down_header}SELECT 2;\n".encode()
    return parse_pair(1, "0001_x", "0001_x.up.sql", up, "0001_x.down.sql", down)


@pytest.mark.parametrize(
    ("value", "expected_ms"),
    [
        ("30s", 30_000),
        ("500ms", 500),
        ("10min", 600_000),
        ("1h", 3_600_000),
        ("2", 2000),
        ("1.5s", 1500),
        ("0", 0),
        ("none", 0),
        ("OFF", 0),
    ],
)
def test_statement_timeout_directive_parses_durations(value, expected_ms):
    revision = _pair(f"-- statement-timeout: {value}\n", f"-- statement-timeout: {value}\n")
    assert revision.up.statement_timeout_ms == expected_ms
    assert revision.down.statement_timeout_ms == expected_ms


def test_no_directive_means_the_run_setting():
    assert _pair().up.statement_timeout_ms is None


@pytest.mark.parametrize("value", ["soon", "-1s", "5 weeks", ""])
def test_a_bad_statement_timeout_names_the_file_and_line(value):
    with pytest.raises(RevisionFileError) as info:
        _pair(f"-- statement-timeout: {value}\n")
    assert "0001_x.up.sql:2" in str(info.value) and "statement-timeout" in str(info.value)


def test_migration_settings_override_every_timeout_a_role_may_set():
    settings = Settings(parse_database_url("postgresql://u@h/d"), statement_lock_timeout_s=2.5, statement_timeout_s=4)
    local = migration_settings(settings)
    assert "set_config('lock_timeout', '2500', true)" in local
    assert "set_config('statement_timeout', '4000', true)" in local
    assert "set_config('idle_in_transaction_session_timeout', '0', true)" in local
    assert "set_config('client_connection_check_interval', '1000', true)" in local
    assert "set_config('statement_timeout', '250', false)" in migration_settings(settings, 250, local=False)


def test_interrupt_summary_says_what_was_applied_and_what_was_rolled_back():
    stop = Interrupted(signal.SIGTERM)
    stop.applied, stop.undone = ("0001_a", "0002_b"), "0003_c"
    line = stop.summary()
    assert line.startswith("interrupted by SIGTERM: applied 0001_a, 0002_b; cancelled 0003_c")
    assert "\n" not in line and stop.exit_code == 12
    stop = Interrupted(signal.SIGINT)
    stop.journaled, stop.direction = "0004_ix", "rollback"
    assert stop.summary().startswith(
        "interrupted by SIGINT: rolled back nothing; stopped the non-transactional 0004_ix"
    )


def test_readme_exit_code_table_is_the_codes_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", readme, flags=re.M)}
    assert documented == set(EXIT_CODES) | {0}
