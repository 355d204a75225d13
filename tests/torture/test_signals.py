"""Signals: SIGTERM and SIGINT at random moments, kill -9 with a statement in flight.

The CLI promises (z4j_migrate/interrupt.py) that SIGTERM or SIGINT, whatever the run is
doing, cancels the statement in flight on the server, rolls back a transactional revision
or journals a non-transactional one, releases the migration lock, ends its stderr with one
`error: interrupted by SIG...:` line (after the INFO lines of what it applied) saying what it
applied, cancelled or journaled, and exits with code 12 within 2 s; and that after
kill -9 of the client the orphaned backend stops within seconds
(client_connection_check_interval). Each trial here starts `python -m z4j_migrate upgrade`
against a fresh database, waits until the process is visible on the server, sleeps a seeded
random delay and sends the signal; then it checks what an operator relies on: the process
stopped in time and said so, nothing of ours runs or holds a lock on the server, catalog and
bookkeeping agree, the head digest is valid, and the next `upgrade` completes.

Some trials add a second session, so that the signal also lands in the moments a quiet
database never shows: one holds the migration lock at the start (the run waits for it), one
holds an old snapshot (each CREATE INDEX CONCURRENTLY waits for it, so the signal lands
inside one and leaves an INVALID index behind for the next run to drop).

Reproduce a failure with the seed the assertion message prints:
Z4J_SIGNAL_SEED=<seed> pytest -m torture tests/torture/test_signals.py
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import digest
import psycopg
import pytest
from helpers import REPO, applied_ids, query, run_cli, scalar, tables, write_pair
from machinery import trials

import z4j_migrate
from z4j_migrate import interrupt
from z4j_migrate.lock import lock_key

pytestmark = pytest.mark.torture

TRIALS = trials(15, deep=20)  # per signal; 3 of each kind below by default
# What the other session of a trial does (see _other_session), and when the random delay starts: once
# the run shows up on the server, or ("aimed-*") once it runs a transactional revision's message or a
# CREATE INDEX CONCURRENTLY (held up by an old snapshot); then the delay is short.
KINDS = ("plain", "lock", "aimed-tx", "snapshot", "aimed-cic")
AIMED = {
    "aimed-tx": "AND query LIKE 'BEGIN;%%'",
    "aimed-cic": "AND query LIKE 'CREATE INDEX CONCURRENTLY%%'",
}
SEED = int(os.environ.get("Z4J_SIGNAL_SEED", "20261201"))
MAX_DELAY_S = 1.5  # the signal comes this long at most after the process shows up on the server
EXIT_WITHIN_S = 2.0  # the promise
MIN_INTERRUPTED = 0.6  # of the trials must really have been interrupted (exit 12), or the test proves nothing
KEY = lock_key("public")
APP = "z4j-migrate"

# The revision set of every trial: id -> what it creates (transactional: one table; else indexes, in order).
TRANSACTIONAL = {"0001_t1": "t1", "0002_t2": "t2", "0004_t3": "t3", "0006_t4": "t4"}
NON_TRANSACTIONAL = {"0003_ix12": ("ix_1", "ix_2"), "0005_ix3": ("ix_3",)}
IDS = sorted([*TRANSACTIONAL, *NON_TRANSACTIONAL])
INDEXES = [ix for rev in NON_TRANSACTIONAL.values() for ix in rev]

# What the first run may print on stderr besides the error line (its INFO log lines).
_LOG_LINE = re.compile(r"applied \S+ \(.*\) in \d+ ms|waiting for the migration lock, held by .*")
_SUMMARY = re.compile(
    r"error: interrupted by (?P<sig>SIGTERM|SIGINT): applied (?P<applied>.*?)"
    r"(?:; cancelled (?P<undone>\S+), which the server rolled back \(it left no trace\))?"
    r"(?:; stopped the non-transactional (?P<journaled>\S+) part-way \(journaled; the next run resumes it\))?"
    r"; the migration lock is released\. Run z4j-migrate again to continue\."
)


def signal_set(folder: Path, rng: random.Random) -> None:
    """~6 revisions, transactional and not, each with sleeps drawn from `rng` (about 1.3 s in all)."""

    def nap() -> str:
        return f"SELECT pg_sleep({rng.uniform(0.08, 0.25):.3f});\n"

    def table(rev_id: str, name: str, rows: int) -> None:
        up = f"CREATE TABLE {name} (id bigint NOT NULL);\nINSERT INTO {name} SELECT generate_series(1, {rows});\n"
        write_pair(folder, rev_id, up + nap(), f"DROP TABLE {name};")

    table("0001_t1", "t1", 20000)
    table("0002_t2", "t2", 20000)
    write_pair(
        folder,
        "0003_ix12",
        "-- message: two indexes, built without blocking writers\n-- transactional: false\n"
        + nap()
        + "CREATE INDEX CONCURRENTLY ix_1 ON t1 (id);\n"
        + nap()
        + "CREATE INDEX CONCURRENTLY ix_2 ON t2 (id);\n",
        "DROP INDEX CONCURRENTLY IF EXISTS ix_2;\nDROP INDEX CONCURRENTLY IF EXISTS ix_1;",
    )
    table("0004_t3", "t3", 1000)
    write_pair(
        folder,
        "0005_ix3",
        "-- message: one more index\n-- transactional: false\nCREATE INDEX CONCURRENTLY ix_3 ON t3 (id);\n" + nap(),
        "DROP INDEX CONCURRENTLY IF EXISTS ix_3;",
    )
    table("0006_t4", "t4", 10)


# --- what the server shows ---------------------------------------------------------------------


def _ours_active(admin: psycopg.Connection, db: str) -> list[tuple]:
    return admin.execute(
        "SELECT pid, left(query, 80) FROM pg_stat_activity WHERE datname = %s AND application_name = %s "
        "AND state = 'active'",
        (db, APP),
    ).fetchall()


def _advisory_locks(admin: psycopg.Connection, db: str, exclude: tuple[int, ...] = ()) -> list[tuple]:
    return admin.execute(
        "SELECT pid, mode, granted FROM pg_locks WHERE locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = %s) AND NOT (pid = ANY(%s))",
        (db, list(exclude)),
    ).fetchall()


def _wait_until_visible(
    admin: psycopg.Connection, db: str, proc: subprocess.Popen, running: str = "", timeout: float = 20
) -> None:
    """Until the run has a session on the server (`running`: one whose active query matches)."""
    sql = "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND application_name = %s"
    if running:
        sql += f" AND state = 'active' {running}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if admin.execute(sql, (db, APP)).fetchone():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"upgrade exited ({proc.returncode}) before it was seen on the server: {err}")
        time.sleep(0.005)
    raise AssertionError(f"upgrade not visible in pg_stat_activity of {db} after {timeout}s")


def _settled(admin: psycopg.Connection, db: str, until: float, exclude: tuple[int, ...] = ()) -> tuple[list, list]:
    """Poll until nothing of ours runs and no advisory lock is held in `db`, or `until`; what is left."""
    while True:
        active, locks = _ours_active(admin, db), _advisory_locks(admin, db, exclude)
        if (not active and not locks) or time.monotonic() >= until:
            return active, locks
        time.sleep(0.01)


# --- bookkeeping --------------------------------------------------------------------------------


def _has(url: str, table: str) -> bool:
    return scalar(url, "SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)) is True


_stored_digest, _recomputed_digest, _expected_digest = digest.stored, digest.recomputed, digest.expected


def _indexes(url: str) -> dict[str, bool]:
    """Every index of schema public that a revision made (ix_*), and whether it is valid."""
    rows = query(
        url,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname LIKE 'ix\\_%'",
    )
    return {r[0]: r[1] for r in rows}


def _check_state(url: str, where: str) -> dict[str, object]:
    """Catalog and bookkeeping agree, the head digest is valid; what was found."""
    if not _has(url, "_yoyo_migration"):  # stopped before the bookkeeping tables were committed
        assert not _has(url, "_z4j_migrate_head"), f"{where}: half the bookkeeping tables exist"
        assert tables(url) == set() and _indexes(url) == {}, f"{where}: schema changed without bookkeeping"
        return {"applied": [], "journal": [], "invalid": []}
    applied = applied_ids(url)
    assert applied == IDS[: len(applied)], f"{where}: applied revisions are not a prefix: {applied}"
    ours = [r[0] for r in query(url, "SELECT migration_id FROM _z4j_migrate_revision ORDER BY 1")]
    assert ours == applied, f"{where}: _z4j_migrate_revision {ours} != _yoyo_migration {applied}"
    logged = dict(query(url, "SELECT migration_id, count(*) FROM _yoyo_log WHERE operation = 'apply' GROUP BY 1"))
    assert logged == dict.fromkeys(applied, 1), f"{where}: _yoyo_log {logged}, applied {applied}"
    journal = query(url, "SELECT migration_id, direction, statements_done, statements_total FROM _z4j_migrate_progress")
    assert len(journal) <= 1, f"{where}: more than one journal row: {journal}"
    journaled = {j[0]: j for j in journal}
    if journal:
        rev_id, direction, _, _ = journal[0]
        assert rev_id == IDS[len(applied)] and rev_id in NON_TRANSACTIONAL and direction == "apply", (
            f"{where}: journal row {journal[0]} for a revision that is not the next non-transactional one "
            f"(applied: {applied})"
        )
    existing, indexes = tables(url), _indexes(url)
    for rev_id, name in TRANSACTIONAL.items():
        assert (rev_id in applied) == (name in existing), (
            f"{where}: transactional {rev_id} applied={rev_id in applied} but table {name} exists={name in existing}"
        )
    invalid = sorted(n for n, ok in indexes.items() if not ok)
    for rev_id, names in NON_TRANSACTIONAL.items():
        if rev_id in applied:
            assert all(indexes.get(n) is True for n in names), f"{where}: {rev_id} applied, indexes {indexes}"
        elif rev_id in journaled:
            ran = journaled[rev_id][2]  # statements done: their indexes are built, later ones never started
            done = [n for i, n in enumerate(names) if _index_statement(rev_id, i) <= ran]
            in_flight = [n for i, n in enumerate(names) if _index_statement(rev_id, i) == ran + 1]
            later = [n for n in names if n not in done and n not in in_flight]
            assert all(indexes.get(n) is True for n in done), f"{where}: {journaled[rev_id]}, indexes {indexes}"
            assert not any(n in indexes for n in later), f"{where}: {journaled[rev_id]}, indexes {indexes}"
            assert all(indexes.get(n) is not True for n in in_flight), (
                f"{where}: the index of the statement in flight is valid, but the journal {journaled[rev_id]} "
                f"says it never finished: the next run would fail with 'already exists' ({indexes})"
            )
        else:
            assert not any(n in indexes for n in names), f"{where}: {rev_id} did something, unjournaled: {indexes}"
    stored, recomputed = _stored_digest(url), _recomputed_digest(url)
    assert stored is not None and stored == recomputed, f"{where}: head digest {stored} != rebuilt {recomputed}"
    return {"applied": applied, "journal": journal, "invalid": invalid}


def _index_statement(rev_id: str, i: int) -> int:
    """The 1-based statement of `rev_id` that creates its i-th index (see signal_set)."""
    return {"0003_ix12": (2, 4), "0005_ix3": (1,)}[rev_id][i]


def _check_resumed(url: str, folder: Path, env: dict[str, str], where: str) -> str:
    r = run_cli("upgrade", env=env, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "Traceback" not in out, f"{where}: the next upgrade exited {r.returncode}: {out}"
    assert applied_ids(url) == IDS, f"{where}: after the next upgrade: {applied_ids(url)}"
    assert set(TRANSACTIONAL.values()) <= tables(url), f"{where}: tables {tables(url)}"
    assert _indexes(url) == dict.fromkeys(INDEXES, True), f"{where}: indexes {_indexes(url)}"
    assert scalar(url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0, f"{where}: an INVALID index"
    assert scalar(url, "SELECT count(*) FROM _z4j_migrate_progress") == 0, f"{where}: journal left"
    stored, recomputed, expected = _stored_digest(url), _recomputed_digest(url), _expected_digest(folder)
    assert stored == recomputed == expected, f"{where}: digest {stored}, rebuilt {recomputed}, expected {expected}"
    return r.stderr


# --- the other session of some trials -----------------------------------------------------------


@contextmanager
def _other_session(kind: str, url: str, hold_s: float) -> Iterator[tuple[int, ...]]:
    """'lock': holds the migration lock; 'snapshot': holds an old snapshot (CREATE INDEX CONCURRENTLY
    waits for it). Let go after `hold_s`, or on leaving the block. Yields its backend pid, if any."""
    if kind in ("plain", "aimed-tx"):
        yield ()
        return
    conn = psycopg.connect(url, autocommit=kind == "lock")  # "snapshot" and "aimed-cic": an old snapshot
    if kind == "lock":
        conn.execute("SELECT pg_advisory_lock(%s)", (KEY,))
    else:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute("SELECT 1")  # the transaction's snapshot is taken: its xmin stays until it ends
    closed = threading.Lock()

    def let_go() -> None:
        with closed:
            conn.close()

    timer = threading.Timer(hold_s, let_go)
    timer.daemon = True
    timer.start()
    try:
        yield (conn.info.backend_pid,)
    finally:
        timer.cancel()
        let_go()


# --- SIGTERM / SIGINT at random moments -------------------------------------------------------


def _env(url: str, folder: Path, **extra: str) -> dict[str, str]:
    return {"Z4J_DATABASE_URL": url, "Z4J_MIGRATIONS_DIR": str(folder), **extra}


def _start(env: dict[str, str], *args: str) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    full.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "z4j_migrate", *(args or ("upgrade",))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full,
        cwd=REPO,
    )


def _trial(pg_server, admin: psycopg.Connection, base: Path, sig: signal.Signals, trial: int) -> dict[str, object]:
    seed = SEED * 1000 + trial * 2 + (sig == signal.SIGINT)
    rng = random.Random(seed)
    kind = KINDS[trial % len(KINDS)]
    hold_s = {"lock": rng.uniform(0.2, 1.2), "snapshot": rng.uniform(0.5, 2.0)}.get(kind, 30.0)
    delay = rng.uniform(0.0, 0.1 if kind in AIMED else MAX_DELAY_S)
    after = {"aimed-tx": "a revision's message", "aimed-cic": "a CREATE INDEX CONCURRENTLY"}.get(kind, "the process")
    where = f"[{sig.name} trial {trial}, seed {seed}, {kind}, signal {delay:.3f}s after {after} showed up]"
    folder = base / f"trial{trial}"
    folder.mkdir()
    signal_set(folder, rng)
    db = pg_server.create_database("sig_")
    url = pg_server.url_for(db)
    env = _env(url, folder)
    try:
        with _other_session(kind, url, hold_s) as others:
            proc = _start(env)
            try:
                _wait_until_visible(admin, db, proc, AIMED.get(kind, ""))
                time.sleep(delay)
                signalled = proc.poll() is None
                sent = time.monotonic()
                if signalled:
                    proc.send_signal(sig)
                out, err = proc.communicate(timeout=30)
                took = time.monotonic() - sent
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            code = proc.returncode
            assert "Traceback" not in out + err, f"{where}: a traceback: {err}"
            if signalled:
                assert took <= EXIT_WITHIN_S, f"{where}: exited {took:.2f}s after the signal (code {code}): {err}"
                left = _settled(admin, db, sent + EXIT_WITHIN_S, others)
            else:
                left = _settled(admin, db, time.monotonic() + EXIT_WITHIN_S, others)
            assert left == ([], []), f"{where}: after exit, still active {left[0]}, advisory locks {left[1]}"
        assert code in (0, interrupt.EXIT_CODE), f"{where}: exit code {code}: {err}"
        lines = [ln for ln in err.splitlines() if ln.strip()]
        state = _check_state(url, where)
        outcome: dict[str, object] = {"interrupted": code == interrupt.EXIT_CODE, "kind": kind, "took": took}
        if code == 0:
            assert not any(ln.startswith("error") for ln in lines), f"{where}: {err}"
            assert state["applied"] == IDS and not state["journal"], f"{where}: exit 0 but {state}"
            outcome["moment"] = "finished first"
        else:
            assert signalled, f"{where}: exit 12 without a signal: {err}"
            errors = [ln for ln in lines if ln.startswith("error")]
            assert len(errors) == 1 and lines[-1] == errors[0], f"{where}: not one error line, last: {err}"
            others_lines = [ln for ln in lines[:-1] if not _LOG_LINE.fullmatch(ln)]
            assert not others_lines, f"{where}: unexpected stderr lines {others_lines}"
            summary = _SUMMARY.fullmatch(lines[-1])
            assert summary, f"{where}: the error line does not say what was done: {lines[-1]!r}"
            assert summary["sig"] == sig.name, f"{where}: {lines[-1]}"
            outcome.update(_check_summary(summary, state, where))
            if not state["applied"] and any(ln.startswith("waiting for the migration lock") for ln in lines):
                outcome["moment"] = "waiting for the migration lock"
        outcome["invalid"] = state["invalid"]
        resumed = _check_resumed(url, folder, env, where)
        for name in state["invalid"]:
            dropped = [ln for ln in resumed.splitlines() if "dropping INVALID index" in ln and name in ln]
            assert dropped, f"{where}: {name} was INVALID; resumed with {resumed}"
        return outcome
    finally:
        pg_server.drop_database(db)


def _check_summary(summary: re.Match, state: dict, where: str) -> dict[str, object]:
    """What the error line says was applied, cancelled or journaled is what the database shows."""
    said = [] if summary["applied"] == "nothing" else summary["applied"].split(", ")
    applied = state["applied"]
    journal = {j[0]: j for j in state["journal"]}
    assert said == applied, f"{where}: the error line says applied {said}, the database has {applied}"
    if summary["undone"]:
        undone = summary["undone"]
        assert undone in TRANSACTIONAL and undone not in applied and undone == IDS[len(applied)], (
            f"{where}: says it cancelled {undone}, applied: {applied}"
        )
    if summary["journaled"]:
        assert summary["journaled"] in journal, f"{where}: says {summary['journaled']} was journaled: {journal}"
    if summary["undone"]:
        moment = "in a transactional revision (cancelled, rolled back)"
    elif summary["journaled"]:
        moment = "in a non-transactional revision (journaled)"
    elif applied == IDS:
        moment = "after the last revision"
    elif applied:
        moment = "between revisions"
    else:
        moment = "before the first revision (connecting, bookkeeping set-up, lock wait)"
    assert bool(journal) == bool(summary["journaled"]), f"{where}: journal {journal}, the error line: {summary[0]}"
    return {"moment": moment}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_at_random_moments(pg_server, tmp_path, figures, sig):
    started = time.monotonic()
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        outcomes = [_trial(pg_server, admin, tmp_path, sig, trial) for trial in range(TRIALS)]
    interrupted = sum(1 for o in outcomes if o["interrupted"])
    moments = Counter(str(o["moment"]) for o in outcomes)
    summary = {
        "seed": SEED,
        "trials": TRIALS,
        "interrupted": interrupted,
        "moments": dict(moments),
        "kinds": dict(Counter(str(o["kind"]) for o in outcomes)),
        "invalid_index_left": sum(1 for o in outcomes if o["invalid"]),
        "max_exit_s": round(max(float(o["took"]) for o in outcomes if o["interrupted"]), 3) if interrupted else None,
        "wall_s": round(time.monotonic() - started, 1),
    }
    figures[f"signal_{sig.name}"] = summary
    print(f"{sig.name}: {summary}")
    assert interrupted >= MIN_INTERRUPTED * TRIALS, f"seed {SEED}: only {interrupted}/{TRIALS} interrupted: {summary}"
    assert any(str(m).startswith("in a transactional") for m in moments), f"seed {SEED}: {summary}"
    assert any(str(m).startswith("in a non-transactional") for m in moments), f"seed {SEED}: {summary}"
    assert summary["invalid_index_left"], f"seed {SEED}: no trial stopped a CREATE INDEX CONCURRENTLY: {summary}"


# --- kill -9 with a 15 s statement in flight ----------------------------------------------------

# The statement sleeps as long as the session's z4j_test.sleep says (PGOPTIONS), else not at all:
# the killed run sleeps 15 s, the next one goes straight through, from the same files.
_SLEEP = "SELECT pg_sleep(coalesce(nullif(current_setting('z4j_test.sleep', true), ''), '0')::float8);\n"


@pytest.mark.parametrize("transactional", [True, False], ids=["transactional", "non-transactional"])
def test_kill_9_with_a_long_statement_in_flight(pg_server, database_url, migrations, figures, transactional):
    write_pair(migrations, "0001_k1", "CREATE TABLE k1 (id bigint NOT NULL);\n", "DROP TABLE k1;")
    if transactional:
        write_pair(migrations, "0002_slow", "CREATE TABLE k2 (id bigint);\n" + _SLEEP, "DROP TABLE k2;")
    else:
        write_pair(
            migrations,
            "0002_slow",
            "-- message: slow\n-- transactional: false\nCREATE INDEX CONCURRENTLY ix_k1 ON k1 (id);\n" + _SLEEP,
            "DROP INDEX CONCURRENTLY IF EXISTS ix_k1;",
        )
    write_pair(migrations, "0003_k3", "CREATE TABLE k3 (id bigint);\n", "DROP TABLE k3;")
    db = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    env = _env(database_url, migrations)
    proc = _start({**env, "PGOPTIONS": "-c z4j_test.sleep=15"})
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        try:
            deadline, pid = time.monotonic() + 20, None
            while pid is None and time.monotonic() < deadline and proc.poll() is None:
                row = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s "
                    "AND state = 'active' AND wait_event = 'PgSleep' AND query LIKE '%%z4j_test.sleep%%'",
                    (db, APP),
                ).fetchone()
                pid = row[0] if row else None
                time.sleep(0.01)
            assert pid is not None, f"the 15 s statement never showed up: {proc.poll()}"
            assert _advisory_locks(admin, db), "the run holds no migration lock while it runs a revision"
            proc.kill()
            proc.communicate(timeout=10)
            killed = time.monotonic()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        while time.monotonic() - killed < 5:
            alive = admin.execute("SELECT pid, state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchall()
            locks = _advisory_locks(admin, db)
            if not alive and not locks:
                break
            time.sleep(0.02)
        gone = time.monotonic() - killed
        assert not alive and not locks, f"{gone:.1f}s after kill -9: backend {alive}, advisory locks {locks}"
    status = run_cli("status", env=env)
    assert status.returncode == 0 and "Traceback" not in status.stdout + status.stderr, status.stderr
    states = {r.id: r.state for r in z4j_migrate.status(database_url=database_url, migrations_dir=migrations).revisions}
    expected = {"0001_k1": "applied", "0002_slow": "pending" if transactional else "partial", "0003_k3": "pending"}
    assert states == expected, states
    assert "k2" not in tables(database_url)
    r = run_cli("upgrade", env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert applied_ids(database_url) == ["0001_k1", "0002_slow", "0003_k3"]
    assert scalar(database_url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 0
    assert scalar(database_url, "SELECT count(*) FROM _z4j_migrate_progress") == 0
    stored, recomputed = _stored_digest(database_url), _recomputed_digest(database_url)
    assert stored == recomputed == _expected_digest(migrations)
    figures.setdefault("kill_9_in_flight", {})["transactional" if transactional else "non_transactional"] = {
        "backend_gone_s": round(gone, 2)
    }


# --- the error line names what a signal during bookkeeping left ---------------------------------
#
# A signal that arrives while bookkeeping runs (interrupt.critical) waits for it, and the stop is
# raised when the bookkeeping ends. A server-side trigger that sleeps makes that moment last, so
# the signal lands in it every time.


def _slow_bookkeeping(pg_server, database_url: str, migrations: Path, trigger_sql: str) -> tuple[int, str, str]:
    """Apply 0001 (creates the bookkeeping tables), add `trigger_sql`, then run 0002 (non-transactional,
    two statements) and 0003 with SIGTERM sent while the trigger sleeps; the exit code and stderr."""
    write_pair(migrations, "0001_a", "CREATE TABLE a (id bigint NOT NULL);\n", "DROP TABLE a;")
    env = _env(database_url, migrations)
    assert run_cli("upgrade", env=env).returncode == 0
    query(
        database_url,
        "CREATE FUNCTION z4j_test_slow() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(0.8); RETURN NULL; END $$;\n" + trigger_sql,
    )
    write_pair(
        migrations,
        "0002_ix",
        "-- message: ix\n-- transactional: false\nCREATE INDEX CONCURRENTLY ix_a ON a (id);\nSELECT 1;\n",
        "DROP INDEX CONCURRENTLY IF EXISTS ix_a;",
    )
    write_pair(migrations, "0003_b", "CREATE TABLE b (id bigint);\n", "DROP TABLE b;")
    db = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    proc = _start(env)
    try:
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None:
                if admin.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND application_name = %s "
                    "AND state = 'active' AND wait_event = 'PgSleep'",
                    (db, APP),
                ).fetchone():
                    break
                time.sleep(0.005)
            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            _, err = proc.communicate(timeout=30)
            assert time.monotonic() - sent <= EXIT_WITHIN_S + 0.8, err  # the bookkeeping finishes first
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err.strip().splitlines()[-1], err


def test_summary_names_a_revision_journaled_when_the_signal_came_during_the_journal(
    pg_server, database_url, migrations
):
    code, last, err = _slow_bookkeeping(
        pg_server,
        database_url,
        migrations,
        "CREATE TRIGGER z4j_test_slow AFTER UPDATE ON _z4j_migrate_progress FOR EACH ROW "
        "WHEN (NEW.statements_done = 1) EXECUTE FUNCTION z4j_test_slow()",
    )
    assert code == interrupt.EXIT_CODE, err
    journal = query(database_url, "SELECT migration_id, statements_done FROM _z4j_migrate_progress")
    assert journal == [("0002_ix", 1)] and applied_ids(database_url) == ["0001_a"], (journal, err)
    assert _stored_digest(database_url) == _recomputed_digest(database_url)
    assert "stopped the non-transactional 0002_ix part-way" in last, last


def test_summary_names_a_revision_applied_when_the_signal_came_during_its_bookkeeping(
    pg_server, database_url, migrations
):
    code, last, err = _slow_bookkeeping(
        pg_server,
        database_url,
        migrations,
        "CREATE TRIGGER z4j_test_slow AFTER INSERT ON _yoyo_migration FOR EACH ROW "
        "WHEN (NEW.migration_id = '0002_ix') EXECUTE FUNCTION z4j_test_slow()",
    )
    assert code == interrupt.EXIT_CODE, err
    assert applied_ids(database_url) == ["0001_a", "0002_ix"], err
    assert _stored_digest(database_url) == _recomputed_digest(database_url)
    assert last.startswith("error: interrupted by SIGTERM: applied 0002_ix;"), last


# --- a signal delivered at one exact point --------------------------------------------------------
#
# The handler runs between two bytecodes of the main thread, wherever the signal finds it. These
# runs deliver it at a chosen point: a hook sends SIGTERM to its own process there (os.kill runs
# the Python handler before it returns). Each hook says "fired" so that it cannot miss silently.

_AT_A_POINT = r"""
import os, signal, sys
from z4j_migrate import cli, interrupt
from z4j_migrate.logs import log

