"""Training-free and linear fixes of the modality gap, fitted on the same training pairs as DiffGAP.

All maps take and return ``(N, D) float32`` L2-normalised rows. The mean-shift trap (PAPER.md):
subtracting one constant vector from every gallery vector shifts all of a query's scores equally and
changes no ranking, so every map here re-normalises after shifting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    """An affine map ``y = (x - mu_src) W + mu_tgt`` followed by re-normalisation; ``W: (D, D) float32``."""

    mu_src: np.ndarray
    mu_tgt: np.ndarray
    weight: np.ndarray

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """``(N, D) -> (N, D) float32`` L2-normalised, in the target modality."""
        return l2n((np.asarray(q, np.float32) - self.mu_src) @ self.weight + self.mu_tgt)

    @classmethod
    def fit_procrustes(cls, src: np.ndarray, tgt: np.ndarray) -> LinearMap:
        """Orthogonal Procrustes on centred pairs: ``W = U V^T`` from ``svd(Xc^T Yc)``."""
        ms, mt = MeanShift.fit(src, tgt).mu_src, MeanShift.fit(src, tgt).mu_tgt
        xc, yc = np.asarray(src, np.float64) - ms, np.asarray(tgt, np.float64) - mt
        u, _, vt = np.linalg.svd(xc.T @ yc)
        return cls(ms, mt, (u @ vt).astype(np.float32))

    @classmethod
    def fit_ridge(
        cls, src: np.ndarray, tgt: np.ndarray, alphas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0), seed: int = 0
    ) -> LinearMap:
        """Ridge regression on centred pairs; ``alpha`` (relative to the mean eigenvalue) picked on a 20 % holdout
        of the given training pairs by R@1, then refitted on all of them."""
        from .metrics import true_ranks

        src, tgt = np.asarray(src, np.float64), np.asarray(tgt, np.float64)
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(src))
        n_val = max(1, len(src) // 5)
        val, fit = perm[:n_val], perm[n_val:]
        best = max(
            alphas,
            key=lambda a: (
                np.mean(true_ranks(cls._ridge(src[fit], tgt[fit], a)(src[val]) @ l2n(tgt[val]).T) == 1),
                -a,
            ),
        )
        return cls._ridge(src, tgt, best)

    @classmethod
    def _ridge(cls, src: np.ndarray, tgt: np.ndarray, alpha: float) -> LinearMap:
        ms, mt = src.mean(0), tgt.mean(0)
        xc, yc = src - ms, tgt - mt
        gram = xc.T @ xc
        lam = alpha * np.trace(gram) / gram.shape[0]
        w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), xc.T @ yc)
        return cls(ms.astype(np.float32), mt.astype(np.float32), w.astype(np.float32))
