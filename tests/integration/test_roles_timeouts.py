"""Timeouts a role brings along, our own statement_timeout, two roles sharing one lock, a closed pipe.

Every migration transaction sets its own lock_timeout, statement_timeout, idle-in-transaction
timeout and client check interval (db.migration_settings), so a role's `ALTER ROLE ... SET
statement_timeout` never kills a long revision, while --statement-timeout / Z4J_STATEMENT_TIMEOUT
and a file's `-- statement-timeout:` directive do, naming where the limit came from. Two roles (the
owner that migrates, a DML-only application role that boots the application) share the migration
lock and the head digest: each names the other's session as far as the server lets it see, and the
head digest re-created by the owner keeps the grants the application role had.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import digest
import psycopg
import pytest
from helpers import REPO, applied_ids, query, run_cli, scalar, write_pair
from pgauth import login_role
from psycopg import errors as pgerrors
from psycopg import sql

import z4j_migrate
from z4j_migrate.lock import lock_key
from z4j_migrate.revisions import checksum

MILLION = 1_000_000

BIG = (
    "0001_big",
    "CREATE TABLE public.big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 1000000) g;",
    "DROP TABLE public.big;",
)
SLOW = (  # one transaction that runs about 3 s
    "0002_slow",
    "SELECT pg_sleep(3);\nCREATE TABLE public.after_sleep (id int);",
    "DROP TABLE public.after_sleep;",
)
CIC_UP = (  # longer than 1 s in any case: the pg_sleep after the index build
    "-- message: index big\n-- transactional: false\n"
    "CREATE INDEX CONCURRENTLY ix_big_v ON public.big (v);\n"
    "SELECT pg_sleep(1.5);\n"
    "CREATE TABLE public.after_cic (id int);\n"
)
CIC_DOWN = "-- transactional: false\nDROP TABLE public.after_cic;\nDROP INDEX CONCURRENTLY public.ix_big_v;\n"


def _env(url: str, folder: Path, **extra: str) -> dict[str, str]:
    return {"Z4J_DATABASE_URL": url, "Z4J_MIGRATIONS_DIR": str(folder), **extra}


def _grant(url: str, statement: str, *identifiers: str) -> None:
    query(url, sql.SQL(statement).format(*map(sql.Identifier, identifiers)).as_string(None))


def _index_state(url: str, name: str) -> tuple[int, bool] | None:
    """(oid, indisvalid) of index `name`, or None when it does not exist."""
    rows = query(
        url,
        "SELECT i.indexrelid::oid::int8, i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass(%s)",
        (name,),
    )
    return (rows[0][0], rows[0][1]) if rows else None


def _exists(url: str, relation: str) -> bool:
    return scalar(url, "SELECT to_regclass(%s) IS NOT NULL", (relation,)) is True


@contextmanager
def _owned_database(pg_server, prefix: str) -> Iterator[tuple[str, str]]:
    """A LOGIN role (no superuser) and a fresh database it owns: (role, dbname)."""
    with login_role(pg_server, prefix="owner") as owner:
        dbname = pg_server.create_database(prefix, owner=owner)
        try:
            yield owner, dbname
        finally:
            pg_server.drop_database(dbname)  # before login_role drops the role


# --------------------------------------------------------------------------- 1. the role's own timeouts


@pytest.mark.parametrize("via", ["cli", "library"])
def test_role_timeouts_never_apply_to_migrations(pg_server, migrations, via):
    """statement_timeout = 1s and idle_in_transaction_session_timeout = 1s on the migrating role:
    a 3 s transactional revision and a non-transactional CREATE INDEX CONCURRENTLY over a million
    rows (plus a 1.5 s statement) both run to the end."""
    with _owned_database(pg_server, "roleto_") as (owner, dbname):
        for setting in ("statement_timeout", "idle_in_transaction_session_timeout"):
            _grant(pg_server.admin_url, f"ALTER ROLE {{}} SET {setting} = '1s'", owner)
        url = pg_server.url_for(dbname, user=owner)
        # The role setting is real: a plain session of that role is cancelled after 1 s.
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT current_setting('statement_timeout')").fetchone()[0] == "1s"
            assert conn.execute("SELECT current_setting('idle_in_transaction_session_timeout')").fetchone()[0] == "1s"
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0] is False
            with pytest.raises(pgerrors.QueryCanceled, match="statement timeout"):
                conn.execute("SELECT pg_sleep(2)")

        for rev in (BIG, SLOW):
            write_pair(migrations, *rev)
        write_pair(migrations, "0003_cic", CIC_UP, CIC_DOWN)
        expected = ["0001_big", "0002_slow", "0003_cic"]
        if via == "cli":
            r = run_cli("upgrade", env=_env(url, migrations))
            assert r.returncode == 0, r.stderr
            assert "Traceback" not in r.stderr and "error" not in r.stderr.lower(), r.stderr
        else:
            result = z4j_migrate.upgrade(database_url=url, migrations_dir=migrations)
            assert [run.id for run in result.applied] == expected

        assert applied_ids(url) == expected
        assert scalar(url, "SELECT count(*) FROM public.big") == MILLION
        assert _exists(url, "public.after_sleep") and _exists(url, "public.after_cic")
        state = _index_state(url, "public.ix_big_v")
        assert state is not None and state[1] is True  # built, and valid
        assert scalar(url, "SELECT count(*) FROM public._z4j_migrate_progress") == 0
        assert scalar(url, "SELECT tableowner FROM pg_tables WHERE tablename = 'big'") == owner


# --------------------------------------------------------------------------- 2. our statement_timeout


def test_statement_timeout_option_env_and_directive(database_url, migrations):
    env = _env(database_url, migrations)
    write_pair(migrations, *BIG)
    assert run_cli("upgrade", env=env).returncode == 0

    # --statement-timeout 1 against a 3 s revision: rolled back, and the message says how to change it.
    write_pair(migrations, *SLOW)
    for how, extra_args, extra_env in (
        ("option", ("--statement-timeout", "1"), {}),
        ("env", (), {"Z4J_STATEMENT_TIMEOUT": "1"}),
    ):
        r = run_cli("upgrade", *extra_args, env={**env, **extra_env})
        assert r.returncode == 1, (how, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        assert "0002_slow" in r.stderr and "canceling statement due to statement timeout" in r.stderr, r.stderr
        assert "statement_timeout" in r.stderr and "--statement-timeout / Z4J_STATEMENT_TIMEOUT (1 s)" in r.stderr
        assert "raise it or set it to 0 (no limit)" in r.stderr, r.stderr
        assert "rolled back and left no trace" in r.stderr
        assert not _exists(database_url, "public.after_sleep")
        assert applied_ids(database_url) == ["0001_big"]

    # The file's directive wins over the run's setting, both ways.
    write_pair(migrations, "0002_slow", "-- message: slow\n-- statement-timeout: 500ms\n" + SLOW[1], SLOW[2])
    r = run_cli("upgrade", "--statement-timeout", "10", env=env)  # 10 s would let 3 s pass
    assert r.returncode == 1, r.stderr
    assert "the file's '-- statement-timeout:' directive (500 ms)" in r.stderr, r.stderr
    assert "raise it or set it to 0 (no limit)" in r.stderr and "Traceback" not in r.stderr
    assert not _exists(database_url, "public.after_sleep") and applied_ids(database_url) == ["0001_big"]
    no_limit = (
        "-- message: slow\n-- statement-timeout: 0\nSELECT pg_sleep(1.5);\nCREATE TABLE public.after_sleep (id int);"
    )
    write_pair(migrations, "0002_slow", no_limit, SLOW[2])
    r = run_cli("upgrade", "--statement-timeout", "1", env=env)  # 0 in the file: no limit, whatever the run says
    assert r.returncode == 0, r.stderr
    assert applied_ids(database_url) == ["0001_big", "0002_slow"]

    # A non-transactional CREATE INDEX CONCURRENTLY cut off by its directive: exit 8, an INVALID index.
    # The test's open transaction holds a writer's lock on the table, so the build waits for the test
    # after its catalog entry is committed: the timeout surely fires there, however slow the machine.
    timed = CIC_UP.replace("-- transactional: false\n", "-- transactional: false\n-- statement-timeout: 2s\n")
    write_pair(migrations, "0003_cic", timed, CIC_DOWN)
    with psycopg.connect(database_url) as writer:
        writer.execute("LOCK TABLE public.big IN ROW EXCLUSIVE MODE")
        r = run_cli("upgrade", env=env, timeout=60)
        writer.rollback()
    assert r.returncode == 8, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert "statement 1 of 3 failed" in r.stderr and "canceling statement due to statement timeout" in r.stderr
    assert "none of its statements is in effect" in r.stderr and "statements 1-0" not in r.stderr, r.stderr
    assert "the file's '-- statement-timeout:' directive (2000 ms)" in r.stderr, r.stderr
    assert "public.ix_big_v" in r.stderr  # the INVALID index is named
    leftover = _index_state(database_url, "public.ix_big_v")
    assert leftover is not None and leftover[1] is False
    assert not _exists(database_url, "public.after_cic")
    assert applied_ids(database_url) == ["0001_big", "0002_slow"]
    # Not recorded as applied (no checksum kept): only the journal knows it started.
    assert (
        scalar(database_url, "SELECT count(*) FROM public._z4j_migrate_revision WHERE migration_id = '0003_cic'") == 0
    )
    assert query(database_url, "SELECT statements_done, statements_total FROM public._z4j_migrate_progress") == [(0, 3)]

    # So the file may still be edited: drop the directive. The revision stays 'partial', not 'edited'.
    write_pair(migrations, "0003_cic", CIC_UP, CIC_DOWN)
    report = z4j_migrate.status(database_url=database_url, migrations_dir=migrations)
    assert [(s.id, s.state) for s in report.revisions][-1] == ("0003_cic", "partial")
    assert report.invalid_indexes == ("public.ix_big_v",)

    # The rerun drops the INVALID index, builds it again (valid) and finishes: once, no loop.
    r = run_cli("upgrade", env=env, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    rebuilt = _index_state(database_url, "public.ix_big_v")
    assert rebuilt is not None and rebuilt[1] is True and rebuilt[0] != leftover[0]
    assert scalar(database_url, "SELECT count(*) FROM pg_index WHERE indrelid = 'public.big'::regclass") == 1
    assert _exists(database_url, "public.after_cic")
    assert applied_ids(database_url) == ["0001_big", "0002_slow", "0003_cic"]
    assert scalar(database_url, "SELECT count(*) FROM public._z4j_migrate_progress") == 0
    recorded = scalar(
        database_url, "SELECT up_checksum FROM public._z4j_migrate_revision WHERE migration_id = '0003_cic'"
    )
    assert recorded == checksum((migrations / "0003_cic.up.sql").read_text())  # the edited file's
    r = run_cli("upgrade", env=env, timeout=60)
    assert r.returncode == 0 and "nothing to do" in r.stdout, (r.stdout, r.stderr)


# --------------------------------------------------------------------------- 3. two roles


def _upgrade(url: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("upgrade", *args, env=_env(url, folder), timeout=60)


def test_owner_and_application_role_share_the_lock_and_the_head(pg_server, migrations):
    with (
        _owned_database(pg_server, "roles_") as (owner, dbname),
        login_role(pg_server, prefix="app") as app,
    ):
        owner_url = pg_server.url_for(dbname, user=owner)
        app_url = pg_server.url_for(dbname, user=app)
        write_pair(
            migrations,
            "0001_items",
            "CREATE TABLE public.items (id bigint PRIMARY KEY, name text);",
            "DROP TABLE public.items;",
        )
        assert _upgrade(owner_url, migrations).returncode == 0
        _grant(owner_url, "GRANT USAGE ON SCHEMA public TO {}", app)
        _grant(owner_url, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}", app)
        assert query(
            owner_url,
            "SELECT rolsuper, pg_has_role(%s, 'pg_read_all_stats', 'USAGE'), pg_has_role(%s, %s, 'USAGE') "
            "FROM pg_roles WHERE rolname = %s",
            (app, app, owner, app),
        ) == [(False, False, False)]
        write_pair(migrations, "0002_seed", "INSERT INTO public.items VALUES (1, 'one');", "DELETE FROM public.items;")
        key = lock_key("public")

        # (a) The owner's session holds the lock; the application role's waiter names it by pid and role.
        with psycopg.connect(owner_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (key,))
            pid = holder.info.backend_pid
            r = _upgrade(app_url, migrations, "--lock-timeout", "1")
            assert r.returncode == 6, (r.stdout, r.stderr)
            assert f"held by pid {pid} of role {owner}" in r.stderr and "pg_read_all_stats" in r.stderr, r.stderr
            assert "Traceback" not in r.stderr and "Nothing was changed" in r.stderr
            s = run_cli("status", env=_env(app_url, migrations))
            assert s.returncode == 0, s.stderr
            assert f"lock: held by pid {pid} of role {owner}" in s.stdout and "pg_read_all_stats" in s.stdout
            seen = z4j_migrate.status(database_url=app_url, migrations_dir=migrations).lock_holder
            assert seen is not None and (seen.pid, seen.role, seen.state, seen.connected_seconds) == (
                pid,
                owner,
                None,
                None,
            )
        assert applied_ids(owner_url) == ["0001_items"]

        # (b) Vice versa: the application role's session holds it; the owner's waiter names it.
        with psycopg.connect(app_url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (key,))
            r = _upgrade(owner_url, migrations, "--lock-timeout", "1")
            assert r.returncode == 6, (r.stdout, r.stderr)
            assert f"held by pid {holder.info.backend_pid} of role {app}" in r.stderr, r.stderr
            assert "pg_read_all_stats" in r.stderr and "Traceback" not in r.stderr
        assert applied_ids(owner_url) == ["0001_items"]
        # Least privilege is enough for a DML revision (its bookkeeping fires the head triggers as app).
        r = _upgrade(app_url, migrations)
        assert r.returncode == 0, r.stderr
        assert applied_ids(owner_url) == ["0001_items", "0002_seed"]

        # (c) Bookkeeping from before the head digest: no head table, no triggers, no function.
        query(owner_url, "DROP TABLE public._z4j_migrate_head CASCADE")
        triggers = "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '\\_z4j\\_migrate\\_head%%'"
        # DROP TABLE ... CASCADE reaches nothing else: a plpgsql body records no dependency on the table,
        # so the six triggers and their function survive it (and every bookkeeping write would now fail).
        assert scalar(owner_url, triggers) == 6
        assert _exists(owner_url, "public._z4j_migrate_head") is False
        assert scalar(owner_url, "SELECT to_regprocedure('public._z4j_migrate_head_track()') IS NOT NULL") is True
        query(owner_url, "DROP FUNCTION public._z4j_migrate_head_track() CASCADE")  # takes the triggers along
        assert scalar(owner_url, triggers) == 0

        # The application role cannot create the head (no CREATE on the schema): it reads the whole history.
        r = _upgrade(app_url, migrations)
        assert r.returncode == 0 and "nothing to do" in r.stdout, (r.stdout, r.stderr)
        assert not _exists(owner_url, "public._z4j_migrate_head")
        # It really depends on the full read: without SELECT on the history it is refused.
        _grant(owner_url, "REVOKE SELECT ON public._yoyo_migration FROM {}", app)
        r = _upgrade(app_url, migrations)
        assert r.returncode == 7 and "may not read the bookkeeping tables" in r.stderr, (r.stdout, r.stderr)
        _grant(owner_url, "GRANT SELECT ON public._yoyo_migration TO {}", app)

        # The owner's boot re-creates the head, with the grants the history table has.
        r = _upgrade(owner_url, migrations)
        assert r.returncode == 0, r.stderr
        assert _exists(owner_url, "public._z4j_migrate_head") and scalar(owner_url, triggers) == 6
        assert digest.stored(owner_url) == digest.expected(migrations)
        privileges = (
            "SELECT p.privilege_type FROM pg_class c, aclexplode(c.relacl) p "
            "WHERE c.oid = %s::regclass AND p.grantee = to_regrole(%s) ORDER BY 1"
        )
        granted = query(owner_url, privileges, ("public._z4j_migrate_head", app))
        assert granted == query(owner_url, privileges, ("public._z4j_migrate_revision", app))
        assert [g[0] for g in granted] == ["DELETE", "INSERT", "SELECT", "UPDATE"]
        assert scalar(owner_url, "SELECT has_table_privilege(%s, 'public._z4j_migrate_head', 'SELECT')", (app,)) is True

        # Now the application role's no-op reads the head alone: it succeeds without SELECT on the history.
        r = _upgrade(app_url, migrations)
        assert r.returncode == 0 and "nothing to do" in r.stdout, (r.stdout, r.stderr)
        history = "public._yoyo_migration, public._z4j_migrate_revision, public._z4j_migrate_progress"
        _grant(owner_url, f"REVOKE SELECT ON {history} FROM {{}}", app)
        try:
            assert z4j_migrate.upgrade(database_url=app_url, migrations_dir=migrations).applied == ()
        finally:
            _grant(owner_url, f"GRANT SELECT ON {history} TO {{}}", app)
        # And its writes keep the re-created head true (the trigger updates it with the app's UPDATE grant).
        write_pair(
            migrations,
            "0003_more",
            "INSERT INTO public.items VALUES (2, 'two');",
            "DELETE FROM public.items WHERE id = 2;",
        )
        applied = z4j_migrate.upgrade(database_url=app_url, migrations_dir=migrations).applied
        assert [run.id for run in applied] == ["0003_more"]
        assert digest.stored(app_url) == digest.expected(migrations)
        assert scalar(owner_url, "SELECT count(*) FROM public.items") == 2


# --------------------------------------------------------------------------- 4. a closed output pipe

PIPE_CLOSED = 141


def _piped(args: list[str], env: dict[str, str], *, first_line: bool) -> tuple[int, str, bytes]:
    """Run the CLI with stdout a pipe whose reader goes away: after one line, or before any output."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    full_env.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "z4j_migrate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline() if first_line else b""
    proc.stdout.close()
    err = proc.stderr.read().decode("utf-8", "replace")
    proc.stderr.close()
    return proc.wait(timeout=60), err, line


