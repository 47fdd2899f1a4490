"""Synthetic paired embeddings with a known modality gap (for the benchmark and the tests).

Each pair comes from one latent concept ``z ~ N(0, I_k)``. Modality m's embedding is

    x_m = normalise( L z + strength * sin(freq * z W_m + b_m) V_m + offset_m + noise * eps_m )

``L`` is a random linear map shared by both modalities (so raw cosine works a little, like a
contrastive model's alignment, and z can be read linearly from either side); the random-Fourier term
is private to each modality: a nonlinear, non-monotonic function of z that a linear map from the other
modality cannot predict, but a nonlinear model can (recover z, then compute the term). ``offset_m`` is
a constant vector (the modality gap); ``eps_m`` independent Gaussian noise. Ground truth: row i of one
modality pairs with row i of the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GapSpec:
    """Shape and difficulty of the synthetic data."""

    dim: int = 64
    latent_dim: int = 8
    features: int = 64
    strength: float = 1.0
    freq: float = 1.5
    offset: float = 1.0
    noise: float = 0.15


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class GapWorld:
    """The random maps of one synthetic world (fixed by ``seed``); ``sample`` draws pairs from it."""

    def __init__(self, spec: GapSpec, seed: int) -> None:
        self.spec = spec
        rng = np.random.default_rng(seed)
        k, d, f = spec.latent_dim, spec.dim, spec.features
        self.shared = rng.standard_normal((k, d)) / np.sqrt(k)
        self.private = {
            m: (
                rng.standard_normal((k, f)) * spec.freq,
                rng.uniform(0.0, 2.0 * np.pi, f),
                rng.standard_normal((f, d)) * np.sqrt(2.0 / f),
            )
            for m in ("a", "b")
        }
        # Offsets of norm offset * sqrt(D): comparable to the shared signal, whose rows have norm ~ sqrt(D).
        self.offsets = {
            m: spec.offset * np.sqrt(d) * o / np.linalg.norm(o) for m, o in zip("ab", rng.standard_normal((2, d)))
        }

    def embed(self, z: np.ndarray, side: str, rng: np.random.Generator) -> np.ndarray:
        """``(N, k)`` latents -> ``(N, D) float32`` unit rows of modality ``side`` ("a" or "b")."""
        w, b, v = self.private[side]
        s = self.spec
        x = z @ self.shared + s.strength * np.sin(z @ w + b) @ v + self.offsets[side]
        return _normalise(x + s.noise * rng.standard_normal(x.shape))

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` pairs ``(a, b)``, each ``(n, D) float32`` L2-normalised; row i of ``a`` pairs with row i of ``b``."""
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.spec.latent_dim))
        return self.embed(z, "a", rng), self.embed(z, "b", rng)
