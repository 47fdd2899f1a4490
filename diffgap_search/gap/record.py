"""What a bridge keeps of its training run besides its weights: the groups it saw and the fitted baselines.

Stored in the bridge checkpoint as extra tensors named ``record.*`` (described in the metadata's
``record`` section), so ``dgsearch eval`` needs neither the training file nor a refit:

- ``record.groups.train`` / ``record.groups.val``: ``(G,) int64`` sorted keys (``groups.group_key``) of
  the groups trained on and of those that tuned the fusion weights; an evaluation refuses pairs from them;
- per pair set ``P`` (``audio-text``, ``audio-video``): ``record.baselines.P.mean.M`` ``(D,) float32``, the
  training pairs' mean of modality M; ``record.baselines.P.ridge.Q->G`` and ``....procrustes.Q->G``
  ``(D, D) float32``, the linear maps fitted on the very pairs the bridge trained on, per query direction.

Why the fitted parameters and not the training pairs: they are what the comparison needs, bit for bit;
they are small and of fixed size (a 512-d bridge's eight maps are 8 MB whatever the training set, while
AudioCaps' ~50 000 training pairs are ~200 MB at D = 512); and they fix the baselines once, so every
later evaluation compares the same methods. Ridge's alpha is chosen on a fifth of the training groups
(at most 2000; never on validation or test groups) and recorded in the metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .baselines import LinearMap, MeanShift, l2n
from .protocol import Task, build_side, group_codes

PREFIX = "record."
RIDGE_HOLDOUT = 5  # one training group in five chooses ridge's alpha ...
RIDGE_HOLDOUT_MAX_GROUPS = 2000  # ... at most this many (the scores are a captions x clips matrix)


@dataclass(frozen=True)
class PairBaselines:
    """The baselines of one pair set ``a-b``, fitted on its training pairs.

    ``means``: modality -> ``(D,) float32``; ``ridge`` / ``procrustes``: ``"Q->G"`` -> ``(D, D) float32``;
    ``ridge_alpha``: ``"Q->G"`` -> the alpha chosen; ``n_pairs``: how many training pairs they were fitted on.
    """

    a: str
    b: str
    means: dict[str, np.ndarray]
    ridge: dict[str, np.ndarray]
    procrustes: dict[str, np.ndarray]
    ridge_alpha: dict[str, float] = field(default_factory=dict)
    n_pairs: int = 0

    @property
    def name(self) -> str:
        """The pair set's name, ``"audio-text"``."""
        return f"{self.a}-{self.b}"

    def mean_shift(self, qm: str, gm: str) -> MeanShift:
        """Mean shift for queries of ``qm`` against items of ``gm``."""
        return MeanShift(self.means[qm], self.means[gm])

    def linear(self, kind: str, qm: str, gm: str) -> LinearMap:
        """``kind`` (``"ridge"`` or ``"procrustes"``) map from ``qm`` into ``gm``."""
        weight = getattr(self, kind)[f"{qm}->{gm}"]
        return LinearMap(self.means[qm], self.means[gm], weight, self.ridge_alpha.get(f"{qm}->{gm}"))


def _ridge_score(
    qm: str, gm: str, xq: np.ndarray, xg: np.ndarray, codes: np.ndarray, holdout: np.ndarray
) -> Callable[[LinearMap, np.ndarray], float]:
    """R@1 of a map on the ``holdout`` rows under the protocol (``Task``; built once)."""
    task = Task(build_side(qm, xq[holdout], codes[holdout]), build_side(gm, xg[holdout], codes[holdout]))

    def score(m: LinearMap, rows: np.ndarray) -> float:
        return task.metrics(task.pool(m(task.queries.vectors) @ task.items.vectors.T))["R@1"]

    return score


