"""Retrieval metrics under the standard protocol: hand-made score matrices with known answers, perfect and
unrelated embeddings with five captions per clip."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffgap_search.gap.metrics import relevant_ranks, retrieval_metrics, true_ranks
from diffgap_search.gap.protocol import tasks_for


def test_identity_is_perfect() -> None:
    m = retrieval_metrics(np.eye(5))
    assert m == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0, "median_rank": 1.0, "mAP@10": 100.0}


def test_known_ranks() -> None:
    sim = np.array([[0.9, 0.1, 0.2], [0.8, 0.5, 0.1], [0.3, 0.7, 0.6]])
    assert true_ranks(sim).tolist() == [1, 2, 2]
    m = retrieval_metrics(sim)
    assert m["R@1"] == pytest.approx(100 / 3)
    assert m["R@5"] == 100.0
    assert m["median_rank"] == 2.0
    assert m["mAP@10"] == pytest.approx(100 * (1 + 0.5 + 0.5) / 3)


def test_ties_with_wrong_items_count_against_the_truth() -> None:
    """A method scoring everything equal (a bridge collapsed to one vector) ranks the truth last, not first."""
    assert true_ranks(np.zeros((4, 4))).tolist() == [4, 4, 4, 4]
    assert retrieval_metrics(np.zeros((4, 4)))["R@1"] == 0.0


def test_rank_beyond_ten_scores_zero_ap() -> None:
    n = 12
    sim = np.eye(n)
    sim[0] = np.arange(n, 0, -1) / n  # query 0: the truth (column 0) is the best ...
    sim[0, 0] = -1.0  # ... until it is the worst: rank 12
    ranks = true_ranks(sim)
    assert ranks[0] == 12 and (ranks[1:] == 1).all()
    m = retrieval_metrics(sim)
    assert m["R@10"] == pytest.approx(100 * 11 / 12)
    assert m["mAP@10"] == pytest.approx(100 * 11 / 12)
    assert m["median_rank"] == 1.0


def test_more_items_than_queries() -> None:
    sim = np.array([[0.5, 0.9, 0.1, 0.2], [0.0, 0.4, 0.3, 0.8]])  # query 0: rank 2; query 1: rank 2
    assert true_ranks(sim).tolist() == [2, 2]
    with pytest.raises(ValueError):
        true_ranks(sim.T)


# Three clips A, B, C (labels 0, 1, 2); captions a1 a2 (A), b1 b2 (B), c1 (C).
CAPTION_LABELS = np.array([0, 0, 1, 1, 2])
CLIP_LABELS = np.array([0, 1, 2])
AUDIO_TO_TEXT = np.array([
    #  a1   a2   b1   b2   c1
    [0.9, 0.3, 0.5, 0.1, 0.2],  # A: a1 first; a2 after b1 -> ranks 1, 3
    [0.6, 0.2, 0.4, 0.4, 0.7],  # B: b1 = b2 tie (never against each other), after c1 and a1 -> ranks 3, 4
    [0.5, 0.5, 0.1, 0.5, 0.5],  # C: c1 tied with a1, a2, b2 -> they all come first -> rank 4
])


def test_hand_computed_audio_to_text_ranks_and_map() -> None:
    ranks, n_rel = relevant_ranks(AUDIO_TO_TEXT, CLIP_LABELS, CAPTION_LABELS)
    assert ranks.tolist() == [[1, 3], [3, 4], [4, 0]]
    assert n_rel.tolist() == [2, 2, 1]
    m = retrieval_metrics(AUDIO_TO_TEXT, CLIP_LABELS, CAPTION_LABELS)
    ap = [(1 / 1 + 2 / 3) / 2, (1 / 3 + 2 / 4) / 2, 1 / 4]  # (1/R) sum_j j / r_j
    assert m == {"R@1": pytest.approx(100 / 3), "R@5": 100.0, "R@10": 100.0, "median_rank": 3.0,
                 "mAP@10": pytest.approx(100 * sum(ap) / 3)}
    assert m["mAP@10"] == pytest.approx(50.0)


def test_hand_computed_text_to_audio_ranks_and_map() -> None:
    sim = AUDIO_TO_TEXT.T  # cosine is symmetric: caption rows against the three clips
    ranks, n_rel = relevant_ranks(sim, CAPTION_LABELS, CLIP_LABELS)
    assert ranks[:, 0].tolist() == [1, 2, 2, 2, 2] and n_rel.tolist() == [1] * 5
    m = retrieval_metrics(sim, CAPTION_LABELS, CLIP_LABELS)
    assert m == {"R@1": 20.0, "R@5": 100.0, "R@10": 100.0, "median_rank": 2.0, "mAP@10": pytest.approx(60.0)}


def test_a_query_without_relevant_item_is_refused() -> None:
    with pytest.raises(ValueError, match="query 1 has no relevant item"):
        relevant_ranks(np.zeros((2, 2)), np.array([0, 5]), np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        relevant_ranks(np.full((1, 1), np.nan), np.array([0]), np.array([0]))


def _clips(n_clips: int, captions: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit audio vectors per clip, repeated once per caption, and clip ids: ``(audio, codes)`` rows + clip audio."""
    rng = np.random.default_rng(seed)
    clip_audio = rng.standard_normal((n_clips, dim)).astype(np.float32)
    clip_audio /= np.linalg.norm(clip_audio, axis=1, keepdims=True)
    codes = np.repeat(np.arange(n_clips), captions)
    return clip_audio[codes], codes, clip_audio


