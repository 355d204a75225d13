"""Helpers of the torture suites: warm replica processes and orphaned backends.

`Replica` wraps drive.py, a process that has imported z4j_migrate and waits
for "go", so that timings and kill moments measure the migration rather than
the interpreter starting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from helpers import REPO

DRIVER = Path(__file__).resolve().parent / "drive.py"


def trials(ci: int, deep: int) -> int:
    """How many random-moment trials a suite runs: `ci` by default (it keeps `make test` inside CI's
    time), `deep` with Z4J_TORTURE_DEEP=1, the setting docs/reliability.md's figures were taken with."""
    return deep if os.environ.get("Z4J_TORTURE_DEEP") == "1" else ci


def clean_env(url: str, migrations: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("Z4J_")}
    env.update(Z4J_DATABASE_URL=url, Z4J_MIGRATIONS_DIR=str(migrations), **extra)
    return env


class Replica:
    """One warm process; `go()` starts the migration, `wait()` collects it."""

    def __init__(self, mode: str, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER), mode, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            cwd=REPO,
        )
        self.started_at: float | None = None

    def ready(self) -> Replica:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if line.strip() != "ready":
            raise RuntimeError(f"driver did not start: {line!r} {self.proc.stderr.read()}")  # type: ignore[union-attr]
        return self

    def go(self) -> None:
        self.started_at = time.monotonic()
        self.proc.stdin.write("go\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def wait(self, timeout: float = 120) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def result(self) -> dict[str, object]:
        code, out, err = self.wait()
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        data = json.loads(lines[-1]) if lines else {}
        return {"code": code, "stderr": err, **data}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def wait_for_backends_to_go(url: str, application_name: str = "z4j-migrate", timeout: float = 30) -> float:
    """After a client dies, its backend lives on until it next talks to the socket. Wait it out."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            n = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = %s AND pid <> pg_backend_pid()",
                (application_name,),
            ).fetchone()[0]
            if n == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{n} z4j-migrate backend(s) still alive {timeout}s after their client died")
            time.sleep(0.02)


class Zygote:
    """drive.py in zygote mode: `boot(n, env)` forks n replicas and releases them at the same instant."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(DRIVER), "zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if not k.startswith("Z4J_")},
        )
        if self.proc.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
            raise RuntimeError("zygote did not start")

    def boot(self, n: int, env: dict[str, str]) -> dict[str, object]:
        self.proc.stdin.write(json.dumps({"n": n, "env": env}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(self.proc.stdout.readline())  # type: ignore[union-attr]

    def close(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=30)
