"""``--window`` other than the model's 10 s (issue 28): shorter windows are repeat-padded to what the model
hears, as short clips are, keeping their own seconds; longer ones are refused for CLAP (exit 2); a query by
example is windowed like the index. Real recordings (sonic-pi's CC0 samples), tiny CLAP weights."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from diffgap_search.cli.app import app
from diffgap_search.config import WindowConfig
from diffgap_search.encoders.base import fit_window, input_samples
from diffgap_search.errors import UsageError
from diffgap_search.media.audio import load_audio
from diffgap_search.media.windows import iter_windows, repeat_pad, window_audio

SAMPLES = Path("/usr/share/sonic-pi/samples")
runner = CliRunner()


class Heard:
    """An encoder-shaped object, ``model_id``, that hears ``input_samples`` samples at once (0: any length)."""

    def __init__(self, n: int, model_id: str = "clap") -> None:
        self.input_samples, self.model_id = n, model_id


def test_a_short_window_is_padded_to_what_the_model_hears_and_keeps_its_seconds() -> None:
    cfg = WindowConfig(window_s=1.0, hop_s=0.5, sample_rate=10, model_samples=25)
    audio = np.arange(1, 26, dtype=np.float32)  # 2.5 s at 10 Hz
    w = window_audio(audio, cfg)
    assert w.samples.shape == (4, 25)
    assert list(zip(w.starts, w.ends)) == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0), (1.5, 2.5)]
    for row, start in zip(w.samples, w.starts):
        first = int(start * 10)
        assert np.array_equal(row, repeat_pad(audio[first:first + 10], 25))  # its own 10 samples, tiled
    streamed = list(iter_windows([audio[:7], audio[7:19], audio[19:]], cfg))
    assert np.array_equal(np.stack([s.samples for s in streamed]), w.samples)
    assert [(s.start_s, s.end_s) for s in streamed] == list(zip(w.starts, w.ends))


def test_fit_window_pads_short_windows_refuses_long_ones_and_leaves_any_length_models_alone() -> None:
    ten_s = WindowConfig(window_s=10.0, hop_s=10.0, sample_rate=48_000)
    two_s = WindowConfig(window_s=2.0, hop_s=1.0, sample_rate=48_000)
    assert fit_window(ten_s, Heard(480_000)).embed_samples == 480_000
    assert fit_window(two_s, Heard(480_000)).embed_samples == 480_000
    assert fit_window(two_s, Heard(0, "aisfx")).embed_samples == 96_000  # any length: not padded
    assert input_samples(object()) == 0
    with pytest.raises(UsageError) as err:
        fit_window(WindowConfig(window_s=20.0, hop_s=20.0), Heard(480_000, "laion/clap-htsat-unfused"))
    assert str(err.value) == (
        "--window 20 is longer than the 10 s that laion/clap-htsat-unfused hears at once: use --window 10 or"
        " less (a longer sound is found through its 10 s windows; --hop sets their overlap)")


@pytest.mark.parametrize(("value", "message"), [
    ("0", "window must be between 0.05 and 60 seconds, got 0"),
    ("-2", "window must be between 0.05 and 60 seconds, got -2"),
    ("61", "window must be between 0.05 and 60 seconds, got 61"),
    ("nan", "window must be between 0.05 and 60 seconds, got nan"),
])
def test_window_values_out_of_range_are_usage_errors(value: str, message: str, tmp_path: Path,
                                                     tiny_clap_dir: Path) -> None:
    r = runner.invoke(app, ["index", str(tmp_path), "--index", str(tmp_path / "ix"), "--model", str(tiny_clap_dir),
                            "--window", value])
    assert (r.exit_code, r.stderr.strip()) == (2, f"dgsearch: error: {message}")


@pytest.fixture
def sounds(tmp_path: Path) -> Path:
    if not SAMPLES.is_dir():
        pytest.skip("needs the sonic-pi-samples package")
    folder = tmp_path / "sounds"
    folder.mkdir()
    for name in ("ambi_lunar_land.flac", "bd_haus.flac", "elec_ping.flac"):  # 7.39 s, 0.22 s, 0.21 s
        shutil.copy(SAMPLES / name, folder / name)
    return folder


def windows_of(index_dir: Path) -> dict[str, list[tuple[float, float]]]:
    conn = sqlite3.connect(index_dir / "catalog.sqlite")
    try:
        rows = conn.execute("SELECT f.path, s.start_s, s.end_s FROM segments s JOIN files f ON f.id = s.file_id"
                            " ORDER BY f.path, s.seq").fetchall()
    finally:
        conn.close()
    out: dict[str, list[tuple[float, float]]] = {}
    for path, start, end in rows:
        out.setdefault(Path(path).name, []).append((round(start, 4), round(end, 4)))
    return out


def test_index_with_two_second_windows_embeds_each_as_a_padded_short_clip(sounds: Path, tmp_path: Path,
                                                                          tiny_clap_dir: Path,
                                                                          tiny_encoder: object) -> None:
    ix = tmp_path / "ix"
    r = runner.invoke(app, ["index", str(sounds), "--index", str(ix), "--model", str(tiny_clap_dir),
                            "--window", "2", "--hop", "1", "--workers", "0", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["windows_embedded"] == 9
    lunar = load_audio(sounds / "ambi_lunar_land.flac", 48_000)
    assert len(lunar) == 354_924  # 7.394 s: grid 0..5 (6 windows), then one end-aligned window
    assert windows_of(ix) == {
        "ambi_lunar_land.flac": [(0.0, 2.0), (1.0, 3.0), (2.0, 4.0), (3.0, 5.0), (4.0, 6.0), (5.0, 7.0),
                                 (5.3943, 7.3943)],
        "bd_haus.flac": [(0.0, 0.2199)],
        "elec_ping.flac": [(0.0, 0.2123)],
    }
    # the window [3, 5] s of the long recording was embedded as its 2 s of sound tiled to CLAP's 10 s
    expected = tiny_encoder.embed_audio(repeat_pad(lunar[3 * 48_000 : 5 * 48_000], 480_000)[None])  # type: ignore[attr-defined]
    conn = sqlite3.connect(ix / "catalog.sqlite")
    try:
        (blob,) = conn.execute("SELECT v.vector FROM vectors v JOIN segments s ON s.id = v.segment_id"
                               " WHERE v.space = 'audio' AND s.start_s = 3.0").fetchone()
    finally:
        conn.close()
    np.testing.assert_allclose(np.frombuffer(blob, dtype="<f4"), expected[0], atol=1e-5)

    # a query by example is windowed like the index: the same window of the same file comes back first
    q = runner.invoke(app, ["query", "--audio", str(sounds / "ambi_lunar_land.flac"), "--start", "3", "--end", "5",
                            "--index", str(ix), "--segments", "--json", "-k", "1"])
    assert q.exit_code == 0, q.output
    hit = json.loads(q.stdout)["hits"][0]
    assert (Path(hit["path"]).name, hit["start_s"], hit["end_s"]) == ("ambi_lunar_land.flac", 3.0, 5.0)
    assert hit["score"] == pytest.approx(1.0, abs=1e-5)


def test_a_window_longer_than_clap_hears_is_refused_before_anything_is_embedded(sounds: Path, tmp_path: Path,
                                                                                tiny_clap_dir: Path) -> None:
    r = runner.invoke(app, ["index", str(sounds), "--index", str(tmp_path / "ix"), "--model", str(tiny_clap_dir),
                            "--window", "20", "--workers", "0"])
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        f"dgsearch: error: --window 20 is longer than the 10 s that {tiny_clap_dir} hears at once: use --window 10"
        " or less (a longer sound is found through its 10 s windows; --hop sets their overlap)")
    assert windows_of(tmp_path / "ix") == {}
    again = runner.invoke(app, ["index", str(sounds), "--index", str(tmp_path / "ix"), "--model", str(tiny_clap_dir),
                                "--window", "5", "--workers", "0", "--json"])
    assert again.exit_code == 0, again.output  # nothing was bound by the refused run
    assert json.loads(again.stdout)["windows_embedded"] == 4
