"""Mean shift (and its trap), ridge, Procrustes and the fusion rule."""

from __future__ import annotations

import numpy as np
import pytest

from diffgap_search.gap.baselines import LinearMap, MeanShift, l2n
from diffgap_search.gap.fusion import (
    FusionConfig,
    fuse,
    fused_unit_scores,
    raw_term_served,
    tune_fusion,
)
from diffgap_search.gap.metrics import retrieval_metrics, true_ranks
from diffgap_search.gap.protocol import Task, build_side
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.train_config import TrainConfig


def _gapped(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 16))
    off_a, off_b = 3 * rng.standard_normal(16), 3 * rng.standard_normal(16)
    return l2n(z + off_a + 0.3 * rng.standard_normal(z.shape)), l2n(z + off_b + 0.3 * rng.standard_normal(z.shape))


def test_the_trap_unnormalised_shift_changes_nothing() -> None:
    q, g = _gapped()
    shift = MeanShift.fit(q, g)
    plain = q @ g.T
    shifted = q @ (g - shift.mu_tgt).T  # constant per query: same ranking
    assert (true_ranks(plain) == true_ranks(shifted)).all()


def test_mean_shift_changes_ranking_and_helps() -> None:
    q, g = _gapped()
    shift = MeanShift.fit(q, g)
    raw = retrieval_metrics(q @ g.T)["R@1"]
    centred = shift.centre_query(q) @ shift.centre_gallery(g).T
    shifted = shift.shift_query(q) @ g.T
    assert (true_ranks(centred) != true_ranks(q @ g.T)).any()
    assert retrieval_metrics(centred)["R@1"] > raw + 20
    assert retrieval_metrics(shifted)["R@1"] > raw + 5
    assert np.allclose(np.linalg.norm(shift.centre_query(q), axis=1), 1, atol=1e-5)


def test_procrustes_recovers_a_rotation() -> None:
    rng = np.random.default_rng(1)
    rot, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    src = rng.standard_normal((200, 8))
    tgt = src @ rot
    lm = LinearMap.fit_procrustes(src, tgt)
    assert np.allclose(lm.weight, rot, atol=1e-5)
    assert retrieval_metrics(lm(src) @ l2n(tgt).T)["R@1"] == 100.0


def test_ridge_recovers_a_linear_map_and_beats_raw_on_synthetic_gap() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 8))
    src = rng.standard_normal((300, 8))
    lm = LinearMap.fit_ridge(src, src @ w, alphas=(1e-6,))
    assert np.allclose(lm.weight, w, atol=1e-3)
    world = GapWorld(GapSpec(dim=32, latent_dim=4), seed=0)
    a, b = world.sample(2000, 1)
    ta, tb = world.sample(300, 2)
    ridge = LinearMap.fit_ridge(b, a)
    assert retrieval_metrics(ridge(tb) @ ta.T)["R@1"] > retrieval_metrics(tb @ ta.T)["R@1"] + 20


def test_ridge_picks_alpha_on_the_given_holdout_with_the_given_score() -> None:
    rng = np.random.default_rng(4)
    src, tgt = rng.standard_normal((100, 6)), rng.standard_normal((100, 6))
    holdout = np.arange(100) % 4 == 0
    seen: list[tuple[float, int]] = []

    def score(m: LinearMap, rows: np.ndarray) -> float:
        seen.append((float(m.alpha), int(rows.sum())))
        return -abs(np.log10(m.alpha) - np.log10(0.1))  # best at 0.1

    fitted = LinearMap.fit_ridge(src, tgt, holdout=holdout, score=score)
    assert seen == [(a, 25) for a in (1e-3, 1e-2, 1e-1, 1.0, 10.0)]
    assert fitted.alpha == 0.1
    assert np.array_equal(fitted.weight, LinearMap.ridge(src, tgt, 0.1).weight)  # refitted on every pair
    one_row = np.zeros(100, dtype=bool)
    one_row[0] = True
    assert LinearMap.fit_ridge(src, tgt, holdout=one_row, score=score).alpha == 0.1  # too few: the middle alpha


def test_fusion_rule() -> None:
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((50, 50)).astype(np.float32)
    good = (np.eye(50) + 0.1 * rng.standard_normal((50, 50))).astype(np.float32)
    cfg = FusionConfig(1.0, 1.0, 2.0)
    assert np.allclose(fuse(noise, good, good, cfg), (noise + 3 * good) / 4, atol=1e-6)
    assert np.allclose(fuse(None, good, noise, cfg), (good + 2 * noise) / 3, atol=1e-6)  # raw dropped, weight too
    only_raw = fuse(None, good, noise, FusionConfig(1.0, 0.0, 0.0))  # the dropped term alone was weighted:
    assert np.array_equal(only_raw, good)  # the bridged query serves alone, as search/terms.py serves it
    with pytest.raises(ValueError):
        FusionConfig(-1.0, 1.0, 1.0)
    assert raw_term_served("text", "audio") and raw_term_served("audio", "text")
    assert not raw_term_served("video", "audio") and not raw_term_served("audio", "video")


