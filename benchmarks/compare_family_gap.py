"""Two ``family_gap.py`` runs side by side, cell by cell, on the (cell, seed) runs both have: DiffGAP served and
served − the best fair counterpart under each, mean ± sd over the seeds, and the (run, task) counts.

Used to judge a training setting changed between two runs of the same cells and seeds (the test clips are
the same: seed s draws them), e.g. the validation share:

    python benchmarks/compare_family_gap.py results/family_gap_crossfit.jsonl results/family_gap_val20.jsonl \\
        --labels "val 10 %" "val 20 %" --out results/family_gap_val20_vs_10.md
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np


def cell_id(c: dict[str, Any]) -> str:
    return f"{c['family']}-{c['level']} D{c['dim']} {c['captions']}cap {c['clips']} clips {c['modality']}"


def gap(res: dict[str, float]) -> float:
    """Served DiffGAP minus the better of ridge + fusion and Procrustes + fusion."""
    return res["diffgap_fusion"] - max(res["ridge_fusion"], res["procrustes_fusion"])


def ms(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.1f} ± {a.std(ddof=1):.1f}" if len(a) > 1 else f"{a.mean():.1f}"


def compare(first: list[dict[str, Any]], second: list[dict[str, Any]], labels: tuple[str, str]) -> str:
    """The markdown table and summary of ``second`` against ``first`` on their common (cell, seed) runs."""
    a = {(cell_id(x["cell"]), x["seed"]): x for x in first}
    b = {(cell_id(x["cell"]), x["seed"]): x for x in second}
    rows: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[str, float] = defaultdict(float)
    for key in sorted(set(a) & set(b)):
        for task in b[key]["results"]:
            for side, run in (("a", a[key]), ("b", b[key])):
                res = run["results"][task]
                rows[(key[0], task)][f"{side}_served"].append(res["diffgap_fusion"])
                rows[(key[0], task)][f"{side}_gap"].append(gap(res))
                counts[f"{side} above"] += gap(res) > 0
                counts[f"{side} below"] += gap(res) < 0
                counts[f"{side} points above"] += max(gap(res), 0.0)
                counts[f"{side} points below"] += min(gap(res), 0.0)
            d = b[key]["results"][task]["diffgap_fusion"] - a[key]["results"][task]["diffgap_fusion"]
            counts["served higher"] += d > 0
            counts["served lower"] += d < 0
    la, lb = labels
    lines = [f"| cell | task | seeds | served, {la} | served, {lb} | served − counterpart, {la} | "
             f"served − counterpart, {lb} |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for (cell, task), r in sorted(rows.items()):
        lines.append(f"| {cell} | {task} | {len(r['a_served'])} | {ms(r['a_served'])} | {ms(r['b_served'])} | "
                     f"{ms(r['a_gap'])} | {ms(r['b_gap'])} |")
    figures = int(counts["served higher"] + counts["served lower"]) if rows else 0
    summary = (f"\n{sum(len(r['a_served']) for r in rows.values())} (run, task) figures. Served above the best "
               f"counterpart: {la} {counts['a above']:.0f} (+{counts['a points above']:.1f} points), below "
               f"{counts['a below']:.0f} ({counts['a points below']:.1f}); {lb} {counts['b above']:.0f} "
               f"(+{counts['b points above']:.1f}), below {counts['b below']:.0f} ({counts['b points below']:.1f}). "
               f"Served R@1 itself, {lb} against {la}: higher in {counts['served higher']:.0f}, lower in "
               f"{counts['served lower']:.0f} of the {figures} that moved.\n")
    return "\n".join(lines) + "\n" + summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("first", type=Path)
    p.add_argument("second", type=Path)
    p.add_argument("--labels", nargs=2, default=("first", "second"))
    p.add_argument("--out", type=Path, help="write the table here (markdown) as well as to stdout")
    args = p.parse_args(argv)
    load = lambda path: [json.loads(line) for line in path.read_text().splitlines() if line.strip()]  # noqa: E731
    text = compare(load(args.first), load(args.second), tuple(args.labels))
    print(text)
    if args.out:
        args.out.write_text(f"# {args.second.name} against {args.first.name}\n\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
