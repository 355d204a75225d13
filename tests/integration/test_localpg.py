"""Real-server tests for z4j_migrate.localpg (no mocks).

Why: every other integration test stands on these throwaway clusters, so they
must work with each PostgreSQL we support: Debian's 15 and the npm-fetched 18.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from helpers import run_cli

from z4j_migrate.localpg import (
    LocalPostgres,
    LocalPostgresError,
    default_pg18_dir,
    find_bindir,
    make_base_dir,
)

EXTENSIONS = ("pgcrypto", "citext", "pg_trgm")


def _pg15_bindir() -> Path | None:
    path = Path("/usr/lib/postgresql/15/bin")
    return path if (path / "postgres").exists() else None


def _pg18_bindir() -> Path | None:
    env = os.environ.get("Z4J_PG18_BINDIR", "").strip()
    path = Path(env) if env else default_pg18_dir() / "current" / "native" / "bin"
    return path if (path / "postgres").exists() else None


def _bindir_param(major: int) -> object:
    bindir = _pg15_bindir() if major == 15 else _pg18_bindir()
    reason = (
        "Debian PostgreSQL 15 not installed (make install-pg15)"
        if major == 15
        else "PostgreSQL 18 not fetched (scripts/fetch-pg18.sh or Z4J_PG18_BINDIR)"
    )
    return pytest.param(
        (major, bindir),
        id=f"pg{major}",
        marks=pytest.mark.skipif(bindir is None, reason=reason),
    )


VERSIONS = [_bindir_param(15), _bindir_param(18)]


@pytest.fixture
def base_dir() -> Iterator[Path]:
    """A fresh dir under /tmp (pytest's tmp_path is not traversable by the server user)."""
    path = make_base_dir("z4j-test-localpg-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=VERSIONS)
def cluster(request: pytest.FixtureRequest, base_dir: Path) -> Iterator[tuple[int, LocalPostgres]]:
    major, bindir = request.param
    pg = LocalPostgres(base_dir, bindir=bindir, settings={"work_mem": "7MB"})
    pg.start()
    try:
        yield major, pg
    finally:
        pg.destroy()


def _scalar(url: str, sql: str) -> object:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return row[0]


def test_start_version_extensions_and_settings(cluster: tuple[int, LocalPostgres]) -> None:
    major, pg = cluster
    assert pg.major_version == major
    assert pg.url == f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        num = conn.execute("SHOW server_version_num").fetchone()
        assert num is not None and int(num[0]) // 10000 == pg.major_version
        for ext in EXTENSIONS:
            conn.execute(f"CREATE EXTENSION {ext}")
        row = conn.execute(
            "SELECT length(gen_random_bytes(4)), 'ABC'::citext = 'abc', similarity('word', 'words')"
        ).fetchone()
        assert row is not None and row[0] == 4 and row[1] is True and row[2] > 0
        for name, expected in [
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("listen_addresses", "127.0.0.1"),
            ("work_mem", "7MB"),
            ("server_encoding", "UTF8"),
        ]:
            value = conn.execute(f"SHOW {name}").fetchone()
            assert value is not None and value[0] == expected, name
        user = conn.execute("SELECT current_user, usesuper FROM pg_user WHERE usename = current_user")
        assert user.fetchone() == ("postgres", True)
    assert pg.log_path.is_file()
    assert (pg.base_dir / "port").read_text().strip() == str(pg.port)


def test_unix_socket_in_base_dir(cluster: tuple[int, LocalPostgres]) -> None:
    _, pg = cluster
    assert pg.socket_dir == pg.base_dir
    assert (pg.base_dir / f".s.PGSQL.{pg.port}").exists()
    with psycopg.connect(host=str(pg.socket_dir), port=pg.port, user="postgres", dbname="postgres") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_restart_immediate_recovers(cluster: tuple[int, LocalPostgres]) -> None:
    _, pg = cluster
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")  # WAL must be written before the crash
        conn.execute("CREATE TABLE survivor (id int)")
        conn.execute("INSERT INTO survivor VALUES (42)")
    pid_before = pg.pid
    log_size = pg.log_path.stat().st_size
    pg.restart("immediate")
    assert pg.is_running()
    assert pg.pid is not None and pg.pid != pid_before
    assert _scalar(pg.url, "SELECT id FROM survivor") == 42
    log = pg.log_path.read_text()[log_size:]
    assert "immediate shutdown" in log
    assert "automatic recovery in progress" in log


def test_stop_is_idempotent_and_start_reuses_data(cluster: tuple[int, LocalPostgres]) -> None:
    _, pg = cluster
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 1 AS x")
    port = pg.port
    pg.stop()
    assert not pg.is_running()
    pg.stop()
    pg.stop("immediate")
    pg.start()
    assert pg.port == port
    assert _scalar(pg.url, "SELECT x FROM kept") == 1


def test_stop_before_start_is_noop(base_dir: Path) -> None:
    pg = LocalPostgres(base_dir / "never-started")
    pg.stop()
    assert not pg.is_running()


def test_second_instance_reuses_running_cluster(cluster: tuple[int, LocalPostgres]) -> None:
    _, pg = cluster
    other = LocalPostgres(pg.base_dir)
    assert other.bindir == pg.bindir  # remembered in base_dir/bindir
    other.start()
    assert other.port == pg.port
    assert other.pid == pg.pid


def test_context_manager_and_explicit_port(base_dir: Path) -> None:
    bindir = _pg15_bindir() or _pg18_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries available")
    probe = LocalPostgres(base_dir / "probe", bindir=bindir)
    port = probe.port  # a free port picked by the kernel
    with LocalPostgres(base_dir / "ctx", bindir=bindir, port=port) as pg:
        assert pg.port == port
        assert _scalar(pg.url, "SELECT 1") == 1
    assert not pg.is_running()


@pytest.mark.skipif(os.geteuid() != 0, reason="root-only behaviour")
def test_root_runs_server_as_unprivileged_user(cluster: tuple[int, LocalPostgres]) -> None:
    _, pg = cluster
    owner = pg.data_dir.stat().st_uid
    assert owner != 0
    assert pg.pid is not None
    assert Path(f"/proc/{pg.pid}").stat().st_uid == owner


@pytest.mark.skipif(os.geteuid() != 0, reason="root-only behaviour")
def test_root_untraversable_parent_is_a_clear_error(base_dir: Path) -> None:
    locked = base_dir / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRWXU)  # 0700, owned by root
    with pytest.raises(LocalPostgresError, match="not searchable"):
        LocalPostgres(locked / "cluster").start()


@pytest.mark.skipif(os.geteuid() != 0, reason="root-only behaviour")
def test_root_refuses_to_chown_a_foreign_dir(base_dir: Path) -> None:
    (base_dir / "somebody-elses-file").write_text("x")
    with pytest.raises(LocalPostgresError, match="not empty"):
        LocalPostgres(base_dir).start()
    assert base_dir.stat().st_uid == 0


def test_find_bindir_honours_env(monkeypatch: pytest.MonkeyPatch, base_dir: Path) -> None:
    bindir = _pg18_bindir() or _pg15_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries available")
    monkeypatch.setenv("Z4J_PG_BINDIR", str(bindir))
    assert find_bindir() == bindir.resolve()
    assert LocalPostgres(base_dir).bindir == bindir.resolve()
    other = _pg15_bindir()
    if other is not None:
        assert find_bindir(other) == other.resolve()  # explicit beats the env


def test_find_bindir_without_env_finds_something(monkeypatch: pytest.MonkeyPatch) -> None:
    if _pg15_bindir() is None:
        pytest.skip("Debian PostgreSQL 15 not installed")
    monkeypatch.delenv("Z4J_PG_BINDIR", raising=False)
    found = find_bindir()
    for exe in ("initdb", "pg_ctl", "postgres"):
        assert (found / exe).is_file()


def test_bogus_env_bindir_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, base_dir: Path) -> None:
    monkeypatch.setenv("Z4J_PG_BINDIR", "/nonexistent/z4j/bin")
    with pytest.raises(LocalPostgresError) as info:
        find_bindir()
    message = str(info.value)
    assert "Z4J_PG_BINDIR" in message
    assert "/nonexistent/z4j/bin" in message
    assert "install-pg15" in message and "fetch-pg18.sh" in message
    with pytest.raises(LocalPostgresError):
        LocalPostgres(base_dir)