point, fired = sys.argv[1], []

def fire():
    fired.append(point)
    print("fired", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

critical = interrupt.critical
def hooked_critical():  # the journal write after statement 1 is about to enter its critical section
    caller = sys._getframe(1)
    if point == "after-statement" and not fired and caller.f_code.co_name == "_journal" \
            and caller.f_locals.get("done") == 1:
        fire()
    return critical()
interrupt.critical = hooked_critical

info = log.info
def hooked_info(msg, *args, **kwargs):  # "applied <id> ..." is logged once the revision committed
    if point == "after-commit" and not fired and msg.startswith("applied %s") and args[:1] == ("0002_b",):
        fire()
    return info(msg, *args, **kwargs)
log.info = hooked_info

cli.main(["upgrade"])
"""


def _run_at_a_point(point: str, env: dict[str, str]) -> tuple[int, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    full.update(env)
    r = subprocess.run(
        [sys.executable, "-c", _AT_A_POINT, point], env=full, capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert "fired" in r.stdout.splitlines(), f"the hook at {point} never fired (engine refactored?): {r.stderr}"
    assert r.returncode == interrupt.EXIT_CODE and "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stderr.strip().splitlines()[-1]


def test_a_signal_right_after_a_non_transactional_statement_does_not_run_it_twice(database_url, migrations):
    write_pair(migrations, "0001_a", "CREATE TABLE a (id bigint NOT NULL);\n", "DROP TABLE a;")
    write_pair(
        migrations,
        "0002_ix",
        "-- message: ix\n-- transactional: false\nCREATE INDEX CONCURRENTLY ix_a ON a (id);\nSELECT 1;\n",
        "DROP INDEX CONCURRENTLY IF EXISTS ix_a;",
    )
    env = _env(database_url, migrations)
    _, last = _run_at_a_point("after-statement", env)
    assert _SUMMARY.fullmatch(last), last
    assert _indexes(database_url) == {"ix_a": True}  # statement 1 ran and committed
    journal = query(database_url, "SELECT statements_done FROM _z4j_migrate_progress")
    assert _stored_digest(database_url) == _recomputed_digest(database_url)
    assert journal == [(1,)], journal  # the statement that committed is counted
    r = run_cli("upgrade", env=env)
    assert r.returncode == 0, f"journal {journal}: {r.stderr}"
    assert applied_ids(database_url) == ["0001_a", "0002_ix"]


def test_a_signal_right_after_a_revision_committed_is_reported_as_applied(database_url, migrations):
    for rev_id, name in (("0001_a", "a"), ("0002_b", "b"), ("0003_c", "c")):
        write_pair(migrations, rev_id, f"CREATE TABLE {name} (id bigint);\n", f"DROP TABLE {name};")
    _, last = _run_at_a_point("after-commit", _env(database_url, migrations))
    summary = _SUMMARY.fullmatch(last)
    assert summary, last
    assert applied_ids(database_url) == ["0001_a", "0002_b"]
    assert summary["applied"] == "0001_a, 0002_b", last
