"""The DiffGAP training step's optimiser: torch's AdamW per tensor (its CPU default), with ``foreach`` and ``fused``.

On the bridge's own network (``Denoiser``, default size, D = 32 and 512), with the same random gradients: ms per
``opt.step()`` (the median of ``--rounds`` timings of ``--steps`` steps each, the modes alternated), and how far each
mode's weights drift from the per-tensor default's after 50 steps with identical gradients (max absolute
difference). A cProfile of 50,000-pair training at D = 512 on 2 cores put the per-tensor AdamW at 13 % of the
optimiser loop (6 ms a step, ``_single_tensor_adam``), which is why ``training_loop.optimise`` uses ``fused``.

    python benchmarks/bench_adam.py      # results/adam.{json,md}
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

from diffgap_search.gap.denoiser import Denoiser, DenoiserConfig  # noqa: E402
from diffgap_search.gap.train_config import TrainConfig  # noqa: E402

MODES = {"per tensor (torch's CPU default)": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def _net(dim: int) -> Denoiser:
    cfg = TrainConfig()
    torch.manual_seed(0)
    return Denoiser(DenoiserConfig(dim=dim, hidden=cfg.hidden, depth=cfg.depth, expansion=cfg.expansion,
                                   anchor=cfg.anchor, dropout=cfg.dropout))


def _opt(net: Denoiser, kw: dict) -> torch.optim.Optimizer:
    cfg = TrainConfig()
    return torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **kw)


def step_ms(dim: int, kw: dict, steps: int) -> float:
    """ms per ``opt.step()`` over ``steps`` steps after 20 untimed ones, fixed random gradients."""
    net = _net(dim)
    opt = _opt(net, kw)
    gen = torch.Generator().manual_seed(1)
    for p in net.parameters():
        if p.requires_grad:
            p.grad = torch.randn(p.shape, generator=gen)
    for _ in range(20):
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - t0) / steps * 1000


def drift(dim: int, kw: dict) -> float:
    """Max |w - w_default| after 50 steps with the same fresh random gradients each step."""
    weights = []
    for mode in ({"foreach": False}, kw):
        net = _net(dim)
        opt = _opt(net, mode)
        gen = torch.Generator().manual_seed(2)
        for _ in range(50):
            for p in net.parameters():
                if p.requires_grad:
                    p.grad = torch.randn(p.shape, generator=gen)
            opt.step()
        weights.append([p.detach().clone() for p in net.parameters()])
    return max(float((a - b).abs().max()) for a, b in zip(*weights))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", default="32,512")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--out", default="adam")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for dim in (int(d) for d in args.dims.split(",")):
        timings: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(args.rounds):
            for mode, kw in MODES.items():
                timings[mode].append(step_ms(dim, kw, args.steps))
        base = statistics.median(timings["per tensor (torch's CPU default)"])
        for mode, kw in MODES.items():
            ms = statistics.median(timings[mode])
            rows.append({"dim": dim, "mode": mode, "ms_per_step": round(ms, 2), "speedup": round(base / ms, 2),
                         "timings_ms": [round(t, 2) for t in timings[mode]], "max_drift": drift(dim, kw),
                         "parameters": sum(q.numel() for q in _net(dim).parameters())})
            print(rows[-1], flush=True)
    table = [("D", "AdamW", "ms per step (median)", "× per tensor", "max |w - w_per_tensor| after 50 steps")]
    table += [(str(r["dim"]), r["mode"], f"{r['ms_per_step']:.2f}", f"{r['speedup']:.2f}", f"{r['max_drift']:.1e}")
              for r in rows]
    notes = [f"{args.threads} torch threads; {args.steps} steps per timing, {args.rounds} rounds, modes alternated",
             "the DiffGAP network at TrainConfig's defaults (hidden 512, depth 3, expansion 2), float32 weights"]
    write_results(args.out, {"rows": rows, "threads": args.threads}, table, notes, out_dir=args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
