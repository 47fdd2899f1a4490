"""Training a DiffGAP bridge on a small synthetic gap: loss falls, retrieval beats raw cosine, sampling is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from diffgap_search.errors import BridgeUnavailableError, UsageError
from diffgap_search.gap.bridge import Bridge, SampleConfig
from diffgap_search.gap.directions import Direction
from diffgap_search.gap.metrics import retrieval_metrics
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, TrainReport, train_bridge

FPS = {"audio": "a" * 64, "text": "a" * 64, "video": "c" * 64}
SMALL = TrainConfig(epochs=8, batch_size=128, hidden=128, depth=2, lr=2e-3, warmup_steps=10, seed=0)


@pytest.fixture(scope="module")
def world() -> GapWorld:
    return GapWorld(GapSpec(dim=32, latent_dim=4, features=32), seed=0)


@pytest.fixture(scope="module")
def trained(world: GapWorld) -> tuple[Bridge, TrainReport, list[tuple[int, int, float, float]]]:
    a, b = world.sample(2000, seed=1)
    calls: list[tuple[int, int, float, float]] = []
    bridge, report = train_bridge(
        {"audio": a, "text": b}, cfg=SMALL, encoder_fingerprints=FPS, on_step=lambda *args: calls.append(args)
    )
    return bridge, report, calls


def test_loss_falls_and_progress_is_reported(trained: tuple) -> None:
    _, report, calls = trained
    assert report.n_train == {"audio-text": 1800} and report.n_val == {"audio-text": 200}
    assert report.steps == len(calls) == 8 * 15
    assert [c[0] for c in calls[::15]] == list(range(8))
    assert [c[1] for c in calls] == list(range(report.steps))
    assert all(c[3] > 0 for c in calls)
    assert report.loss_history[-1] < 0.6 * report.loss_history[0]
    assert report.num_parameters == sum(p.numel() for p in trained[0].denoiser.parameters())


def test_bridged_retrieval_beats_raw_cosine_on_held_out_pairs(trained: tuple, world: GapWorld) -> None:
    bridge, report, _ = trained
    ta, tb = world.sample(300, seed=2)
    raw_t2a = retrieval_metrics(tb @ ta.T)["R@1"]
    raw_a2t = retrieval_metrics(ta @ tb.T)["R@1"]
    t2a = retrieval_metrics(bridge.apply(tb, "text", "audio") @ ta.T)["R@1"]
    a2t = retrieval_metrics(bridge.apply(ta, "audio", "text") @ tb.T)["R@1"]
    assert t2a > raw_t2a + 12, (raw_t2a, t2a)
    assert a2t > raw_a2t + 12, (raw_a2t, a2t)
    assert set(report.val) == {"text->audio", "audio->text"}
    assert report.val["text->audio"]["fused_R@1"] >= report.val["text->audio"]["raw_R@1"]


def test_apply_shapes_norms_and_bit_determinism(trained: tuple, world: GapWorld) -> None:
    bridge, _, _ = trained
    q, _ = world.sample(50, seed=3)
    out1 = bridge.apply(q, "audio", "text")
    out2 = bridge.apply(q.copy(), "audio", "text")
    assert out1.dtype == np.float32 and out1.shape == (50, 32)
    assert np.allclose(np.linalg.norm(out1, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(out1, out2)
    # One row alone gives the same vector as inside a batch (to float rounding: kernels may differ).
    assert np.allclose(bridge.apply(q[7:8], "audio", "text")[0], out1[7], atol=1e-5)
    guided = SampleConfig(steps=4, guidance_scale=2.0, noise_scale=1.0, seed=5)
    g1, g2 = bridge.apply(q, "audio", "text", sample=guided), bridge.apply(q, "audio", "text", sample=guided)
    assert np.array_equal(g1, g2) and not np.allclose(g1, out1)
    assert bridge.apply(q[:0], "audio", "text").shape == (0, 32)


def test_unserved_direction_is_refused(trained: tuple) -> None:
    bridge, _, _ = trained
    assert bridge.directions == (Direction.AUDIO_GIVEN_TEXT, Direction.TEXT_GIVEN_AUDIO)
    with pytest.raises(BridgeUnavailableError, match="not video -> audio"):
        bridge.apply(np.ones((1, 32), np.float32), "video", "audio")
    with pytest.raises(ValueError):
        bridge.apply(np.ones((1, 16), np.float32), "text", "audio")


def test_training_is_reproducible_and_handles_missing_modalities(world: GapWorld) -> None:
    a, b = world.sample(400, seed=4)
    _, v = world.sample(400, seed=5)
    b[:100] = np.nan  # no caption for the first 100 clips
    v[300:] = np.nan  # no video for the last 100
    cfg = TrainConfig(epochs=1, batch_size=64, hidden=32, depth=1, seed=3)
    pairs = {"audio": a, "text": b, "video": v}
    b1, r1 = train_bridge(pairs, cfg=cfg, encoder_fingerprints=FPS)
    b2, _ = train_bridge(pairs, cfg=cfg, encoder_fingerprints=FPS)
    assert r1.n_train == {"audio-text": 270, "audio-video": 270}
    assert r1.n_val == {"audio-text": 30, "audio-video": 30}
    assert set(b1.directions) == set(Direction)
    assert b1.fingerprint == b2.fingerprint
    assert np.array_equal(b1.apply(a[:5], "audio", "video"), b2.apply(a[:5], "audio", "video"))


def test_bad_pairs_are_refused(world: GapWorld) -> None:
    a, b = world.sample(100, seed=6)
    cfg = TrainConfig(epochs=1, hidden=16, depth=1)
    with pytest.raises(UsageError, match="needs audio"):
        train_bridge({"text": b}, cfg=cfg, encoder_fingerprints=FPS)
    with pytest.raises(UsageError, match="'text' or 'video'"):
        train_bridge({"audio": a}, cfg=cfg, encoder_fingerprints=FPS)
    with pytest.raises(UsageError, match="at least 16 audio-text pairs"):
        train_bridge({"audio": a[:10], "text": b[:10]}, cfg=cfg, encoder_fingerprints=FPS)
    with pytest.raises(ValueError):
        train_bridge({"audio": a, "text": b[:50]}, cfg=cfg, encoder_fingerprints=FPS)


def test_evaluate_methods_reports_every_method_both_ways(trained: tuple, world: GapWorld) -> None:
    from diffgap_search.gap.evaluation import METHODS, evaluate_methods, format_table

    bridge, _, _ = trained
    a, b = world.sample(2000, seed=1)  # the training pairs (baselines are fitted on them)
    ta, tb = world.sample(300, seed=2)
    ev = evaluate_methods({"audio": a, "text": b}, {"audio": ta, "text": tb, "video": ta}, bridge)
    assert ev["n_test"] == {"audio-text": 300}  # no video in train_pairs / bridge: skipped
    res = ev["results"]
    assert set(res) == {"text->audio", "audio->text"}
    for key in res:
        assert tuple(res[key]) == METHODS
        assert set(res[key]["raw"]) == {"R@1", "R@5", "R@10", "median_rank", "mAP@10"}
        assert res[key]["diffgap"]["R@1"] > res[key]["raw"]["R@1"] + 12
        assert res[key]["diffgap"]["R@1"] > res[key]["mean_shift"]["R@1"]
        assert res[key]["mean_shift"]["R@1"] != res[key]["raw"]["R@1"]
    assert format_table(ev).count("\n") == 2 + 2 * len(METHODS) - 1
