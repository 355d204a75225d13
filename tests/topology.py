"""Real PgBouncer and streaming-standby processes around the suite's throwaway cluster.

Why: production puts a transaction pooler or a read-only standby between a deploy and the
primary, and the engine must cope with what those really do (rejected startup parameters,
session state shared between clients, SQLSTATE 25006).  A mock would only encode our guess of
that behaviour, so these start the real programs: Debian's /usr/sbin/pgbouncer
(scripts/install-pgbouncer.sh) and a hot standby from a base backup with the same bindir.

Both run as the unprivileged server user when we are root (PgBouncer and PostgreSQL refuse to
run as root), reusing z4j_migrate.localpg's account handling and free-port helper.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
from psycopg.rows import dict_row

from z4j_migrate.localpg import LocalPostgres, _pick_free_port, _RunAs, make_base_dir

__all__ = ["INSTALL_HINT", "PGBOUNCER_BIN", "PgBouncer", "Standby"]

PGBOUNCER_BIN = Path("/usr/sbin/pgbouncer")
INSTALL_HINT = (
    f"{PGBOUNCER_BIN} is missing: run `bash scripts/install-pgbouncer.sh` "
    "(or `apt-get install pgbouncer`) as root; CI installs it."
)
#: Readiness and shutdown deadlines; generous because CI is a busy 2-core machine.
TIMEOUT_S = 30.0
_POLL_S = 0.05
_PORT_RETRIES = 5
#: Settings a hot standby must have at least as high as its primary, or it refuses to start.
_STANDBY_MINIMA = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def _url(port: int, dbname: str, user: str, params: dict[str, str]) -> str:
    query = f"?{urlencode(params)}" if params else ""
    return f"postgresql://{quote(user, safe='')}@127.0.0.1:{port}/{quote(dbname, safe='')}{query}"


class PgBouncer:
    """PgBouncer 1.18 with stock settings except the few a test rig needs.

    Our ini sets only: a wildcard database pointing at the cluster (so every test database
    works), listen address/port, a private unix socket dir, ``pool_mode``, ``admin_users`` and
    auth.  Auth is ``trust`` with an auth_file naming ``postgres`` plus ``auth_user = postgres``:
    any other role is looked up with PgBouncer's default auth_query, so roles a test creates
    with CREATE ROLE ... LOGIN connect without touching the file; a role that does not exist is
    refused by PgBouncer itself ("no such user").  Everything else (notably an empty
    ignore_startup_parameters, no server_reset_query in transaction mode, default_pool_size)
    stays PgBouncer's default, because that is what the engine meets in the wild.
    """

    def __init__(self, backend_port: int, pool_mode: str, *, admin_user: str = "postgres") -> None:
        if pool_mode not in {"session", "transaction", "statement"}:
            raise ValueError(f"unknown pool_mode {pool_mode!r}")
        self.backend_port = backend_port
        self.pool_mode = pool_mode
        self.admin_user = admin_user
        self.base_dir = make_base_dir("z4j-pgbouncer-")
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.base_dir / "pgbouncer.log"

    def url_for(self, dbname: str, user: str = "postgres", **params: str) -> str:
        """libpq URL to ``dbname`` through the pooler (``params`` become query parameters)."""
        return _url(self.port, dbname, user, params)

    def admin_console(self, command: str) -> list[dict[str, Any]]:
        """Run an admin command (``SHOW POOLS``, ``SHOW SERVERS``, ``SHOW CONFIG``...); its rows.

        The console speaks only the simple query protocol; psycopg uses it for a statement
        without parameters, and autocommit keeps it from sending BEGIN.
        """
        url = self.url_for("pgbouncer", self.admin_user, connect_timeout="10")
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as c:
            return c.execute(command).fetchall()  # type: ignore[arg-type]

    def config(self, key: str) -> str:
        """One setting as the running PgBouncer reports it (SHOW CONFIG)."""
        return next(row["value"] for row in self.admin_console("SHOW CONFIG") if row["key"] == key)

    def _write_ini(self) -> Path:
        who = _RunAs()
        users = self.base_dir / "userlist.txt"
        users.write_text(f'"{self.admin_user}" ""\n')
        ini = self.base_dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.backend_port}\n"
            "\n[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {self.base_dir}\n"
            f"pool_mode = {self.pool_mode}\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            f"auth_user = {self.admin_user}\n"
            f"admin_users = {self.admin_user}\n"
        )
        for path in (self.base_dir, users, ini):
            who.chown(path)
        return ini

    def start(self) -> PgBouncer:
        """Start in the foreground (we own the process) and wait until the console answers."""
        if not PGBOUNCER_BIN.is_file():
            raise FileNotFoundError(INSTALL_HINT)
        for attempt in range(_PORT_RETRIES):
            self.port = _pick_free_port()
            ini = self._write_ini()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [str(PGBOUNCER_BIN), str(ini)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.base_dir,
                    **_RunAs().popen_kwargs(),  # type: ignore[arg-type]
                )
            if self._wait_ready(offset):
                return self
            tail = self.log_path.read_bytes()[offset:].decode("utf-8", "replace")
            self.stop(remove=False)
            if "in use" in tail and attempt + 1 < _PORT_RETRIES:
                continue  # the free port was taken between picking and binding
            raise RuntimeError(f"pgbouncer did not start on port {self.port}:\n{tail[-3000:]}")
        raise AssertionError("unreachable")

    def _wait_ready(self, offset: int) -> bool:
        """Poll the log, then the console; False once it exited or could not bind the TCP port.

        PgBouncer 1.18 only warns when the TCP bind fails and keeps serving its unix socket, so
        the log, not the exit status, tells a lost port race.
        """
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._proc is not None
            log = self.log_path.read_bytes()[offset:].decode("utf-8", "replace")
            if self._proc.poll() is not None or "cannot listen on" in log:
                return False
            if f"listening on 127.0.0.1:{self.port}" in log:
                with contextlib.suppress(psycopg.OperationalError):
                    # Our socket dir in the answer: not some other pooler that holds the port.
                    if self.config("unix_socket_dir") == str(self.base_dir):
                        return True
            time.sleep(_POLL_S)
        return False

    def stop(self, *, remove: bool = True) -> None:
        """SIGTERM (PgBouncer's immediate shutdown), SIGKILL if it lingers; then drop its dir."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(TIMEOUT_S)
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"PgBouncer(pool_mode={self.pool_mode!r}, port={self.port}, backend_port={self.backend_port})"


class Standby:
    """A streaming hot standby of ``primary``: a base backup started with ``standby.signal``.

    It uses the primary's bindir and server user, lives in its own /tmp dir on its own port and
    streams through a physical replication slot, so the primary keeps every WAL segment the
    standby still needs however slow a busy CI machine makes replay.  The primary's pg_hba
    (localpg) already trusts replication connections from 127.0.0.1.

    The backup is ``pg_basebackup -R`` when the bindir has it (Debian's PostgreSQL 15).  The
    npm PostgreSQL 18 build ships only initdb, pg_ctl and postgres, and an older pg_basebackup
    refuses a newer server, so there we take the same backup through the server's low-level
    API (pg_backup_start, copy, pg_backup_stop) and write what ``-R`` would have written.
    """

    def __init__(self, primary: LocalPostgres) -> None:
        self.primary = primary
        self.slot = f"z4j_standby_{uuid.uuid4().hex[:12]}"
        self.local: LocalPostgres | None = None

    @property
    def port(self) -> int:
        assert self.local is not None, "standby not started"
        return self.local.port

    def url_for(self, dbname: str, user: str = "postgres", **params: str) -> str:
        return _url(self.port, dbname, user, params)

    def start(self) -> Standby:
        """Base backup, then start with the primary's capacity settings (a standby needs them >=)."""
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            rows = conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(_STANDBY_MINIMA)])
            settings = {name: setting for name, setting in rows.fetchall()}
            # Reserve WAL now, before the backup's checkpoint, so nothing the standby needs is recycled.
            conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", [self.slot])
        settings["hot_standby"] = "on"
        standby = LocalPostgres(make_base_dir("z4j-standby-"), bindir=self.primary.bindir, settings=settings)
        self.local = standby
        _RunAs().chown(standby.base_dir)
        if (standby.bindir / "pg_basebackup").is_file():
            # localpg's runner: drops to the server user with a clean PG*-free environment.
            standby._run(
                [
                    str(standby.bindir / "pg_basebackup"),
                    f"--dbname={self._primary_conninfo}",
                    f"--pgdata={standby.data_dir}",
                    "--write-recovery-conf",
                    "--wal-method=stream",
                    "--checkpoint=fast",
                    f"--slot={self.slot}",
                    "--no-sync",
                ]
            )
        else:
            self._low_level_backup(standby.data_dir)
        standby.start()  # rewrites port/socket settings; pg_ctl -w waits until it accepts connections
        return self

    @property
    def _primary_conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.primary.port} user=postgres"

    def _low_level_backup(self, dest: Path) -> None:
        """What pg_basebackup -R does, via SQL and a file copy (the PostgreSQL docs' recipe)."""
        source = self.primary.data_dir
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            conn.execute("SELECT pg_backup_start('z4j standby', true)")
            for root, dirs, files in os.walk(source):
                rel = Path(root).relative_to(source)
                (dest / rel).mkdir(mode=0o700, exist_ok=True)
                top = rel.parts[0] if rel.parts else ""
                if top == "pg_replslot":
                    dirs.clear()  # the primary's slots (ours included) are not the standby's
                # WAL comes by streaming; postmaster.pid/.opts describe the running primary.
                skip = set(files) if top in {"pg_wal", "pg_replslot"} else {"postmaster.pid", "postmaster.opts"}
                for name in set(files) - skip:
                    with contextlib.suppress(FileNotFoundError):  # vanished mid-copy: WAL replay redoes it
                        shutil.copy2(Path(root) / name, dest / rel / name)
            label = conn.execute("SELECT labelfile FROM pg_backup_stop(false)").fetchone()[0]  # type: ignore[index]
        (dest / "backup_label").write_text(label)
        (dest / "standby.signal").touch()
        with (dest / "postgresql.auto.conf").open("a") as fh:
            fh.write(f"primary_conninfo = '{self._primary_conninfo}'\nprimary_slot_name = '{self.slot}'\n")
        who = _RunAs()
        who.chown(dest)
        for root, dirs, files in os.walk(dest):
            for name in (*dirs, *files):
                who.chown(Path(root) / name)

    def wait_for_replay(self, timeout_s: float = TIMEOUT_S) -> str:
        """Block until the standby has replayed the primary's current WAL position; that LSN."""
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            target = str(conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])  # type: ignore[index]
        deadline = time.monotonic() + timeout_s
        with psycopg.connect(self.url_for("postgres"), autocommit=True) as conn:
            while True:
                replayed, done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
                ).fetchone()  # type: ignore[misc]
                if done:
                    return target
                if time.monotonic() > deadline:
                    raise TimeoutError(f"standby replayed up to {replayed}, primary at {target} after {timeout_s}s")
                time.sleep(_POLL_S)

    def stop(self) -> None:
        """Stop the standby, drop its slot on the primary (once the walsender let go), delete it."""
        if self.local is not None:
            self.local.stop()
        deadline = time.monotonic() + TIMEOUT_S
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            query = "SELECT active FROM pg_replication_slots WHERE slot_name = %s"
            while (row := conn.execute(query, [self.slot]).fetchone()) and row[0] and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            with contextlib.suppress(psycopg.Error):
                drop = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s"
                conn.execute(drop, [self.slot])
        if self.local is not None:
            shutil.rmtree(self.local.base_dir, ignore_errors=True)
            self.local = None

    def __repr__(self) -> str:
        return f"Standby(port={self.local.port if self.local else None}, primary_port={self.primary.port})"
