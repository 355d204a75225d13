"""Turn bench/out/latest.json into the printed table and docs/performance.md.

python bench/report.py [bench/out/latest.json] [--docs]   # re-print (and re-render the doc) without re-running
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

OPS = {"apply": "full upgrade from empty", "noop": "no-op upgrade", "status": "status", "rollback": "full downgrade"}
FORMS = {"process": "process", "inproc": "in-process"}
ORDER = ["psql-tx", "psql-1", "py-select1", "select1", "pyfloor", "z4j", "z4j-nosum", "yoyo", "alembic", "dbmate"]
LABELS = {
    "psql-tx": "psql floor (tx + INSERT per revision)",
    "psql-1": "psql -1 (one tx, no bookkeeping)",
    "py-select1": "python: import psycopg, connect, SELECT 1",
    "select1": "connect + SELECT 1 (same process; z4j-migrate's worker)",
    "pyfloor": "python floor (bench/pyfloor.py)",
    "z4j": "**z4j-migrate**",
    "z4j-nosum": "z4j-migrate without z4j-migrate.sum (hashes every file)",
    "yoyo": "yoyo 9 (stock)",
    "alembic": "alembic (stock env.py)",
    "dbmate": "dbmate (native binary)",
}


def fmt(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def _rounds(res: dict, form: str, op: str, n: int) -> list[dict]:
    return res["rounds"].get(f"{form}|{op}|{n}", [])


def floor_of(form: str, op: str) -> str:
    if form == "process":
        return "psql-tx"
    return "pyfloor" if op in ("apply", "rollback") else "select1"


def cell(res: dict, form: str, op: str, n: int, tool: str) -> dict | None:
    rounds = _rounds(res, form, op, n)
    if tool == "select1":  # the in-process floor row: z4j-migrate's worker (each ratio uses its own worker's)
        rounds = [
            {"select1": r.get("z4j", r.get("pyfloor"))}
            for r in _rounds(res, form, "select1", n)
            if "z4j" in r or "pyfloor" in r
        ]
    xs = [r[tool] for r in rounds if tool in r]
    if not xs:
        return None
    out = {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": len(xs)}

    def ratio(other_rounds: list[dict], other: str) -> float | None:
        pairs = [a[tool] / b[other] for a, b in zip(rounds, other_rounds, strict=False) if tool in a and other in b]
        return statistics.median(pairs) if pairs else None

    floor = floor_of(form, op)
    if form == "inproc" and floor == "select1":
        same = _rounds(res, form, "select1", n)  # each worker's own connect + SELECT 1, same round
        pairs = [a[tool] / b[tool] for a, b in zip(rounds, same, strict=False) if tool in a and tool in b]
        out["x_floor"] = statistics.median(pairs) if pairs and tool != "select1" else None
    else:
        out["x_floor"] = ratio(rounds, floor) if tool != floor else None
    out["x_yoyo"] = ratio(rounds, "yoyo") if tool != "yoyo" else None
    if form == "process" and op in ("noop", "status"):
        out["x_py"] = ratio(rounds, "py-select1") if tool != "py-select1" else None
    return out


# The no-op upgrade process by invocation form (bench/run.py cli_forms), each against python's
# connect + SELECT 1 measured in the same rounds.
CLI_FORMS = {
    "py-select1": 'python -c "import psycopg; connect; SELECT 1"',
    "z4j-env": "z4j-migrate (settings from the environment only)",
    "z4j-flags": "z4j-migrate -q --database-url URL --migrations-dir DIR upgrade",
}
CLI_FORMS_LIMIT = 1.05


def cli_forms(res: dict) -> list[tuple[str, dict]]:
    """(form, {median, min, max, runs, x_py}) for each form measured."""
    data = res.get("cli_forms") or {}
    rounds = data.get("rounds") or []
    out = []
    for form in CLI_FORMS:
        xs = [r[form] for r in rounds if form in r]
        if not xs:
            continue
        pairs = [r[form] / r["py-select1"] for r in rounds if form in r and "py-select1" in r]
        x_py = statistics.median(pairs) if pairs and form != "py-select1" else None
        out.append(
            (form, {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": len(xs), "x_py": x_py})
        )
    return out


def text_cli_forms(res: dict) -> str:
    rows = cli_forms(res)
    if not rows:
        return ""
    n = res["cli_forms"]["n"]
    lines = [
        f"no-op upgrade process by invocation form, N={n} applied (xP = to python connect + SELECT 1, same rounds)"
    ]
    for form, c in rows:
        ratio = f" xP{c['x_py']:.2f}" if c["x_py"] is not None else ""
        lines.append(f"  {CLI_FORMS[form]:<66} {fmt(c['median'])} ({fmt(c['min'])}-{fmt(c['max'])}){ratio}")
    return "\n".join(lines)


def tools_for(res: dict, form: str, op: str) -> list[str]:
    found = set()
    for n in res["sizes"]:
        for r in _rounds(res, form, op, n):
            found |= set(r)
    if form == "inproc" and op in ("noop", "status"):
        found.add("select1")
    return [t for t in ORDER if t in found]


def _x(v: float | None, tag: str) -> str:
    return f"{tag}{v:.2f}" if v is not None else ""


def text_table(res: dict) -> str:
    sizes = res["sizes"]
    head = f"{'operation':<28} {'tool':<12}" + "".join(f"{'N=' + str(n):>44}" for n in sizes)
    lines = [
        "median (min-max); xF = ratio to the floor (process: psql; in-process: python floor / connect+SELECT 1), "
        "xY = to stock yoyo, xP = to python connect+SELECT 1",
        head,
        "-" * len(head),
    ]
    for form in FORMS:
        for op in OPS:
            for tool in tools_for(res, form, op):
                cells = []
                for n in sizes:
                    c = cell(res, form, op, n, tool)
                    if c is None:
                        cells.append(f"{'-':>44}")
                        continue
                    ratios = " ".join(
                        filter(None, [_x(c.get("x_floor"), "xF"), _x(c.get("x_yoyo"), "xY"), _x(c.get("x_py"), "xP")])
                    )
                    text = f"{fmt(c['median'])} ({fmt(c['min'])}-{fmt(c['max'])}) {ratios}"
                    cells.append(f"{text:>44}")
                lines.append(f"{FORMS[form] + ' ' + op:<28} {tool:<12}" + "".join(cells))
        lines.append("")
    forms = text_cli_forms(res)
    if forms:
        lines += [forms, ""]
    import fleet  # bench/fleet.py: the fan-out row

    if fleet.text(res):
        lines += [fleet.text(res), ""]
    import verifyrow  # bench/verifyrow.py

    if verifyrow.text(res):
        lines += [verifyrow.text(res), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- targets


def per_revision_statements(res: dict, op: str, tool: str = "z4j") -> float | None:
    sizes = res["sizes"]
    counts = res["counts"]
    lo, hi = counts.get(f"{op}|{sizes[0]}|{tool}"), counts.get(f"{op}|{sizes[-1]}|{tool}")
    if not lo or not hi or sizes[-1] == sizes[0]:
        return None
    return (hi["statements"] - lo["statements"]) / (sizes[-1] - sizes[0])


def _noop_versus(res: dict, form: str, n: int, tool: str, floor: str, key: str) -> tuple[float, str] | None:
    """A no-op cell's ratio and its text "xR (median vs floor median)", or None if not measured."""
    c = cell(res, form, "noop", n, tool)
    f = cell(res, form, "noop", n, floor)
    if not c or c.get(key) is None:
        return None
    return c[key], f"x{c[key]:.2f} ({fmt(c['median'])} vs {fmt(f['median']) if f else '?'})"


