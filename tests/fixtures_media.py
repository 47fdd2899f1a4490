"""Pytest fixtures (fixtures_media): tiny seeded audio files, a captioned clip tree, and hostile files.

Helpers write with soundfile (wav/flac/ogg/mp3) or ffmpeg (m4a/opus) at low sample rates so tests are
fast; decoding resamples to 48 kHz anyway. Everything is seeded and deterministic.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed")

_SF_FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".oga": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}
_FFMPEG_CODECS = {".m4a": ["-c:a", "aac", "-b:a", "64k"], ".opus": ["-c:a", "libopus", "-b:a", "32k"]}


def tone(freq: float, seconds: float, sr: int = 16_000, channels: int = 1, amplitude: float = 0.5) -> np.ndarray:
    """A sine: ``(T,) float32`` for one channel, else ``(T, channels)``, ``T = round(seconds * sr)``."""
    t = np.arange(int(round(seconds * sr))) / sr
    mono = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return mono if channels == 1 else np.repeat(mono[:, None], channels, axis=1)


def noise(seconds: float, sr: int = 16_000, seed: int = 0, amplitude: float = 0.3) -> np.ndarray:
    """Seeded uniform white noise, ``(T,) float32`` in ``[-amplitude, amplitude]``."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-amplitude, amplitude, int(round(seconds * sr))).astype(np.float32)


