"""aisfx's precision paths (``encoders/aisfx/precision.py``): bf16 agrees with float32 within cosine 0.999 on
real recordings (Debian's CC0 sonic-pi samples, the package's real weights); ``auto`` probes only where bfloat16
is native, remembers its choice per machine, and ``dgsearch info`` shows it; CLAP's other paths are refused.

Whether this CPU runs bfloat16 natively is a fact of the machine: the tests of ``auto`` on the other kind of CPU
set ``native_bf16``'s answer (the probe itself runs for real, emulated where bf16 is not native).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from real_sounds import require_real_sounds
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.encoders.aisfx import precision as aisfx_precision
from diffgap_search.encoders.aisfx.encoder import load_aisfx_encoder
from diffgap_search.encoders.precision import FILE_NAME, Precision
from diffgap_search.errors import UsageError
from diffgap_search.media.audio import load_audio

pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")

RATE = 44_100


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(folder))
    return folder


def _remembered(cache: Path) -> dict[str, object]:
    return {k: v for k, v in json.loads((cache / FILE_NAME).read_text()).items() if "aisfx paths" in k}


def test_bf16_vectors_of_real_recordings_stay_within_0999_of_float32(cache: Path) -> None:
    sounds = require_real_sounds()[::10]  # 13 of the 130, every kind of length
    fp32 = load_aisfx_encoder("cpu", precision="fp32")
    bf16 = load_aisfx_encoder("cpu", precision="bf16")
    assert (fp32.precision, bf16.precision) == (Precision.FP32, Precision.BF16)
    assert fp32.probe_report == bf16.probe_report == {}  # forced paths probe nothing
    cosines = []
    for sound in sounds:
        samples = load_audio(sound.path, RATE)[: 10 * RATE][None, :]
        a, b = fp32.embed_audio(samples), bf16.embed_audio(samples)
        assert a.shape == b.shape == (1, 512) and b.dtype == np.float32
        assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-6)
        cosines.append(float(a[0] @ b[0]))
    assert len(cosines) == 13
    assert min(cosines) >= 0.999, cosines  # measured min 0.99990 over all 130 (2026-12-06)
    assert not (cache / FILE_NAME).exists()  # nothing remembered for forced paths


def test_auto_where_bf16_is_not_native_is_float32_without_a_probe_and_remembered(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aisfx_precision, "native_bf16", lambda device: False)
    encoder = load_aisfx_encoder("cpu")
    assert (encoder.precision, encoder.probe_report) == (Precision.FP32, {})
    remembered = _remembered(cache)
    assert list(remembered.values()) == ["fp32"]
    key = next(iter(remembered))
    assert key.startswith(f"{encoder.fingerprint}|audio|cpu|torch ") and key.endswith("|aisfx paths 1|auto")


def test_auto_where_bf16_is_native_probes_once_and_a_cold_load_takes_the_remembered_path(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aisfx_precision, "native_bf16", lambda device: True)
    first = load_aisfx_encoder("cpu")
    report = first.probe_report
    assert report["bf16"] >= 0.999  # the probe's noise and sweep: measured 0.9996+
    faster = Precision.BF16 if report["bf16 s"] < report["fp32 s"] else Precision.FP32
    assert first.precision == faster
    assert list(_remembered(cache).values()) == [str(faster)]
    again = load_aisfx_encoder("cpu")
    assert (again.precision, again.probe_report) == (faster, {})


def test_a_probe_below_the_threshold_keeps_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    def embed(windows: np.ndarray, path: Precision) -> np.ndarray:
        rows = np.zeros((len(windows), 4), np.float32)
        rows[:, 0 if path == Precision.FP32 else 1] = 1.0  # orthogonal: cosine 0
        return rows

    path, report = aisfx_precision.probe(embed, RATE)
    assert (path, report) == (Precision.FP32, {"bf16": 0.0})


@pytest.mark.parametrize("path", ["int8", "onnx", "onnx-int8", "fp16"])
def test_clap_only_paths_are_refused_before_loading(path: str) -> None:
    with pytest.raises(UsageError, match=f"precision '{path}' is not a path of model 'aisfx': use auto, fp32 or bf16"):
        load_aisfx_encoder("cpu", checkpoint=Path("/nonexistent.pth"), precision=path)


def test_cli_refuses_int8_for_aisfx_with_exit_2_and_info_shows_the_path_taken(tmp_path: Path, cache: Path) -> None:
    sound = require_real_sounds()[0]
    folder = tmp_path / "clips"
    folder.mkdir()
    (folder / sound.path.name).write_bytes(sound.path.read_bytes())
    index = tmp_path / "ix"
    refused = CliRunner().invoke(app, ["index", str(folder), "--index", str(index), "--model", "aisfx",
                                       "--precision", "int8"])
    assert refused.exit_code == 2
    assert "precision 'int8' is not a path of model 'aisfx'" in refused.output
    done = CliRunner().invoke(app, ["index", str(folder), "--index", str(index), "--model", "aisfx",
                                    "--precision", "auto", "--workers", "0"])
    assert done.exit_code == 0, done.output
    summary = json.loads(CliRunner().invoke(app, ["info", "--index", str(index), "--json"]).stdout)["summary"]
    (chosen,) = _remembered(cache).values()
    query_path, network_path = summary["precision path"].split("; ")  # onnx_query.py's export, then the network's
    assert query_path.startswith("audio query on cpu, torch ") and query_path.endswith(", aisfx onnx 1: onnx")
    assert network_path.startswith("audio on cpu, torch ")
    assert network_path.endswith(f", aisfx paths 1: {chosen}")


def test_a_gpu_probe_times_the_two_windows_repeated_to_the_batch_size(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At two windows a GPU runs launch-bound (every path the same time): there the timing runs on batch_size
    windows; the agreement is still judged on the two. No GPU is needed to see which windows the probe asks for."""
    import torch

    monkeypatch.setattr(aisfx_precision, "native_bf16", lambda device: True)
    asked: list[tuple[int, str]] = []

    def embed(windows: np.ndarray, path: Precision) -> np.ndarray:
        asked.append((len(windows), str(path)))
        rows = np.zeros((len(windows), 4), np.float32)
        rows[:, 0] = 1.0
        return rows

    path, report = aisfx_precision.choose_path("auto", "f" * 64, torch.device("cuda"), embed, RATE, batch_size=16)
    assert asked == [(2, "fp32"), (2, "bf16")] + [(16, "fp32")] * 3 + [(16, "bf16")] * 3
    assert report["bf16"] == 1.0 and path in (Precision.FP32, Precision.BF16)
    key = aisfx_precision.choice_key("f" * 64, torch.device("cuda"))
    assert key.endswith("|cuda synced|aisfx paths 1|auto") and _remembered(cache) == {key: str(path)}
    asked.clear()
    aisfx_precision.choose_path("auto", "e" * 64, torch.device("cpu"), embed, RATE, batch_size=16)
    assert asked[2:] == [(2, "fp32")] * 3 + [(2, "bf16")] * 3  # on the CPU the two windows are timed as they are