def test_a_closed_output_pipe_ends_quietly(database_url):
    """`check sql | head -1` and the like: no error message, no traceback, exit 0 or 141.

    Reading one line and then closing is racy (the rest may already sit in the pipe: exit 0), so
    it runs ten times; closing before any output always breaks the pipe, so that must be 141.
    Observed with click 8.5.1: exit 1 every time (click's own EPIPE handler exits 1 outside its
    `except` block, so cli._fail no longer sees the BrokenPipeError as the SystemExit's context).
    """
    sql_dir = str(REPO / "sql")
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": sql_dir}
    runs = {
        "check, one line read": [_piped(["check", sql_dir], {}, first_line=True) for _ in range(10)],
        "check, nothing read": [_piped(["check", sql_dir], {}, first_line=False) for _ in range(2)],
        "status, one line read": [_piped(["status"], env, first_line=True) for _ in range(3)],
        "status, nothing read": [_piped(["status"], env, first_line=False) for _ in range(2)],
    }
    seen = {name: sorted({code for code, _, _ in results}) for name, results in runs.items()}
    assert all(line.startswith((b"ok: ", b"warning  ")) for _, _, line in runs["check, one line read"])  # lint first
    assert all(line.startswith(b"database: ") for _, _, line in runs["status, one line read"])
    for results in runs.values():
        for _code, err, _line in results:
            assert "Traceback" not in err and "error" not in err.lower(), err
    assert all(set(codes) <= {0, PIPE_CLOSED} for codes in seen.values()), f"exit codes seen: {seen}"
    assert seen["check, nothing read"] == seen["status, nothing read"] == [PIPE_CLOSED], seen
