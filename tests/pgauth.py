"""Roles for the bad-input and security suites: real password checks and least privilege.

The local test cluster trusts 127.0.0.1, so a wrong password would be
accepted. `password_role` puts one scram-sha-256 rule for one role at the top
of pg_hba.conf and reloads (a reload, not a restart: other tests keep
running), then removes it again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql


def _admin(pg_server) -> psycopg.Connection:
    return psycopg.connect(pg_server.admin_url, autocommit=True)


@contextmanager
def login_role(pg_server, *, password: str | None = None, owns: str | None = None, prefix: str = "r") -> Iterator[str]:
    """A LOGIN role (not superuser); optionally the owner of database `owns`. Dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin(pg_server) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(password)
            )
        )
        if owns:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(owns), sql.Identifier(name)))
    try:
        yield name
    finally:
        with _admin(pg_server) as conn:
            if owns:
                conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO CURRENT_USER").format(sql.Identifier(owns)))
            for row in conn.execute("SELECT datname FROM pg_database WHERE datallowconn").fetchall():
                # REASSIGN/DROP OWNED are per database: clean every database the role may have touched.
                with psycopg.connect(pg_server.url_for(row[0]), autocommit=True) as db:
                    db.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@contextmanager
def password_checked(pg_server, role: str) -> Iterator[None]:
    """Make the server check `role`'s password (scram-sha-256) on 127.0.0.1 connections."""
    local = pg_server.local
    if local is None:
        pytest.skip("needs the local test cluster to edit pg_hba.conf (Z4J_TEST_DATABASE_URL is an external server)")
    hba = local.data_dir / "pg_hba.conf"
    original = hba.read_text()
    rule = f"host    all    {role}    127.0.0.1/32    scram-sha-256\n"
    _rewrite(hba, rule + original)
    try:
        _reload_until(pg_server, role, enforced=True)
        yield
    finally:
        _rewrite(hba, hba.read_text().replace(rule, ""))
        _reload_until(pg_server, role, enforced=False)


def _rewrite(path, text: str) -> None:
    with path.open("r+") as fh:  # keep the owner (the server user) and mode
        fh.seek(0)
        fh.write(text)
        fh.truncate()


def _reload_until(pg_server, role: str, *, enforced: bool) -> None:
    """pg_reload_conf() is asynchronous: wait until a password-less login shows the new rule."""
    with _admin(pg_server) as conn:
        conn.execute("SELECT pg_reload_conf()")
    url = pg_server.url_for("postgres", user=role)
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(url, connect_timeout=5).close()
            now_enforced = False
        except psycopg.OperationalError as exc:
            now_enforced = "password" in str(exc)
        if now_enforced == enforced:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"pg_hba.conf reload did not take effect for {role} (enforced={enforced})")
        time.sleep(0.05)
