"""A new bridge replaces its bridged vectors under the same segment ids: their FAISS files must be rebuilt,
not updated (an incremental publish adds only ids above the old maximum and kept the old bridge's
vectors; found by tests/test_soak.py). The mark survives a kill between the commit and the publish."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from diffgap_search.bridge.index_bridge import commit_bridge, stage_bridged_spaces
from diffgap_search.config import FaissConfig
from diffgap_search.gap.bridge import Bridge
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge
from diffgap_search.store.catalog import Catalog, SegmentInput
from diffgap_search.store.vector_index import (
    REBUILD_KEY,
    Published,
    faiss_path,
    publish,
)

D = 16


def _bridge(seed: int) -> Bridge:
    # pairs drawn per seed: on 200 pairs validation may serve the ridge anchor alone (alpha 0), and two bridges
    # must differ even then
    a, b = GapWorld(GapSpec(dim=D, latent_dim=3, features=16), seed=0).sample(200, seed=1 + seed)
    cfg = TrainConfig(epochs=1, batch_size=64, hidden=32, depth=1, seed=seed)
    return train_bridge({"audio": a, "text": b}, cfg=cfg, encoder_fingerprints={})[0]


def _faiss_vectors(index_dir: Path, cat: Catalog, space: str) -> dict[int, np.ndarray]:
    pub = Published.read(cat, space)
    assert pub is not None
    index = faiss.read_index(str(faiss_path(index_dir, space, pub.generation)))
    return {int(i): index.reconstruct(int(i)) for i in faiss.vector_to_array(index.id_map)}


@pytest.fixture(scope="module")
def bridges() -> tuple[Bridge, Bridge]:
    return _bridge(0), _bridge(1)


def test_a_new_bridge_rebuilds_its_faiss_files_even_after_a_kill(tmp_path: Path, bridges: tuple) -> None:
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((12, D)).astype(np.float32)
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    cfg = FaissConfig()
    with Catalog.open(tmp_path, create=True) as cat:
        with cat.batch():
            for f in range(4):
                segs = [SegmentInput(s, s + 1.0, {"audio": audio[3 * f + s]}) for s in range(3)]
                cat.put_file(path_key=f"/f/{f}".encode(), path=f"/f/{f}", kind="audio", size=1, mtime_ns=1,
                             sha256=str(f), segments=segs)
        for bridge in bridges:
            stage_bridged_spaces(cat, bridge)
            commit_bridge(cat, bridge, {"fingerprint": bridge.fingerprint})
            assert cat.get_meta(REBUILD_KEY) == ["audio_as_text", "audio_as_video"]
            if bridge is bridges[0]:
                publish(tmp_path, cat, "audio_as_text", D, cfg)
                assert cat.get_meta(REBUILD_KEY) == ["audio_as_video"]
            # the second bridge: the writer is killed here, after its commit; the next writer publishes
    with Catalog.open(tmp_path) as cat:
        rec = publish(tmp_path, cat, "audio_as_text", D, cfg)
        assert (rec.generation, rec.count) == (2, 12)
        assert cat.get_meta(REBUILD_KEY) == ["audio_as_video"]
        ids, stored = next(cat.read_vectors("audio_as_text"))
        in_faiss = _faiss_vectors(tmp_path, cat, "audio_as_text")
    expected = bridges[1].apply(audio, "audio", "text", role="items")  # audio windows are indexed items
    assert not np.allclose(expected, bridges[0].apply(audio, "audio", "text", role="items"), atol=1e-3)  # they differ
    np.testing.assert_allclose(stored, expected, rtol=0, atol=1e-6)
    assert sorted(in_faiss) == ids.tolist()
    for i, vec in zip(ids.tolist(), stored):
        assert np.array_equal(in_faiss[i], vec), i
