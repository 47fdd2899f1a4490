"""Held-apart generators of paired embeddings: two families of a different design than ``gap.synthetic``.

``diffgap_search.gap.synthetic`` (the project's own generator, used by ``synthetic_gap.py`` and the unit
tests) adds a private random-Fourier term to a shared linear map of a latent concept. DiffGAP's defaults
were chosen on it, so a claim about DiffGAP must also hold on worlds it was never tuned on. Both families
here draw clips with ``captions`` captions each (and one "video" per clip, a third modality) and return
rows ready for ``train_bridge`` / ``evaluate_methods``:

- ``"mlp"`` (additive Gaussian noise, nonlinear map): a latent ``z ~ N(0, I_k)`` per clip; modality m's
  embedding is ``normalise(W2_m gelu(nonlin * W1_m z + b1_m) / nonlin + offset_m + noise * eps)``: a random
  one-hidden-layer network per modality, so the gap between two modalities is the composition of one
  network with the other's inverse. ``nonlin`` sets how far from linear it is (small: nearly linear).
  Captions jitter the latent (``caption_jitter``), as paraphrases do.
- ``"events"`` (not additive Gaussian): a clip is a bag of 1 to 4 sound events out of a vocabulary of 256,
  each with a log-normal loudness. Audio sums the events' prototypes weighted by loudness, plus an
  interaction vector for every pair of co-occurring events (a masking / mixing effect no linear map of the
  bag can predict) and a background drawn from a few clusters. A caption names each event with probability
  ``0.9`` for the loudest and less for quieter ones (captions miss quiet events), with no loudness; the
  text embedding sums the named events' text prototypes through a saturating nonlinearity, and its noise
  is Student-t (heavy tails: odd captions). ``nonlin`` scales the interaction terms, ``noise`` the tails.
  Video sees the events (all of them, with a per-event visibility) but not the background.

Everything is seeded: ``World(family, dim, seed)`` fixes the maps; ``sample(n, seed, captions)`` the clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAMILIES = ("mlp", "events")


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


@dataclass(frozen=True)
class WorldSpec:
    """One world of a family: ``dim`` D, ``nonlin`` (how nonlinear the gap is), ``noise`` (its scale),
    ``caption_jitter`` (latent noise between a clip's captions; ``"mlp"`` only)."""

    family: str = "mlp"
    dim: int = 64
    nonlin: float = 1.5
    noise: float = 0.3
    caption_jitter: float = 0.3
    private: float = 0.7  # ``"mlp"``: how much each modality's network differs from the shared one
    # ``"mlp"``: None, the noise per coordinate is ``noise`` at every D; R (e.g. 64), it is ``noise * sqrt(D / R)``.
    # The signal lies on a LATENT-dimensional manifold and its total energy grows with D while the noise along
    # that manifold stays ``noise`` per direction, so with None the signal-to-noise ratio where it matters grows
    # as D (the D = 256 cells of 2026-12-05 were saturated: every method at 99-100 R@1); with R it stays D = R's.
    noise_ref_dim: int | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")


@dataclass(frozen=True)
class Clips:
    """``audio (n, D)``, ``video (n, D)``, ``captions (n, C, D)`` float32 unit rows of n clips."""

    audio: np.ndarray
    video: np.ndarray
    captions: np.ndarray

    def text_pairs(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``({"audio", "text"}: (n C, D) float32, groups (n C,) int64)``: one pair per caption."""
        n, c, d = self.captions.shape
        audio = np.repeat(self.audio, c, axis=0)
        return {"audio": audio, "text": self.captions.reshape(n * c, d)}, np.repeat(np.arange(n), c)

    def video_pairs(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``({"audio", "video"}: (n, D) float32, groups (n,) int64)``: one pair per clip."""
        return {"audio": self.audio, "video": self.video}, np.arange(len(self.audio))


class World:
    """The random maps of one world (fixed by ``seed``); ``sample`` draws clips from it."""

    LATENT = 16
    VOCAB = 128
    ATTR = 8

    def __init__(self, spec: WorldSpec, seed: int) -> None:
        self.spec = spec
        rng = np.random.default_rng(10_007 * seed + 17)
        d, k = spec.dim, self.LATENT
        if spec.family == "mlp":
            h = 4 * d
            w1, w2 = rng.standard_normal((k, h)) / np.sqrt(k), rng.standard_normal((h, d)) / np.sqrt(h)
            # One shared network, perturbed per modality: raw cosine works a little, as a contrastive model's
            p = spec.private
            self.nets = {m: (w1 + p * rng.standard_normal((k, h)) / np.sqrt(k), rng.uniform(-1, 1, h),
                             w2 + p * rng.standard_normal((h, d)) / np.sqrt(h)) for m in ("audio", "text", "video")}
            self.offsets = {m: 1.0 * o / np.linalg.norm(o) * np.sqrt(d) / 4 for m, o in
                            zip(("audio", "text", "video"), rng.standard_normal((3, d)))}
        else:
            v = self.VOCAB
            self.proto = {m: rng.standard_normal((v, d)) / np.sqrt(d) for m in ("audio", "text", "video")}
            self.pair_key = rng.standard_normal((v, 32))  # interactions: outer features of two events
            self.pair_map = rng.standard_normal((32, d)) / np.sqrt(32 * d)
            self.backgrounds = rng.standard_normal((6, d)) / np.sqrt(d)
            self.offsets = {m: 0.6 * o / np.linalg.norm(o) for m, o in
                            zip(("audio", "text", "video"), rng.standard_normal((3, d)))}
            self.visible = rng.uniform(0.3, 1.0, v)
            # each event instance has an attribute (pitch, timbre, distance): linear in audio, worded in text
            self.attr = {m: rng.standard_normal((self.ATTR, d)) / np.sqrt(self.ATTR * d) for m in ("audio", "text", "video")}

    # ------------------------------------------------------------------ mlp family
    def _mlp(self, z: np.ndarray, m: str, rng: np.random.Generator) -> np.ndarray:
        w1, b1, w2 = self.nets[m]
        a = self.spec.nonlin
        x = _gelu(a * (z @ w1) + b1) @ w2 / max(a, 1e-3) + self.offsets[m]
        x = x / np.linalg.norm(x, axis=-1, keepdims=True) * np.sqrt(x.shape[-1]) / 2
        ref = self.spec.noise_ref_dim
        noise = self.spec.noise * (np.sqrt(x.shape[-1] / ref) if ref else 1.0)
        return _normalise(x + noise * rng.standard_normal(x.shape))

    # ------------------------------------------------------------------ events family
    def _events(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(n, 4) int64`` event ids (-1 = none), ``(n, 4)`` loudness (0 where none), loudest first, and
        ``(n, 4, ATTR)`` attributes."""
        count = rng.integers(1, 5, n)
        ids = np.full((n, 4), -1, dtype=np.int64)
        loud = np.zeros((n, 4))
        popularity = 1.0 / np.arange(1, self.VOCAB + 1) ** 0.7  # a long tail, as sound tags have
        popularity /= popularity.sum()
        for i in range(n):
            ids[i, : count[i]] = rng.choice(self.VOCAB, count[i], replace=False, p=popularity)
            loud[i, : count[i]] = np.sort(rng.lognormal(0.0, 0.6, count[i]))[::-1]
        return ids, loud, rng.standard_normal((n, 4, self.ATTR))

    def _event_audio(self, ids: np.ndarray, loud: np.ndarray, attr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, d = len(ids), self.spec.dim
        safe = np.maximum(ids, 0)
        x = np.einsum("ne,ned->nd", loud, self.proto["audio"][safe] + attr @ self.attr["audio"])
        a = self.spec.nonlin
        for i in range(4):
            for j in range(i + 1, 4):
                both = (ids[:, i] >= 0) & (ids[:, j] >= 0)
                inter = np.tanh(self.pair_key[safe[:, i]] * self.pair_key[safe[:, j]]) @ self.pair_map
                x += a * both[:, None] * np.sqrt(loud[:, i] * loud[:, j])[:, None] * inter * np.sqrt(d)
        x += 0.5 * self.backgrounds[rng.integers(0, len(self.backgrounds), n)]
        x += self.offsets["audio"] + self.spec.noise * rng.standard_normal((n, d)) / np.sqrt(d)
        return _normalise(x)

    def _event_text(self, ids: np.ndarray, loud: np.ndarray, attr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, d = len(ids), self.spec.dim
        p_named = np.where(ids >= 0, 0.9 * np.minimum(1.0, loud / loud[:, :1]) ** 0.5, 0.0)
        named = rng.random(ids.shape) < p_named
        named[:, 0] |= ~named.any(1)  # a caption names at least the loudest event
        words = np.tanh(2.0 * attr + rng.standard_normal(attr.shape) * 0.3) @ self.attr["text"]
        bag = np.einsum("ne,ned->nd", named.astype(np.float64), self.proto["text"][np.maximum(ids, 0)] + words)
        x = np.tanh(1.5 * bag * np.sqrt(d)) / np.sqrt(d) + self.offsets["text"]
        tails = rng.standard_t(3, (n, d)) / np.sqrt(3.0)
        return _normalise(x + self.spec.noise * tails / np.sqrt(d))

    def _event_video(self, ids: np.ndarray, loud: np.ndarray, attr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, d = len(ids), self.spec.dim
        seen = np.where(ids >= 0, self.visible[np.maximum(ids, 0)] * (rng.random(ids.shape) < 0.8), 0.0)
        look = (attr + self.spec.nonlin * (np.abs(attr) - 0.8)) @ self.attr["video"]
        x = np.einsum("ne,ned->nd", seen, self.proto["video"][np.maximum(ids, 0)] + look)
        x = np.sign(x) * np.abs(x) ** 0.7 + self.offsets["video"]
        return _normalise(x + self.spec.noise * rng.laplace(0, 1, (n, d)) / np.sqrt(2 * d))

    # ------------------------------------------------------------------ public
    def sample(self, n: int, seed: int, captions: int = 5) -> Clips:
        """``n`` clips, ``captions`` captions each (deterministic for ``seed``)."""
        rng = np.random.default_rng(seed)
        d = self.spec.dim
        if self.spec.family == "mlp":
            z = rng.standard_normal((n, self.LATENT))
            zc = z[:, None, :] + self.spec.caption_jitter * rng.standard_normal((n, captions, self.LATENT))
            text = self._mlp(zc.reshape(-1, self.LATENT), "text", rng).reshape(n, captions, d)
            return Clips(self._mlp(z, "audio", rng), self._mlp(z, "video", rng), text)
        ids, loud, attr = self._events(n, rng)
        text = np.stack([self._event_text(ids, loud, attr, rng) for _ in range(captions)], axis=1)
        return Clips(self._event_audio(ids, loud, attr, rng), self._event_video(ids, loud, attr, rng), text)


__all__ = ["FAMILIES", "Clips", "World", "WorldSpec"]
