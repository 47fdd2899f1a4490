"""``CavpEncoder``: video windows and audio windows into CAVP's one 512-d space (Diff-Foley's Stage 1).

CAVP's video tower and audio tower were trained contrastively on VGGSound/AudioSet (Diff-Foley, Luo et al.,
NeurIPS 2023), so a video window and a sound are compared by plain cosine, no bridge needed. The published
weights are ``diff_foley_ckpt/cavp_epoch66.ckpt`` in the Hugging Face repository ``SimianLuo/Diff-Foley``
(MIT; the file name as ``inference/diff_foley_inference.ipynb`` loads it); ``--video-model cavp`` fetches it,
``--video-model path/to/cavp_epoch66.ckpt`` reads a local copy.

**Windows and clips** (``encoders/cavp/features.py``). CAVP embeds 4 s clips (16 frames at 4 fps, max-pooled over the
16 steps); our windows are 10 s (the CLAP windows every other vector space is keyed by). Each window is
covered by ``ceil(F / 16)`` clips spread evenly over its F frames (3 for 10 s: [0, 4], [3, 7], [6, 10] s), each
clip embedded and L2-normalised, and the window's vector is the re-normalised mean of its clips' unit vectors.
Why pooled sub-windows rather than CAVP's own 4 s windows with timestamps of their own: every vector space of
an index is keyed by the same windows (segments: CLAP audio, the bridged spaces, captions, grouping by file),
so a CAVP vector per window joins the fusion of ``search/searcher.py`` and the pairs of ``dgsearch train`` with no
second timeline; the clips are whole frames of the 4 fps grid, so the audio and the video of a window see the
same seconds to the frame, and a window's seconds are what a hit reports. The cost is temporal precision
inside a window (a 4 s event in a 10 s window is a third of its mean); a finer ``--hop`` buys it back.

**Loading** (``load_cavp_encoder``): the checkpoint is a training-framework dict (``{"epoch", "name",
"state_dict", "optimizer", ...}``, ``training/open_cavp_main/src/training/main.py:389-396``) read with
``torch.load(weights_only=True)`` only (``weights.load_restricted``: tensors and plain data; a file that needs
any other Python object is refused with its name), its ``state_dict`` stripped of ``module.`` and written once
to a safetensors copy in our cache (named after the checkpoint's sha256, the weights' fingerprint); later
loads read the copy. The model is built from the tensors' shapes and loaded with ``strict=True``.

torch is imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffgap_search.config import CAVP_SPACE, VIDEO_SPACE, Device, FrameFit
from diffgap_search.encoders.base import check_batch_size
from diffgap_search.errors import ModelUnavailableError

if TYPE_CHECKING:
    import torch

    from diffgap_search.encoders.cavp.model import CavpModel
    from diffgap_search.encoders.cavp.spec_torch import SpecClips

CAVP = "cavp"  # --video-model value naming the published checkpoint
CAVP_REPO = "SimianLuo/Diff-Foley"
CAVP_FILE = "diff_foley_ckpt/cavp_epoch66.ckpt"
# Preprocessing versions per space, recorded in an index (``store/settings.bind_encoder``). 1: frames scaled to
# 224 x 224 by the decoder (libswscale bilinear on YUV), audio resampled with soxr. 2 (issue 25): the native RGB
# frame resized by Pillow's bilinear filter, audio resampled by resampy's kaiser_best, as Diff-Foley does.
PREPROCESSING = {VIDEO_SPACE: 2, CAVP_SPACE: 2}


class CavpEncoder:
    """Embeds video windows (``embed_video``) and audio windows (``embed_audio``) into CAVP's space (an
    ``encoders.base.AudioVisualEncoder``). Its audio windows' vectors are the ``cavp_audio`` space
    (``config.CAVP_SPACE``), its video windows' the ``video`` space.

    Attributes:
        model_id: ``cavp`` or the checkpoint path, as given. fingerprint: sha256 of the checkpoint as published.
        dim: D (512). fps: 4, the rate windows' frames must be sampled at. sample_rate: 16 000, CAVP's own
        (``embed_audio`` resamples from the rate it is told). batch_size: clips per forward pass.
        provenance: where the weights came from (set by the loader, recorded in the index).
        preprocessing: ``{space: version}`` of the pipeline behind each space's vectors (``PREPROCESSING``).
    """

    modalities = (VIDEO_SPACE, CAVP_SPACE)
    family = CAVP
    fit = FrameFit.SQUASH  # the whole frame, as Diff-Foley's Resize((224, 224))

    def __init__(self, model: CavpModel, *, model_id: str, fingerprint: str, device: torch.device,
                 batch_size: int = 8) -> None:
        check_batch_size(batch_size)
        from diffgap_search.encoders.cavp import features as feats

        self.model = model.eval()
        self.model_id = model_id
        self.fingerprint = fingerprint
        self.device = device
        self.batch_size = batch_size
        self.dim = int(model.cfg.embed_dim)
        self.fps = feats.FPS
        self.sample_rate = feats.SAMPLE_RATE
        self.provenance: dict[str, Any] = {}
        self.preprocessing = dict(PREPROCESSING)
        self._spec: SpecClips | None = None  # made at the first audio window

    def embed_video(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """N windows of ``(F_i, H, W, 3) uint8`` frames sampled at 4 fps -> ``(N, D) float32``, L2-normalised."""
        from diffgap_search.encoders.cavp.features import video_clips

        return self._pooled((video_clips(w) for w in windows), len(windows), self.model.encode_video)

    def embed_audio(self, windows: np.ndarray, *, sample_rate: int | None = None,
                    durations_s: Sequence[float] | None = None) -> np.ndarray:
        """``(N, S) float32`` windows at ``sample_rate`` (default 16 kHz) -> ``(N, D) float32``, L2-normalised.

        ``durations_s``: the seconds each window spans (``end - start``), which decide its clips as its frames'
        count does for video; default ``S / sample_rate`` (a full window).
        """
        from diffgap_search.encoders.cavp.spec_torch import SpecClips

        arr = np.asarray(windows, dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(f"expected (N, S) audio windows, got shape {arr.shape}")
        rate = int(sample_rate or self.sample_rate)
        spans = list(durations_s) if durations_s is not None else [arr.shape[1] / rate] * len(arr)
        if len(spans) != len(arr):
            raise ValueError(f"{len(arr)} windows but {len(spans)} durations")
        if self._spec is None:
            self._spec = SpecClips(self.device)  # the log-mel clips on the model's device (spec_torch.py)
        clips = (self._spec(w, rate, d) for w, d in zip(arr, spans))
        return self._pooled(clips, len(arr), self.model.encode_spec)

    def _pooled(self, per_window: Iterator[torch.Tensor], n: int, forward: Any) -> np.ndarray:
        """Each window's clips embedded (``batch_size`` clips per pass, one window's clips prepared at a time),
        unit-normalised, averaged and re-normalised: ``(n, D) float32``."""
        import torch

        from diffgap_search.encoders.runtime import l2_rows

        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        counts: list[int] = []
        pending: list[torch.Tensor] = []
        outs: list[torch.Tensor] = []
        with torch.inference_mode():
            for clips in per_window:
                counts.append(int(clips.shape[0]))
                pending.extend(clips.unbind(0))
                while len(pending) >= self.batch_size:
                    outs.append(self._forward(pending[: self.batch_size], forward))
                    pending = pending[self.batch_size :]
            if pending:
                outs.append(self._forward(pending, forward))
        per_clip = torch.cat(outs)
        pooled = torch.stack([chunk.mean(dim=0) for chunk in torch.split(per_clip, counts)])
        return l2_rows(pooled).numpy().astype(np.float32, copy=False)

    def _forward(self, clips: list[torch.Tensor], forward: Any) -> torch.Tensor:
        """A batch of B clips -> ``(B, D) float32`` unit rows on the CPU."""
        import torch

        from diffgap_search.encoders.runtime import l2_rows

        out = forward(torch.stack(clips).to(self.device))
        return l2_rows(out.to(torch.float32).cpu())


def is_cavp_reference(model: str | None) -> bool:
    """True when ``--video-model`` names CAVP: ``cavp`` or a checkpoint file (``*.ckpt``, ``*.pt``, ``*.pth``)."""
    if not model:
        return False
    return model == CAVP or Path(model).suffix.lower() in (".ckpt", ".pt", ".pth")


def load_cavp_encoder(model: str = CAVP, device: str = Device.AUTO, batch_size: int = 8, *,
                      revision: str | None = None, progress: bool = True) -> CavpEncoder:
    """Load CAVP from the hub (``cavp``: ``SimianLuo/Diff-Foley``'s ``diff_foley_ckpt/cavp_epoch66.ckpt``, into
    the Hugging Face cache) or from a local checkpoint file.

    Raises ModelUnavailableError (missing, unreadable, refused or mismatched checkpoint; offline without a
    cached copy) or UsageError (an unknown device).
    """
    from diffgap_search.encoders.runtime import prepare_device
    from diffgap_search.encoders.weights.convert import converted_state
    from diffgap_search.encoders.weights.fingerprint import file_sha256
    from diffgap_search.encoders.weights.progress import stderr_download_progress

    if model == CAVP:
        from diffgap_search.encoders.weights.hub_file import fetch_hub_file

        path, snap = fetch_hub_file(CAVP_REPO, CAVP_FILE, revision, progress=stderr_download_progress(progress))
        provenance = {"source": "hub", "repo_id": CAVP_REPO, "revision": revision, "commit": snap.commit,
                      "file": CAVP_FILE, "family": CAVP}
    else:
        path = Path(model).expanduser()
        if revision:
            raise ModelUnavailableError(f"--video-revision applies to hub models, not to the checkpoint file '{model}'")
        if not path.is_file():
            raise ModelUnavailableError(f"CAVP checkpoint '{model}' does not exist or is not a file")
        provenance = {"source": "checkpoint", "repo_id": None, "revision": None, "commit": None, "family": CAVP}
    torch_device = prepare_device(device)
    fingerprint = file_sha256(path)
    net = _build(converted_state(path, fingerprint, read_cavp_checkpoint), path).to(torch_device)
    encoder = CavpEncoder(net, model_id=model, fingerprint=fingerprint, device=torch_device, batch_size=batch_size)
    encoder.provenance = provenance
    return encoder


def read_cavp_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of a CAVP checkpoint: a dict holding ``state_dict`` (as trained and published) or a bare
    state dict, read with ``weights_only=True``; ``module.`` prefixes stripped. ModelUnavailableError otherwise."""
    import torch

    from diffgap_search.encoders.cavp.model import strip_prefixes
    from diffgap_search.encoders.weights.convert import load_restricted

    try:
        raw = load_restricted(path)
    except ModelUnavailableError as error:
        raise ModelUnavailableError(f"CAVP checkpoint {error}") from None
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not state:
        raise ModelUnavailableError(f"'{path}' is not a CAVP checkpoint: it holds no state_dict of named tensors")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelUnavailableError(f"'{path}' is not a CAVP checkpoint: its state_dict holds non-tensor entries "
                                    f"(first: {bad[0]!r})")
    return strip_prefixes(state)


def _build(state: dict[str, torch.Tensor], path: Path) -> CavpModel:
    """``build_cavp`` with its failures as one ModelUnavailableError naming what does not fit."""
    from diffgap_search.encoders.cavp.model import build_cavp

    try:
        return build_cavp(state)
    except KeyError as error:
        raise ModelUnavailableError(f"'{path}' is not a CAVP checkpoint: it has no tensor {error}") from None
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise ModelUnavailableError(f"'{path}' does not match CAVP's architecture: {detail}") from None
