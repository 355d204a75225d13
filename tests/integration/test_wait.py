"""The readiness gate (`z4j-migrate wait`, `z4j_migrate.wait_for_head`) on a real server.

An app pod with Z4J_AUTO_MIGRATE=false waits for the migrate Job: ready at once at head, ready
within a poll of the Job's commit, exit 13 naming what is pending and who holds the lock on
timeout, ready with a warning when the database is ahead of the code, and nothing but SELECTs
on the wire (the server's own statement log).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from helpers import REPO, query, run_cli, scalar, write_pair
from pgauth import login_role
from psycopg.conninfo import make_conninfo

import z4j_migrate
from z4j_migrate.lock import lock_key

GATE = 12345  # the advisory lock the slow revision waits for; the test holds it
INTERVAL_S = 0.1


def _env(url: str, folder: Path) -> dict[str, str]:
    return {"Z4J_DATABASE_URL": url, "Z4J_MIGRATIONS_DIR": str(folder)}


def _as(url: str, app: str) -> str:
    return make_conninfo(url, application_name=app)


def _popen(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")} | env
    return subprocess.Popen(
        [sys.executable, "-m", "z4j_migrate", *args],
        env=full_env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _until(check: Callable[[], bool], *procs: subprocess.Popen[str], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        for proc in procs:
            assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _applied(folder: Path, url: str, *ids: str) -> None:
    for rev_id in ids:
        n = rev_id.split("_", 1)[1]
        write_pair(folder, rev_id, f"CREATE TABLE {n} (id int);", f"DROP TABLE {n};")
    z4j_migrate.upgrade(database_url=url, migrations_dir=folder)


def test_at_head_it_returns_at_once(database_url, migrations):
    _applied(migrations, database_url, "0001_a", "0002_b")
    result = z4j_migrate.wait_for_head(database_url=database_url, migrations_dir=migrations, timeout_s=5)
    assert (result.polls, result.unknown, result.revisions) == (1, (), 2)
    assert result.waited_s < 0.5, result
    started = time.monotonic()
    r = run_cli("wait", "--timeout", "5", env=_env(database_url, migrations))
    took = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"ready: \S+ is at head \(2 revisions\)\n", r.stdout), r.stdout
    assert r.stderr == "" and took < 3, (took, r.stderr)
    quiet = run_cli("wait", "-q", env=_env(database_url, migrations))
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_it_waits_for_a_slow_revision_and_returns_within_a_poll_of_its_commit(database_url, migrations):
    _applied(migrations, database_url, "0001_a")
    write_pair(
        migrations, "0002_slow", f"SELECT pg_advisory_lock({GATE});\nCREATE TABLE slow (id int);", "DROP TABLE slow;"
    )
    upgrader = waiter = None
    with psycopg.connect(database_url, autocommit=True) as gate:
        gate.execute("SELECT pg_advisory_lock(%s)", (GATE,))
        try:
            upgrader = _popen(
                "--statement-lock-timeout", "60", "upgrade", env=_env(_as(database_url, "wait-upgrader"), migrations)
            )
            _until(
                lambda: (
                    scalar(
                        database_url,
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wait-upgrader' "
                        "AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                    )
                    == 1
                ),
                upgrader,
            )
            waiter = _popen(
                "wait",
                "--timeout",
                "60",
                "--interval",
                str(INTERVAL_S),
                env=_env(_as(database_url, "wait-waiter"), migrations),
            )
            # It is polling: its session has read the head digest (every poll does), and it is still there.
            _until(
                lambda: (
                    scalar(
                        database_url,
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wait-waiter' "
                        "AND query LIKE '%_z4j_migrate_head%'",
                    )
                    == 1
                ),
                waiter,
                upgrader,
            )
            time.sleep(3 * INTERVAL_S)
            assert waiter.poll() is None and upgrader.poll() is None
            gate.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
            released = time.monotonic()
            assert waiter.wait(timeout=30) == 0
            returned = time.monotonic()
            out, err = waiter.communicate()
            assert upgrader.wait(timeout=30) == 0, upgrader.communicate()
        finally:
            for proc in (upgrader, waiter):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                if proc is not None:
                    proc.communicate()
    assert returned - released < 1.0 + INTERVAL_S, returned - released
    assert "ready:" in out and "(2 revisions)" in out, out
    # What it said while it waited: the pending revision, and the upgrade holding the lock.
    assert "1 of 2 revision(s) pending: 0002_slow; the migration lock is held by pid" in err, err
    assert "application_name 'wait-upgrader'" in err, err
    assert scalar(database_url, "SELECT to_regclass('public.slow') IS NOT NULL") is True


def test_a_timeout_exits_13_naming_the_pending_revisions_and_that_no_one_holds_the_lock(database_url, migrations):
    _applied(migrations, database_url, "0001_a")
    write_pair(migrations, "0002_b", "CREATE TABLE b (id int);", "DROP TABLE b;")
    write_pair(migrations, "0003_c", "CREATE TABLE c (id int);", "DROP TABLE c;")
    started = time.monotonic()
    with pytest.raises(z4j_migrate.WaitTimeout) as info:
        z4j_migrate.wait_for_head(database_url=database_url, migrations_dir=migrations, timeout_s=0.5, poll_s=0.1)
    took = time.monotonic() - started
    assert 0.5 <= took < 0.5 + 2, took  # the deadline is kept; the slack is for a busy machine
    assert (info.value.pending, info.value.holder, info.value.exit_code) == (("0002_b", "0003_c"), None, 13)
    started = time.monotonic()
    r = run_cli("wait", "--timeout", "1", "--interval", "0.1", env=_env(database_url, migrations))
    took = time.monotonic() - started
    assert r.returncode == 13, r.stderr
    assert took < 1 + 3, took  # the process's own start included
    assert "still pending after 1s: 0002_b, 0003_c (2 of 3)" in r.stderr, r.stderr
    assert "no one holds the migration lock (is the migrate Job running?)" in r.stderr, r.stderr
    assert r.stderr.count("\nerror: ") + r.stderr.startswith("error: ") == 1 and "Traceback" not in r.stderr
    assert r.stdout == ""
    assert scalar(database_url, "SELECT to_regclass('public.b')") is None


def test_a_timeout_names_the_session_holding_the_migration_lock(database_url, migrations):
    _applied(migrations, database_url, "0001_a")
    write_pair(migrations, "0002_b", "CREATE TABLE b (id int);", "DROP TABLE b;")
    with psycopg.connect(_as(database_url, "the-migrate-job"), autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("public"),))
        pid = holder.info.backend_pid
        r = run_cli("wait", "--timeout", "0.3", "--interval", "0.1", env=_env(database_url, migrations))
        with pytest.raises(z4j_migrate.WaitTimeout) as info:
            z4j_migrate.wait_for_head(database_url=database_url, migrations_dir=migrations, timeout_s=0)
    assert r.returncode == 13, r.stderr
    assert "still pending after 0.3s: 0002_b (1 of 2)" in r.stderr, r.stderr
    assert f"the migration lock is held by pid {pid}, " in r.stderr and "'the-migrate-job'" in r.stderr, r.stderr
    assert info.value.holder is not None and info.value.holder.pid == pid
    assert info.value.pending == ("0002_b",)


def test_a_database_ahead_of_the_code_is_ready_with_the_start_up_warning(database_url, migrations):
    _applied(migrations, database_url, "0001_a", "0002_b")
    for side in ("up", "down"):
        (migrations / f"0002_b.{side}.sql").unlink()
    r = run_cli("wait", "--timeout", "5", env=_env(database_url, migrations))
    assert r.returncode == 0, r.stderr
    assert "ready:" in r.stdout and "(1 revision)" in r.stdout, r.stdout
    assert "the database has revision(s) this code does not know: 0002_b (database ahead of code" in r.stderr
    result = z4j_migrate.wait_for_head(database_url=database_url, migrations_dir=migrations, timeout_s=0)
    assert (result.polls, result.unknown, result.revisions) == (1, ("0002_b",), 1)


def test_an_edited_applied_revision_is_an_error_at_once_not_a_wait(database_url, migrations):
    _applied(migrations, database_url, "0001_a")
    write_pair(migrations, "0001_a", "CREATE TABLE a (id bigint);", "DROP TABLE a;")
    started = time.monotonic()
    r = run_cli("wait", "--timeout", "30", env=_env(database_url, migrations))
    assert r.returncode == 5, r.stderr
    assert time.monotonic() - started < 5
    assert "0001_a.up.sql" in r.stderr


def _polling(url: str, app: str, *procs: subprocess.Popen[str]) -> int:
    """Wait until the session of `app` has read the head digest (every poll does); its pid."""
    sql = (
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND query LIKE '%%_z4j_migrate_head%%' "
        "AND datname = current_database()"
    )
    seen: list[int] = []

    def found() -> bool:
        pid = scalar(url, sql, (app,))
        if pid is not None:
            seen.append(int(pid))  # type: ignore[arg-type]
        return bool(seen)

    _until(found, *procs)
    return seen[0]


def test_sigterm_stops_a_waiting_run_at_once_with_exit_12(database_url, migrations):
    _applied(migrations, database_url, "0001_a")
    write_pair(migrations, "0002_b", "CREATE TABLE b (id int);", "DROP TABLE b;")
    waiter = _popen(
        "wait", "--timeout", "60", "--interval", "0.1", env=_env(_as(database_url, "wait-term"), migrations)
    )
    try:
        _polling(database_url, "wait-term", waiter)
        waiter.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = waiter.wait(timeout=10)
        took = time.monotonic() - sent
    finally:
        if waiter.poll() is None:
            waiter.kill()
        _out, err = waiter.communicate()
    assert code == 12, err
    assert took < 3, took  # promptly, not after the 60 s timeout
    assert "interrupted by SIGTERM" in err and "Traceback" not in err


def test_a_lost_session_is_reconnected_and_the_wait_goes_on(database_url, migrations):
    _applied(migrations, database_url, "0001_a")
    write_pair(migrations, "0002_b", "CREATE TABLE b (id int);", "DROP TABLE b;")
    waiter = _popen(
        "wait", "--timeout", "60", "--interval", "0.1", env=_env(_as(database_url, "wait-lost"), migrations)
    )
    try:
        first = _polling(database_url, "wait-lost", waiter)
        assert scalar(database_url, "SELECT pg_terminate_backend(%s)", (first,)) is True
        _until(lambda: _polling(database_url, "wait-lost", waiter) != first, waiter)  # a new session, polling
        z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
        code = waiter.wait(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
        out, err = waiter.communicate()
    assert code == 0, err
    assert "lost the database connection" in err and "reconnecting" in err, err
    assert "ready:" in out


def test_a_role_that_may_only_select_can_wait(pg_server, database_url, migrations):
    _applied(migrations, database_url, "0001_a")
    with login_role(pg_server, prefix="reader") as role:
        query(database_url, f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
        url = make_conninfo(database_url, user=role)
        ready = run_cli("wait", "--timeout", "2", env=_env(url, migrations))
        assert ready.returncode == 0, ready.stderr
        query(database_url, "TRUNCATE public._z4j_migrate_progress")  # a stale digest: the full read, still fine
        assert run_cli("wait", "--timeout", "2", env=_env(url, migrations)).returncode == 0
        write_pair(migrations, "0002_b", "CREATE TABLE b (id int);", "DROP TABLE b;")
        pending = run_cli("wait", "--timeout", "0.3", "--interval", "0.1", env=_env(url, migrations))
    assert pending.returncode == 13, pending.stderr
    assert "0002_b (1 of 2)" in pending.stderr


def test_on_a_hot_standby_it_waits_too_and_says_the_lock_is_not_visible_there(standby, pg_server, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    db = pg_server.create_database()
    try:
        _applied(folder, pg_server.url_for(db), "0001_a")
        query(pg_server.url_for(db), "TRUNCATE public._z4j_migrate_progress")  # stale digest: a standby cannot repair
        standby.wait_for_replay()
        env = _env(standby.url_for(db), folder)
        ready = run_cli("wait", "--timeout", "5", env=env)
        assert ready.returncode == 0, ready.stderr
        write_pair(folder, "0002_b", "CREATE TABLE b (id int);", "DROP TABLE b;")
        pending = run_cli("wait", "--timeout", "0.3", "--interval", "0.1", env=env)
    finally:
        pg_server.drop_database(db)
    assert pending.returncode == 13, pending.stderr
    assert "0002_b (1 of 2); this is a hot standby, where the primary's migration lock cannot be seen" in pending.stderr


# ------------------------------------------------------------------------------- read-only

_ENTRY = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[(?P<pid>\d+)\] app=(?P<app>.*?) "
    r"(?P<level>LOG|ERROR|FATAL|WARNING|NOTICE|STATEMENT|DETAIL|HINT|CONTEXT):  (?P<msg>.*)$"
)
_STATEMENT = re.compile(r"^(?:statement: |execute [^:]*: )(?P<sql>.*)$")
_WRITES = re.compile(
    r"\b(INSERT|UPDATE|DELETE|LOCK|CREATE|DROP|ALTER|TRUNCATE|BEGIN|COMMIT|SET|pg_try_advisory\w*|pg_advisory\w*)\b",
    re.I,
)


def _sent(log: Path, offset: int, app: str) -> tuple[list[str], list[str]]:
    """The statements and errors the server logged for `app` since `offset`."""
    time.sleep(0.05)  # the server's log writes are not ordered with the client's return
    with log.open("rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", "replace")
    statements, errors = [], []
    for line in text.splitlines():
        m = _ENTRY.match(line)
        if m is None or m["app"] != app:
            continue
        statement = _STATEMENT.match(m["msg"]) if m["level"] == "LOG" else None
        if statement:
            statements.append(statement["sql"])
        elif m["level"] in ("ERROR", "FATAL"):
            errors.append(m["msg"])
    return statements, errors


def _digest_row(url: str) -> tuple:
    return tuple(query(url, "SELECT xmin::text, digest::text FROM public._z4j_migrate_head"))


def test_it_sends_only_selects_and_never_touches_the_digest(pg_server, database_url, migrations):
    if pg_server.local is None:
        pytest.skip("the statement log is the suite's own cluster's; this server is external")
    log = Path(pg_server.local.log_path)
    app = f"wait-{uuid.uuid4().hex[:10]}"
    url = _as(database_url, app)
    _applied(migrations, database_url, "0001_a", "0002_b")
    offset = log.stat().st_size
    log_rows = scalar(database_url, "SELECT count(*) FROM public._yoyo_log")

    at_head = _digest_row(database_url)
    assert run_cli("wait", "--timeout", "2", env=_env(url, migrations)).returncode == 0
    assert _digest_row(database_url) == at_head

    query(database_url, "TRUNCATE public._z4j_migrate_progress")  # invalidates the digest: upgrade would repair it
    invalidated = _digest_row(database_url)
    assert invalidated[0][1] is None
    assert run_cli("wait", "--timeout", "2", env=_env(url, migrations)).returncode == 0  # the full read, each poll
    assert _digest_row(database_url) == invalidated  # not repaired: not even rewritten

    write_pair(migrations, "0003_c", "CREATE TABLE c (id int);", "DROP TABLE c;")
    assert run_cli("wait", "--timeout", "0.5", "--interval", "0.1", env=_env(url, migrations)).returncode == 13
    assert _digest_row(database_url) == invalidated

    statements, errors = _sent(log, offset, app)
    assert errors == [], errors
    assert len(statements) >= 3 + 3 + 6, statements  # probe and digest, then the history, polled
    for sql in statements:
        assert sql.lstrip().upper().startswith("SELECT "), sql
        assert not _WRITES.search(sql), sql
    assert any("pg_locks" in sql for sql in statements)  # the lock holder is read, never tried
    assert scalar(database_url, "SELECT count(*) FROM public._yoyo_log") == log_rows
