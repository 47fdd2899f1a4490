"""How often does a residual the confirmation served lose on galleries nobody tuned on? The record so far.

Reads the lines ``gallery_size.py`` wrote (one per cell and seed: the α's each task served and the served R@1 of
DiffGAP + fusion and of its fair counterparts on ten disjoint 600-clip galleries of clips no training or tuning
saw) and counts, per (cell, seed, task) that served a residual (query α or items α above 0), whether it stayed
above the best counterpart on those galleries. A residual is served only where validation was at least 90 %
sure of it (``gap.selection.SERVE_CONFIDENCE``): if that share were a calibrated probability, at most one in ten
of the residuals served at the edge would lose. Runs of a (cell, seed) found in several files count once, from
the first file of ``--files``.

    python benchmarks/confirm_record.py      # results/confirm_record.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from family_gap import cell_id  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FILES = ("gallery_size_d256_20k.jsonl", "gallery_size_d256_4k.jsonl", "gallery_size_mlp_scale.jsonl", "gallery_size_events_text.jsonl", "gallery_size_events_video.jsonl",
         "gallery_size_slice.jsonl", "gallery_size.jsonl", "gallery_size_4k_rest.jsonl",
         "gallery_size_5cap4k.jsonl", "gallery_size_20k_rest.jsonl", "gallery_size_20k_video512.jsonl",
         "gallery_size_20k_mlp512.jsonl", "gallery_size_40k_video.jsonl", "gallery_size_5cap20k.jsonl")
BUCKETS = ((0.90, 0.95), (0.95, 0.99), (0.99, 1.01))
# the family-of-gaps tally's 80 cells (160 directions) as docs/diffgap.md counts them, by the files that measured them
TALLY_FILES = ("family_gap_crossfit.jsonl", "family_gap_d256_events.jsonl", "family_gap_d256_mlp.jsonl",
               "family_gap_d256_mlp_sqrtd.jsonl", "family_gap_d512_events.jsonl", "family_gap_d512_events_video.jsonl",
               "family_gap_d512_mlp_sqrtd.jsonl", "family_gap_d512_mlp_strong_sqrtd_40k.jsonl",
               "family_gap_events_scale.jsonl", "family_gap_mlp_scale.jsonl", "family_gap_5cap4k_events.jsonl",
               "family_gap_5cap4k_mlp.jsonl", "family_gap_5cap20k_events.jsonl", "family_gap_5cap20k_events_mild.jsonl",
               "family_gap_5cap20k_mlp.jsonl", "family_gap_5cap20k_mlp_mild.jsonl")


def served_alphas(alpha: dict[str, dict[str, float]], task: str) -> tuple[float, float]:
    """The α's a task serves: its query's (``a|q`` bridges the query of ``q->a``) and its items' (``q|a``)."""
    q, items = task.split("->")
    return alpha["query"].get(f"{items}|{q}", 0.0), alpha["items"].get(f"{q}|{items}", 0.0)


def records(lines: list[dict[str, Any]], size: str = "600") -> list[dict[str, Any]]:
    """One row per (cell, seed, task): the α's served, validation's share, the margin over the best counterpart
    on each unseen gallery of ``size`` clips (DiffGAP + fusion minus the better of ridge and Procrustes + fusion)."""
    out = []
    for line in lines:
        judged = line["sizes"][size]
        for task in judged["results"]:
            margins = [g[task]["diffgap_fusion"] - max(g[task]["ridge_fusion"], g[task]["procrustes_fusion"])
                       for g in judged["each"]]
            out.append({"cell": line["cell"], "seed": line["seed"], "task": task,
                        "alphas": served_alphas(line["alpha"], task),
                        "share": line["val"][task].get("task_confidence"), "margins": margins})
    return out


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over the rows that served a residual, by validation's share."""
    served = [r for r in rows if any(a > 0 for a in r["alphas"])]
    by_bucket = []
    for lo, hi in BUCKETS:
        inside = [r for r in served if r["share"] is not None and lo <= r["share"] < hi]
        mean = [float(np.mean(r["margins"])) for r in inside]
        by_bucket.append({"share": f"{lo:.2f}-{min(hi, 1.0):.2f}", "served": len(inside),
                          "lost_on_average": sum(m < 0 for m in mean),
                          "lost_on_most_galleries": sum(sum(x < 0 for x in r["margins"]) * 2 > len(r["margins"])
                                                        for r in inside),
                          "mean_margin": round(float(np.mean(mean)), 2) if mean else None})
    means = [float(np.mean(r["margins"])) for r in served]
    worst = sorted(zip(means, served), key=lambda x: x[0])[:3]
    return {"runs": len(rows), "served": len(served), "lost_on_average": sum(m < 0 for m in means),
            "by_share": by_bucket,
            "worst": [{"cell": w["cell"], "seed": w["seed"], "task": w["task"], "share": w["share"],
                       "mean_margin": round(m, 2), "galleries_below": sum(x < 0 for x in w["margins"]),
                       "galleries": len(w["margins"])} for m, w in worst]}


