"""DiffGAP across a family of gaps: every cell of the grid, 3 seeds, DiffGAP vs its fair counterparts, mean ± sd.

The worlds are ``gap_worlds``' (held apart from ``gap.synthetic``, on which the defaults were chosen): the
``mlp`` family (a nonlinear map, additive Gaussian noise) and the ``events`` family (bags of sound events,
log-normal loudness, interactions, captions that miss quiet events, Student-t noise: not additive Gaussian).
Axes (``--families``, ``--levels``, ``--dims``, ``--captions``, ``--clips``, ``--modalities``, ``--seeds``):

- level ``mild`` / ``strong``: how nonlinear and how noisy the gap is (``LEVELS``); for ``mlp`` also
  ``mild-sqrtd`` / ``strong-sqrtd``, the same with the noise grown as sqrt(D / 64) so that D does not make the
  world easier (``gap_worlds.WorldSpec.noise_ref_dim``);
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
from _common import machine  # noqa: E402

from diffgap_search.gap.bridge import Bridge  # noqa: E402
from diffgap_search.gap.evaluation import evaluate_methods  # noqa: E402
from diffgap_search.gap.groups import as_groups  # noqa: E402
from diffgap_search.gap.selection import choose_residual  # noqa: E402
from diffgap_search.gap.training_data import confirmation_split, split_pairs  # noqa: E402
from diffgap_search.gap.validation import validation_tasks  # noqa: E402
from diffgap_search.gap.training import TrainConfig, TrainReport, train_bridge  # noqa: E402

FP = "synthetic-" + "0" * 54
LEVELS: dict[str, dict[str, dict[str, float]]] = {
    "mlp": {"mild": {"nonlin": 1.0, "noise": 0.2, "private": 0.5}, "strong": {"nonlin": 1.5, "noise": 0.3, "private": 0.7},
            # the same, with the noise grown as sqrt(D / 64) (``WorldSpec.noise_ref_dim``): identical at D = 64, meant
            # to be as hard along the signal's manifold at D = 256 and 512 (added 2026-12-05, before any run on them;
            # measured at D = 256: strong is, mild is still near-saturated, docs/diffgap.md)
            "mild-sqrtd": {"nonlin": 1.0, "noise": 0.2, "private": 0.5, "noise_ref_dim": 64},
            "strong-sqrtd": {"nonlin": 1.5, "noise": 0.3, "private": 0.7, "noise_ref_dim": 64}},
    "events": {"mild": {"nonlin": 0.5, "noise": 0.3}, "strong": {"nonlin": 1.5, "noise": 0.6}},
}
N_TEST = 600


AXES = ("family", "level", "dim", "captions", "clips", "modality")
OAT_BASE = {"family": "mlp", "level": "strong", "dim": 64, "captions": 1, "clips": 1000, "modality": "text"}


def _axis_values(args: argparse.Namespace) -> dict[str, list[Any]]:
    return {"family": args.families.split(","), "level": args.levels.split(","), "dim": [int(x) for x in args.dims.split(",")],
            "captions": [int(x) for x in args.captions.split(",")], "clips": [int(x) for x in args.clips.split(",")],
            "modality": args.modalities.split(",")}


def cells(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The cells the arguments select (video collapses the captions axis to 1): ``--design grid``, every
    combination of the axis values; ``--design oat``, the base cell (``OAT_BASE``) and, for each axis, each of
    its values with every other axis at the base (one factor at a time: every value measured at least once)."""
    values = _axis_values(args)
    if args.design == "oat":
        combos = [dict(OAT_BASE)] + [{**OAT_BASE, axis: v} for axis in AXES for v in values[axis]]
    else:
        combos = [dict(zip(AXES, key)) for key in product(*(values[a] for a in AXES))]
    out, seen = [], set()
    for c in combos:
        c = {**c, "captions": 1 if c["modality"] == "video" else c["captions"]}
        key = tuple(c[a] for a in AXES)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def cell_id(c: dict[str, Any]) -> str:
    return f"{c['family']}-{c['level']} D{c['dim']} {c['captions']}cap {c['clips']} clips {c['modality']}"


