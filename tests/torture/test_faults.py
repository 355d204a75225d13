"""Faults: kill -9, pg_terminate_backend and server crashes at random moments, then the operator's view.

Every trial starts the same revision set (transactional and non-transactional
revisions, with a CREATE INDEX CONCURRENTLY) against an empty database, hits
it with a fault at a seeded random moment, and then checks what an operator
would rely on:

1. the catalog and the bookkeeping agree: the applied revisions are a prefix,
   and with no journal row the schema is *exactly* the reference schema of that
   prefix (transactional revisions are all-or-nothing);
2. a half-done non-transactional revision is journaled, `status` reports it as
   `partial` with the statement where it stopped, and the schema lies between
   the references before and after it;
3. `upgrade` resumes; or, when an interrupted CREATE INDEX CONCURRENTLY left an
   INVALID index, stops with exit 8 naming it and the DROP to run: the test
   runs that DROP, as the operator would, and upgrades again;
4. the end state is exactly the reference schema with each revision applied
   (and logged) once.
"""

from __future__ import annotations

import os
import random
import re
import signal
import statistics
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from helpers import applied_ids, query, run_cli, scalar, write_pair
from machinery import Replica, clean_env, trials, wait_for_backends_to_go

import z4j_migrate
from z4j_migrate.catalog import snapshot
from z4j_migrate.revisions import discover
from z4j_migrate.sqlcheck import split_statements

pytestmark = pytest.mark.torture

KILL_TRIALS = trials(30, deep=50)
TERMINATE_TRIALS = trials(20, deep=30)
RESTART_TRIALS = 8
IDS = ["0001_accounts", "0002_ledger", "0003_balance", "0004_balance_ix"]
NON_TRANSACTIONAL = {"0002_ledger", "0004_balance_ix"}


def fault_set(folder: Path) -> Path:
    write_pair(
        folder,
        "0001_accounts",
        "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);\n"
        "INSERT INTO accounts SELECT g, 'acct ' || g FROM generate_series(1, 5000) g;\n"
        "SELECT pg_sleep(0.04);\n"
        "CREATE INDEX ix_accounts_name ON accounts (name);\n",
        "DROP TABLE accounts;",
    )
    write_pair(
        folder,
        "0002_ledger",
        "-- message: ledger, built without blocking writers\n-- transactional: false\n"
        "CREATE TABLE IF NOT EXISTS ledger (id bigint, account bigint, amount numeric);\n"
        "SELECT pg_sleep(0.06);\n"
        "INSERT INTO ledger SELECT g, g % 5000 + 1, g FROM generate_series(1, 30000) g "
        "WHERE NOT EXISTS (SELECT 1 FROM ledger);\n"
        "SELECT pg_sleep(0.06);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_ledger_account ON ledger (account);\n"
        "SELECT pg_sleep(0.04);\n"
        "ALTER TABLE ledger ADD COLUMN IF NOT EXISTS note text;\n",
        "DROP TABLE IF EXISTS ledger;",
    )
    write_pair(
        folder,
        "0003_balance",
        "ALTER TABLE accounts ADD COLUMN balance numeric NOT NULL DEFAULT 0;\n"
        "SELECT pg_sleep(0.04);\n"
        "UPDATE accounts a SET balance = s.total FROM "
        "(SELECT account, sum(amount) AS total FROM ledger GROUP BY account) s WHERE s.account = a.id;\n",
        "ALTER TABLE accounts DROP COLUMN balance;",
    )
    write_pair(
        folder,
        "0004_balance_ix",
        "-- message: balance index\n-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_accounts_balance ON accounts (balance);\n"
        "SELECT pg_sleep(0.04);\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ux_ledger_id ON ledger (id);\n",
        "DROP INDEX CONCURRENTLY IF EXISTS ux_ledger_id;\nDROP INDEX CONCURRENTLY IF EXISTS ix_accounts_balance;",
    )
    return folder


