"""Why is DiffGAP + fusion below ridge + fusion on test where DiffGAP alone is above ridge? The selection, measured.

For one cell of ``family_gap`` and some seeds, trains the bridge once with the defaults, then for every residual
scale pair (alpha of the pair set's two directions, ``selection.RESIDUAL_GRID``) measures:

- on the validation clips (the only ones any choice may use): served R@1 with fusion weights tuned there
  (coarse grid, as ``choose_residual`` rates), bridged-query R@1;
- on the test clips, with the weights validation tuned: served R@1 and bridged-query R@1;
- on the test clips with fusion weights tuned *on test* (a diagnostic ceiling, never a choice): how much of
  the served gap is the fusion's tuning and how much is the bridge's terms.

The JSON keeps every figure; the MD a table per seed: the alpha pairs ranked by validation, with test beside.

    python benchmarks/diagnose_selection.py --family mlp --level strong --modality video --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from family_gap import FP, LEVELS, N_TEST  # noqa: E402
from gap_worlds import World, WorldSpec  # noqa: E402
from synthetic_gap import machine  # noqa: E402

from diffgap_search.gap.baselines import l2n  # noqa: E402
from diffgap_search.gap.directions import Direction  # noqa: E402
from diffgap_search.gap.fusion import fused_unit_scores, tune_fusion  # noqa: E402
from diffgap_search.gap.groups import as_groups  # noqa: E402
from diffgap_search.gap.protocol import group_codes, tasks_for  # noqa: E402
from diffgap_search.gap.selection import RESIDUAL_GRID, LinearBridge, _terms  # noqa: E402
from diffgap_search.gap.training import TrainConfig, train_bridge  # noqa: E402
from diffgap_search.gap.training_data import split_pairs  # noqa: E402
from diffgap_search.gap.validation import validation_tasks  # noqa: E402


def with_alphas(bridge: Any, alphas: dict[str, float]) -> Any:
    """A shallow copy of ``bridge`` serving ``alphas`` (the network and everything else shared)."""
    out = copy.copy(bridge)
    scales = {Direction(k): float(v) for k, v in alphas.items()}
    out._alpha = {"query": scales, "items": scales}  # one alpha per direction for both roles (format 4's rule)
    return out


def served(task: Any, terms: tuple, tune_task: Any = None, tune_terms: tuple | None = None, step: float = 0.1) -> float:
    cfg = tune_fusion(tune_task or task, *(tune_terms or terms), step=step)
    return task.metrics(fused_unit_scores(task, *terms, cfg))["R@1"]


def chunked(task: Any, terms: tuple, tune_task: Any, tune_terms: tuple, size: int) -> float:
    """Mean served R@1 over disjoint test sub-galleries of ``size`` clips (validation's gallery size), with the
    weights tuned on validation: is a validation-test disagreement the gallery's size?"""
    cfg = tune_fusion(tune_task, *tune_terms, step=0.1)
    units = fused_unit_scores(task, *terms, cfg)
    clips = np.unique(task.items.labels)
    out = []
    for lo in range(0, len(clips) - size + 1, size):
        keep = np.isin(task.items.labels, clips[lo:lo + size])
        rows = np.isin(task.queries.labels, clips[lo:lo + size])
        sub = type(task)(type(task.queries)(task.queries.modality, task.queries.vectors, task.queries.starts[rows],
                                            task.queries.labels[rows]),
                         type(task.items)(task.items.modality, task.items.vectors, task.items.starts[keep],
                                          task.items.labels[keep]), task.shared_space)
        out.append(sub.metrics(units[rows][:, keep])["R@1"])
    return float(np.mean(out))


def run(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    world = World(WorldSpec(args.family, args.dim, **LEVELS[args.family][args.level]), seed=0)
    pick = "text_pairs" if args.modality == "text" else "video_pairs"
    caps = 1 if args.modality == "video" else args.captions
    train, groups = getattr(world.sample(args.clips, 100 + seed, caps), pick)()
    test, test_groups = getattr(world.sample(N_TEST, 200 + seed, caps), pick)()
    cfg = TrainConfig(seed=seed, epochs=args.epochs)
    t0 = time.perf_counter()
    bridge, report = train_bridge(train, groups=groups, cfg=cfg, encoder_fingerprints={"audio": FP, args.modality: FP})
    seconds = time.perf_counter() - t0
    sets = split_pairs(train, as_groups(groups, train["audio"]), cfg.val_fraction)
    val_tasks = validation_tasks(sets, cfg.max_val_groups, cfg.shared_spaces, cfg.separate_spaces)
    codes = group_codes(test_groups)
    test_tasks = tasks_for("audio", args.modality, l2n(test["audio"]), l2n(test[args.modality]), codes)
    dirs = (Direction.of(val_tasks[0].queries.modality, val_tasks[0].items.modality).value,
            Direction.of(val_tasks[0].items.modality, val_tasks[0].queries.modality).value)
    rows = []
    for pair in product(RESIDUAL_GRID, RESIDUAL_GRID):
        b = with_alphas(bridge, dict(zip(dirs, pair)))
        row: dict[str, Any] = {"alpha": pair}
        for vt in val_tasks:
            tt = next(t for t in test_tasks if t.key == vt.key)
            vterms, tterms = _terms(vt, b), _terms(tt, b)
            row[vt.key] = {
                "val_served_coarse": served(vt, vterms, step=0.25), "val_served": served(vt, vterms),
                "val_alone": vt.vector_metrics(vterms[1])["R@1"], "val_mAP@10": vt.metrics(
                    fused_unit_scores(vt, *vterms, tune_fusion(vt, *vterms)))["mAP@10"],
                "test_served": served(tt, tterms, vt, vterms), "test_served_oracle": served(tt, tterms),
                "test100_served": chunked(tt, tterms, vt, vterms, len(vt.items.labels)),
                "test_alone": tt.vector_metrics(tterms[1])["R@1"]}
        rows.append(row)
    lin = {}
    for kind in ("ridge", "procrustes"):
        lb = LinearBridge(bridge.record, kind)
        for vt in val_tasks:
            tt = next(t for t in test_tasks if t.key == vt.key)
            vterms, tterms = _terms(vt, lb), _terms(tt, lb)
            lin.setdefault(kind, {})[vt.key] = {"val_served": served(vt, vterms), "test_served": served(tt, tterms, vt, vterms),
                                                "test_served_oracle": served(tt, tterms)}
    return {"seed": seed, "seconds": round(seconds, 1), "n_val_groups": report.n_groups["val"],
            "n_val_units": {t.key: [t.queries.n_units, t.items.n_units] for t in val_tasks},
            "chosen_alpha": {"query": report.selection.get("residual_scale"),
                             "items": report.selection.get("residual_scale_items")},
            "gain_confidence": {k: v.get("gain_confidence") for k, v in report.val.items()}, "epoch": report.selection["checkpoint"]["epoch"],
            "rows": rows, "linear": lin}


def table(res: dict[str, Any]) -> str:
    keys = [k for k in res["rows"][0] if k != "alpha"]
    out = [f"### seed {res['seed']}: {res['n_val_groups']} validation clips, chosen alpha {res['chosen_alpha']} "
           f"(bootstrap share of the best pair found: {res['gain_confidence']}), epoch {res['epoch']}\n",
           "| alpha | " + " | ".join(f"{k} val served (coarse) | val served | test served | test served, oracle fusion / on 100-clip test galleries | "
                                     f"val alone | test alone" for k in keys) + " |",
           "| --- | " + " | ".join("---: | ---: | ---: | ---: | ---: | ---:" for _ in keys) + " |"]
    for r in sorted(res["rows"], key=lambda r: -np.mean([r[k]["val_served_coarse"] for k in keys])):
        out.append(f"| {r['alpha']} | " + " | ".join(
            f"{r[k]['val_served_coarse']:.1f} | {r[k]['val_served']:.1f} | {r[k]['test_served']:.1f} | "
            f"{r[k]['test_served_oracle']:.1f} / {r[k]['test100_served']:.1f} | {r[k]['val_alone']:.1f} | {r[k]['test_alone']:.1f}" for k in keys) + " |")
    for kind, v in res["linear"].items():
        out.append(f"| {kind} + fusion | " + " | ".join(
            f"– | {v[k]['val_served']:.1f} | {v[k]['test_served']:.1f} | {v[k]['test_served_oracle']:.1f} | – | –"
            for k in keys) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", default="mlp")
    p.add_argument("--level", default="strong")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--captions", type=int, default=5)
    p.add_argument("--clips", type=int, default=1000)
    p.add_argument("--modality", default="video")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--name", default="diagnose_selection")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(), "runs": []}
    for seed in map(int, args.seeds.split(",")):
        out["runs"].append(run(args, seed))
        print(f"seed {seed} done", file=sys.stderr, flush=True)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / f"{args.name}.json").write_text(json.dumps(out, indent=1))
        (args.out_dir / f"{args.name}.md").write_text(
            f"# Selection diagnosis: {args.family}-{args.level} D{args.dim} {args.clips} clips {args.modality}\n\n"
            "R@1 in percent; 'oracle fusion' tunes the weights on test (a diagnostic ceiling, never a choice).\n\n"
            + "\n\n".join(table(r) for r in out["runs"]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
