"""``RunModels.load_for(kinds, embeds=False)``: a process that records the encoder but embeds nothing (the Ray
engine's driver; its actors embed) binds a CLAP folder's encoder without building the torch model, and binds
exactly what a process that embeds binds (``indexing/models.py``, ``EncoderConfig.defer_model``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffgap_search.config import EncoderConfig, VideoConfig, WindowConfig
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.indexing.models import RunModels
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import stored_encoder


def _bound(index_dir: Path, model_dir: Path, embeds: bool) -> tuple[dict, WindowConfig, np.ndarray, bool]:
    """What ``load_for`` records in a new index, the window it fits, a window's vector and whether the torch model
    was built before that vector was asked for."""
    cfg = EncoderConfig(model=str(model_dir), device="cpu", batch_size=2)
    with Catalog.open(index_dir, create=True) as catalog:
        models = RunModels(load_encoder, cfg, None, VideoConfig(frames=False), catalog, str(index_dir), WindowConfig())
        models.load_for({"audio"}, embeds=embeds)
        encoder = models.audio()
        built = bool(encoder.model_loaded)  # type: ignore[attr-defined]
        window = (0.1 * np.random.default_rng(0).standard_normal((1, 480_000))).astype(np.float32)
        vector = encoder.embed_audio(window)
        return dict(stored_encoder(catalog) or {}), models.window, vector, built


def test_a_driver_that_does_not_embed_binds_the_same_encoder_without_building_its_model(
        tiny_clap_dir: Path, tmp_path: Path) -> None:
    recorded, window, vector, built = _bound(tmp_path / "embeds", tiny_clap_dir, embeds=True)
    deferred_recorded, deferred_window, deferred_vector, deferred_built = _bound(tmp_path / "driver", tiny_clap_dir,
                                                                                 embeds=False)
    assert (built, deferred_built) == (True, False)
    assert recorded["fingerprint"] and deferred_recorded == recorded  # model, fingerprint, dim, rate, provenance
    assert deferred_window == window and window.sample_rate == 48_000
    np.testing.assert_array_equal(deferred_vector, vector)  # asked to embed after all: the model, built then
