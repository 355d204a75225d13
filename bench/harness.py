"""Plumbing for bench/run.py: the cluster, timed processes, the statement log, fingerprints."""

from __future__ import annotations

import functools
import hashlib
import json
import marshal
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from z4j_migrate.testing import Z4jServer

REPO = Path(__file__).resolve().parent.parent
HARNESS_APP = "bench-harness"


class BenchError(RuntimeError):
    pass


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every timed process: as a deploy runs it.

    Bytecode caching stays on (an installed wheel ships .pyc files; alembic caches its
    revision modules), PG* and Z4J_* variables of the caller are dropped.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONDONTWRITEBYTECODE" and not k.startswith(("PG", "Z4J_", "BENCH_"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env.update(extra or {})
    return env


@dataclass
class Run:
    ms: float
    maxrss_kb: int
    floor_kb: int = 0  # the spawner's own peak RSS: a maxrss_kb at or below it means "at most this"


class _Spawner:
    """bench/spawn.py: spawns the timed processes, so that the harness's own size stays out of their
    peak RSS (see that file); it times fork to reaped, as run_process did here before."""

    def __init__(self) -> None:
        self.err = tempfile.TemporaryFile()  # noqa: SIM115  (the children's stderr, emptied per run)
        fd = self.err.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(Path(__file__).parent / "spawn.py"), str(fd)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(fd,),
        )

    def stderr_tail(self) -> str:
        fd = self.err.fileno()
        size = os.fstat(fd).st_size
        return os.pread(fd, 3000, max(0, size - 3000)).decode("utf-8", "replace")

    def run(self, args: list[str], env: dict[str, str], cwd: Path | None) -> tuple[int, Run]:
        fd = self.err.fileno()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        request = ([os.fspath(a) for a in args], dict(env), os.fspath(cwd) if cwd is not None else None)
        try:
            marshal.dump(request, self.proc.stdin)
            self.proc.stdin.flush()
            code, ms, maxrss_kb, floor_kb = marshal.load(self.proc.stdout)
        except (EOFError, OSError) as exc:
            raise BenchError(f"bench/spawn.py died ({exc!r}, exit {self.proc.poll()}):\n{self.stderr_tail()}") from exc
        return code, Run(ms, maxrss_kb, floor_kb)


_spawner: _Spawner | None = None


def run_process(args: list[str], env: dict[str, str], *, cwd: Path | None = None, what: str = "") -> Run:
    """Wall time of one whole process (fork to reaped), and its own peak RSS from wait4().

    Both are taken in bench/spawn.py, a small process that spawns it: spawned from this process, its
    ru_maxrss would never show less than the harness's own peak RSS.
    """
    global _spawner
    if _spawner is None or _spawner.proc.poll() is not None:
        _spawner = _Spawner()
    code, run = _spawner.run(args, env, cwd)
    if code != 0:
        raise BenchError(f"{what or args[0]} exited with {code}:\n{' '.join(map(str, args))}\n{_spawner.stderr_tail()}")
    return run


class Admin:
    """The harness's own connections (application_name bench-harness, left out of every count)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def url(self, db: str, scheme: str = "postgresql") -> str:
        return self.base_url.rsplit("/", 1)[0].replace("postgresql", scheme, 1) + f"/{db}"

    def connect(self, db: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(db), autocommit=True, application_name=HARNESS_APP)

    @functools.cached_property
    def server(self) -> Z4jServer:
        """The throwaway databases: made and dropped as the test suite's are (z4j_migrate.testing)."""
        return Z4jServer.at(make_conninfo(self.url("postgres"), application_name=HARNESS_APP))

    def create_db(self, db: str) -> None:
        """Database `db`, new and empty (dropped first if it is there)."""
        self.server.drop_database(db)
        self.server.create_database(name=db)

    def reset(self, db: str) -> None:
        """Empty the database: everything the tools create lives in public.

        Then VACUUM it: with autovacuum off, every apply/rollback cycle would leave its dead catalog
        rows behind, and later rounds (and catalog-heavy work such as snapshots) would slow down.
        """
        with self.connect(db) as conn:
            conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            conn.execute("VACUUM")

    def log_statements(self, db: str, on: bool) -> None:
        with self.connect() as conn:
            if on:
                conn.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(sql.Identifier(db)))
            else:
                conn.execute(sql.SQL("ALTER DATABASE {} RESET log_statement").format(sql.Identifier(db)))

    def scalar(self, db: str, query: str) -> object:
        with self.connect(db) as conn:
            row = conn.execute(query).fetchone()
            return row[0] if row else None


# ---------------------------------------------------------------------------- catalog fingerprint