def _one_window_task(qm: str, gm: str, n: int) -> Task:
    eye = np.eye(n, dtype=np.float32)
    return Task(build_side(qm, eye, np.arange(n)), build_side(gm, eye, np.arange(n)))


def test_tuning_picks_the_informative_term_and_never_a_raw_term_search_drops() -> None:
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((50, 50)).astype(np.float32)
    good = (np.eye(50) + 0.1 * rng.standard_normal((50, 50))).astype(np.float32)
    text = _one_window_task("text", "audio", 50)
    tuned = tune_fusion(text, noise, good, noise)
    assert tuned.w_raw + tuned.w_query_bridged + tuned.w_item_bridged == pytest.approx(1.0)
    assert tuned.w_query_bridged >= 0.5
    assert text.metrics(fused_unit_scores(text, noise, good, noise, tuned))["R@1"] == 100.0
    raw_best = tune_fusion(text, good, noise, noise)  # the raw term is served between text and audio
    assert raw_best.w_raw >= 0.5
    assert text.metrics(fused_unit_scores(text, good, noise, noise, raw_best))["R@1"] == 100.0
    video = _one_window_task("video", "audio", 50)
    assert tune_fusion(video, good, noise, noise).w_raw == 0.0  # CLIP frames: the raw cosine is never served


def test_a_shared_video_audio_space_cavp_gets_its_raw_term_tuned_and_served() -> None:
    rng = np.random.default_rng(4)
    noise = rng.standard_normal((50, 50)).astype(np.float32)
    good = (np.eye(50) + 0.1 * rng.standard_normal((50, 50))).astype(np.float32)
    assert raw_term_served("video", "audio", shared_space=True)
    cavp = Task(*(build_side(m, np.eye(50, dtype=np.float32), np.arange(50)) for m in ("video", "audio")),
                shared_space=True)
    tuned = tune_fusion(cavp, good, noise, noise)
    assert tuned.w_raw >= 0.5
    assert cavp.metrics(fused_unit_scores(cavp, good, noise, noise, tuned))["R@1"] == 100.0
    with_raw = fused_unit_scores(cavp, good, noise, noise, FusionConfig(0.5, 0.5, 0.0))
    assert np.allclose(with_raw, (good + noise) / 2, atol=1e-6)  # the raw term is part of the served score


def test_words_from_a_text_encoder_of_their_own_get_no_raw_term_tuned_or_served() -> None:
    """WordLlama beside aisfx (``--text-model``): text and audio, yet unrelated spaces. Even where the raw
    cosine would rank perfectly on validation, the weight goes to the terms the searcher serves."""
    rng = np.random.default_rng(6)
    noise = rng.standard_normal((50, 50)).astype(np.float32)
    good = (np.eye(50) + 0.1 * rng.standard_normal((50, 50))).astype(np.float32)
    assert not raw_term_served("text", "audio", separate_space=True)
    assert not raw_term_served("text", "audio", shared_space=True, separate_space=True)
    words = Task(*(build_side(m, np.eye(50, dtype=np.float32), np.arange(50)) for m in ("text", "audio")),
                 separate_space=True)
    tuned = tune_fusion(words, good, noise, good.T.copy())
    assert tuned.w_raw == 0.0 and tuned.w_query_bridged + tuned.w_item_bridged == pytest.approx(1.0)
    assert tuned.w_item_bridged >= 0.5  # the one served term that ranks well
    served = fused_unit_scores(words, good, noise, noise, FusionConfig(0.5, 0.5, 0.0))
    assert np.allclose(served, noise, atol=1e-6)  # the raw term's weight is left out, as search drops it
    with pytest.raises(ValueError, match="separate_spaces"):
        TrainConfig(shared_spaces=("text",), separate_spaces=("text",))
    assert TrainConfig(separate_spaces=("text",)).to_dict()["separate_spaces"] == ["text"]


def test_fused_unit_scores_follow_the_searchers_order() -> None:
    """Per term the max over the query's windows, then the weighted mean, then the max over an item's windows."""
    rng = np.random.default_rng(5)
    q = build_side("video", rng.standard_normal((4, 3)).astype(np.float32), np.array([0, 0, 1, 1]))
    g = build_side("audio", rng.standard_normal((5, 3)).astype(np.float32), np.array([0, 0, 1, 1, 1]))
    task = Task(q, g)
    raw, qb, ib = (rng.standard_normal((4, 5)).astype(np.float32) for _ in range(3))
    cfg = FusionConfig(0.5, 0.2, 0.3)
    assert q.starts.tolist() == [0, 2] and g.starts.tolist() == [0, 2]
    qsets, gsets = [np.arange(0, 2), np.arange(2, 4)], [np.arange(0, 2), np.arange(2, 5)]
    expected = np.array([[max((0.2 * qb[qs][:, w].max() + 0.3 * ib[qs][:, w].max()) / 0.5 for w in gs)
                          for gs in gsets] for qs in qsets])  # video: no raw term, its weight left out
    assert np.allclose(fused_unit_scores(task, raw, qb, ib, cfg), expected, atol=1e-6)
