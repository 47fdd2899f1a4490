"""Synthetic modality-gap benchmark for DiffGAP: known ground truth, every method side by side.

Paired unit-sphere embeddings come from shared latent concepts through two different nonlinear maps
plus a modality offset and noise (``diffgap_search.gap.synthetic``). For each mode the script trains a
DiffGAP bridge on the training clips (its fusion-validation groups tune the fusion weights; mean shift,
ridge and Procrustes are fitted on the very pairs it trains on), evaluates raw cosine, mean shift, ridge,
Procrustes, DiffGAP and DiffGAP + fusion on separate test clips in both directions under the standard
protocol (a gallery of unique clips; text->audio ranks each caption, audio->text each clip against all
captions), measures per-query bridging latency, and writes ``results/synthetic_gap.json`` and ``.md``.

Modes (``--modes``):

- ``1cap``: one caption and one window per clip (20 000 training clips);
- ``5cap``: five captions per clip, as AudioCaps and Clotho (4 000 training clips, 20 000 pairs);
- ``5cap-3win-mean`` / ``5cap-3win-window``: five captions and three audio windows per clip, the bridge
  trained on (mean of the windows, caption) pairs or on (window, caption) pairs; evaluated as
  ``dgsearch query`` serves it, window by window (a clip scores its best window).

    python benchmarks/synthetic_gap.py                          # every mode, a few minutes on 2 cores
    python benchmarks/synthetic_gap.py --modes 5cap --epochs 5 --out-dir /tmp/quick

Exit status 1 if the claims do not hold in some mode (DiffGAP + fusion beats raw cosine and mean shift
on R@1 in both directions and at least equals the best linear map).
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
from typing import Any

import numpy as np
import torch

from diffgap_search.gap.bridge import Bridge, SampleConfig, bridging_latency_ms
from diffgap_search.gap.denoiser import Denoiser, DenoiserConfig
from diffgap_search.gap.directions import Direction
from diffgap_search.gap.evaluation import evaluate_methods, format_table
from diffgap_search.gap.schedule import NoiseSchedule
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, TrainReport, train_bridge

FINGERPRINT = "synthetic-" + "0" * 54
MODES: dict[str, dict[str, Any]] = {
    "1cap": {"captions": 1, "windows": 1, "granularity": "window", "clips": 20_000},
    "5cap": {"captions": 5, "windows": 1, "granularity": "window", "clips": 4_000},
    "5cap-3win-mean": {"captions": 5, "windows": 3, "granularity": "clip-mean", "clips": 4_000},
    "5cap-3win-window": {"captions": 5, "windows": 3, "granularity": "window", "clips": 4_000},
}
SUMMARY_METHODS = ("raw", "mean_shift", "mean_shift_query", "ridge", "procrustes", "diffgap", "diffgap_fusion")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, among {', '.join(MODES)}")
    p.add_argument("--world-seed", type=int, default=0, help="seed of the random maps (the 'encoders')")
    p.add_argument("--data-seed", type=int, default=1, help="seed of the training clips (test uses data-seed + 1)")
    p.add_argument("--train-seed", type=int, default=0, help="seed of the DiffGAP training run")
    p.add_argument("--n-train", type=int, default=None, help="training clips (default: the mode's)")
    p.add_argument("--n-test", type=int, default=1_000, help="test clips (the gallery size)")
    p.add_argument("--caption-jitter", type=float, default=0.3, help="latent noise between a clip's captions")
    p.add_argument("--window-jitter", type=float, default=0.5, help="latent noise between a clip's windows")
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
    args = p.parse_args(argv)
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        p.error(f"unknown modes {sorted(unknown)}")
    return args


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
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = Denoiser(DenoiserConfig(dim=512))
    bridge = Bridge(net, NoiseSchedule(), SampleConfig(steps=steps), {"audio": FINGERPRINT, "text": FINGERPRINT},
                    (Direction.AUDIO_GIVEN_TEXT, Direction.TEXT_GIVEN_AUDIO))
    x = np.random.default_rng(0).standard_normal((64, 512)).astype(np.float32)
    bridging_latency_ms(bridge, x, "text", "audio", repeats=20)  # warm-up
    return bridging_latency_ms(bridge, x, "text", "audio", repeats=repeats), net.num_parameters()


def measure_latency(bridge: Bridge, queries: np.ndarray, args: argparse.Namespace) -> dict[str, object]:
    """Single-query bridging latency at the benchmark's D and at D = 512, with 1 thread and the default."""
    latency: dict[str, object] = {"ddim_steps": args.steps, "repeats": args.latency_repeats}
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        bridging_latency_ms(bridge, queries, "text", "audio", repeats=20)  # warm-up
        latency[f"D{args.dim}_threads{threads}"] = round(
            bridging_latency_ms(bridge, queries, "text", "audio", args.latency_repeats), 3)
        lat512, params512 = latency_at_512(args.steps, args.latency_repeats)
        latency[f"D512_default_size_threads{threads}"] = round(lat512, 3)
    torch.set_num_threads(default_threads)
    latency["D512_default_size_parameters"] = params512
    return latency


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


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, hidden=args.hidden, depth=args.depth,
        infonce_weight=args.infonce_weight, seed=args.train_seed, sample=SampleConfig(steps=args.steps),
    )


