"""Training-free and linear fixes of the modality gap, fitted on the same training pairs as DiffGAP.

All maps take and return ``(N, D) float32`` L2-normalised rows. The mean-shift trap (PAPER.md):
subtracting one constant vector from every gallery vector shifts all of a query's scores equally and
changes no ranking, so every map here re-normalises after shifting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .metrics import true_ranks

RIDGE_ALPHAS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def l2n(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation: ``(N, D) -> (N, D) float32`` (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


@dataclass(frozen=True)
class MeanShift:
    """Modality means ``mu_src, mu_tgt: (D,) float32`` of the training pairs (Liang et al., "Mind the Gap")."""

    mu_src: np.ndarray
    mu_tgt: np.ndarray

    @classmethod
    def fit(cls, src: np.ndarray, tgt: np.ndarray) -> MeanShift:
        """Fit on paired training rows ``src, tgt: (N, D)``."""
        return cls(np.asarray(src, np.float32).mean(0), np.asarray(tgt, np.float32).mean(0))

    def centre_query(self, q: np.ndarray) -> np.ndarray:
        """Centre both sides, part 1: ``normalise(q - mu_src)``."""
        return l2n(q - self.mu_src)

    def centre_gallery(self, g: np.ndarray) -> np.ndarray:
        """Centre both sides, part 2: ``normalise(g - mu_tgt)``."""
        return l2n(g - self.mu_tgt)

    def shift_query(self, q: np.ndarray) -> np.ndarray:
        """Shift the query across the gap: ``normalise(q - mu_src + mu_tgt)``; the gallery stays raw."""
        return l2n(q - self.mu_src + self.mu_tgt)


@dataclass(frozen=True)
class LinearMap:
    """An affine map ``y = (x - mu_src) W + mu_tgt`` followed by re-normalisation; ``W: (D, D) float32``.

    ``alpha``: the ridge strength chosen (relative to the mean eigenvalue of the centred Gram matrix), or
    None for Procrustes.
    """

    mu_src: np.ndarray
    mu_tgt: np.ndarray
    weight: np.ndarray
    alpha: float | None = None

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """``(N, D) -> (N, D) float32`` L2-normalised, in the target modality."""
        return l2n((np.asarray(q, np.float32) - self.mu_src) @ self.weight + self.mu_tgt)

    @classmethod
    def fit_procrustes(cls, src: np.ndarray, tgt: np.ndarray) -> LinearMap:
        """Orthogonal Procrustes on centred pairs ``src, tgt: (N, D)``: ``W = U V^T`` from ``svd(Xc^T Yc)``."""
        shift = MeanShift.fit(src, tgt)
        xc, yc = np.asarray(src, np.float64) - shift.mu_src, np.asarray(tgt, np.float64) - shift.mu_tgt
        u, _, vt = np.linalg.svd(xc.T @ yc)
        return cls(shift.mu_src, shift.mu_tgt, (u @ vt).astype(np.float32))

    @classmethod
    def fit_ridge(
        cls,
        src: np.ndarray,
        tgt: np.ndarray,
        alphas: tuple[float, ...] = RIDGE_ALPHAS,
        *,
        holdout: np.ndarray | None = None,
        score: Callable[[LinearMap, np.ndarray], float] | None = None,
        seed: int = 0,
    ) -> LinearMap:
        """Ridge regression on centred pairs ``src, tgt: (N, D)``: ``alpha`` is picked on the ``holdout`` rows
        (``(N,) bool``; default a seeded fifth of the rows) by ``score(map fitted on the other rows,
        holdout)`` (default: R@1 with row i's truth at row i; ties go to the smaller alpha), then the map
        is refitted on all the pairs. Callers whose rows repeat a clip pass a holdout of whole groups and
        a group-aware score (``baseline_set``); without enough rows on either side the middle alpha is used."""
        src, tgt = np.asarray(src, np.float64), np.asarray(tgt, np.float64)
        if holdout is None:
            perm = np.random.default_rng(seed).permutation(len(src))
            holdout = np.zeros(len(src), dtype=bool)
            holdout[perm[: max(1, len(src) // 5)]] = True
        if score is None:
            def score(m: LinearMap, rows: np.ndarray) -> float:
                return float(np.mean(true_ranks(m(src[rows]) @ l2n(tgt[rows]).T) == 1))
        if min(int(holdout.sum()), int((~holdout).sum())) < 2:
            best = alphas[len(alphas) // 2]
        else:
            maps = cls._ridge_path(src[~holdout], tgt[~holdout], alphas)  # one eigendecomposition for every alpha
            best = max(alphas, key=lambda a: (score(maps[a], holdout), -a))
        return cls.ridge(src, tgt, best)

    @classmethod
    def _ridge_path(cls, src: np.ndarray, tgt: np.ndarray, alphas: tuple[float, ...]) -> dict[float, LinearMap]:
        """``ridge(src, tgt, a)`` for every ``a`` in ``alphas`` from one eigendecomposition of the centred Gram
        matrix (the same maps up to float rounding; at D = 512 one solve per alpha was most of the fit)."""
        ms, mt = src.mean(0), tgt.mean(0)
        xc, yc = src - ms, tgt - mt
        gram = xc.T @ xc
        scale = np.trace(gram) / gram.shape[0]
        vals, vecs = np.linalg.eigh(gram)
        proj = vecs.T @ (xc.T @ yc)
        out = {}
        for a in alphas:
            lam = a * (scale if scale > 0 else 1.0)
            w = vecs @ (proj / (vals + lam)[:, None])
            out[a] = cls(ms.astype(np.float32), mt.astype(np.float32), w.astype(np.float32), float(a))
        return out

    @classmethod
    def ridge(cls, src: np.ndarray, tgt: np.ndarray, alpha: float) -> LinearMap:
        """The ridge map of strength ``alpha`` on pairs ``src, tgt: (N, D)`` (closed form, float64)."""
        src, tgt = np.asarray(src, np.float64), np.asarray(tgt, np.float64)
        ms, mt = src.mean(0), tgt.mean(0)
        xc, yc = src - ms, tgt - mt
        gram = xc.T @ xc
        scale = np.trace(gram) / gram.shape[0]
        lam = alpha * (scale if scale > 0 else 1.0)  # identical source rows (gram 0): the map is W = 0
        w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), xc.T @ yc)
        return cls(ms.astype(np.float32), mt.astype(np.float32), w.astype(np.float32), float(alpha))
