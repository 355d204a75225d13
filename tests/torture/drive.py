"""A replica, held at the starting line: imports, says "ready", waits for "go" on stdin, then migrates.

Used by the torture suites so that what they time (or kill) is the migration,
not the interpreter starting. Modes:

    drive.py startup        z4j_migrate.migrate_on_startup() with settings from Z4J_* variables;
                            prints one JSON line (applied ids, start/end times), exit code as the CLI's
    drive.py cli ARGS...    z4j_migrate.cli.main(ARGS): exactly what `z4j-migrate ARGS` does
    drive.py zygote         reads {"n": N, "env": {...}} lines; forks N replicas per line, releases them at the same
                            instant and prints one JSON line with every replica's outcome. A fork costs
                            microseconds where an interpreter start costs 150 ms of CPU: 32 of those
                            would otherwise dominate each round on a 2-core machine. Each replica is
                            still a process of its own with its own connection; yoyo and the SQL
                            parser are not imported before the fork, exactly as after a real boot.
"""

from __future__ import annotations

import json
import os
import sys
import time

import z4j_migrate
import z4j_migrate.cli


def _replica(go: int, results: int) -> None:
    """In the forked child: wait for the starting gun, migrate, report one line, exit."""
    os.read(go, 1)
    started = time.time()
    outcome: dict[str, object] = {"pid": os.getpid(), "start": started}
    code = 0
    try:
        outcome["applied"] = [r.id for r in z4j_migrate.migrate_on_startup().applied]
    except z4j_migrate.Z4jMigrateError as exc:
        outcome["error"], code = f"{exc.__class__.__name__}: {exc}", exc.exit_code
    except BaseException as exc:  # reported, never swallowed: the test fails on it
        outcome["error"], code = f"unexpected {exc.__class__.__name__}: {exc}", 1
    outcome["end"] = time.time()
    os.write(results, (json.dumps(outcome) + "\n").encode())
    os._exit(code)


def zygote() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        n = command["n"]
        os.environ.update(command["env"])
        go_r, go_w = os.pipe()
        res_r, res_w = os.pipe()
        pids = []
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                os.close(go_w)
                os.close(res_r)
                _replica(go_r, res_w)
            pids.append(pid)
        os.close(go_r)
        os.close(res_w)
        released = time.time()
        os.write(go_w, b"g" * n)
        codes = {pid: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids}
        with os.fdopen(res_r) as fh:
            outcomes = [json.loads(x) for x in fh.read().splitlines()]
        os.close(go_w)
        for outcome in outcomes:
            outcome["code"] = codes.pop(outcome["pid"])
        outcomes += [{"pid": pid, "code": code, "error": "died without reporting"} for pid, code in codes.items()]
        print(json.dumps({"released": released, "finished": time.time(), "replicas": outcomes}), flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "zygote":
        zygote()
        sys.exit(0)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(99)
    started = time.time()
    if mode == "cli":
        z4j_migrate.cli.main(args)
    try:
        result = z4j_migrate.migrate_on_startup()
    except z4j_migrate.Z4jMigrateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"start": started, "end": time.time(), "error": exc.__class__.__name__}), flush=True)
        sys.exit(exc.exit_code)
    applied = [r.id for r in result.applied]
    print(json.dumps({"start": started, "end": time.time(), "applied": applied}), flush=True)
