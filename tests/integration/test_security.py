"""Security: credentials never leak, least privilege works, search_path tricks and hostile identifiers fail.

Complements test_engine_pg.py::test_password_never_appears_in_any_output (trust auth,
failure paths) with a role whose password the server really checks, success paths,
parse errors that quote the raw password, the server's own statement log, and
tracebacks as an application would log them.
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import psycopg
import pytest
from helpers import query, run_cli, scalar, state_fingerprint, write_pair
from pgauth import login_role, password_checked
from psycopg import sql

import z4j_migrate
from z4j_migrate import state
from z4j_migrate.catalog import BOOKKEEPING_TABLES
from z4j_migrate.config import Settings, parse_database_url, settings_from_env

SECRET = "Xy7-Secret-Pw-3141"  # distinctive: appears nowhere unless we leak it

REVISIONS = [
    (
        "0001_users",
        "CREATE TABLE public.users (id bigint PRIMARY KEY, email text NOT NULL);",
        "DROP TABLE public.users;",
    ),
    (
        "0002_posts",
        "CREATE TABLE public.posts (id bigint PRIMARY KEY, user_id bigint REFERENCES public.users);",
        "DROP TABLE public.posts;",
    ),
]


def fill(folder: Path, revisions=REVISIONS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for rev_id, up, down in revisions:
        write_pair(folder, rev_id, up, down)
    return folder


@pytest.fixture
def owned_db(pg_server):
    """A database owned by a non-superuser role whose password the server checks."""
    with (
        login_role(pg_server, password=SECRET, prefix="owner") as role,
        pg_server.database("sec_", owner=role) as url,
        password_checked(pg_server, role),
    ):
        yield role, psycopg.conninfo.conninfo_to_dict(url)["dbname"]


def _url(pg_server, role: str, dbname: str, password: str = SECRET) -> str:
    info = psycopg.conninfo.conninfo_to_dict(pg_server.admin_url)
    return f"postgresql://{role}:{password}@{info['host']}:{info['port']}/{dbname}"


# --------------------------------------------------------------------------- credentials


def test_password_appears_nowhere_in_success_and_failure_paths(pg_server, owned_db, tmp_path, caplog):
    role, dbname = owned_db
    url = _url(pg_server, role, dbname)
    folder = fill(tmp_path / "ok")
    broken = fill(tmp_path / "broken")
    write_pair(broken, "0003_fails", "SELECT * FROM public.no_such_table;", "SELECT 1;")
    log_offset = pg_server.local.log_path.stat().st_size if pg_server.local else 0

    outputs: list[str] = []

    def cli(*args: str, migrations: Path = folder, database_url: str = url, expect: int | None = None) -> None:
        r = run_cli(*args, env={"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)})
        label = " ".join(a for a in args if SECRET not in a)  # the output, not our own command line
        outputs.append(f"$ {label} -> {r.returncode}\n{r.stdout}{r.stderr}")
        if expect is not None:
            assert r.returncode == expect, outputs[-1]

    # Success paths, authenticated with the real password.
    cli("upgrade", "--dry-run", expect=0)
    cli("-v", "upgrade", expect=0)
    cli("status", expect=0)
    cli("status", "--json", expect=0)
    cli("--status", "-v", expect=0)
    cli("schema", expect=0)
    cli("downgrade", "--steps", "1", "--dry-run", expect=0)
    cli("-v", "downgrade", "--to", "base", "--yes", expect=0)
    cli("upgrade", expect=0)
    cli("upgrade", "--database-url", url, expect=0)  # the password on the command line as well
    # Failure paths: SQL failure, lock timeout, drift, wrong password, parse errors quoting the password.
    cli("-v", "upgrade", migrations=broken, expect=1)
    with psycopg.connect(url, autocommit=True) as holder:
        from z4j_migrate.lock import lock_key

        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("public"),))
        cli("-v", "upgrade", "--lock-timeout", "0.2", migrations=broken, expect=6)
    cli("-v", "upgrade", database_url=_url(pg_server, role, dbname, password=SECRET + "-wrong"), expect=7)
    cli("-v", "status", database_url=_url(pg_server, role, "no_such_db_q"), expect=7)
    cli("-v", "upgrade", database_url=url.replace(SECRET, SECRET + "%zz"), expect=2)
    cli("-v", "upgrade", database_url=url.replace(SECRET, SECRET + " x"), expect=2)
    cli("-v", "upgrade", database_url=f"host=127.0.0.1 port=1 password='{SECRET}' dbname=x", expect=7)
    cli("-v", "upgrade", database_url=f"host=127.0.0.1 port=abc password={SECRET}", expect=2)

    assert sum("***" in o for o in outputs) >= 3  # masked, not dropped: the operator sees a password was given
    leaked = [o for o in outputs if SECRET in o]
    assert not leaked, leaked[0]

    # The library: exceptions as an application sees and logs them, and every log record.
    caplog.set_level(logging.DEBUG)  # every logger: ours, yoyo's, psycopg's
    settings = settings_from_env(url, folder)
    assert SECRET not in repr(settings) and SECRET not in str(settings.database)
    failing = [
        lambda: z4j_migrate.upgrade(database_url=url, migrations_dir=broken),
        lambda: z4j_migrate.migrate_on_startup(_url(pg_server, role, dbname, SECRET + "-wrong"), folder),
        lambda: z4j_migrate.status(database_url=url.replace(SECRET, SECRET + "%zz"), migrations_dir=folder),
        lambda: z4j_migrate.downgrade(database_url=url.replace("127.0.0.1", "no-such-host.invalid"), to="base"),
    ]
    for call in failing:
        with pytest.raises(z4j_migrate.Z4jMigrateError) as info:
            call()
        exc = info.value
        shown = "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args) + str(exc)
        assert SECRET not in shown, shown
        logging.getLogger("app").exception("migration failed")  # what an application would do
    z4j_migrate.migrate_on_startup(url, folder)
    assert SECRET not in caplog.text

    # Nor did any statement we sent carry it (the test cluster logs every statement).
    if pg_server.local is not None:
        with pg_server.local.log_path.open("rb") as fh:
            fh.seek(log_offset)
            server_log = fh.read().decode("utf-8", "replace")
        assert role in server_log and SECRET not in server_log


# --------------------------------------------------------------------------- least privilege

EXTENSIONS = 'extensions = ["pgcrypto", "dblink"]\n'  # dblink is not trusted: only a superuser creates it
USES_EXTENSIONS = [
    (
        "0001_tokens",
        "CREATE TABLE public.tokens (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
        "digest bytea NOT NULL DEFAULT digest('x', 'sha256'));",
        "DROP TABLE public.tokens;",
    ),
    ("0002_index", "CREATE INDEX ix_tokens_digest ON public.tokens (digest);", "DROP INDEX public.ix_tokens_digest;"),
]


def test_database_owner_upgrades_and_downgrades_with_preinstalled_extensions(pg_server, tmp_path):
    folder = fill(tmp_path / "m", USES_EXTENSIONS)
    (folder / "z4j-migrate.toml").write_text(EXTENSIONS)
    with login_role(pg_server, prefix="owner") as role, pg_server.database("sec_", owner=role) as dba_url:
        query(dba_url, "CREATE EXTENSION pgcrypto; CREATE EXTENSION dblink")  # the DBA
        url = psycopg.conninfo.make_conninfo(dba_url, user=role)
        assert scalar(url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
        result = z4j_migrate.upgrade(database_url=url, migrations_dir=folder)
        assert [r.id for r in result.applied] == ["0001_tokens", "0002_index"] and not result.created_extensions
        assert scalar(url, "SELECT tableowner FROM pg_tables WHERE tablename = '_yoyo_migration'") == role
        query(url, "INSERT INTO public.tokens DEFAULT VALUES")
        z4j_migrate.downgrade(database_url=url, migrations_dir=folder, to="base")
        assert scalar(url, "SELECT to_regclass('public.tokens')") is None
        assert scalar(url, "SELECT count(*) FROM pg_extension WHERE extname IN ('pgcrypto', 'dblink')") == 2
        r = run_cli("upgrade", env={"Z4J_DATABASE_URL": url, "Z4J_MIGRATIONS_DIR": str(folder)})
        assert r.returncode == 0, r.stderr


def test_database_owner_without_the_extensions_gets_told_what_privilege_is_missing(pg_server, tmp_path):
    folder = fill(tmp_path / "m", USES_EXTENSIONS)
    (folder / "z4j-migrate.toml").write_text(EXTENSIONS)
    with login_role(pg_server, prefix="owner") as role, pg_server.database("sec_", owner=role) as dba_url:
        url = psycopg.conninfo.make_conninfo(dba_url, user=role)
        with pytest.raises(z4j_migrate.Z4jMigrateError) as info:
            z4j_migrate.upgrade(database_url=url, migrations_dir=folder)
        message = str(info.value)
        assert "extension dblink is not installed" in message and role in message
        assert "superuser" in message and "CREATE EXTENSION IF NOT EXISTS dblink" in message
        assert info.value.exit_code == 7
        r = run_cli("upgrade", env={"Z4J_DATABASE_URL": url, "Z4J_MIGRATIONS_DIR": str(folder)})
        assert r.returncode == 7 and "dblink" in r.stderr and "Traceback" not in r.stderr
        assert scalar(url, "SELECT to_regclass('public.tokens')") is None  # no revision ran
        # Extensions are ensured in one transaction: pgcrypto (trusted, the owner could create it)
        # is not left behind by a run that stopped at dblink.
        assert scalar(url, "SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'") == 0
        query(dba_url, "CREATE EXTENSION dblink")  # the DBA does as told
        assert len(z4j_migrate.upgrade(database_url=url, migrations_dir=folder).applied) == 2


# --------------------------------------------------------------------------- search_path tricks

# Every function and catalog relation our bookkeeping, lock and status queries use, shadowed in a
# schema that comes *before* pg_catalog on the search_path. Each decoy records that it was used.
SHADOWED_FUNCTIONS = [
    ("pg_try_advisory_lock", "bigint", "boolean", "true"),
    ("pg_advisory_lock", "bigint", "void", ""),
    ("pg_advisory_unlock", "bigint", "boolean", "true"),
    ("to_regclass", "text", "regclass", "NULL"),
    ("now", "", "timestamptz", "'2000-01-01'"),
    ("timezone", "text, timestamptz", "timestamp", "'2000-01-01'"),
    ("pg_backend_pid", "", "integer", "0"),
    ("current_database", "", "name", "'decoy'"),
    # what the head digest's rebuild uses (the trigger function pins its own search_path)
    ("sha256", "bytea", "bytea", "'\\x00'::bytea"),
    ("encode", "bytea, text", "text", "'00'"),
    ("convert_to", "text, name", "bytea", "'\\x00'::bytea"),
    ("repeat", "text, integer", "text", "'0'"),
]
SHADOWED_RELATIONS = [
    "pg_locks",
    "pg_stat_activity",
    "pg_database",
    "pg_class",
    "pg_index",
    "pg_namespace",
    "pg_extension",
]
DECOY_BOOKKEEPING = list(state.TABLES)  # a decoy of every bookkeeping table z4j-migrate uses


def _plant_decoys(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE SCHEMA evil; CREATE TABLE evil.canary (name text, at timestamptz DEFAULT pg_catalog.now());"
            "CREATE FUNCTION evil.hit(name text) RETURNS boolean LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO evil.canary (name) VALUES (name); RETURN true; END $$;"
        )
        for name, args, returns, value in SHADOWED_FUNCTIONS:
            conn.execute(
                f"CREATE FUNCTION evil.{name}({args}) RETURNS {returns} LANGUAGE plpgsql AS "
                f"$$ BEGIN PERFORM evil.hit('{name}'); RETURN {value}; END $$"
            )
        for rel in SHADOWED_RELATIONS:
            conn.execute(f"CREATE VIEW evil.{rel} AS SELECT * FROM pg_catalog.{rel} WHERE evil.hit('{rel}')")
        for table in DECOY_BOOKKEEPING:  # claims everything is applied, so a run that reads it does nothing
            conn.execute(f"CREATE TABLE evil.{table} (LIKE pg_catalog.pg_class)")
            conn.execute(f"CREATE RULE r AS ON INSERT TO evil.{table} DO INSTEAD SELECT evil.hit('{table}')")
        conn.execute(
            "DROP TABLE evil._yoyo_migration; CREATE VIEW evil._yoyo_migration AS "
            "SELECT 'h'::varchar(64) AS migration_hash, v.id::varchar(255) AS migration_id, "
            "NULL::timestamp AS applied_at_utc FROM (VALUES ('0001_users'), ('0002_posts'), ('0003_cic'), "
            "('0004_alter')) v(id) WHERE evil.hit('_yoyo_migration')"
        )
        dbname = conn.info.dbname
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET search_path = evil, pg_catalog, public").format(sql.Identifier(dbname))
        )


def test_search_path_decoys_are_never_used(database_url, migrations):
    import threading

    fill(migrations)
    write_pair(
        migrations,
        "0003_cic",
        "-- message: cic\n-- transactional: false\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_posts_user ON public.posts (user_id);\n"
        "CREATE TABLE IF NOT EXISTS public.after_cic (id int);",
        "DROP TABLE IF EXISTS public.after_cic;\nDROP INDEX CONCURRENTLY IF EXISTS public.ix_posts_user;",
    )
    _plant_decoys(database_url)
    assert scalar(database_url, "SHOW search_path") == "evil, pg_catalog, public"
    url = database_url

    # Apply, read status, downgrade, apply again.
    assert [r.id for r in z4j_migrate.upgrade(database_url=url, migrations_dir=migrations).applied] == [
        "0001_users",
        "0002_posts",
        "0003_cic",
    ]
    report = z4j_migrate.status(database_url=url, migrations_dir=migrations)
    assert [r.state for r in report.revisions] == ["applied"] * 3 and report.lock_holder is None
    z4j_migrate.downgrade(database_url=url, migrations_dir=migrations, to="base")
    z4j_migrate.upgrade(database_url=url, migrations_dir=migrations)

    # Lock contention: the waiter looks up the holder.
    from z4j_migrate.lock import lock_key

    write_pair(migrations, "0004_alter", "ALTER TABLE public.users ADD COLUMN nick text;", "SELECT 1;")
    with psycopg.connect(url, autocommit=True, application_name="holder") as holder:
        holder.execute("SELECT pg_catalog.pg_advisory_lock(%s)", (lock_key("public"),))
        with pytest.raises(z4j_migrate.LockTimeout, match="application_name 'holder'"):
            z4j_migrate.upgrade(database_url=url, migrations_dir=migrations, lock_timeout_s=0.3)
        assert z4j_migrate.status(database_url=url, migrations_dir=migrations).lock_holder is not None
    # A table lock held by the application: the runner names the table.
    with psycopg.connect(url, application_name="busy-app") as app:
        app.execute("SELECT * FROM public.users")
        with pytest.raises(z4j_migrate.LockTimeout, match="table users held by pid"):
            z4j_migrate.upgrade(
                database_url=url, migrations_dir=migrations, statement_lock_timeout_s=0.1, lock_retries=0
            )
        threading.Timer(0.3, app.rollback).start()
        z4j_migrate.upgrade(database_url=url, migrations_dir=migrations, statement_lock_timeout_s=0.2, lock_retries=5)
    # A failing non-transactional revision: the journal and the INVALID-index lookup.
    query(url, "INSERT INTO public.users VALUES (1, 'a'), (2, 'a')")
    write_pair(
        migrations,
        "0005_unique",
        "-- message: unique\n-- transactional: false\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS ux_email ON public.users (email);",
        "DROP INDEX CONCURRENTLY IF EXISTS public.ux_email;",
    )
    with pytest.raises(z4j_migrate.IncompleteRevision, match="public.ux_email"):
        z4j_migrate.upgrade(database_url=url, migrations_dir=migrations)
    report = z4j_migrate.status(database_url=url, migrations_dir=migrations)
    assert report.invalid_indexes == ("public.ux_email",)
    r = run_cli("status", "--json", env={"Z4J_DATABASE_URL": url, "Z4J_MIGRATIONS_DIR": str(migrations)})
    assert r.returncode == 0, r.stderr

    assert query(url, "SELECT name, count(*) FROM evil.canary GROUP BY 1") == []
    assert [r[0] for r in query(url, "SELECT migration_id FROM public._yoyo_migration ORDER BY 1")] == [
        "0001_users",
        "0002_posts",
        "0003_cic",
        "0004_alter",
    ]


# --------------------------------------------------------------------------- identifiers from configuration

HOSTILE_SCHEMAS = [
    "public; DROP TABLE users; --",
    'x"; DROP TABLE users; --',
    "public._yoyo_migration",
    "pg_catalog.x",
    "a b",
    "",
    "1abc",
    "s" * 64,
    "x\x00y",
    "public--",
    "\u03a9mega",
    "$1",
]


@pytest.mark.parametrize("schema", HOSTILE_SCHEMAS, ids=range(len(HOSTILE_SCHEMAS)))
def test_hostile_schema_names_are_refused_before_anything_runs(database_url, migrations, schema):
    fill(migrations)
    z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations)
    before = state_fingerprint(database_url)
    with pytest.raises(z4j_migrate.ConfigError, match="not a plain identifier"):
        Settings(parse_database_url(database_url), migrations, schema=schema)
    for call in (z4j_migrate.upgrade, z4j_migrate.status):
        with pytest.raises(z4j_migrate.ConfigError, match="not a plain identifier"):
            call(database_url=database_url, migrations_dir=migrations, schema=schema)
    if "\x00" not in schema:  # argv cannot carry a NUL
        r = run_cli(
            "upgrade", "--schema", schema, env={"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
        )
        assert r.returncode == 2 and "not a plain identifier" in r.stderr and "Traceback" not in r.stderr
    assert state_fingerprint(database_url) == before


def test_valid_but_awkward_identifiers_are_quoted(database_url, migrations):
    """A reserved word in mixed case only works if every use is quoted; so does a hyphenated extension."""
    fill(migrations)
    (migrations / "z4j-migrate.toml").write_text('extensions = ["uuid-ossp"]\n')
    query(database_url, 'CREATE SCHEMA "Order"')
    result = z4j_migrate.upgrade(database_url=database_url, migrations_dir=migrations, schema="Order")
    assert len(result.applied) == 2 and result.created_extensions == ("uuid-ossp",)
    in_order = {r[0] for r in query(database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'Order'")}
    assert in_order & BOOKKEEPING_TABLES == BOOKKEEPING_TABLES - {"yoyo_lock"}  # yoyo's lock: never ours
    assert scalar(database_url, "SELECT to_regclass('public._yoyo_migration')") is None
    env = {"Z4J_DATABASE_URL": database_url, "Z4J_MIGRATIONS_DIR": str(migrations)}
    r = run_cli("status", "--schema", "Order", env=env)
    assert r.returncode == 0 and "current: 0002_posts" in r.stdout, r.stderr
    r = run_cli("downgrade", "--schema", "Order", "--to", "base", "--yes", env=env)
    assert r.returncode == 0, r.stderr
    assert scalar(database_url, 'SELECT count(*) FROM "Order"._yoyo_migration') == 0
    assert scalar(database_url, "SELECT count(*) FROM pg_extension WHERE extname = 'uuid-ossp'") == 1
