"""Does DiffGAP's served lead over its fair counterparts depend on the size of the gallery it is judged on?

Validation tunes the residual scales and every fusion weight on galleries of up to ``max_val_groups`` (2,000)
clips, where R@1 is lower; ``family_gap`` judges on a 600-clip test gallery. This trains one cell of
``family_gap`` per seed exactly as it does (``train_bridge``'s defaults), then scores the same bridge on test
galleries of several sizes, drawn from one large test sample of the same world that no training or tuning saw:
for a size s, the draw is cut into ``draw // s`` disjoint galleries (at most ``--max-galleries``) and each
method's R@1 is averaged over them. The family table's own 600 test clips are scored too (``table``).

The bridges are saved (``<out-dir>/<name>_bridges/``, or ``--bridges``), so a run under another name with the same
``--bridges`` (other sizes, another draw) re-scores them without training; a (cell, seed) already in
``<name>.jsonl`` is skipped. One JSON line per seed in ``<out-dir>/<name>.jsonl``; ``<name>.md``, per size and direction, mean ± sd over
seeds of DiffGAP alone, ridge, DiffGAP served, the best counterpart served, and served − counterpart.

    python benchmarks/gallery_size.py --cells 'mlp/strong-sqrtd/512/1/40000/text' --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402
from family_gap import N_TEST, _ms, cell_id, draw, train_cell  # noqa: E402

from diffgap_search.gap.bridge import Bridge, load_bridge  # noqa: E402
from diffgap_search.gap.evaluation import evaluate_methods  # noqa: E402

KEEP = ("ridge", "procrustes", "diffgap", "ridge_fusion", "procrustes_fusion", "diffgap_fusion")
COUNTERPARTS = ("ridge_fusion", "procrustes_fusion")


def _subset(pairs: dict[str, np.ndarray], groups: np.ndarray, clips: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The rows of ``pairs`` whose group is one of ``clips`` (pairs are laid out clip by clip)."""
    rows = np.isin(groups, clips)
    return {k: v[rows] for k, v in pairs.items()}, groups[rows]


def scored(bridge: Bridge, pairs: dict[str, np.ndarray], groups: np.ndarray) -> dict[str, dict[str, float]]:
    """R@1 of ``KEEP`` per direction on one gallery."""
    ev = evaluate_methods(pairs, bridge, groups=groups)
    return {k: {m: float(v[m]["R@1"]) for m in KEEP if m in v} for k, v in ev["results"].items()}


