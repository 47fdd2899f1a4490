"""Every gap-fixing method side by side on test pairs, both directions of every pair set, standard protocol.

Test pairs are reduced to a gallery of unique clips and the captions (``protocol``): text->audio ranks
every caption against the clips, audio->text every clip against all captions (a hit when any of its
captions is in the top k), video<->audio one clip per video; a clip's windows score by their maximum, as
``dgsearch query`` ranks files. Methods (query of modality A against items of modality B):

- ``raw``: cosine of the raw embeddings;
- ``mean_shift``: both sides centred by their modality's training mean and re-normalised;
- ``mean_shift_query``: query shifted by the gap vector ``mu_B - mu_A`` and re-normalised;
- ``ridge``: affine ridge map A -> B, re-normalised;
- ``procrustes``: centred orthogonal Procrustes map A -> B, re-normalised;
- ``diffgap``: the bridged query ``bridge(q, A -> B)`` against raw items;
- ``diffgap_fusion``: the score ``dgsearch query`` serves (``fusion.fused_unit_scores``), with the
  bridge's fusion weights for A -> B (tuned on its validation groups) unless ``fusion`` overrides them;
- ``ridge_fusion`` / ``procrustes_fusion`` (bridges of format 4 on): the fair served counterparts, the same
  fused score with the linear map in place of the bridge, their weights tuned the same way on the same
  validation clips when the bridge was trained (``selection``).

``verdict`` says, per direction, which wins alone (DiffGAP vs the better of ridge and Procrustes) and
served (DiffGAP + fusion vs the better fair counterpart): ``{"alone": {...}, "served": {...}}``, each with
the figures, the ``winner`` and the ``margin`` in R@1 points (``"tie"`` within 0.05), and the margin's 95 %
paired-bootstrap ``interval`` over the test clips: whether the test set can tell the two apart.

Every baseline comes from the bridge's training record: fitted on the very pairs the bridge trained on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import UsageError
from .baselines import l2n
from .bridge import Bridge
from .directions import PAIR_SETS
from .evidence import gain_interval, query_hits
from .fusion import FusionConfig, fused_unit_scores
from .gap_picture import gap_picture
from .groups import as_groups
from .metrics import retrieval_metrics
from .protocol import Task, first_groups, group_codes, tasks_for
from .record import PairBaselines
from .selection import COUNTERPARTS, LinearBridge, term_matrices

METHODS: tuple[str, ...] = (
    "raw",
    "mean_shift",
    "mean_shift_query",
    "ridge",
    "procrustes",
    "diffgap",
    "diffgap_fusion",
    "ridge_fusion",
    "procrustes_fusion",
)
LABELS = {"diffgap": "DiffGAP", "ridge": "ridge", "procrustes": "Procrustes", "diffgap_fusion": "DiffGAP + fusion",
          "ridge_fusion": "ridge + fusion", "procrustes_fusion": "Procrustes + fusion"}


def method_scores(task: Task, bridge: Bridge, baselines: PairBaselines, fusion: FusionConfig) -> dict[str, np.ndarray]:
    """Method -> ``(U_q, U_i)`` unit scores of ``task`` (vector scores pooled as ``protocol.Task.pool``)."""
    q, g = task.queries.vectors, task.items.vectors
    qm, gm = task.queries.modality, task.items.modality
    shift = baselines.mean_shift(qm, gm)
    raw, qb, ib = term_matrices(task, bridge)
    vector_scores = {
        "raw": raw,
        "mean_shift": shift.centre_query(q) @ shift.centre_gallery(g).T,
        "mean_shift_query": shift.shift_query(q) @ g.T,
        "ridge": baselines.linear("ridge", qm, gm)(q) @ g.T,
        "procrustes": baselines.linear("procrustes", qm, gm)(q) @ g.T,
        "diffgap": qb,
    }
    out = {m: task.pool(s) for m, s in vector_scores.items()}
    out["diffgap_fusion"] = fused_unit_scores(task, raw, qb, ib, fusion)
    weights = bridge.selection.get("counterpart_fusion", {})
    if bridge.record is not None:
        for kind in COUNTERPARTS:
            if task.key in weights.get(kind, {}):
                lin = LinearBridge(bridge.record, kind)
                terms = (raw, lin.apply(q, qm, gm) @ g.T, q @ lin.apply(g, gm, qm).T)
                out[f"{kind}_fusion"] = fused_unit_scores(task, *terms, FusionConfig(**weights[kind][task.key]))
    return out


def _duel(results: Mapping[str, Mapping[str, float]], ours: str, theirs: tuple[str, ...],
          paired: tuple[Task, Mapping[str, np.ndarray]] | None = None) -> dict[str, object] | None:
    present = [m for m in theirs if m in results]
    if ours not in results or not present:
        return None
    best = max(present, key=lambda m: (results[m]["R@1"], -present.index(m)))
    margin = round(results[ours]["R@1"] - results[best]["R@1"], 2)
    winner = "tie" if abs(margin) < 0.05 else (ours if margin > 0 else best)
    duel: dict[str, object] = {ours: results[ours]["R@1"], "best_counterpart": best,
                               "counterpart_R@1": results[best]["R@1"], "winner": winner, "margin": margin}
    if paired is not None:
        task, scores = paired
        lo, hi = gain_interval(task.queries.labels, query_hits(task, scores[ours]), query_hits(task, scores[best]))
        duel.update(interval=[round(lo, 2), round(hi, 2)], queries=task.queries.n_units,
                    clips=int(len(np.unique(task.queries.labels))))
    return duel


def verdict(results: Mapping[str, Mapping[str, Mapping[str, float]]],
            scores: Mapping[str, tuple[Task, Mapping[str, np.ndarray]]] | None = None) -> dict[str, dict[str, object]]:
    """Per direction: ``{"alone": duel, "served": duel}`` (module docstring); a duel is absent without its methods.

    With ``scores`` (direction -> its task and each method's ``(U_q, U_i)`` unit scores) each duel also carries
    ``interval``: the 95 % paired-bootstrap interval of DiffGAP's margin in R@1 points over the test clips
    (``evidence.gain_interval``), with the ``queries`` and the query ``clips`` it rests on. An interval that holds
    0 means this test set cannot tell the two apart: measured (``benchmarks/gallery_size.py``), one 600-clip
    test gallery put a served margin 1-2 points below what ten others of the same world gave on average."""
    out: dict[str, dict[str, object]] = {}
    for key, methods in results.items():
        paired = (scores or {}).get(key)
        duels = {"alone": _duel(methods, "diffgap", ("ridge", "procrustes"), paired),
                 "served": _duel(methods, "diffgap_fusion", ("ridge_fusion", "procrustes_fusion"), paired)}
        out[key] = {k: v for k, v in duels.items() if v is not None}
    return out


def _interval_words(d: Mapping[str, Any]) -> str:
    """`` (95 % interval +0.3 to +1.9 over 600 query clips)``, and where it holds 0 and a method won: that this
    test set cannot tell them apart; "" for a duel without an interval (``verdict`` without scores)."""
    if "interval" not in d:
        return ""
    lo, hi = d["interval"]
    words = f" (95 % interval {lo:+.1f} to {hi:+.1f} over {d['clips']} query clips"
    if d["winner"] != "tie" and lo <= 0.0 <= hi:
        words += ": within this test set's noise"
    return words + ")"


def verdict_line(key: str, duels: Mapping[str, Any]) -> str:
    """One sentence: ``text->audio: served, DiffGAP + fusion 89.2 vs ridge + fusion 88.1: DiffGAP + fusion wins by
    1.1 (95 % interval +0.2 to +2.0 over 600 query clips); ...`` (the interval is DiffGAP's margin's)."""
    parts = []
    for kind in ("served", "alone"):
        d = duels.get(kind)
        if d is None:
            continue
        ours = "diffgap_fusion" if kind == "served" else "diffgap"
        other = str(d["best_counterpart"])
        head = f"{kind}, {LABELS[ours]} {d[ours]:.1f} vs {LABELS[other]} {d['counterpart_R@1']:.1f}: "
        won = "tie" if d["winner"] == "tie" else f"{LABELS[str(d['winner'])]} wins by {abs(d['margin']):.1f}"
        parts.append(head + won + _interval_words(d))
    if "served" not in duels:
        parts.append("no fair served counterpart (a bridge trained before format 4: train it again)")
    return f"{key}: " + "; ".join(parts)


def _pair_rows(test_pairs: Mapping[str, np.ndarray], a: str, b: str) -> np.ndarray | None:
    if a not in test_pairs or b not in test_pairs:
        return None
    ok = np.isfinite(np.asarray(test_pairs[a])).all(1) & np.isfinite(np.asarray(test_pairs[b])).all(1)
    return np.flatnonzero(ok)


def _counts(tasks: tuple[Task, Task]) -> dict[str, int]:
    """Units per modality of one pair set: ``{"audio": clips, "text": captions}`` or ``{"audio", "video"}`` clips."""
    to_a, _ = tasks
    return {to_a.items.modality: to_a.items.n_units, to_a.queries.modality: to_a.queries.n_units}


def evaluate_methods(
    test_pairs: Mapping[str, np.ndarray],
    bridge: Bridge,
    *,
    groups: np.ndarray | None = None,
    fusion: Mapping[str, FusionConfig] | None = None,
    max_groups: int | None = None,
    curves_k: int | None = None,
    picture: bool = False,
    separate_spaces: Sequence[str] = (),
) -> dict[str, object]:
    """Evaluate ``METHODS`` -> ``{"n_test": {pair set: {modality: units}}, "results": {"text->audio": {method:
    metrics}}, "verdict": {"text->audio": ...}}`` (the counterparts only for bridges that carry their weights).

    ``test_pairs``: modality name -> ``(N, D) float32`` (NaN rows = missing), as for ``train_bridge``,
    grouped by ``groups (N,)`` (default: identical audio rows form a group); they must be disjoint from
    the groups the bridge saw (the caller checks: ``bridge/evaluate.refuse_seen``). ``fusion``: optional
    ``"A->B"`` -> weights overriding the bridge's. ``max_groups`` caps the test clips per pair set (the first in
    group-id order). Metrics are those of ``metrics.retrieval_metrics`` (percentages). For pictures
    (``dgsearch eval --plot``): ``curves_k`` adds ``"curves"``, ``{direction: {method: [R@1, ..., R@K]}}`` with
    ``K = min(curves_k, items)``, from the same scores and the same function as ``results``; ``picture`` adds
    ``"pictures"``, ``{pair set: gap_picture.gap_picture(...)}`` of the same test rows. ``separate_spaces``:
    modalities whose raw cosine to audio search does not serve, beside the bridge's own
    (``Bridge.separate_spaces``): what an index knows of its words' encoder, for bridges trained before
    training knew it. Raises UsageError
    when the bridge carries no training record (a format-1 bridge: train it again).
    """
    if bridge.record is None:
        raise UsageError("this DiffGAP bridge predates stored baselines and training groups: run `dgsearch train` again")
    gids = as_groups(groups, np.asarray(test_pairs["audio"]))
    results: dict[str, dict[str, dict[str, float]]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    pictures: dict[str, dict[str, Any]] = {}
    n_test: dict[str, dict[str, int]] = {}
    duel_scores: dict[str, tuple[Task, dict[str, np.ndarray]]] = {}
    for a, b in PAIR_SETS:
        rows = _pair_rows(test_pairs, a.value, b.value)
        baselines = bridge.record.baselines.get(f"{a.value}-{b.value}")
        if rows is None or baselines is None or len(rows) == 0:
            continue
        codes = group_codes(gids[rows])
        keep = first_groups(codes, max_groups)
        if len(np.unique(codes[keep])) < 2:
            continue
        xa, xb = (np.asarray(test_pairs[m.value], np.float32)[rows][keep] for m in (a, b))
        tasks = tasks_for(a.value, b.value, l2n(xa), l2n(xb), codes[keep], b.value in bridge.shared_spaces,
                          b.value in {*bridge.separate_spaces, *separate_spaces})
        n_test[f"{a.value}-{b.value}"] = _counts(tasks)
        if picture:
            pictures[f"{a.value}-{b.value}"] = gap_picture(l2n(xa), l2n(xb), codes[keep], bridge, a.value, b.value)
        for task in tasks:
            qm, gm = task.queries.modality, task.items.modality
            fcfg = (fusion or {}).get(task.key) or bridge.fusion_for(qm, gm)
            scores = method_scores(task, bridge, baselines, fcfg)
            results[task.key] = {m: task.metrics(scores[m]) for m in METHODS if m in scores}
            duel_scores[task.key] = (task, scores)
            if curves_k:
                ks = tuple(range(1, min(curves_k, task.items.n_units) + 1))
                curves[task.key] = {m: [v for k, v in retrieval_metrics(scores[m], task.queries.labels,
                                                                       task.items.labels, ks=ks).items()
                                        if k.startswith("R@")] for m in METHODS if m in scores}
    out: dict[str, object] = {"n_test": n_test, "results": results, "verdict": verdict(results, duel_scores)}
    if curves_k:
        out["curves"] = curves
    if picture:
        out["pictures"] = pictures
    return out


def format_table(evaluation: Mapping[str, object]) -> str:
    """A markdown table: one row per (direction, method), columns R@1 R@5 R@10 median rank mAP@10."""
    lines = [
        "| direction | method | R@1 | R@5 | R@10 | median rank | mAP@10 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    results = evaluation["results"]
    assert isinstance(results, Mapping)
    for key, methods in results.items():
        for m, v in methods.items():
            lines.append(
                f"| {key} | {m} | {v['R@1']:.1f} | {v['R@5']:.1f} | {v['R@10']:.1f} | {v['median_rank']:.0f} "
                f"| {v['mAP@10']:.1f} |"
            )
    return "\n".join(lines)
