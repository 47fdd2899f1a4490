"""The bridge's linear anchor is chosen per pair set on validation (``gap.anchor_choice``): Procrustes where the gap
is a rotation and validation is sure of it, ridge where the gap is not orthogonal; known-answer worlds, the map in
the trained network's anchor buffers, a save/load round trip, and what ``dgsearch info`` says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffgap_search.gap.anchor_choice import choose_anchors
from diffgap_search.gap.bridge import load_bridge
from diffgap_search.gap.directions import Direction
from diffgap_search.gap.protocol import tasks_for
from diffgap_search.gap.record import TrainingRecord, fit_pair_baselines
from diffgap_search.gap.selection import counterpart_fusion
from diffgap_search.gap.training import TrainConfig, train_bridge
from diffgap_search.info import _bridge

D = 32
FP = {"audio": "a" * 64, "text": "a" * 64}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _world(n: int, noise: float, kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (audio, text) unit rows: text = audio through a random rotation (``kind="rotation"``) or a rotation
    that stretches 4 axes 15x against the rest (``"stretch"``: not orthogonal), plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    rot = np.linalg.qr(rng.standard_normal((D, D)))[0]
    m = rot if kind == "rotation" else np.diag(np.r_[np.full(4, 3.0), np.full(D - 4, 0.2)]) @ rot
    audio = _unit(rng.standard_normal((n, D)))
    return audio, _unit(audio @ m + noise * rng.standard_normal((n, D)))


def _chosen(kind: str, n_train: int, noise: float, mode: str = "auto") -> tuple[dict, dict, dict]:
    audio, text = _world(n_train + 200, noise, kind)
    g = np.arange(n_train + 200)
    record = TrainingRecord(g[:n_train], g[n_train:], {"audio-text": fit_pair_baselines(
        "audio", "text", audio[:n_train], text[:n_train], g[:n_train])})
    tasks = list(tasks_for("audio", "text", audio[n_train:], text[n_train:], g[n_train:] - n_train))
    weights, figures = counterpart_fusion(record, tasks)
    kinds, evidence = choose_anchors(record, tasks, weights, mode)
    return kinds, evidence["audio-text"], figures


def test_a_rotation_gap_with_few_pairs_is_anchored_on_procrustes() -> None:
    kinds, ev, figures = _chosen("rotation", 100, 0.2)
    assert kinds == {"audio-text": "procrustes"} and ev["procrustes_confidence"] >= 0.9
    for kind in ("ridge", "procrustes"):  # the evidence's figures are the counterparts' served R@1 on the same clips
        assert ev[f"{kind}_served_R@1"] == pytest.approx(np.mean([v["served_R@1"] for v in figures[kind].values()]))
    assert ev["procrustes_served_R@1"] > ev["ridge_served_R@1"]


def test_a_gap_that_is_not_orthogonal_keeps_ridge_and_a_forced_kind_is_honoured() -> None:
    kinds, ev, _ = _chosen("stretch", 100, 0.08)
    assert kinds == {"audio-text": "ridge"} and ev["procrustes_confidence"] == 0.0
    assert ev["ridge_served_R@1"] > ev["procrustes_served_R@1"] + 20
    assert _chosen("stretch", 100, 0.08, "procrustes")[0] == {"audio-text": "procrustes"}
    assert _chosen("rotation", 100, 0.2, "ridge")[0] == {"audio-text": "ridge"}
    with pytest.raises(ValueError, match="anchor kind must be one of"):
        _chosen("rotation", 100, 0.2, "lasso")
    with pytest.raises(ValueError, match="anchor_kind must be auto, ridge or procrustes"):
        TrainConfig(anchor_kind="lasso")


def test_a_not_sure_validation_keeps_ridge() -> None:
    """Procrustes ahead on validation by a few queries, in fewer than 90 % of the resamples: ridge stays."""
    kinds, ev, _ = _chosen("rotation", 60, 0.25)
    assert kinds == {"audio-text": "ridge"} and 0.5 < ev["procrustes_confidence"] < 0.9
    assert ev["procrustes_served_R@1"] > ev["ridge_served_R@1"]


@pytest.fixture(scope="module")
def trained() -> tuple:
    audio, text = _world(400, 0.25, "rotation")
    cfg = TrainConfig(seed=0, epochs=2, val_fraction=0.5, threads=1, hidden=64, depth=1)
    return train_bridge({"audio": audio, "text": text}, cfg=cfg, encoder_fingerprints=FP)


def test_training_installs_the_chosen_map_as_the_networks_anchor_and_serves_it_at_alpha_0(trained: tuple,
                                                                                        tmp_path: Path) -> None:
    bridge, _ = trained
    sel = bridge.selection
    assert sel["anchor_kind"] == {"audio-text": "procrustes"} and sel["anchor_evidence"]["audio-text"]["procrustes_confidence"] == 1.0
    net = bridge.denoiser
    pb = bridge.record.baselines["audio-text"]
    for src, tgt in (("text", "audio"), ("audio", "text")):
        m = pb.linear("procrustes", src, tgt)
        k = Direction.of(src, tgt).index
        assert np.array_equal(net.anchor_weight[k].numpy(), m.weight)
        assert np.array_equal(net.anchor_mu_src[k].numpy(), m.mu_src.astype(np.float32))
    # this world's residual is not served (two epochs of a tiny network): alpha 0 serves Procrustes itself
    assert sel["residual_scale"] == {"audio|text": 0.0, "text|audio": 0.0}
    q = _world(20, 0.25, "rotation", seed=5)[1]
    np.testing.assert_allclose(bridge.apply(q, "text", "audio"), pb.linear("procrustes", "text", "audio")(q), atol=1e-5)
    bridge.save(tmp_path / "b.safetensors")
    again = load_bridge(tmp_path / "b.safetensors", FP)
    assert again.selection["anchor_kind"] == {"audio-text": "procrustes"}
    assert np.array_equal(again.apply(q, "text", "audio"), bridge.apply(q, "text", "audio"))


def test_info_names_a_procrustes_anchor_and_serves_its_figures_beside(trained: tuple) -> None:
    from diffgap_search.bridge.index_bridge import chosen_record

    bridge, _ = trained
    chosen = chosen_record(bridge.selection)
    assert chosen["anchor"] == {"audio-text": "procrustes"}
    line = _bridge({"fingerprint": bridge.fingerprint, "directions": ["audio|text", "text|audio"], "chosen": chosen})
    assert ", anchored audio-text on Procrustes, residual scale " in line
    figure = chosen["counterparts_served_R@1"]["procrustes"]["text->audio"]
    assert f"text->audio {chosen['served_R@1']['text->audio']:.1f} (Procrustes + fusion {figure:.1f})" in line
    chosen["anchor"] = {}  # a bridge before the choice: ridge, named as before
    assert "anchored" not in _bridge({"fingerprint": bridge.fingerprint, "chosen": chosen})
