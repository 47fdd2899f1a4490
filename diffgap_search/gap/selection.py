"""Nothing served that validation did not choose: the checkpoint, the residual scale and the fair counterparts.

Every choice here is made on the bridge's validation groups (``training_data``: clips it never trained on),
on the score ``dgsearch query`` serves (``fusion.fused_unit_scores``):

- **checkpoint** (early stopping): ``progress_score`` rates the network after an epoch by the served R@1 of
  its full residual (one DDIM step from the zero start, fusion weights tuned on a coarse grid) plus its
  bridged-query R@1; training keeps the best-rated weights and stops after ``TrainConfig.patience`` ratings
  without improvement;
- **residual scale** ``alpha`` per task and role (``choose_residual``): the bridge serves ``anchor + alpha *
  residual``; ``alpha = 0`` is the ridge map alone (``Bridge.residual_scale``). A task (text -> audio) serves
  two bridged terms: its query bridged at search time (``audio|text``, role ``query``) and its items bridged at
  index time (``text|audio``, role ``items``); the other task of the pair set uses the same two directions in
  the opposite roles. So each task chooses its own pair ``(query alpha, items alpha)`` on ``RESIDUAL_GRID``,
  each pair's fusion weights tuned; kept is the pair with the best served R@1 (then mAP@10, then bridged-query
  R@1; ties to the smaller alphas) among those whose served R@1 is at least the anchor's (a last tie-break: the
  bridged query's mean cosine to its partner, then the smaller alphas). (Until format 5 one alpha per
  direction served both roles, chosen on the two tasks together: one task's loss withdrew the other's
  confirmed gain, ``docs/diffgap.md``.) ``(0, 0)`` — the anchor, i.e. ridge + fusion (Procrustes + fusion where
  ``anchor_choice`` anchored the pair set on Procrustes) — always qualifies, so by construction the served
  bridge is never below its anchor on validation. **Confirmation before a residual is
  served**:
  training chooses on one half of the validation clips and passes the other half as ``confirm``; the kept pair
  (fusion re-tuned on the fine grid) replaces the anchor only when a paired bootstrap over the confirmation
  clips (``evidence.gain_confidence``), both served with the weights tuned on the choosing half, finds the
  task's served R@1 above the anchor's in at least ``confidence`` of the resamples (``SERVE_CONFIDENCE``), and
  when, re-tuned on every validation clip as the counterparts are, it is above the anchor there; else (a tie
  included) the anchor is served. (A bootstrap of the two tasks averaged let one direction's large gain carry the
  other's loss: 3 of the 5 runs that lost a task on test at 1,000 clips; ``benchmarks/confirm_evidence.py``.)
  Clips that chose the checkpoint, the sampler, alpha and the fusion weights flatter what they chose: on them
  the best of 25 pairs won by a few queries and lost on test (``benchmarks/diagnose_selection.py``). (The
  bridged query alone is not constrained: requiring it made validation give up served points for a figure
  nobody is served.);
- **fair counterparts**: ridge + fusion and Procrustes + fusion, the same fusion with the linear map in place of
  the bridge (``LinearBridge``), tuned the same way on the same clips; their weights are stored with the bridge
  so ``dgsearch eval`` serves them beside it on test clips.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from itertools import product
from typing import Any

import numpy as np

from .bridge import Bridge
from .directions import Direction
from .evidence import query_hits, serve_share, task_evidence
from .fusion import FusionConfig, fused_unit_scores, tune_fusion
from .protocol import Task
from .record import PairBaselines, TrainingRecord

RESIDUAL_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
COARSE_STEP = 0.25  # fusion grid while rating checkpoints and alpha pairs (the kept pair is re-tuned at 0.1)
COUNTERPARTS: tuple[str, ...] = ("ridge", "procrustes")
SERVE_CONFIDENCE = 0.9  # share of validation-clip resamples in which a residual must beat the anchor to be served


class LinearBridge:
    """A bridge-like object whose generation is a fitted linear map (``kind``: ridge or Procrustes) of a
    training record: the fair counterpart of DiffGAP under the same fusion (``apply`` as ``Bridge.apply``)."""

    def __init__(self, record: TrainingRecord, kind: str) -> None:
        self.record, self.kind = record, kind
        self.directions = tuple(Direction.of(q, g) for pb in record.baselines.values()
                                for q, g in ((pb.a, pb.b), (pb.b, pb.a)))

    def _baselines(self, source: str, target: str) -> PairBaselines:
        name = f"audio-{target if source == 'audio' else source}"
        return self.record.baselines[name]

    def apply(self, x: np.ndarray, source: str, target: str, *, role: str = "query") -> np.ndarray:
        """``(N, D)`` rows of ``source`` -> ``(N, D) float32`` unit rows mapped into ``target`` (either role)."""
        return self._baselines(source, target).linear(self.kind, source, target)(x)


def term_matrices(task: Task, bridge: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three ``(V_q, V_i) float32`` cosine terms of ``task``: raw, bridged query, bridged items (each bridged
    in its role: the residual scale of a query, of indexed items). ``bridge``: anything with ``Bridge.apply``'s
    signature (a ``Bridge``, a ``LinearBridge``, an ``ApplyMemo``)."""
    q, g = task.queries.vectors, task.items.vectors
    qm, gm = task.queries.modality, task.items.modality
    return q @ g.T, bridge.apply(q, qm, gm) @ g.T, q @ bridge.apply(g, gm, qm, role="items").T