def chirp(
    seconds: float, sr: int = 16_000, f0: float = 200.0, f1: float = 4_000.0, amplitude: float = 0.5
) -> np.ndarray:
    """A linear sweep from ``f0`` to ``f1`` Hz, ``(T,) float32``."""
    t = np.arange(int(round(seconds * sr))) / sr
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    return (amplitude * np.sin(phase)).astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    """Write ``samples`` (``(T,)`` or ``(T, C)``) to ``path`` in the format its extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix in _SF_FORMATS:
        fmt, default_subtype = _SF_FORMATS[suffix]
        sf.write(path, samples, sr, format=fmt, subtype=subtype or default_subtype)
        return path
    if suffix not in _FFMPEG_CODECS:
        raise ValueError(f"no writer for {suffix}")
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "in.wav"
        sf.write(wav, samples, sr, subtype="PCM_16")
        cmd = [FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(wav), *_FFMPEG_CODECS[suffix], str(path)]
        subprocess.run(cmd, check=True)
    return path


def write_tone(path: Path, freq: float = 440.0, seconds: float = 1.0, sr: int = 16_000, channels: int = 1) -> Path:
    """A sine tone file (see ``tone``)."""
    return write_audio(path, tone(freq, seconds, sr, channels), sr)


def write_noise(path: Path, seconds: float = 1.0, sr: int = 16_000, seed: int = 0) -> Path:
    """A seeded white-noise file (see ``noise``)."""
    return write_audio(path, noise(seconds, sr, seed), sr)


def write_chirp(path: Path, seconds: float = 1.0, sr: int = 16_000) -> Path:
    """A linear-sweep file (see ``chirp``)."""
    return write_audio(path, chirp(seconds, sr), sr)


def write_video_without_audio(path: Path, seconds: float = 1.0) -> Path:
    """A tiny video file with no audio stream (ffmpeg test source)."""
    if FFMPEG is None:
        pytest.skip("ffmpeg is not installed")
    src = f"testsrc=duration={seconds}:size=32x32:rate=5"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", src, str(path)], check=True)
    return path


def build_clips_tree(root: Path) -> Path:
    """The captioned clip tree behind the ``clips_dir`` fixture; see that fixture for its content."""
    write_tone(root / "dog_bark.wav", 440.0, 3.0, sr=16_000)
    (root / "dog_bark.txt").write_text("a dog barks\n\nthe dog barks twice\n", encoding="utf-8")
    write_noise(root / "rain.flac", 2.0, sr=16_000, seed=1)
    (root / "rain.json").write_text(json.dumps({"caption": ["rain falling", "rain on a roof"]}), encoding="utf-8")
    write_chirp(root / "birds" / "chirp.ogg", 2.0, sr=22_050)
    write_tone(root / "birds" / "Yabc123.mp3", 880.0, 1.5, sr=22_050)
    (root / "birds" / "captions.csv").write_text(
        "audiocap_id,youtube_id,start_time,caption\n"
        "1,abc123,30,birds sing in the morning\n"
        "2,abc123,30,a bird chirps\n"
        "3,zzz999,0,not here\n",
        encoding="utf-8",
    )
    write_tone(root / "long" / "siren.wav", 660.0, 25.0, sr=8_000)
    (root / "clotho.csv").write_text(
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        "siren.wav,a siren wails,a siren wails,an ambulance passes,a long siren,a siren in the street\n",
        encoding="utf-8",
    )
    write_noise(root / ".hidden" / "secret.wav", 0.5, sr=8_000, seed=2)
    (root / "notes.md").write_text("not media\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def _clips_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_clips_tree(tmp_path_factory.mktemp("clips_template") / "clips")


@pytest.fixture
def clips_dir(_clips_template: Path, tmp_path: Path) -> Path:
    """A fresh copy (safe to modify) of a small captioned tree::

        clips/dog_bark.wav        3 s 440 Hz sine, 16 kHz    dog_bark.txt: two captions
        clips/rain.flac           2 s noise, 16 kHz           rain.json: {"caption": [2 captions]}
        clips/birds/chirp.ogg     2 s chirp, 22.05 kHz       no caption
        clips/birds/Yabc123.mp3   1.5 s 880 Hz, 22.05 kHz    birds/captions.csv (AudioCaps, youtube_id abc123)
        clips/long/siren.wav      25 s 660 Hz, 8 kHz          clotho.csv (Clotho form, file_name siren.wav)
        clips/.hidden/secret.wav  hidden: never discovered
        clips/notes.md            not media
    """
    dest = tmp_path / "clips"
    shutil.copytree(_clips_template, dest)
    return dest


def build_hostile_files(folder: Path) -> dict[str, Path]:
    """Files a decoder must survive, by name (see the ``hostile_files`` fixture)."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def add(name: str, path: Path) -> None:
        files[name] = path

    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    add("empty", empty)
    rnd = folder / "random.wav"
    rnd.write_bytes(np.random.default_rng(1234).bytes(4096))
    add("random", rnd)
    text = folder / "text.wav"
    text.write_text("this is not audio, just a note\n" * 20, encoding="utf-8")
    add("text", text)
    good = write_tone(folder / "good.wav", 440.0, 1.0, sr=8_000)
    data = good.read_bytes()
    (folder / "truncated_header.wav").write_bytes(data[:30])
    add("truncated_header", folder / "truncated_header.wav")
    (folder / "truncated_data.wav").write_bytes(data[: 44 + 2 * 4000])  # header + 4000 of 8000 samples
    add("truncated_data", folder / "truncated_data.wav")
    bad = tone(440.0, 1.0, sr=8_000)
    bad[100:110] = np.nan
    bad[200] = np.inf
    bad[201] = -np.inf
    bad[300:310] = 4.0
    add("nan", write_audio(folder / "nan.wav", bad, 8_000, subtype="FLOAT"))
    eight = np.stack([np.full(8_000, 0.1 * (c + 1), dtype=np.float32) for c in range(8)], axis=1)
    add("eight_channels", write_audio(folder / "eight_channels.wav", eight, 8_000, subtype="FLOAT"))
    add("rate_8k", write_tone(folder / "rate_8k.wav", 440.0, 1.0, sr=8_000))
    add("rate_192k", write_tone(folder / "rate_192k.wav", 440.0, 0.5, sr=192_000))
    one = np.array([0.5], dtype=np.float32)
    add("one_sample", write_audio(folder / "one_sample.wav", one, 48_000, subtype="FLOAT"))
    add("zero_frames", write_audio(folder / "zero_frames.wav", np.zeros(0, dtype=np.float32), 8_000))
    if FFMPEG is not None:
        add("no_audio_stream", write_video_without_audio(folder / "no_audio.mp4"))
    return files


@pytest.fixture(scope="session")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Read-only hostile files by name: ``empty``, ``random`` (4 KiB of random bytes named .wav), ``text``
    (a text file named .wav), ``truncated_header``, ``truncated_data`` (half of a 1 s 8 kHz wav), ``nan``
    (float wav with NaN/±inf/4.0 samples), ``eight_channels`` (channel c constant 0.1*(c+1)), ``rate_8k``
    (1 s), ``rate_192k`` (0.5 s), ``one_sample`` (one 0.5 sample at 48 kHz), ``zero_frames`` (valid header, no
    samples), ``no_audio_stream`` (an .mp4 with video only; present when ffmpeg is)."""
    return build_hostile_files(tmp_path_factory.mktemp("hostile"))
