"""The aisfx log-mel spectrogram (``spectrogram.py``: what it is and how it was checked against Essentia) in
torch, batched on the network's device: what indexing feeds the network.

Imports torch: only imported once the aisfx model is being loaded.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from diffgap_search.encoders.aisfx.spectrogram import (
    ESSENTIA,
    FRAME_SIZE,
    HOP_SIZE,
    LOG_SCALE,
    NORM_MAX,
    NORM_MIN,
    MelFlavour,
    frame_count,
    hann_window,
    mel_filterbank,
)


class LogMel:
    """Batched aisfx log-mel spectrograms on one torch device.

    ``LogMel(flavour)(windows)`` takes ``(N, S) float32`` mono samples at 44.1 kHz (a tensor on
    ``device``) and returns ``(N, T, N_MELS) float32`` with ``T = frame_count(S, flavour)``: time first,
    as ``pool['mel_bands']`` and aisfx's ``blocking`` expect. ``normalise=True`` (the model's input)
    divides by ``NORM_MAX`` (``spectrogram_normalize('original')``); ``False`` gives the raw
    ``log10(1e4 * bands + 1)`` that both aisfx spectrogram functions return.
    """

    def __init__(self, flavour: MelFlavour = ESSENTIA, device: torch.device | str = "cpu") -> None:
        self.flavour = flavour
        self.device = torch.device(device)
        self._window = torch.from_numpy(hann_window(flavour).astype(np.float32)).to(self.device)
        self._bank_t = torch.from_numpy(mel_filterbank(flavour).T.astype(np.float32)).to(self.device)

    def __call__(self, windows: torch.Tensor, normalise: bool = True) -> torch.Tensor:
        if windows.ndim != 2 or windows.shape[1] < 1:
            raise ValueError(f"expected (N, S) samples with S >= 1, got shape {tuple(windows.shape)}")
        frames = self._frames(windows.to(device=self.device, dtype=torch.float32))
        power = torch.fft.rfft(frames * self._window, n=FRAME_SIZE, dim=-1).abs().square()
        bands = torch.matmul(power, self._bank_t).clamp_min_(0.0)
        spec = torch.log1p(bands * LOG_SCALE) / math.log(10.0)
        if normalise:
            spec = (spec - NORM_MIN) / (NORM_MAX - NORM_MIN)
        return spec

    def _frames(self, windows: torch.Tensor) -> torch.Tensor:
        """``(N, S)`` -> ``(N, T, FRAME_SIZE)``: frame ``i`` is samples ``[(i - 1) * hop, (i + 1) * hop)``,
        zeros outside the window."""
        length = int(windows.shape[1])
        count = frame_count(length, self.flavour)
        half = FRAME_SIZE // 2
        tail = (count - 1) * HOP_SIZE + FRAME_SIZE - half - length
        padded = torch.nn.functional.pad(windows, (half, max(0, tail)))
        return padded.unfold(-1, FRAME_SIZE, HOP_SIZE)[:, :count]