def test_perfect_embeddings_with_five_captions_score_100_both_ways() -> None:
    audio, codes, _ = _clips(200, 5, 32, seed=0)
    text = audio.copy()  # a perfect encoder: every caption lands on its clip's audio vector
    to_audio, to_text = tasks_for("audio", "text", audio, text, codes)
    assert (to_audio.queries.n_units, to_audio.items.n_units) == (200, 200)  # identical captions dedupe
    t2a = to_audio.vector_metrics(to_audio.queries.vectors @ to_audio.items.vectors.T)
    a2t = to_text.vector_metrics(to_text.queries.vectors @ to_text.items.vectors.T)
    assert t2a == a2t == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0, "median_rank": 1.0, "mAP@10": 100.0}
    # Five distinct captions per clip, each nearest its own clip: still perfect, and all five count in mAP.
    text = audio + 0.01 * np.random.default_rng(1).standard_normal(audio.shape).astype(np.float32)
    to_audio, to_text = tasks_for("audio", "text", audio, text, codes)
    assert (to_audio.queries.n_units, to_text.items.n_units) == (1000, 1000)
    assert to_audio.vector_metrics(to_audio.queries.vectors @ to_audio.items.vectors.T)["R@1"] == 100.0
    assert to_text.vector_metrics(to_text.queries.vectors @ to_text.items.vectors.T)["mAP@10"] == 100.0


def test_the_classic_bug_counted_a_clips_duplicated_audio_against_it() -> None:
    """Rows repeating the audio once per caption, ranked by row: the perfect encoder scored R@1 = 0.

    The scores of the repeated rows are built as exact ties (the clips' scores, repeated): ``audio @ audio.T``
    on the repeated rows is not tied to the last bit everywhere — BLAS kernels block the sums differently
    by position, and on an AVX2-only EPYC 0.4 % of the rows came out a rounding above their copies."""
    _, codes, clip_audio = _clips(50, 5, 16, seed=2)
    scores = (clip_audio @ clip_audio.T)[codes][:, codes]
    assert retrieval_metrics(scores)["R@1"] == 0.0


def _within(observed: float, p: float, n: int) -> None:
    """``observed`` percent within 4 binomial standard deviations of ``p`` (two-sided p ~ 6e-5 per check)."""
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(observed / 100 - p) < 4 * sd, (observed, 100 * p, 100 * sd)


def test_unrelated_embeddings_score_chance() -> None:
    """Captions independent of the audio: text->audio hits ~k/G; audio->text, whose 5 relevant captions sit at
    a uniformly random 5-subset of the 5G ranks, hits with 1 - C(5G-5, k) / C(5G, k)."""
    g, c, dim = 200, 5, 64
    audio, codes, _ = _clips(g, c, dim, seed=3)
    rng = np.random.default_rng(4)
    text = rng.standard_normal(audio.shape).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    to_audio, to_text = tasks_for("audio", "text", audio, text, codes)
    t2a = to_audio.vector_metrics(to_audio.queries.vectors @ to_audio.items.vectors.T)
    a2t = to_text.vector_metrics(to_text.queries.vectors @ to_text.items.vectors.T)
    for k in (1, 5, 10):
        _within(t2a[f"R@{k}"], k / g, g * c)
        _within(a2t[f"R@{k}"], 1 - math.comb(g * c - c, k) / math.comb(g * c, k), g)
    assert abs(t2a["median_rank"] - (g + 1) / 2) < 15  # uniform rank on 1..200: sd of the median ~ 3.2
