"""A corpus of bad inputs, one test each, all run through the CLI as an operator would.

Every case starts from the same database (two revisions applied), breaks one
thing (a file, the URL, a role, an argument, the directory), runs `z4j-migrate`
and demands:

- the exit code documented in z4j_migrate/errors.py;
- exactly one line on stderr, starting `error: `, naming what is wrong and where;
- no traceback;
- the catalog and the bookkeeping identical to before (state_fingerprint).

The cases that fail before any database is touched (file names, pairing, directives,
encoding, forbidden SQL, z4j-migrate.toml, bad URLs and environment values) live in
tests/bad_inputs.py and run in-process in tests/unit/test_bad_input_fast.py; here
one of them per exit code runs end to end, beside the cases that need a database,
the CLI's argument parsing or another user.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from bad_inputs import BASE, PURE, Bad, Scene, setting_case
from bad_inputs import case as register_case
from helpers import REPO, query, run_cli, state_fingerprint, write_pair
from pgauth import login_role, password_checked

import z4j_migrate


@dataclass(kw_only=True)
class Ctx(Scene):
    url: str
    dbname: str
    pg_server: object
    stack: ExitStack
    as_user: tuple[int, int] | None = None  # run the CLI as this uid/gid (permission cases, as root)

    def url_with(self, **params: str) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        info.update(params)
        return psycopg.conninfo.make_conninfo(**info)


CASES: list[Bad] = []  # the cases that need the database, the CLI or another user
case = functools.partial(register_case, into=CASES)
setting = functools.partial(setting_case, into=CASES)
# One offline case per exit code, end to end: the CLI turns the library's error into its exit
# code and one line, and touches nothing.
END_TO_END = {"syntax_error_in_up": 3, "url_wrong_scheme": 2}


# --------------------------------------------------------------------------- SQL that fails at run time (exit 1)


@case(1, lambda ctx: ("boom at statement 3", ctx.where("0003_raise.up.sql"), "rolled back"))
def revision_raises_midway(ctx: Ctx) -> None:
    ctx.pair(
        "0003_raise",
        "-- message: m\nCREATE TABLE half (id int);\nINSERT INTO half VALUES (1);\n"
        "DO $$ BEGIN RAISE EXCEPTION 'boom at statement 3'; END $$;\nCREATE TABLE never (id int);\n",
        "DROP TABLE half;\n",
    )


@case(1, lambda ctx: ("division by zero", "[SQLSTATE 22012]", ctx.where("0003_div.up.sql"), "0003_div was rolled back"))
def revision_fails_at_run_time(ctx: Ctx) -> None:
    ctx.pair("0003_div", "-- message: m\nALTER TABLE users ADD COLUMN score int;\nSELECT 1 / 0;\n")
    ctx.pair("0004_after", "-- message: m\nCREATE TABLE after_div (id int);\n", "DROP TABLE after_div;\n")


# --------------------------------------------------------------------------- z4j-migrate.toml (exit 1)


@case(1, lambda ctx: ("extension no_such_extension_zz is not available",))
def config_file_unavailable_extension(ctx: Ctx) -> None:
    ctx.write("z4j-migrate.toml", 'extensions = ["no_such_extension_zz"]\n')


# --------------------------------------------------------------------------- drift (exit 5)


@case(5, lambda ctx: ("0003_early would be applied out of order", "0004_late"))
def out_of_order_new_revision(ctx: Ctx) -> None:
    ctx.pair("0004_late", "-- message: late\nCREATE TABLE late (id int);\n", "DROP TABLE late;\n")
    z4j_migrate.upgrade(database_url=ctx.url, migrations_dir=ctx.folder)
    ctx.pair("0003_early", "-- message: early\nCREATE TABLE early (id int);\n", "DROP TABLE early;\n")


@case(5, lambda ctx: ("changed on disk since they were applied", ctx.where("0002_posts.up.sql")))
def edited_applied_up_file(ctx: Ctx) -> None:
    path = ctx.folder / "0002_posts.up.sql"
    path.write_text(path.read_text().replace("bigint REFERENCES", "int REFERENCES"))


@case(5, lambda ctx: ("changed on disk since they were applied", ctx.where("0001_users.down.sql")))
def edited_applied_down_file(ctx: Ctx) -> None:
    (ctx.folder / "0001_users.down.sql").write_text("DROP TABLE users CASCADE;\n")


@case(5, lambda ctx: ("cannot downgrade", "0002_posts"))
def downgrade_across_an_edited_revision(ctx: Ctx) -> None:
    (ctx.folder / "0002_posts.down.sql").write_text("DROP TABLE IF EXISTS posts;\n")
    ctx.args = ["downgrade", "--steps", "1", "--yes"]


# --------------------------------------------------------------------------- hosts, credentials, privileges (exit 7)


setting(
    "unknown_host",
    7,
    ("cannot connect to postgresql://postgres@no-such-host.invalid", "no-such-host.invalid"),
    env={"Z4J_DATABASE_URL": "postgresql://postgres@no-such-host.invalid:5432/app"},
)
setting(
    "nothing_listening",
    7,
    ("cannot connect to postgresql://postgres@127.0.0.1:1/", "refused"),
    env={"Z4J_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/app"},
)


@case(7, lambda ctx: ("cannot connect to", ":***@", "password authentication failed", "Check the user, password"))
def wrong_password(ctx: Ctx) -> None:
    role = ctx.stack.enter_context(login_role(ctx.pg_server, password="right-Pw-1", prefix="pw"))
    ctx.stack.enter_context(password_checked(ctx.pg_server, role))
    info = psycopg.conninfo.conninfo_to_dict(ctx.url)
    ctx.env["Z4J_DATABASE_URL"] = f"postgresql://{role}:wrong-Pw-2@{info['host']}:{info['port']}/{ctx.dbname}"


@case(7, lambda ctx: ('database "no_such_db_zz" does not exist',))
def database_does_not_exist(ctx: Ctx) -> None:
    ctx.env["Z4J_DATABASE_URL"] = ctx.url_with(dbname="no_such_db_zz")


@case(7, lambda ctx: ('role "no_such_role_zz" does not exist',))
def role_does_not_exist(ctx: Ctx) -> None:
    ctx.env["Z4J_DATABASE_URL"] = ctx.url_with(user="no_such_role_zz")


@case(7, lambda ctx: ("permission denied for database", ctx.dbname))
def role_without_connect_privilege(ctx: Ctx) -> None:
    role = ctx.stack.enter_context(login_role(ctx.pg_server, prefix="noconn"))
    query(ctx.pg_server.admin_url, f'REVOKE CONNECT ON DATABASE "{ctx.dbname}" FROM PUBLIC')
    ctx.env["Z4J_DATABASE_URL"] = ctx.url_with(user=role)


@case(7, lambda ctx: ("SELECT", "public._yoyo_migration", "GRANT"))
def role_cannot_read_the_bookkeeping(ctx: Ctx) -> None:
    role = ctx.stack.enter_context(login_role(ctx.pg_server, prefix="noread"))
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "DROP TABLE x;\n")
    ctx.env["Z4J_DATABASE_URL"] = ctx.url_with(user=role)


@case(7, lambda ctx: ("CREATE", "schema public", "GRANT"))
def role_cannot_create_the_bookkeeping(ctx: Ctx) -> None:
    role = ctx.stack.enter_context(login_role(ctx.pg_server, prefix="nocreate"))
    _empty(ctx.url)  # start from an empty database
    query(ctx.url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    ctx.env["Z4J_DATABASE_URL"] = ctx.url_with(user=role)


# --------------------------------------------------------------------------- CLI arguments (exit 2)


def _arg_case(case_id: str, args: list[str], *needles: str) -> None:
    setting(case_id, 2, needles, args=args)


_arg_case("arg_lock_timeout_negative", ["upgrade", "--lock-timeout", "-1"], "--lock-timeout -1")
_arg_case("arg_statement_lock_timeout_text", ["upgrade", "--statement-lock-timeout", "x"], "--statement-lock-timeout")
_arg_case("arg_wait_text", ["upgrade", "--wait", "forever"], "--wait", "forever")
_arg_case("arg_steps_zero", ["downgrade", "--steps", "0", "--yes"], "--steps", "0")
_arg_case("arg_to_and_steps", ["downgrade", "--to", "base", "--steps", "1"], "exactly one of --to REV|base or --steps")
_arg_case("arg_unknown_option", ["upgrade", "--colour"], "No such option", "--colour")
_arg_case("arg_extra_argument", ["upgrade", "now"], "unexpected extra argument", "now")
_arg_case("arg_upgrade_to_unknown_revision", ["upgrade", "--to", "latest"], "unknown revision 'latest'")
_arg_case("arg_downgrade_to_not_applied", ["downgrade", "--to", "7", "--yes"], "--to 7", "not applied")
_arg_case("arg_hostile_schema", ["upgrade", "--schema", "public; DROP TABLE users; --"], "not a plain identifier")
_arg_case("arg_schema_too_long", ["status", "--schema", "s" * 64], "not a plain identifier")


# --------------------------------------------------------------------------- the migrations directory, as another user


def _unprivileged(ctx: Ctx) -> None:
    """As root every file is readable: run the CLI as the server's service user instead."""
    if os.geteuid() != 0:
        return
    import pwd

    from z4j_migrate.localpg import SERVICE_USER

    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pytest.skip(f"running as root and there is no {SERVICE_USER} user to drop privileges to")
    ctx.as_user = (entry.pw_uid, entry.pw_gid)


