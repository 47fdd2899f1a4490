"""CLAP's precision paths (issue 27): the probe, ``auto``'s remembered choice, each path's agreement with
float32 on real recordings, and an index built in float32 queried through every path.

Tiny CLAP (seed 0) except the one slow real-size check; real recordings: the sonic-pi CC0 samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from diffgap_search.config import EncoderConfig, WindowConfig
from diffgap_search.encoders.clap import fast_paths
from diffgap_search.encoders.clap.path_choice import runtime_stamp
from diffgap_search.encoders.precision import FILE_NAME, MIN_LOW_PRECISION_COSINE, remembered_paths
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.encoders.runtime import native_bf16
from real_sounds import require_real_sounds

ONNX = pytest.mark.skipif(not fast_paths.onnx_available(), reason="onnxruntime not installed (the onnx extra)")
CPU_PATHS = ["int8", pytest.param("onnx", marks=ONNX), pytest.param("onnx-int8", marks=ONNX)]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh dgsearch cache: no remembered verdict, no ONNX export."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def real_windows() -> np.ndarray:
    """``(13, 480000) float32``: the first window of every tenth sonic-pi sample, as indexed."""
    from diffgap_search.media.audio import load_audio
    from diffgap_search.media.windows import window_audio

    sounds = require_real_sounds()[::10]
    cfg = WindowConfig()
    return np.concatenate([window_audio(load_audio(s.path, cfg.sample_rate), cfg).samples[:1] for s in sounds])


def _encoder(model_dir: Path, precision: str) -> Any:
    return load_encoder(EncoderConfig(model=str(model_dir), device="cpu", batch_size=4, precision=precision),
                        progress=False)


@pytest.mark.parametrize("path", ["bf16", *CPU_PATHS])
def test_each_path_stays_within_cosine_0999_of_fp32_on_real_recordings(tiny_clap_dir: Path, cache: Path,
                                                                       real_windows: np.ndarray, path: str) -> None:
    exact = _encoder(tiny_clap_dir, "fp32").embed_audio(real_windows)
    encoder = _encoder(tiny_clap_dir, path)
    cosines = np.sum(exact * encoder.embed_audio(real_windows), axis=1)
    assert encoder.audio_path == path and len(cosines) == 13
    assert cosines.min() >= MIN_LOW_PRECISION_COSINE
    if path == "onnx":  # the same float32 graph: equal to rounding
        assert cosines.min() >= 0.99999


def test_the_probe_rejects_a_path_below_0999(tiny_clap_dir: Path, cache: Path) -> None:
    """An outlier feature (the real failure of int8 in networks that have them): the projection's first layer
    gets one huge weight and one hidden unit that is always ~1000, which float32's second layer ignores (a zero
    column); int8's per-tensor scales round every other weight and activation of those layers to a few levels.
    ``auto`` measures the int8 paths below 0.999, refuses them and remembers so."""
    encoder = _encoder(tiny_clap_dir, "auto")
    encoder.min_params_for_lowp = 0  # the tiny tower is probed as a full-size one would be
    projection = encoder.model.audio_projection
    with torch.no_grad():
        projection.linear1.weight[1, 0] = 1000 * projection.linear1.weight.abs().max()
        projection.linear1.bias[0] = 1000.0
        projection.linear2.weight[:, 0] = 0.0
    encoder.embed_audio(np.zeros((1, encoder.window_samples), np.float32))
    assert encoder.probe_report["int8"] < MIN_LOW_PRECISION_COSINE
    assert encoder.audio_path not in ("int8", "onnx-int8")
    if fast_paths.onnx_available():
        assert encoder.probe_report["onnx-int8"] < MIN_LOW_PRECISION_COSINE
    verdicts = json.loads((cache / FILE_NAME).read_text())
    assert [v for k, v in verdicts.items() if k.endswith("|audio|cpu|torch " + torch.__version__ + "|int8")] == [False]


def test_auto_picks_an_agreeing_path_and_remembers_it(tiny_clap_dir: Path, cache: Path,
                                                      real_windows: np.ndarray) -> None:
    first = _encoder(tiny_clap_dir, "auto")
    first.min_params_for_lowp = 0
    vectors = first.embed_audio(real_windows[:4])
    expected = {"int8", "onnx", "onnx-int8"} if fast_paths.onnx_available() else {"int8"}
    expected |= {"bf16"} if native_bf16(torch.device("cpu")) else set()  # probed only where native
    assert set(first.probe_report) == expected
    chosen = str(first.audio_path)
    assert chosen == "fp32" or first.probe_report[chosen] >= MIN_LOW_PRECISION_COSINE
    where = (f"audio on cpu, torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
             f"{runtime_stamp()}")
    audio = {k: v for k, v in remembered_paths(first.fingerprint).items() if k.startswith("audio on ")}
    assert audio == {where: chosen}  # (beside it, the text tower's export for word queries: test_clap_text_onnx.py)
    second = _encoder(tiny_clap_dir, "auto")  # a cold process: the remembered path, no probe
    second.min_params_for_lowp = 0
    np.testing.assert_array_equal(second.embed_audio(real_windows[:4]), vectors)
    assert second.probe_report == {} and second.audio_path == chosen


def test_small_towers_stay_in_fp32_under_auto(tiny_clap_dir: Path, cache: Path) -> None:
    encoder = _encoder(tiny_clap_dir, "auto")
    encoder.embed_audio(np.zeros((1, encoder.window_samples), np.float32))
    assert encoder.audio_path == "fp32" and encoder.probe_report == {}
    assert [p.name for p in (cache / "onnx").glob(f"{encoder.fingerprint}-audio-*")] == []  # no audio export


@ONNX
def test_the_onnx_export_is_cached_by_weights_and_versions(tiny_clap_dir: Path, cache: Path) -> None:
    encoder = _encoder(tiny_clap_dir, "onnx-int8")
    encoder.embed_audio(np.zeros((1, encoder.window_samples), np.float32))
    files = sorted((p.name for p in (cache / "onnx").iterdir()), key=len)  # the float32 export, then int8's
    assert len(files) == 2 and files[0].startswith(encoder.fingerprint) and files[1] == files[0][:-5] + fast_paths.int8_suffix() + ".onnx"
    assert f"torch{torch.__version__}".replace("+", "_") in files[0]
    stamp = (cache / "onnx" / files[1]).stat().st_mtime_ns
    _encoder(tiny_clap_dir, "onnx-int8").embed_audio(np.zeros((1, encoder.window_samples), np.float32))
    assert (cache / "onnx" / files[1]).stat().st_mtime_ns == stamp  # reused, not exported again


@pytest.mark.parametrize("path", CPU_PATHS)
def test_an_fp32_index_queried_through_another_path_gives_the_same_hits(tiny_clap_dir: Path, cache: Path,
                                                                         tmp_path: Path, path: str) -> None:
    from diffgap_search.indexing import index_folder
    from diffgap_search.config import IndexingConfig
    from diffgap_search.search import Query, Searcher
    from diffgap_search.search.options import SearchConfig, SearchMode

    folder = tmp_path / "sounds"
    folder.mkdir()
    sounds = require_real_sounds()[::6]
    for sound in sounds:
        shutil.copy(sound.path, folder / sound.path.name)
    index_dir = tmp_path / "index"
    cfg = EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=8, precision="fp32")
    index_folder(folder, index_dir, load_encoder=lambda c: load_encoder(c, progress=False), encoder_cfg=cfg,
                 indexing_cfg=IndexingConfig(decode_workers=0))

    def hits(precision: str, top_k: int) -> list[dict[str, float]]:
        out = []
        with Searcher(index_dir, lambda c: load_encoder(c, progress=False), device="cpu", precision=precision) as s:
            for sound in sounds[:4]:
                found = s.search(Query(audio=folder / sound.path.name), SearchConfig(mode=SearchMode.SEMANTIC, top_k=top_k)).hits
                out.append({Path(h.path).name: h.score for h in found})
        return out

    exact, other = hits("fp32", len(sounds)), hits(path, 5)
    assert [next(iter(found)) for found in exact] == [s.path.name for s in sounds[:4]]  # each finds itself first
    for found_a, found_b in zip(exact, other):
        assert next(iter(found_b)) == next(iter(found_a))
        # the same files score the same within the probe's tolerance; so the top 5 differ at most by swaps of
        # files whose float32 scores are that close (a tiny random CLAP scores many sounds alike)
        assert all(abs(found_a[name] - score) <= 2e-3 for name, score in found_b.items())
        fifth = list(found_a.values())[4]
        assert all(found_a[name] >= fifth - 4e-3 for name in found_b)


@ONNX
def test_info_shows_the_path_auto_chose_on_this_machine(tiny_clap_dir: Path, cache: Path, clips_dir: Path,
                                                        tmp_path: Path) -> None:
    from diffgap_search.config import IndexingConfig
    from diffgap_search.indexing import index_folder
    from diffgap_search.info import index_info

    index_dir = tmp_path / "index"
    cfg = EncoderConfig(model=str(tiny_clap_dir), device="cpu", batch_size=8)
    index_folder(clips_dir, index_dir, load_encoder=lambda c: load_encoder(c, progress=False), encoder_cfg=cfg,
                 indexing_cfg=IndexingConfig(decode_workers=0))
    text = index_info(index_dir).summary["precision path"]  # the eager load exported the text tower, no audio probe
    assert text.startswith(f"text query on cpu, torch {torch.__version__}, ") and text.endswith(": onnx")
    encoder = _encoder(tiny_clap_dir, "auto")
    encoder.min_params_for_lowp = 0
    encoder.embed_audio(np.zeros((1, encoder.window_samples), np.float32))
    where = f"audio on cpu, torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {runtime_stamp()}"
    parts = index_info(index_dir).summary["precision path"].split("; ")
    queries = [part for part in parts if part.startswith("audio query on cpu, ")]  # an ONNX path, kept for queries
    assert [part for part in parts if part not in queries] == [f"{where}: {encoder.audio_path}", text]
    onnx = encoder.audio_path in ("onnx", "onnx-int8")
    assert [q.endswith(f", clap audio onnx 1: {encoder.audio_path}") for q in queries] == ([True] if onnx else [])


def test_cli_index_and_query_take_a_precision(tiny_clap_dir: Path, cache: Path, clips_dir: Path,
                                              tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from diffgap_search.cli.app import app

    def dg(*args: Any) -> Any:
        return CliRunner().invoke(app, [str(a) for a in args])

    bad = dg("index", clips_dir, "--index", tmp_path / "ix", "--model", tiny_clap_dir, "--precision", "fp16")
    assert bad.exit_code == 2 and "--precision" in bad.output and "got 'fp16'" in bad.output
    assert dg("index", clips_dir, "--index", tmp_path / "ix", "--model", tiny_clap_dir, "--workers", "0",
              "--device", "cpu", "--precision", "int8").exit_code == 0
    tops = []
    for precision in ("fp32", "int8"):
        r = dg("query", "--audio", clips_dir / "dog_bark.wav", "--index", tmp_path / "ix", "--device", "cpu",
               "--precision", precision, "--mode", "semantic", "--json")
        assert r.exit_code == 0, r.output
        tops.append([Path(h["path"]).name for h in json.loads(r.stdout)["hits"]][0])
    assert tops == ["dog_bark.wav", "dog_bark.wav"]


@pytest.mark.slow
def test_real_size_clap_auto_path_holds_on_real_recordings(tmp_path: Path, cache: Path,
                                                           real_windows: np.ndarray) -> None:
    """The full-size ``laion/clap-htsat-unfused`` architecture (random weights, seed 0): ``auto`` probes every
    native path, and the one it takes gives vectors within cosine 0.999 of float32's on each real window; every
    CPU path does too (a few minutes on 2 busy cores)."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    from fixtures_models import _quietly, _save_tokenizer

    folder = tmp_path / "clap-full"
    folder.mkdir()
    _save_tokenizer(folder, 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ClapModel(ClapConfig(projection_dim=512)).eval()
    _quietly(model.save_pretrained, str(folder), safe_serialization=True)
    ClapFeatureExtractor(feature_size=64, sampling_rate=48_000, hop_length=480, max_length_s=10, fft_window_size=1024,
                         frequency_min=50, frequency_max=14_000, truncation="rand_trunc",
                         padding="repeatpad").save_pretrained(str(folder))
    exact = _encoder(folder, "fp32").embed_audio(real_windows)
    encoder = _encoder(folder, "auto")
    vectors = encoder.embed_audio(real_windows)
    assert set(encoder.probe_report) >= {"int8"}
    assert np.min(np.sum(exact * vectors, axis=1)) >= MIN_LOW_PRECISION_COSINE
    for path in ("int8", "onnx", "onnx-int8") if fast_paths.onnx_available() else ("int8",):
        other = _encoder(folder, path).embed_audio(real_windows)
        assert np.min(np.sum(exact * other, axis=1)) >= MIN_LOW_PRECISION_COSINE, path
