"""The fusion-weight grid that validation runs thousands of times: ``tune_fusion`` against the plain loop.

Training rates the network after every epoch, then chooses the sampler, the residual scales and the
counterparts' weights; each of those tunes the fusion weights on a grid (15 points at step 0.25, 66 at 0.1
where the raw term is served), and each point fuses three ``(Q, N)`` cosine matrices, pools them and ranks
every query's relevant items. The baselines are that loop written plainly (every point fused into new arrays and
ranked in full by ``Task.metrics``), and the same with the ranking as it was before 2026-12-04; the engine's ``tune_fusion`` pools the query terms
once, fuses into reused buffers, ranks only as far as R@1 and mAP@10 need and scores the points on
``ranking_threads()`` threads. Both must choose the same weights (checked on every case); the figure is the
ratio of their times within one run. Shapes as at AudioCaps size: 1,000 validation clips with 5 captions, the
audio-text raw term served, D = 512 (the terms are cosine matrices with noise; only their shape and ties matter
to the time).

    python benchmarks/bench_fusion_grid.py            # writes results/fusion_grid.json and .md
"""

from __future__ import annotations

import argparse
import time
from itertools import product
from typing import Any

import numpy as np
import torch

from _common import write_results

from diffgap_search.gap.fusion import FusionConfig, fused_unit_scores, ranking_threads, raw_term_served, tune_fusion
from diffgap_search.gap.metrics import metrics_from_ranks
from diffgap_search.gap.protocol import Task, tasks_for


def masked_ranks(sim: np.ndarray, ql: np.ndarray, il: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``metrics.relevant_ranks`` as it was until 2026-12-04: relevance as a ``(Q, N)`` mask, and per relevant
    item an argmax over the masked scores and a count of the irrelevant ones at or above it."""
    rel = ql[:, None] == il[None, :]
    n_rel = rel.sum(axis=1)
    out = np.zeros((len(sim), int(n_rel.max())), dtype=np.int64)
    remaining, wrong, rows = np.where(rel, sim, -np.inf), ~rel, np.arange(len(sim))
    for j in range(out.shape[1]):
        best = remaining.argmax(axis=1)
        score = remaining[rows, best]
        remaining[rows, best] = -np.inf
        out[:, j] = np.where(j < n_rel, j + 1 + ((sim >= score[:, None]) & wrong).sum(axis=1), 0)
    return out, n_rel


def plain_tune(task: Task, raw: np.ndarray, qb: np.ndarray, ib: np.ndarray, step: float,
               masked: bool = False) -> FusionConfig:
    """The grid as a competent user writes it: every point fused, pooled and ranked in full (``masked``: with
    the ranking as it was, ``masked_ranks``)."""
    n = round(1 / step)
    allow_raw = raw_term_served(task.queries.modality, task.items.modality, task.shared_space, task.separate_space)
    best: tuple[tuple[float, float], FusionConfig] | None = None
    for i, j in product(range(n + 1 if allow_raw else 1), range(n + 1)):
        if i + j > n:
            continue
        cfg = FusionConfig(w_raw=i / n, w_query_bridged=j / n, w_item_bridged=(n - i - j) / n)
        units = fused_unit_scores(task, raw, qb, ib, cfg)
        m = metrics_from_ranks(*masked_ranks(units, task.queries.labels, task.items.labels)) if masked \
            else task.metrics(units)
        if best is None or (m["R@1"], m["mAP@10"]) > best[0]:
            best = ((m["R@1"], m["mAP@10"]), cfg)
    assert best is not None
    return best[1]


def _best_of(fn: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=1000, help="validation clips (5 captions each)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    codes = np.repeat(np.arange(args.clips), 5)
    audio = rng.standard_normal((args.clips, args.dim)).astype(np.float32)[codes]
    text = audio + 1.2 * rng.standard_normal(audio.shape).astype(np.float32)
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    rows: list[tuple[str, ...]] = [("task", "Q x N", "grid step", "points", "plain loop, ranks as before s",
                                    "plain loop s", "tune_fusion s", "speed-up (vs before)", "same weights")]
    cases = []
    for task in tasks_for("audio", "text", audio, text, codes):
        q, g = task.queries.vectors, task.items.vectors
        raw = q @ g.T
        terms = [raw + 0.05 * rng.standard_normal(raw.shape).astype(np.float32) for _ in range(2)]
        for step in (0.25, 0.1):
            before = _best_of(lambda: plain_tune(task, raw, *terms, step, masked=True), args.repeats)
            plain = _best_of(lambda: plain_tune(task, raw, *terms, step), args.repeats)
            fast = _best_of(lambda: tune_fusion(task, raw, *terms, step), args.repeats)
            same = plain_tune(task, raw, *terms, step) == tune_fusion(task, raw, *terms, step) \
                == plain_tune(task, raw, *terms, step, masked=True)
            n = round(1 / step)
            points = (n + 1) * (n + 2) // 2
            cases.append({"task": task.key, "shape": list(raw.shape), "step": step, "points": points,
                          "before_s": before, "plain_s": plain, "tune_fusion_s": fast, "speedup": plain / fast,
                          "speedup_vs_before": before / fast, "same": same})
            rows.append((task.key, f"{raw.shape[0]} x {raw.shape[1]}", str(step), str(points), f"{before:.3f}",
                         f"{plain:.3f}", f"{fast:.3f}", f"{plain / fast:.2f}x ({before / fast:.2f}x)",
                         "yes" if same else "NO"))
            if not same:
                raise SystemExit(f"tune_fusion chose other weights than the plain loop on {task.key} at step {step}")
    threads = ranking_threads()
    write_results("fusion_grid", {"cases": cases, "ranking_threads": threads, "torch_threads": torch.get_num_threads()},
                  rows, notes=[f"best of {args.repeats}; tune_fusion on {threads} ranking thread(s) (torch's intra-op "
                               "count); the plain loop on one (numpy)",
                               "times are of this machine at this moment: compare the ratio within the run"])


if __name__ == "__main__":
    main()