def _mean(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {k: {m: float(np.mean([r[k][m] for r in runs])) for m in runs[0][k]} for k in runs[0]}


def run(c: dict[str, Any], seed: int, sizes: list[int], draw_size: int, max_galleries: int, bridges: Path) -> dict[str, Any]:
    """Train (or load) one cell's bridge for ``seed`` and score it on galleries of each size -> its JSON line."""
    path = bridges / f"{cell_id(c).replace(' ', '_')}_s{seed}.safetensors"
    seconds, val = None, None
    if path.exists():
        bridge = load_bridge(path)
    else:
        bridge, report, _, seconds, _, _ = train_cell(c, seed)
        val = report.val
        bridge.save(path)
    table, table_groups = draw(c, N_TEST, 200 + seed)
    big, big_groups = draw(c, draw_size, 300 + seed)
    clips = np.unique(big_groups)
    by_size: dict[str, Any] = {}
    for s in sizes:
        n = min(len(clips) // s, max_galleries)
        runs = [scored(bridge, *_subset(big, big_groups, clips[i * s:(i + 1) * s])) for i in range(n)]
        by_size[str(s)] = {"galleries": n, "results": _mean(runs), "each": runs}
    return {"cell": c, "seed": seed, "seconds": seconds, "val": val or bridge.selection.get("val"),
            "alpha": {"query": bridge.selection.get("residual_scale", {}),
                      "items": bridge.selection.get("residual_scale_items", {})},
            "table": scored(bridge, table, table_groups), "sizes": by_size}


def _below(line: dict[str, Any], size: str, key: str, best: str) -> int:
    """How many of one seed's galleries of ``size`` serve DiffGAP below ``best`` in direction ``key``."""
    return sum(g[key]["diffgap_fusion"] < g[key][best] for g in line["sizes"][size].get("each", []))


def table_md(lines: list[dict[str, Any]]) -> str:
    """Per cell, gallery size and direction, mean ± sd over seeds (the best counterpart by mean, as
    ``family_gap``), and how many galleries of all seeds served DiffGAP below that counterpart."""
    out = ["| cell | gallery (clips) | direction | seeds × galleries | DiffGAP alone | ridge | DiffGAP served "
           "| best counterpart served | served − counterpart | galleries below |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_cell.setdefault(cell_id(line["cell"]), []).append(line)
    for cid, runs in by_cell.items():
        views = [("600, the family table's", "", 1, [x["table"] for x in runs])]
        views += [(s, s, runs[0]["sizes"][s]["galleries"], [x["sizes"][s]["results"] for x in runs]) for s in runs[0]["sizes"]]
        for label, size, n, res in views:
            for key in res[0]:
                rs = [r[key] for r in res]
                best = max(COUNTERPARTS, key=lambda m: np.mean([x[m] for x in rs]))
                diff = [x["diffgap_fusion"] - x[best] for x in rs]
                below = sum(_below(x, size, key, best) for x in runs) if size else sum(d < 0 for d in diff)
                out.append(f"| {cid} | {label} | {key} | {len(rs)} × {n} | {_ms([x['diffgap'] for x in rs])} "
                           f"| {_ms([x['ridge'] for x in rs])} | {_ms([x['diffgap_fusion'] for x in rs])} "
                           f"| {best.replace('_fusion', '')} {_ms([x[best] for x in rs])} | {_ms(diff)} | {below} of {len(rs) * n} |")
    return "\n".join(out)


def parse_cell(text: str) -> dict[str, Any]:
    """``family/level/dim/captions/clips/modality`` -> a ``family_gap`` cell (video: one caption)."""
    family, level, dim, captions, clips, modality = text.strip().split("/")
    return {"family": family, "level": level, "dim": int(dim), "captions": 1 if modality == "video" else int(captions),
            "clips": int(clips), "modality": modality}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cells", default="mlp/strong-sqrtd/512/1/40000/text",
                   help="cells as family/level/dim/captions/clips/modality, separated by ';'")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--sizes", default="600,2000,6000", help="gallery sizes (clips)")
    p.add_argument("--draw", type=int, default=6000, help="test clips drawn, cut into disjoint galleries")
    p.add_argument("--max-galleries", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--name", default="gallery_size")
    p.add_argument("--bridges", type=Path, help="where the bridges are saved and found (default <out-dir>/<name>_bridges)")
    p.add_argument("--table-only", action="store_true", help="rewrite <name>.md from <name>.jsonl")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    bridges = args.bridges or args.out_dir / f"{args.name}_bridges"
    if not args.table_only:
        bridges.mkdir(parents=True, exist_ok=True)
    jsonl = args.out_dir / f"{args.name}.jsonl"
    have = {(cell_id(x["cell"]), x["seed"]) for x in map(json.loads, jsonl.read_text().splitlines())} if jsonl.exists() else set()
    cells = [parse_cell(x) for x in args.cells.split(";") if x.strip()]
    started = time.perf_counter()
    for c in cells if not args.table_only else []:
        for seed in map(int, args.seeds.split(",")):
            if (cell_id(c), seed) in have:
                continue
            line = run(c, seed, [int(s) for s in args.sizes.split(",")], args.draw, args.max_galleries, bridges)
            with jsonl.open("a") as fh:
                fh.write(json.dumps(line) + "\n")
            print(f"{time.perf_counter() - started:6.0f} s {cell_id(c)} seed {seed}: {line['table']}", file=sys.stderr, flush=True)
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    m = machine()
    (args.out_dir / f"{args.name}.md").write_text(
        f"# DiffGAP's served lead by test gallery size\n\n- {m['cpu_count']} CPUs ({m['processor']}; "
        f"{', '.join(m['cpu_flags']) or 'no avx2'}), torch {torch.__version__}; R@1 in percent, mean ± sd over the "
        f"seeds (each seed: the mean over its galleries); galleries cut from {args.draw} test clips per seed that no "
        f"training or tuning saw; the family table's 600 test clips beside\n\n{table_md(lines)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
