"""A fair ablation of DiffGAP on the synthetic modality gap: same pairs, 3 training seeds, mean ± sd.

Every method is fitted on the very same training clips and evaluated on the same test clips under the
standard protocol (``diffgap_search.gap.protocol``: a gallery of unique clips; text->audio ranks each
caption, audio->text each clip against all captions). Fusion weights, and each variant's sampler, are
tuned on the same validation clips (a salted-hash tenth of the training clips, never trained on).

Rows:

- baselines: raw cosine, mean shift (both sides centred), ridge, orthogonal Procrustes (fitted on the
  training pairs), and ridge + fusion (raw, ridge-mapped query and ridge-mapped items, weights tuned on
  validation exactly as DiffGAP's): the linear counterpart of what search serves;
- the same denoiser trained as a one-step regressor (input the zero vector at the last timestep: no
  noise, no diffusion) with the same InfoNCE term, with and without the linear anchor;
- DiffGAP without the contrastive term (no CDM), without split training (no BST: one network per
  direction, each on full batches of its direction), without the linear anchor (the method as it was
  before this benchmark), and full DiffGAP (the defaults of ``TrainConfig``);
- the full model's samplers: 1 or 4 DDIM steps from the zero vector, 4 steps from a fixed seeded noise
  vector, the mean of K = 8 seeded samples, and guidance scales 1 to 3;
- the plain nonlinear counterpart: a residual MLP regressor on top of the same ridge map (``residual_mlp``:
  2 x 512 GELU, dropout 0.1, AdamW, MSE + 0.1 InfoNCE, early-stopped on the same validation clips).

Each cell is R@1 (or mAP@10) in percent, "alone" = bridged query against raw items, "fused" = the score
``dgsearch query`` serves. Sized to run in about 10 minutes on 2 shared CPU cores (``--clips-1cap``,
``--clips-5cap``, ``--epochs`` scale it; one torch thread by default, the fastest on busy shared cores).

    python benchmarks/ablation_gap.py                       # writes results/ablation.json and .md
    python benchmarks/ablation_gap.py --seeds 0 --epochs 3  # a quick look
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffgap_search.gap.bridge import Bridge, SampleConfig
from diffgap_search.gap.directions import Direction
from diffgap_search.gap.fusion import FusionConfig, fused_unit_scores, tune_fusion
from diffgap_search.gap.groups import as_groups
from diffgap_search.gap.protocol import Task, group_codes, tasks_for
from diffgap_search.gap.record import PairBaselines
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge
from diffgap_search.gap.training_data import split_pairs
from diffgap_search.gap.selection import term_matrices
from diffgap_search.gap.validation import validation_tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))
from residual_mlp import train_residual_mlp  # noqa: E402
from synthetic_gap import machine  # noqa: E402

FINGERPRINT = "synthetic-" + "0" * 54
KEYS = ("text->audio", "audio->text")


class PairedBridges:
    """Duck-typed bridge serving each direction from its own one-direction bridge (the "no BST" variant)."""

    def __init__(self, bridges: list[Bridge]) -> None:
        self.by_dir = {d: b for b in bridges for d in b.directions}
        self.directions = tuple(self.by_dir)

    def apply(self, x: np.ndarray, source: str, target: str, *, sample: SampleConfig | None = None,
              role: str = "query") -> np.ndarray:
        return self.by_dir[Direction.of(source, target)].apply(x, source, target, sample=sample, role=role)


class LinearBridge:
    """Duck-typed bridge whose 'generation' is a fitted linear map (ridge): ridge + fusion, the fair baseline."""

    def __init__(self, baselines: PairBaselines, kind: str = "ridge") -> None:
        self.baselines, self.kind = baselines, kind
        self.directions = (Direction.AUDIO_GIVEN_TEXT, Direction.TEXT_GIVEN_AUDIO)

    def apply(self, x: np.ndarray, source: str, target: str, *, sample: SampleConfig | None = None,
              role: str = "query") -> np.ndarray:
        return self.baselines.linear(self.kind, source, target)(x)


class WithSample:
    """A bridge (or duck) sampling with a fixed ``SampleConfig``."""

    def __init__(self, bridge: Any, sample: SampleConfig | None) -> None:
        self.bridge, self.sample = bridge, sample
        self.directions = bridge.directions

    def apply(self, x: np.ndarray, source: str, target: str, *, role: str = "query") -> np.ndarray:
        if self.sample is None:
            return self.bridge.apply(x, source, target, role=role)
        return self.bridge.apply(x, source, target, sample=self.sample, role=role)


def score_bridge(bridge: Any, val: list[Task], test: list[Task]) -> dict[str, dict[str, float]]:
    """Per direction: bridged-query-alone and fused (weights tuned on ``val``) R@1 / mAP@10 on ``test``."""
    weights: dict[str, FusionConfig] = {}
    for task in val:
        weights[task.key] = tune_fusion(task, *term_matrices(task, bridge))
    out: dict[str, dict[str, float]] = {}
    for task in test:
        raw, qb, ib = term_matrices(task, bridge)
        alone = task.vector_metrics(qb)
        fused = task.metrics(fused_unit_scores(task, raw, qb, ib, weights[task.key]))
        out[task.key] = {"alone_R@1": alone["R@1"], "alone_mAP@10": alone["mAP@10"],
                         "fused_R@1": fused["R@1"], "fused_mAP@10": fused["mAP@10"]}
    return out


def baseline_scores(pb: PairBaselines, test: list[Task]) -> dict[str, dict[str, dict[str, float]]]:
    """raw, mean shift, ridge, Procrustes on ``test`` (no training seed involved)."""
    out: dict[str, dict[str, dict[str, float]]] = {m: {} for m in ("raw", "mean_shift", "ridge", "procrustes")}
    for task in test:
        q, g = task.queries.vectors, task.items.vectors
        qm, gm = task.queries.modality, task.items.modality
        shift = pb.mean_shift(qm, gm)
        sims = {"raw": q @ g.T, "mean_shift": shift.centre_query(q) @ shift.centre_gallery(g).T,
                "ridge": pb.linear("ridge", qm, gm)(q) @ g.T, "procrustes": pb.linear("procrustes", qm, gm)(q) @ g.T}
        for m, s in sims.items():
            r = task.vector_metrics(s)
            out[m][task.key] = {"alone_R@1": r["R@1"], "alone_mAP@10": r["mAP@10"]}
    return out


def variants(base: TrainConfig) -> dict[str, list[TrainConfig]]:
    """Name -> the training runs of that variant (two for no-BST)."""
    return {
        "regressor (no diffusion, no anchor)": [replace(base, objective="regression", anchor="none")],
        "regressor (no diffusion)": [replace(base, objective="regression")],
        "DiffGAP no CDM": [replace(base, infonce_weight=0.0)],
        "DiffGAP no BST": [replace(base, only_direction="audio|text"), replace(base, only_direction="text|audio")],
        "DiffGAP no anchor (before)": [replace(base, anchor="none")],
        "DiffGAP (full)": [base],
    }


def samplers(tuned: SampleConfig) -> dict[str, SampleConfig]:
    """The sampling ablation of the full model, around the sampler validation chose."""
    g = tuned.guidance_scale
    return {
        "zero start, 1 step": replace(tuned, steps=1, noise_scale=0.0, samples=1),
        "zero start, 4 steps": replace(tuned, steps=4, noise_scale=0.0, samples=1),
        "seeded noise start, 4 steps": replace(tuned, steps=4, noise_scale=1.0, samples=1),
        "mean of 8 seeded samples, 4 steps": replace(tuned, steps=4, noise_scale=1.0, samples=8),
        **{f"guidance {s:g} ({tuned.steps} step{'s' if tuned.steps > 1 else ''})": replace(tuned, guidance_scale=s)
           for s in sorted({1.0, 1.5, 2.0, 3.0, g})},
    }


def run_setting(name: str, world: GapWorld, args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    captions = 1 if name == "1cap" else 5
    clips = args.clips_1cap if captions == 1 else args.clips_5cap
    shape = {"captions": captions, "caption_jitter": args.caption_jitter if captions > 1 else 0.0}
    train, train_groups = world.sample_clips(clips, args.data_seed, **shape).pairs()
    test_pairs, test_groups = world.sample_clips(args.n_test, args.data_seed + 1, **shape).pairs()
    test = list(tasks_for("audio", "text", test_pairs["audio"], test_pairs["text"], group_codes(test_groups)))
    sets = split_pairs(train, as_groups(train_groups, train["audio"]), 0.1)
    val = validation_tasks(sets, 2000)
    base = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, hidden=args.hidden, depth=args.depth,
                       precision=args.precision)
    rows: dict[str, list[dict[str, dict[str, float]]]] = {}
    chosen: dict[str, list[dict[str, Any]]] = {}
    seconds: dict[str, list[float]] = {}
    baselines: dict[str, Any] = {}
    for seed in args.seeds:
        for vname, cfgs in variants(base).items():
            if args.only and vname not in args.only.split(","):
                continue
            t0 = time.perf_counter()
            bridges = [train_bridge(train, groups=train_groups, cfg=replace(c, seed=seed),
                                    encoder_fingerprints={"audio": FINGERPRINT, "text": FINGERPRINT})[0] for c in cfgs]
            seconds.setdefault(vname, []).append(time.perf_counter() - t0)
            bridge = bridges[0] if len(bridges) == 1 else PairedBridges(bridges)
            rows.setdefault(vname, []).append(score_bridge(bridge, val, test))
            chosen.setdefault(vname, []).append({d.value: asdict(b.sample) for b in bridges for d in b.directions})
            log(f"[{name}] seed {seed} {vname}: {rows[vname][-1]} ({seconds[vname][-1]:.0f} s)")
            if vname == "DiffGAP (full)":
                assert bridges[0].record is not None
                pb = bridges[0].record.baselines["audio-text"]
                if not baselines:
                    baselines = baseline_scores(pb, test)
                    rows["ridge + fusion"] = [score_bridge(LinearBridge(pb), val, test)]
                mlp = train_residual_mlp(sets, bridges[0].record, val, seed=seed, epochs=max(args.epochs, 20))
                rows.setdefault("residual MLP on ridge (2x512, dropout 0.1, early-stopped)", []).append(
                    score_bridge(mlp, val, test))
                for sname, sample in samplers(bridges[0].sample).items():
                    rows.setdefault(f"sampler: {sname}", []).append(score_bridge(WithSample(bridges[0], sample), val, test))
    return {"setting": name, "captions_per_clip": captions, "train_clips": clips, "train_pairs": len(train_groups),
            "test_clips": args.n_test, "test_pairs": len(test_groups), "baselines": baselines,
            "methods": {k: summarise(v) for k, v in rows.items()}, "chosen_sampler": chosen,
            "train_seconds": {k: round(float(np.mean(v)), 1) for k, v in seconds.items()}}


def summarise(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """Per direction and figure: ``[mean, sd]`` over the runs (sd 0 for a single deterministic run)."""
    out: dict[str, dict[str, list[float]]] = {}
    for key in runs[0]:
        out[key] = {}
        for fig in runs[0][key]:
            vals = np.array([r[key][fig] for r in runs])
            out[key][fig] = [round(float(vals.mean()), 2), round(float(vals.std(ddof=1)) if len(vals) > 1 else 0.0, 2)]
    return out


def _cell(v: list[float] | None) -> str:
    if v is None:
        return "–"
    return f"{v[0]:.1f} ± {v[1]:.1f}" if v[1] else f"{v[0]:.1f}"


def table(rec: dict[str, Any]) -> str:
    """One markdown table of a setting: R@1 alone / fused and mAP@10 fused, both directions."""
    cols = [(k, f) for f in ("alone_R@1", "fused_R@1", "fused_mAP@10") for k in KEYS]
    head = "| method | " + " | ".join(f"{k} {f.replace('_', ' ')}" for k, f in cols) + " |"
    lines = [head, "| --- |" + " ---: |" * len(cols)]
    for m, res in rec["baselines"].items():
        lines.append(f"| {m} | " + " | ".join(_cell([res[k][f], 0.0] if f in res[k] else None) for k, f in cols) + " |")
    for m, res in rec["methods"].items():
        lines.append(f"| {m} | " + " | ".join(_cell(res[k].get(f)) for k, f in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--settings", default="1cap,5cap")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    p.add_argument("--clips-1cap", type=int, default=4000)
    p.add_argument("--clips-5cap", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--caption-jitter", type=float, default=0.3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on busy shared cores)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="training forward pass: bf16 autocast where native (auto), or forced")
    p.add_argument("--only", default=None, help="run only these training variants (comma-separated names)")
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--data-seed", type=int, default=1)
    p.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    spec = GapSpec()
    world = GapWorld(spec, seed=args.world_seed)

    def log(msg: str) -> None:
        print(f"{time.perf_counter() - started:6.0f} s {msg}", file=sys.stderr, flush=True)

    records = [run_setting(name, world, args, log) for name in args.settings.split(",")]
    doc = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), "command": command,
           "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}, "world": asdict(spec),
           "train_config": TrainConfig(epochs=args.epochs, batch_size=args.batch_size, hidden=args.hidden,
                                       depth=args.depth, precision=args.precision).to_dict(),
           "seconds": round(time.perf_counter() - started, 1), "settings": records}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "ablation.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = ["# DiffGAP ablation (synthetic gap, standard protocol)", "",
          f"- date: {doc['date']}; {doc['seconds']:.0f} s in all",
          f"- machine: {doc['machine']['platform']}, {doc['machine']['cpu_count']} CPUs, torch {torch.__version__} "
          f"with {torch.get_num_threads()} threads",
          f"- command: `{command}`",
          f"- seeds {args.seeds} (training seeds; same pairs); {args.epochs} epochs, hidden {args.hidden}, depth "
          f"{args.depth}, batch {args.batch_size}; cells: mean ± sd over the seeds, in percent",
          "- alone: bridged query against raw items; fused: the score `dgsearch query` serves, weights tuned on "
          "the validation clips (ridge + fusion: the same with the ridge map in place of the bridge)", ""]
    for rec in records:
        md += [f"## {rec['setting']}: {rec['captions_per_clip']} caption(s) per clip, {rec['train_clips']} training "
               f"clips ({rec['train_pairs']} pairs), {rec['test_clips']} test clips ({rec['test_pairs']} pairs)", "",
               table(rec), "", "Sampler chosen on validation (full DiffGAP, per seed): "
               + "; ".join(json.dumps({d: {k: v[k] for k in ('steps', 'guidance_scale')} for d, v in c.items()})
                           for c in rec["chosen_sampler"]["DiffGAP (full)"]), ""]
    (args.out_dir / "ablation.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
