"""Record what Essentia computes for aisfx, so tests can check our spectrogram without Essentia installed.

Run it in a throwaway environment that has essentia (not the project's: essentia is AGPL and not a
dependency), from the repository root, with the aisfx wheel unpacked or installed somewhere:

    python3 -m venv /tmp/essentia-venv && /tmp/essentia-venv/bin/pip install essentia numpy
    /tmp/essentia-venv/bin/python tests/data/make_aisfx_essentia_oracle.py \
        --aisfx /path/to/site-packages/aisfx --out tests/data/aisfx_essentia_oracle.npz

It writes one ``.npz`` holding:

- ``signal_int16``: a seeded 0.75 s test signal (a chirp, a decaying noise burst, a click, silence), as
  16-bit samples, and ``spec_signal``: aisfx's own ``spectrogram_essentia.compute_spectrogram`` of it
  (written to a 44.1 kHz 16-bit WAV first, as aisfx reads files), ``(T, 96) float32``;
- ``spec_<stem>`` for a few CC0 sonic-pi samples (``tests/real_sounds.py``), when they are installed;
- ``bank_rows``, ``bank_cols``, ``bank_vals``: the non-zero weights of Essentia's ``MelBands`` with
  aisfx's settings, read out by feeding it one-hot spectra;
- ``essentia_version``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import wave
from pathlib import Path

import numpy as np

SAMPLES = Path("/usr/share/sonic-pi/samples")
REAL_STEMS = ("bd_klub", "drum_cymbal_closed", "tabla_na", "vinyl_scratch", "elec_plip")
RATE = 44_100


def make_signal(seed: int = 0) -> np.ndarray:
    """``(33075,) int16``: 0.75 s of chirp, noise burst, click and silence (seeded)."""
    rng = np.random.default_rng(seed)
    n = int(0.75 * RATE)
    t = np.arange(n) / RATE
    x = 0.4 * np.sin(2 * np.pi * (80 * t + 6000 * t**2))
    burst = rng.standard_normal(n) * np.exp(-((t - 0.4) / 0.05) ** 2) * 0.5
    x = x * (t < 0.3) + burst
    x[int(0.6 * RATE)] += 0.9
    x[int(0.65 * RATE):] = 0.0
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(samples.astype("<i2").tobytes())


def essentia_bank() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Essentia ``MelBands`` weights with aisfx's settings, as (rows, cols, values) of the non-zeros."""
    import essentia.standard as es

    bands = es.MelBands(inputSize=1025, numberBands=96, sampleRate=RATE, lowFrequencyBound=0,
                        highFrequencyBound=22050, warpingFormula="htkMel", weighting="warping",
                        normalize="unit_sum", type="power", log=False)
    bank = np.zeros((96, 1025), dtype=np.float32)
    for j in range(1025):
        spectrum = np.zeros(1025, dtype=np.float32)
        spectrum[j] = 1.0
        bank[:, j] = bands(spectrum)
    rows, cols = np.nonzero(bank)
    return rows.astype(np.int16), cols.astype(np.int16), bank[rows, cols]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aisfx", type=Path, required=True, help="the aisfx package folder")
    parser.add_argument("--out", type=Path, default=Path("tests/data/aisfx_essentia_oracle.npz"))
    args = parser.parse_args()
    import essentia

    source = args.aisfx / "spectrogram" / "spectrogram_essentia.py"
    spec = importlib.util.spec_from_file_location("aisfx_spec_essentia", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def spectrogram(path: Path) -> np.ndarray:
        out = module.compute_spectrogram(filename=str(path), sr=float(RATE), block_size=2048, hop_size=1024,
                                         n_mels=96, f_min=0.0, f_max=22050.0)
        return np.asarray(out, dtype=np.float32)

    signal = make_signal()
    record: dict[str, np.ndarray] = {"signal_int16": signal, "essentia_version": np.array(essentia.__version__)}
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "signal.wav"
        write_wav(wav, signal)
        record["spec_signal"] = spectrogram(wav)
    for stem in REAL_STEMS:
        path = SAMPLES / f"{stem}.flac"
        if path.is_file():
            record[f"spec_{stem}"] = spectrogram(path)
    record["bank_rows"], record["bank_cols"], record["bank_vals"] = essentia_bank()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **record)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes): {sorted(record)}")


if __name__ == "__main__":
    main()
