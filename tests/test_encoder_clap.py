"""ClapEncoder on the tiny CLAP model: shapes, dtypes, unit norms, determinism, batching, input checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures_models import TINY_DIM, make_tiny_clap

from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.base import Encoder
from diffgap_search.encoders.loading import load_encoder

SR = 48_000
S = 480_000
TEXTS = [
    "dog barking",
    "rain",
    "a crowd cheering and applause in a large stadium at night with distant sirens " * 8,  # > 77 tokens
    "piano music, soft and quiet",
    "glass breaking in the kitchen",
]


def _windows(n: int, seed: int = 0) -> np.ndarray:
    """``(n, S) float32``: sines of different pitches plus seeded noise, within [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(S, dtype=np.float64) / SR
    freqs = rng.uniform(100.0, 4000.0, size=(n, 1))
    tone = 0.5 * np.sin(2 * np.pi * freqs * t)
    return (tone + 0.05 * rng.standard_normal((n, S))).astype(np.float32)


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return _windows(3)


@pytest.fixture(scope="module")
def audio(tiny_encoder: Any, windows: np.ndarray) -> np.ndarray:
    """The windows embedded once by the shared encoder (batch size 4: one batch)."""
    return tiny_encoder.embed_audio(windows)


def _assert_unit_rows(x: np.ndarray, n: int) -> None:
    assert x.shape == (n, TINY_DIM)
    assert x.dtype == np.float32
    assert x.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_attributes_follow_the_protocol(tiny_encoder: Any, tiny_clap_dir: Path) -> None:
    assert isinstance(tiny_encoder, Encoder)
    assert tiny_encoder.dim == TINY_DIM
    assert tiny_encoder.sample_rate == SR
    assert tiny_encoder.window_samples == S
    assert tiny_encoder.model_id == str(tiny_clap_dir)
    assert len(tiny_encoder.fingerprint) == 64
    assert not tiny_encoder.model.training


def test_audio_shape_dtype_norm(audio: np.ndarray, windows: np.ndarray) -> None:
    _assert_unit_rows(audio, len(windows))


def test_text_shape_dtype_norm_for_different_lengths(tiny_encoder: Any) -> None:
    _assert_unit_rows(tiny_encoder.embed_text(TEXTS), len(TEXTS))


def test_empty_batches(tiny_encoder: Any) -> None:
    _assert_unit_rows(tiny_encoder.embed_audio(np.zeros((0, S), np.float32)), 0)
    _assert_unit_rows(tiny_encoder.embed_text([]), 0)


def test_same_input_same_bits_across_calls(tiny_encoder: Any, windows: np.ndarray, audio: np.ndarray) -> None:
    assert np.array_equal(tiny_encoder.embed_audio(windows), audio)
    assert np.array_equal(tiny_encoder.embed_text(TEXTS), tiny_encoder.embed_text(TEXTS))


def test_same_input_same_bits_across_loads(
    tiny_encoder: Any, tiny_clap_dir: Path, windows: np.ndarray, audio: np.ndarray
) -> None:
    other = load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=4), progress=False)
    assert other is not tiny_encoder
    assert other.fingerprint == tiny_encoder.fingerprint
    assert np.array_equal(other.embed_audio(windows), audio)
    assert np.array_equal(other.embed_text(TEXTS), tiny_encoder.embed_text(TEXTS))


def test_batch_size_does_not_change_results(
    tiny_encoder: Any, tiny_clap_dir: Path, windows: np.ndarray, audio: np.ndarray
) -> None:
    one = load_encoder(EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=1), progress=False)
    assert tiny_encoder.batch_size >= len(windows)
    np.testing.assert_allclose(one.embed_audio(windows), audio, atol=1e-5)
    np.testing.assert_allclose(one.embed_text(TEXTS), tiny_encoder.embed_text(TEXTS), atol=1e-5)


def test_different_inputs_differ(tiny_encoder: Any, audio: np.ndarray) -> None:
    assert not np.allclose(audio[0], audio[1])
    text = tiny_encoder.embed_text(["dog barking", "glass breaking"])
    assert not np.allclose(text[0], text[1])


def test_global_numpy_random_state_untouched(tiny_encoder: Any, windows: np.ndarray) -> None:
    np.random.seed(1234)
    expected = np.random.random(3)
    np.random.seed(1234)
    tiny_encoder.embed_audio(windows[:1])
    assert np.array_equal(np.random.random(3), expected)


@pytest.mark.parametrize("length", [S - 1, S + 1, S // 2, 2 * S])
def test_wrong_window_length_raises(tiny_encoder: Any, length: int) -> None:
    with pytest.raises(ValueError, match="windows must be exactly 480000 samples"):
        tiny_encoder.embed_audio(np.zeros((2, length), np.float32))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros(S, np.float32), "expected \\(N, S\\) mono windows"),
        (np.zeros((1, 2, S), np.float32), "expected \\(N, S\\) mono windows"),
        (np.zeros((1, S), np.int16), "floating point"),
        (np.full((1, S), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_audio_raises(tiny_encoder: Any, bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tiny_encoder.embed_audio(bad)


def test_float64_windows_are_accepted(tiny_encoder: Any, windows: np.ndarray, audio: np.ndarray) -> None:
    np.testing.assert_allclose(tiny_encoder.embed_audio(windows[:1].astype(np.float64)), audio[:1], atol=1e-5)


def test_bad_text_raises(tiny_encoder: Any) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        tiny_encoder.embed_text(["dog", "  "])
    with pytest.raises(TypeError):
        tiny_encoder.embed_text("dog barking")


def test_long_text_is_cut_at_77_tokens(tiny_encoder: Any) -> None:
    long = TEXTS[2]
    assert len(tiny_encoder.tokenizer(long)["input_ids"]) > 77
    longer = long + " thunder storm" * 20
    np.testing.assert_array_equal(tiny_encoder.embed_text([long]), tiny_encoder.embed_text([longer]))


def test_fused_model_is_deterministic_and_batch_invariant(tmp_path: Path, windows: np.ndarray) -> None:
    """transformers marks one short clip per batch ``is_longer`` at random for fused models; we never do."""
    folder = make_tiny_clap(tmp_path / "fused", seed=0, fusion=True)
    one = load_encoder(EncoderConfig(model=str(folder), device="cpu", batch_size=1), progress=False)
    assert one.model.config.audio_config.enable_fusion and one.feature_extractor.truncation == "fusion"
    first = one.embed_audio(windows)
    _assert_unit_rows(first, len(windows))
    one.batch_size = len(windows)
    for _ in range(3):
        np.testing.assert_allclose(one.embed_audio(windows), first, atol=1e-5)
