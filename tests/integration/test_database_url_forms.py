"""The connection forms operators use, against a real server: parsed by us, connected by libpq.

Each test builds a string from the suite's server, parses it with
`settings_from_env` (what the CLI does) and connects with
`psycopg.connect(Database.conninfo)`: multi-host with a dead first host (URL and
key=value), one port for every host, target_session_attrs, load_balance_hosts,
a service from a PGSERVICEFILE, a passfile the server really checks, a unix
socket directory.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from pgauth import login_role, password_checked
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from z4j_migrate import errors
from z4j_migrate.config import settings_from_env

SECRET = "Uv4-passfile-Pw-2718"  # distinctive: appears nowhere unless we leak it


@pytest.fixture(autouse=True)
def _no_libpq_environment(monkeypatch):
    """libpq defaults from the environment would change which host is tried; secrets from other tests mask words."""
    for name in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(errors, "_SECRETS", set(errors._SECRETS))


@pytest.fixture
def target(database_url):
    """host, port, dbname, user, password of the test database (password may be empty)."""
    info = conninfo_to_dict(database_url)
    host = info.get("host") or "127.0.0.1"
    if host.startswith("/"):
        pytest.skip("the test server is reached through a unix socket; these tests need TCP")
    return {
        "host": host,
        "port": str(info.get("port") or 5432),
        "dbname": info["dbname"],
        "user": info.get("user", ""),
        "password": info.get("password", ""),
    }


@pytest.fixture
def dead_port(target) -> str:
    """A port nothing listens on: bound, then released."""
    with socket.socket(socket.AF_INET6 if ":" in target["host"] else socket.AF_INET) as sock:
        sock.bind((target["host"], 0))
        return str(sock.getsockname()[1])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _auth(t) -> str:
    user = quote(t["user"], safe="")
    return f"{user}:{quote(t['password'], safe='')}@" if t["password"] else (f"{user}@" if user else "")


def _connect_through_settings(value: str, **kwargs) -> tuple[psycopg.Connection, object]:
    settings = settings_from_env(value)
    conn = psycopg.connect(settings.database.conninfo, autocommit=True, connect_timeout=10, **kwargs)
    return conn, settings


def _where(conn: psycopg.Connection) -> tuple[str, int]:
    return conn.execute("SELECT current_database(), inet_server_port()").fetchone()


def test_multi_host_url_skips_a_dead_first_host(target, dead_port):
    h = _url_host(target["host"])
    url = (
        f"postgresql://{_auth(target)}{h}:{dead_port},{h}:{target['port']}/{target['dbname']}"
        "?target_session_attrs=read-write"
    )
    conn, settings = _connect_through_settings(url)
    with conn:
        assert _where(conn) == (target["dbname"], int(target["port"]))
    params = settings.database.params
    assert params["host"] == f"{target['host']},{target['host']}"
    assert params["port"] == f"{dead_port},{target['port']}"
    shown = f"{h}:{dead_port},{h}:{target['port']}/{target['dbname']}?target_session_attrs=read-write"
    assert settings.database.display.endswith(shown)
    if target["password"]:
        assert target["password"] not in settings.database.display


def test_multi_host_key_value_skips_a_dead_first_host(target, dead_port):
    value = make_conninfo(
        host=f"{target['host']},{target['host']}",
        port=f"{dead_port},{target['port']}",
        dbname=target["dbname"],
        user=target["user"] or None,
        password=target["password"] or None,
    )
    conn, settings = _connect_through_settings(value)
    with conn:
        assert _where(conn) == (target["dbname"], int(target["port"]))
    assert f",{_url_host(target['host'])}:{target['port']}/" in settings.database.display


def test_one_port_applies_to_every_host(target):
    value = make_conninfo(
        host=f"{target['host']},{target['host']}",
        port=target["port"],
        dbname=target["dbname"],
        user=target["user"] or None,
        password=target["password"] or None,
        load_balance_hosts="random",
    )
    conn, settings = _connect_through_settings(value)
    with conn:
        assert _where(conn) == (target["dbname"], int(target["port"]))
    h = _url_host(target["host"])
    assert f"{h}:{target['port']},{h}:{target['port']}/" in settings.database.display


def test_target_session_attrs_reach_libpq(target, dead_port):
    h = _url_host(target["host"])
    base = f"postgresql://{_auth(target)}{h}:{dead_port},{h}:{target['port']}/{target['dbname']}"
    for wanted in ("any", "read-write", "primary", "prefer-standby"):
        conn, _ = _connect_through_settings(f"{base}?target_session_attrs={wanted}")
        with conn:
            assert _where(conn)[0] == target["dbname"]
    for refused in ("read-only", "standby"):  # the test server is a primary: no host qualifies
        settings = settings_from_env(f"{base}?target_session_attrs={refused}")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(settings.database.conninfo, connect_timeout=10).close()


def test_service_from_a_service_file(target, dead_port, tmp_path, monkeypatch):
    service_file = tmp_path / "pg_service.conf"
    lines = [
        "[z4j_forms]",
        f"host={target['host']},{target['host']}",  # a host list in the file: libpq handles it, we never see it
        f"port={dead_port},{target['port']}",
        f"dbname={target['dbname']}",
        *([f"user={target['user']}"] if target["user"] else []),
        *([f"password={target['password']}"] if target["password"] else []),
    ]
    service_file.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))
    for value in (
        "service=z4j_forms",
        "postgresql://?service=z4j_forms",
        "postgresql:///?service=z4j_forms&target_session_attrs=read-write",
    ):
        conn, settings = _connect_through_settings(value)
        with conn:
            assert _where(conn) == (target["dbname"], int(target["port"]))
        assert "service=z4j_forms" in settings.database.display
    # an override in the string wins over the file
    other = make_conninfo(service="z4j_forms", dbname="postgres")
    conn, settings = _connect_through_settings(other)
    with conn:
        assert _where(conn)[0] == "postgres"
    assert settings.database.display == "postgresql:///postgres?service=z4j_forms"


def test_a_passfile_supplies_the_password(pg_server, database_url, target, tmp_path):
    """The role's password is checked by the server and is in the passfile only, never in the URL."""
    passfile = tmp_path / "pgpass"
    with login_role(pg_server, password=SECRET, owns=target["dbname"]) as role, password_checked(pg_server, role):
        passfile.write_text(f"{target['host']}:{target['port']}:{target['dbname']}:{role}:{SECRET}\n")
        passfile.chmod(0o600)  # libpq ignores a passfile others may read
        url = (
            f"postgresql://{role}@{_url_host(target['host'])}:{target['port']}/{target['dbname']}"
            f"?passfile={quote(str(passfile), safe='/')}"
        )
        conn, settings = _connect_through_settings(url)
        with conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == role
        assert settings.database.params["passfile"] == str(passfile)
        assert SECRET not in settings.database.display and SECRET not in settings.database.conninfo
        # without the passfile the same URL is refused: the password really came from the file
        bare = url.split("?")[0] + f"?passfile={quote(str(tmp_path / 'missing'), safe='/')}"
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(settings_from_env(bare).database.conninfo, connect_timeout=10).close()


def test_unix_socket_directory(pg_server, target):
    socket_dir: Path | None = getattr(pg_server.local, "socket_dir", None)
    if socket_dir is None:
        pytest.skip("needs the local test cluster with a unix socket directory")
    user = quote(target["user"], safe="")
    for value in (
        f"postgresql://{user}@/{target['dbname']}?host={quote(str(socket_dir), safe='/')}&port={target['port']}",
        make_conninfo(host=str(socket_dir), port=target["port"], dbname=target["dbname"], user=target["user"]),
    ):
        conn, settings = _connect_through_settings(value)
        with conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == target["dbname"]
            assert conn.info.host == str(socket_dir)
        assert settings.database.display == (
            f"postgresql://{user}@/{target['dbname']}?host={socket_dir}&port={target['port']}"
        )
