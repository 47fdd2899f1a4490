"""CAVP's audio clips (``features.spec_clips``) computed with torch on the encoder's device.

The same arithmetic as ``features``: resampy's ``kaiser_best`` decimation to 16 kHz as one FIR
(``features._decimation_fir``: here a strided ``conv1d`` instead of scipy's ``upfirdn``), ``|STFT|`` with a
periodic Hann window of 1024, hop 250, centred with reflect padding (what ``librosa.stft`` does), librosa's
mel basis, the same log scale and clip cutting. float32 throughout (``upfirdn`` ran in float64): the clips
agree with ``features.spec_clips`` to about 1e-5 of their [0, 1] range (``tests/test_cavp_spec_torch.py``).

Why: on an H200 the CAVP audio encoder ran 20 windows/s while its network alone ran 1,083: the numpy/scipy
features on the CPU were 98 % of the time (``benchmarks/results/gpu_check_h200_cavp_aisfx.md``); on a CPU they
were about half of it. Sample rates that are not a whole multiple of 16 kHz keep resampy's own path (CPU).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .features import CLIP_MEL, HOP, N_FFT, SAMPLE_RATE, _decimation_fir, clip_starts, mel_basis, to_16k


class SpecClips:
    """``spec_clips`` on ``device``: the decimation taps, window and mel basis made once per encoder."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._taps: dict[int, tuple[torch.Tensor, int]] = {}
        self._window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float32, device=device)
        self._mel = torch.from_numpy(mel_basis()).to(device)

    def __call__(self, window: np.ndarray, sample_rate: int, duration_s: float) -> torch.Tensor:
        """One audio window ``(S,) float32`` at ``sample_rate`` spanning ``duration_s`` seconds ->
        ``(n, 128, 256) float32`` clips on the device (``features.spec_clips``)."""
        mel = self.log_mel(self.to_16k(window, sample_rate))
        if mel.shape[1] < CLIP_MEL:
            mel = mel.repeat(1, math.ceil(CLIP_MEL / mel.shape[1]))
        return torch.stack([mel[:, s : s + CLIP_MEL] for s in clip_starts(mel.shape[1], duration_s)])

    def to_16k(self, samples: np.ndarray, sample_rate: int) -> torch.Tensor:
        """``features.to_16k`` -> ``(ceil(S * 16000 / sample_rate),) float32`` on the device."""
        if sample_rate % SAMPLE_RATE:  # not a whole multiple: resampy itself, on the CPU
            return torch.from_numpy(to_16k(np.asarray(samples, dtype=np.float32), sample_rate)).to(self.device)
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).to(self.device)
        if sample_rate == SAMPLE_RATE:
            return x
        factor = sample_rate // SAMPLE_RATE
        n = math.ceil(x.shape[-1] / factor)
        taps, lead = self._decimation(factor)
        # upfirdn(taps, x, down=f)[k] = sum_m taps[m] x[f k - m]: a cross-correlation with the flipped taps
        # over x padded by len(taps) - 1 zeros on the left (and on the right, so the full length is there)
        pad = taps.shape[-1] - 1
        y = torch.nn.functional.conv1d(torch.nn.functional.pad(x, (pad, pad))[None, None], taps, stride=factor)[0, 0]
        out = torch.zeros(n, dtype=torch.float32, device=self.device)
        y = y[lead : lead + n]
        out[: y.shape[0]] = y
        return out

    def log_mel(self, y16: torch.Tensor) -> torch.Tensor:
        """``features.log_mel`` of ``(S,) float32`` 16 kHz samples on the device -> ``(128, 1 + (S - 1) // 250)``."""
        y = y16[:-1]
        spec = torch.stft(y, N_FFT, hop_length=HOP, window=self._window, center=True, pad_mode="reflect",
                          return_complex=True).abs()
        mel = self._mel @ spec
        return ((20.0 * torch.log10(mel.clamp_min(1e-5)) - 20.0 + 100.0) / 100.0).clamp(0.0, 1.0)

    def _decimation(self, factor: int) -> tuple[torch.Tensor, int]:
        """``(1, 1, L) float32`` flipped taps on the device and the lead (``features._decimation_fir``)."""
        if factor not in self._taps:
            taps, lead = _decimation_fir(factor)
            flipped = torch.from_numpy(np.ascontiguousarray(taps[::-1], dtype=np.float32))
            self._taps[factor] = (flipped.to(self.device)[None, None], lead)
        return self._taps[factor]
