"""Profile one z4j-migrate library call with pyinstrument, on a throwaway cluster.

    python bench/profile_op.py noop|status|apply|rollback|roundtrip [N] [--repeat K] [--cprofile | --time]

N is a synthetic set size from bench/gen.py (default 1000), or `bundled` for sql/.
The database is brought to the state the operation needs (untimed), then the call
runs K times (default 1) under the profiler and the report is printed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen  # noqa: E402

import z4j_migrate  # noqa: E402
from z4j_migrate.localpg import LocalPostgres, make_base_dir  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("op", choices=["noop", "status", "apply", "rollback", "roundtrip"])
    p.add_argument("n", nargs="?", default="1000")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--cprofile", action="store_true", help="cProfile (sorted by cumulative) instead of pyinstrument")
    p.add_argument("--time", action="store_true", help="no profiler: print the median wall time of each call")
    args = p.parse_args()
    if args.n == "bundled":
        from z4j_migrate.config import BUNDLED_DIR

        directory = str(BUNDLED_DIR)
    else:
        directory = str(gen.write_sets(HERE / "out" / "sets", [int(args.n)])[int(args.n)] / "z4j")
    base = make_base_dir("z4j-profile-")
    cluster = LocalPostgres(base, settings={"autovacuum": "off", "shared_buffers": "256MB"})
    cluster.start()
    url = cluster.url
    try:
        if args.op in ("noop", "status", "rollback"):
            z4j_migrate.upgrade(database_url=url, migrations_dir=directory)

        def call() -> None:
            for _ in range(args.repeat):
                if args.op in ("noop", "apply"):
                    z4j_migrate.upgrade(database_url=url, migrations_dir=directory)
                elif args.op == "status":
                    z4j_migrate.status(database_url=url, migrations_dir=directory)
                elif args.op == "rollback":
                    z4j_migrate.downgrade(database_url=url, migrations_dir=directory, to="base")
                else:
                    import roundtrip

                    roundtrip.main(url, directory, str(HERE / "out" / "profile-roundtrip.json"))

        if args.time:
            import statistics
            import time

            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                args.repeat, saved = 1, args.repeat
                call()
                args.repeat = saved
                times.append((time.perf_counter() - started) * 1000)
            print(f"{args.op} N={args.n}: median {statistics.median(times):.2f} ms, min {min(times):.2f} ms")
        elif args.cprofile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.runcall(call)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        else:
            from pyinstrument import Profiler

            with Profiler(interval=0.0005) as prof:
                call()
            print(prof.output_text(unicode=False, color=False, show_all=False))
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