def targets(res: dict) -> list[tuple[str, str, bool | None]]:
    sizes, counts = res["sizes"], res["counts"]
    big = sizes[-1]
    out: list[tuple[str, str, bool | None]] = []

    noop_counts = [counts.get(f"inproc-noop|{n}|z4j") for n in sizes]
    if all(noop_counts):
        worst = max(c["statements"] for c in noop_counts)
        errors = sum(c["errors"] for c in noop_counts)
        yo = counts.get(f"inproc-noop|{sizes[0]}|yoyo")
        peer = f"; stock yoyo: {yo['statements']} statements, {yo['errors']} ERROR lines" if yo else ""
        out.append(
            (
                "in-process no-op: <= 3 statements after connecting, 0 ERROR lines",
                f"{worst} statements, {errors} ERROR lines (every N){peer}",
                worst <= 3 and errors == 0,
            )
        )
    for n in sizes:
        vs = _noop_versus(res, "inproc", n, "z4j", "select1", "x_floor")
        if vs:
            out.append((f"in-process no-op within 1.5x of connect + SELECT 1 (N={n})", vs[1], vs[0] <= 1.5))
    for n in sizes:  # informational: the same start-up check without the manifest (reads and hashes every file)
        vs = _noop_versus(res, "inproc", n, "z4j-nosum", "select1", "x_floor")
        m = cell(res, "inproc", "noop", n, "z4j")
        if vs:
            with_sum = f"; with it: x{m['x_floor']:.2f} ({fmt(m['median'])})" if m and m.get("x_floor") else ""
            out.append(
                (
                    f"(informational) in-process no-op without z4j-migrate.sum, vs connect + SELECT 1 (N={n})",
                    vs[1] + with_sum,
                    None,
                )
            )
    for n in sizes:
        vs = _noop_versus(res, "process", n, "z4j", "py-select1", "x_py")
        if vs:
            out.append((f"no-op process within 1.2x of python connect + SELECT 1 (N={n})", vs[1], vs[0] <= 1.2))
    forms = dict(cli_forms(res))
    for form in ("z4j-env", "z4j-flags"):
        c, floor = forms.get(form), forms.get("py-select1")
        if c and c["x_py"] is not None:
            out.append(
                (
                    f"no-op process within {CLI_FORMS_LIMIT}x of python connect + SELECT 1 "
                    f"(N={res['cli_forms']['n']}): {CLI_FORMS[form]}",
                    f"x{c['x_py']:.2f} ({fmt(c['median'])} vs {fmt(floor['median']) if floor else '?'})",
                    c["x_py"] <= CLI_FORMS_LIMIT,
                )
            )
    flags_heavy = (res.get("cli_forms") or {}).get("flags_heavy")
    if flags_heavy is not None:
        out.append(
            (
                "no-op process with every setting as an option imports no yoyo, pglast, click, sqlparse",
                "imports: " + (", ".join(flags_heavy) if flags_heavy else "none of them"),
                not flags_heavy,
            )
        )
    heavy = res.get("imports", {}).get("noop_process_heavy")
    if heavy is not None:
        out.append(
            (
                "no-op process imports no yoyo, pglast, click, sqlparse",
                "imports: " + (", ".join(heavy) if heavy else "none of them"),
                not any(m in heavy for m in ("yoyo", "pglast", "click", "sqlparse")),
            )
        )
    for op, label in (("apply", "applied"), ("rollback", "rolled-back")):
        per = per_revision_statements(res, op)
        conns = [counts.get(f"{op}|{n}|z4j", {}).get("connections") for n in sizes]
        if per is not None:
            beyond = per - 1  # each revision's own SQL goes as one query
            out.append(
                (
                    f"per {label} revision: <= 4 statements beyond its own SQL, no new connection",
                    f"{beyond:.2f} beyond its own; connections per run: {conns}",
                    beyond <= 4 and all(c == 1 for c in conns),
                )
            )
    for op, limit, word in (("apply", 1.2, "upgrade"), ("rollback", 1.3, "downgrade")):
        c = cell(res, "process", op, big, "z4j")
        if c and c.get("x_floor") is not None:
            peers = []
            for peer in ("dbmate", "alembic", "yoyo"):
                p = cell(res, "process", op, big, peer)
                if p and p.get("x_floor") is not None:
                    peers.append(f"{peer} x{p['x_floor']:.2f}")
            out.append(
                (
                    f"full {word} of {big} within {limit}x of the psql floor",
                    f"x{c['x_floor']:.2f} ({fmt(c['median'])}); " + ", ".join(peers),
                    c["x_floor"] <= limit,
                )
            )
    for op, what in (("status", "status"), ("noop", "no-op upgrade (includes the drift check)")):
        c = cell(res, "inproc", op, big, "z4j")
        if c:
            out.append((f"in-process {what} of {big} applied: < 100 ms", fmt(c["median"]), c["median"] < 100))
    lin = linearity(res, "process", "apply", "z4j")
    if lin:
        out.append(("cost grows (at most) linearly with N (process apply, ms per added revision)", lin[0], lin[1]))
    lin = linearity(res, "process", "rollback", "z4j")
    if lin:
        out.append(("cost grows (at most) linearly with N (process downgrade, ms per added revision)", lin[0], lin[1]))
    return out


