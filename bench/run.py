"""Benchmark z4j-migrate against stock yoyo, Alembic, dbmate and the psql floor.

`make bench` runs this. One run, one throwaway PostgreSQL cluster, every tool on the
same synthetic revision sets (N = 10, 100, 1000; bench/gen.py):

1. verify: each tool applies the set once (catalog fingerprint must equal the psql
   floor's, bookkeeping must count N) and rolls it back (nothing left), with
   log_statement=all on its database: statements, ERROR lines and connections per
   operation come from that log;
2. time whole processes (as a deploy script runs them): full apply from empty, then full
   rollback, in rounds (every tool once per round, the order rotated), then no-op apply
   and status; z4j-nosum (z4j-migrate on the same files without z4j-migrate.sum) takes part
   in no-op and status only, against the database z4j migrated;
3. time library calls in-process (bench/inproc.py: psycopg and the library already
   imported; each call opens its own connection);
4. the bundled z4j set: upgrade head, no-op, downgrade base, and the full round trip;
5. start-up and import costs;
6. the no-op upgrade process at the largest N by invocation form: settings from the environment
   only, and every setting on the command line (`-q --database-url URL --migrations-dir DIR
   upgrade`), side by side with python's connect + SELECT 1 (`--only cli-forms` runs just this).

It prints one table and writes docs/performance.md (raw numbers: bench/out/latest.json).

    python bench/run.py [--quick] [--sizes 10,100,1000] [--no-docs] [--skip dbmate,...] [--only cli-forms]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fleet  # noqa: E402
import gen  # noqa: E402
import report  # noqa: E402
import verifyrow  # noqa: E402
from harness import (  # noqa: E402
    REPO,
    Admin,
    BenchError,
    ServerLog,
    Worker,
    child_env,
    fingerprint,
    run_process,
)

OUT = HERE / "out"
VENV_BIN = Path(sys.executable).parent
DBMATE = next(
    iter(sorted((OUT / "npm" / "node_modules" / "@dbmate").glob("*/bin/dbmate"))),
    OUT / "npm" / "node_modules" / "@dbmate" / "linux-x64" / "bin" / "dbmate",
)  # the npm package's native binary: its node wrapper adds ~85 ms to every call
PSQL = shutil.which("psql") or "/usr/bin/psql"


def _first_value(path: str, key: str, sep: str) -> str:
    """The value of the first `key<sep>value` line of a system file, or "?"."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(sep, 1)[1].strip()
    except (OSError, IndexError):
        pass
    return "?"


# label, ops it takes part in (process form)
TOOLS = {
    "psql-tx": ("psql floor: one transaction + one INSERT per revision", ("apply", "noop", "status", "rollback")),
    "psql-1": ("psql -1: whole file in one transaction, no bookkeeping", ("apply", "rollback")),
    "py-select1": ('python -c "import psycopg; connect; SELECT 1"', ("noop", "status")),
    "pyfloor": ("python floor (bench/pyfloor.py, psycopg)", ("apply", "noop", "status", "rollback")),
    "z4j": ("z4j-migrate", ("apply", "noop", "status", "rollback")),
    "z4j-nosum": ("z4j-migrate without z4j-migrate.sum (hashes every file)", ("noop", "status")),
    "yoyo": ("yoyo (stock CLI)", ("apply", "noop", "status", "rollback")),
    "alembic": ("alembic (stock env.py)", ("apply", "noop", "status", "rollback")),
    "dbmate": ("dbmate (native binary)", ("apply", "noop", "status", "rollback")),
}
INPROC = ("pyfloor", "z4j", "z4j-nosum", "yoyo", "alembic")
# Variants that measure another tool's database as that tool left it (they apply nothing themselves):
# z4j-nosum is z4j-migrate on a copy of the z4j directory without z4j-migrate.sum, so the same .sql
# files and checksums, against the database "z4j" migrated.
SHARES_DB = {"z4j-nosum": "z4j"}
BOOKKEEPING = {
    "psql-tx": "_floor_migrations",
    "pyfloor": "_floor_migrations",
    "z4j": "_yoyo_migration",
    "z4j-nosum": "_yoyo_migration",
    "yoyo": "_yoyo_migration",
    "dbmate": "schema_migrations",
}


