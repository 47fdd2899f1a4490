"""The bridge as a search serves it (``gap/served_bridge.py``): read without torch, the same fingerprint and the
same checks as ``load_bridge``, the anchor map in numpy where a role's residual scale is 0 (equal to the torch
bridge's answer to float32 rounding), the torch bridge itself for everything else (bit for bit)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file

from diffgap_search.errors import BridgeMismatchError, BridgeUnavailableError, IncompatibleIndexError
from diffgap_search.gap.bridge import Bridge, load_bridge
from diffgap_search.gap.served_bridge import ServedBridge
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge

FP = {"audio": "a" * 64, "text": "b" * 64}
# "audio|text" generates audio from text: text queries are served the anchor alone, audio queries half the residual
SPLIT = {"residual_scale": {"audio|text": 0.0, "text|audio": 0.5},
         "residual_scale_items": {"audio|text": 1.0, "text|audio": 0.0}}


@pytest.fixture(scope="module")
def trained() -> tuple[Bridge, np.ndarray, np.ndarray]:
    a, b = GapWorld(GapSpec(dim=16, latent_dim=3, features=16), seed=0).sample(300, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=64, hidden=32, depth=1, seed=0)
    bridge, _ = train_bridge({"audio": a, "text": b}, cfg=cfg, encoder_fingerprints=FP)
    qa, qt = GapWorld(GapSpec(dim=16, latent_dim=3, features=16), seed=0).sample(25, seed=7)
    return bridge, qa, qt


def split_bridge(bridge: Bridge) -> Bridge:
    """``bridge`` serving text queries by the anchor alone (alpha 0) and audio queries with half the residual."""
    return Bridge(bridge.denoiser, bridge.schedule, bridge.sample, FP, bridge.directions,
                  {k: bridge.fusion_for(*k.split("->")) for k in ("text->audio", "audio->text")}, bridge.train_info,
                  bridge.record, selection={**bridge.selection, **SPLIT})


def test_alpha_0_is_the_anchor_in_numpy_and_the_rest_is_the_torch_bridge(trained, tmp_path: Path) -> None:
    bridge, qa, qt = trained
    full = split_bridge(bridge)
    full.save(tmp_path / "b.safetensors")
    served = ServedBridge.read(tmp_path / "b.safetensors", FP)
    assert served.fingerprint == full.fingerprint == load_bridge(tmp_path / "b.safetensors", FP).fingerprint
    assert (served.directions, served.dim, served.shared_spaces, served.separate_spaces) == (
        full.directions, full.dim, full.shared_spaces, full.separate_spaces)
    for source, target in (("text", "audio"), ("audio", "text")):
        assert served.fusion_for(source, target) == full.fusion_for(source, target)
        for role in ("query", "items"):
            direction = f"{target}|{source}"
            assert served.residual_scale(direction, role) == full.residual_scale(direction, role)
    # text queries (alpha 0): numpy's anchor, the torch bridge's answer to float32 rounding
    mine = served.apply(qt, "text", "audio")
    assert mine.dtype == np.float32 and mine.shape == (25, 16)
    np.testing.assert_allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(mine, full.apply(qt, "text", "audio"), atol=1e-6)
    np.testing.assert_allclose(served.apply(qa, "audio", "text", role="items"),
                               full.apply(qa, "audio", "text", role="items"), atol=1e-6)
    assert served._full is None  # nothing so far needed torch's bridge
    # a residual served (alpha 0.5 and 1): the torch bridge, bit for bit
    assert np.array_equal(served.apply(qa, "audio", "text"), full.apply(qa, "audio", "text"))
    assert np.array_equal(served.apply(qt, "text", "audio", role="items"), full.apply(qt, "text", "audio", role="items"))
    assert served._full is not None
    # what it does not hold, it asks the torch bridge
    assert served.metadata() == full.metadata() and served.record is not None


def test_errors_are_load_bridges(trained, tmp_path: Path) -> None:
    bridge, qa, qt = trained
    path = tmp_path / "b.safetensors"
    split_bridge(bridge).save(path)
    served = ServedBridge.read(path, FP)
    with pytest.raises(ValueError, match=r"expected \(N, 16\) embeddings, got \(25, 8\)"):
        served.apply(qt[:, :8], "text", "audio")
    with pytest.raises(ValueError, match="contain NaN or inf"):
        served.apply(np.full((1, 16), np.nan, dtype=np.float32), "text", "audio")
    with pytest.raises(ValueError, match="role must be one of"):
        served.apply(qt, "text", "audio", role="gallery")
    with pytest.raises(BridgeUnavailableError, match=r"serves \['audio\|text', 'text\|audio'\], not video -> audio"):
        served.apply(qt, "video", "audio")
    other = {"audio": "c" * 64, "text": "b" * 64}
    with pytest.raises(BridgeMismatchError) as mine:
        ServedBridge.read(path, other)
    with pytest.raises(BridgeMismatchError) as theirs:
        load_bridge(path, other)
    assert str(mine.value) == str(theirs.value)
    with pytest.raises(BridgeUnavailableError, match="no DiffGAP bridge at"):
        ServedBridge.read(tmp_path / "none.safetensors", FP)


@pytest.mark.parametrize("version", [1, 3])
def test_bridges_without_an_anchor_or_a_choice_are_served_by_the_torch_bridge(trained, tmp_path: Path,
                                                                             version: int) -> None:
    """Format 1 (no anchor: the plain network) and 3 (anchored, alpha 1 before validation chose one): every
    query goes to the torch bridge, bit for bit, and the fingerprint read without torch is the file's."""
    bridge, qa, qt = trained
    meta = json.loads(json.dumps(bridge.metadata())) | {"format_version": version}
    del meta["selection"], meta["denoiser"]["dropout"]
    tensors = dict(bridge.tensors())
    if version == 1:
        cfg = TrainConfig(epochs=1, batch_size=64, hidden=32, depth=1, seed=0, anchor="none", tune_sampler=False)
        a, b = GapWorld(GapSpec(dim=16, latent_dim=3, features=16), seed=0).sample(300, seed=1)
        plain = train_bridge({"audio": a, "text": b}, cfg=cfg, encoder_fingerprints=FP)[0]
        meta = json.loads(json.dumps(plain.metadata())) | {"format_version": 1}
        del meta["selection"], meta["denoiser"]["dropout"], meta["denoiser"]["anchor"], meta["sample"]["samples"]
        del meta["record"]
        tensors = dict(plain.denoiser.state_dict())
    path = tmp_path / f"v{version}.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path),
              {"diffgap": json.dumps(meta, sort_keys=True, separators=(",", ":"))})
    old = load_bridge(path, FP)
    served = ServedBridge.read(path, FP)
    assert served.fingerprint == old.fingerprint
    assert served.residual_scale("text|audio") == old.residual_scale("text|audio") == 1.0
    assert np.array_equal(served.apply(qt, "text", "audio"), old.apply(qt, "text", "audio"))
    assert np.array_equal(served.apply(qa, "audio", "text"), old.apply(qa, "audio", "text"))


