"""Runs INSIDE the separate laion_clap environment (``tests/laion_env.py``): LAION-CLAP's own code, unmodified.

    python run_laion_clap.py WINDOWS.npy OUT_DIR

Builds ``laion_clap.CLAP_Module(enable_fusion=False, amodel="HTSAT-tiny")`` (full-size HTSAT-tiny; its RoBERTa
text branch and the tokenizers ``training/data.py`` loads at import come from the offline Hugging Face cache the
test wrote: small, since only the audio path is compared), seeds its random weights, sets the one BatchNorm of
the audio branch (``bn0``, over the 64 mel bins) to the statistics of the given windows' log-mels so that
different clips give clearly different vectors, then writes

- ``OUT_DIR/checkpoint.pt``: the model's state dict as LAION's trainer saves it (``{"epoch", "state_dict"}``
  with DDP's ``module.`` prefix), for our loader;
- ``OUT_DIR/reference.npy``: ``(N, 512) float32``, ``CLAP_Module.get_audio_embedding_from_data(windows)`` —
  LAION's inference path (``hook.py``: int16 round trip, ``get_audio_features`` with ``rand_trunc`` and
  ``repeatpad``, the HTSAT forward, L2-normalised).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    windows = np.load(sys.argv[1]).astype(np.float32)  # (N, 480000) float32 mono at 48 kHz
    out = Path(sys.argv[2])
    torch.manual_seed(0)
    import laion_clap

    clap = laion_clap.CLAP_Module(enable_fusion=False, amodel="HTSAT-tiny", device="cpu")
    audio = clap.model.audio_branch
    with torch.no_grad():
        for name, p in clap.model.named_parameters():  # LAION's init leaves zero biases and unit norms: spread
            if "_extractor." not in name:  # the STFT kernels and the mel bank stay librosa's (the front end)
                p.add_(torch.randn(p.shape) * 0.02)
        mel = audio.logmel_extractor(audio.spectrogram_extractor(torch.from_numpy(windows)))  # (N, 1, T, 64)
        audio.bn0.running_mean.copy_(mel.mean(dim=(0, 1, 2)))
        audio.bn0.running_var.copy_(mel.var(dim=(0, 1, 2)))
    clap.model.eval()
    state = {f"module.{k}": v for k, v in clap.model.state_dict().items()}
    torch.save({"epoch": 1, "name": "reference", "state_dict": state}, out / "checkpoint.pt")
    embeddings = clap.get_audio_embedding_from_data(x=windows, use_tensor=False)
    np.save(out / "reference.npy", np.asarray(embeddings, dtype=np.float32))


if __name__ == "__main__":
    main()
