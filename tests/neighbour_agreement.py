"""Leave-one-out nearest-neighbour category agreement: does a file's nearest neighbour sound like it?

Used by ``tests/test_encoder_aisfx.py`` and ``benchmarks/bench_aisfx.py`` on the CC0 sonic-pi samples
(``tests/real_sounds.py``). Each file is embedded the way the index embeds it: decoded with
``media.audio.load_audio`` at the encoder's rate, cut by ``media.windows.window_audio`` at the index's
default window (10 s, hop 10 s: a shorter file is one repeat-padded window), each window embedded. Two
files are as similar as their best-matching pair of windows (the cosine of the closest window pair),
which is how ``dgsearch query --audio`` scores a file against a query file. Every file is a query in
turn (if its kind has another member) against all other files; precision@k is the share of its k nearest
files of the same kind, averaged over the queries.

The baseline is the classic one: 20 MFCCs (librosa defaults otherwise: 2048-sample FFT, hop 512,
128 mel bands) per window, their mean and standard deviation over time (40 numbers), each dimension
standardised over the collection's windows, compared by cosine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from diffgap_search.config import WindowConfig
from diffgap_search.media.audio import load_audio
from diffgap_search.media.windows import window_audio

Embed = Callable[[np.ndarray], np.ndarray]  # (N, S) float32 windows -> (N, D) float32


def file_windows(paths: Sequence[object], sample_rate: int, window_s: float = 10.0) -> list[np.ndarray]:
    """Each file as the index windows it: ``(n_i, S) float32`` at ``sample_rate``, hop = window."""
    cfg = WindowConfig(window_s=window_s, hop_s=window_s, sample_rate=sample_rate)
    return [window_audio(load_audio(p, sample_rate), cfg).samples for p in paths]  # type: ignore[arg-type]


def embed_files(windows: list[np.ndarray], embed: Embed, batch: int = 16) -> list[np.ndarray]:
    """Embed every file's windows (all files' windows batched together); ``(n_i, D)`` per file."""
    flat = np.concatenate(windows, axis=0)
    vectors = np.concatenate([embed(flat[i : i + batch]) for i in range(0, flat.shape[0], batch)], axis=0)
    bounds = np.cumsum([0] + [w.shape[0] for w in windows])
    return [vectors[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def mfcc_files(windows: list[np.ndarray], sample_rate: int, n_mfcc: int = 20) -> list[np.ndarray]:
    """The MFCC baseline: ``(n_i, 2 * n_mfcc) float32`` unit rows per file (mean and std over time,
    standardised per dimension over all windows of the collection)."""
    import librosa

    stats = []
    for file_windows_ in windows:
        rows = []
        for window in file_windows_:
            mfcc = librosa.feature.mfcc(y=np.asarray(window, dtype=np.float32), sr=sample_rate, n_mfcc=n_mfcc)
            rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
        stats.append(np.asarray(rows, dtype=np.float64))
    every = np.concatenate(stats, axis=0)
    mean, std = every.mean(axis=0), every.std(axis=0)
    std[std == 0] = 1.0
    out = []
    for rows in stats:
        z = (rows - mean) / std
        out.append((z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)).astype(np.float32))
    return out


def file_similarity(vectors: list[np.ndarray]) -> np.ndarray:
    """``(F, F) float64``: the cosine of the closest window pair of each two files (unit-row inputs)."""
    flat = np.concatenate(vectors, axis=0).astype(np.float64)
    owner = np.repeat(np.arange(len(vectors)), [v.shape[0] for v in vectors])
    pair = flat @ flat.T
    sim = np.full((len(vectors), len(vectors)), -np.inf)
    for i in range(len(vectors)):
        rows = pair[owner == i]
        for j in range(len(vectors)):
            sim[i, j] = rows[:, owner == j].max()
    return sim


@dataclass(frozen=True)
class Agreement:
    """Precision@1 and @5 over the queries, and per kind: ``{kind: (queries, p@1, p@5)}``."""

    p_at_1: float
    p_at_5: float
    queries: int
    per_kind: dict[str, tuple[int, float, float]]


def neighbour_agreement(sim: np.ndarray, kinds: Sequence[str]) -> Agreement:
    """Leave-one-out precision@1/@5 of ``sim`` (higher = closer); ties go to the lower file index."""
    labels = np.asarray(kinds)
    hits1: dict[str, list[float]] = {}
    hits5: dict[str, list[float]] = {}
    for i, kind in enumerate(labels):
        if (labels == kind).sum() < 2:
            continue
        scores = np.delete(sim[i], i)
        others = np.delete(labels, i)
        order = np.argsort(-scores, kind="stable")
        same = others[order] == kind
        hits1.setdefault(str(kind), []).append(float(same[0]))
        hits5.setdefault(str(kind), []).append(float(same[:5].mean()))
    all1 = [h for v in hits1.values() for h in v]
    all5 = [h for v in hits5.values() for h in v]
    per_kind = {k: (len(hits1[k]), float(np.mean(hits1[k])), float(np.mean(hits5[k]))) for k in sorted(hits1)}
    return Agreement(float(np.mean(all1)), float(np.mean(all5)), len(all1), per_kind)