def _served(task: Task, terms: tuple[np.ndarray, np.ndarray, np.ndarray], step: float) -> tuple[dict, FusionConfig]:
    cfg = tune_fusion(task, *terms, step=step)
    return task.metrics(fused_unit_scores(task, *terms, cfg)), cfg


def progress_score(bridge: Bridge, tasks: Sequence[Task]) -> tuple[float, float]:
    """``(mean served R@1, mean bridged-query R@1)`` over ``tasks`` served both ways by ``bridge`` (coarse
    fusion grid): the early-stopping score. ``(0, 0)`` with no such task."""
    fused, alone = [], []
    memo = ApplyMemo(bridge, {}, share_roles=True)  # the two tasks' shared vectors bridged once
    for task in tasks:
        qm, gm = task.queries.modality, task.items.modality
        if not all(d in bridge.directions for d in (Direction.of(qm, gm), Direction.of(gm, qm))):
            continue
        terms = term_matrices(task, memo)
        fused.append(_served(task, terms, COARSE_STEP)[0]["R@1"])
        alone.append(task.vector_metrics(terms[1])["R@1"])
    return (float(np.mean(fused)), float(np.mean(alone))) if fused else (0.0, 0.0)


def counterpart_fusion(record: TrainingRecord, tasks: Sequence[Task]) -> tuple[dict[str, dict[str, dict]], dict]:
    """Fusion weights of ridge + fusion and Procrustes + fusion, tuned on ``tasks`` like the bridge's ->
    ``({kind: {"text->audio": weights}}, {kind: {"text->audio": {"alone_R@1", "served_R@1"}}})``."""
    weights: dict[str, dict[str, dict]] = {}
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for kind in COUNTERPARTS:
        lin = LinearBridge(record, kind)
        for task in tasks:
            terms = term_matrices(task, lin)
            m, cfg = _served(task, terms, 0.1)
            weights.setdefault(kind, {})[task.key] = cfg.to_dict()
            scores.setdefault(kind, {})[task.key] = {"alone_R@1": task.vector_metrics(terms[1])["R@1"],
                                                     "served_R@1": m["R@1"]}
    return weights, scores


Scales = dict[str, dict[str, float]]  # {"residual_scale": {direction: alpha}, "residual_scale_items": {...}}
Make = Callable[[Scales], Bridge]
SCALE_KEYS = {"query": "residual_scale", "items": "residual_scale_items"}


class ApplyMemo:
    """``bridge.apply`` remembered per (direction, role, the role's residual scale, input array) in ``store``, shared
    by bridges that differ only in their scales: the alpha grid re-bridges nothing. ``share_roles``: the role left
    out of the key, for a ``Bridge``, whose ``apply`` depends on the role only through its residual scale: a pair
    set's two tasks then bridge their shared vectors once where the two roles' scales agree (one task's query texts
    are the other's item texts: ``protocol.tasks_for``); the same call, so the same numbers."""

    def __init__(self, bridge: Bridge, store: dict[tuple, np.ndarray], share_roles: bool = False) -> None:
        self.bridge, self.store, self.share_roles = bridge, store, share_roles
        self.directions = bridge.directions

    def apply(self, x: np.ndarray, source: str, target: str, *, role: str = "query") -> np.ndarray:
        d = Direction.of(source, target)
        key = (d.value, None if self.share_roles else role, self.bridge.residual_scale(d, role), id(x))
        if key not in self.store:
            self.store[key] = self.bridge.apply(x, source, target, role=role)
        return self.store[key]


