"""In-process worker: one long-lived Python process per tool, as an application would host it.

psycopg and the tool's library are imported once, before any timing. The harness sends
one JSON command per line on stdin ({"op": "noop", "url": ..., "dir": ...}); the worker
runs the library call, times it with perf_counter and answers one JSON line on its
original stdout. Whatever the tools print goes to /dev/null. Every call opens its own
connection, as a start-up call does.

    python bench/inproc.py z4j|z4j-nosum|yoyo|alembic|pyfloor

z4j-nosum is the z4j worker under another name: the same library calls, which the harness points at
a copy of the revision directory without z4j-migrate.sum.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import pyfloor  # noqa: E402


def _select1(url: str, _dir: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT 1").fetchone()


def z4j_ops() -> dict:
    import z4j_migrate

    def noop(url: str, d: str) -> None:
        result = z4j_migrate.upgrade(database_url=url, migrations_dir=d)
        assert not result.applied, "no-op applied something"

    def status(url: str, d: str) -> None:
        report = z4j_migrate.status(database_url=url, migrations_dir=d)
        assert report.clean

    return {
        "apply": lambda url, d: z4j_migrate.upgrade(database_url=url, migrations_dir=d),
        "noop": noop,
        "status": status,
        "rollback": lambda url, d: z4j_migrate.downgrade(database_url=url, migrations_dir=d, to="base"),
    }


def yoyo_ops() -> dict:
    # yoyo's documented library pattern: get_backend -> read_migrations -> lock -> apply(to_apply).
    from yoyo import get_backend, read_migrations
    from yoyo.migrations import topological_sort

    def url_for(url: str) -> str:
        return url.replace("postgresql://", "postgresql+psycopg://", 1)

    def run(url: str, d: str, op: str) -> None:
        backend = get_backend(url_for(url))
        try:
            migrations = read_migrations(d)
            with backend.lock():
                if op in ("apply", "noop"):
                    backend.apply_migrations(backend.to_apply(migrations))
                elif op == "rollback":
                    backend.rollback_migrations(backend.to_rollback(migrations))
                else:  # what `yoyo list` does, minus printing
                    ordered = migrations.__class__(topological_sort(migrations))
                    applied = backend.to_rollback(ordered)
                    [(m in applied, m.id) for m in ordered]
        finally:
            backend.connection.close()

    return {op: (lambda url, d, op=op: run(url, d, op)) for op in ("apply", "noop", "status", "rollback")}


def alembic_ops() -> dict:
    from alembic import command
    from alembic.config import Config

    devnull = open(os.devnull, "w")  # noqa: SIM115

    def cfg(d: str, url: str) -> Config:
        os.environ["BENCH_ALEMBIC_URL"] = url.replace("postgresql://", "postgresql+psycopg://", 1)
        c = Config(str(Path(d) / "alembic.ini"), stdout=devnull)
        c.attributes["no_logging_config"] = True  # an application configures logging once, itself
        return c

    return {
        "apply": lambda url, d: command.upgrade(cfg(d, url), "head"),
        "noop": lambda url, d: command.upgrade(cfg(d, url), "head"),
        "status": lambda url, d: command.history(cfg(d, url), indicate_current=True),
        "rollback": lambda url, d: command.downgrade(cfg(d, url), "base"),
    }


def pyfloor_ops() -> dict:
    return {"apply": pyfloor.apply, "noop": pyfloor.apply, "status": pyfloor.status, "rollback": pyfloor.rollback}


def peak_rss_kb() -> int:
    """This interpreter's own peak RSS: VmHWM counts this image only. RUSAGE_SELF's ru_maxrss also
    counts the harness process this worker was exec'd from (exec keeps the old image's peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    tool = sys.argv[1]
    makers = {"z4j": z4j_ops, "z4j-nosum": z4j_ops, "yoyo": yoyo_ops, "alembic": alembic_ops, "pyfloor": pyfloor_ops}
    ops = makers[tool]()
    ops["select1"] = _select1
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    proto.write(json.dumps({"ready": tool, "modules": sorted(m for m in sys.modules if "." not in m)}) + "\n")
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "modules":
            proto.write(json.dumps({"modules": sorted(sys.modules)}) + "\n")
            continue
        fn = ops[cmd["op"]]
        error = None
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(sys.stdout):
                fn(cmd["url"], cmd.get("dir"))
        except BaseException as exc:  # reported, the harness decides
            error = f"{exc.__class__.__name__}: {exc}"
        ms = (time.perf_counter() - started) * 1000
        rss = peak_rss_kb()
        proto.write(json.dumps({"ms": ms, "error": error, "maxrss_kb": rss}) + "\n")


if __name__ == "__main__":
    main()
