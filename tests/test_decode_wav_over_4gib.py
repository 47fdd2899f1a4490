"""A WAV holding more than 4 GiB of samples behind a plain RIFF header (32-bit sizes: wrapped, or the placeholder
0xFFFFFFFF) is read to its end: a long field or broadcast recording that never switched to RF64.

libsndfile and ffprobe read such a file's header size: 10 s of a 6 h 13 min recording (measured). The files are
sparse (``truncate``: no disk is used for the silent hours), with a 440 Hz tone written in their last seconds, so
the end is recognisable and no test reads the 4 GiB in between: every read here seeks.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from diffgap_search.media.audio import iter_audio_blocks, load_span
from diffgap_search.media.cut import cut_window
from diffgap_search.media.wav_oversized import FOUR_GIB, open_oversized_wav

RATE = 48_000
TONE_S = 10


def _oversized(path: Path, channels: int, bits: int, *, placeholder: bool, extensible: bool = False) -> float:
    """Write a sparse WAV of 4 GiB + ``TONE_S`` seconds of data at ``RATE`` (the tone last); its true duration."""
    width = bits // 8
    data_len = FOUR_GIB - FOUR_GIB % (channels * width) + TONE_S * RATE * channels * width
    said = 0xFFFFFFFF if placeholder else data_len % FOUR_GIB
    if extensible:  # WAVE_FORMAT_EXTENSIBLE, SubFormat PCM (as recorders write multichannel and 24-bit files)
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, RATE, RATE * channels * width, channels * width, bits, 22,
                          bits, 0) + struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    else:
        fmt = struct.pack("<HHIIHH", 1, channels, RATE, RATE * channels * width, channels * width, bits)
    head = (b"RIFF" + struct.pack("<I", (4 + 8 + len(fmt) + 8 + said) % FOUR_GIB) + b"WAVE"
            + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", said))
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(TONE_S * RATE) / RATE)
    ints = np.round(tone * (2 ** (bits - 1) - 1)).astype("<i4")
    frames = np.repeat(ints[:, None], channels, axis=1).astype("<i4").view(np.uint8).reshape(-1, channels, 4)
    with open(path, "wb") as fh:
        fh.write(head)
        fh.truncate(len(head) + data_len)
        fh.seek(len(head) + data_len - TONE_S * RATE * channels * width)
        fh.write(frames[:, :, :width].tobytes())
    return data_len / (channels * width) / RATE


@pytest.mark.parametrize(("channels", "bits", "placeholder", "extensible"),
                         [(2, 16, False, False), (1, 24, True, True)])
def test_the_samples_past_4_gib_are_read(tmp_path: Path, channels: int, bits: int, placeholder: bool,
                                         extensible: bool) -> None:
    path = tmp_path / "field recording.wav"
    seconds = _oversized(path, channels, bits, placeholder=placeholder, extensible=extensible)
    assert seconds > 7 * 3600 / 2  # hours: 6.2 h at 16-bit stereo, 8.3 h at 24-bit mono
    assert sf.info(str(path)).duration <= seconds - TONE_S + 1e-3  # libsndfile alone: 10 s, or the first 4 GiB
    with open_oversized_wav(path) as handle:  # type: ignore[union-attr]
        assert (handle.frames / handle.samplerate, handle.channels) == (pytest.approx(seconds), channels)
    end = load_span(path, RATE, seconds - 9, seconds)
    assert len(end) == 9 * RATE
    assert np.argmax(np.abs(np.fft.rfft(end[:RATE]))) == 440 and np.abs(end).max() == pytest.approx(0.5, abs=1e-3)
    tail = np.concatenate(list(iter_audio_blocks(path, RATE, start_s=seconds - 5)))
    assert len(tail) == 5 * RATE


def test_a_window_past_4_gib_is_cut_in_the_file_s_own_format(tmp_path: Path) -> None:
    """``--save`` and the page's "save window" cut with ffmpeg, which reads the wrapped size: the cut was empty."""
    path = tmp_path / "take.wav"
    seconds = _oversized(path, 2, 16, placeholder=False)
    out = cut_window(path, seconds - 4, seconds - 1, tmp_path / "cut.wav")
    info = sf.info(str(out))
    assert (info.frames, info.samplerate, info.channels, info.subtype) == (3 * RATE, RATE, 2, "PCM_16")
    assert np.abs(sf.read(out, dtype="float32")[0]).max() == pytest.approx(0.5, abs=1e-3)


def test_other_files_are_left_to_libsndfile(tmp_path: Path) -> None:
    """Below 4 GiB a WAV's header counts its data (chunks after it are ordinary); a large file that is not a
    RIFF/WAVE one is not this module's."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        fh.truncate(FOUR_GIB + 100)
    small = tmp_path / "small.wav"
    sf.write(small, np.zeros((RATE, 2), np.float32), RATE, "PCM_16")
    assert (open_oversized_wav(big), open_oversized_wav(small)) == (None, None)
