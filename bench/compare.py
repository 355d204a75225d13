"""Before/after table of z4j-migrate's cells from two bench result files (Markdown on stdout).

python bench/compare.py BEFORE.json AFTER.json [tool | before_tool:after_tool]

e.g. `z4j:z4j-nosum` compares the old z4j-migrate with today's on a directory without z4j-migrate.sum.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import FORMS, OPS, cell, fmt  # noqa: E402


def main(before_path: str, after_path: str, tool: str = "z4j") -> None:
    before, after = json.loads(Path(before_path).read_text()), json.loads(Path(after_path).read_text())
    before_tool, _, after_tool = tool.partition(":")
    after_tool = after_tool or before_tool
    sizes = [n for n in after["sizes"] if n in before["sizes"]]
    print("| operation | " + " | ".join(f"N={n} before → after" for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for form in FORMS:
        for op in OPS:
            cells = []
            for n in sizes:
                b, a = cell(before, form, op, n, before_tool), cell(after, form, op, n, after_tool)
                if not b or not a:
                    cells.append("-")
                    continue
                key = "x_py" if form == "process" and op in ("noop", "status") else "x_floor"
                rb, ra = b.get(key), a.get(key)
                ratio = f" (x{rb:.2f} → x{ra:.2f})" if rb is not None and ra is not None else ""
                cells.append(f"{fmt(b['median'])} → **{fmt(a['median'])}**{ratio}")
            print(f"| {FORMS[form]} {OPS[op]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:4])
