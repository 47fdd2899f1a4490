"""Format 5: a direction serves one residual scale for queries bridged at search time and another for indexed
items bridged at index time; the index stores its windows' bridged vectors with the items' scale, and a search
bridges its query with the queries' scale."""

from __future__ import annotations

import numpy as np
import pytest

from diffgap_search.bridge.index_bridge import bridge_vectors
from diffgap_search.gap.bridge import Bridge
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge

A = "a" * 64


@pytest.fixture(scope="module")
def split() -> tuple[Bridge, Bridge, np.ndarray, np.ndarray]:
    """A trained bridge served two ways: ``split`` (the ridge map for queries, the whole residual for items)
    and ``whole`` (the whole residual in both roles); audio rows and text rows to bridge."""
    a, b = GapWorld(GapSpec(dim=16, latent_dim=3, features=16), seed=0).sample(300, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=64, hidden=32, depth=1, seed=0, residual_grid=())
    trained, _ = train_bridge({"audio": a, "text": b}, cfg=cfg, encoder_fingerprints={"audio": A, "text": A})

    def served(query: float, items: float) -> Bridge:
        scales = {d.value: query for d in trained.directions}
        return Bridge(trained.denoiser, trained.schedule, trained.sample, {"audio": A, "text": A}, trained.directions,
                      record=trained.record, selection={"residual_scale": scales,
                                                        "residual_scale_items": {d: items for d in scales}})

    return served(0.0, 1.0), served(1.0, 1.0), a[:30], b[:30]


def test_indexed_windows_are_bridged_with_the_items_scale(split: tuple) -> None:
    half, whole, audio, _ = split
    stored = bridge_vectors(half, audio)["audio_as_text"]
    assert np.array_equal(stored, whole.apply(audio, "audio", "text"))  # items: the whole residual
    ridge = half.record.baselines["audio-text"].linear("ridge", "audio", "text")
    assert float(np.abs(stored - ridge(audio)).max()) > 1e-3  # ... not the queries' ridge map


def test_queries_are_bridged_with_the_query_scale(split: tuple) -> None:
    half, _, _, text = split
    ridge = half.record.baselines["audio-text"].linear("ridge", "text", "audio")
    np.testing.assert_allclose(half.apply(text, "text", "audio"), ridge(text), atol=2e-6)
    assert half.residual_scale("audio|text") == 0.0 and half.residual_scale("audio|text", "items") == 1.0
