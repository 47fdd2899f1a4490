"""Training cost of a DiffGAP bridge: seconds per 10k pairs, and a whole `dgsearch train` run at AudioCaps size.

Two measurements on the synthetic gap (``diffgap_search.gap.synthetic``, 5 captions per clip):

- **per 10k pairs**: the optimiser loop alone (forward, backward, AdamW, EMA) at D = 32 and D = 512, float32
  and bfloat16 autocast, the default network (hidden 512, depth 3) and batch (256 per pair set): seconds per
  10,000 training pairs seen, timed from the step callbacks (no validation inside);
- **end to end**: ``train_bridge`` with the defaults on ``--e2e-pairs`` pairs at D = 512 (default 20,000: the
  issue's goal is <= 5 minutes on this machine): wall seconds including validation, early stopping, the
  sampler, alpha and the counterparts; epochs run and kept; validation R@1 (served, bridged) per direction.
  ``--e2e-precisions bf16,fp32`` runs it twice, to show bfloat16 costs no R@1.

    python benchmarks/bench_train.py                         # writes results/train.json and .md
    python benchmarks/bench_train.py --e2e-pairs 0           # the per-10k figures only
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from typing import Any

import torch
from pathlib import Path

from _common import RESULTS, write_results

from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge

FP = "synthetic-" + "0" * 54


def _pairs(dim: int, n_pairs: int, seed: int = 1) -> tuple[dict, Any]:
    world = GapWorld(GapSpec(dim=dim, latent_dim=8, features=64), seed=0)
    return world.sample_clips(max(2, n_pairs // 5), seed, captions=5, caption_jitter=0.3).pairs()


def per_10k(dim: int, precision: str, n_pairs: int, epochs: int, threads: int) -> dict[str, Any]:
    """Seconds per 10k pairs of the optimiser loop (the steps after the first epoch: warm caches)."""
    pairs, groups = _pairs(dim, n_pairs)
    stamps: list[tuple[int, float, float]] = []

    def on_step(epoch: int, step: int, loss: float, rate: float) -> None:
        stamps.append((epoch, time.perf_counter(), rate))

    cfg = TrainConfig(epochs=epochs, precision=precision, patience=0, eval_every=10**6, residual_grid=(),
                      tune_sampler=False, threads=threads)
    _, report = train_bridge(pairs, groups=groups, cfg=cfg, encoder_fingerprints={"audio": FP, "text": FP},
                             on_step=on_step)
    batch = min(cfg.batch_size, report.n_train["audio-text"])
    warm = [s for s in stamps if s[0] >= 1]
    seconds = (warm[-1][1] - warm[0][1]) / max(len(warm) - 1, 1)  # per step
    return {"dim": dim, "precision": precision, "threads": threads, "batch": batch, "steps_timed": len(warm) - 1,
            "seconds_per_10k_pairs": round(seconds / batch * 10_000, 3), "pairs_per_s": round(batch / seconds, 1),
            "parameters": report.num_parameters}


def end_to_end(n_pairs: int, precision: str) -> dict[str, Any]:
    """``train_bridge`` with the defaults at D = 512 on ``n_pairs`` pairs (threads: as many as cores are idle)."""
    pairs, groups = _pairs(512, n_pairs)
    t0 = time.perf_counter()
    bridge, report = train_bridge(pairs, groups=groups, cfg=replace(TrainConfig(), precision=precision),
                                  encoder_fingerprints={"audio": FP, "text": FP})  # threads: the default (idle cores)
    wall = time.perf_counter() - t0
    ck = report.selection["checkpoint"]
    return {"pairs": len(groups), "precision": precision, "threads": report.selection["threads"], "wall_s": round(wall, 1),
            "loop_s": round(report.seconds, 1), "epochs_run": ck["epochs_run"], "epoch_kept": ck["epoch"],
            "alpha": {"query": report.selection.get("residual_scale", {}),
                      "items": report.selection.get("residual_scale_items", {})},
            "val": {k: {m: v[m] for m in ("bridged_R@1", "fused_R@1", "anchor_R@1", "anchor_served_R@1") if m in v}
                    for k, v in report.val.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", default="32,512")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--pairs", type=int, default=5000, help="pairs of the per-10k runs")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the per-10k runs (the first is not timed)")
    p.add_argument("--e2e-pairs", type=int, default=20_000, help="pairs of the end-to-end run (0: skip it)")
    p.add_argument("--e2e-precisions", default="auto")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="threads of the per-10k runs")
    p.add_argument("--out", default="train", help="<out-dir>/<out>.json and .md")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [per_10k(int(d), prec, args.pairs, args.epochs, args.threads)
            for d in args.dims.split(",") for prec in args.precisions.split(",")]
    for r in rows:
        print(r, flush=True)
    e2e = [end_to_end(args.e2e_pairs, prec) for prec in args.e2e_precisions.split(",")] \
        if args.e2e_pairs else []
    for r in e2e:
        print(r, flush=True)
    table = [("D", "precision", "threads", "batch", "s per 10k pairs", "pairs/s", "parameters")]
    table += [(str(r["dim"]), r["precision"], str(r["threads"]), str(r["batch"]), f"{r['seconds_per_10k_pairs']:.2f}",
               f"{r['pairs_per_s']:.0f}", f"{r['parameters']:,}") for r in rows]
    notes = [f"end to end, {r['pairs']:,} pairs at D = 512, {r['precision']}, {r['threads']} threads: {r['wall_s']:.0f} s"
             f" wall ({r['loop_s']:.0f} s in the optimiser loop), epoch {r['epoch_kept']} kept of {r['epochs_run']} run,"
             f" alpha {r['alpha']}; validation served R@1 (ridge + fusion): "
             + "; ".join(f"{k} {v['fused_R@1']:.1f} ({v.get('anchor_served_R@1', float('nan')):.1f})"
                         for k, v in r["val"].items()) for r in e2e]
    notes.append(f"load average when done (1, 5, 15 min): {', '.join(f'{x:.1f}' for x in os.getloadavg())} on "
                 f"{os.cpu_count()} cores (other work on the machine slows every figure)")
    write_results(args.out, {"per_10k": rows, "end_to_end": e2e, "loadavg": os.getloadavg()}, table, notes,
                  out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