_FINGERPRINT_QUERIES = {
    "relation": "SELECT c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relname LIKE 'pb\\_%' ORDER BY 1",
    "column": "SELECT c.relname || '.' || a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
    "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
    "AND d.adnum = a.attnum WHERE n.nspname = 'public' AND c.relname LIKE 'pb\\_%' AND a.attnum > 0 "
    "AND NOT a.attisdropped ORDER BY 1",
    "constraint": "SELECT conrelid::regclass::text || '.' || conname, pg_get_constraintdef(k.oid) FROM pg_constraint k "
    "JOIN pg_namespace n ON n.oid = k.connamespace WHERE n.nspname = 'public' AND conrelid <> 0 "
    "AND conrelid::regclass::text LIKE 'pb\\_%' ORDER BY 1",
    "index": "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relname LIKE 'pb\\_%' ORDER BY 1",
    "function": "SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', md5(p.prosrc), "
    "p.provolatile::text, l.lanname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
    "JOIN pg_language l ON l.oid = p.prolang WHERE n.nspname = 'public' AND p.proname LIKE 'pb\\_%' ORDER BY 1",
    "trigger": "SELECT t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND NOT t.tgisinternal "
    "AND t.tgname LIKE 'pb\\_%' ORDER BY 1",
    "enum": "SELECT t.typname, string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_type t "
    "JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace "
    "WHERE n.nspname = 'public' AND t.typname LIKE 'pb\\_%' GROUP BY 1 ORDER BY 1",
    "view": "SELECT c.relname, md5(pg_get_viewdef(c.oid)) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind = 'v' AND c.relname LIKE 'pb\\_%' ORDER BY 1",
    "comment": "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
    "AND c.relname LIKE 'pb\\_%' ORDER BY 1",
}


@dataclass
class Fingerprint:
    digest: str
    items: int
    tables: int
    detail: dict = field(repr=False, default_factory=dict)

    @property
    def short(self) -> str:
        return f"{self.digest[:8]}.. ({self.items} items)"


def fingerprint(admin: Admin, db: str) -> Fingerprint:
    """Every pb_ object (relations, columns with types/defaults, constraints, indexes, functions
    with body hashes, triggers, enums, views, comments) and the row count of every pb_ table."""
    detail: dict[str, list] = {}
    with admin.connect(db) as conn:
        for kind, query in _FINGERPRINT_QUERIES.items():
            detail[kind] = [list(r) for r in conn.execute(query)]
        tables = [r[0] for r in detail["relation"] if r[1] == "r"]
        if tables:
            union = " UNION ALL ".join(
                sql.SQL("SELECT {}, count(*) FROM {}").format(sql.Literal(t), sql.Identifier(t)).as_string(conn)
                for t in tables
            )
            detail["rows"] = [list(r) for r in conn.execute(union + " ORDER BY 1")]
    blob = json.dumps(detail, sort_keys=True, default=str).encode()
    items = sum(len(v) for v in detail.values())
    return Fingerprint(hashlib.md5(blob).hexdigest(), items, len(tables), detail)


# ---------------------------------------------------------------------------- the statement log

_ENTRY = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \S+ \[(?P<pid>\d+)\] db=(?P<db>\S*) app=(?P<app>.*?) "
    r"(?P<level>LOG|ERROR|FATAL|WARNING|NOTICE|STATEMENT|DETAIL|HINT|CONTEXT|INFO|DEBUG\d?):  (?P<msg>.*)$"
)
_STATEMENT = re.compile(r"^(statement: |execute [^:]*: )")


@dataclass
class Counts:
    statements: int = 0
    errors: int = 0
    connections: int = 0
    statement_texts: list[str] = field(default_factory=list, repr=False)
    error_texts: list[str] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        return {"statements": self.statements, "errors": self.errors, "connections": self.connections}


class ServerLog:
    """Statements, errors and backends per database, from log_statement=all output.

    log_line_prefix is '%m [%p] db=%d app=%a '; the harness's own sessions are left out
    by application_name. Connections are counted as distinct backend pids that logged
    anything for that database during the operation.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size

    def counts(self, since: int, db: str) -> Counts:
        time.sleep(0.05)  # the server writes the log asynchronously to the client's exit
        with self.path.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode("utf-8", "replace")
        out = Counts()
        pids: set[str] = set()
        for line in text.splitlines():
            m = _ENTRY.match(line)
            if m is None or m["db"] != db or m["app"] == HARNESS_APP:
                continue
            pids.add(m["pid"])
            if m["level"] == "LOG" and _STATEMENT.match(m["msg"]):
                out.statements += 1
                out.statement_texts.append(m["msg"][:160])
            elif m["level"] in ("ERROR", "FATAL"):
                out.errors += 1
                out.error_texts.append(m["msg"][:200])
        out.connections = len(pids)
        return out


# ---------------------------------------------------------------------------- in-process workers


class Worker:
    """A long-lived `bench/inproc.py TOOL` process; each call is timed inside it."""

    def __init__(self, tool: str, env: dict[str, str]) -> None:
        self.tool = tool
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "inproc.py"), tool],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        hello = json.loads(self.proc.stdout.readline() or "{}")
        if hello.get("ready") != tool:
            raise BenchError(f"in-process worker {tool} did not start")
        self.initial_modules = hello["modules"]

    def call(self, op: str, url: str, directory: str | None) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, "url": url, "dir": directory}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if answer.get("error"):
            raise BenchError(f"in-process {self.tool} {op} failed: {answer['error']}")
        return answer

    def modules(self) -> list[str]:
        self.proc.stdin.write(json.dumps({"op": "modules"}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["modules"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