def reset(url: str) -> None:
    """An empty database again, in milliseconds (CREATE DATABASE costs a checkpoint)."""
    query(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def take(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        return snapshot(conn)


def names(snap: dict) -> set[tuple[str, str]]:
    return {(kind, key) for kind, objs in snap.items() for key in objs}


class Lab:
    """One database, the reference schema after each prefix of the revisions, and the checks."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url, self.folder = url, folder
        self.revs = discover(folder).by_id()
        reset(url)
        self.refs = [take(url)]
        self.timings: dict[str, float] = {}
        for i in range(1, len(IDS) + 1):
            result = z4j_migrate.upgrade(database_url=url, migrations_dir=folder, to=str(i))
            self.timings.update({r.id: round(r.duration_ms / 1000, 3) for r in result.applied})
            self.refs.append(take(url))
        reset(url)
        started = time.monotonic()  # one uninterrupted run: the window faults are drawn from
        z4j_migrate.upgrade(database_url=url, migrations_dir=folder)
        self.duration = time.monotonic() - started
        reset(url)

    def inspect(self) -> tuple[str, list[str]]:
        """Checks 1 and 2 right after a fault; returns the kind of state found and any INVALID indexes."""
        url = self.url
        applied = applied_ids(url)
        k = len(applied)
        assert applied == IDS[:k], applied
        if scalar(url, "SELECT to_regclass('public._z4j_migrate_revision')"):
            ours = [r[0] for r in query(url, "SELECT migration_id FROM _z4j_migrate_revision ORDER BY 1")]
            assert ours == applied
            log = dict(query(url, "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' GROUP BY 1"))
            assert log == dict.fromkeys(applied, 1)
            journal = query(
                url, "SELECT migration_id, direction, statements_done, statements_total FROM _z4j_migrate_progress"
            )
        else:
            journal = []
        invalid = [r[0] for r in query(url, "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid")]
        snap = take(url)
        if not journal:
            assert not invalid, invalid
            assert snap == self.refs[k], f"schema differs from the reference after {IDS[:k]}"
            return f"boundary after {k}", invalid
        assert len(journal) == 1, journal
        rev_id, direction, done, total = journal[0]
        assert rev_id == IDS[k] and rev_id in NON_TRANSACTIONAL and direction == "apply", journal
        assert names(self.refs[k]) <= names(snap) <= names(self.refs[k + 1]), "partial state outside its revision"
        report = z4j_migrate.status(database_url=url, migrations_dir=self.folder)
        row = {r.id: r for r in report.revisions}[rev_id]
        assert row.state == "partial" and not report.clean
        assert f"stopped after statement {done} of {total}" in row.detail, row.detail
        if done < total:  # where to resume, as file:line
            line = split_statements(self.revs[rev_id].up)[done].line
            assert f"next is statement {done + 1} ({self.revs[rev_id].up.path}:{line})" in row.detail, row.detail
        else:
            assert "every statement ran, only recording it was interrupted" in row.detail, row.detail
        assert sorted(report.invalid_indexes) == sorted(f"public.{i}" for i in invalid)
        where = f"at statement {done + 1}/{total}" if done < total else "with every statement run, unrecorded"
        return f"partial {rev_id} {where}", invalid

    def resume(self, *, via_cli: bool, wait: str | None = None) -> list[str]:
        """Check 3 and 4: one upgrade finishes, with no operator step; returns the INVALID indexes it
        found (left by the interrupted CREATE INDEX CONCURRENTLY), dropped and built again."""
        invalid = [
            r[0]
            for r in query(
                self.url,
                "SELECT n.nspname || '.' || c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT i.indisvalid ORDER BY 1",
            )
        ]
        if via_cli:
            args = ["upgrade", *(["--wait", wait] if wait else [])]
            r = run_cli(*args, env={"Z4J_DATABASE_URL": self.url, "Z4J_MIGRATIONS_DIR": str(self.folder)})
            assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        else:
            z4j_migrate.upgrade(database_url=self.url, migrations_dir=self.folder)
        assert scalar(self.url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
        assert take(self.url) == self.refs[-1]
        log = dict(query(self.url, "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' GROUP BY 1"))
        assert log == dict.fromkeys(IDS, 1)
        assert scalar(self.url, "SELECT count(*) FROM _z4j_migrate_progress") == 0
        return invalid


@pytest.fixture
def lab(pg_server, migrations):
    with pg_server.database("fault_") as url:
        yield Lab(url, fault_set(migrations))


def _summary(lab: Lab, outcomes: Counter, dropped: list[str], extra: dict) -> dict:
    return {
        **extra,
        "run_length_s": round(lab.duration, 3),
        "revision_durations_s": lab.timings,
        "states_found": dict(sorted(outcomes.items())),
        "partial_states": sum(n for k, n in outcomes.items() if k.startswith("partial")),
        "invalid_indexes_named_and_dropped": len(dropped),
        "end_state_equal_to_reference": True,
    }


def test_kill_9_at_random_moments(lab, figures):
    rng = random.Random(4_050)
    outcomes: Counter = Counter()
    dropped: list[str] = []
    codes: Counter = Counter()
    orphan_waits = []
    via_cli = 5  # the first few partial states are resumed with the CLI, the rest in-process (faster)
    nxt = Replica("startup", clean_env(lab.url, lab.folder))
    for _trial in range(KILL_TRIALS):
        replica = nxt.ready()
        delay = rng.uniform(0.0, lab.duration * 1.1)
        replica.go()
        time.sleep(delay)
        replica.proc.send_signal(signal.SIGKILL)
        code, _out, err = replica.wait()
        codes[code] += 1
        nxt = Replica("startup", clean_env(lab.url, lab.folder))  # warms up during the checks
        orphan_waits.append(wait_for_backends_to_go(lab.url))  # the killed client's backend finishes first
        state, _invalid = lab.inspect()
        outcomes[state] += 1
        cli = state.startswith("partial") and via_cli > 0
        via_cli -= cli
        dropped += lab.resume(via_cli=cli)
        reset(lab.url)
    nxt.kill()
    assert sum(n for k, n in outcomes.items() if k.startswith("partial")) >= 8, outcomes  # faults inside
    figures["kill_9"] = _summary(
        lab,
        outcomes,
        dropped,
        {
            "trials": KILL_TRIALS,
            "seed": 4_050,
            "exit_codes": {str(k): v for k, v in codes.items()},
            "orphan_backend_wait_max_s": round(max(orphan_waits), 3),
        },
    )


def test_pg_terminate_backend_at_random_moments(lab, pg_server, figures):
    rng = random.Random(3_030)
    outcomes: Counter = Counter()
    dropped: list[str] = []
    errors: Counter = Counter()
    admin = psycopg.connect(lab.url, autocommit=True)
    try:
        for _trial in range(TERMINATE_TRIALS):
            box: dict[str, BaseException | None] = {}

            def run(box: dict = box) -> None:
                try:
                    z4j_migrate.upgrade(database_url=lab.url, migrations_dir=lab.folder)
                    box["error"] = None
                except BaseException as exc:  # noqa: BLE001 - classified below
                    box["error"] = exc

            thread = threading.Thread(target=run)
            thread.start()
            time.sleep(rng.uniform(0.0, lab.duration * 1.1))
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'z4j-migrate'"
            ).fetchone()[0]
            thread.join(60)
            error = box["error"]
            if error is None:
                errors["completed" if not killed else "completed (terminated after its last statement)"] += 1
            else:
                assert isinstance(error, z4j_migrate.ConnectionFailed), repr(error)
                message = str(error)
                assert "lost the database connection" in message and "run z4j-migrate again" in message.lower(), message
                assert "\n" not in message
                errors[error.__class__.__name__] += 1
            wait_for_backends_to_go(lab.url)
            state, _invalid = lab.inspect()
            outcomes[state] += 1
            dropped += lab.resume(via_cli=False)
            reset(lab.url)
    finally:
        admin.close()
    assert sum(n for k, n in outcomes.items() if k.startswith("partial")) >= 5, outcomes
    figures["pg_terminate_backend"] = _summary(
        lab, outcomes, dropped, {"trials": TERMINATE_TRIALS, "seed": 3_030, "outcomes": dict(errors)}
    )


def test_cli_reports_a_terminated_session_clearly(lab):
    """The same fault through the CLI: exit 7, one line, no traceback, then status and resume."""
    env = clean_env(lab.url, lab.folder)
    replica = Replica("cli", env, "upgrade").ready()
    replica.go()
    with psycopg.connect(lab.url, autocommit=True) as admin:  # catch CREATE INDEX CONCURRENTLY mid-build
        deadline = time.monotonic() + 10
        while not admin.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0]:
            assert time.monotonic() < deadline, "never saw the index build in progress"
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'z4j-migrate'")
    code, _out, err = replica.wait()
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 7 and len(lines) == 1 and "Traceback" not in err, err
    assert "lost the database connection while applying 0002_ledger at statement 5 of 7" in lines[0], lines[0]
    assert "0002_ledger.up.sql:7" in lines[0]  # the CREATE INDEX CONCURRENTLY line
    r = run_cli("status", env={"Z4J_DATABASE_URL": lab.url, "Z4J_MIGRATIONS_DIR": str(lab.folder)})
    assert r.returncode == 0 and "partial" in r.stdout and "INVALID indexes" in r.stdout, r.stdout
    lab.inspect()
    assert lab.resume(via_cli=True) == ["public.ix_ledger_account"]  # found INVALID, dropped, rebuilt


# --------------------------------------------------------------------------- server restarts


def wait_for_session(url: str, timeout: float = 10) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        deadline = time.monotonic() + timeout
        while not admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'z4j-migrate'"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the run never connected"
            time.sleep(0.002)


@pytest.fixture
def crash_lab(own_pg, tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    with own_pg.database("crash_") as url:
        try:
            yield Lab(url, fault_set(folder)), own_pg.local
        finally:
            if not own_pg.local.is_running():
                own_pg.local.start()  # before the database is dropped


def test_server_restarted_immediately_during_a_run(crash_lab, figures):
    lab, server = crash_lab
    rng = random.Random(6_060)
    outcomes: Counter = Counter()
    dropped: list[str] = []
    codes: Counter = Counter()
    for _trial in range(RESTART_TRIALS):
        replica = Replica("cli", clean_env(lab.url, lab.folder), "upgrade", "--wait", "30").ready()
        replica.go()
        wait_for_session(lab.url)  # then a random moment of the run
        time.sleep(rng.uniform(0.0, lab.duration))
        server.restart(mode="immediate")  # pg_ctl stop -m immediate, then start: crash recovery
        code, _out, err = replica.wait()
        codes[code] += 1
        assert code in (0, 7), err
        if code == 7:
            assert "lost the database connection" in err or "cannot connect" in err, err
            assert "Traceback" not in err
        wait_for_backends_to_go(lab.url)
        state, _invalid = lab.inspect()
        outcomes[state] += 1
        dropped += lab.resume(via_cli=True, wait="30")
        reset(lab.url)

    # One more, aimed: the crash lands while CREATE INDEX CONCURRENTLY is building (INVALID index left).
    replica = Replica("cli", clean_env(lab.url, lab.folder), "upgrade").ready()
    replica.go()
    with psycopg.connect(lab.url, autocommit=True) as admin:
        deadline = time.monotonic() + 10
        while not admin.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone()[0]:
            assert time.monotonic() < deadline, "never saw the index build in progress"
        os.kill(server.pid, signal.SIGQUIT)  # what pg_ctl stop -m immediate sends, without its start-up delay
    while server.is_running():
        time.sleep(0.01)
    server.start()
    code, _out, err = replica.wait()
    assert code == 7 and "lost the database connection while applying 0002_ledger at statement 5 of 7" in err, err
    state, invalid = lab.inspect()
    assert state.startswith("partial 0002_ledger") and invalid == ["ix_ledger_account"], (state, invalid)
    outcomes[state + " (aimed at the index build)"] += 1
    dropped += lab.resume(via_cli=True)
    assert dropped[-1:] == ["public.ix_ledger_account"]
    reset(lab.url)

    # With --wait, a run started while the server is down waits for it and completes.
    server.stop(mode="immediate")
    env = clean_env(lab.url, lab.folder)
    waiting = Replica("cli", env, "upgrade", "--wait", "30").ready()
    waiting.go()
    time.sleep(1.5)
    server.start()
    code, out, err = waiting.wait()
    waited = time.monotonic() - waiting.started_at
    assert code == 0, err
    assert "database not reachable yet" in err and all(f"applied {i}" in out for i in IDS)
    assert applied_ids(lab.url) == IDS and take(lab.url) == lab.refs[-1]
    figures["server_restart"] = _summary(
        lab,
        outcomes,
        dropped,
        {
            "trials": RESTART_TRIALS,
            "seed": 6_060,
            "exit_codes": {str(k): v for k, v in codes.items()},
            "wait_run_started_while_down_then_completed_s": round(waited, 3),
        },
    )


def test_wait_gives_up_after_n_seconds_with_backoff(figures):
    env = {"Z4J_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/app", "Z4J_MIGRATIONS_DIR": "tests/fixtures/minimal"}
    started = time.monotonic()
    r = run_cli("upgrade", env=env)
    immediate = time.monotonic() - started
    assert r.returncode == 7 and "Use --wait SECONDS" in r.stderr and "Traceback" not in r.stderr
    assert immediate < 3
    started = time.monotonic()
    r = run_cli("upgrade", "--wait", "3", env=env)
    waited = time.monotonic() - started
    pauses = [float(x) for x in re.findall(r"retrying in ([\d.]+)s", r.stderr)]
    assert r.returncode == 7 and "after retrying for 3s" in r.stderr and "Traceback" not in r.stderr
    assert 3 <= waited < 6
    assert len(pauses) >= 4 and pauses[:4] == sorted(pauses[:4])  # backoff: 0.1, 0.2, 0.4, 0.8 s (+-20 %)
    figures["unreachable"] = {
        "without_wait_exit_7_after_s": round(immediate, 3),
        "wait_3_exit_7_after_s": round(waited, 3),
        "retry_pauses_s": pauses,
        "median_pause_s": statistics.median(pauses),
    }
