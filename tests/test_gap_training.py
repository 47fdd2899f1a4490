"""Training a DiffGAP bridge on a small synthetic gap: loss falls, retrieval beats raw cosine, sampling is
deterministic, splits are by group, batches never repeat a pair, the baselines are fitted on the training pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffgap_search.errors import BridgeUnavailableError, UsageError
from diffgap_search.gap.baselines import LinearMap, MeanShift
from diffgap_search.gap.bridge import Bridge, SampleConfig
from diffgap_search.gap.diffusion import info_nce
from diffgap_search.gap.directions import Direction, Modality
from diffgap_search.gap.groups import audio_groups, group_keys, validation_mask
from diffgap_search.gap.metrics import retrieval_metrics
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, TrainReport, train_bridge
from diffgap_search.gap.training_data import Batcher, PairSet

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


def test_loss_falls_and_progress_is_reported(trained: tuple, world: GapWorld) -> None:
    _, report, calls = trained
    a, _ = world.sample(2000, seed=1)
    n_val = int(validation_mask(audio_groups(a), SMALL.val_fraction).sum())  # one group per distinct audio row
    assert report.n_train == {"audio-text": 2000 - n_val} and report.n_val == {"audio-text": n_val}
    assert report.n_groups == {"train": 2000 - n_val, "val": n_val} and abs(n_val - 200) < 4 * 13.4
    steps = -(-(2000 - n_val) // 128)
    assert report.steps == len(calls) == 8 * steps
    assert [c[0] for c in calls[::steps]] == list(range(8))
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
    chosen, _, _ = trained  # served with its whole residual: validation may serve the anchor alone (alpha 0)
    bridge = Bridge(chosen.denoiser, chosen.schedule, chosen.sample, chosen.encoder_fingerprints, chosen.directions,
                    {}, chosen.train_info, chosen.record,
                    selection={"residual_scale": {d.value: 1.0 for d in chosen.directions}})
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
    # deterministic for a given seed and thread count: pinned, where the default follows the machine's load
    cfg = TrainConfig(epochs=1, batch_size=64, hidden=32, depth=1, seed=3, threads=1)
    pairs = {"audio": a, "text": b, "video": v}
    b1, r1 = train_bridge(pairs, cfg=cfg, encoder_fingerprints=FPS)
    b2, _ = train_bridge(pairs, cfg=cfg, encoder_fingerprints=FPS)
    val = validation_mask(audio_groups(a), cfg.val_fraction)
    assert r1.n_train == {"audio-text": int((~val[100:]).sum()), "audio-video": int((~val[:300]).sum())}
    assert r1.n_val == {"audio-text": int(val[100:].sum()), "audio-video": int(val[:300].sum())}
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
    with pytest.raises(ValueError, match="groups has 3 entries for 100 pairs"):
        train_bridge({"audio": a, "text": b}, groups=np.arange(3), cfg=cfg, encoder_fingerprints=FPS)


def _pair_set(n: int) -> PairSet:
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 1
    groups = np.array([str(i // 2) for i in range(n)], dtype=object)
    return PairSet(Modality.AUDIO, Modality.TEXT, x, x, groups, x[:0], x[:0], groups[:0])


def test_batches_never_repeat_a_pair_and_shrink_below_the_batch_size() -> None:
    big, small = _pair_set(10), _pair_set(3)
    batcher = Batcher([big, small], 4, np.random.default_rng(0))
    assert batcher.sizes == [4, 3] and batcher.steps_per_epoch == 3
    for _ in range(2):
        batcher.new_epoch()
        seen_big: list[int] = []
        for step in range(batcher.steps_per_epoch):
            rows_big, rows_small = batcher.rows(0, step), batcher.rows(1, step)
            assert len(set(rows_big.tolist())) == len(rows_big) == 4
            assert sorted(rows_small.tolist()) == [0, 1, 2]  # all three, once each
            seen_big += rows_big.tolist()
            batch = batcher.batch(step)
            assert batch.x0.shape == (7, 2) and [h.stop - h.start for h in batch.halves] == [2, 2, 1, 2]
        assert set(seen_big) == set(range(10))  # the epoch covers every pair
    tiny = Batcher([_pair_set(3)], 256, np.random.default_rng(0))
    tiny.new_epoch()
    assert tiny.steps_per_epoch == 1 and sorted(tiny.rows(0, 0).tolist()) == [0, 1, 2]


def test_info_nce_never_takes_a_pair_of_the_same_group_as_a_negative() -> None:
    g = torch.Generator().manual_seed(0)
    x0_hat, x0 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    groups = torch.tensor([0, 0, 1, 2, 2])
    logits = torch.nn.functional.normalize(x0_hat, dim=-1) @ torch.nn.functional.normalize(x0, dim=-1).T / 0.1
    expected = []
    for i in range(5):
        keep = (groups != groups[i]) | (torch.arange(5) == i)
        expected.append(-torch.log_softmax(logits[i][keep], 0)[int(keep[:i].sum())])
    assert torch.allclose(info_nce(x0_hat, x0, 0.1, groups), torch.stack(expected).mean(), atol=1e-6)
    assert torch.allclose(info_nce(x0_hat, x0, 0.1), torch.nn.functional.cross_entropy(logits, torch.arange(5)))


def test_splits_are_by_group_and_the_record_keeps_groups_and_baselines(world: GapWorld) -> None:
    sample = world.sample_clips(120, 7, captions=5, windows=2, caption_jitter=0.3, window_jitter=0.5)
    pairs, clip = sample.pairs("window")  # 1200 pairs: 2 windows x 5 captions per clip
    groups = np.array([f"clip{c}" for c in clip], dtype=object)
    cfg = TrainConfig(epochs=1, batch_size=64, hidden=32, depth=1, seed=0, val_fraction=0.2)
    bridge, report = train_bridge(pairs, groups=groups, cfg=cfg, encoder_fingerprints=FPS)
    val = validation_mask(groups, 0.2)
    record = bridge.record
    assert record is not None
    assert np.array_equal(record.train_groups, group_keys(groups[~val]))
    assert np.array_equal(record.val_groups, group_keys(groups[val]))
    assert not np.isin(record.train_groups, record.val_groups).any()
    assert report.n_train == {"audio-text": int((~val).sum())} and report.n_val == {"audio-text": int(val.sum())}
    pb = record.baselines["audio-text"]
    ta, tt = pairs["audio"][~val], pairs["text"][~val]  # the very pairs the bridge trained on
    assert pb.n_pairs == len(ta)
    shift = MeanShift.fit(ta, tt)
    assert np.allclose(pb.means["audio"], shift.mu_src, atol=1e-6) and np.allclose(pb.means["text"], shift.mu_tgt, atol=1e-6)
    assert np.allclose(pb.procrustes["text->audio"], LinearMap.fit_procrustes(tt, ta).weight, atol=1e-5)
    alpha = pb.ridge_alpha["text->audio"]
    assert np.allclose(pb.ridge["text->audio"], LinearMap.ridge(tt, ta, alpha).weight, atol=1e-5)
    assert bridge.metadata()["record"]["groups"] == {"train": len(set(groups[~val])), "val": len(set(groups[val]))}


def test_evaluate_methods_reports_every_method_both_ways(trained: tuple, world: GapWorld) -> None:
    from diffgap_search.gap.evaluation import METHODS, evaluate_methods, format_table

    bridge, _, _ = trained
    ta, tb = world.sample(300, seed=2)
    ev = evaluate_methods({"audio": ta, "text": tb, "video": ta}, bridge)
    assert ev["n_test"] == {"audio-text": {"audio": 300, "text": 300}}  # no video in the bridge: skipped
    res = ev["results"]
    assert set(res) == {"text->audio", "audio->text"}
    for key in res:
        assert tuple(res[key]) == METHODS
        assert set(res[key]["raw"]) == {"R@1", "R@5", "R@10", "median_rank", "mAP@10"}
        assert res[key]["diffgap"]["R@1"] > res[key]["raw"]["R@1"] + 12
        assert res[key]["diffgap"]["R@1"] > res[key]["mean_shift"]["R@1"]
        assert res[key]["mean_shift"]["R@1"] != res[key]["raw"]["R@1"]
    raw = retrieval_metrics(tb @ ta.T)  # one caption per clip: the protocol is the diagonal one
    assert res["text->audio"]["raw"] == pytest.approx(raw)
    assert format_table(ev).count("\n") == 2 + 2 * len(METHODS) - 1
    capped = evaluate_methods({"audio": ta, "text": tb}, bridge, max_groups=50)
    assert capped["n_test"] == {"audio-text": {"audio": 50, "text": 50}}


def test_evaluation_needs_the_training_record(trained: tuple, world: GapWorld) -> None:
    from diffgap_search.gap.evaluation import evaluate_methods

    bridge, _, _ = trained
    old = Bridge(bridge.denoiser, bridge.schedule, bridge.sample, FPS, bridge.directions)
    ta, tb = world.sample(20, seed=2)
    with pytest.raises(UsageError, match="predates stored baselines"):
        evaluate_methods({"audio": ta, "text": tb}, old)