@case(2, lambda ctx: ("cannot be read (permission denied)", str(ctx.folder)))
def dir_unreadable(ctx: Ctx) -> None:
    _unprivileged(ctx)
    ctx.folder.chmod(0o300)  # searchable for the owner, not listable by anyone else


@case(3, lambda ctx: ("cannot be read (Permission denied)", ctx.where("0002_posts.up.sql")))
def revision_file_unreadable(ctx: Ctx) -> None:
    _unprivileged(ctx)
    (ctx.folder / "0002_posts.up.sql").chmod(0o000)


# --------------------------------------------------------------------------- the harness


@pytest.fixture(scope="module")
def corpus_db(pg_server):
    """One database for the corpus, emptied before each case (CREATE DATABASE costs ~0.3 s a case)."""
    with pg_server.database("bad_") as url:
        yield url


def _empty(url: str) -> None:
    """Back to a new database's state: a public schema owned by the database owner, usable by all."""
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    query(
        url,
        "DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION pg_database_owner; "
        f'GRANT USAGE ON SCHEMA public TO PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE "{dbname}" TO PUBLIC',
    )


@pytest.fixture
def world(pg_server, corpus_db):
    """The migrations dir in a world-traversable temp dir (permission cases run as another user)."""
    database_url = corpus_db
    _empty(database_url)
    base = Path(tempfile.mkdtemp(prefix="z4j-bad-"))
    base.chmod(0o755)
    folder = base / "migrations"
    folder.mkdir()
    for rev_id, up, down in BASE:
        write_pair(folder, rev_id, up, down)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=folder)
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with ExitStack() as stack:
        yield Ctx(folder, url=database_url, dbname=dbname, pg_server=pg_server, stack=stack)
        folder.chmod(0o755)
        for child in folder.iterdir():
            child.chmod(0o644)
    shutil.rmtree(base, ignore_errors=True)


