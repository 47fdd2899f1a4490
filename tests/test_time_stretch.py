"""HTSAT's time stretch as gathers (``encoders/clap/time_stretch.py``): the same numbers as torch's bicubic, the
same tower output as transformers' own ``reshape_mel2img``, and an ONNX export without a ``Resize`` node.

Tiny CLAP (seed 0); its feature extractor gives 1001 frames that the tower stretches to 1024, as the full-size
``laion/clap-htsat-*`` models do."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.clap import fast_paths
from diffgap_search.encoders.clap.time_stretch import bicubic_taps, gathered_stretch, stretch_time
from diffgap_search.encoders.loading import load_encoder

ONNX = pytest.mark.skipif(not fast_paths.onnx_available(), reason="onnxruntime not installed (the onnx extra)")


@pytest.mark.parametrize(("n_in", "n_out"), [(1001, 1024), (1000, 1024), (5, 8), (2, 9), (17, 64), (1, 4)])
def test_the_gathers_equal_torch_bicubic_with_aligned_corners(n_in: int, n_out: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, n_in, 64, generator=gen) * 20 - 40  # log-mel-like magnitudes
    expected = torch.nn.functional.interpolate(x, (n_out, 64), mode="bicubic", align_corners=True)
    got = stretch_time(x, n_out)
    assert got.shape == (3, 2, n_out, 64) and got.dtype == torch.float32
    # the same float32 weights; only the order of a four-term sum may differ from torch's kernel
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-6 * float(x.abs().max()))


def test_the_taps_of_1001_to_1024_frames() -> None:
    indices, weights = bicubic_taps(1001, 1024)
    assert indices.shape == weights.shape == (4, 1024) and weights.dtype == np.float32
    assert indices[:, 0].tolist() == [0, 0, 1, 2] and weights[:, 0].tolist() == [0.0, 1.0, 0.0, 0.0]  # the first frame
    assert indices[:, -1].tolist() == [999, 1000, 1000, 1000] and weights[1, -1] == 1.0  # the last, clamped
    assert np.abs(weights.sum(axis=0) - 1).max() < 1e-6  # an interpolation: the weights of every frame sum to 1
    assert indices.min() == 0 and indices.max() == 1000


def test_a_stretch_needs_two_output_samples() -> None:
    with pytest.raises(ValueError, match="n_out >= 2"):
        bicubic_taps(10, 1)


def _clap(model_dir: Path):  # noqa: ANN202 - a ClapEncoder
    return load_encoder(EncoderConfig(model=str(model_dir), device="cpu", batch_size=4, precision="fp32"),
                        progress=False)


def test_the_tower_gives_the_same_vectors_with_the_gathers(tiny_clap_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    encoder = _clap(tiny_clap_dir)
    rng = np.random.default_rng(0)
    features = encoder._features((rng.standard_normal((3, encoder.window_samples)) * 0.1).astype(np.float32))
    assert features.shape[2] == 1001  # stretched to 1024 inside the tower
    tower = fast_paths.AudioTower(encoder.model).eval()
    audio_encoder = encoder.model.audio_model.audio_encoder
    with torch.inference_mode():
        plain = tower(features)
        with gathered_stretch(encoder.model):
            assert "reshape_mel2img" in vars(audio_encoder)  # ours, on the instance, while inside
            gathered = tower(features)
    assert "reshape_mel2img" not in vars(audio_encoder)  # transformers' method again on exit
    torch.testing.assert_close(gathered, plain, rtol=1e-4, atol=1e-5)


@ONNX
def test_the_onnx_export_stretches_by_gathers_not_resize(tiny_clap_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    encoder = _clap(tiny_clap_dir)
    features = encoder._features(np.zeros((1, encoder.window_samples), np.float32))
    path = fast_paths.export_audio_onnx(encoder.model, encoder.fingerprint, features, quantized=False)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "Resize" not in ops and "Gather" in ops
    assert f"-x{fast_paths.EXPORT_VERSION}-" in path.name  # an export of version 1 (with Resize) is not reused
    assert "reshape_mel2img" not in vars(encoder.model.audio_model.audio_encoder)