def test_wrapper_scripts_are_not_a_bindir(base_dir: Path) -> None:
    """Debian's /usr/bin shims are scripts; they must not pass for server binaries."""
    fake = base_dir / "bin"
    fake.mkdir()
    for name in ("initdb", "pg_ctl", "postgres"):
        exe = fake / name
        exe.write_text("#!/bin/sh\nexec true\n")
        exe.chmod(0o755)
    with pytest.raises(LocalPostgresError, match="wrapper script"):
        find_bindir(fake)


def test_cli_start_url_stop(base_dir: Path) -> None:
    bindir = _pg15_bindir() or _pg18_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries available")
    cli = functools.partial(run_cli, module="z4j_migrate.localpg")

    directory = str(base_dir / "cli")
    try:
        first = cli("start", "--dir", directory, "--bindir", str(bindir))
        assert first.returncode == 0, first.stderr
        url = first.stdout.strip()
        assert url.startswith("postgresql://postgres@127.0.0.1:") and "\n" not in url
        assert _scalar(url, "SELECT 1") == 1
        again = cli("start", "--dir", directory)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == url
        shown = cli("url", "--dir", directory)
        assert shown.returncode == 0 and shown.stdout.strip() == url
    finally:
        stopped = cli("stop", "--dir", directory)
    assert stopped.returncode == 0, stopped.stderr
    assert cli("stop", "--dir", directory).returncode == 0
    assert not LocalPostgres(directory).is_running()
    missing = cli("url", "--dir", str(base_dir / "nothing-here"))
    assert missing.returncode != 0 and missing.stdout == ""
