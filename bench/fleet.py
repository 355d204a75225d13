"""The fan-out row of `make bench` (bench/run.py, stage `fleet`; `--only fleet` runs just this).

50 databases on the bench cluster, each upgraded from empty to head with the bundled set (sql/) by
one `z4j-migrate upgrade --targets FILE --jobs J` process, for J = 1, 2, 4 (the order rotated per
round). Every database is made afresh before each timed run (untimed), and every one must be at head
after it. Reported: the wall time of the whole process, and its ratio to --jobs 1 on this machine's
cores (the server, on the same machine, does most of the work: the ratio says how far parallel
targets help on it, not what a fleet of separate servers would see).
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from typing import Any

DATABASES = 50
JOBS = (1, 2, 4)


def run(bench: Any) -> dict:
    """Time the fan-out; `bench` is run.Bench (its cluster, admin connection, environment, log)."""
    from harness import REPO, BenchError, run_process

    from z4j_migrate.config import BUNDLED_DIR
    from z4j_migrate.revisions import discover

    revisions = len(discover(BUNDLED_DIR).revisions)
    names = [f"b_fleet_{i:02d}" for i in range(DATABASES)]
    out_dir = Path(__file__).resolve().parent / "out"
    out_dir.mkdir(exist_ok=True)
    targets = out_dir / "fleet-targets.txt"
    targets.write_text("".join(bench.admin.url(name) + "\n" for name in names), encoding="utf-8")
    cli = str(Path(sys.executable).parent / "z4j-migrate")
    rounds = 1 if bench.args.quick or bench.args.only else 2
    samples: dict[str, list[float]] = {str(j): [] for j in JOBS}
    try:
        for r in range(rounds):
            for jobs in bench.rotate(list(JOBS), r):
                for name in names:
                    bench.admin.create_db(name)
                args = [cli, "-q", "upgrade", "--targets", str(targets), "--migrations-dir", str(BUNDLED_DIR)]
                ms = run_process(args + ["--jobs", str(jobs)], bench.env, cwd=REPO, what=f"fleet --jobs {jobs}").ms
                for name in names:
                    table = "public._yoyo_migration"
                    count = bench.admin.scalar(name, f"SELECT count(*) FROM {table}")
                    if count != revisions:
                        raise BenchError(f"fleet --jobs {jobs}: {name} has {count} revisions, expected {revisions}")
                samples[str(jobs)].append(ms)
                bench.log(f"fleet: {DATABASES} databases x {revisions} revisions, --jobs {jobs}: {ms / 1000:.1f} s")
    finally:
        with bench.admin.connect() as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {"databases": DATABASES, "revisions": revisions, "cores": os.cpu_count(), "ms": samples}


def rows(res: dict) -> list[tuple[int, float, float, float]]:
    """(jobs, median ms, ratio to --jobs 1, speed-up) per --jobs value measured."""
    data = res.get("fleet") or {}
    ms = {int(j): statistics.median(xs) for j, xs in (data.get("ms") or {}).items() if xs}
    if 1 not in ms:
        return []
    return [(j, m, m / ms[1], ms[1] / m) for j, m in sorted(ms.items())]


def text(res: dict) -> str:
    found = rows(res)
    if not found:
        return ""
    d = res["fleet"]
    lines = [f"fan-out: {d['databases']} databases x the bundled set ({d['revisions']} revisions), {d['cores']} cores"]
    for jobs, ms, ratio, speedup in found:
        lines.append(
            f"  upgrade --targets --jobs {jobs:<2} {ms / 1000:6.1f} s   x{ratio:.2f} of --jobs 1 ({speedup:.1f}x)"
        )
    return "\n".join(lines)


def markdown(res: dict) -> list[str]:
    found = rows(res)
    if not found:
        return []
    d = res["fleet"]
    out = [
        "",
        f"## Fan-out: {d['databases']} databases x the bundled set",
        "",
        f"`z4j-migrate upgrade --targets FILE --jobs J` from empty to head ({d['revisions']} revisions each), "
        f"one process, on this machine's {d['cores']} cores (the server runs on the same cores; bench/fleet.py).",
        "",
        "| --jobs | wall time | ratio to --jobs 1 | speed-up |",
        "|---|---|---|---|",
    ]
    for jobs, ms, ratio, speedup in found:
        out.append(f"| {jobs} | **{ms / 1000:.1f} s** | x{ratio:.2f} | {speedup:.1f}x |")
    return out
