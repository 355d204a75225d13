"""Settings: where the database is, where the revisions are, how long to wait.

Everything that comes from the outside world (environment, CLI, a caller) is
validated here, so later modules can trust their inputs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, redact, register_secret, register_secrets_in

ENV_DATABASE_URL = "Z4J_DATABASE_URL"
ENV_AUTO_MIGRATE = "Z4J_AUTO_MIGRATE"
ENV_MIGRATIONS_DIR = "Z4J_MIGRATIONS_DIR"
ENV_LOCK_TIMEOUT = "Z4J_LOCK_TIMEOUT"

BUNDLED_DIR = Path(__file__).resolve().parent / "sql"
if not BUNDLED_DIR.is_dir():  # running from a source checkout, not an installed wheel
    BUNDLED_DIR = Path(__file__).resolve().parent.parent / "sql"

_ACCEPTED_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Database:
    """A validated connection target; `display` is safe to print."""

    conninfo: str
    display: str
    params: dict[str, str] = field(repr=False)

    def __repr__(self) -> str:
        return f"Database({self.display})"


def parse_database_url(value: str | None, *, source: str = ENV_DATABASE_URL) -> Database:
    """Accept postgresql://, postgres://, postgresql+psycopg:// and libpq key=value strings."""
    if value is None or not value.strip():
        raise ConfigError(
            f"No database given: set {ENV_DATABASE_URL} or pass --database-url, e.g. "
            "postgresql://user@localhost:5432/app."
        )
    value = value.strip()
    register_secrets_in(value)
    match = _SCHEME.match(value)
    if match:
        scheme = match.group(1).lower()
        if scheme not in _ACCEPTED_SCHEMES:
            raise ConfigError(
                f"{source}: unsupported URL scheme {scheme!r}; use postgresql://, postgres://, "
                "postgresql+psycopg:// or a libpq 'key=value' string."
            )
        conninfo = "postgresql://" + value[match.end() :]
    elif "=" in value:
        conninfo = value
    else:
        raise ConfigError(f"{source}: {redact(value)!r} is neither a postgresql:// URL nor a libpq 'key=value' string.")
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items()}
    except Exception as exc:  # psycopg.ProgrammingError: libpq could not parse it
        reason = " ".join(str(exc).split())
        raise ConfigError(f"{source}: the database URL cannot be parsed ({redact(reason)}).") from None
    register_secret(params.get("password"))
    port = params.get("port")
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"{source}: port {port!r} is not a number between 1 and 65535.")
    return Database(conninfo=conninfo, display=display_params(params), params=params)


def display_params(params: dict[str, str]) -> str:
    """A URL-shaped description of the target with the password masked."""
    user = params.get("user", "")
    auth = f"{user}:***@" if params.get("password") else (f"{user}@" if user else "")
    host = params.get("host", "")
    port = f":{params['port']}" if params.get("port") else ""
    return f"postgresql://{auth}{host}{port}/{params.get('dbname', '')}"


def parse_bool_env(name: str, default: bool, environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Only true/false (any case) are accepted; anything else is a configuration error."""
    env = os.environ if environ is None else environ
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise ConfigError(f"{name}={raw!r} is not valid: use true or false.")


def parse_seconds(value: str | float | int, *, source: str) -> float:
    """Parse a non-negative number of seconds, naming the setting when it is wrong."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}={value!r} is not a number of seconds.") from None
    if seconds < 0 or seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"{source}={value!r} must be a finite number of seconds, 0 or more.")
    return seconds


def check_identifier(value: str, *, source: str) -> str:
    """Schema/table names from configuration: a plain identifier or nothing.

    They are also quoted wherever they are used; this check exists so that a
    hostile value is refused loudly instead of quietly creating odd objects.
    """
    if not _IDENTIFIER.match(value):
        raise ConfigError(
            f"{source}={value!r} is not a plain identifier (letters, digits, underscore; "
            "at most 63 characters, not starting with a digit)."
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, validated."""

    database: Database
    migrations_dir: Path = BUNDLED_DIR
    schema: str = "public"
    lock_wait: float = 60.0  # seconds to wait for the migration (advisory) lock
    statement_lock_timeout: float = 5.0  # seconds a DDL statement may wait for a table lock
    lock_retries: int = 5  # re-tries of a transactional revision that hit lock_timeout
    connect_wait: float = 0.0  # seconds to retry connecting while the server starts
    application_name: str = "z4j-migrate"

    def __post_init__(self) -> None:
        check_identifier(self.schema, source="schema")


def settings_from_env(
    database_url: str | None = None,
    migrations_dir: str | os.PathLike[str] | None = None,
    **overrides: object,
) -> Settings:
    """Build Settings from explicit values, falling back to Z4J_* environment variables."""
    url = database_url if database_url is not None else os.environ.get(ENV_DATABASE_URL)
    source = "--database-url" if database_url is not None else ENV_DATABASE_URL
    database = parse_database_url(url, source=source)
    directory = migrations_dir or os.environ.get(ENV_MIGRATIONS_DIR) or BUNDLED_DIR
    kwargs: dict[str, object] = {"database": database, "migrations_dir": Path(directory)}
    env_lock = os.environ.get(ENV_LOCK_TIMEOUT)
    if env_lock is not None and env_lock.strip():
        kwargs["lock_wait"] = parse_seconds(env_lock, source=ENV_LOCK_TIMEOUT)
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**kwargs)  # type: ignore[arg-type]
