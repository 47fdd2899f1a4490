"""DiffGAP across a family of gaps: every cell of the grid, 3 seeds, DiffGAP vs its fair counterparts, mean ± sd.

The worlds are ``gap_worlds``' (held apart from ``gap.synthetic``, on which the defaults were chosen): the
``mlp`` family (a nonlinear map, additive Gaussian noise) and the ``events`` family (bags of sound events,
log-normal loudness, interactions, captions that miss quiet events, Student-t noise: not additive Gaussian).
Axes (``--families``, ``--levels``, ``--dims``, ``--captions``, ``--clips``, ``--modalities``, ``--seeds``):

- level ``mild`` / ``strong``: how nonlinear and how noisy the gap is (``LEVELS``);
- D in 64, 256, 512; captions per clip 1 or 5 (video pairs have one clip each: the axis collapses);
- training clips 1k, 4k, 20k; 600 test clips; text <-> audio and video <-> audio;
- seeds 0, 1, 2: seed s draws the training clips, the test clips and the training run.

Every cell trains with ``train_bridge``'s defaults (what ``dgsearch train`` does) and is scored by
``evaluate_methods`` (what ``dgsearch eval`` reports): DiffGAP alone vs ridge, and DiffGAP + fusion vs the
best fair served counterpart (ridge + fusion, Procrustes + fusion, tuned the same way on the same validation
clips). One JSON line per (cell, seed) is appended to ``<out-dir>/<name>.jsonl`` as it finishes (a rerun skips
the runs already there); ``<name>.md`` is the table so far, mean ± sd over the seeds that ran.

    python benchmarks/family_gap.py                                   # the full grid: days on 2 cores
    python benchmarks/family_gap.py --dims 64 --clips 1000 --captions 5   # a slice
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gap_worlds import World, WorldSpec  # noqa: E402
from synthetic_gap import machine  # noqa: E402

from diffgap_search.gap.evaluation import evaluate_methods  # noqa: E402
from diffgap_search.gap.training import TrainConfig, train_bridge  # noqa: E402

FP = "synthetic-" + "0" * 54
LEVELS: dict[str, dict[str, dict[str, float]]] = {
    "mlp": {"mild": {"nonlin": 1.0, "noise": 0.2, "private": 0.5}, "strong": {"nonlin": 1.5, "noise": 0.3, "private": 0.7}},
    "events": {"mild": {"nonlin": 0.5, "noise": 0.3}, "strong": {"nonlin": 1.5, "noise": 0.6}},
}
N_TEST = 600


def cells(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every cell of the grid the arguments select (video collapses the captions axis to 1)."""
    out, seen = [], set()
    for fam, level, dim, caps, clips, mod in product(args.families.split(","), args.levels.split(","),
                                                     map(int, args.dims.split(",")), map(int, args.captions.split(",")),
                                                     map(int, args.clips.split(",")), args.modalities.split(",")):
        caps = 1 if mod == "video" else caps
        key = (fam, level, dim, caps, clips, mod)
        if key not in seen:
            seen.add(key)
            out.append(dict(zip(("family", "level", "dim", "captions", "clips", "modality"), key)))
    return out


def cell_id(c: dict[str, Any]) -> str:
    return f"{c['family']}-{c['level']} D{c['dim']} {c['captions']}cap {c['clips']} clips {c['modality']}"


def run(c: dict[str, Any], seed: int, epochs: int) -> dict[str, Any]:
    """Train and evaluate one cell with one seed -> its JSON line."""
    world = World(WorldSpec(c["family"], c["dim"], **LEVELS[c["family"]][c["level"]]), seed=0)
    pick = "text_pairs" if c["modality"] == "text" else "video_pairs"
    train, groups = getattr(world.sample(c["clips"], 100 + seed, c["captions"]), pick)()
    test, test_groups = getattr(world.sample(N_TEST, 200 + seed, c["captions"]), pick)()
    t0 = time.perf_counter()
    bridge, report = train_bridge(train, groups=groups, cfg=TrainConfig(seed=seed, epochs=epochs),
                                  encoder_fingerprints={"audio": FP, c["modality"]: FP})
    seconds = time.perf_counter() - t0
    ev = evaluate_methods(test, bridge, groups=test_groups)
    keep = ("raw", "ridge", "procrustes", "diffgap", "ridge_fusion", "procrustes_fusion", "diffgap_fusion")
    return {"cell": c, "seed": seed, "seconds": round(seconds, 1), "epochs_run": report.selection["checkpoint"]["epochs_run"],
            "epoch": report.selection["checkpoint"]["epoch"], "alpha": report.selection.get("residual_scale", {}),
            "results": {k: {m: round(v[m]["R@1"], 2) for m in keep if m in v} for k, v in ev["results"].items()}}


def _ms(vals: list[float]) -> str:
    a = np.asarray(vals, dtype=float)
    return f"{a.mean():.1f} ± {a.std(ddof=1):.1f}" if len(a) > 1 else f"{a.mean():.1f}"


def table(lines: list[dict[str, Any]]) -> str:
    """Per cell and direction: DiffGAP alone vs ridge, served vs the best fair counterpart (by mean), and the gap."""
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_cell.setdefault(cell_id(line["cell"]), []).append(line)
    out = ["| cell | direction | seeds | DiffGAP alone | ridge | DiffGAP served | best counterpart served | served − counterpart |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for cid, runs in by_cell.items():
        for key in runs[0]["results"]:
            res = [r["results"][key] for r in runs]
            best = max(("ridge_fusion", "procrustes_fusion"), key=lambda m: np.mean([x[m] for x in res]))
            diff = [x["diffgap_fusion"] - x[best] for x in res]
            out.append(f"| {cid} | {key} | {len(runs)} | {_ms([x['diffgap'] for x in res])} | {_ms([x['ridge'] for x in res])} "
                       f"| {_ms([x['diffgap_fusion'] for x in res])} | {best.replace('_fusion', '')} {_ms([x[best] for x in res])} "
                       f"| {_ms(diff)} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default="mlp,events")
    p.add_argument("--levels", default="mild,strong")
    p.add_argument("--dims", default="64,256,512")
    p.add_argument("--captions", default="1,5")
    p.add_argument("--clips", default="1000,4000,20000")
    p.add_argument("--modalities", default="text,video")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=40, help="at most (validation stops training earlier)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--name", default="family_gap")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = args.out_dir / f"{args.name}.jsonl"
    done = [json.loads(x) for x in jsonl.read_text().splitlines()] if jsonl.exists() else []
    have = {(cell_id(x["cell"]), x["seed"]) for x in done}
    started = time.perf_counter()
    for c, seed in product(cells(args), map(int, args.seeds.split(","))):
        if (cell_id(c), seed) in have:
            continue
        line = run(c, seed, args.epochs)
        done.append(line)
        with jsonl.open("a") as fh:
            fh.write(json.dumps(line) + "\n")
        print(f"{time.perf_counter() - started:6.0f} s {cell_id(c)} seed {seed}: {line['results']} ({line['seconds']} s)",
              file=sys.stderr, flush=True)
        m = machine()
        (args.out_dir / f"{args.name}.md").write_text(
            f"# DiffGAP across a family of gaps\n\n- {m['cpu_count']} CPUs, torch {torch.__version__}, {args.threads} "
            f"thread(s); R@1 in percent, mean ± sd over the seeds that ran; {N_TEST} test clips\n\n" + table(done) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