def tally_cells(results: Path) -> set[str]:
    """The tally's cells (``cell_id``) from those of ``TALLY_FILES`` in ``results``."""
    cells = set()
    for name in TALLY_FILES:
        if not (results / name).exists():
            continue
        for text in filter(str.strip, (results / name).read_text().splitlines()):
            line = json.loads(text)
            if "cell" in line:
                cells.add(cell_id(line["cell"]))
    return cells


def direction_tally(rows: list[dict[str, Any]], cells: set[str]) -> dict[str, Any]:
    """Each direction of the tally's ``cells`` judged on unseen galleries: served − best counterpart, each seed the
    mean over its galleries, then mean ± sd over the seeds; *tied* where both round to 0.0, *below* where the
    mean is under 0, *above by more than a sd* where it exceeds the sd, else *within*."""
    by: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if cell_id(r["cell"]) in cells:
            by.setdefault((cell_id(r["cell"]), r["task"]), []).append(float(np.mean(r["margins"])))
    counts = {"above by more than a sd": 0, "above within a sd": 0, "tied": 0, "below": 0}
    below = []
    for (cell, task), seeds in sorted(by.items()):
        mean, sd = float(np.mean(seeds)), float(np.std(seeds, ddof=1)) if len(seeds) > 1 else 0.0
        kind = ("tied" if round(mean, 1) == 0 and round(sd, 1) == 0 else "below" if mean < 0
                else "above by more than a sd" if mean > sd else "above within a sd")
        counts[kind] += 1
        if kind == "below":
            below.append({"cell": cell, "task": task, "mean": round(mean, 2), "sd": round(sd, 2)})
    return {"directions": len(by), "cells": len({c for c, _ in by}), "of_cells": len(cells), "counts": counts,
            "below": below}


def markdown(result: dict[str, Any]) -> str:
    s = result["summary"]
    lines = ["# The confirmation's record on unseen galleries", "",
             f"- read: {', '.join(result['files'])}; {s['runs']} (cell, seed, task) runs, {s['served']} served a"
             f" residual; {s['lost_on_average']} of those below the best counterpart on average over their galleries",
             "", "| validation's share | residuals served | below on average | below on most galleries |"
             " mean margin (R@1 points) |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {b['share']} | {b['served']} | {b['lost_on_average']} | {b['lost_on_most_galleries']} |"
              f" {b['mean_margin'] if b['mean_margin'] is not None else '-'} |" for b in s["by_share"]]
    lines += ["", "The worst three:", ""]
    lines += [f"- {cell_id(w['cell'])} seed {w['seed']} {w['task']}: share {w['share']}, {w['mean_margin']:+.2f} on average,"
              f" below on {w['galleries_below']} of {w['galleries']} galleries" for w in s["worst"]]
    t = result.get("tally")
    if t:
        lines += ["", f"## The family tally's directions judged on unseen galleries: {t['directions']} of"
                      f" {2 * t['of_cells']} ({t['cells']} of {t['of_cells']} cells)", "",
                  "Served − the best counterpart, each seed the mean over its ten 600-clip galleries, mean ± sd over"
                  " seeds (a run found in several files counts from the first):", "",
                  "| " + " | ".join(t["counts"]) + " |", "|" + " ---: |" * len(t["counts"]),
                  "| " + " | ".join(str(v) for v in t["counts"].values()) + " |", "", "Below on average:", ""]
        lines += [f"- {b['cell']} {b['task']}: {b['mean']:+.2f} ± {b['sd']:.2f}" for b in t["below"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", nargs="+", default=list(FILES), help="gallery_size.py lines, first wins")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    seen: set[str] = set()
    lines, read = [], []
    for name in args.files:
        if not (args.results / name).exists():
            print(f"{name}: not written yet, skipped", file=sys.stderr)
            continue
        read.append(name)
        for text in filter(str.strip, (args.results / name).read_text().splitlines()):
            line = json.loads(text)
            key = json.dumps([line["cell"], line["seed"]], sort_keys=True)
            if key not in seen:
                seen.add(key)
                lines.append(line)
    rows = records(lines)
    result = {"files": read, "summary": summary(rows), "tally": direction_tally(rows, tally_cells(args.results))}
    text = markdown(result)
    print(text)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "confirm_record.md").write_text(text)
    (args.out_dir / "confirm_record.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