# Started as root, drops to the service user only after the interpreter and every module it
# needs are loaded (the venv's interpreter may live under a directory that user cannot reach).
_DROP_AND_RUN = """
import os, sys
import click, psycopg, z4j_migrate.api, z4j_migrate.cli, z4j_migrate.revisions
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([]); os.setgid(gid); os.setuid(uid)
z4j_migrate.cli.main(sys.argv[3:])
"""


def _run(ctx: Ctx) -> subprocess.CompletedProcess[str]:
    env = {"Z4J_DATABASE_URL": ctx.url, "Z4J_MIGRATIONS_DIR": str(ctx.folder), **ctx.env}
    if ctx.as_user is None:
        return run_cli(*ctx.args, env=env, timeout=60)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    full_env.update(env)
    uid, gid = ctx.as_user
    return subprocess.run(
        [sys.executable, "-c", _DROP_AND_RUN, str(uid), str(gid), *ctx.args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        cwd=REPO,
    )


RUN_HERE = CASES + [c for c in PURE if c.id in END_TO_END]


def test_the_corpus_is_big_enough():
    """Offline and here together: every case once, and one offline case per exit code end to end."""
    everything = [c.id for c in CASES + PURE]
    assert len(everything) >= 90 and len(set(everything)) == len(everything)
    assert {c.id: c.code for c in PURE if c.id in END_TO_END} == END_TO_END
    assert set(END_TO_END.values()) == {c.code for c in PURE}


@pytest.mark.parametrize("bad", RUN_HERE, ids=[c.id for c in RUN_HERE])
def test_bad_input(world: Ctx, bad: Bad):
    bad.setup(world)
    before = state_fingerprint(world.url)
    r = _run(world)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == bad.code, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for needle in bad.needles(world):
        assert needle in lines[0], (needle, lines[0])
    assert state_fingerprint(world.url) == before


def test_auto_migrate_switch_rejects_anything_but_true_or_false(database_url, migrations, monkeypatch):
    """Z4J_AUTO_MIGRATE is read by the start-up call, not the CLI: a typed error reaches the application."""
    write_pair(migrations, *BASE[0])
    for value in ("yes", "1", "on", "tru e"):
        monkeypatch.setenv("Z4J_AUTO_MIGRATE", value)
        with pytest.raises(z4j_migrate.ConfigError, match=f"Z4J_AUTO_MIGRATE={value!r} is not valid"):
            z4j_migrate.migrate_on_startup(database_url, migrations)
    assert query(database_url, "SELECT to_regclass('public._yoyo_migration')") == [(None,)]
