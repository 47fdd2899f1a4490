"""The CLIP frame encoder: shapes, unit norm, pooling, determinism, batch invariance, loading errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffgap_search.config import WindowConfig
from diffgap_search.encoders.clip.encoder import ClipEncoder, load_clip_encoder
from diffgap_search.errors import ModelUnavailableError
from diffgap_search.media.video import iter_frame_windows


def _windows(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (f, h, w, 3), dtype=np.uint8) for f, h, w in [(3, 40, 50), (10, 32, 32), (1, 64, 48)]]


def test_shapes_dtype_and_unit_norm(tiny_video_encoder: ClipEncoder) -> None:
    out = tiny_video_encoder.embed_video(_windows())
    assert out.shape == (3, tiny_video_encoder.dim) == (3, 16)
    assert out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert tiny_video_encoder.embed_video([]).shape == (0, 16)


def test_attributes(tiny_video_encoder: ClipEncoder, tiny_clip_dir: Path) -> None:
    digest = hashlib.sha256((tiny_clip_dir / "model.safetensors").read_bytes()).hexdigest()
    assert tiny_video_encoder.fingerprint == digest
    assert tiny_video_encoder.model_id == str(tiny_clip_dir)
    assert tiny_video_encoder.fps == 4.0
    assert not tiny_video_encoder.model.training


def test_window_is_the_renormalised_mean_of_its_unit_frames(tiny_video_encoder: ClipEncoder) -> None:
    windows = _windows()
    pooled = tiny_video_encoder.embed_video(windows)
    for row, frames in zip(pooled, windows):
        per_frame = tiny_video_encoder.embed_frames(frames)
        assert np.allclose(np.linalg.norm(per_frame, axis=1), 1.0, atol=1e-6)
        mean = per_frame.mean(axis=0)
        assert np.allclose(row, mean / np.linalg.norm(mean), atol=1e-6)


def test_deterministic_bit_for_bit(tiny_video_encoder: ClipEncoder, tiny_clip_dir: Path) -> None:
    first = tiny_video_encoder.embed_video(_windows())
    again = tiny_video_encoder.embed_video(_windows())
    reloaded = load_clip_encoder(str(tiny_clip_dir), device="cpu", batch_size=8).embed_video(_windows())
    assert np.array_equal(first, again) and np.array_equal(first, reloaded)


@pytest.mark.parametrize("batch_size", [1, 3, 14, 64])
def test_batch_size_invariance(tiny_video_encoder: ClipEncoder, tiny_clip_dir: Path, batch_size: int) -> None:
    other = load_clip_encoder(str(tiny_clip_dir), device="cpu", batch_size=batch_size)
    assert np.allclose(other.embed_video(_windows()), tiny_video_encoder.embed_video(_windows()), atol=1e-5)


def test_windows_are_independent_of_their_neighbours(tiny_video_encoder: ClipEncoder) -> None:
    windows = _windows()
    together = tiny_video_encoder.embed_video(windows)
    alone = np.concatenate([tiny_video_encoder.embed_video([w]) for w in windows])
    assert np.allclose(together, alone, atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_decoded_video_end_to_end(tiny_video_encoder: ClipEncoder, video_silent: Path) -> None:
    windows = [w.frames for w in iter_frame_windows(video_silent, WindowConfig(window_s=1.0, hop_s=1.0), size=224)]
    out = tiny_video_encoder.embed_video(windows)
    assert out.shape == (3, 16) and np.all(np.isfinite(out))


def test_bad_frames_are_refused(tiny_video_encoder: ClipEncoder) -> None:
    with pytest.raises(ValueError, match="uint8"):
        tiny_video_encoder.embed_video([np.zeros((2, 8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="at least one frame"):
        tiny_video_encoder.embed_video([np.zeros((0, 8, 8, 3), np.uint8)])


# --- loading ------------------------------------------------------------------------------------


def test_missing_directory_and_files(tmp_path: Path, tiny_clip_dir: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_clip_encoder(str(tmp_path / "absent"), device="cpu")
    partial = tmp_path / "partial"
    shutil.copytree(tiny_clip_dir, partial)
    (partial / "preprocessor_config.json").unlink()
    with pytest.raises(ModelUnavailableError, match=r"is missing preprocessor_config.json \(or processor_config.json\); a CLIP model directory"):
        load_clip_encoder(str(partial), device="cpu")


def test_checkpoint_without_the_image_projection_is_refused(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_clip_dir, broken)
    weights = {k: v for k, v in load_file(broken / "model.safetensors").items() if "visual_projection" not in k}
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelUnavailableError, match="not a CLIP image model"):
        load_clip_encoder(str(broken), device="cpu")


def test_hub_id_offline_without_cache_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelUnavailableError) as err:
        load_clip_encoder("openai/clip-vit-base-patch32", device="cpu")
    assert "HF_HUB_OFFLINE" in str(err.value) and "\n" not in str(err.value)


def test_vision_only_checkpoint_loads(tmp_path: Path, tiny_clip_dir: Path, tiny_video_encoder: ClipEncoder) -> None:
    """A ``CLIPVisionModelWithProjection`` checkpoint (no text tower) gives the same embeddings."""
    vision_dir = tmp_path / "vision"
    tiny_video_encoder.model.save_pretrained(vision_dir, safe_serialization=True)
    shutil.copy(tiny_clip_dir / "preprocessor_config.json", vision_dir)
    config: dict[str, Any] = json.loads((vision_dir / "config.json").read_text())
    assert config["model_type"] == "clip_vision_model"
    other = load_clip_encoder(str(vision_dir), device="cpu", batch_size=8)
    assert np.array_equal(other.embed_video(_windows()), tiny_video_encoder.embed_video(_windows()))


def test_module_import_is_light() -> None:
    code = "import sys, diffgap_search.encoders.clip.encoder; print(sorted({'torch','transformers'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
