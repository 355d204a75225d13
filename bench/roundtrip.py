"""The full round trip of a revision directory, step by step, with catalog snapshots.

For every revision in order: snapshot, upgrade to it, snapshot, downgrade one step and
require the first snapshot back, upgrade to it again and require the second one. Then
downgrade to base (empty again) and upgrade to head (the head snapshot again).

    python bench/roundtrip.py URL DIR RESULT.json
"""

from __future__ import annotations

import json
import sys
import time

import psycopg

import z4j_migrate
from z4j_migrate.catalog import diff, snapshot
from z4j_migrate.revisions import discover


def main(url: str, directory: str, out: str) -> int:
    started = time.perf_counter()
    revisions = discover(directory).revisions
    problems: list[str] = []
    steps = 0
    with psycopg.connect(url, autocommit=True) as conn:

        def snap() -> dict:
            return snapshot(conn)

        empty = snap()
        for rev in revisions:
            before = snap()
            z4j_migrate.upgrade(database_url=url, migrations_dir=directory, to=rev.id)
            after = snap()
            z4j_migrate.downgrade(database_url=url, migrations_dir=directory, steps=1)
            problems += [f"{rev.id} down: {d}" for d in diff(before, snap())]
            z4j_migrate.upgrade(database_url=url, migrations_dir=directory, to=rev.id)
            problems += [f"{rev.id} re-up: {d}" for d in diff(after, snap())]
            steps += 3
        head = snap()
        z4j_migrate.downgrade(database_url=url, migrations_dir=directory, to="base")
        problems += [f"base: {d}" for d in diff(empty, snap())]
        z4j_migrate.upgrade(database_url=url, migrations_dir=directory)
        problems += [f"head: {d}" for d in diff(head, snap())]
        steps += 2
    result = {
        "revisions": len(revisions),
        "operations": steps,
        "problems": problems[:20],
        "ok": not problems,
        "ms": (time.perf_counter() - started) * 1000,
    }
    with open(out, "w") as fh:
        json.dump(result, fh)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