def _partner_cosine(task: Task, bridged: np.ndarray) -> float:
    """Mean over query units of the best cosine between the bridged query and a relevant item (tie-break)."""
    units, rel = task.pool(bridged), task.relevance
    return float(np.mean(np.where(rel.valid, units[np.arange(len(units))[:, None], rel.columns], -np.inf).max(axis=1)))


def _unit_key(task: Task, coupled: bool) -> Hashable:
    """What one choice of alphas serves: a task (its query's and its items' alphas), or with ``coupled`` the pair
    set's two tasks sharing one alpha per direction (the rule of format 4)."""
    return frozenset((task.queries.modality, task.items.modality)) if coupled else task.key


def _by_unit(tasks: Sequence[Task] | None, coupled: bool) -> dict[Hashable, list[Task]]:
    out: dict[Hashable, list[Task]] = {}
    for task in tasks or ():
        out.setdefault(_unit_key(task, coupled), []).append(task)
    return out


def _scales(task: Task, pair: tuple[float, float], coupled: bool) -> Scales:
    """The alphas of ``pair`` for the unit of ``task``: ``(query alpha, items alpha)`` of the task, or with
    ``coupled`` one alpha per direction ``(task's query direction, its items' direction)`` for both roles."""
    dq, di = Direction.of(task.queries.modality, task.items.modality).value, \
        Direction.of(task.items.modality, task.queries.modality).value
    if coupled:
        both = {dq: pair[0], di: pair[1]}
        return {key: dict(both) for key in SCALE_KEYS.values()}
    return {SCALE_KEYS["query"]: {dq: pair[0]}, SCALE_KEYS["items"]: {di: pair[1]}}


def _confirm_hits(make: Callable[[Scales], Any], scales: Scales, tasks: Sequence[Task],
                  weights: dict[str, FusionConfig]) -> list[np.ndarray]:
    """Per task, ``query_hits`` of ``scales`` served with weights tuned elsewhere (the choice clips)."""
    bridge = make(scales)
    return [query_hits(t, fused_unit_scores(t, *term_matrices(t, bridge), weights[t.key])) for t in tasks]


Crossed = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # task key -> (labels, hits, anchor hits)


def mirror_evidence(make: Make, choose_on: Sequence[Task], judge_on: Sequence[Task],
                    grid: Sequence[float] = RESIDUAL_GRID) -> Crossed:
    """Cross-fitting's mirror: choose every task's alphas on ``choose_on`` (the confirmation half, with a bridge
    whose checkpoint and sampler were chosen there too) and serve the choice and the anchor on ``judge_on`` (the
    choice half), each with fusion weights tuned on ``choose_on`` -> per task key ``(query labels (U_q,), hits
    (U_q,), anchor hits (U_q,))``: evidence on clips that took no part in the mirror's choices, added to the
    confirmation's by ``choose_residual(crossed=...)``."""
    scales, fusion, _ = choose_residual(make, choose_on, grid, confidence=0.0)
    anchor: Scales = {key: {} for key in SCALE_KEYS.values()}
    for task in choose_on:
        for role_key, part in _scales(task, (0.0, 0.0), False).items():
            anchor[role_key].update(part)
    tuned = {k: v[1] for k, v in _fine(make, anchor, choose_on).items()}
    judged = [t for t in judge_on if t.key in fusion and t.key in tuned]
    new = _confirm_hits(make, scales, judged, fusion)
    old = _confirm_hits(make, anchor, judged, tuned)
    return {t.key: (t.queries.labels, n, o) for t, n, o in zip(judged, new, old)}


