"""The torch log-mel (``encoders.fast_features``) equals transformers' ``ClapFeatureExtractor``; the
encoder's speed paths (fast features, bf16 towers, texts padded to the longest) keep its vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from diffgap_search.encoders.clap.encoder import ClapEncoder
from diffgap_search.encoders.clap.features import TorchLogMel

S = 480_000
SR = 48_000


def _signals() -> np.ndarray:
    """Noise, a pure tone, silence, a short burst then zeros, a faint hiss, a lowpassed (32 kHz) tone."""
    import soxr

    rng = np.random.default_rng(0)
    t = np.arange(S) / SR
    burst = np.zeros(S)
    burst[:5000] = 0.4 * rng.standard_normal(5000)
    low = soxr.resample(0.3 * np.sin(2 * np.pi * 300 * np.arange(320_000) / 32_000), 32_000, SR)[:S]
    rows = [np.clip(0.3 * rng.standard_normal(S), -1, 1), 0.5 * np.sin(2 * np.pi * 440 * t), np.zeros(S), burst,
            1e-4 * rng.standard_normal(S), low]
    return np.stack(rows).astype(np.float32)


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
def test_torch_log_mel_equals_the_extractor(tiny_clap_dir: Path, truncation: str) -> None:
    from transformers import ClapFeatureExtractor

    fe = ClapFeatureExtractor.from_pretrained(str(tiny_clap_dir))
    fe.truncation = truncation
    windows = _signals()
    state = np.random.get_state()
    ref = fe(list(windows), sampling_rate=SR, return_tensors="np")["input_features"]
    np.random.set_state(state)
    fast = TorchLogMel(fe)
    out = fast(windows)
    assert out.shape == ref.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)  # dB; measured ≤ 1e-5


def test_torch_log_mel_refuses_other_lengths(tiny_clap_dir: Path) -> None:
    from transformers import ClapFeatureExtractor

    fast = TorchLogMel(ClapFeatureExtractor.from_pretrained(str(tiny_clap_dir)))
    with pytest.raises(ValueError):
        fast(np.zeros((1, S - 1), np.float32))


def test_the_float32_stft_stays_within_a_fraction_of_a_db(tiny_clap_dir: Path) -> None:
    """The low-precision paths' features: on the six signals (noise, tone, silence, burst, faint hiss,
    lowpassed tone), within 0.2 dB of the float64 STFT's everywhere and 0.002 dB on average (measured on real
    recordings: 0.12 and 0.0004)."""
    from transformers import ClapFeatureExtractor

    fast = TorchLogMel(ClapFeatureExtractor.from_pretrained(str(tiny_clap_dir)))
    windows = _signals()
    exact, low = fast(windows), fast(windows, torch.float32)
    assert low.shape == exact.shape and low.dtype == np.float32
    gap = np.abs(low - exact)
    assert gap.max() < 0.2 and gap.mean() < 0.002 and gap.max() > 0  # a real difference, and a small one
    with pytest.raises(ValueError, match="stft_dtype"):
        fast(windows, torch.float16)


@pytest.mark.parametrize(("precision", "stft"), [("fp32", torch.float64), ("int8", torch.float32),
                                                 ("bf16", torch.float32)])
def test_only_the_fp32_path_keeps_the_float64_stft(tiny_encoder: Any, precision: str, stft: torch.dtype) -> None:
    encoder = _encoder(tiny_encoder, precision=precision)
    assert encoder.stft_dtype == torch.float64  # before the path is known
    encoder.embed_audio(_signals()[:2])
    assert encoder.audio_path == precision and encoder.stft_dtype == stft


def _encoder(base: Any, **kwargs: Any) -> ClapEncoder:
    return ClapEncoder(base.model, base.feature_extractor, base.tokenizer, model_id=base.model_id,
                       fingerprint=base.fingerprint, device=torch.device("cpu"), **kwargs)


def test_encoder_uses_fast_features_with_the_same_vectors(tiny_encoder: Any) -> None:
    assert tiny_encoder._fast_features is not None
    slow = _encoder(tiny_encoder, precision="fp32")
    slow._fast_features = None
    windows = _signals()
    np.testing.assert_allclose(tiny_encoder.embed_audio(windows), slow.embed_audio(windows), atol=1e-5)


def test_auto_precision_keeps_small_towers_exact(tiny_encoder: Any) -> None:
    tiny_encoder.embed_audio(_signals()[:1])
    tiny_encoder.embed_text(["dog"])
    assert tiny_encoder.audio_dtype == torch.float32 and tiny_encoder.text_dtype == torch.float32


def test_bf16_vectors_stay_within_cosine_0999(tiny_encoder: Any) -> None:
    low = _encoder(tiny_encoder, precision="bf16")
    exact = _encoder(tiny_encoder, precision="fp32")
    windows = _signals()
    a, b = low.embed_audio(windows), exact.embed_audio(windows)
    assert low.audio_dtype == torch.bfloat16
    assert np.min(np.sum(a * b, axis=1)) >= 0.999
    texts = ["dog barking", "rain falling on a roof in the city at night"]
    assert np.min(np.sum(low.embed_text(texts) * exact.embed_text(texts), axis=1)) >= 0.999


def test_unknown_precision_is_refused(tiny_encoder: Any) -> None:
    with pytest.raises(ValueError, match="precision"):
        _encoder(tiny_encoder, precision="fp8")


def test_padding_to_the_longest_equals_padding_to_77(tiny_encoder: Any) -> None:
    texts = ["dog", "a loud car engine in the city at night with rain falling and thunder"]
    tok = tiny_encoder.tokenizer(texts, padding="max_length", truncation=True,
                                 max_length=tiny_encoder.text_max_tokens, return_tensors="pt")
    with torch.inference_mode():
        out = tiny_encoder.model.get_text_features(**tok)
    ref = torch.nn.functional.normalize(getattr(out, "pooler_output", out), dim=-1).numpy()
    np.testing.assert_allclose(tiny_encoder.embed_text(texts), ref, atol=1e-5)


def test_precision_probe_verdict_is_remembered(tiny_encoder: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold process reuses the bf16 agreement verdict for the same weights instead of probing again."""
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(tmp_path))
    calls: list[str] = []

    def agreement(value: float) -> Any:
        return lambda: calls.append("probe") or value

    first = _encoder(tiny_encoder, precision="auto")
    assert first._low_precision_agrees("text", agreement(0.9995)) is True
    second = _encoder(tiny_encoder, precision="auto")
    assert second._low_precision_agrees("text", agreement(0.1)) is True  # remembered, not probed
    assert second._low_precision_agrees("audio", agreement(0.5)) is False
    assert calls == ["probe", "probe"]
    assert second._low_precision_agrees("audio", agreement(0.9999)) is False
    assert calls == ["probe", "probe"]
