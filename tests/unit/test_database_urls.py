"""Every connection string libpq accepts is accepted; what libpq would refuse is refused early and clearly.

Table-driven: each accepted form states the parsed keywords (host list, port list,
dbname, ...) and the display; each refused form states the words the message must
contain. A password never appears in a message, a display or a repr.
"""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from z4j_migrate import errors
from z4j_migrate.config import ENV_DATABASE_URL, display_params, parse_database_url, settings_from_env
from z4j_migrate.errors import ConfigError

PW = "Zq8-pw-Secret"  # distinctive: appears nowhere unless we leak it


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No libpq environment defaults, and no secrets remembered by earlier tests (they would mask our words)."""
    for name in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGSERVICE", "PGSERVICEFILE", ENV_DATABASE_URL):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(errors, "_SECRETS", set())


# --------------------------------------------------------------------------- accepted forms

ACCEPTED = [
    # (connection string, expected keywords (exactly these), display)
    pytest.param(
        "postgresql://app@db.example:5432/z4j",
        {"user": "app", "host": "db.example", "port": "5432", "dbname": "z4j"},
        "postgresql://app@db.example:5432/z4j",
        id="url-single-host",
    ),
    pytest.param(
        f"postgresql://app:{PW}@db:5432/z4j",
        {"user": "app", "password": PW, "host": "db", "port": "5432", "dbname": "z4j"},
        "postgresql://app:***@db:5432/z4j",
        id="url-password",
    ),
    pytest.param(
        "postgres://app@db/z4j",
        {"user": "app", "host": "db", "dbname": "z4j"},
        "postgresql://app@db/z4j",
        id="scheme-postgres",
    ),
    pytest.param(
        f"postgresql+psycopg://app:{PW}@db/z4j",
        {"user": "app", "password": PW, "host": "db", "dbname": "z4j"},
        "postgresql://app:***@db/z4j",
        id="scheme-sqlalchemy",
    ),
    pytest.param(
        "POSTGRESQL://db/z4j",
        {"host": "db", "dbname": "z4j"},
        "postgresql://db/z4j",
        id="scheme-any-case",
    ),
    pytest.param(
        "postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write",
        {"host": "h1,h2", "port": "5432,5432", "dbname": "db", "target_session_attrs": "read-write"},
        "postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write",
        id="url-multi-host-the-reported-bug",
    ),
    pytest.param(
        f"postgresql://app:{PW}@h1:5432,h2:5433/db?target_session_attrs=read-write",
        {
            "user": "app",
            "password": PW,
            "host": "h1,h2",
            "port": "5432,5433",
            "dbname": "db",
            "target_session_attrs": "read-write",
        },
        "postgresql://app:***@h1:5432,h2:5433/db?target_session_attrs=read-write",
        id="url-multi-host-two-ports",
    ),
    pytest.param(
        "postgresql://h1:,h2:5433/db",
        {"host": "h1,h2", "port": ",5433", "dbname": "db"},
        "postgresql://h1,h2:5433/db",
        id="url-empty-port-entry",
    ),
    pytest.param(
        "postgresql://h1,h2,h3/db",
        {"host": "h1,h2,h3", "port": ",,", "dbname": "db"},
        "postgresql://h1,h2,h3/db",
        id="url-multi-host-default-ports",
    ),
    pytest.param(
        "postgresql://h1,h2/db?port=6432",
        {"host": "h1,h2", "port": "6432", "dbname": "db"},
        "postgresql://h1:6432,h2:6432/db",
        id="url-one-port-for-all-hosts",
    ),
    pytest.param(
        "host=h1,h2 port=5432,5433 dbname=db user=app",
        {"host": "h1,h2", "port": "5432,5433", "dbname": "db", "user": "app"},
        "postgresql://app@h1:5432,h2:5433/db",
        id="kv-multi-host",
    ),
    pytest.param(
        "host=h1,h2,h3 port=6432 dbname=db",
        {"host": "h1,h2,h3", "port": "6432", "dbname": "db"},
        "postgresql://h1:6432,h2:6432,h3:6432/db",
        id="kv-one-port-for-all-hosts",
    ),
    pytest.param(
        "host=h1,h2 port=,5433 dbname=db",
        {"host": "h1,h2", "port": ",5433", "dbname": "db"},
        "postgresql://h1,h2:5433/db",
        id="kv-empty-port-entry",
    ),
    pytest.param(
        f"host=h1,h2 port=5432 password='{PW}' dbname=db",
        {"host": "h1,h2", "port": "5432", "password": PW, "dbname": "db"},
        "postgresql://:***@h1:5432,h2:5432/db",
        id="kv-password-no-user",
    ),
    *[
        pytest.param(
            f"postgresql://h1,h2/db?target_session_attrs={tsa}",
            {"host": "h1,h2", "port": ",", "dbname": "db", "target_session_attrs": tsa},
            f"postgresql://h1,h2/db?target_session_attrs={tsa}",
            id=f"target_session_attrs-{tsa}",
        )
        for tsa in ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")
    ],
    pytest.param(
        "postgresql://h1,h2/db?load_balance_hosts=random&target_session_attrs=primary",
        {
            "host": "h1,h2",
            "port": ",",
            "dbname": "db",
            "load_balance_hosts": "random",
            "target_session_attrs": "primary",
        },
        "postgresql://h1,h2/db?target_session_attrs=primary&load_balance_hosts=random",
        id="load_balance_hosts",
    ),
    pytest.param(
        "service=prod",
        {"service": "prod"},
        "postgresql:///?service=prod",
        id="kv-service-only",
    ),
    pytest.param(
        "postgresql://?service=prod",
        {"service": "prod"},
        "postgresql:///?service=prod",
        id="url-service-only",
    ),
    pytest.param(
        "postgresql://app@/z4j?service=prod&target_session_attrs=standby",
        {"service": "prod", "user": "app", "dbname": "z4j", "target_session_attrs": "standby"},
        "postgresql://app@/z4j?service=prod&target_session_attrs=standby",
        id="url-service-with-overrides",
    ),
    pytest.param(
        "service=prod port=1,2",  # the service file may list two hosts: libpq decides when connecting
        {"service": "prod", "port": "1,2"},
        "postgresql:///?service=prod&port=1,2",
        id="service-port-list-not-counted",
    ),
    pytest.param(
        "postgresql://app@db/z4j?passfile=/etc/z4j/pgpass&sslmode=verify-full",
        {"user": "app", "host": "db", "dbname": "z4j", "passfile": "/etc/z4j/pgpass", "sslmode": "verify-full"},
        "postgresql://app@db/z4j",
        id="passfile-sslmode",
    ),
    *[
        pytest.param(
            f"host=db sslmode={mode}",
            {"host": "db", "sslmode": mode},
            "postgresql://db/",
            id=f"sslmode-{mode}",
        )
        for mode in ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
    ],
    pytest.param(
        "host=/var/run/postgresql dbname=app user=me",
        {"host": "/var/run/postgresql", "dbname": "app", "user": "me"},
        "postgresql://me@/app?host=/var/run/postgresql",
        id="kv-unix-socket",
    ),
    pytest.param(
        "postgresql:///db?host=/tmp",
        {"host": "/tmp", "dbname": "db"},
        "postgresql:///db?host=/tmp",
        id="url-unix-socket-query",
    ),
    pytest.param(
        "postgresql://%2Fvar%2Frun%2Fpostgresql:5433/db",
        {"host": "/var/run/postgresql", "port": "5433", "dbname": "db"},
        "postgresql:///db?host=/var/run/postgresql&port=5433",
        id="url-unix-socket-percent-encoded",
    ),
    pytest.param(
        "host=/tmp,db2 port=,5433 dbname=db",
        {"host": "/tmp,db2", "port": ",5433", "dbname": "db"},
        "postgresql:///db?host=/tmp,db2&port=,5433",
        id="socket-and-tcp",
    ),
    pytest.param(
        "postgresql://[::1]:5432/db",
        {"host": "::1", "port": "5432", "dbname": "db"},
        "postgresql://[::1]:5432/db",
        id="ipv6",
    ),
    pytest.param(
        "postgresql://[::1]:5432,[fe80::1%25eth0]/db",
        {"host": "::1,fe80::1%eth0", "port": "5432,", "dbname": "db"},
        "postgresql://[::1]:5432,[fe80::1%25eth0]/db",
        id="ipv6-multi-host-zone",
    ),
    pytest.param(
        "host=::1,127.0.0.1 port=5432,5433",
        {"host": "::1,127.0.0.1", "port": "5432,5433"},
        "postgresql://[::1]:5432,127.0.0.1:5433/",
        id="kv-ipv6",
    ),
    pytest.param(
        "postgresql://u%40corp:p%3Aw%2F%40rd@h/my%20db",
        {"user": "u@corp", "password": "p:w/@rd", "host": "h", "dbname": "my db"},
        "postgresql://u%40corp:***@h/my%20db",
        id="percent-encoded",
    ),
    pytest.param(
        "host=h hostaddr=10.0.0.5 port=5432",
        {"host": "h", "hostaddr": "10.0.0.5", "port": "5432"},
        "postgresql://h:5432/?hostaddr=10.0.0.5",
        id="hostaddr",
    ),
    pytest.param(
        "postgresql://:5433/db",
        {"port": "5433", "dbname": "db"},
        "postgresql://:5433/db",
        id="default-host",
    ),
    pytest.param("postgresql://", {}, "postgresql:///", id="all-defaults"),
    pytest.param(
        "host=h port=' 5432 ' dbname=db",  # libpq reads ports with strtol: blanks are allowed
        {"host": "h", "port": " 5432 ", "dbname": "db"},
        "postgresql://h:5432/db",
        id="port-with-blanks",
    ),
    pytest.param(
        "postgresql://h/db?application_name=web&connect_timeout=3&options=-c%20statement_timeout%3D5s",
        {
            "host": "h",
            "dbname": "db",
            "application_name": "web",
            "connect_timeout": "3",
            "options": "-c statement_timeout=5s",
        },
        "postgresql://h/db",
        id="keywords-read-by-db-connect",
    ),
]


@pytest.mark.parametrize(("value", "params", "display"), ACCEPTED)
def test_accepted_forms(value, params, display):
    database = parse_database_url(value)
    assert database.params == params
    assert database.display == display
    assert conninfo_to_dict(database.conninfo) == params  # what psycopg.connect will be given
    assert PW not in database.display and PW not in repr(database)


@pytest.mark.parametrize(("value", "params", "display"), ACCEPTED)
def test_the_display_is_a_libpq_url_for_the_same_target(value, params, display):
    """Parsed back (the password aside), the display names the same hosts, ports, database and service."""

    def target(p):
        hosts = p.get("host", "").split(",")
        ports = [x.strip().lstrip("+") or "5432" for x in p.get("port", "").split(",")]
        ports = ports * len(hosts) if len(ports) == 1 else ports
        keys = ("dbname", "user", "service", "hostaddr", "target_session_attrs", "load_balance_hosts")
        return hosts, ports, {k: p.get(k) for k in keys}

    assert target(conninfo_to_dict(display.replace(":***@", "@"))) == target(params)


def test_the_display_of_a_password_equal_to_another_part_stays_masked():
    database = parse_database_url("postgresql://hunter2:hunter2@db/app")
    assert "hunter2" not in database.display


def test_display_params_is_usable_on_its_own():
    assert display_params({"host": "h1,h2", "port": "5432,5433", "dbname": "db", "password": PW}) == (
        "postgresql://:***@h1:5432,h2:5433/db"
    )


# --------------------------------------------------------------------------- refused forms

REFUSED = [
    # (connection string, words the message must contain)
    pytest.param("mysql://root@127.0.0.1/app", ["unsupported URL scheme 'mysql'"], id="scheme"),
    pytest.param("localhost", ["is neither a postgresql:// URL nor a libpq"], id="garbage"),
    pytest.param(
        "postgresql://postgres@127.0.0.1:99999/app",
        ["port '99999' is not a number between 1 and 65535"],
        id="port-range",
    ),
    pytest.param(f"postgresql://u:{PW}@h:abc/db", ["port 'abc' is not a number between 1 and 65535"], id="port-word"),
    pytest.param("host=h port=0", ["port '0' is not a number"], id="port-zero"),
    pytest.param("host=h port=-5", ["port '-5' is not a number"], id="port-negative"),
    pytest.param("host=h port=5432x", ["port '5432x'"], id="port-trailing-garbage"),
    pytest.param(
        f"postgresql://app:{PW}@h1:5432,h2:abc/db",
        ["port 'abc' (the 2nd of 2 ports, for host 'h2')", "between 1 and 65535", "empty for the default port 5432"],
        id="multi-port-2nd-bad",
    ),
    pytest.param(
        "host=h1,h2,h3 port=5432,5433,70000",
        ["port '70000' (the 3rd of 3 ports, for host 'h3')"],
        id="multi-port-3rd-out-of-range",
    ),
    pytest.param(
        "host=h1,h2 port=0",
        ["port '0' (used for all 2 hosts)"],
        id="single-port-for-all-bad",
    ),
    pytest.param(
        f"host=h1,h2,h3 port=5432,5433 password={PW}",
        ["2 ports (port='5432,5433') for 3 hosts (host='h1,h2,h3')", "could not match 2 port numbers to 3 hosts"],
        id="fewer-ports-than-hosts",
    ),
    pytest.param(
        "postgresql://h1:1,h2:2/db?port=1,2,3",
        ["3 ports", "for 2 hosts", "could not match 3 port numbers to 2 hosts"],
        id="more-ports-than-hosts",
    ),
    pytest.param("port=5432,5433", ["2 ports", "for 1 host", "one port per host"], id="port-list-no-host"),
    pytest.param(
        "host=h1,h2 hostaddr=10.0.0.1",
        ["2 host names (host='h1,h2') but 1 hostaddr value", "could not match 2 host names to 1 hostaddr values"],
        id="host-hostaddr-mismatch",
    ),
    pytest.param(
        "postgresql://h1,h2/db?target_session_attrs=Read-Write",
        ["target_session_attrs='Read-Write' is not valid", "prefer-standby"],
        id="target_session_attrs-case",
    ),
    pytest.param(
        "postgresql://h/db?target_session_attrs=master", ["target_session_attrs='master'"], id="target_session_attrs"
    ),
    pytest.param("postgresql://h/db?load_balance_hosts=yes", ["load_balance_hosts='yes'", "disable, random"], id="lb"),
    pytest.param(f"postgresql://u:{PW}@h/db?sslmode=bogus", ["sslmode='bogus' is not valid"], id="sslmode"),
    pytest.param(
        "postgresql://postgres@127.0.0.1/app%zz", ["cannot be parsed", "invalid percent-encoded token"], id="pct"
    ),
    pytest.param("postgresql://postgres@127.0.0.1/app?colour=blue", ["cannot be parsed", "colour"], id="unknown-key"),
    pytest.param("host=h colour=blue", ["cannot be parsed", "colour"], id="kv-unknown-key"),
    pytest.param("postgresql://[::1/db", ["cannot be parsed", "IPv6"], id="ipv6-unclosed"),
    pytest.param(f"postgresql://u:{PW}%zz@h/db", ["cannot be parsed", "percent-encoded"], id="pct-in-password"),
    pytest.param(f"postgresql://h/db?password={PW}%zz&x=1", ["cannot be parsed", "percent-encoded"], id="pct-query-pw"),
    pytest.param(f"postgresql://u:{PW} x@h/db", ["cannot be parsed", "spaces"], id="space-in-password"),
    pytest.param(f"host=h password='{PW}", ["cannot be parsed"], id="kv-unterminated-quote"),
]


@pytest.mark.parametrize(("value", "words"), REFUSED)
@pytest.mark.parametrize("given_as", ["env", "option"])
def test_refused_forms_name_the_setting_and_the_token(monkeypatch, value, words, given_as):
    if given_as == "env":
        monkeypatch.setenv(ENV_DATABASE_URL, value)
    with pytest.raises(ConfigError) as raised:
        settings_from_env(value if given_as == "option" else None)
    message = str(raised.value)
    source = ENV_DATABASE_URL if given_as == "env" else "--database-url"
    assert message.startswith(f"{source}: ")
    for word in words:
        assert word in message
    assert PW not in message
    assert "\n" not in message  # one paragraph
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("value", [None, "", "   "])
def test_no_database(value):
    with pytest.raises(ConfigError, match="No database given: set Z4J_DATABASE_URL or pass --database-url"):
        parse_database_url(value)


# --------------------------------------------------------------------------- libpq's environment defaults


def test_a_port_list_is_counted_against_pghost(monkeypatch):
    monkeypatch.setenv("PGHOST", "h1,h2")
    assert parse_database_url("port=5432,5433 dbname=db").params["port"] == "5432,5433"
    monkeypatch.setenv("PGHOST", "h1,h2,h3")
    with pytest.raises(ConfigError, match=r"for 3 hosts \(host='h1,h2,h3' from PGHOST\)"):
        parse_database_url("port=5432,5433 dbname=db")


def test_a_host_list_is_counted_against_pgport(monkeypatch):
    monkeypatch.setenv("PGPORT", "5432,5433,5434")
    with pytest.raises(ConfigError, match=r"3 ports \(port='5432,5433,5434' from PGPORT\) for 2 hosts"):
        parse_database_url("host=h1,h2 dbname=db")  # (a URL always has a port list: h1,h2 gives ',')
    monkeypatch.setenv("PGPORT", "5432")
    assert parse_database_url("host=h1,h2 dbname=db").display == "postgresql://h1,h2/db"


def test_a_service_from_the_environment_may_supply_the_hosts(monkeypatch):
    monkeypatch.setenv("PGSERVICE", "prod")
    assert parse_database_url("port=5432,5433").params == {"port": "5432,5433"}