def draw(c: dict[str, Any], n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``n`` clips of cell ``c``'s world drawn with ``seed`` -> ``(pairs, groups)``: ``{"audio", "text" | "video"}:
    (N, D) float32`` unit rows, one per caption (text) or clip (video), and ``groups (N,) int64``, the clip of
    each row (0 .. n - 1). Training draws use seed ``100 + s``, the table's 600 test clips ``200 + s``."""
    world = World(WorldSpec(c["family"], c["dim"], **LEVELS[c["family"]][c["level"]]), seed=0)
    pick = "text_pairs" if c["modality"] == "text" else "video_pairs"
    return getattr(world.sample(n, seed, c["captions"]), pick)()


def train_cell(c: dict[str, Any], seed: int, epochs: int = 40, val_fraction: float | None = None
               ) -> tuple[Bridge, TrainReport, TrainConfig, float, dict[str, np.ndarray], np.ndarray]:
    """Cell ``c``'s bridge for ``seed``, trained as ``dgsearch train`` would (``val_fraction``: None = the
    default's) -> ``(bridge, report, config, training seconds, training pairs, their groups)``. Deterministic:
    the same cell and seed rebuild the same bridge (``gallery_size.py`` relies on it)."""
    train, groups = draw(c, c["clips"], 100 + seed)
    t0 = time.perf_counter()
    cfg = TrainConfig(seed=seed, epochs=epochs, **({} if val_fraction is None else {"val_fraction": val_fraction}))
    bridge, report = train_bridge(train, groups=groups, cfg=cfg, encoder_fingerprints={"audio": FP, c["modality"]: FP})
    return bridge, report, cfg, time.perf_counter() - t0, train, groups


def run(c: dict[str, Any], seed: int, epochs: int, val_fraction: float | None = None) -> dict[str, Any]:
    """Train and evaluate one cell with one seed -> its JSON line (``val_fraction``: None = the default's)."""
    bridge, report, cfg, seconds, train, groups = train_cell(c, seed, epochs, val_fraction)
    test, test_groups = draw(c, N_TEST, 200 + seed)
    keep = ("raw", "ridge", "procrustes", "diffgap", "ridge_fusion", "procrustes_fusion", "diffgap_fusion")

    def scored(b: Bridge) -> dict[str, dict[str, float]]:
        ev = evaluate_methods(test, b, groups=test_groups)
        return {k: {m: round(v[m]["R@1"], 2) for m in keep if m in v} for k, v in ev["results"].items()}

    old_scales, old, old_val = coupled_rule(bridge, train, groups, cfg)
    half_scales, half, half_val = coupled_rule(bridge, train, groups, cfg, coupled=False)
    bare_scales, bare, _ = coupled_rule(bridge, train, groups, cfg, coupled=False, confidence=0.0)
    sel = report.selection
    return {"cell": c, "seed": seed, "seconds": round(seconds, 1), "epochs_run": sel["checkpoint"]["epochs_run"],
            "epoch": sel["checkpoint"]["epoch"],
            "alpha": {"query": sel.get("residual_scale", {}), "items": sel.get("residual_scale_items", {})},
            "gain_confidence": {k: v.get("gain_confidence") for k, v in report.val.items()},
            "evidence": {k: {f: v.get(f) for f in EVIDENCE} for k, v in report.val.items()},
            "results": scored(bridge), "alpha_coupled": old_scales["residual_scale"], "results_coupled": scored(old),
            "evidence_coupled": {k: {f: v.get(f) for f in EVIDENCE} for k, v in old_val.items()},
            "alpha_uncrossed": half_scales, "results_uncrossed": scored(half),
            "evidence_uncrossed": {k: {f: v.get(f) for f in EVIDENCE} for k, v in half_val.items()},
            "alpha_unconfirmed": bare_scales, "results_unconfirmed": scored(bare)}


EVIDENCE = ("task_confidence", "pair_confidence", "confirm_gain", "fused_R@1", "anchor_served_R@1")


def coupled_rule(bridge: Bridge, train: dict[str, np.ndarray], groups: np.ndarray, cfg: TrainConfig,
                 coupled: bool = True, confidence: float | None = None
                 ) -> tuple[dict[str, dict[str, float]], Bridge, dict[str, dict[str, float]]]:
    """The same trained network served by the rule of format 4 (one alpha per direction for both roles, chosen on
    a pair set's two tasks together on one half of the validation clips, each task confirmed by its own
    bootstrap on the other half, re-tuned on all: ``coupled=True``) -> its scales, the bridge (counterparts
    unchanged) and its validation figures: a paired before/after on one training run. ``coupled=False``: the
    per-task rule confirmed on one half only (before cross-fitting: ``results_uncrossed``); with
    ``confidence=0``, the per-task choice served without any confirmation (what the bootstrap withheld)."""
    sets = split_pairs(train, as_groups(groups, train["audio"]), cfg.val_fraction)
    choice, confirm = confirmation_split(sets, cfg.val_fraction)
    every = validation_tasks(sets, cfg.max_val_groups, cfg.shared_spaces, cfg.separate_spaces)
    tasks = validation_tasks(choice, cfg.max_val_groups, cfg.shared_spaces, cfg.separate_spaces)
    confirm_tasks = validation_tasks(confirm, cfg.max_val_groups, cfg.shared_spaces, cfg.separate_spaces)
    if not tasks or not confirm_tasks:
        tasks, confirm_tasks = every, []

    def make(scales: dict[str, dict[str, float]], fusion: dict | None = None) -> Bridge:
        return Bridge(bridge.denoiser, bridge.schedule, bridge.sample, bridge.encoder_fingerprints, bridge.directions,
                      fusion or {}, bridge.train_info, bridge.record, selection={**bridge.selection, **scales})

    share = cfg.serve_confidence if confidence is None else confidence
    scales, fusion, val = choose_residual(make, tasks, cfg.residual_grid, share, confirm_tasks, every, coupled=coupled)
    return scales, make(scales, fusion), val


def _ms(vals: list[float]) -> str:
    a = np.asarray(vals, dtype=float)
    return f"{a.mean():.1f} ± {a.std(ddof=1):.1f}" if len(a) > 1 else f"{a.mean():.1f}"


def _best(res: list[dict[str, float]]) -> str:
    """The fair counterpart with the better mean served R@1 over the seeds."""
    return max(("ridge_fusion", "procrustes_fusion"), key=lambda m: np.mean([x[m] for x in res]))


def _old(line: dict[str, Any]) -> str:
    """The key of the line's paired earlier rule: ``results_uncrossed`` (per task, confirmed on one half, before
    cross-fitting), in lines before it ``results_coupled`` (format 4: one alpha per direction for both tasks),
    ``results_joint`` (the joint confirmation, before the per-task fix)
    or ``results_before`` (no confirmation at all); "" if none."""
    return next((k for k in ("results_uncrossed", "results_coupled", "results_joint", "results_before") if k in line), "")


SAME_RUN = {"results_uncrossed": "per task, one half confirms (no cross-fit)",
            "results_coupled": "format 4: one α per direction"}


def table(lines: list[dict[str, Any]], previous: list[dict[str, Any]] | None = None) -> str:
    """Per cell and direction: DiffGAP alone vs ridge, served vs the best fair counterpart (by mean), the per-seed
    gap, the gap under earlier rules on the same training run (``SAME_RUN`` columns where the lines have them,
    else ``_old``'s), and with ``previous`` (an earlier run's lines, ``--previous``) that run's gap for the cell."""
    grouped: dict[tuple[str, str], list[dict[str, float]]] = {}
    for line in previous or []:
        for key, x in line["results"].items():
            grouped.setdefault((cell_id(line["cell"]), key), []).append(x)
    before = {ck: [x["diffgap_fusion"] - x[_best(xs)] for x in xs] for ck, xs in grouped.items()}
    by_cell: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_cell.setdefault(cell_id(line["cell"]), []).append(line)
    olds = [k for k in SAME_RUN if any(k in line for line in lines)]
    heads = [f"{SAME_RUN[k]}, same run: served − counterpart" for k in olds] or ["rule before, same run: served − counterpart"]
    if previous:
        heads.append("previous run: served − counterpart")
    out = ["| cell | direction | seeds | DiffGAP alone | ridge | DiffGAP served | best counterpart served "
           "| served − counterpart | " + " | ".join(heads) + " |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(heads)]
    for cid, runs in by_cell.items():
        for key in runs[0]["results"]:
            res = [r["results"][key] for r in runs]
            best = _best(res)
            diff = [x["diffgap_fusion"] - x[best] for x in res]
            cols = []
            for k in olds or [""]:
                old = [r[k or _old(r)][key]["diffgap_fusion"] - r["results"][key][best] for r in runs if (k or _old(r)) in r]
                cols.append(_ms(old) if old else "–")
            if previous:
                cols.append(_ms(before[(cid, key)]) if (cid, key) in before else "–")
            out.append(f"| {cid} | {key} | {len(runs)} | {_ms([x['diffgap'] for x in res])} | {_ms([x['ridge'] for x in res])} "
                       f"| {_ms([x['diffgap_fusion'] for x in res])} | {best.replace('_fusion', '')} {_ms([x[best] for x in res])} "
                       f"| {_ms(diff)} | " + " | ".join(cols) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--design", choices=("grid", "oat"), default="grid",
                   help="grid: every combination; oat: one factor at a time around OAT_BASE")
    p.add_argument("--families", default="mlp,events")
    p.add_argument("--levels", default="mild,strong")
    p.add_argument("--dims", default="64,256,512")
    p.add_argument("--captions", default="1,5")
    p.add_argument("--clips", default="1000,4000,20000")
    p.add_argument("--modalities", default="text,video")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=40, help="at most (validation stops training earlier)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--val-fraction", type=float, default=None,
                   help="share of the training clips held out for validation (default: TrainConfig's)")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--name", default="family_gap")
    p.add_argument("--previous", type=Path, help="an earlier run's JSONL: its served − counterpart per cell beside")
    p.add_argument("--table-only", action="store_true", help="rewrite <name>.md from <name>.jsonl, train nothing")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = args.out_dir / f"{args.name}.jsonl"
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()] if jsonl.exists() else []
    done = list({(cell_id(x["cell"]), x["seed"]): x for x in reversed(lines)}.values())[::-1]  # first run of each
    have = {(cell_id(x["cell"]), x["seed"]) for x in done}
    previous = [json.loads(x) for x in args.previous.read_text().splitlines()] if args.previous else None
    started = time.perf_counter()
    for c, seed in product(cells(args), map(int, args.seeds.split(","))):
        if args.table_only:
            break
        if (cell_id(c), seed) in have:
            continue
        line = run(c, seed, args.epochs, args.val_fraction)
        done.append(line)
        with jsonl.open("a") as fh:
            fh.write(json.dumps(line) + "\n")
        print(f"{time.perf_counter() - started:6.0f} s {cell_id(c)} seed {seed}: {line['results']} ({line['seconds']} s)",
              file=sys.stderr, flush=True)
        write_md(args, done, previous)
    if args.table_only:
        write_md(args, done, previous)
    return 0


