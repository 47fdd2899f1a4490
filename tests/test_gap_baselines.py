"""Mean shift (and its trap), ridge, Procrustes and the fusion rule."""

from __future__ import annotations

import numpy as np
import pytest

from diffgap_search.gap.baselines import LinearMap, MeanShift, l2n
from diffgap_search.gap.fusion import FusionConfig, fuse, tune_fusion
from diffgap_search.gap.metrics import retrieval_metrics, true_ranks
from diffgap_search.gap.synthetic import GapSpec, GapWorld


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


def test_fusion_rule_and_tuning() -> None:
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((50, 50))
    good = np.eye(50) + 0.1 * rng.standard_normal((50, 50))
    cfg = FusionConfig(1.0, 1.0, 2.0)
    assert np.allclose(fuse(noise, good, good, cfg), (noise + 3 * good) / 4, atol=1e-6)
    tuned = tune_fusion(noise, good, noise)
    assert tuned.w_raw + tuned.w_query_bridged + tuned.w_item_bridged == pytest.approx(1.0)
    assert tuned.w_query_bridged >= 0.5
    assert retrieval_metrics(fuse(noise, good, noise, tuned))["R@1"] == 100.0
    with pytest.raises(ValueError):
        FusionConfig(-1.0, 1.0, 1.0)
