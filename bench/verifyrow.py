"""The verify row of `make bench` (bench/run.py, stage `verify`; `--only verify` runs just this).

One synthetic set (bench/gen.py, N = 400 unless --sizes says otherwise), three whole processes side by
side in each round (the order rotated): `z4j-migrate upgrade` from empty, `z4j-migrate downgrade --to
base -y`, and `z4j-migrate verify` (its own scratch database on the same cluster: stepwise up, down, up
of every revision with two catalog snapshots each, then the round trip). Reported: each median and
the ratio verify / (upgrade + downgrade), taken round by round; issue 12's target is at most 5x.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

TARGET = 5.0
DEFAULT_N = 400


def run(bench: Any, n: int) -> dict:
    """Time the three processes; `bench` is run.Bench (its cluster, admin connection, environment, log)."""
    import gen
    from harness import REPO, run_process

    folder = gen.write_sets(Path(__file__).resolve().parent / "out" / "sets", [n])[n] / "z4j"
    cli = str(Path(sys.executable).parent / "z4j-migrate")
    db = "b_verifyrow"
    url = bench.admin.url(db)
    env = dict(bench.env, Z4J_DATABASE_URL=url, Z4J_MIGRATIONS_DIR=str(folder))
    forms = {
        "upgrade": [cli],
        "downgrade": [cli, "downgrade", "--to", "base", "-y"],
        "verify": [cli, "-q", "verify", "--database-url", bench.admin.url("postgres")],
    }
    rounds: list[dict[str, float]] = []
    bench.admin.create_db(db)
    for r in range(1 if bench.args.quick or bench.args.only else 2):
        row: dict[str, float] = {}
        for label in bench.rotate(list(forms), r):
            if label == "upgrade":
                bench.admin.reset(db)
            elif label == "downgrade" and "upgrade" not in row:
                bench.admin.reset(db)
                run_process(forms["upgrade"], env, cwd=REPO, what=f"verify row: upgrade N={n} (untimed)")
            row[label] = run_process(forms[label], env, cwd=REPO, what=f"verify row: {label} N={n}").ms
        rounds.append(row)
        bench.log(
            f"verify row N={n}: upgrade {row['upgrade'] / 1000:.1f} s, downgrade {row['downgrade'] / 1000:.1f} s, "
            f"verify {row['verify'] / 1000:.1f} s"
        )
    return {"n": n, "rounds": rounds}


def rows(res: dict) -> dict | None:
    """Medians and the median per-round ratio verify / (upgrade + downgrade)."""
    data = res.get("verify_row")
    if not data or not data.get("rounds"):
        return None
    rounds = data["rounds"]
    med = {k: statistics.median(r[k] for r in rounds) for k in ("upgrade", "downgrade", "verify")}
    ratio = statistics.median(r["verify"] / (r["upgrade"] + r["downgrade"]) for r in rounds)
    return {"n": data["n"], "rounds": len(rounds), **med, "ratio": ratio}


def text(res: dict) -> str:
    row = rows(res)
    if row is None:
        return ""
    verdict = "met" if row["ratio"] <= TARGET else "NOT met"
    return (
        f"verify, N={row['n']} ({row['rounds']} round(s), processes): upgrade {row['upgrade'] / 1000:.2f} s + "
        f"downgrade {row['downgrade'] / 1000:.2f} s; verify {row['verify'] / 1000:.1f} s = "
        f"x{row['ratio']:.1f} of upgrade + downgrade (target <= x{TARGET:g}: {verdict})"
    )


def markdown(res: dict) -> list[str]:
    row = rows(res)
    if row is None:
        return []
    verdict = "met" if row["ratio"] <= TARGET else "**not met**"
    return [
        "",
        f"## verify: N={row['n']}",
        "",
        "`z4j-migrate verify` (stepwise up, down, up of every revision, the catalog read after the down and "
        "after the second up, from the change journal: docs/verify.md; then the round trip) beside one full "
        "`upgrade` from empty and one full `downgrade --to base` of the same set, "
        f"whole processes, {row['rounds']} round(s) (bench/verifyrow.py). Target: verify at most "
        f"x{TARGET:g} of upgrade + downgrade ({verdict}).",
        "",
        "| N | upgrade | downgrade | verify | verify / (upgrade + downgrade) |",
        "|---|---|---|---|---|",
        f"| {row['n']} | {row['upgrade'] / 1000:.2f} s | {row['downgrade'] / 1000:.2f} s | "
        f"**{row['verify'] / 1000:.1f} s** | x{row['ratio']:.1f} |",
    ]
