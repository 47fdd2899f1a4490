"""Which linear map anchors the bridge: ridge or Procrustes, chosen per pair set on validation before training.

The denoiser predicts the residual of a linear anchor (``denoiser``), and a task whose residual validation does not
confirm is served the anchor + fusion (``selection.choose_residual``, alpha = 0). Until this choice the anchor was
always the ridge map, so where Procrustes + fusion is the better fair counterpart the bridge could at best tie
ridge + fusion, below Procrustes + fusion: measured on the real WordLlama -> aisfx benchmark (``docs/real-gap.md``:
Procrustes alone 56.7 R@1 on category queries against ridge's 23.3 and the served bridge's 43.3; a forced Procrustes
anchor served 60.0, though validation there preferred ridge) and on a saturated synthetic cell (``docs/diffgap.md``).
Each pair set now takes Procrustes as its anchor when, on every validation
clip, Procrustes + fusion beats ridge + fusion served (the counterparts' own tuned weights, ``counterpart_fusion``)
over the pair set's two tasks together in at least ``confidence`` of the paired clip resamples
(``evidence.gain_confidence``), the same standard a residual must meet; otherwise ridge, as before. One anchor per
pair set: a direction's anchor serves one task's query and the other task's items, so the two tasks decide
together. The map itself lives in the denoiser's anchor buffers, so a bridge anchored on Procrustes loads and
serves in any version that reads format-5 files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .evidence import gain_confidence, query_hits
from .fusion import FusionConfig, fused_unit_scores
from .protocol import Task
from .record import TrainingRecord
from .selection import COUNTERPARTS, LinearBridge, term_matrices
from .train_config import ANCHOR_KINDS


def pair_set_of(task: Task) -> str:
    """``"audio-text"`` for text->audio and audio->text (the record's pair-set names: audio first)."""
    other = task.items.modality if task.queries.modality == "audio" else task.queries.modality
    return f"audio-{other}"


def choose_anchors(record: TrainingRecord, tasks: Sequence[Task], weights: Mapping[str, Mapping[str, dict]],
                   mode: str = "auto", confidence: float = 0.9
                   ) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """Per pair set of ``record`` -> ``(kinds, evidence)``: ``kinds[name]`` is ``"ridge"`` or ``"procrustes"``;
    ``evidence[name]`` holds ``procrustes_confidence`` (share of clip resamples in which Procrustes + fusion's
    mean served R@1 over the pair set's tasks beats ridge + fusion's) and both counterparts' mean served R@1.

    ``tasks``: validation tasks on every validation clip; ``weights``: ``counterpart_fusion``'s ``{kind: {task key:
    FusionConfig dict}}`` tuned on them. ``mode`` ``"ridge"`` / ``"procrustes"`` forces the kind (evidence still
    reported); ``"auto"`` takes Procrustes only with ``procrustes_confidence >= confidence``. A pair set with no
    validation task keeps ridge.
    """
    if mode not in ANCHOR_KINDS:
        raise ValueError(f"anchor kind must be one of {ANCHOR_KINDS}, got {mode!r}")
    lines = {kind: LinearBridge(record, kind) for kind in COUNTERPARTS}  # ridge, procrustes
    kinds: dict[str, str] = {}
    evidence: dict[str, dict[str, float]] = {}
    for name in record.baselines:
        paired, served = [], {kind: [] for kind in COUNTERPARTS}
        for task in (t for t in tasks if pair_set_of(t) == name):
            hits = {}
            for kind, lin in lines.items():
                scores = fused_unit_scores(task, *term_matrices(task, lin), FusionConfig(**weights[kind][task.key]))
                hits[kind] = query_hits(task, scores)
                served[kind].append(100.0 * float(np.mean(hits[kind])))
            paired.append((task.queries.labels, hits["procrustes"], hits["ridge"]))
        share = gain_confidence(paired) if paired else 0.0
        evidence[name] = {"procrustes_confidence": share,
                          **{f"{k}_served_R@1": float(np.mean(v)) if v else 0.0 for k, v in served.items()}}
        kinds[name] = mode if mode != "auto" else ("procrustes" if paired and share >= confidence else "ridge")
    return kinds, evidence


__all__ = ["choose_anchors", "pair_set_of"]
