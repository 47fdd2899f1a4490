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
from typing import Literal

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

    def sample_clips(
        self, n: int, seed: int, *, captions: int = 1, windows: int = 1, caption_jitter: float = 0.0,
        window_jitter: float = 0.0,
    ) -> ClipSample:
        """``n`` clips of ``windows`` audio windows and ``captions`` captions (see the module docstring).

        With one of each and no jitter it draws exactly what ``sample(n, seed)`` does.
        """
        rng = np.random.default_rng(seed)
        k, d = self.spec.latent_dim, self.spec.dim
        z = rng.standard_normal((n, k))

        def jittered(count: int, jitter: float) -> np.ndarray:
            zs = np.repeat(z[:, None, :], count, axis=1)
            return zs + jitter * rng.standard_normal(zs.shape) if jitter > 0 else zs

        audio = self.embed(jittered(windows, window_jitter).reshape(-1, k), "a", rng).reshape(n, windows, d)
        text = self.embed(jittered(captions, caption_jitter).reshape(-1, k), "b", rng).reshape(n, captions, d)
        return ClipSample(audio, text)

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` pairs ``(a, b)``, each ``(n, D) float32`` L2-normalised; row i of ``a`` pairs with row i of ``b``."""
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((n, self.spec.latent_dim))
        return self.embed(z, "a", rng), self.embed(z, "b", rng)


Granularity = Literal["window", "clip-mean"]


@dataclass(frozen=True)
class ClipSample:
    """``windows (n, W, D) float32`` audio windows and ``captions (n, C, D) float32`` captions of n clips."""

    windows: np.ndarray
    captions: np.ndarray

    def pairs(self, granularity: Granularity = "window") -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Pair rows and their groups: ``({"audio": (P, D), "text": (P, D)}, groups (P,) int64 clip index)``.

        ``"window"``: one pair per (window, caption) of a clip, P = n W C; ``"clip-mean"``: one pair per
        (normalised mean of the clip's windows, caption), P = n C.
        """
        n, _, d = self.windows.shape
        c = self.captions.shape[1]
        if granularity == "clip-mean":
            audio = _normalise(self.windows.mean(axis=1))[:, None, :]
        elif granularity == "window":
            audio = self.windows
        else:
            raise ValueError(f"granularity must be 'window' or 'clip-mean', got {granularity!r}")
        per = audio.shape[1]
        a = np.repeat(audio[:, :, None, :], c, axis=2).reshape(-1, d)
        t = np.repeat(self.captions[:, None, :, :], per, axis=1).reshape(-1, d)
        groups = np.repeat(np.arange(n, dtype=np.int64), per * c)
        return {"audio": a.astype(np.float32), "text": t.astype(np.float32)}, groups
