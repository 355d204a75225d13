"""The bad inputs that fail before any database is touched: one corpus, run two ways.

Each case breaks one thing in a revision directory that starts as two valid revisions
(BASE), or in the settings (a URL, an environment value, the directory), and names the
exit code and what the one-paragraph message must contain. tests/unit/test_bad_input_fast.py
runs every case in-process through the library (settings, discovery, the SQL checks);
tests/integration/test_bad_input.py runs one case per exit code through the CLI against a
database, beside the cases that need one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BASE = [
    ("0001_users", "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);", "DROP TABLE users;"),
    ("0002_posts", "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users);", "DROP TABLE posts;"),
]
MALFORMED = "malformed revision file name"


class Where(str):
    """A needle naming a file (and line) as messages do, `path:line:`; keeps both for the unit test."""

    path: str
    line: int | None

    def __new__(cls, path: str, line: int | None = None) -> Where:
        text = super().__new__(cls, f"{path}:{line}:" if line else path)
        text.path, text.line = path, line
        return text


@dataclass
class Scene:
    """The inputs of one run: the revision directory, the CLI arguments, the environment."""

    folder: Path
    args: list[str] = field(default_factory=lambda: ["upgrade"])
    env: dict[str, str] = field(default_factory=dict)

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

    def where(self, name: str, line: int | None = None) -> Where:
        return Where(str(self.folder / name), line)


@dataclass(frozen=True)
class Bad:
    id: str
    code: int
    setup: Callable  # (Scene) -> None; the integration suite passes its Ctx, a Scene with a database
    needles: Callable  # (Scene) -> tuple[str, ...]


PURE: list[Bad] = []


def case(code: int, needles: Callable, *, into: list[Bad] = PURE) -> Callable:
    """Register the decorated setup as a case of `into`, named after the function."""

    def register(fn: Callable) -> Callable:
        into.append(Bad(fn.__name__, code, fn, needles))
        return fn

    return register


# --------------------------------------------------------------------------- file names (exit 3)


def _bad_name(name: str) -> Callable[[Scene], None]:
    def setup(ctx: Scene) -> None:
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
    PURE.append(Bad(_id, 3, _bad_name(_name), lambda ctx, n=_name: (MALFORMED, ctx.where(n))))


# --------------------------------------------------------------------------- pairing and numbering (exit 3)


@case(3, lambda ctx: ("has no matching 0003_lonely.down.sql", ctx.where("0003_lonely.up.sql")))
def unpaired_up(ctx: Scene) -> None:
    ctx.write("0003_lonely.up.sql", "-- message: m\nCREATE TABLE lonely (id int);\n")


@case(3, lambda ctx: ("has no matching 0003_lonely.up.sql", ctx.where("0003_lonely.down.sql")))
def unpaired_down(ctx: Scene) -> None:
    ctx.write("0003_lonely.down.sql", "DROP TABLE lonely;\n")


@case(3, lambda ctx: ("duplicate revision number 3: 0003_a and 0003_b",))
def duplicate_number(ctx: Scene) -> None:
    ctx.pair("0003_a", "-- message: a\nCREATE TABLE a (id int);\n")
    ctx.pair("0003_b", "-- message: b\nCREATE TABLE b (id int);\n")


@case(3, lambda ctx: ("duplicate revision number 3", "00003_b"))
def duplicate_number_by_padding(ctx: Scene) -> None:
    ctx.pair("0003_a", "-- message: a\nCREATE TABLE a (id int);\n")
    ctx.pair("00003_b", "-- message: b\nCREATE TABLE b (id int);\n")


@case(3, lambda ctx: ("duplicate revision number 2", "0002_other"))
def duplicate_of_an_applied_number(ctx: Scene) -> None:
    ctx.pair("0002_other", "-- message: other\nCREATE TABLE other (id int);\n")


# --------------------------------------------------------------------------- directives (exit 3)


@case(3, lambda ctx: ("missing '-- message:", ctx.where("0003_x.up.sql", 1)))
def missing_message(ctx: Scene) -> None:
    ctx.pair("0003_x", "CREATE TABLE x (id int);\n")


@case(3, lambda ctx: ("missing '-- message:", ctx.where("0003_x.up.sql", 1)))
def empty_message(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message:   \nCREATE TABLE x (id int);\n")


@case(3, lambda ctx: ("'-- message:' is given more than once", ctx.where("0003_x.up.sql", 2)))
def message_twice(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: one\n-- message: two\nCREATE TABLE x (id int);\n")


@case(3, lambda ctx: ("'-- transactional: maybe' must be true or false", ctx.where("0003_x.up.sql", 2)))
def transactional_not_boolean(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\n-- transactional: maybe\nCREATE TABLE x (id int);\n")


@case(3, lambda ctx: ("'-- transactional: yes' must be true or false", ctx.where("0003_x.down.sql", 1)))
def transactional_not_boolean_in_down(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- transactional: yes\nDROP TABLE x;\n")


@case(
    3,
    lambda ctx: (
        "'-- mesage:' looks like a misspelt directive; did you mean '-- message:'",
        ctx.where("0003_x.up.sql", 2),
    ),
)
def misspelt_directive(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\n-- mesage: bob\nCREATE TABLE x (id int);\n")


@case(3, lambda ctx: ("below the header", ctx.where("0003_x.up.sql", 3)))
def directive_below_header(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\n\n-- transactional: false\nCREATE INDEX CONCURRENTLY ix ON users (email);\n")


@case(3, lambda ctx: ("directive '-- message:' is not allowed in a .down.sql", ctx.where("0003_x.down.sql", 1)))
def up_directive_in_down_file(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- message: undo\nDROP TABLE x;\n")


@case(3, lambda ctx: ("irreversible down must not contain statements", ctx.where("0003_x.down.sql")))
def irreversible_with_statements(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- irreversible: no way back\nDROP TABLE x;\n")


@case(3, lambda ctx: ("'-- irreversible:' needs a message", ctx.where("0003_x.down.sql", 1)))
def irreversible_without_message(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- irreversible:\n")


@case(3, lambda ctx: ("'-- preflight:' needs a query", ctx.where("0003_x.down.sql", 1)))
def preflight_without_query(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- preflight:\nDROP TABLE x;\n")


@case(3, lambda ctx: ("has no SQL statements; write the undo", ctx.where("0003_x.down.sql")))
def down_without_sql(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "-- nothing to undo?\n")


@case(3, lambda ctx: ("'-- statement-timeout: soon' is not a duration", ctx.where("0003_x.up.sql", 2)))
def statement_timeout_not_a_duration(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\n-- statement-timeout: soon\nCREATE TABLE x (id int);\n", "DROP TABLE x;\n")


@case(3, lambda ctx: ("'-- statement-timeout:' is given more than once", ctx.where("0003_x.down.sql", 2)))
def statement_timeout_twice_in_down(ctx: Scene) -> None:
    ctx.pair(
        "0003_x",
        "-- message: m\nCREATE TABLE x (id int);\n",
        "-- statement-timeout: 1s\n-- statement-timeout: 2s\nDROP TABLE x;\n",
    )


@case(3, lambda ctx: ("directive '-- irreversible:' is not allowed in an .up.sql", ctx.where("0003_x.up.sql", 2)))
def down_directive_in_up_file(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\n-- irreversible: no\nCREATE TABLE x (id int);\n", "DROP TABLE x;\n")


# --------------------------------------------------------------------------- encoding and empty files (exit 3)


@case(3, lambda ctx: ("not valid UTF-8 (byte 0xff", ctx.where("0003_x.up.sql", 2)))
def invalid_utf8_in_up(ctx: Scene) -> None:
    ctx.pair("0003_x", b"-- message: m\nCOMMENT ON TABLE users IS '\xff';\n")


@case(3, lambda ctx: ("not valid UTF-8 (byte 0xe9", ctx.where("0003_x.down.sql", 1)))
def invalid_utf8_latin1_in_down(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "DROP TABLE x; -- caf\u00e9\n".encode("latin-1"))


@case(3, lambda ctx: ("not valid UTF-8", ctx.where("0003_x.up.sql", 1)))
def utf16_file(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n".encode("utf-16"))


@case(3, lambda ctx: ("missing '-- message:", ctx.where("0003_x.up.sql", 1)))
def empty_up_file(ctx: Scene) -> None:
    ctx.pair("0003_x", b"")


@case(3, lambda ctx: ("has no SQL statements", ctx.where("0003_x.down.sql")))
def empty_down_file(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", b"")


@case(3, lambda ctx: ("has no SQL statements", ctx.where("0003_x.up.sql")))
def comments_only_up_file(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\n-- CREATE TABLE x (id int);\n\n-- (forgot the SQL)\n")


@case(3, lambda ctx: ("NUL", ctx.where("0003_x.up.sql", 2)))
def nul_byte_in_sql(ctx: Scene) -> None:
    ctx.pair("0003_x", b"-- message: m\nCREATE TABLE x (id int);\x00\n", "DROP TABLE x;\n")


# --------------------------------------------------------------------------- SQL (exit 3, before anything runs)


@case(3, lambda ctx: ("SQL syntax error at column", ctx.where("0003_x.up.sql", 4)))
def syntax_error_in_up(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (\n  id int,\n  name text,,\n);\n", "DROP TABLE x;\n")


@case(3, lambda ctx: ("SQL syntax error", ctx.where("0003_x.down.sql", 1)))
def syntax_error_in_down(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "DROPP TABLE x;\n")


@case(3, lambda ctx: ("transaction control (COMMIT", "transactional file", ctx.where("0003_x.up.sql", 3)))
def commit_in_transactional_file(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\nCOMMIT;\nCREATE TABLE y (id int);\n")


@case(3, lambda ctx: ("transaction control (BEGIN", "non-transactional file", ctx.where("0003_x.up.sql", 3)))
def begin_in_non_transactional_file(ctx: Scene) -> None:
    ctx.pair(
        "0003_x",
        "-- message: m\n-- transactional: false\nBEGIN;\nCREATE INDEX CONCURRENTLY ix ON users (email);\n",
        "DROP INDEX CONCURRENTLY IF EXISTS ix;\n",
    )


@case(3, lambda ctx: ("transaction control (ROLLBACK", ctx.where("0003_x.down.sql", 2)))
def rollback_in_down_file(ctx: Scene) -> None:
    ctx.pair("0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "DROP TABLE x;\nROLLBACK;\n")


@case(3, lambda ctx: ("DROP EXTENSION is not allowed in a down file", ctx.where("0003_x.down.sql", 2)))
def drop_extension_in_down_file(ctx: Scene) -> None:
    ctx.pair(
        "0003_x", "-- message: m\nCREATE TABLE x (id int);\n", "DROP TABLE x;\nDROP EXTENSION IF EXISTS pgcrypto;\n"
    )


# --------------------------------------------------------------------------- z4j-migrate.toml (exit 3)


@case(3, lambda ctx: ("cannot be parsed", ctx.where("z4j-migrate.toml")))
def config_file_syntax(ctx: Scene) -> None:
    ctx.write("z4j-migrate.toml", "extensions = [\n")


@case(3, lambda ctx: ("unknown setting(s) ['schema']", ctx.where("z4j-migrate.toml")))
def config_file_unknown_key(ctx: Scene) -> None:
    ctx.write("z4j-migrate.toml", 'schema = "x"\n')


@case(3, lambda ctx: ("is not an extension name", ctx.where("z4j-migrate.toml")))
def config_file_hostile_extension_name(ctx: Scene) -> None:
    ctx.write("z4j-migrate.toml", 'extensions = ["pgcrypto; DROP TABLE users"]\n')


@case(3, lambda ctx: ("'extensions' must be a list of extension names", ctx.where("z4j-migrate.toml")))
def config_file_extensions_not_a_list(ctx: Scene) -> None:
    ctx.write("z4j-migrate.toml", 'extensions = "pgcrypto"\n')


# ------------------------------------------------------------- settings: URLs, environment, the directory (exit 2)


def setting_case(
    case_id: str,
    code: int,
    needles: tuple[str, ...],
    *,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    into: list[Bad] = PURE,
) -> None:
    """A case that only sets environment variables or the CLI arguments."""

    def setup(ctx: Scene) -> None:
        ctx.env.update(env or {})
        if args is not None:
            ctx.args = list(args)

    into.append(Bad(case_id, code, setup, lambda ctx: needles))


URL, LOCK, NOT_FINITE = "Z4J_DATABASE_URL", "Z4J_LOCK_TIMEOUT", "must be a finite number of seconds"
setting_case("url_wrong_scheme", 2, (URL, "unsupported URL scheme 'mysql'"), env={URL: "mysql://root@127.0.0.1/app"})
setting_case(
    "url_garbage",
    2,
    ("--database-url", "is neither a postgresql:// URL nor a libpq"),
    args=["upgrade", "--database-url", "localhost"],
)
setting_case(
    "url_port_out_of_range",
    2,
    (URL, "port '99999' is not a number between 1 and 65535"),
    env={URL: "postgresql://postgres@127.0.0.1:99999/app"},
)
setting_case(
    "url_bad_percent_encoding",
    2,
    (URL, "cannot be parsed", "invalid percent-encoded token"),
    env={URL: "postgresql://postgres@127.0.0.1/app%zz"},
)
setting_case(
    "url_unknown_parameter", 2, (URL, "cannot be parsed"), env={URL: "postgresql://postgres@127.0.0.1/app?colour=blue"}
)
setting_case("url_empty", 2, ("No database given", URL), env={URL: "   "})
setting_case("env_z4j_lock_timeout_soon", 2, (LOCK, "'soon' is not a number of seconds"), env={LOCK: "soon"})
setting_case("env_z4j_lock_timeout_-5", 2, (LOCK, NOT_FINITE), env={LOCK: "-5"})
setting_case("env_z4j_lock_timeout_nan", 2, (LOCK, NOT_FINITE), env={LOCK: "nan"})
setting_case("env_z4j_lock_timeout_inf", 2, (LOCK, NOT_FINITE), env={LOCK: "inf"})
setting_case(
    "env_z4j_statement_timeout_1min",
    2,
    ("Z4J_STATEMENT_TIMEOUT", "'1 min' is not a number of seconds"),
    env={"Z4J_STATEMENT_TIMEOUT": "1 min"},
)
setting_case(
    "env_z4j_direct_database_url_mysql",
    2,
    ("Z4J_DIRECT_DATABASE_URL", "unsupported URL scheme 'mysql'"),
    env={"Z4J_DIRECT_DATABASE_URL": "mysql://root@127.0.0.1/app"},
)
setting_case(
    "env_migrations_dir_missing",
    2,
    ("/nonexistent/revisions does not exist", "Z4J_MIGRATIONS_DIR"),
    env={"Z4J_MIGRATIONS_DIR": "/nonexistent/revisions"},
)
setting_case(
    "dir_does_not_exist",
    2,
    ("/nonexistent/revisions does not exist", "--migrations-dir"),
    args=["upgrade", "--migrations-dir", "/nonexistent/revisions"],
)


@case(2, lambda ctx: ("is not a directory", "0001_users.up.sql"))
def dir_is_a_file(ctx: Scene) -> None:
    ctx.env["Z4J_MIGRATIONS_DIR"] = str(ctx.folder / "0001_users.up.sql")
