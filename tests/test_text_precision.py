"""The CLAP text tower's precision paths (``encoders/clap/text_path.py``, issue 27): fp32, bf16 and torch int8;
``auto``'s probe, its remembered choice (int8 for serving processes only), the rejection of a path below
cosine 0.999, forced paths, and the in-place conversion of a tower the encoder loaded itself. Tiny CLAP (seed 0); the probe is made to treat its
towers as full-size ones (``min_params_for_lowp = 0``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.clap import fast_paths, text_path
from diffgap_search.encoders.clap.encoder import ClapEncoder
from diffgap_search.encoders.clap.path_choice import runtime_stamp
from diffgap_search.encoders.precision import MIN_LOW_PRECISION_COSINE, Precision, remembered_paths
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.encoders.runtime import native_bf16

TEXTS = ["dog barking", "rain falling on a roof in the city at night", "a bell", "footsteps on gravel"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(folder))
    return folder


def _loaded(model_dir: Path, precision: str) -> Any:
    """An encoder that loaded its own model (``owns_model``), as ``dgsearch query`` gets one."""
    return load_encoder(EncoderConfig(model=str(model_dir), device="cpu", batch_size=4, precision=precision),
                        progress=False)


def _sharing(base: Any, precision: str) -> ClapEncoder:
    """An encoder on ``base``'s model (not its own: its towers are copied, never converted)."""
    return ClapEncoder(base.model, base.feature_extractor, base.tokenizer, model_id=base.model_id,
                       fingerprint=base.fingerprint, device=torch.device("cpu"), precision=precision)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def test_auto_probes_a_serving_text_tower_picks_an_agreeing_path_and_remembers_it(
        tiny_encoder: Any, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exact = _sharing(tiny_encoder, "fp32").embed_text(TEXTS)
    first = _sharing(tiny_encoder, "auto")
    first.min_params_for_lowp = 0
    first.text_serving = True  # as `dgsearch serve` sets it: int8's one-time quantisation pays off there
    vectors = first.embed_text(TEXTS)
    expected = {"text int8"} | ({"text bf16"} if native_bf16(torch.device("cpu")) else set())
    assert set(first.probe_report) == expected
    chosen = first.text_path
    assert chosen == Precision.FP32 or first.probe_report[f"text {chosen}"] >= MIN_LOW_PRECISION_COSINE
    assert _min_cosine(exact, vectors) >= MIN_LOW_PRECISION_COSINE
    where = (f"text serving on cpu, torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
             f"{runtime_stamp()}")
    assert remembered_paths(first.fingerprint) == {where: str(chosen)}  # what `dgsearch info` lists

    def no_probe(*_args: Any) -> Any:
        raise AssertionError("a remembered text path must not be probed again")

    monkeypatch.setattr(text_path, "probe", no_probe)
    second = _sharing(tiny_encoder, "auto")  # a cold process: the remembered path
    second.min_params_for_lowp = 0
    second.text_serving = True
    np.testing.assert_array_equal(second.embed_text(TEXTS), vectors)
    assert second.text_path == chosen and second.probe_report == {}


def test_a_one_shot_process_never_quantises_its_text_tower_under_auto(tiny_encoder: Any, cache: Path) -> None:
    """A cold ``dgsearch query`` embeds one text: int8's quantisation (about 2 s of CPU for RoBERTa-base) would
    cost more than it saves, so ``auto`` probes bf16 only (where native) and remembers apart from serving."""
    encoder = _sharing(tiny_encoder, "auto")
    encoder.min_params_for_lowp = 0
    encoder.embed_text(TEXTS)
    assert encoder.text_path != Precision.INT8 and "text int8" not in encoder.probe_report
    native = native_bf16(torch.device("cpu"))
    assert set(encoder.probe_report) == ({"text bf16"} if native else set())
    keys = set(remembered_paths(encoder.fingerprint))
    assert keys == ({next(iter(keys))} if native else set()) and all(k.startswith("text on cpu") for k in keys)


def test_the_text_probe_rejects_paths_below_0999_and_keeps_fp32(tiny_encoder: Any, cache: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """With a bar no low-precision path can pass, ``auto`` keeps float32 (bit-equal to it) and remembers it."""
    monkeypatch.setattr(text_path, "MIN_LOW_PRECISION_COSINE", 1.000001)
    encoder = _sharing(tiny_encoder, "auto")
    encoder.min_params_for_lowp = 0
    encoder.text_serving = True
    vectors = encoder.embed_text(TEXTS)
    assert encoder.text_path == Precision.FP32 and encoder.text_dtype == torch.float32
    assert "text int8" in encoder.probe_report
    np.testing.assert_array_equal(vectors, _sharing(tiny_encoder, "fp32").embed_text(TEXTS))
    assert set(remembered_paths(encoder.fingerprint).values()) == {"fp32"}


def test_small_text_towers_stay_in_fp32_under_auto(tiny_encoder: Any, cache: Path) -> None:
    encoder = _sharing(tiny_encoder, "auto")
    encoder.embed_text(TEXTS)
    assert encoder.text_path == Precision.FP32 and encoder.probe_report == {}
    assert remembered_paths(encoder.fingerprint) == {}


@pytest.mark.parametrize(("precision", "path"), [("fp32", "fp32"), ("bf16", "bf16"), ("int8", "int8"),
                                                  ("onnx", "fp32"), ("onnx-int8", "fp32")])
def test_a_forced_precision_sets_the_text_path(tiny_encoder: Any, cache: Path, precision: str, path: str) -> None:
    """Forced paths apply to the text tower where it has them; the ONNX paths are the audio tower's alone."""
    exact = _sharing(tiny_encoder, "fp32").embed_text(TEXTS)
    encoder = _sharing(tiny_encoder, precision)
    vectors = encoder.embed_text(TEXTS)
    assert encoder.text_path == path and encoder.probe_report == {}
    assert vectors.shape == (4, encoder.dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    if path == "fp32":
        np.testing.assert_array_equal(vectors, exact)
    else:  # a tiny random tower: looser than the probe's bar, which full-size towers meet (bench_precision)
        assert _min_cosine(exact, vectors) >= 0.99


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_a_known_text_path_converts_an_owned_tower_in_place(tiny_clap_dir: Path, tiny_encoder: Any, cache: Path,
                                                           precision: str) -> None:
    """A cold query whose text path is known converts its own text tower instead of copying it: the same
    vectors as the copy, one tower in memory, and no float32 path left to call by mistake."""
    copied = _sharing(tiny_encoder, precision)  # shares the fixture's model: must copy, never convert
    expected = copied.embed_text(TEXTS)
    assert not copied._text_converted
    assert all(type(m) is torch.nn.Linear and m.weight.dtype == torch.float32
               for m in tiny_encoder.model.text_model.modules() if isinstance(m, torch.nn.Linear))
    own = _loaded(tiny_clap_dir, precision)
    np.testing.assert_array_equal(own.embed_text(TEXTS), expected)
    assert own._text_converted and own.text_path == precision
    linears = [m for m in own.model.text_model.modules() if "Linear" in type(m).__name__]
    if precision == "bf16":
        assert all(m.weight.dtype == torch.bfloat16 for m in linears)
    else:
        assert linears and not any(type(m) is torch.nn.Linear for m in linears)  # dynamic int8 Linear modules
    with pytest.raises(RuntimeError, match=f"converted to {precision} in place"):
        own._exact_text_run()
