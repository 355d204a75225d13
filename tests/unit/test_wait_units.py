"""The readiness gate without a server: the timeout message, the arguments it refuses, the exit code."""

from __future__ import annotations

import pytest
from helpers import run_cli, write_pair

import z4j_migrate
from z4j_migrate.errors import EXIT_CODES, ConfigError, WaitTimeout
from z4j_migrate.lock import LockHolder
from z4j_migrate.state import ProgressRow
from z4j_migrate.wait import _count, timeout_error

DISPLAY = "postgresql://app:***@db:5432/z4j"


def test_the_timeout_names_the_pending_revisions_and_that_no_one_holds_the_lock():
    error = timeout_error(DISPLAY, ("0003_x", "0004_y"), 4, 300, None)
    assert error.message == (
        f"{DISPLAY} did not reach this code's head: still pending after 300s: 0003_x, 0004_y (2 of 4); "
        "no one holds the migration lock (is the migrate Job running?)."
    )
    assert isinstance(error, z4j_migrate.Z4jMigrateError) and error.exit_code == 13
    assert (error.pending, error.holder) == (("0003_x", "0004_y"), None)


def test_the_timeout_names_the_lock_holder_as_the_server_shows_it():
    holder = LockHolder(4242, "migrator", "z4j-migrate", "10.0.0.7/32", 12.5, "active")
    error = timeout_error(DISPLAY, ("0003_x",), 3, 0.5, holder)
    assert "still pending after 0.5s: 0003_x (1 of 3); the migration lock is held by pid 4242, role migrator, " in (
        error.message
    )
    assert "application_name 'z4j-migrate', client 10.0.0.7/32, connected 12.5s ago, state active." in error.message
    assert error.holder is holder
    hidden = timeout_error(DISPLAY, ("0003_x",), 3, 1, LockHolder(99, "other"))
    assert "held by pid 99 of role other (the server hides the rest" in hidden.message


def test_on_a_standby_no_holder_does_not_mean_no_one_is_migrating():
    message = timeout_error(DISPLAY, ("0003_x",), 3, 5, None, standby=True).message
    assert "hot standby, where the primary's migration lock cannot be seen" in message
    assert "no one holds" not in message


def test_a_long_list_is_cut_and_a_journaled_revision_says_how_far_it_got():
    pending = tuple(f"{i:04d}_r{i}" for i in range(1, 15))
    journal = ProgressRow("0001_r1", "apply", 2, 5, 9, None, None)
    message = timeout_error(DISPLAY, pending, 14, 60, None, (journal,)).message
    assert "0001_r1 (journaled: 2 of 5 done), 0002_r2," in message
    assert "0010_r10, and 4 more (14 of 14);" in message and "0011_r11" not in message
    assert "\n" not in message


def test_the_message_masks_passwords():
    assert "s3cret" not in timeout_error("postgresql://app:s3cret@db/z4j", ("0001_a",), 1, 1, None).message


def test_wait_timeout_is_exported_and_documented():
    assert z4j_migrate.WaitTimeout is WaitTimeout and WaitTimeout.exit_code in EXIT_CODES
    assert WaitTimeout("m").pending == () and WaitTimeout("m").holder is None


@pytest.mark.parametrize(("timeout_s", "poll_s"), [(-1, 0.25), (float("inf"), 0.25), (5, 0), (5, float("nan"))])
def test_bad_durations_are_refused_before_connecting(tmp_path, timeout_s, poll_s):
    with pytest.raises(ConfigError):
        z4j_migrate.wait_for_head(
            database_url="postgresql://u@127.0.0.1:1/d", migrations_dir=tmp_path, timeout_s=timeout_s, poll_s=poll_s
        )


def test_the_cli_refuses_a_negative_timeout_with_exit_2(tmp_path):
    r = run_cli("wait", "--timeout", "-1", env={"Z4J_DATABASE_URL": "postgresql://u@127.0.0.1:1/d"})
    assert r.returncode == 2, r.stderr
    assert "wait timeout -1" in r.stderr


def test_the_revision_count_comes_from_the_listing(tmp_path):
    write_pair(tmp_path, "0001_a", "SELECT 1;", "SELECT 1;")
    write_pair(tmp_path, "0002_b", "SELECT 1;", "SELECT 1;")
    (tmp_path / "notes.txt").write_text("x")
    assert _count(tmp_path) == 2
    assert _count(tmp_path / "missing") == 0


def test_an_unreachable_server_is_retried_until_the_deadline_then_exit_7(tmp_path):
    env = {"Z4J_DATABASE_URL": "postgresql://u@127.0.0.1:1/d", "Z4J_MIGRATIONS_DIR": str(tmp_path)}
    r = run_cli("wait", "--timeout", "0.5", env=env)
    assert r.returncode == 7, r.stderr
    assert "after retrying for 0.5s" in r.stderr and "retrying in" in r.stderr, r.stderr
