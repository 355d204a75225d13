"""Settings: where the database is, where the revisions are, how long to wait.

Everything that comes from the outside world (environment, CLI, a caller) is
validated here, so later modules can trust their inputs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from .errors import ConfigError, redact, register_secret, register_secrets_in

ENV_DATABASE_URL = "Z4J_DATABASE_URL"
ENV_AUTO_MIGRATE = "Z4J_AUTO_MIGRATE"
ENV_MIGRATIONS_DIR = "Z4J_MIGRATIONS_DIR"
ENV_LOCK_TIMEOUT = "Z4J_LOCK_TIMEOUT"
ENV_STATEMENT_TIMEOUT = "Z4J_STATEMENT_TIMEOUT"
ENV_DIRECT_DATABASE_URL = "Z4J_DIRECT_DATABASE_URL"
ENV_LAYOUT = "Z4J_LAYOUT"

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
    """Accept every connection string libpq accepts, and check what libpq would refuse at connect time.

    URLs (postgresql://, postgres://, postgresql+psycopg://) and key=value strings are
    parsed by libpq itself (PQconninfoParse, through psycopg): multi-host lists,
    percent-encoding, IPv6 literals, unix-socket directories, service=, passfile=.
    A service is resolved by libpq when connecting, so host and dbname may be absent.
    Then the rules libpq only applies when connecting are checked here, so a typo is a
    configuration error (exit 2) and not an unreachable server: each port of the list,
    the number of ports against the number of hosts, and the values of
    target_session_attrs, load_balance_hosts and sslmode.
    """
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
    _check_hosts_and_ports(params, source)
    for key, allowed in _ENUMS.items():
        given = params.get(key)
        if given is not None and given not in allowed:
            raise ConfigError(
                f"{source}: {key}={given!r} is not valid; libpq accepts {', '.join(allowed)} (case matters)."
            )
    return Database(conninfo=conninfo, display=display_params(params), params=params)


# libpq's own lists (fe-connect.c, PostgreSQL 14-18); it compares them case-sensitively.
_ENUMS: dict[str, tuple[str, ...]] = {
    "target_session_attrs": ("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
    "load_balance_hosts": ("disable", "random"),
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
}
# libpq reads a port with strtol: optional blanks and sign around decimal digits, then 1..65535.
_PORT = re.compile(r"^[ \t\n\v\f\r]*[+-]?[0-9]+[ \t\n\v\f\r]*$")
_DEFAULT_PORT = "5432"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _port_number(port: str) -> int | None:
    """The port libpq would use, or None if libpq would refuse it ("" is the default port)."""
    if port == "":
        return int(_DEFAULT_PORT)
    if not _PORT.match(port):
        return None
    number = int(port)
    return number if 0 < number < 65536 else None


def _check_hosts_and_ports(params: dict[str, str], source: str) -> None:
    """libpq's connectOptions2 rules, applied before connecting.

    hostaddr, when given, fixes the number of hosts (else host does, else there is
    one); a host list must then match it. A port list must have one entry, which
    applies to every host, or one entry per host; an empty entry means 5432.
    Values missing from the string come from PGHOST/PGHOSTADDR/PGPORT as in libpq;
    with a service they may come from the service file, which libpq reads when
    connecting, so the counts are not checked then.
    """
    service = params.get("service") or os.environ.get("PGSERVICE")

    def setting(key: str, envvar: str) -> tuple[str, str]:
        if key in params:
            return params[key], repr(params[key])
        return os.environ.get(envvar, ""), f"{os.environ.get(envvar, '')!r} from {envvar}"

    host, host_shown = setting("host", "PGHOST")
    hostaddr, hostaddr_shown = setting("hostaddr", "PGHOSTADDR")
    port, port_shown = setting("port", "PGPORT")
    hosts = host.split(",") if host else []
    hostaddrs = hostaddr.split(",") if hostaddr else []
    ports = port.split(",") if port else []
    counts_known = not service or all(key in params for key in ("host", "hostaddr", "port"))
    nhosts = len(hostaddrs) or len(hosts) or 1

    if "port" in params:  # a PGPORT problem is libpq's to report; ours is what the string says
        for index, entry in enumerate(ports):
            if _port_number(entry) is not None:
                continue
            if len(ports) == 1 and nhosts == 1:
                where = ""
            elif len(ports) == 1:
                where = f" (used for all {nhosts} hosts)"
            else:
                named = f", for host {hosts[index]!r}" if len(hosts) == len(ports) and hosts[index] else ""
                where = f" (the {_ordinal(index + 1)} of {len(ports)} ports{named})"
            raise ConfigError(
                f"{source}: port {entry!r}{where} is not a number between 1 and 65535"
                + ("; leave an entry empty for the default port 5432." if len(ports) > 1 else ".")
            )
    if not counts_known:
        return
    if hostaddrs and hosts and len(hosts) != len(hostaddrs):
        raise ConfigError(
            f"{source}: {_plural(len(hosts), 'host name')} (host={host_shown}) but "
            f"{_plural(len(hostaddrs), 'hostaddr value')} (hostaddr={hostaddr_shown}); give one host name per "
            f"hostaddr or no host at all (libpq: could not match {len(hosts)} host names to "
            f"{len(hostaddrs)} hostaddr values)."
        )
    if len(ports) > 1 and len(ports) != nhosts:
        targets = f"host={host_shown}" if not hostaddrs else f"hostaddr={hostaddr_shown}"
        if not hosts and not hostaddrs:
            targets = "no host list, which means one host"
        raise ConfigError(
            f"{source}: {_plural(len(ports), 'port')} (port={port_shown}) for {_plural(nhosts, 'host')} "
            f"({targets}); give one port per host, or a single port for all of them (libpq: could not match "
            f"{len(ports)} port numbers to {nhosts} hosts)."
        )


def _is_socket(host: str) -> bool:
    """A unix-socket directory (or Linux abstract socket, or a Windows path), as libpq tells them apart."""
    return host.startswith(("/", "@")) or bool(re.match(r"^[A-Za-z]:[\\/]", host))


def _url_host(host: str) -> str:
    return f"[{quote(host, safe=':')}]" if ":" in host else quote(host, safe="")


def display_params(params: dict[str, str]) -> str:
    """A URL-shaped description of the target with the password masked.

    postgresql://[user[:***]@][host[:port][,host[:port]...]]/[dbname][?service=..&...]
    Every host and port is shown (a single port for several hosts is repeated for
    each); unix-socket directories go in the query (?host=/run/postgresql), as do
    service, hostaddr, target_session_attrs and load_balance_hosts. It is a valid
    libpq URL apart from the masked password.
    """
    user = quote(params.get("user", ""), safe="")
    password = params.get("password")
    auth = f"{user}:***@" if password else (f"{user}@" if user else "")
    host, port = params.get("host", ""), params.get("port", "")
    hosts = host.split(",") if host else []
    ports = [str(_port_number(p)) if p and _port_number(p) else p.strip() for p in port.split(",")] if port else []
    query: list[tuple[str, str]] = []
    if params.get("service"):
        query.append(("service", params["service"]))
    if any(_is_socket(h) for h in hosts) or (hosts and len(ports) not in (0, 1, len(hosts))):
        authority = ""
        query.append(("host", host))
        if port:
            query.append(("port", ",".join(ports)))
    elif hosts:
        ports = ports * len(hosts) if len(ports) == 1 else ports or [""] * len(hosts)
        authority = ",".join(_url_host(h) + (f":{p}" if p else "") for h, p in zip(hosts, ports, strict=True))
    elif len(ports) == 1:
        authority = f":{ports[0]}" if ports[0] else ""
    else:
        authority = ""
        if port:
            query.append(("port", ",".join(ports)))
    for key in ("hostaddr", "target_session_attrs", "load_balance_hosts"):
        if params.get(key):
            query.append((key, params[key]))
    dbname = quote(params.get("dbname", ""), safe="")
    tail = "&".join(f"{key}={quote(val, safe='/,:@')}" for key, val in query)
    shown = f"postgresql://{auth}{authority}/{dbname}" + (f"?{tail}" if tail else "")
    if password and password != "*" * len(password):  # a user or host that *is* the password stays masked
        for secret in {password, quote(password, safe="")}:
            shown = shown.replace(secret, "***")
    return shown


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
    lock_timeout_s: float = 60.0  # seconds to wait for the migration (advisory) lock
    statement_lock_timeout_s: float = 5.0  # seconds a DDL statement may wait for a table lock
    lock_retries: int = 5  # re-tries of a transactional revision that hit lock_timeout
    connect_wait_s: float = 0.0  # seconds to retry connecting while the server starts
    application_name: str = "z4j-migrate"
    statement_timeout_s: float = 0.0  # seconds a migration statement may run; 0: no limit (whatever the role sets)
    direct_database: Database | None = None  # for non-transactional revisions behind a transaction pooler
    # Schema-per-tenant (fleet.tenant_targets): the search_path the revisions' SQL runs with, a
    # comma-separated list of plain schema names ("tenant_7,public"); None: the role's own.
    search_path: str | None = None
    # Whose file layout the revisions are in (revisions.LAYOUTS: z4j, golang-migrate, dbmate, yoyo,
    # flyway); None: the directory's z4j-migrate.toml says, else z4j.
    layout: str | None = None

    def __post_init__(self) -> None:
        check_identifier(self.schema, source="schema")
        if self.layout is not None:
            check_layout(self.layout, source="layout")
        if self.search_path is not None:
            for name in self.search_path.split(","):
                check_identifier(name.strip(), source="search_path")

    @property
    def search_path_value(self) -> str | None:
        """search_path as set_config takes it: each schema quoted as an identifier ("tenant_7", "public")."""
        if self.search_path is None:
            return None
        return ", ".join('"' + name.strip() + '"' for name in self.search_path.split(","))

    @property
    def lock_key(self) -> int:
        """The migration lock's advisory key: one per bookkeeping schema (lock.lock_key)."""
        from .lock import lock_key

        return lock_key(self.schema)

    @property
    def statement_timeout_ms(self) -> int:
        return int(self.statement_timeout_s * 1000)


def check_layout(value: str, *, source: str) -> str:
    """A layout name (revisions.LAYOUTS), or a configuration error naming where it came from."""
    from .revisions import LAYOUTS

    if value not in LAYOUTS:
        raise ConfigError(f"{source}={value!r} is not a layout; choose one of {', '.join(LAYOUTS)}.")
    return value


def resolve_layout(given: str | None = None, *, source: str = "--layout") -> str | None:
    """The layout given (--layout), else Z4J_LAYOUT, else None (the directory's z4j-migrate.toml, else z4j)."""
    if given is not None and given.strip():
        return check_layout(given.strip(), source=source)
    env = os.environ.get(ENV_LAYOUT, "").strip()
    return check_layout(env, source=ENV_LAYOUT) if env else None


def resolve_migrations_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """The revision directory: the one given, else Z4J_MIGRATIONS_DIR, else the bundled sql/."""
    return Path(directory or os.environ.get(ENV_MIGRATIONS_DIR) or BUNDLED_DIR)


def given_or_from_env(
    settings: Settings | None, database_url: str | None, migrations_dir: object, **overrides: object
) -> Settings:
    """The library verbs' one way to configure: a Settings object, or keyword arguments (falling back
    to the Z4J_* environment) that build one."""
    if settings is not None:
        return settings
    return settings_from_env(database_url, migrations_dir, **overrides)  # type: ignore[arg-type]


def settings_from_env(
    database_url: str | None = None,
    migrations_dir: str | os.PathLike[str] | None = None,
    **overrides: object,
) -> Settings:
    """Build Settings from explicit values, falling back to Z4J_* environment variables."""
    url = database_url if database_url is not None else os.environ.get(ENV_DATABASE_URL)
    source = "--database-url" if database_url is not None else ENV_DATABASE_URL
    database = parse_database_url(url, source=source)
    directory = resolve_migrations_dir(migrations_dir)
    kwargs: dict[str, object] = {"database": database, "migrations_dir": Path(directory)}
    env_lock = os.environ.get(ENV_LOCK_TIMEOUT)
    if env_lock is not None and env_lock.strip():
        kwargs["lock_timeout_s"] = parse_seconds(env_lock, source=ENV_LOCK_TIMEOUT)
    env_timeout = os.environ.get(ENV_STATEMENT_TIMEOUT)
    if env_timeout is not None and env_timeout.strip():
        kwargs["statement_timeout_s"] = parse_seconds(env_timeout, source=ENV_STATEMENT_TIMEOUT)
    direct = overrides.pop("direct_url", None)
    direct_source = "--direct-url"
    if direct is None:
        direct, direct_source = os.environ.get(ENV_DIRECT_DATABASE_URL), ENV_DIRECT_DATABASE_URL
    if direct is not None and str(direct).strip():
        kwargs["direct_database"] = parse_database_url(str(direct), source=direct_source)
    layout = overrides.pop("layout", None)
    kwargs["layout"] = resolve_layout(None if layout is None else str(layout))
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**kwargs)  # type: ignore[arg-type]
