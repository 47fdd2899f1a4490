"""Nothing served that validation did not choose: the residual scale, the checkpoint kept, the fair counterparts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from diffgap_search.gap.bridge import Bridge, SampleConfig
from diffgap_search.gap.groups import as_groups
from diffgap_search.gap.selection import LinearBridge, choose_residual, counterpart_fusion
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge
from diffgap_search.gap.training_data import split_pairs
from diffgap_search.gap.validation import validation_tasks

A = "a" * 64
SPEC = GapSpec(dim=16, latent_dim=3, features=16)


@pytest.fixture(scope="module")
def data() -> tuple[dict, np.ndarray]:
    return GapWorld(SPEC, seed=0).sample_clips(200, seed=1, captions=3, caption_jitter=0.3).pairs()


@pytest.fixture(scope="module")
def trained(data: tuple) -> tuple[Bridge, object]:
    pairs, groups = data
    cfg = TrainConfig(epochs=3, batch_size=64, hidden=32, depth=1, seed=0)
    return train_bridge(pairs, groups=groups, cfg=cfg, encoder_fingerprints={"audio": A, "text": A})


def _with_residual(bridge: Bridge, kind: str) -> Bridge:
    """A copy of ``bridge`` whose residual is ``"noise"`` (a large random output layer) or ``"zero"``, sampling
    one plain step (guidance would move even a zero residual away from the anchor)."""
    net = type(bridge.denoiser)(bridge.denoiser.cfg)
    net.load_state_dict(bridge.denoiser.state_dict())
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        if kind == "zero":
            net.out.weight.zero_()
            net.out.bias.zero_()
        else:
            net.out.weight.copy_(torch.randn(net.out.weight.shape, generator=gen) * 5.0)
            net.out.bias.copy_(torch.randn(net.out.bias.shape, generator=gen) * 5.0)
    return Bridge(net, bridge.schedule, SampleConfig(steps=1), bridge.encoder_fingerprints, bridge.directions, {},
                  {}, bridge.record)


def _choose(bridge: Bridge, data: tuple) -> tuple[dict, dict, dict]:
    pairs, groups = data
    tasks = validation_tasks(split_pairs(pairs, as_groups(groups, pairs["audio"]), 0.1), 2000)

    def make(scales: dict[str, dict[str, float]]) -> Bridge:
        return Bridge(bridge.denoiser, bridge.schedule, bridge.sample, bridge.encoder_fingerprints,
                      bridge.directions, {}, {}, bridge.record, selection=scales)

    return choose_residual(make, tasks)


@pytest.mark.parametrize("kind", ["noise", "zero"])
def test_a_useless_residual_gets_alpha_zero_and_serves_exactly_the_anchor(trained: tuple, data: tuple,
                                                                         kind: str) -> None:
    """Pure noise hurts every direction; a zero residual ties the anchor everywhere and ties go to alpha 0."""
    useless = _with_residual(trained[0], kind)
    scales, fusion, val = _choose(useless, data)
    assert scales == {"residual_scale": {"audio|text": 0.0, "text|audio": 0.0},
                      "residual_scale_items": {"audio|text": 0.0, "text|audio": 0.0}}
    assert set(fusion) == set(val) == {"text->audio", "audio->text"}
    for figures in val.values():
        assert figures["fused_R@1"] == figures["anchor_served_R@1"] and figures["bridged_R@1"] == figures["anchor_R@1"]
    served = Bridge(useless.denoiser, useless.schedule, useless.sample, useless.encoder_fingerprints,
                    useless.directions, fusion, {}, useless.record, selection=scales)
    q = data[0]["text"][:40]
    ridge = useless.record.baselines["audio-text"].linear("ridge", "text", "audio")
    for sample in (SampleConfig(steps=1), SampleConfig(steps=4, guidance_scale=2.0)):  # any sampler: the anchor
        np.testing.assert_allclose(served.apply(q, "text", "audio", sample=sample), ridge(q), atol=2e-6)
    assert useless.residual_scale("audio|text") == 1.0 and served.residual_scale("audio|text") == 0.0
    assert served.residual_scale("text|audio", "items") == 0.0


def test_the_served_bridge_is_never_below_its_anchor_on_validation(trained: tuple) -> None:
    bridge, report = trained
    sel = report.selection
    for role in ("residual_scale", "residual_scale_items"):
        assert set(sel[role]) == {"audio|text", "text|audio"}
        assert all(a in (0.0, 0.25, 0.5, 0.75, 1.0) for a in sel[role].values())
        assert bridge.selection[role] == sel[role]
    for key, figures in report.val.items():
        assert figures["fused_R@1"] >= figures["anchor_served_R@1"], key
        # the anchor served is ridge + fusion, tuned the same way on the same clips
        assert figures["anchor_served_R@1"] == sel["counterparts_val"]["ridge"][key]["served_R@1"]
    assert set(sel["counterpart_fusion"]) == {"ridge", "procrustes"}


def test_counterpart_fusion_is_tuned_like_the_bridge(trained: tuple, data: tuple) -> None:
    """Ridge + fusion is the bridge with alpha 0: the same score, the same tuned weights."""
    bridge, _ = trained
    pairs, groups = data
    tasks = validation_tasks(split_pairs(pairs, as_groups(groups, pairs["audio"]), 0.1), 2000)
    weights, scores = counterpart_fusion(bridge.record, tasks)
    anchor_only = Bridge(bridge.denoiser, bridge.schedule, bridge.sample, {}, bridge.directions, {}, {}, bridge.record,
                         selection={"residual_scale": {"audio|text": 0.0, "text|audio": 0.0}})
    lin = LinearBridge(bridge.record, "ridge")
    q = tasks[0].queries.vectors
    np.testing.assert_allclose(anchor_only.apply(q, "text", "audio"), lin.apply(q, "text", "audio"), atol=2e-6)
    assert set(weights["ridge"]) == set(scores["procrustes"]) == {"text->audio", "audio->text"}


def test_early_stopping_keeps_the_best_rated_epoch_and_stops_after_patience(data: tuple) -> None:
    """With lr = 0 the network never changes: every rating ties the first, so training stops after ``patience``
    further ratings and keeps epoch 1."""
    pairs, groups = data
    calls: list[int] = []
    cfg = TrainConfig(epochs=10, batch_size=64, hidden=32, depth=1, seed=0, lr=0.0, patience=2,
                      tune_sampler=False, residual_grid=())
    _, report = train_bridge(pairs, groups=groups, cfg=cfg, encoder_fingerprints={"audio": A, "text": A},
                             on_step=lambda e, s, loss, rate: calls.append(e))
    chosen = report.selection["checkpoint"]
    assert chosen["epochs_run"] == 3 and chosen["epoch"] == 1 and chosen["stopped_early"] is True
    assert [row[0] for row in chosen["scores"]] == [1, 2, 3]
    assert len({tuple(row[1:]) for row in chosen["scores"]}) == 1
    assert sorted(set(calls)) == [0, 1, 2] and len(report.loss_history) == 3


def test_early_stopping_can_be_switched_off(data: tuple) -> None:
    pairs, groups = data
    cfg = TrainConfig(epochs=4, batch_size=64, hidden=32, depth=1, seed=0, lr=0.0, patience=0, residual_grid=(),
                      tune_sampler=False)
    bridge, report = train_bridge(pairs, groups=groups, cfg=cfg, encoder_fingerprints={"audio": A, "text": A})
    chosen = report.selection["checkpoint"]
    assert chosen["epochs_run"] == 4 and chosen["epoch"] == 1 and chosen["stopped_early"] is False
    assert "residual_scale" not in report.selection and bridge.residual_scale("audio|text") == 1.0


def test_bad_selection_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="residual_grid"):
        TrainConfig(residual_grid=(0.0, 1.5))
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=-1)
    with pytest.raises(ValueError, match="precision"):
        replace(TrainConfig(), precision="fp8")


def test_training_threads_never_exceed_the_idle_cores_or_the_request() -> None:
    import os

    from diffgap_search.threads import idle_cores

    cores = len(os.sched_getaffinity(0))
    assert idle_cores(1) == 1
    assert 1 <= idle_cores(64) <= cores
