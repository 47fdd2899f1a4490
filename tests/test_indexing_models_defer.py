"""``RunModels.load_for(kinds, embeds=False)``: a process that records the encoder but embeds nothing (the Ray
engine's driver; its actors embed) binds a CLAP folder's encoder without torch or its model
(``encoders/clap/record.py``), and binds exactly what a process that embeds binds (``indexing/models.py``,
``EncoderConfig.defer_model``), for the layout we save and for the default model's as its publisher ships it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_published import CLAP_DEFAULT, CLAP_VARIANTS, publish_clap

from diffgap_search.config import EncoderConfig, VideoConfig, WindowConfig
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.indexing.models import RunModels
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import stored_encoder

# In a fresh interpreter: bind a new index's encoder as the Ray driver does; print what was recorded, the
# window, and whether torch or transformers were imported.
DRIVER = """
import json, sys
from pathlib import Path
from diffgap_search.config import EncoderConfig, VideoConfig, WindowConfig
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.indexing.models import RunModels
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import stored_encoder
index_dir, model = Path(sys.argv[1]), sys.argv[2]
with Catalog.open(index_dir, create=True) as catalog:
    models = RunModels(load_encoder, EncoderConfig(model=model, device="cpu", batch_size=2), None,
                       VideoConfig(frames=False), catalog, str(index_dir), WindowConfig())
    models.load_for({"audio"}, embeds=False)
    print(json.dumps({"recorded": stored_encoder(catalog), "window": models.window.model_samples,
                      "rate": models.window.sample_rate, "torch": "torch" in sys.modules,
                      "transformers": "transformers" in sys.modules}))
"""


@pytest.fixture(scope="module")
def published_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``laion/clap-htsat-unfused`` as published: ``pytorch_model.bin`` only, 4.27's config (tiny weights)."""
    return publish_clap(tmp_path_factory.mktemp("published") / "repo", CLAP_VARIANTS[CLAP_DEFAULT])


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


@pytest.mark.parametrize("layout", ["saved today", "as published"])
def test_a_driver_that_does_not_embed_binds_the_same_encoder_without_building_its_model(
        tiny_clap_dir: Path, published_default: Path, tmp_path: Path, layout: str) -> None:
    folder = tiny_clap_dir if layout == "saved today" else published_default
    recorded, window, vector, built = _bound(tmp_path / "embeds", folder, embeds=True)
    deferred_recorded, deferred_window, deferred_vector, deferred_built = _bound(tmp_path / "driver", folder,
                                                                                 embeds=False)
    assert (built, deferred_built) == (True, False)
    assert recorded["fingerprint"] and deferred_recorded == recorded  # model, fingerprint, dim, rate, provenance
    assert deferred_window == window and window.sample_rate == 48_000 and window.model_samples == 480_000
    np.testing.assert_array_equal(deferred_vector, vector)  # asked to embed after all: the model, built then


def test_the_driver_binds_the_published_default_model_without_importing_torch(
        published_default: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "driver"), str(published_default)],
                         capture_output=True, text=True, timeout=120, check=True)
    seen = json.loads(out.stdout)
    assert (seen["torch"], seen["transformers"]) == (False, False), out.stderr
    assert (seen["rate"], seen["window"]) == (48_000, 480_000)
    recorded, _, _, _ = _bound(tmp_path / "embeds", published_default, embeds=True)
    assert seen["recorded"] == recorded  # the same record as an eager load writes


def test_a_device_is_checked_by_name_in_a_driver(tiny_clap_dir: Path, tmp_path: Path) -> None:
    from diffgap_search.errors import UsageError

    with Catalog.open(tmp_path / "ix", create=True) as catalog:
        models = RunModels(load_encoder, EncoderConfig(model=str(tiny_clap_dir), device="gpu"), None,
                           VideoConfig(frames=False), catalog, str(tmp_path / "ix"), WindowConfig())
        with pytest.raises(UsageError, match="unknown device 'gpu': use one of auto, cpu, cuda"):
            models.load_for({"audio"}, embeds=False)
        assert stored_encoder(catalog) is None  # refused before anything is recorded