def db_of(tool: str) -> str:
    return "b_" + SHARES_DB.get(tool, tool).replace("-", "_")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = [int(s) for s in args.sizes.split(",")]
        self.skip = set(filter(None, args.skip.split(",")))
        self.skip |= {variant for variant, owner in SHARES_DB.items() if owner in self.skip}
        self.tools = [t for t in TOOLS if t not in self.skip]
        self.inproc = [t for t in INPROC if t not in self.skip]
        self.results: dict = {
            "rounds": {},
            "rss": {},
            "counts": {},
            "verify": [],
            "first_apply": {},
            "sizes": self.sizes,
            "tools": {t: TOOLS[t][0] for t in self.tools},
        }
        self.env = child_env()
        self.started = time.perf_counter()

    # ------------------------------------------------------------------ helpers

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f}s] {msg}", flush=True)

    def reps(self, form: str, op: str, n: int, tool: str | None = None) -> int:
        """Repetitions per cell: many for fast cells, few for the slow peers at the largest N
        (the whole `make bench` must stay well under 10 minutes on 2 cores)."""
        if self.args.quick:
            return 2 if op in ("apply", "rollback") else 3
        if op in ("noop", "status"):
            return 20 if form == "inproc" else (10 if n <= 100 else 8)
        if n < 1000:
            return 5
        if tool == "yoyo":  # ~8 s per run at N=1000, apply and rollback alike
            return 2 if form == "process" else 1
        if tool == "dbmate" and op == "rollback":  # no rollback-all: N processes, ~25 s
            return 1
        return 3

    def url(self, tool: str, scheme: str = "postgresql") -> str:
        return self.admin.url(db_of(tool), scheme)

    def command(self, tool: str, op: str, n: int) -> tuple[list[str], dict[str, str]]:
        base = self.sets[n]
        url = self.url(tool)
        py = sys.executable
        if tool in ("psql-tx", "psql-1"):
            psql = [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]
            if op in ("noop", "status"):
                return psql + ["-At", "-c", "SELECT version FROM _floor_migrations ORDER BY version"], self.env
            name = {"apply": "up", "rollback": "down"}[op] + ("_tx" if tool == "psql-tx" else "")
            return psql + (["-1"] if tool == "psql-1" else []) + ["-f", str(base / "psql" / f"{name}.sql")], self.env
        if tool == "py-select1":
            code = f"import psycopg; psycopg.connect({url!r}, autocommit=True).execute('SELECT 1').fetchone()"
            return [py, "-c", code], self.env
        if tool == "pyfloor":
            verb = {"noop": "apply"}.get(op, op)
            return [py, str(HERE / "pyfloor.py"), verb, url, str(base / "z4j")], self.env
        if tool in ("z4j", "z4j-nosum"):
            env = dict(self.env, Z4J_DATABASE_URL=url, Z4J_MIGRATIONS_DIR=self.set_dir(tool, n))
            cli = str(VENV_BIN / "z4j-migrate")
            args = {"apply": [cli], "noop": [cli], "status": [cli, "status"], "rollback": [cli, "downgrade"]}[op]
            return args + (["--to", "base", "-y"] if op == "rollback" else []), env
        if tool == "yoyo":
            verb = {"apply": "apply", "noop": "apply", "status": "list", "rollback": "rollback"}[op]
            extra = ["--all"] if op == "rollback" else []
            args = [str(VENV_BIN / "yoyo"), verb, *extra, "--batch", "--no-config-file"]
            return args + ["-d", self.url(tool, "postgresql+psycopg"), str(base / "yoyo")], self.env
        if tool == "alembic":
            env = dict(self.env, BENCH_ALEMBIC_URL=self.url(tool, "postgresql+psycopg"))
            args = [str(VENV_BIN / "alembic"), "-c", str(base / "alembic" / "alembic.ini")]
            verb = {"apply": ["upgrade", "head"], "noop": ["upgrade", "head"], "rollback": ["downgrade", "base"]}
            return args + verb.get(op, ["history", "--indicate-current"]), env
        if tool == "dbmate":
            dbm = [str(DBMATE), "--url", url.replace("postgresql://", "postgres://", 1) + "?sslmode=disable"]
            dbm += ["--no-dump-schema", "-d", str(base / "dbmate")]
            if op == "rollback":  # no rollback-all in dbmate: one process per revision
                loop = f"for i in $(seq {n}); do {' '.join(dbm)} rollback >/dev/null || exit 1; done"
                return ["sh", "-c", loop], self.env
            return dbm + ["status" if op == "status" else "migrate"], self.env
        raise KeyError(tool)

    def run(self, tool: str, op: str, n: int) -> tuple[float, int]:
        args, env = self.command(tool, op, n)
        r = run_process(args, env, cwd=REPO, what=f"{tool} {op} N={n}")
        self.results["rss_floor_kb"] = max(self.results.get("rss_floor_kb", 0), r.floor_kb)
        return r.ms, r.maxrss_kb

    def bookkeeping(self, tool: str, n: int) -> str:
        db = db_of(tool)
        if tool == "alembic":
            exists = self.admin.scalar(db, "SELECT to_regclass('public.alembic_version') IS NOT NULL")
            rows = self.admin.scalar(db, "SELECT string_agg(version_num, ',') FROM alembic_version") if exists else None
            return f"head {rows}" if rows else "0"
        table = BOOKKEEPING.get(tool)
        if table is None:
            return "none"
        if not self.admin.scalar(db, f"SELECT to_regclass('public.{table}') IS NOT NULL"):
            return "0"
        return str(self.admin.scalar(db, f"SELECT count(*) FROM public.{table}"))

    def expect_applied(self, tool: str, n: int, applied: bool) -> None:
        got = self.bookkeeping(tool, n)
        want = {True: (str(n), f"head r{n:04d}"), False: ("0",)}[applied]
        if got not in want and got != "none":
            raise BenchError(f"{tool} N={n}: bookkeeping says {got}, expected {want[0]}")
        if got == "none":
            tables = self.admin.scalar(
                db_of(tool), "SELECT count(*) FROM pg_class WHERE relname LIKE 'pb\\_t%' AND relkind = 'r'"
            )
            if (tables > 0) != applied:
                raise BenchError(f"{tool} N={n}: {tables} pb_ tables, expected {'some' if applied else 'none'}")

    def record(self, form: str, op: str, n: int, r: int, tool: str, ms: float, rss: int | None = None) -> None:
        rounds = self.results["rounds"].setdefault(f"{form}|{op}|{n}", [])
        while len(rounds) <= r:
            rounds.append({})
        rounds[r][tool] = ms
        if rss is not None:
            self.results["rss"].setdefault(f"{form}|{op}|{n}|{tool}", []).append(rss)

    @staticmethod
    def rotate(items: list[str], r: int) -> list[str]:
        k = r % len(items)
        return items[k:] + items[:k]

    # ------------------------------------------------------------------ stages

    def setup(self) -> None:
        from z4j_migrate.localpg import LocalPostgres, make_base_dir

        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "z4j_migrate")], check=True)
        self.sets = gen.write_sets(OUT / "sets", self.sizes)
        self.base_dir = make_base_dir("z4j-bench-")
        self.cluster = LocalPostgres(
            self.base_dir,
            settings={
                "autovacuum": "off",
                "shared_buffers": "256MB",
                "max_connections": "100",
                "log_line_prefix": "%m [%p] db=%d app=%a ",
                "log_statement": "none",
                "log_min_messages": "warning",
            },
        )
        self.cluster.start()
        self.admin = Admin(self.cluster.url)
        self.serverlog = ServerLog(self.cluster.log_path)
        for db in dict.fromkeys(db_of(tool) for tool in [*self.tools, "bundled"]):
            self.admin.create_db(db)
        self.results["meta"] = self.versions()
        self.log(f"cluster {self.cluster.url} (PostgreSQL {self.cluster.major_version}); sets in {OUT / 'sets'}")

    def verify(self, n: int) -> None:
        """Apply once per tool (untimed), compare fingerprints, count statements, roll back."""
        reference = None
        for tool in self.tools:
            db = db_of(tool)
            self.admin.reset(db)
            self.admin.log_statements(db, True)
            ops = TOOLS[tool][1]
            row = {"n": n, "tool": tool}
            try:
                owner = SHARES_DB.get(tool)
                if owner is not None:  # the owner's database as the owner migrates it (untimed, uncounted)
                    self.run(owner, "apply", n)
                    fp = fingerprint(self.admin, db)
                    row.update(
                        fingerprint=fp.short,
                        reference=reference.short,
                        tables=fp.tables,
                        after_apply=self.bookkeeping(tool, n),
                        applied_by=owner,
                    )
                    if fp.digest != reference.digest:
                        raise BenchError(f"{tool} N={n}: catalog fingerprint {fp.short} != floor {reference.short}")
                    self.expect_applied(tool, n, True)
                if "apply" in ops:
                    mark = self.serverlog.mark()
                    ms, _ = self.run(tool, "apply", n)
                    self.results["first_apply"][f"{n}|{tool}"] = ms
                    self.results["counts"][f"apply|{n}|{tool}"] = self.serverlog.counts(mark, db).as_dict()
                    fp = fingerprint(self.admin, db)
                    if reference is None:
                        reference = fp  # psql-tx comes first: the floor defines the expected catalog
                    row.update(
                        fingerprint=fp.short,
                        reference=reference.short,
                        tables=fp.tables,
                        after_apply=self.bookkeeping(tool, n),
                    )
                    if fp.digest != reference.digest:
                        raise BenchError(f"{tool} N={n}: catalog fingerprint {fp.short} != floor {reference.short}")
                    self.expect_applied(tool, n, True)
                elif tool == "py-select1":
                    pass
                for op in ("noop", "status"):
                    if op not in ops:
                        continue
                    mark = self.serverlog.mark()
                    self.run(tool, op, n)
                    c = self.serverlog.counts(mark, db)
                    self.results["counts"][f"{op}|{n}|{tool}"] = c.as_dict()
                    if tool in ("z4j", *SHARES_DB) and op == "noop":
                        self.results["counts"][f"{op}|{n}|{tool}"]["texts"] = c.statement_texts
                if tool in self.inproc:
                    mark = self.serverlog.mark()
                    self.workers[tool].call("noop", self.url(tool), self.set_dir(tool, n))
                    c = self.serverlog.counts(mark, db)
                    self.results["counts"][f"inproc-noop|{n}|{tool}"] = dict(c.as_dict(), errors_text=c.error_texts)
                    if tool == "z4j" and "noop_imports_inproc" not in self.results:  # before any apply
                        mods = self.workers[tool].modules()
                        heavy = [m for m in ("yoyo", "pglast", "click", "sqlparse", "z4j_migrate.runner") if m in mods]
                        self.results["noop_imports_inproc"] = heavy
                if "apply" in ops or owner is not None:
                    fp_after_noop = fingerprint(self.admin, db)
                    if fp_after_noop.digest != reference.digest:
                        raise BenchError(f"{tool} N={n}: the no-op changed the catalog")
                    self.expect_applied(tool, n, True)
                if owner is not None:  # leave the database empty, as every tool's verification does
                    self.run(owner, "rollback", n)
                    row["after_rollback"] = self.bookkeeping(tool, n)
                    row["left_after_rollback"] = fingerprint(self.admin, db).items
                    self.expect_applied(tool, n, False)
                if "rollback" in ops:
                    mark = self.serverlog.mark()
                    self.run(tool, "rollback", n)
                    self.results["counts"][f"rollback|{n}|{tool}"] = self.serverlog.counts(mark, db).as_dict()
                    fp = fingerprint(self.admin, db)
                    row["after_rollback"] = self.bookkeeping(tool, n)
                    row["left_after_rollback"] = fp.items
                    if fp.items:
                        raise BenchError(f"{tool} N={n}: rollback left {fp.items} pb_ objects")
                    self.expect_applied(tool, n, False)
                row["ok"] = True
            finally:
                self.admin.log_statements(db, False)
                self.results["verify"].append(row)
            self.log(f"verified N={n} {tool}: {row.get('fingerprint', '-')} bookkeeping {row.get('after_apply', '-')}")

    def set_dir(self, tool: str, n: int) -> str:
        sub = tool if tool in ("alembic", "yoyo", "z4j-nosum") else "z4j"
        return str(self.sets[n] / sub)

    def time_apply_rollback(self, n: int) -> None:
        tools = [t for t in self.tools if "apply" in TOOLS[t][1]]
        for r in range(self.reps("process", "apply", n)):
            for tool in self.rotate(tools, r):
                if r >= self.reps("process", "apply", n, tool):
                    continue
                self.admin.reset(db_of(tool))
                ms, rss = self.run(tool, "apply", n)
                self.record("process", "apply", n, r, tool, ms, rss)
                self.expect_applied(tool, n, True)
                if r < self.reps("process", "rollback", n, tool):
                    ms, rss = self.run(tool, "rollback", n)
                    self.record("process", "rollback", n, r, tool, ms, rss)
                    self.expect_applied(tool, n, False)
            self.log(f"process apply/rollback N={n} round {r + 1}")

    def time_noop_status(self, n: int) -> None:
        tools = [t for t in self.tools if "noop" in TOOLS[t][1]]
        for tool in tools:
            if tool != "py-select1" and tool not in SHARES_DB:
                self.admin.reset(db_of(tool))
                self.run(tool, "apply", n)
        for tool in tools:
            if tool in SHARES_DB:  # measures its owner's database, just migrated above
                self.expect_applied(tool, n, True)
        warm = 1
        for r in range(warm + self.reps("process", "noop", n)):
            for tool in self.rotate(tools, r):
                for op in ("noop", "status"):
                    ms, rss = self.run(tool, op, n)
                    if r >= warm:
                        self.record("process", op, n, r - warm, tool, ms, rss)
        self.log(f"process no-op/status N={n}")

    def time_inproc(self, n: int) -> None:
        tools = self.inproc
        warm = 2
        for r in range(warm + self.reps("inproc", "noop", n)):
            for tool in self.rotate(tools, r):
                w, url, d = self.workers[tool], self.url(tool), self.set_dir(tool, n)
                floor = w.call("select1", url, d)["ms"]
                noop = w.call("noop", url, d)["ms"]
                status = w.call("status", url, d)["ms"]
                if r >= warm:
                    self.record("inproc", "select1", n, r - warm, tool, floor)
                    self.record("inproc", "noop", n, r - warm, tool, noop)
                    self.record("inproc", "status", n, r - warm, tool, status)
        self.log(f"in-process no-op/status N={n}")
        tools = [t for t in tools if t not in SHARES_DB]  # no-op and status only
        for r in range(self.reps("inproc", "apply", n)):
            for tool in self.rotate(tools, r):
                if r >= self.reps("inproc", "apply", n, tool):
                    continue
                w, url, d = self.workers[tool], self.url(tool), self.set_dir(tool, n)
                self.admin.reset(db_of(tool))
                self.record("inproc", "apply", n, r, tool, w.call("apply", url, d)["ms"])
                self.expect_applied(tool, n, True)
                answer = w.call("rollback", url, d)
                self.record("inproc", "rollback", n, r, tool, answer["ms"])
                self.expect_applied(tool, n, False)
                self.results.setdefault("inproc_rss", {})[tool] = answer["maxrss_kb"]
            self.log(f"in-process apply/rollback N={n} round {r + 1}")

    def bundled(self) -> None:
        """The bundled z4j set (sql/): upgrade head, no-op, downgrade base; then the full round trip."""
        from z4j_migrate.config import BUNDLED_DIR
        from z4j_migrate.revisions import discover

        db = db_of("bundled")
        url = self.admin.url(db)
        revisions = len(discover(BUNDLED_DIR).revisions)
        env = dict(self.env, Z4J_DATABASE_URL=url, Z4J_MIGRATIONS_DIR=str(BUNDLED_DIR))
        cli = str(VENV_BIN / "z4j-migrate")
        out: dict = {"revisions": revisions, "process": {}, "inproc": {}}
        reps = 2 if self.args.quick else 5
        for op in ("upgrade", "noop", "downgrade"):
            out["process"][op] = []
            out["inproc"][op] = []
        self.admin.reset(db)
        self.admin.log_statements(db, True)
        counts = {}
        for op, args in (("upgrade", [cli]), ("noop", [cli]), ("downgrade", [cli, "downgrade", "--to", "base", "-y"])):
            mark = self.serverlog.mark()
            run_process(args, env, cwd=REPO, what=f"bundled {op}")
            counts[op] = self.serverlog.counts(mark, db).as_dict()
        self.admin.log_statements(db, False)
        out["counts"] = counts
        w = self.workers.get("z4j")
        for _ in range(reps):
            self.admin.reset(db)
            for op, args in (
                ("upgrade", [cli]),
                ("noop", [cli]),
                ("downgrade", [cli, "downgrade", "--to", "base", "-y"]),
            ):
                out["process"][op].append(run_process(args, env, cwd=REPO, what=f"bundled {op}").ms)
            if w is not None:
                self.admin.reset(db)
                d = str(BUNDLED_DIR)
                out["inproc"]["upgrade"].append(w.call("apply", url, d)["ms"])
                out["inproc"]["noop"].append(w.call("noop", url, d)["ms"])
                out["inproc"]["downgrade"].append(w.call("rollback", url, d)["ms"])
        db = "b_roundtrip"  # a fresh database: the cycles above left their dead catalog rows in the other
        self.admin.create_db(db)
        url = self.admin.url(db)
        result_file = OUT / "roundtrip.json"
        rt = run_process(
            [sys.executable, str(HERE / "roundtrip.py"), url, str(BUNDLED_DIR), str(result_file)],
            self.env,
            cwd=REPO,
            what="bundled round trip",
        )
        out["roundtrip"] = dict(json.loads(result_file.read_text()), process_ms=rt.ms)
        tests = sorted(p for p in (REPO / "tests").rglob("test_*.py") if "round" in p.name and "trip" in p.name)
        if tests:
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *map(str, tests)],
                cwd=REPO,
                env=child_env(),
                capture_output=True,
                text=True,
            )
            tail = (proc.stdout.strip().splitlines() or [""])[-1]
            out["roundtrip_test"] = {
                "files": [str(p.relative_to(REPO)) for p in tests],
                "ms": (time.perf_counter() - started) * 1000,
                "exit": proc.returncode,
                "summary": tail,
            }
        self.results["bundled"] = out
        self.log(f"bundled set: {revisions} revisions; round trip ok={out['roundtrip']['ok']}")

    def startup(self) -> None:
        py = sys.executable
        cmds = {
            "python -c pass": [py, "-c", "pass"],
            "python -c 'import psycopg'": [py, "-c", "import psycopg"],
            "python -c 'import z4j_migrate'": [py, "-c", "import z4j_migrate"],
            "python -c 'import z4j_migrate.cli'": [py, "-c", "import z4j_migrate.cli"],
            "z4j-migrate --help (click)": [str(VENV_BIN / "z4j-migrate"), "--help"],
            "python -c 'import yoyo.scripts.main'": [py, "-c", "import yoyo.scripts.main"],
            "python -c 'import alembic.config'": [py, "-c", "import alembic.config"],
            "dbmate --help (native)": [str(DBMATE), "--help"],
            "psql --version": [PSQL, "--version"],
        }
        if "dbmate" in self.skip:
            cmds.pop("dbmate --help (native)")
        samples: dict[str, list[float]] = {k: [] for k in cmds}
        reps = 3 if self.args.quick else 15
        for r in range(reps + 1):
            for label in self.rotate(list(cmds), r):
                ms = run_process(cmds[label], self.env, cwd=REPO, what=label).ms
                if r:
                    samples[label].append(ms)
        self.results["startup"] = samples
        # Where import time goes, and what the no-op process imports at all.
        imp = {}
        for label, code in (("z4j_migrate", "import z4j_migrate"), ("psycopg", "import psycopg")):
            cums = []
            for _ in range(5):
                err = subprocess.run([py, "-X", "importtime", "-c", code], env=self.env, capture_output=True, text=True)
                cums.append(report.importtime_total(err.stderr, label))
            imp[label] = statistics.median(cums)
        err = subprocess.run([py, "-X", "importtime", "-c", "import z4j_migrate"], env=self.env, capture_output=True)
        imp["z4j_self_top"] = report.importtime_self(err.stderr.decode(), exclude_from="import psycopg", py=py)
        n = self.sizes[-1]
        env = dict(self.env, Z4J_DATABASE_URL=self.url("z4j"), Z4J_MIGRATIONS_DIR=str(self.sets[n] / "z4j"))
        self.admin.reset(db_of("z4j"))
        self.run("z4j", "apply", n)
        err = subprocess.run([py, "-X", "importtime", "-m", "z4j_migrate"], env=env, capture_output=True, text=True)
        loaded = report.importtime_modules(err.stderr)
        imp["noop_process_heavy"] = [
            m for m in ("yoyo", "pglast", "click", "sqlparse", "tomllib", "uuid") if m in loaded
        ]
        imp["noop_process_modules"] = len(loaded)
        self.results["imports"] = imp
        self.log("start-up and import costs")

    def cli_forms(self) -> None:
        """The no-op upgrade as a whole process, invoked as a deploy script may: with settings from the
        environment only, and with every setting as an option (the form that used to import click),
        in the same rounds as python's connect + SELECT 1, at the largest N."""
        n = self.sizes[-1]
        self.admin.reset(db_of("z4j"))
        self.run("z4j", "apply", n)
        url, folder, cli = self.url("z4j"), self.set_dir("z4j", n), str(VENV_BIN / "z4j-migrate")
        flags = ["-q", "--database-url", url, "--migrations-dir", folder, "upgrade"]
        forms = {
            "py-select1": self.command("py-select1", "noop", n),
            "z4j-env": ([cli], dict(self.env, Z4J_DATABASE_URL=url, Z4J_MIGRATIONS_DIR=folder)),
            "z4j-flags": ([cli, *flags], self.env),
        }
        rounds: list[dict[str, float]] = []
        warm, reps = 1, (5 if self.args.quick else 15)
        for r in range(warm + reps):
            row = {label: run_process(*forms[label], cwd=REPO, what=label).ms for label in self.rotate(list(forms), r)}
            if r >= warm:
                rounds.append(row)
        err = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "z4j_migrate", *flags],
            env=self.env,
            capture_output=True,
            text=True,
        )
        loaded = report.importtime_modules(err.stderr)
        heavy = [m for m in ("yoyo", "pglast", "click", "sqlparse") if m in loaded]
        self.results["cli_forms"] = {"n": n, "rounds": rounds, "flags_heavy": heavy}
        self.log(f"no-op process by invocation form N={n}")

    def versions(self) -> dict:
        def out(args: list[str]) -> str:
            try:
                return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip()
            except OSError:
                return "n/a"

        with self.admin.connect() as conn:
            server = conn.execute("SELECT version()").fetchone()[0]
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', "
                    "'full_page_writes', 'autovacuum', 'shared_buffers') ORDER BY name"
                ).fetchall()
            )
        freeze = out([sys.executable, "-m", "pip", "freeze", "--all"]).splitlines()
        keep = ("psycopg", "psycopg-binary", "yoyo-migrations", "alembic", "sqlalchemy", "pglast", "click", "sqlparse")
        pkgs = [line for line in freeze if line.split("==")[0].lower() in keep]
        mem_kib = _first_value("/proc/meminfo", "MemTotal", ":")
        mem = f"{int(mem_kib.split()[0]) // 1024 // 1024} GiB" if mem_kib != "?" else "?"
        osname = _first_value("/etc/os-release", "PRETTY_NAME", "=").strip('"')
        cpu = _first_value("/proc/cpuinfo", "model name", ":")
        git = out(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
        dirty = out(["git", "-C", str(REPO), "status", "--porcelain", "--", "z4j_migrate"])
        return {
            "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "host": f"{os.cpu_count()} cores ({cpu}), {mem}, {osname}, kernel {platform.release()}",
            "postgres": server,
            "postgres_settings": settings,
            "psql": out([PSQL, "--version"]),
            "python": platform.python_version(),
            "packages": pkgs,
            "dbmate": out([str(DBMATE), "--version"]) if "dbmate" not in self.skip else "skipped",
            "z4j_migrate": f"git {git}{' + uncommitted changes in z4j_migrate/' if dirty else ''}",
        }

    # ------------------------------------------------------------------ main

    def main(self) -> int:
        only = self.args.only
        self.check_deps()
        self.setup()
        self.workers: dict[str, Worker] = {}
        try:
            env = child_env()
            for tool in self.inproc if not only else ():
                self.workers[tool] = Worker(tool, env)
            for n in self.sizes if not only else ():
                self.verify(n)
                self.time_apply_rollback(n)
                self.time_noop_status(n)
                self.time_inproc(n)
            if not self.args.no_bundled and not only:
                self.bundled()
            if not only:
                self.startup()
            if only in (None, "cli-forms"):
                self.cli_forms()
            if only in (None, "fleet"):
                self.results["fleet"] = fleet.run(self)  # bench/fleet.py: 50 databases, --jobs 1/2/4
            if only in (None, "verify"):  # bench/verifyrow.py: verify beside upgrade + downgrade, N=400
                n = self.sizes[-1] if only else verifyrow.DEFAULT_N
                self.results["verify_row"] = verifyrow.run(self, n)
        finally:
            for w in self.workers.values():
                w.close()
            self.cluster.stop()
            shutil.rmtree(self.base_dir, ignore_errors=True)
        self.results["wall_s"] = time.perf_counter() - self.started
        OUT.mkdir(exist_ok=True)
        name = "quick.json" if self.args.quick else "latest.json"  # a quick check never replaces a full run
        if only:
            name = f"only-{only}.json"
            (OUT / name).write_text(json.dumps(self.results, indent=1, default=str))
            if only == "fleet":
                print("\n" + fleet.text(self.results))
                return 0
            if only == "verify":
                print("\n" + verifyrow.text(self.results))
                return 0
            print("\n" + report.text_cli_forms(self.results) + "\n\n" + report.text_targets(self.results))
            return 0
        (OUT / name).write_text(json.dumps(self.results, indent=1, default=str))
        print()
        print(report.text_table(self.results))
        print()
        print(report.text_targets(self.results))
        if not self.args.no_docs and not self.args.quick:  # the document always shows a full run
            notes = HERE / "notes.md"
            doc = report.markdown(self.results, notes.read_text() if notes.exists() else "")
            (REPO / "docs" / "performance.md").write_text(doc)
            print(f"\nwrote docs/performance.md and bench/out/{name} ({self.results['wall_s']:.0f} s)")
        return 0

    def check_deps(self) -> None:
        if self.args.only:  # cli-forms: z4j-migrate and psycopg only
            return
        missing = []
        for mod in ("alembic", "sqlalchemy", "yoyo"):
            try:
                __import__(mod)
            except ImportError:
                missing.append(mod)
        if missing and "alembic" not in self.skip:
            raise SystemExit(f"missing {', '.join(missing)}: pip install -e '.[bench]' (make bench does it)")
        if "dbmate" not in self.skip and not DBMATE.exists():
            raise SystemExit(f"no dbmate at {DBMATE}: npm install --prefix bench/out/npm dbmate (make bench does it)")
        if not Path(PSQL).exists():
            raise SystemExit("psql not found (make install-pg15)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="N=10,100, few repetitions, no docs (development)")
    p.add_argument("--sizes", default=None, help="comma-separated N (default 10,100,1000)")
    p.add_argument("--skip", default="", help="comma-separated tools to leave out (dbmate, alembic, ...)")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    p.add_argument("--no-bundled", action="store_true", help="skip the bundled z4j set")
    p.add_argument(
        "--only",
        choices=["cli-forms", "fleet", "verify"],
        help="run one stage: cli-forms = the no-op process by invocation form (default N=1000; no docs); "
        "fleet = 50 databases x the bundled set, --jobs 1/2/4 (bench/fleet.py); "
        "verify = verify beside one upgrade + one downgrade (default N=400; bench/verifyrow.py)",
    )
    args = p.parse_args(argv)
    if args.sizes is None:
        args.sizes = (
            "10"
            if args.only == "fleet"
            else "400"
            if args.only == "verify"
            else "1000"
            if args.only
            else "10,100"
            if args.quick
            else "10,100,1000"
        )
    return args


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster and workers on the way out
    try:
        sys.exit(Bench(parse_args()).main())
    except BenchError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        sys.exit(1)