def _pooled(task: Task, hits: np.ndarray, anchor_hits: np.ndarray, crossed: Crossed | None
            ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """``task_evidence``'s row for ``task``, with the mirror's evidence of the same task appended (its clips
    relabelled after the task's own: the two halves hold different clips)."""
    labels = np.asarray(task.queries.labels)
    if not crossed or task.key not in crossed:
        return task.key, labels, hits, anchor_hits
    other, new, old = crossed[task.key]
    shifted = np.asarray(other) + (int(labels.max()) + 1 if len(labels) else 0)
    return task.key, np.r_[labels, shifted], np.r_[hits, new], np.r_[anchor_hits, old]


def choose_residual(make: Make, tasks: Sequence[Task], grid: Sequence[float] = RESIDUAL_GRID,
                    confidence: float = SERVE_CONFIDENCE, confirm: Sequence[Task] | None = None,
                    final: Sequence[Task] | None = None, per_task: bool = True, coupled: bool = False,
                    crossed: Crossed | None = None
                    ) -> tuple[Scales, dict[str, FusionConfig], dict[str, dict[str, float]]]:
    """Pick the residual scales on validation ``tasks`` (module docstring).

    ``make(scales)`` builds the bridge with ``scales`` = ``{"residual_scale": {"audio|text": alpha, ...},
    "residual_scale_items": {...}}`` (the bridge's ``selection`` keys: alphas for queries and for indexed items).
    **Each task chooses its own pair** ``(alpha of its bridged query, alpha of its bridged items)``: a task's
    query direction is the other task's items direction, so the two tasks of a pair set never share an alpha
    (with ``coupled``, the rule of format 4, they do: one alpha per direction serves both roles, chosen on the
    pair set's two tasks together). Returns ``(scales, fusion, val)``: the scales kept, their fusion weights per
    task (re-tuned on the fine 0.1 grid) and per task ``{"anchor_R@1", "anchor_served_R@1", "bridged_R@1",
    "fused_R@1", "gain_confidence", "task_confidence", "pair_confidence", "confirm_gain"}`` (the anchor's figures
    are ridge's, alone and served; for the best pair found, whether or not it was served: ``task_confidence``
    the bootstrap share of this task alone, ``pair_confidence`` that of the unit's tasks averaged (its own share
    when a unit is one task), ``gain_confidence`` the share the rule compared with ``confidence`` — the smallest
    ``task_confidence`` of the unit's tasks, or with ``per_task=False`` the joint share, the rule before the
    per-task fix; ``confirm_gain``: this task's served R@1 gain in points on the clips the bootstrap resampled).
    ``confidence`` 0 serves the best pair without the bootstrap (the rule before issue 20's fix). A pair is
    served only if each of the unit's tasks beats the anchor in ``confidence`` of the resamples on its own.
    Then, re-tuned on ``final``, it must still be at least the anchor in every task of the unit and above it in
    one, else the anchor is served (a tie goes to the anchor, as everywhere: a task whose re-tuned fusion
    weights drop a bad bridged term ties its anchor served, and its bridged vectors would still be served).
    ``confirm``: validation tasks on clips that took no part in any choice (``training_data.confirmation_split``);
    the bootstrap runs there, both candidates served with the fusion weights tuned on ``tasks`` (without them:
    on ``tasks`` themselves, whose figures the choice has already flattered). ``crossed`` (cross-fitting,
    ``mirror_evidence``): the same procedure run the other way round, chosen on ``confirm`` and judged on
    ``tasks``; its per-query hits join the confirmation's in each task's bootstrap (twice the clips; the
    evidence is then for the procedure, whose choice on ``tasks`` is what is served). ``final``: the tasks the kept
    pair's fusion weights are re-tuned on and its figures reported on (default ``tasks``; training passes every
    validation clip, as the counterparts are tuned on).
    Tasks whose pair set lacks a direction keep alpha 1 and get no entry.
    """
    grid = sorted(set(float(a) for a in grid) | {0.0})
    store: dict[tuple, np.ndarray] = {}
    build = make

    def make(scales: Scales) -> Any:  # type: ignore[no-redef]
        return ApplyMemo(build(scales), store)

    chosen: Scales = {key: {} for key in SCALE_KEYS.values()}
    fusion: dict[str, FusionConfig] = {}
    val: dict[str, dict[str, float]] = {}
    confirm_by, final_by = _by_unit(confirm, coupled), _by_unit(final, coupled)
    for which, unit_tasks in _by_unit(tasks, coupled).items():
        first = unit_tasks[0]
        needed = (Direction.of(first.queries.modality, first.items.modality),
                  Direction.of(first.items.modality, first.queries.modality))

        def scales(pair: tuple[float, float]) -> Scales:
            return _scales(first, pair, coupled)

        cache: dict[tuple[float, float], dict[str, tuple[dict, float, float]]] = {}
        for pair in sorted(product(grid, grid), key=lambda p: (p[0] + p[1], p)):
            bridge = make(scales(pair))
            if not all(d in bridge.directions for d in needed):
                break
            cache[pair] = {}
            for task in unit_tasks:
                terms = term_matrices(task, bridge)
                cache[pair][task.key] = (_served(task, terms, COARSE_STEP)[0], task.vector_metrics(terms[1])["R@1"],
                                         _partner_cosine(task, terms[1]))
        if not cache:
            continue
        anchor = cache[(0.0, 0.0)]

        def ok(pair: tuple[float, float]) -> bool:
            return all(m["R@1"] >= anchor[k][0]["R@1"] for k, (m, _, _) in cache[pair].items())

        def key(pair: tuple[float, float]) -> tuple[float, float, float, float]:
            runs = cache[pair].values()
            return (float(np.mean([m["R@1"] for m, _, _ in runs])), float(np.mean([m["mAP@10"] for m, _, _ in runs])),
                    float(np.mean([a for _, a, _ in runs])), float(np.mean([c for _, _, c in runs])))

        best = max((p for p in cache if ok(p)), key=lambda p: (key(p), -(p[0] + p[1])))
        fine = _fine(make, scales(best), unit_tasks)
        fine_anchor = _fine(make, scales((0.0, 0.0)), unit_tasks)
        check = confirm_by.get(which)
        if best == (0.0, 0.0):
            evidence: dict[str, tuple[float, float]] = {}
        elif check:
            new = _confirm_hits(make, scales(best), check, {k: v[1] for k, v in fine.items()})
            old = _confirm_hits(make, scales((0.0, 0.0)), check, {k: v[1] for k, v in fine_anchor.items()})
            evidence = task_evidence([_pooled(t, n, o, crossed) for t, n, o in zip(check, new, old)])
        else:
            evidence = task_evidence([(t.key, t.queries.labels, fine[t.key][3], fine_anchor[t.key][3])
                                      for t in unit_tasks])
        joint = evidence.pop("", (0.0, 0.0))[0]
        sure = serve_share(evidence, joint, per_task)
        below = any(fine[k][0]["R@1"] < fine_anchor[k][0]["R@1"] for k in fine)  # the finer grid may reorder
        if below or (confidence > 0 and sure < confidence):
            best = (0.0, 0.0)
        report = final_by.get(which, unit_tasks)
        if report is not unit_tasks or best == (0.0, 0.0):
            fine_anchor = _fine(make, scales((0.0, 0.0)), report)
            fine = fine_anchor if best == (0.0, 0.0) else _fine(make, scales(best), report)
            gains = [fine[k][0]["R@1"] - fine_anchor[k][0]["R@1"] for k in fine]
            if min(gains) < 0 or max(gains) <= 0:  # re-tuned on every clip: below in a task, or a tie: the anchor
                best, fine = (0.0, 0.0), fine_anchor
        for role_key, part in scales(best).items():
            chosen[role_key].update(part)
        anchor_alone = {t.key: fine_anchor[t.key][2] for t in report}
        for task in report:
            m, cfg, alone, _ = fine[task.key]
            fusion[task.key] = cfg
            own, gain = evidence.get(task.key, (0.0, 0.0))
            val[task.key] = {"anchor_R@1": anchor_alone[task.key], "anchor_served_R@1": fine_anchor[task.key][0]["R@1"],
                             "bridged_R@1": alone, "fused_R@1": m["R@1"], "gain_confidence": sure,
                             "task_confidence": own, "pair_confidence": joint, "confirm_gain": gain}
    return chosen, fusion, val


def _fine(make: Callable[[Scales], Any], scales: Scales, tasks: Sequence[Task]
          ) -> dict[str, tuple[dict, FusionConfig, float, np.ndarray]]:
    bridge = make(scales)
    out = {}
    for task in tasks:
        terms = term_matrices(task, bridge)
        cfg = tune_fusion(task, *terms, step=0.1)
        units = fused_unit_scores(task, *terms, cfg)
        out[task.key] = (task.metrics(units), cfg, task.vector_metrics(terms[1])["R@1"], query_hits(task, units))
    return out


__all__ = ["COUNTERPARTS", "RESIDUAL_GRID", "SERVE_CONFIDENCE", "ApplyMemo", "LinearBridge", "choose_residual",
           "counterpart_fusion", "mirror_evidence", "progress_score", "term_matrices"]