def test_reading_and_serving_the_anchor_never_imports_torch(trained, tmp_path: Path) -> None:
    bridge, _, qt = trained
    path = tmp_path / "b.safetensors"
    full = split_bridge(bridge)
    full.save(path)
    np.save(tmp_path / "q.npy", qt)
    code = (
        "import sys, numpy as np\n"
        "from diffgap_search.gap.served_bridge import ServedBridge\n"
        f"served = ServedBridge.read(__import__('pathlib').Path({str(path)!r}), {FP!r})\n"
        f"np.save({str(tmp_path / 'out.npy')!r}, served.apply(np.load({str(tmp_path / 'q.npy')!r}), 'text', 'audio'))\n"
        "print(served.fingerprint, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == [full.fingerprint, "False"]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), full.apply(qt, "text", "audio"), atol=1e-6)


def test_an_index_serves_the_bridge_it_recorded_and_refuses_another(trained, tmp_path: Path) -> None:
    """``load_index_bridge(served=True)``: the recorded file, checked by fingerprint as before."""
    from diffgap_search.bridge.index_bridge import bridge_file_name, bridge_record, load_index_bridge
    from diffgap_search.store.catalog import Catalog

    bridge, _, _ = trained
    full = split_bridge(bridge)
    index = tmp_path / "ix"
    with Catalog.open(index, create=True) as catalog:
        full.save(index / bridge_file_name(full))
        catalog.set_meta({"bridge": {**bridge_record(full, None), "file": bridge_file_name(full)}})
        served = load_index_bridge(index, catalog, served=True)
        assert isinstance(served, ServedBridge) and served.fingerprint == full.fingerprint
        assert isinstance(load_index_bridge(index, catalog), Bridge)
        record = catalog.get_meta("bridge")
        catalog.set_meta({"bridge": {**record, "fingerprint": "0" * 64}})
        with pytest.raises(IncompatibleIndexError, match="is not the bridge this index recorded"):
            load_index_bridge(index, catalog, served=True)