def withheld(lines: list[dict[str, Any]]) -> str:
    """What the confirmation withheld: per (run, task) whose served figure is the anchor's but whose choice, served
    unconfirmed (``results_unconfirmed``), differs -> one sentence with its test outcome against the served one."""
    diffs = [r["results_unconfirmed"][k]["diffgap_fusion"] - r["results"][k]["diffgap_fusion"]
             for r in lines if "results_unconfirmed" in r for k in r["results"]
             if r["results_unconfirmed"][k]["diffgap_fusion"] != r["results"][k]["diffgap_fusion"]]
    if not diffs:
        return ""
    won, lost = [d for d in diffs if d > 0], [d for d in diffs if d < 0]
    return (f"Withheld by the confirmation (chosen on the choice half, served unconfirmed on test): {len(diffs)} "
            f"(run, task) figures differ from what was served: {len(won)} would have won (+{sum(won):.1f} points in "
            f"all), {len(lost)} lost ({sum(lost):.1f}).\n")


def write_md(args: argparse.Namespace, done: list[dict[str, Any]], previous: list[dict[str, Any]] | None) -> None:
    m = machine()
    secs = [x["seconds"] for x in done]
    (args.out_dir / f"{args.name}.md").write_text(
        f"# DiffGAP across a family of gaps\n\n- {m['cpu_count']} CPUs ({m['processor']}; "
        f"{', '.join(m['cpu_flags']) or 'no avx2'}), torch {torch.__version__}, {args.threads} "
        f"thread(s); R@1 in percent, mean ± sd over the seeds that ran; {N_TEST} test clips; "
        f"{len(done)} runs, {sum(secs):.0f} s of training in all\n\n" + table(done, previous) + "\n\n"
        + withheld(done))


if __name__ == "__main__":
    raise SystemExit(main())