def run_mode(name: str, world: GapWorld, args: argparse.Namespace) -> tuple[dict[str, Any], Bridge, np.ndarray]:
    """Train and evaluate one mode -> (its record, the bridge, test caption vectors for the latency probe)."""
    mode = MODES[name]
    shape = {"captions": mode["captions"], "windows": mode["windows"],
             "caption_jitter": args.caption_jitter if mode["captions"] > 1 else 0.0,
             "window_jitter": args.window_jitter if mode["windows"] > 1 else 0.0}
    n_train = args.n_train or mode["clips"]
    train_pairs, train_groups = world.sample_clips(n_train, args.data_seed, **shape).pairs(mode["granularity"])
    test_pairs, test_groups = world.sample_clips(args.n_test, args.data_seed + 1, **shape).pairs("window")
    last = [0.0]

    def on_step(epoch: int, step: int, loss: float, pairs_per_s: float) -> None:
        if time.perf_counter() - last[0] > 10:
            last[0] = time.perf_counter()
            print(f"[{name}] epoch {epoch + 1}/{args.epochs} step {step + 1} loss {loss:.4f} {pairs_per_s:.0f} pairs/s",
                  file=sys.stderr)

    cfg = train_config(args)
    bridge, report = train_bridge(train_pairs, groups=train_groups, cfg=cfg, on_step=on_step,
                                  encoder_fingerprints={"audio": FINGERPRINT, "text": FINGERPRINT})
    evaluation = evaluate_methods(test_pairs, bridge, groups=test_groups)
    record = {
        "mode": name, "data": shape | {"granularity_trained": mode["granularity"], "train_clips": n_train,
                                      "train_pairs": len(train_groups), "test_clips": args.n_test,
                                      "test_pairs": len(test_groups)},
        "train": _train_summary(report), "evaluation": evaluation, "claims": check_claims(evaluation["results"]),
    }
    return record, bridge, test_pairs["text"]


def _train_summary(report: TrainReport) -> dict[str, Any]:
    return {
        "seconds": round(report.seconds, 1), "steps": report.steps, "pairs_per_s": round(report.pairs_per_s),
        "num_parameters": report.num_parameters, "groups": report.n_groups, "pairs": report.n_train,
        "val_pairs": report.n_val, "loss_first_epoch": report.loss_history[0],
        "loss_last_epoch": report.loss_history[-1], "val": report.val, "fusion": report.fusion,
    }


