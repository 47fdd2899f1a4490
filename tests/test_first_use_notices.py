"""A model's slow first use on a machine is said as it starts (``diffgap_search/notices.py``), so that an
indexing bar that stops for ten seconds is explained: the command line prints each notice as one ``note:``
line on stderr; a second run, whose choices are remembered, says nothing; the library alone stays silent.
Tiny CLAP, random seeded weights, a fresh cache folder per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import EncoderConfig
from diffgap_search.encoders.clap import encoder as clap_encoder
from diffgap_search.encoders.loading import load_encoder
from diffgap_search.encoders.precision import FILE_NAME
from diffgap_search.encoders.runtime import native_bf16
from diffgap_search.indexing import index_folder

pytest.importorskip("onnxruntime", reason="the onnx extra: pip install 'diffgap-search[onnx]'")
pytest.importorskip("onnx", reason="the onnx extra: pip install 'diffgap-search[onnx]'")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "clips"
AUDIO_NOTE = ("note: CLAP, first use on this machine: timing the audio tower's precision paths against float32 and"
              " keeping the fastest that agrees (")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("DGSEARCH_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("bell.ogg", "snare.ogg"):
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


def test_the_first_index_run_says_what_it_does_once_and_the_second_says_nothing(
        tiny_clap_dir: Path, clips: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clap_encoder, "MIN_PARAMS_FOR_BF16", 0)  # the tiny towers are probed as full-size ones
    candidates = (["bf16"] if native_bf16(torch.device("cpu")) else []) + ["int8", "onnx-int8", "onnx"]
    args = ["index", str(clips), "--model", str(tiny_clap_dir), "--no-frames", "--workers", "0"]
    first = CliRunner().invoke(app, [*args, "--index", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    notes = [line for line in first.stderr.splitlines() if line.startswith("note: ")]
    assert notes[0] == ("note: CLAP, first use on this machine: exporting the text tower for word queries without"
                        f" torch, once (about 10 s on 2 cores, ~500 MB in {cache / 'onnx'})")
    assert notes[1:] == [f"{AUDIO_NOTE}{', '.join(candidates)}), once (about 10 s on 2 cores)"]
    second = CliRunner().invoke(app, [*args, "--index", str(tmp_path / "b")])
    assert second.exit_code == 0, second.output
    assert [line for line in second.stderr.splitlines() if line.startswith("note: ")] == []


def test_the_library_alone_prints_no_notice(tiny_clap_dir: Path, clips: Path, cache: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = EncoderConfig(model=str(tiny_clap_dir), device="cpu")
    report = index_folder(clips, tmp_path / "ix", load_encoder=load_encoder, encoder_cfg=cfg)
    assert report.new == 2 and (cache / FILE_NAME).is_file()
    assert capsys.readouterr().err == ""