def fit_pair_baselines(a: str, b: str, xa: np.ndarray, xb: np.ndarray, groups: np.ndarray) -> PairBaselines:
    """Fit mean shift, ridge and Procrustes both ways on training pairs ``xa, xb (N, D)`` with ``groups (N,)``."""
    xa, xb = l2n(xa), l2n(xb)
    codes = group_codes(groups)
    holdout = (codes % RIDGE_HOLDOUT == RIDGE_HOLDOUT - 1) & (codes < RIDGE_HOLDOUT * RIDGE_HOLDOUT_MAX_GROUPS)
    if len(np.unique(codes[holdout])) < 2:
        holdout[:] = False  # too few clips to rank: ridge takes its middle alpha
    means = {a: xa.mean(0), b: xb.mean(0)}
    ridge, procrustes, alphas = {}, {}, {}
    for (qm, xq), (gm, xg) in (((a, xa), (b, xb)), ((b, xb), (a, xa))):
        key = f"{qm}->{gm}"
        fitted = LinearMap.fit_ridge(xq, xg, holdout=holdout, score=_ridge_score(qm, gm, xq, xg, codes, holdout))
        ridge[key], alphas[key] = fitted.weight, float(fitted.alpha or 0.0)
        procrustes[key] = LinearMap.fit_procrustes(xq, xg).weight
    return PairBaselines(a, b, means, ridge, procrustes, alphas, len(xa))


@dataclass(frozen=True)
class TrainingRecord:
    """``train_groups`` / ``val_groups``: ``(G,) int64`` sorted group keys; ``baselines``: pair set -> fitted."""

    train_groups: np.ndarray
    val_groups: np.ndarray
    baselines: dict[str, PairBaselines]

    def tensors(self) -> dict[str, torch.Tensor]:
        """The ``record.*`` tensors (see the module docstring)."""
        out = {f"{PREFIX}groups.train": self.train_groups, f"{PREFIX}groups.val": self.val_groups}
        for name, pb in sorted(self.baselines.items()):
            base = f"{PREFIX}baselines.{name}."
            out.update({f"{base}mean.{m}": v for m, v in pb.means.items()})
            out.update({f"{base}ridge.{k}": v for k, v in pb.ridge.items()})
            out.update({f"{base}procrustes.{k}": v for k, v in pb.procrustes.items()})
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}

    def meta(self) -> dict[str, Any]:
        """The metadata's ``record`` section: group counts and, per pair set, its modalities and ridge alphas."""
        return {
            "groups": {"train": len(self.train_groups), "val": len(self.val_groups)},
            "baselines": {n: {"a": pb.a, "b": pb.b, "ridge_alpha": dict(sorted(pb.ridge_alpha.items())),
                              "pairs": pb.n_pairs} for n, pb in sorted(self.baselines.items())},
        }

    def summary(self) -> dict[str, Any]:
        """``{"groups", "validation_groups", "pairs": {pair set: training pairs}}``, for reports."""
        return {"groups": len(self.train_groups), "validation_groups": len(self.val_groups),
                "pairs": {n: pb.n_pairs for n, pb in sorted(self.baselines.items())}}

    @classmethod
    def from_checkpoint(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> TrainingRecord:
        """Rebuild from the ``record.*`` tensors and the ``record`` metadata. KeyError if any is missing."""
        arr = {k[len(PREFIX):]: v.numpy() for k, v in tensors.items() if k.startswith(PREFIX)}
        baselines = {}
        for name, info in meta["baselines"].items():
            a, b, base = info["a"], info["b"], f"baselines.{name}."
            keys = (f"{a}->{b}", f"{b}->{a}")
            baselines[name] = PairBaselines(
                a, b, {m: arr[f"{base}mean.{m}"] for m in (a, b)}, {k: arr[f"{base}ridge.{k}"] for k in keys},
                {k: arr[f"{base}procrustes.{k}"] for k in keys}, {k: float(v) for k, v in info["ridge_alpha"].items()},
                int(info["pairs"]),
            )
        return cls(arr["groups.train"], arr["groups.val"], baselines)


__all__ = ["PREFIX", "PairBaselines", "TrainingRecord", "fit_pair_baselines"]