def linearity(res: dict, form: str, op: str, tool: str) -> tuple[str, bool] | None:
    sizes = res["sizes"]
    if len(sizes) < 3:
        return None
    meds = {n: (cell(res, form, op, n, tool) or {}).get("median") for n in sizes}
    if any(v is None for v in meds.values()):
        return None
    slopes = [(meds[b] - meds[a]) / (b - a) for a, b in zip(sizes, sizes[1:], strict=False)]
    ok = slopes[-1] <= 1.5 * slopes[0]  # no superlinear growth: one more revision costs no more at large N
    pairs = zip(sizes, sizes[1:], strict=False)
    text = ", ".join(f"{a}->{b}: {s:.2f} ms/rev" for (a, b), s in zip(pairs, slopes, strict=False))
    return text, ok


def text_targets(res: dict) -> str:
    lines = ["targets:"]
    for name, value, ok in targets(res):
        mark = {True: "MET   ", False: "MISSED", None: "info  "}[ok]
        lines.append(f"  {mark} {name}: {value}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- import-time helpers


def _importtime_rows(stderr: str) -> list[tuple[int, int, str]]:
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cum_us, name = line.split(":", 1)[1].split("|")
        rows.append((int(self_us), int(cum_us), name.rstrip()))
    return rows


def importtime_total(stderr: str, top: str) -> float:
    for _self, cum, name in _importtime_rows(stderr):
        if name.strip() == top:
            return cum / 1000
    return float("nan")


def importtime_modules(stderr: str) -> set[str]:
    return {name.strip() for _s, _c, name in _importtime_rows(stderr)}


def importtime_self(stderr: str, exclude_from: str, py: str) -> list[tuple[str, float]]:
    """Self time of modules that `import z4j_migrate` adds on top of `import psycopg`."""
    base = subprocess.run([py, "-X", "importtime", "-c", exclude_from], capture_output=True, text=True).stderr
    known = importtime_modules(base)
    extra = [(name.strip(), s / 1000) for s, _c, name in _importtime_rows(stderr) if name.strip() not in known]
    extra.sort(key=lambda kv: -kv[1])
    return extra[:12]


# ---------------------------------------------------------------------------- markdown


def _md_cell(c: dict | None) -> str:
    if c is None:
        return "-"
    ratios = []
    for key, tag in (("x_floor", "floor"), ("x_py", "py"), ("x_yoyo", "yoyo")):
        if c.get(key) is not None:
            ratios.append(f"x{c[key]:.2f} {tag}")
    return f"**{fmt(c['median'])}** ({fmt(c['min'])}-{fmt(c['max'])})" + ("<br>" + " · ".join(ratios) if ratios else "")


def markdown(res: dict, notes: str) -> str:
    meta, sizes = res["meta"], res["sizes"]
    big = sizes[-1]
    out = [
        "# Performance",
        "",
        "Generated by `make bench` (`bench/run.py`; raw numbers in git-ignored `bench/out/latest.json`). "
        "The hand-written part at the end (`bench/notes.md`) explains the numbers and records before/after.",
        "",
        "Every tool runs on one throwaway PostgreSQL cluster and the same synthetic revision sets "
        "(`bench/gen.py`: tables with indexes and foreign keys, added columns, plpgsql functions, indexes, "
        "views, triggers, enums and seed rows, each with its exact down). **Process** cells are the wall time of "
        "a whole process as a deploy script runs it (start-up, imports, connecting, the work, exit). **In-process** "
        "cells time the library call inside a long-lived Python process that has already imported psycopg and "
        "the library (`bench/inproc.py`); each call opens its own connection. Each cell is the **median** "
        "(min-max) of its runs. Ratios are medians of per-round ratios: within a round every tool runs once, in "
        "rotated order, so machine drift cancels out. `floor` is the psql floor for processes; in-process it is "
        "the python floor (apply, downgrade) or `connect + SELECT 1` timed in the same worker and round (no-op, "
        'status). `py` is `python -c "import psycopg; connect; SELECT 1"`. `yoyo` is stock yoyo.',
        "",
        "z4j-migrate runs on a revision directory with its checksum manifest, `z4j-migrate.sum` (written by "
        "`z4j-migrate hash`, as the docs tell a project to ship it). The row *z4j-migrate without "
        "z4j-migrate.sum* is the same z4j-migrate on a copy of that directory without the manifest, so its "
        "start-up check reads and hashes every revision file; it takes part in no-op and status only, against "
        "the database z4j-migrate migrated (same revisions, same checksums).",
        "",
        "## Machine and versions",
        "",
        "```",
        f"date: {meta['date_utc']}",
        f"host: {meta['host']}",
        f"postgres: {meta['postgres']}",
        f"postgres settings: {', '.join(f'{k}={v}' for k, v in meta['postgres_settings'].items())}",
        f"psql: {meta['psql']}",
        f"python: {meta['python']}; {' '.join(meta['packages'])}",
        f"dbmate: {meta['dbmate']}",
        f"z4j-migrate: {meta['z4j_migrate']}",
        f"bench wall time: {res.get('wall_s', 0):.0f} s",
        "```",
        "",
        "## Results",
        "",
        "| operation | tool | " + " | ".join(f"N={n}" for n in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for form in FORMS:
        for op in OPS:
            for tool in tools_for(res, form, op):
                cells = [_md_cell(cell(res, form, op, n, tool)) for n in sizes]
                out.append(f"| {FORMS[form]} {OPS[op]} | {LABELS.get(tool, tool)} | " + " | ".join(cells) + " |")
    rows = cli_forms(res)
    if rows:
        out += [
            "",
            f"**No-op upgrade process by invocation form** (N={res['cli_forms']['n']} applied; its own rounds, "
            "every form once per round in rotated order; `py` is the ratio to python's connect + SELECT 1 "
            "in the same round). Every form of `upgrade` takes the click-free path.",
            "",
            "| invocation | median (min-max) | runs | py |",
            "|---|---|---|---|",
        ]
        for form, c in rows:
            ratio = f"x{c['x_py']:.2f}" if c["x_py"] is not None else "-"
            out.append(
                f"| `{CLI_FORMS[form]}` | **{fmt(c['median'])}** ({fmt(c['min'])}-{fmt(c['max'])}) | {c['runs']} "
                f"| {ratio} |"
            )
    runs = {f"{FORMS[f]} {o}": sorted({len(_rounds(res, f, o, n)) for n in sizes}) for f in FORMS for o in OPS}
    out += [
        "",
        "Runs per cell: " + "; ".join(f"{k}: {'/'.join(map(str, v))}" for k, v in runs.items() if v) + ". "
        "dbmate's downgrade at the largest N and stock yoyo in-process at the largest N run fewer times (slow).",
        "",
        "## Targets (issue #5)",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    for name, value, ok in targets(res):
        out.append(f"| {name} | {value} | {'met' if ok else 'MISSED' if ok is False else 'info'} |")

    out += [
        "",
        "## Statements, ERROR lines and connections per operation",
        "",
        "From the server's statement log (`log_statement = all`, attributed by database; the harness's own "
        "sessions excluded) during the untimed verification run. A statement is one query message "
        "(`statement:` or `execute` line): z4j-migrate and dbmate send each revision file as one query, psql "
        "and the stock CLIs of yoyo and Alembic send statement by statement. Connections: backends that ran "
        "anything for the operation. `in-process no-op` is the library call.",
        "",
        "| tool | operation | " + " | ".join(f"N={n}" for n in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    counts = res["counts"]
    for tool in ORDER:
        for op in ("apply", "noop", "inproc-noop", "status", "rollback"):
            row = [counts.get(f"{op}|{n}|{tool}") for n in sizes]
            if not any(row):
                continue
            cells = [f"{c['statements']} st, {c['errors']} err, {c['connections']} conn" if c else "-" for c in row]
            out.append(f"| {LABELS.get(tool, tool)} | {op} | " + " | ".join(cells) + " |")
    texts = counts.get(f"noop|{sizes[0]}|z4j", {}).get("texts")
    if texts:
        out += ["", "z4j-migrate's no-op, every statement it sends:", "", "```"] + texts + ["```"]

    out += [
        "",
        "## Cost per revision (does it grow linearly?)",
        "",
        "Process medians: (t(N2) - t(N1)) / (N2 - N1), the cost of one more revision once fixed costs are paid.",
        "",
        "| tool | operation | " + " | ".join(f"{a}->{b}" for a, b in zip(sizes, sizes[1:], strict=False)) + " |",
        "|---|---|" + "---|" * (len(sizes) - 1),
    ]
    for op in ("apply", "rollback"):
        for tool in tools_for(res, "process", op):
            meds = [(cell(res, "process", op, n, tool) or {}).get("median") for n in sizes]
            if any(m is None for m in meds):
                continue
            slopes = [f"{(meds[i + 1] - meds[i]) / (sizes[i + 1] - sizes[i]):.2f} ms" for i in range(len(sizes) - 1)]
            out.append(f"| {LABELS.get(tool, tool)} | {op} | " + " | ".join(slopes) + " |")

    out += ["", "## Start-up and imports", "", "| command | median | min | max |", "|---|---|---|---|"]
    for label, xs in res.get("startup", {}).items():
        if xs:
            out.append(f"| `{label}` | **{fmt(statistics.median(xs))}** | {fmt(min(xs))} | {fmt(max(xs))} |")
    imp = res.get("imports", {})
    if imp:
        top = ", ".join(f"{name} {ms:.1f}" for name, ms in imp.get("z4j_self_top", []))
        out += [
            "",
            f"- `python -X importtime -c 'import z4j_migrate'`: {imp.get('z4j_migrate', 0):.1f} ms cumulative, of "
            f"which psycopg alone is about {imp.get('psycopg', 0):.1f} ms (importtime inflates both).",
            f"- Modules it adds on top of psycopg, by self time (ms): {top or '-'}.",
            "- The no-op process (`z4j-migrate` with settings in the environment) loads "
            f"{imp.get('noop_process_modules')} modules; of yoyo, pglast, click, sqlparse, tomllib, uuid it loads: "
            f"{', '.join(imp.get('noop_process_heavy') or []) or 'none'}.",
        ]
    heavy_in = res.get("noop_imports_inproc")
    if heavy_in is not None:
        out.append(
            "- In-process, after the first no-op call: of yoyo, pglast, click, sqlparse and the runner it has loaded: "
            f"{', '.join(heavy_in) or 'none'}."
        )

    floor = res.get("rss_floor_kb", 0)
    if floor:
        how = (
            "Each process's own peak, from wait4(). The processes are started by `bench/spawn.py`, whose own"
            f" peak RSS ({floor / 1024:.0f} MiB) is a floor: a value at or below it is shown as ≤ it."
        )
    else:  # results from before bench/spawn.py
        how = "Recorded before `bench/spawn.py`: every value is at least the harness's own peak RSS at the time."
    out += [
        "",
        "## Peak memory (max RSS of the process)",
        "",
        how,
        "",
        "| tool | operation | " + " | ".join(f"N={n}" for n in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for tool in ORDER:
        for op in ("apply", "noop", "rollback"):
            vals = [res["rss"].get(f"process|{op}|{n}|{tool}") for n in sizes]
            if not any(vals):
                continue
            cells = [
                (f"≤ {floor / 1024:.0f}" if max(v) <= floor else f"{max(v) / 1024:.0f}") + " MiB" if v else "-"
                for v in vals
            ]
            out.append(f"| {LABELS.get(tool, tool)} | {op} | " + " | ".join(cells) + " |")
    if res.get("inproc_rss"):
        out.append(
            "",
        )
        out.append(
            "In-process workers' peak RSS after all sizes: "
            + ", ".join(f"{t} {kb / 1024:.0f} MiB" for t, kb in res["inproc_rss"].items())
            + "."
        )

    b = res.get("bundled")
    if b:
        out += [
            "",
            f"## The bundled z4j set ({b['revisions']} revisions in sql/)",
            "",
            "| operation | process | in-process | statements / connections |",
            "|---|---|---|---|",
        ]
        for op in ("upgrade", "noop", "downgrade"):
            p, i = b["process"].get(op) or [], b["inproc"].get(op) or []
            c = b.get("counts", {}).get(op)
            cc = f"{c['statements']} st, {c['errors']} err, {c['connections']} conn" if c else "-"
            pm = f"**{fmt(statistics.median(p))}** ({fmt(min(p))}-{fmt(max(p))})" if p else "-"
            im = f"**{fmt(statistics.median(i))}** ({fmt(min(i))}-{fmt(max(i))})" if i else "-"
            label = {"upgrade": "upgrade head (empty database)", "noop": "no-op", "downgrade": "downgrade base"}[op]
            out.append(f"| {label} | {pm} | {im} | {cc} |")
        rt = b.get("roundtrip")
        if rt:
            verdict = "every snapshot matched" if rt["ok"] else "MISMATCHES: " + "; ".join(rt["problems"])
            out += [
                "",
                "Full round trip (`bench/roundtrip.py`: for each revision upgrade, snapshot, downgrade one step, "
                "compare, re-upgrade, compare; then base and head again): "
                f"**{fmt(rt['process_ms'])}** as a process ({rt['operations']} upgrade/downgrade calls, {verdict}).",
            ]
        t = b.get("roundtrip_test")
        if t:
            out.append(
                f"The round-trip test ({', '.join(t['files'])}) as `pytest -q`: **{fmt(t['ms'])}** "
                f"(exit {t['exit']}: {t['summary']})."
            )

    import fleet  # bench/fleet.py: the fan-out row
    import verifyrow  # bench/verifyrow.py: verify beside upgrade + downgrade

    out += fleet.markdown(res)
    out += verifyrow.markdown(res)
    out += [
        "",
        "## Verification",
        "",
        "Before any timing, each tool applied each set once; its catalog fingerprint (every pb_ relation, column "
        "with type and default, constraint, index, function body hash, trigger, enum, view and comment, plus "
        "the row count of every pb_ table) had to equal the psql floor's, its bookkeeping had to count N, and "
        "after its rollback no pb_ object and no bookkeeping row could remain. Timed runs re-check the "
        "bookkeeping after every apply and rollback.",
        "",
        "| N | tool | fingerprint | pb_ tables | bookkeeping after apply | after rollback | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in res["verify"]:
        if "fingerprint" not in row:
            continue
        by = row.get("applied_by")
        tool = f"{row['tool']} (on the database {by} applied)" if by else row["tool"]
        out.append(
            f"| {row['n']} | {tool} | {row['fingerprint']} | {row.get('tables')} | {row.get('after_apply')} "
            f"| {row.get('after_rollback', '-')} | {'yes' if row.get('ok') else 'NO'} |"
        )
    out += ["", "## First apply (untimed verification run, one sample, with log_statement=all)", ""]
    out.append("| tool | " + " | ".join(f"N={n}" for n in sizes) + " |")
    out.append("|---|" + "---|" * len(sizes))
    for tool in ORDER:
        vals = [res["first_apply"].get(f"{n}|{tool}") for n in sizes]
        if any(v is not None for v in vals):
            out.append(f"| {LABELS.get(tool, tool)} | " + " | ".join(fmt(v) for v in vals) + " |")
    if notes.strip():
        out += ["", notes.strip()]
    _ = big
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--docs"]
    path = Path(args[0]) if args else Path(__file__).parent / "out" / "latest.json"
    data = json.loads(path.read_text())
    print(text_table(data))
    print(text_targets(data))
    if "--docs" in sys.argv:  # re-render docs/performance.md (e.g. after editing bench/notes.md)
        here = Path(__file__).resolve().parent
        notes = here / "notes.md"
        doc = markdown(data, notes.read_text() if notes.exists() else "")
        (here.parent / "docs" / "performance.md").write_text(doc)
        print("wrote docs/performance.md")
