"""Synthetic modality-gap benchmark for DiffGAP: known ground truth, every method side by side.

Paired unit-sphere embeddings come from shared latent concepts through two different nonlinear maps
plus a modality offset and noise (``diffgap_search.gap.synthetic``). The script trains a DiffGAP bridge
on the training pairs (its own validation split tunes the fusion weights), evaluates raw cosine, mean
shift, ridge, Procrustes, DiffGAP and DiffGAP + fusion on held-out pairs in both directions, measures
per-query bridging latency, and writes ``results/synthetic_gap.json`` and ``results/synthetic_gap.md``.

    python benchmarks/synthetic_gap.py                      # default run, a few minutes on 2 cores
    python benchmarks/synthetic_gap.py --n-train 4000 --epochs 5 --out-dir /tmp/quick

Exit status 1 if the claims do not hold (DiffGAP beats raw cosine and mean shift on R@1 in both
directions and at least equals the best linear map).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from diffgap_search.gap.bridge import SampleConfig, bridging_latency_ms
from diffgap_search.gap.denoiser import Denoiser, DenoiserConfig
from diffgap_search.gap.directions import Direction
from diffgap_search.gap.evaluation import evaluate_methods, format_table
from diffgap_search.gap.schedule import NoiseSchedule
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge

FINGERPRINT = "synthetic-" + "0" * 54


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--world-seed", type=int, default=0, help="seed of the random maps (the 'encoders')")
    p.add_argument("--data-seed", type=int, default=1, help="seed of the sampled pairs (test uses data-seed + 1)")
    p.add_argument("--train-seed", type=int, default=0, help="seed of the DiffGAP training run")
    p.add_argument("--n-train", type=int, default=20_000, help="training pairs (10 %% of them validate)")
    p.add_argument("--n-test", type=int, default=1_000, help="held-out test pairs (the gallery size)")
    p.add_argument("--dim", type=int, default=64, help="embedding size D")
    p.add_argument("--latent-dim", type=int, default=8, help="latent concept size")
    p.add_argument("--strength", type=float, default=1.0, help="weight of each modality's private nonlinear term")
    p.add_argument("--offset", type=float, default=1.0, help="modality offset norm, in units of sqrt(D)")
    p.add_argument("--noise", type=float, default=0.15, help="per-coordinate noise std")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--infonce-weight", type=float, default=0.3)
    p.add_argument("--steps", type=int, default=4, help="DDIM steps at inference")
    p.add_argument("--latency-repeats", type=int, default=200)
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    return p.parse_args(argv)


def machine() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def latency_at_512(steps: int, repeats: int) -> tuple[float, int]:
    """Median single-query latency (ms) of an untrained default-size bridge at D = 512 (CLAP's size)."""
    from diffgap_search.gap.bridge import Bridge

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = Denoiser(DenoiserConfig(dim=512))
    bridge = Bridge(net, NoiseSchedule(), SampleConfig(steps=steps), {"audio": FINGERPRINT, "text": FINGERPRINT},
                    (Direction.AUDIO_GIVEN_TEXT, Direction.TEXT_GIVEN_AUDIO))
    x = np.random.default_rng(0).standard_normal((64, 512)).astype(np.float32)
    bridging_latency_ms(bridge, x, "text", "audio", repeats=20)  # warm-up
    return bridging_latency_ms(bridge, x, "text", "audio", repeats=repeats), net.num_parameters()


def check_claims(results: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, bool]]:
    """Per direction and DiffGAP variant: beats raw and both mean shifts on R@1, >= ridge and Procrustes."""
    out: dict[str, dict[str, bool]] = {}
    for key, m in results.items():
        for variant in ("diffgap", "diffgap_fusion"):
            r1 = m[variant]["R@1"]
            out[f"{key} {variant}"] = {
                "beats_raw": r1 > m["raw"]["R@1"],
                "beats_mean_shift": r1 > max(m["mean_shift"]["R@1"], m["mean_shift_query"]["R@1"]),
                "at_least_linear": r1 >= max(m["ridge"]["R@1"], m["procrustes"]["R@1"]),
            }
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in ([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])))
    spec = GapSpec(dim=args.dim, latent_dim=args.latent_dim, strength=args.strength, offset=args.offset, noise=args.noise)
    world = GapWorld(spec, seed=args.world_seed)
    a, b = world.sample(args.n_train, seed=args.data_seed)
    ta, tb = world.sample(args.n_test, seed=args.data_seed + 1)
    train, test = {"audio": a, "text": b}, {"audio": ta, "text": tb}
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, hidden=args.hidden, depth=args.depth,
        infonce_weight=args.infonce_weight, seed=args.train_seed, sample=SampleConfig(steps=args.steps),
    )
    last = [0.0]

    def on_step(epoch: int, step: int, loss: float, pairs_per_s: float) -> None:
        if time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            print(f"epoch {epoch + 1}/{args.epochs} step {step + 1} loss {loss:.4f} {pairs_per_s:.0f} pairs/s", file=sys.stderr)

    bridge, report = train_bridge(train, cfg=cfg, encoder_fingerprints={"audio": FINGERPRINT, "text": FINGERPRINT}, on_step=on_step)
    evaluation = evaluate_methods(train, test, bridge)
    table = format_table(evaluation)
    latency: dict[str, object] = {"ddim_steps": args.steps, "repeats": args.latency_repeats}
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        bridging_latency_ms(bridge, tb, "text", "audio", repeats=20)  # warm-up
        latency[f"D{args.dim}_threads{threads}"] = round(bridging_latency_ms(bridge, tb, "text", "audio", args.latency_repeats), 3)
        lat512, params512 = latency_at_512(args.steps, args.latency_repeats)
        latency[f"D512_default_size_threads{threads}"] = round(lat512, 3)
    torch.set_num_threads(default_threads)
    latency["D512_default_size_parameters"] = params512
    lat_text = ", ".join(f"{k}: {v} ms" for k, v in latency.items() if k.startswith("D") and "threads" in k)
    claims = check_claims(evaluation["results"])
    ok = all(all(v.values()) for k, v in claims.items() if k.endswith("diffgap_fusion"))
    record = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": command,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": asdict(spec) | {"n_train": args.n_train, "n_test": args.n_test},
        "train_config": cfg.to_dict(),
        "train": {
            "seconds": round(report.seconds, 1), "steps": report.steps, "pairs_per_s": round(report.pairs_per_s),
            "num_parameters": report.num_parameters, "loss_first_epoch": report.loss_history[0],
            "loss_last_epoch": report.loss_history[-1], "val": report.val, "fusion": report.fusion,
        },
        "evaluation": evaluation,
        "latency_ms": latency,
        "claims": claims,
        "claims_hold_for_diffgap_fusion": ok,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "synthetic_gap.json").write_text(json.dumps(record, indent=2) + "\n")
    md = [
        "# Synthetic modality-gap benchmark",
        "",
        f"- date: {record['date']}",
        f"- machine: {record['machine']['platform']}, {record['machine']['cpu_count']} CPUs "
        f"({record['machine']['processor']}), torch {torch.__version__} with {torch.get_num_threads()} threads",
        f"- command: `{command}`",
        f"- data: D={args.dim}, latent {args.latent_dim}, strength {args.strength}, offset {args.offset}, "
        f"noise {args.noise}; {args.n_train} training pairs (10 % validation), {args.n_test} test pairs",
        f"- DiffGAP: {report.num_parameters} parameters, {report.steps} steps in {report.seconds:.0f} s, "
        f"{args.steps} DDIM steps; fusion weights (tuned on validation): {json.dumps(report.fusion)}",
        f"- bridging latency, median of {args.latency_repeats} single-query calls ({args.steps} DDIM steps; D512 = "
        f"untrained default-size denoiser, {params512 / 1e6:.1f} M parameters, same cost as trained): {lat_text}",
        "",
        table,
        "",
        "Claims (R@1): " + ", ".join(f"{k}: {'PASS' if all(v.values()) else 'FAIL ' + str(v)}" for k, v in claims.items()),
        "",
    ]
    (args.out_dir / "synthetic_gap.md").write_text("\n".join(md))
    print(table)
    print("latency:", lat_text)
    print("claims hold (diffgap_fusion):", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
