"""Saving and loading bridges: safetensors + JSON, identical outputs, refusal of other encoders and newer formats."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import safe_open, save_file

from diffgap_search.errors import (
    BridgeMismatchError,
    BridgeUnavailableError,
    CorruptIndexError,
    IncompatibleIndexError,
)
from diffgap_search.gap.bridge import Bridge, load_bridge
from diffgap_search.gap.checkpoint import FORMAT_VERSION, fingerprint
from diffgap_search.gap.evaluation import METHODS, evaluate_methods, verdict_line
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge

A, T = "a" * 64, "b" * 64


@pytest.fixture(scope="module")
def bridge_and_data() -> tuple[Bridge, np.ndarray]:
    a, b = GapWorld(GapSpec(dim=16, latent_dim=3, features=16), seed=0).sample(300, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=64, hidden=32, depth=1, seed=0)
    bridge, _ = train_bridge({"audio": a, "text": b}, cfg=cfg, encoder_fingerprints={"audio": A, "text": A})
    return bridge, b[:20]


def test_round_trip_gives_identical_outputs(bridge_and_data: tuple, tmp_path: Path) -> None:
    bridge, q = bridge_and_data
    path = tmp_path / "bridge.safetensors"
    bridge.save(path)
    one, two = load_bridge(path, {"audio": A, "text": A}), load_bridge(path, None)
    expected = bridge.apply(q, "text", "audio")
    assert np.array_equal(one.apply(q, "text", "audio"), expected)
    assert np.array_equal(two.apply(q, "text", "audio"), expected)
    assert one.fingerprint == two.fingerprint == bridge.fingerprint
    assert len(bridge.fingerprint) == 64
    assert one.encoder_fingerprints == {"audio": A, "text": A}
    assert one.directions == bridge.directions
    assert one.fusion_for("text", "audio") == bridge.fusion_for("text", "audio")
    assert one.metadata() == bridge.metadata()
    assert one.record is not None and bridge.record is not None
    assert np.array_equal(one.record.train_groups, bridge.record.train_groups)
    assert np.array_equal(one.record.val_groups, bridge.record.val_groups)
    for name, pb in bridge.record.baselines.items():
        loaded = one.record.baselines[name]
        assert (loaded.a, loaded.b, loaded.ridge_alpha, loaded.n_pairs) == (pb.a, pb.b, pb.ridge_alpha, pb.n_pairs)
        for part in ("means", "ridge", "procrustes"):
            assert getattr(loaded, part).keys() == getattr(pb, part).keys()
            assert all(np.array_equal(getattr(loaded, part)[k], v) for k, v in getattr(pb, part).items())


def test_file_is_safetensors_with_versioned_json_and_deterministic(bridge_and_data: tuple, tmp_path: Path) -> None:
    bridge, _ = bridge_and_data
    p1, p2 = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    bridge.save(p1)
    bridge.save(p2)
    assert hashlib.sha256(p1.read_bytes()).digest() == hashlib.sha256(p2.read_bytes()).digest()
    with safe_open(str(p1), framework="pt") as fh:
        meta = json.loads(fh.metadata()["diffgap"])
        assert "in_x.weight" in fh.keys()
        names = set(fh.keys())
    assert meta["format_version"] == FORMAT_VERSION == 5
    assert set(meta["selection"]) >= {"checkpoint", "residual_scale", "residual_scale_items", "counterpart_fusion",
                                      "val"}
    assert meta["denoiser"]["anchor"] == "ridge" and {"anchor_mu_src", "anchor_weight", "anchor_mu_tgt"} <= names
    assert {"record.groups.train", "record.groups.val", "record.baselines.audio-text.mean.audio",
            "record.baselines.audio-text.mean.text", "record.baselines.audio-text.ridge.text->audio",
            "record.baselines.audio-text.ridge.audio->text", "record.baselines.audio-text.procrustes.text->audio",
            "record.baselines.audio-text.procrustes.audio->text"} == {n for n in names if n.startswith("record.")}
    assert meta["record"]["groups"] == {"train": len(bridge.record.train_groups), "val": len(bridge.record.val_groups)}
    assert set(meta["record"]["baselines"]["audio-text"]) == {"a", "b", "ridge_alpha", "pairs"}
    assert meta["encoder_fingerprints"] == {"audio": A, "text": A}
    assert meta["schedule"] == {"kind": "cosine-v1", "num_steps": 1000}
    assert meta["directions"] == ["audio|text", "text|audio"]
    assert meta["denoiser"]["dim"] == 16
    assert not list(tmp_path.glob("*.tmp"))


def test_other_encoder_is_refused_with_a_clear_message(bridge_and_data: tuple, tmp_path: Path) -> None:
    bridge, _ = bridge_and_data
    path = tmp_path / "bridge.safetensors"
    bridge.save(path)
    with pytest.raises(BridgeMismatchError) as info:
        load_bridge(path, {"audio": T, "text": T})
    assert str(info.value) == (
        f"bridge {path} was trained on audio embeddings from encoder aaaaaaaaaaaa, "
        "but this index uses encoder bbbbbbbbbbbb: train a new bridge with `dgsearch train`"
    )
    assert isinstance(info.value, IncompatibleIndexError) and info.value.exit_code == 6
    with pytest.raises(BridgeMismatchError, match="none of which this index uses"):
        load_bridge(path, {"video": A})
    # Only shared modalities are compared: an extra video encoder in the index is fine.
    assert load_bridge(path, {"audio": A, "text": A, "video": T}).fingerprint == bridge.fingerprint


def test_newer_missing_and_corrupt_files_are_refused(bridge_and_data: tuple, tmp_path: Path) -> None:
    bridge, _ = bridge_and_data
    meta = bridge.metadata() | {"format_version": FORMAT_VERSION + 1}
    assert FORMAT_VERSION + 1 == 6
    newer = tmp_path / "newer.safetensors"
    save_file({k: v.contiguous() for k, v in bridge.denoiser.state_dict().items()}, str(newer), {"diffgap": json.dumps(meta)})
    with pytest.raises(BridgeMismatchError, match="format version 6, newer than this diffgap-search reads"):
        load_bridge(newer, None)
    odd = tmp_path / "odd.safetensors"
    save_file(dict(bridge.denoiser.state_dict()), str(odd), {"diffgap": json.dumps(bridge.metadata() | {"schedule": {"kind": "cosine-v9", "num_steps": 1000}})})
    with pytest.raises(BridgeMismatchError, match="cosine-v9"):
        load_bridge(odd, None)
    with pytest.raises(BridgeUnavailableError):
        load_bridge(tmp_path / "missing.safetensors", None)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CorruptIndexError):
        load_bridge(junk, None)
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(CorruptIndexError):
        load_bridge(plain, None)


@pytest.fixture(scope="module")
def plain_bridge(bridge_and_data: tuple) -> Bridge:
    """A bridge as formats 1 and 2 knew it: no linear anchor, one sample."""
    a, b = GapWorld(GapSpec(dim=16, latent_dim=3, features=16), seed=0).sample(300, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=64, hidden=32, depth=1, seed=0, anchor="none", tune_sampler=False)
    return train_bridge({"audio": a, "text": b}, cfg=cfg, encoder_fingerprints={"audio": A, "text": A})[0]


def _old_meta(bridge: Bridge, version: int) -> dict:
    """The metadata an older diffgap-search wrote: format 4 has no ``selection.residual_scale_items``; before
    it, no format-4 keys (``selection``, ``denoiser.dropout``) and before 3 no format-3 keys
    (``denoiser.anchor``, ``sample.samples``)."""
    meta = json.loads(json.dumps(bridge.metadata())) | {"format_version": version}
    if version == 4:
        del meta["selection"]["residual_scale_items"]
        return meta
    del meta["selection"], meta["denoiser"]["dropout"]
    if version == 3:
        return meta
    del meta["denoiser"]["anchor"], meta["sample"]["samples"]
    if version == 1:
        del meta["record"]
    return meta


@pytest.mark.parametrize("version", [1, 2])
def test_older_format_bridges_still_load_and_keep_their_fingerprint(plain_bridge: Bridge, bridge_and_data: tuple,
                                                                    tmp_path: Path, version: int) -> None:
    """Bridges saved by formats 1 (weights only) and 2 (with the training record) serve queries as before."""
    _, q = bridge_and_data
    bridge = plain_bridge
    meta = _old_meta(bridge, version)
    tensors = dict(bridge.denoiser.state_dict()) | ({} if version == 1 else dict(bridge.record.tensors()))
    path = tmp_path / f"v{version}.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              {"diffgap": json.dumps(meta, sort_keys=True, separators=(",", ":"))})
    old = load_bridge(path, {"audio": A, "text": A})
    assert (old.record is None) == (version == 1) and old.format_version == version
    assert old.denoiser.cfg.anchor == "none" and old.sample.samples == 1
    assert old.metadata() == meta
    assert old.fingerprint == fingerprint(tensors, meta)
    assert np.array_equal(old.apply(q, "text", "audio"), bridge.apply(q, "text", "audio"))


def test_format_3_bridges_load_and_serve_the_full_residual_as_before(bridge_and_data: tuple, tmp_path: Path) -> None:
    """A format-3 file (anchored, before validation chose a residual scale) keeps its fingerprint and serves
    anchor + the whole residual (alpha = 1), bit for bit what the network gave before format 4."""
    bridge, q = bridge_and_data
    meta = _old_meta(bridge, 3)
    tensors = dict(bridge.tensors())
    path = tmp_path / "v3.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              {"diffgap": json.dumps(meta, sort_keys=True, separators=(",", ":"))})
    old = load_bridge(path, {"audio": A, "text": A})
    assert old.format_version == 3 and old.selection == {} and old.denoiser.cfg.anchor == "ridge"
    assert old.residual_scale("audio|text") == old.residual_scale("text|audio") == 1.0
    assert old.metadata() == meta and old.fingerprint == fingerprint(tensors, meta)
    full = Bridge(bridge.denoiser, bridge.schedule, bridge.sample, {"audio": A, "text": A}, bridge.directions,
                  format_version=3)
    assert np.array_equal(old.apply(q, "text", "audio"), full.apply(q, "text", "audio"))
    assert np.array_equal(old.apply(q, "audio", "text"), full.apply(q, "audio", "text"))
    # evaluated, it has no fair counterparts to serve beside it, and the verdict says so
    a, b = GapWorld(GapSpec(dim=16, latent_dim=3, features=16), seed=0).sample(40, seed=9)
    ev = evaluate_methods({"audio": a, "text": b}, old)
    assert all(tuple(m) == METHODS[:-2] for m in ev["results"].values())
    assert set(ev["verdict"]["text->audio"]) == {"alone"}
    assert verdict_line("text->audio", ev["verdict"]["text->audio"]).endswith(
        "; no fair served counterpart (a bridge trained before format 4: train it again)")


def test_a_bridge_of_unrecorded_encoders_is_refused_once_the_index_records_them(bridge_and_data: tuple,
                                                                                tmp_path: Path) -> None:
    bridge, _ = bridge_and_data
    anonymous = Bridge(bridge.denoiser, bridge.schedule, bridge.sample, {}, bridge.directions, {}, {}, bridge.record)
    path = tmp_path / "anonymous.safetensors"
    anonymous.save(path)
    assert load_bridge(path, None).fingerprint == anonymous.fingerprint
    with pytest.raises(BridgeMismatchError, match="trained on pairs from unrecorded encoders"):
        load_bridge(path, {"audio": A, "text": A})


def test_format_4_bridges_serve_one_alpha_per_direction_for_queries_and_items(bridge_and_data: tuple,
                                                                             tmp_path: Path) -> None:
    """A format-4 file (one residual scale per direction, before each task chose its query's and its items'
    alphas) keeps its fingerprint and serves its alpha in both roles, bit for bit a format-5 bridge with both
    roles set to it."""
    bridge, q = bridge_and_data
    meta = _old_meta(bridge, 4)
    meta["selection"]["residual_scale"] = {"audio|text": 0.5, "text|audio": 0.0}
    tensors = dict(bridge.tensors())
    path = tmp_path / "v4.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              {"diffgap": json.dumps(meta, sort_keys=True, separators=(",", ":"))})
    old = load_bridge(path, {"audio": A, "text": A})
    assert old.format_version == 4 and old.metadata() == meta and old.fingerprint == fingerprint(tensors, meta)
    for role in ("query", "items"):
        assert old.residual_scale("audio|text", role) == 0.5 and old.residual_scale("text|audio", role) == 0.0
    same = {"audio|text": 0.5, "text|audio": 0.0}
    new = Bridge(bridge.denoiser, bridge.schedule, bridge.sample, {"audio": A, "text": A}, bridge.directions,
                 selection={"residual_scale": same, "residual_scale_items": same})
    for source, target in (("text", "audio"), ("audio", "text")):
        for role in ("query", "items"):
            assert np.array_equal(old.apply(q if source == "text" else q[:, ::-1].copy(), source, target, role=role),
                                  new.apply(q if source == "text" else q[:, ::-1].copy(), source, target, role=role))


def test_the_two_roles_of_a_direction_serve_their_own_alpha(bridge_and_data: tuple) -> None:
    """Format 5: ``residual_scale`` for queries, ``residual_scale_items`` for indexed items; alpha 0 is the ridge
    map alone in either role; an unknown role is refused."""
    bridge, q = bridge_and_data
    split = Bridge(bridge.denoiser, bridge.schedule, bridge.sample, {"audio": A, "text": A}, bridge.directions,
                   selection={"residual_scale": {"audio|text": 0.0}, "residual_scale_items": {"audio|text": 1.0}})
    whole = Bridge(bridge.denoiser, bridge.schedule, bridge.sample, {"audio": A, "text": A}, bridge.directions)
    ridge = bridge.record.baselines["audio-text"].linear("ridge", "text", "audio")
    np.testing.assert_allclose(split.apply(q, "text", "audio"), ridge(q), atol=2e-6)
    assert np.array_equal(split.apply(q, "text", "audio", role="items"), whole.apply(q, "text", "audio"))
    assert not np.allclose(split.apply(q, "text", "audio"), whole.apply(q, "text", "audio"), atol=1e-3)
    with pytest.raises(ValueError, match="role must be one of"):
        split.apply(q, "text", "audio", role="gallery")
