"""aisfx's torch-free query path (``encoders/aisfx/onnx_query.py``): the package's real network exported to ONNX
once, kept only where it agrees with torch's float32 vectors, and a real ``dgsearch query --audio`` process that
then embeds its file with ONNX Runtime and numpy, never importing torch, and finds what the torch path finds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from query_process import query_process
from real_sounds import require_real_sounds

from diffgap_search.config import WindowConfig
from diffgap_search.encoders.aisfx.encoder import AisfxNet, load_aisfx_encoder
from diffgap_search.encoders.aisfx.onnx_query import (
    OnnxAisfx,
    export_checked,
    onnx_file,
    query_key,
    ready_file,
)
from diffgap_search.encoders.clap.batches import probe_windows
from diffgap_search.encoders.onnx_session import runtime_version
from diffgap_search.encoders.precision import FILE_NAME, Precision
from diffgap_search.media.audio import load_audio
from diffgap_search.media.windows import window_audio

pytest.importorskip("aisfx", reason="the aisfx package (pip install --no-deps aisfx==0.1.2) holds the weights")
pytest.importorskip("onnxruntime", reason="the onnx extra: pip install 'diffgap-search[onnx]'")
pytest.importorskip("onnx", reason="the onnx extra: pip install 'diffgap-search[onnx]'")

RATE = 44_100
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "clips"


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def fp32():  # type: ignore[no-untyped-def]
    return load_aisfx_encoder("cpu", precision="fp32")  # forced: exports nothing


def _reference(encoder):  # type: ignore[no-untyped-def]
    return lambda windows: encoder._embed_equal(windows, Precision.FP32)


def test_export_is_made_once_checked_and_remembered(fp32, cache: Path) -> None:  # type: ignore[no-untyped-def]
    windows = probe_windows(3 * RATE, RATE)
    assert ready_file(fp32.fingerprint) is None  # nothing exported on this machine yet
    path = export_checked(fp32.net, fp32.fingerprint, _reference(fp32), windows)
    assert path == onnx_file(fp32.fingerprint) and path.is_file()
    assert path.name == (f"{fp32.fingerprint}-aisfx-x1-torch{_torch()}-ort{runtime_version()}.onnx").replace("+", "_")
    assert ready_file(fp32.fingerprint) == path
    assert json.loads((cache / FILE_NAME).read_text()) == {query_key(fp32.fingerprint): "onnx"}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    made = path.stat().st_mtime_ns
    assert export_checked(fp32.net, fp32.fingerprint, _reference(fp32), windows) == path
    assert path.stat().st_mtime_ns == made  # the second call exports nothing


def test_an_export_that_disagrees_with_float32_is_dropped_and_not_tried_again(fp32, cache: Path) -> None:  # type: ignore[no-untyped-def]
    """The reference is another network (seeded random weights): the export of the real one cannot agree."""
    import torch

    torch.manual_seed(0)
    other = load_aisfx_encoder("cpu", precision="fp32")
    other.net.load_state_dict(AisfxNet().state_dict())
    windows = probe_windows(3 * RATE, RATE)
    assert export_checked(fp32.net, fp32.fingerprint, _reference(other), windows) is None
    assert json.loads((cache / FILE_NAME).read_text()) == {query_key(fp32.fingerprint): "fp32"}
    assert not (cache / "onnx").exists() or list((cache / "onnx").iterdir()) == []
    assert ready_file(fp32.fingerprint) is None
    # remembered: even the right reference is not tried again on this machine (the verdict stands)
    assert export_checked(fp32.net, fp32.fingerprint, _reference(fp32), windows) is None
    assert not (cache / "onnx").exists() or list((cache / "onnx").iterdir()) == []


def test_onnx_vectors_of_real_recordings_match_torch_float32_window_by_window(fp32, cache: Path) -> None:  # type: ignore[no-untyped-def]
    """Files windowed as the index windows them (10 s windows, short files at their own length)."""
    sounds = require_real_sounds()[::10]  # 13 of the 130, every kind of length
    path = export_checked(fp32.net, fp32.fingerprint, _reference(fp32), probe_windows(3 * RATE, RATE))
    assert path is not None
    runner = OnnxAisfx(path)
    window = WindowConfig(window_s=10.0, hop_s=10.0, sample_rate=RATE)
    cosines: list[float] = []
    for sound in sounds:
        cut = window_audio(load_audio(sound.path, RATE), window)
        durations = cut.ends - cut.starts
        ours, theirs = runner.embed_audio(cut.samples, durations), fp32.embed_audio(cut.samples, durations)
        assert ours.shape == theirs.shape == (len(cut.samples), 512) and ours.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
        cosines.extend(np.sum(ours * theirs, axis=1).tolist())
    assert len(cosines) >= 13
    assert min(cosines) >= 0.9999, min(cosines)


def _torch() -> str:
    from importlib.metadata import version

    return version("torch")


def test_a_query_process_embeds_without_torch_once_an_index_run_exported(tmp_path: Path, cache: Path) -> None:
    from typer.testing import CliRunner

    from diffgap_search.cli.app import app

    index = tmp_path / "ix"
    done = CliRunner().invoke(app, ["index", str(EXAMPLES), "--index", str(index), "--model", "aisfx", "--no-frames",
                                    "--workers", "0"])
    assert done.exit_code == 0, done.output
    remembered = json.loads((cache / FILE_NAME).read_text())
    assert [v for k, v in remembered.items() if "|audio query|" in k] == ["onnx"]  # the index run exported
    snare = str(EXAMPLES / "snare.ogg")
    onnx_hits, onnx_torch = query_process(index, cache, "query", "--audio", snare)
    torch_hits, torch_torch = query_process(index, cache, "query", "--audio", snare, "--precision", "fp32")
    assert (onnx_torch, torch_torch) == ([False], [True])  # forced fp32: the torch network
    assert [name for name, _ in onnx_hits] == [name for name, _ in torch_hits] == ["snare.ogg", "tabla.ogg",
                                                                                  "hihat_open.ogg"]
    np.testing.assert_allclose([s for _, s in onnx_hits], [s for _, s in torch_hits], atol=1e-3)
    # `similar` of a file the index does not hold embeds it the same way (a copy elsewhere: not its own file)
    outside = tmp_path / "elsewhere" / "snare copy.ogg"
    outside.parent.mkdir()
    outside.write_bytes((EXAMPLES / "snare.ogg").read_bytes())
    similar_hits, similar_torch = query_process(index, cache, "similar", str(outside))
    assert similar_torch == [False]
    assert [name for name, _ in similar_hits] == ["snare.ogg", "tabla.ogg", "hihat_open.ogg"]
    summary = json.loads(CliRunner().invoke(app, ["info", "--index", str(index), "--json"]).stdout)["summary"]
    assert summary["precision path"].startswith(f"audio query on cpu, torch {_torch()}, ort {runtime_version()}, "
                                                "aisfx onnx 1: onnx; audio on cpu, torch ")


def test_a_damaged_export_is_removed_and_the_query_embeds_with_torch(
        fp32, cache: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from diffgap_search.encoders.aisfx.on_demand import OnDemandAisfx

    path = export_checked(fp32.net, fp32.fingerprint, _reference(fp32), probe_windows(3 * RATE, RATE))
    assert path is not None
    path.write_bytes(path.read_bytes()[:1000])  # cut short, as a full disk or a killed copy would leave it
    lazy = OnDemandAisfx(lambda: load_aisfx_encoder("cpu", precision="fp32"))
    window = probe_windows(RATE, RATE)
    np.testing.assert_array_equal(lazy.embed_audio(window), fp32.embed_audio(window))  # the torch network's
    assert lazy._loaded is not None and lazy.onnx_runner() is None
    assert not path.exists()  # the next run that loads torch exports it again
    assert f"ONNX Runtime cannot open {path}" in caplog.text
