"""A corpus of bad inputs, one test each, all run through the CLI as an operator would.

Every case starts from the same database (two revisions applied), breaks one
thing (a file, a directive, the URL, a role, an environment value, an
argument, the directory), runs `z4j-migrate` and demands:

- the exit code documented in z4j_migrate/errors.py;
- exactly one line on stderr, starting `error: `, naming what is wrong and where;
- no traceback;
- the catalog and the bookkeeping identical to before (state_fingerprint).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from helpers import REPO, query, run_cli, state_fingerprint, write_pair
from pgauth import login_role, password_checked
from psycopg import sql

import z4j_migrate

BASE = [
    ("0001_users", "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);", "DROP TABLE users;"),
    ("0002_posts", "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);", "DROP TABLE posts;"),
]


@dataclass
class Ctx:
    folder: Path
    url: str
    dbname: str
    pg_server: object
    stack: ExitStack
    args: list[str] = field(default_factory=lambda: ["upgrade"])
    env: dict[str, str] = field(default_factory=dict)
    as_user: tuple[int, int] | None = None  # run the CLI as this uid/gid (permission cases, as root)

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def pair(self, rev_id: str, up: str | bytes, down: str | bytes = "SELECT 1;\n") -> None:
        self.write(f"{rev_id}.up.sql", up)
        self.write(f"{rev_id}.down.sql", down)

    def where(self, name: str, line: int | None = None) -> str:
        return f"{self.folder / name}:{line}:" if line else f"{self.folder / name}"

    def url_with(self, **params: str) -> str:
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        info.update(params)
        return psycopg.conninfo.make_conninfo(**info)


@dataclass(frozen=True)
class Bad:
    id: str
    code: int
    setup: Callable[[Ctx], None]
    needles: Callable[[Ctx], tuple[str, ...]]


CASES: list[Bad] = []


def case(code: int, needles: Callable[[Ctx], tuple[str, ...]]):
    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        CASES.append(Bad(fn.__name__, code, fn, needles))
        return fn

    return register


MALFORMED = "malformed revision file name"


# --------------------------------------------------------------------------- file names (exit 3)


def _bad_name(name: str) -> Callable[[Ctx], None]:
    def setup(ctx: Ctx) -> None:
        ctx.write(name, "-- message: m\nSELECT 1;\n")

    return setup


for _id, _name in [
    ("name_three_digits", "003_short.up.sql"),
    ("name_uppercase", "0003_AddThing.up.sql"),
    ("name_dash", "0003_add-thing.up.sql"),
    ("name_double_underscore", "0003_add__thing.up.sql"),
    ("name_trailing_underscore", "0003_thing_.up.sql"),
    ("name_without_kind", "0003_thing.sql"),
    ("name_wrong_kind", "0003_thing.upgrade.sql"),
    ("name_with_space", "0003_add thing.up.sql"),
    ("name_non_ascii", "0003_caf\u00e9.up.sql"),
    ("name_without_number", "add_thing.up.sql"),
]:
    CASES.append(Bad(_id, 3, _bad_name(_name), lambda ctx, n=_name: (MALFORMED, ctx.where(n))))


# --------------------------------------------------------------------------- pairing and numbering (exit 3)


@case(3, lambda ctx: ("has no matching 0003_lonely.down.sql", ctx.where("0003_lonely.up.sql")))
def unpaired_up(ctx: Ctx) -> None:
    ctx.write("0003_lonely.up.sql", "-- message: m\nCREATE TABLE lonely (id int);\n")


@case(3, lambda ctx: ("has no matching 0003_lonely.up.sql", ctx.where("0003_lonely.down.sql")))
def unpaired_down(ctx: Ctx) -> None:
    ctx.write("0003_lonely.down.sql", "DROP TABLE lonely;\n")


@case(3, lambda ctx: ("duplicate revision number 3: 0003_a and 0003_b",))
def duplicate_number(ctx: Ctx) -> None:
    ctx.pair("0003_a", "-- message: a\nCREATE TABLE a (id int);\n")
    ctx.pair("0003_b", "-- message: b\nCREATE TABLE b (id int);\n")


@case(3, lambda ctx: ("duplicate revision number 3", "00003_b"))
def duplicate_number_by_padding(ctx: Ctx) -> None:
    ctx.pair("0003_a", "-- message: a\nCREATE TABLE a (id int);\n")
    ctx.pair("00003_b", "-- message: b\nCREATE TABLE b (id int);\n")


@case(3, lambda ctx: ("duplicate revision number 2", "0002_other"))
def duplicate_of_an_applied_number(ctx: Ctx) -> None:
    ctx.pair("0002_other", "-- message: other\nCREATE TABLE other (id int);\n")


# --------------------------------------------------------------------------- directives (exit 3)


@case(3, lambda ctx: ("missing '-- message:", ctx.where("0003_x.up.sql", 1)))
def missing_message(ctx: Ctx) -> None:
    ctx.pair("0003_x", "CREATE TABLE x (id int);\n")


@case(3, lambda ctx: ("missing '-- message:", ctx.where("0003_x.up.sql", 1)))
def empty_message(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message:   \nCREATE TABLE x (id int);\n")


@case(3, lambda ctx: ("'-- message:' is given more than once", ctx.where("0003_x.up.sql", 2)))
def message_twice(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: one\n-- message: two\nCREATE TABLE x (id int);\n")


@case(3, lambda ctx: ("'-- transactional: maybe' must be true or false", ctx.where("0003_x.up.sql", 2)))
def transactional_not_boolean(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\n-- transactional: maybe\nCREATE TABLE x (id int);\n")


@case(3, lambda ctx: ("'-- transactional: yes' must be true or false", ctx.where("0003_x.down.sql", 1)))
def transactional_not_boolean_in_down(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- transactional: yes\nDROP TABLE x;\n")


@case(3, lambda ctx: ("unknown directive '-- author:'", ctx.where("0003_x.up.sql", 2)))
def unknown_directive(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\n-- author: bob\nCREATE TABLE x (id int);\n")


@case(3, lambda ctx: ("below the header", ctx.where("0003_x.up.sql", 3)))
def directive_below_header(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\n\n-- transactional: false\nCREATE INDEX CONCURRENTLY ix ON users (email);\n")


@case(3, lambda ctx: ("unknown directive '-- message:' in a .down.sql", ctx.where("0003_x.down.sql", 1)))
def up_directive_in_down_file(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- message: undo\nDROP TABLE x;\n")


@case(3, lambda ctx: ("irreversible down must not contain statements", ctx.where("0003_x.down.sql")))
def irreversible_with_statements(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- irreversible: no way back\nDROP TABLE x;\n")


@case(3, lambda ctx: ("'-- irreversible:' needs a message", ctx.where("0003_x.down.sql", 1)))
def irreversible_without_message(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- irreversible:\n")


@case(3, lambda ctx: ("'-- preflight:' needs a query", ctx.where("0003_x.down.sql", 1)))
def preflight_without_query(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- preflight:\nDROP TABLE x;\n")


@case(3, lambda ctx: ("has no SQL statements; write the undo", ctx.where("0003_x.down.sql")))
def down_without_sql(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- nothing to undo?\n")


# --------------------------------------------------------------------------- encoding and empty files (exit 3)


@case(3, lambda ctx: ("not valid UTF-8 (byte 0xff", ctx.where("0003_x.up.sql", 2)))
def invalid_utf8_in_up(ctx: Ctx) -> None:
    ctx.pair("0003_x", b"-- message: m\nCOMMENT ON TABLE users IS '\xff';\n")


@case(3, lambda ctx: ("not valid UTF-8 (byte 0xe9", ctx.where("0003_x.down.sql", 1)))
def invalid_utf8_latin1_in_down(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "DROP TABLE x; -- caf\u00e9\n".encode("latin-1"))


@case(3, lambda ctx: ("not valid UTF-8", ctx.where("0003_x.up.sql", 1)))
def utf16_file(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n".encode("utf-16"))


@case(3, lambda ctx: ("missing '-- message:", ctx.where("0003_x.up.sql", 1)))
def empty_up_file(ctx: Ctx) -> None:
    ctx.pair("0003_x", b"")


@case(3, lambda ctx: ("has no SQL statements", ctx.where("0003_x.down.sql")))
def empty_down_file(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", b"")


@case(3, lambda ctx: ("has no SQL statements", ctx.where("0003_x.up.sql")))
def comments_only_up_file(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\n-- CREATE TABLE x (id int);\n\n-- (forgot the SQL)\n")


@case(3, lambda ctx: ("NUL", ctx.where("0003_x.up.sql", 2)))
def nul_byte_in_sql(ctx: Ctx) -> None:
    ctx.pair("0003_x", b"-- message: m\nCREATE TABLE x (id int);\x00\n", "DROP TABLE x;\n")


# --------------------------------------------------------------------------- SQL (exit 3 before running, 1 at run time)


@case(3, lambda ctx: ("SQL syntax error at column", ctx.where("0003_x.up.sql", 4)))
def syntax_error_in_up(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (\n  id int,\n  name text,,\n);\n", "DROP TABLE x;\n")


@case(3, lambda ctx: ("SQL syntax error", ctx.where("0003_x.down.sql", 1)))
def syntax_error_in_down(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "DROPP TABLE x;\n")


@case(3, lambda ctx: ("transaction control (COMMIT", "transactional file", ctx.where("0003_x.up.sql", 3)))
def commit_in_transactional_file(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\nCOMMIT;\nCREATE TABLE y (id int);\n")


@case(3, lambda ctx: ("transaction control (BEGIN", "non-transactional file", ctx.where("0003_x.up.sql", 3)))
def begin_in_non_transactional_file(ctx: Ctx) -> None:
    ctx.pair(
        "0003_x",
        "-- message: m\n-- transactional: false\nBEGIN;\nCREATE INDEX CONCURRENTLY ix ON users (email);\n",
        "DROP INDEX CONCURRENTLY IF EXISTS ix;\n",
    )


@case(3, lambda ctx: ("transaction control (ROLLBACK", ctx.where("0003_x.down.sql", 2)))
def rollback_in_down_file(ctx: Ctx) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "DROP TABLE x;\nROLLBACK;\n")


@case(3, lambda ctx: ("DROP EXTENSION is not allowed in a down file", ctx.where("0003_x.down.sql", 2)))
def drop_extension_in_down_file(ctx: Ctx) -> None:
    ctx.pair(
        "0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "DROP TABLE x;\nDROP EXTENSION IF EXISTS pgcrypto;\n"
    )


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


# --------------------------------------------------------------------------- z4j-migrate.toml


@case(3, lambda ctx: ("cannot be parsed", ctx.where("z4j-migrate.toml")))
def config_file_syntax(ctx: Ctx) -> None:
    ctx.write("z4j-migrate.toml", "extensions = [\n")


@case(3, lambda ctx: ("unknown setting(s) ['schema']", ctx.where("z4j-migrate.toml")))
def config_file_unknown_key(ctx: Ctx) -> None:
    ctx.write("z4j-migrate.toml", 'schema = "x"\n')


@case(3, lambda ctx: ("is not an extension name", ctx.where("z4j-migrate.toml")))
def config_file_hostile_extension_name(ctx: Ctx) -> None:
    ctx.write("z4j-migrate.toml", 'extensions = ["pgcrypto; DROP TABLE users"]\n')


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


# --------------------------------------------------------------------------- URLs, hosts, credentials


@case(2, lambda ctx: ("Z4J_DATABASE_URL", "unsupported URL scheme 'mysql'"))
def url_wrong_scheme(ctx: Ctx) -> None:
    ctx.env["Z4J_DATABASE_URL"] = "mysql://root@127.0.0.1/app"


@case(2, lambda ctx: ("--database-url", "is neither a postgresql:// URL nor a libpq"))
def url_garbage(ctx: Ctx) -> None:
    ctx.args = ["upgrade", "--database-url", "localhost"]


@case(2, lambda ctx: ("Z4J_DATABASE_URL", "port '99999' is not a number between 1 and 65535"))
def url_port_out_of_range(ctx: Ctx) -> None:
    ctx.env["Z4J_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:99999/app"


@case(2, lambda ctx: ("Z4J_DATABASE_URL", "cannot be parsed", "invalid percent-encoded token"))
def url_bad_percent_encoding(ctx: Ctx) -> None:
    ctx.env["Z4J_DATABASE_URL"] = "postgresql://postgres@127.0.0.1/app%zz"


@case(2, lambda ctx: ("Z4J_DATABASE_URL", "cannot be parsed"))
def url_unknown_parameter(ctx: Ctx) -> None:
    ctx.env["Z4J_DATABASE_URL"] = "postgresql://postgres@127.0.0.1/app?colour=blue"


@case(2, lambda ctx: ("No database given", "Z4J_DATABASE_URL"))
def url_empty(ctx: Ctx) -> None:
    ctx.env["Z4J_DATABASE_URL"] = "   "


@case(7, lambda ctx: ("cannot connect to postgresql://postgres@no-such-host.invalid", "no-such-host.invalid"))
def unknown_host(ctx: Ctx) -> None:
    ctx.env["Z4J_DATABASE_URL"] = "postgresql://postgres@no-such-host.invalid:5432/app"


@case(7, lambda ctx: ("cannot connect to postgresql://postgres@127.0.0.1:1/", "refused"))
def nothing_listening(ctx: Ctx) -> None:
    ctx.env["Z4J_DATABASE_URL"] = "postgresql://postgres@127.0.0.1:1/app"


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
    with psycopg.connect(ctx.url, autocommit=True) as conn:  # start from an empty database
        conn.execute(
            "DROP TABLE posts, users, _yoyo_migration, _yoyo_log, _yoyo_version, _z4j_migrate_revision,"
            " _z4j_migrate_progress"
        )
        conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
    ctx.env["Z4J_DATABASE_URL"] = ctx.url_with(user=role)


# --------------------------------------------------------------------------- environment values (exit 2)


def _env_case(name: str, value: str, *needles: str) -> None:
    def setup(ctx: Ctx) -> None:
        ctx.env[name] = value

    CASES.append(Bad(f"env_{name.lower()}_{value.strip() or 'blank'}", 2, setup, lambda ctx: (name, *needles)))


_env_case("Z4J_LOCK_TIMEOUT", "soon", "'soon' is not a number of seconds")
_env_case("Z4J_LOCK_TIMEOUT", "-5", "must be a finite number of seconds")
_env_case("Z4J_LOCK_TIMEOUT", "nan", "must be a finite number of seconds")
_env_case("Z4J_LOCK_TIMEOUT", "inf", "must be a finite number of seconds")


@case(2, lambda ctx: ("/nonexistent/revisions does not exist", "Z4J_MIGRATIONS_DIR"))
def env_migrations_dir_missing(ctx: Ctx) -> None:
    ctx.env["Z4J_MIGRATIONS_DIR"] = "/nonexistent/revisions"


# --------------------------------------------------------------------------- CLI arguments (exit 2)


def _arg_case(case_id: str, args: list[str], *needles: str) -> None:
    def setup(ctx: Ctx) -> None:
        ctx.args = list(args)

    CASES.append(Bad(case_id, 2, setup, lambda ctx: needles))


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


# --------------------------------------------------------------------------- the migrations directory


@case(2, lambda ctx: ("/nonexistent/revisions does not exist", "--migrations-dir"))
def dir_does_not_exist(ctx: Ctx) -> None:
    ctx.args = ["upgrade", "--migrations-dir", "/nonexistent/revisions"]


@case(2, lambda ctx: ("is not a directory", "0001_users.up.sql"))
def dir_is_a_file(ctx: Ctx) -> None:
    ctx.env["Z4J_MIGRATIONS_DIR"] = str(ctx.folder / "0001_users.up.sql")


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
    name = f"bad_{uuid.uuid4().hex[:12]}"
    query(pg_server.admin_url, f"CREATE DATABASE {name}")
    try:
        yield pg_server.url_for(name)
    finally:
        query(pg_server.admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


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
        yield Ctx(folder, database_url, dbname, pg_server, stack)
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


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
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