def summary_table(records: list[dict[str, Any]]) -> str:
    """R@1 of every method in both directions, one row per mode."""
    head = "| mode | direction | " + " | ".join(SUMMARY_METHODS) + " |"
    lines = [head, "| --- | --- |" + " ---: |" * len(SUMMARY_METHODS)]
    for rec in records:
        for key, methods in rec["evaluation"]["results"].items():
            lines.append(f"| {rec['mode']} | {key} | " + " | ".join(f"{methods[m]['R@1']:.1f}" for m in SUMMARY_METHODS) + " |")
    return "\n".join(lines)


def write_markdown(path: Path, doc: dict[str, Any], records: list[dict[str, Any]], args: argparse.Namespace) -> None:
    lat = doc["latency_ms"]
    lat_text = ", ".join(f"{k}: {v} ms" for k, v in lat.items() if k.startswith("D") and "threads" in k)
    md = [
        "# Synthetic modality-gap benchmark", "",
        f"- date: {doc['date']}",
        f"- machine: {doc['machine']['platform']}, {doc['machine']['cpu_count']} CPUs "
        f"({doc['machine']['processor']}), torch {torch.__version__} with {torch.get_num_threads()} threads",
        f"- command: `{doc['command']}`",
        f"- data: D={args.dim}, latent {args.latent_dim}, strength {args.strength}, offset {args.offset}, noise "
        f"{args.noise}; caption jitter {args.caption_jitter}, window jitter {args.window_jitter}; {args.n_test} test clips",
        "- protocol: gallery of unique clips; text->audio ranks each caption, audio->text each clip against all "
        "captions (hit: any of its captions); a clip scores its best window; baselines fitted on the bridge's "
        "own training pairs",
        f"- bridging latency, median of {args.latency_repeats} single-query calls ({args.steps} DDIM steps; D512 = "
        f"untrained default-size denoiser, {lat['D512_default_size_parameters'] / 1e6:.1f} M parameters): {lat_text}",
        "", "## R@1, every mode", "", summary_table(records), "",
    ]
    for rec in records:
        t, d = rec["train"], rec["data"]
        md += [f"## {rec['mode']}", "",
               f"- {d['train_clips']} training clips ({t['groups']['train']} trained on, {t['groups']['val']} validate "
               f"the fusion weights), {d['train_pairs']} pairs ({d['granularity_trained']}); {d['test_clips']} test "
               f"clips, {d['test_pairs']} pairs",
               f"- DiffGAP: {t['num_parameters']} parameters, {t['steps']} steps in {t['seconds']:.0f} s; fusion "
               f"weights (validation): {json.dumps(t['fusion'])}",
               "", format_table(rec["evaluation"]), "",
               "Claims (R@1): " + ", ".join(f"{k}: {'PASS' if all(v.values()) else 'FAIL ' + str(v)}"
                                          for k, v in rec["claims"].items()), ""]
    path.write_text("\n".join(md))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in ([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])))
    spec = GapSpec(dim=args.dim, latent_dim=args.latent_dim, strength=args.strength, offset=args.offset, noise=args.noise)
    world = GapWorld(spec, seed=args.world_seed)
    records, latency = [], None
    for name in args.modes.split(","):
        record, bridge, queries = run_mode(name, world, args)
        records.append(record)
        print(f"## {name}\n{format_table(record['evaluation'])}")
        if latency is None:
            latency = measure_latency(bridge, queries, args)
    ok = all(all(v.values()) for r in records for k, v in r["claims"].items() if k.endswith("diffgap_fusion"))
    doc = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), "command": command,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "world": asdict(spec), "train_config": train_config(args).to_dict(), "modes": records,
        "latency_ms": latency, "claims_hold_for_diffgap_fusion": ok,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "synthetic_gap.json").write_text(json.dumps(doc, indent=2) + "\n")
    write_markdown(args.out_dir / "synthetic_gap.md", doc, records, args)
    print(summary_table(records))
    print("claims hold (diffgap_fusion):", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
