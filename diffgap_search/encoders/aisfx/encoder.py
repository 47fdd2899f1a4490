"""``--model aisfx``: the sound-effects embedding network that ships inside the ``aisfx`` package (audio only).

aisfx 0.1.2 (code MIT, model CC BY 4.0) is the model of Alison B. Ma and Alexander Lerch,
"Representation Learning for the Automatic Indexing of Sound Effects Libraries" (ISMIR 2022): a 9-layer
CNN (``aisfx/models/cnn2d.py`` ``EmbeddingNet('max', 3, 1, 64)``, from the DCASE cross-task baselines)
trained across several sound-effects libraries, whose checkpoint ``aisfx/models/checkpoint.pth`` gives a
512-d embedding for each 100-frame (about 2.3 s) block of a log-mel spectrogram. It has no text tower:
``embed_text`` raises ``QueryNotSupportedError``.

This module is our own implementation; it never imports aisfx (whose ``__init__`` needs librosa 0.9,
numpy 1.23 and tqdm, and whose loader unpickles without ``weights_only``). It only reads the
checkpoint file from the installed package, through the restricted ``torch.load(weights_only=True)``.

From a window to one vector (``AisfxEncoder.embed_audio``, ``(N, S) float32`` -> ``(N, 512) float32``):

1. peak normalisation per window, the gain capped at +40 dB: ``w / max(max|w|, PEAK_FLOOR = 0.01)``;
2. the Essentia-flavoured log-mel spectrogram, scaled as in training (``aisfx_features``: ``(T, 96)``,
   T = ceil(S / 1024) + 1 = 432 frames for a 10 s window);
3. the network over the whole window at once, zero-padded to 100 frames (one block) when shorter;
4. L2 normalisation of the ``(512,)`` output (non-negative: it comes after a ReLU).

Short windows (preprocessing version 2). The index cuts a file shorter than its window into one window
repeat-padded to the window's length (LAION-CLAP's rule, for CLAP, which hears 10 s at once). Given each window's
seconds (``embed_audio(windows, durations_s)``), this encoder embeds such a window from its own samples instead,
as aisfx embeds a short file: the max over time of step 3 gains nothing from the tiles but their cost
(``benchmarks/bench_aisfx_short.py``: 2.8-4.1x less time on one-shot libraries, kind agreement equal or better).
An index made at version 1 (the tiled window) keeps version 1 (``version``; ``docs/models.md``).

Step 1. aisfx normalises nothing in the paper's Essentia path (``EasyLoader``'s default ``replayGain=-6``
is a gain of 1: checked against essentia 2.1b6) and divides each *file* by its peak in its librosa path
(``spectrogram_librosa.compute_spectrogram``). The encoder sees windows, not files: per window or not at
all. Unnormalised, the ``log10(1e4 x + 1)`` spectrogram ties the vector to the recording level: a query
20 dB quieter than its indexed copy finds that copy first for 84 % of the 130 real files, 40 dB quieter
for 35 %, and kind agreement p@1 falls from 0.675 to 0.611 and 0.373. Normalised, 100 % and 0.683 at
every level, and agreement at the recorded levels is no worse (table below); the sound-effects libraries
it was trained on are mastered near full scale anyway. The cap keeps near-silence quiet: room tone at
-60 dBFS is raised to -20 dBFS, not to full-scale noise (measured while choosing it, with 20 seeded
room-tone windows at -60 and -50 dBFS added to the index: uncapped, 1 of the 131 windows had one among
its 5 nearest, capped at +40 dB none; caps of +20 or +30 dB lost level invariance at -40 dB).

Step 3. ``EmbeddingNet.forward`` (``cnn2d.py``) is fully convolutional and ends with a mean over
frequency and a max over time, so one pass over the window's 432 frames takes the max over every 8-frame
position of the features: aisfx's 100-frame blocks (``inference.EMB_BLOCK_LENGTH``, about 2.3 s) at the
finest hop, max-pooled, without zero padding at block edges. A window shorter than one block (T < 100,
under 2.3 s: only with ``--window`` below that) is zero-padded after its frames to 100, exactly as
``preprocessing.blocking`` pads a short file (zero is silence in the scaled spectrogram), so it gets the
vector aisfx gives such a file. The last ``T % 8`` frames (at most 0.16 s, none for 10 s windows) fall
off the three 2x2 max-poolings, as rows 96-99 of each of aisfx's own blocks do.

Measured against aisfx's own scheme, blocks of 100 frames at a hop of 50 (``emb_hop_size=0.5``, 7 blocks
in a 10 s window, ``blocking(drop_partial_block=True)``) pooled by mean or max: leave-one-out kind
agreement (precision@1 / @5) on the 130 CC0 sonic-pi samples, 126 queries, 10 s windows
(``benchmarks/bench_aisfx.py``, whose docstring defines the settings):

=========================================  =============  =============  =============  =============
method                                     index          event          event->index   -40 dB->index
=========================================  =============  =============  =============  =============
shipped: peak-normalised, whole window     0.683 / 0.530  0.722 / 0.584  0.492 / 0.433  0.683 / 0.529
whole window, not peak-normalised          0.675 / 0.527  0.706 / 0.576  0.476 / 0.422  0.373 / 0.354
peak-normalised, mean of 7 blocks          0.643 / 0.525  0.651 / 0.444  0.198 / 0.216  0.635 / 0.524
peak-normalised, max of 7 blocks           0.643 / 0.524  0.683 / 0.537  0.452 / 0.406  0.659 / 0.524
MFCC baseline                              0.532 / 0.356  0.444 / 0.333  0.254 / 0.190  0.532 / 0.354
=========================================  =============  =============  =============  =============

("index": files windowed as the index does; "event": each file once at a seeded offset in 10 s of
-60 dBFS noise; "event->index": those searched among the indexed files, a short sound in long
recordings.) Mean pooling lets the quiet blocks outvote the event (0.198); the whole-window pass is the
best in every column, and 1.4-1.7x faster than the 7 blocks (10.4-11.6 against 6.9-7.4 windows/s on 2
CPU cores in two runs: 432 frames of network instead of 700).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from diffgap_search.config import Device
from diffgap_search.encoders.aisfx.features import LogMel
from diffgap_search.encoders.aisfx.inputs import (
    BLOCK_FRAMES,
    PEAK_FLOOR,
    checked_windows,
    chunks,
    input_frames,
    length_groups,
    window_lengths,
)
from diffgap_search.encoders.aisfx.onnx_query import export_checked
from diffgap_search.encoders.aisfx.package import (
    DIM,
    INSTALL_HINT,
    MODEL_ID,
    PREPROCESSING,
    SAMPLE_RATE,
    checked_precision,
    embeds_own_lengths,
    find_checkpoint,
)
from diffgap_search.encoders.aisfx.precision import PROBE_SECONDS, choose_path, path_context
from diffgap_search.encoders.aisfx.spectrogram import ESSENTIA
from diffgap_search.encoders.base import check_batch_size
from diffgap_search.encoders.clap.batches import probe_windows
from diffgap_search.encoders.precision import Precision
from diffgap_search.encoders.runtime import prepare_device
from diffgap_search.encoders.weights.convert import load_restricted
from diffgap_search.encoders.weights.fingerprint import file_sha256
from diffgap_search.errors import ModelUnavailableError, QueryNotSupportedError
from diffgap_search.threads import torch_threads

# Frames per network pass: on CPU 4 windows of 10 s run 10 % faster per window than 16 (cache-sized
# activations; measured 11.0 vs 10.0 windows/s on 2 cores) in a quarter of the memory; GPUs take 16.
CPU_FRAMES_PER_PASS = 4 * 432
SMALL_CALL_FRAMES = 432  # under one 10 s window's frames in a call: one thread (see AisfxEncoder._embed_equal)
GPU_FRAMES_PER_PASS = 16 * 432
EMBEDDING_PREFIX = "embedding_net."
TEXT_REFUSAL = (
    "model 'aisfx' embeds audio only: a text query cannot be searched in this index; "
    "query with --audio FILE, or index with a CLAP model"
)


class ConvBlock(nn.Module):
    """Two 3x3 conv + batch-norm + ReLU layers, then max pooling (``cnn2d.ConvBlock``, ``pool_type='max'``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        """``(B, C_in, T, M)`` -> ``(B, C_out, T // pool[0], M // pool[1])``."""
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, kernel_size=pool) if pool != (1, 1) else x


class AisfxNet(nn.Module):
    """``cnn2d.EmbeddingNet('max', 3, 1, 64)``: 64-128-256-512 channels; parameter names match the
    checkpoint's ``embedding_net.*`` keys so that they load strictly."""

    POOLS = ((2, 2), (2, 2), (2, 2), (1, 1))

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.conv_block1 = ConvBlock(1, width)
        self.conv_block2 = ConvBlock(width, width * 2)
        self.conv_block3 = ConvBlock(width * 2, width * 4)
        self.conv_block4 = ConvBlock(width * 4, width * 8)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """``(B, T, N_MELS) float32`` scaled log-mel blocks -> ``(B, 512) float32`` (max over time of the
        frequency-averaged last feature maps, as ``EmbeddingNet.forward``)."""
        x = spec.unsqueeze(1)
        blocks = (self.conv_block1, self.conv_block2, self.conv_block3, self.conv_block4)
        for block, pool in zip(blocks, self.POOLS):
            x = block(x, pool)
        return x.mean(dim=3).amax(dim=2)


class AisfxEncoder:
    """aisfx's 512-d sound-effects embeddings for audio windows (an ``encoders.base.Encoder`` whose
    ``embed_text`` refuses: it has no text tower).

    Attributes:
        model_id: ``"aisfx"``.
        modalities: ``("audio",)``: what it embeds (recorded in the index; text queries are refused early).
        fingerprint: sha256 hex digest of ``checkpoint.pth`` as shipped.
        dim: 512.
        sample_rate: 44 100, the rate ``embed_audio`` expects.
        device: the ``torch.device`` the network runs on.
        batch_size: at most this many windows per network pass (fewer on CPU and for windows over 10 s:
            ``CPU_FRAMES_PER_PASS``, ``GPU_FRAMES_PER_PASS``).
        provenance: where the weights came from (set by the loader, recorded in the index).
        precision: the path the network runs (``Precision.FP32`` or ``BF16``: ``precision.choose_path``).
        probe_report: the probe's figures when ``auto`` probed in this process (min cosine, seconds), else empty.
    """

    model_id: str = MODEL_ID
    modalities: tuple[str, ...] = ("audio",)
    dim: int = DIM
    sample_rate: int = SAMPLE_RATE
    def __init__(self, net: AisfxNet, *, fingerprint: str, device: torch.device, batch_size: int = 16,
                 version: int = PREPROCESSING["audio"], precision: str = Precision.AUTO) -> None:
        # version 2: embed_audio takes each window's seconds and embeds a short one as itself (own_lengths);
        # 1: the window as given, a short file repeat-padded to it (an index made at 1 keeps it)
        self.preprocessing = {"audio": version}
        self.own_lengths = embeds_own_lengths(version)
        self.batch_size = check_batch_size(batch_size)
        # channels-last: oneDNN's convolutions skip a reorder per layer (float32 7-20 % faster, bf16 more)
        self.net = net.to(device=device, dtype=torch.float32, memory_format=torch.channels_last).eval()
        self.fingerprint = fingerprint
        self.provenance: dict[str, Any] = {}
        self.device = device
        self._log_mel = LogMel(ESSENTIA, device)
        self.precision, self.probe_report = choose_path(precision, fingerprint, device, self._embed_equal,
                                                        self.sample_rate, self.batch_size)

    def embed_audio(self, windows: np.ndarray, durations_s: Sequence[float] | None = None) -> np.ndarray:
        """``(N, S) float32`` mono windows at 44.1 kHz, any one length S >= 1 -> ``(N, 512) float32``, unit rows.

        ``durations_s``: each window's own seconds (its end minus its start). A window shorter than S (a short
        file, repeat-padded to the window by ``media/windows``) is then embedded from its own samples, its first
        ``min(S, round(seconds * 44 100))``, as aisfx embeds a short file (preprocessing version 2; without
        durations, or at version 1, the S samples as given). Windows of one length run in batches; the output keeps
        the input's order. On the CPU, the small calls of several lengths (short files, one thread each: see
        ``_embed_equal``) run side by side on as many threads as torch may use: the vectors are the same bit for
        bit, the time 1.95x shorter on 2 quiet cores (130 sonic-pi files, 4.07 -> 2.09 s) and 1.15x beside a
        one-thread job. Raises ValueError for another shape, a non-float dtype, NaN/inf samples or a durations
        count other than N.
        """
        batch = checked_windows(windows)
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if durations_s is None or not self.own_lengths:  # version 1 embeds the windows as given
            return self._embed_equal(batch)
        lengths = window_lengths(durations_s, batch.shape)
        out = np.empty((batch.shape[0], self.dim), dtype=np.float32)
        groups = length_groups(lengths)  # rows of one length each

        def embed(rows: np.ndarray) -> np.ndarray:
            return self._embed_equal(np.ascontiguousarray(batch[rows, :lengths[rows[0]]]))

        small: list[np.ndarray] = []
        for rows in groups:
            if self._small_call(int(lengths[rows[0]]), len(rows)):
                small.append(rows)
            else:  # a batch of long windows: torch's own threads
                out[rows] = embed(rows)
        threads = min(len(small), torch.get_num_threads())
        if threads > 1:  # independent calls on threads of their own: no intra-op barrier to stall on
            with torch_threads(1), ThreadPoolExecutor(threads, thread_name_prefix="aisfx") as pool:
                for rows, vectors in zip(small, pool.map(embed, small)):
                    out[rows] = vectors
        else:
            for rows in small:
                out[rows] = embed(rows)
        return out

    def _small_call(self, samples: int, count: int) -> bool:
        """Whether a call of ``count`` windows of ``samples`` samples runs on one thread: on the CPU, under
        ``SMALL_CALL_FRAMES`` frames in all (one short file's)."""
        return self.device.type == "cpu" and self.input_frames(samples) * count < SMALL_CALL_FRAMES

    def _embed_equal(self, batch: np.ndarray, path: Precision | None = None) -> np.ndarray:
        """``(N, S) float32`` checked windows of one length -> ``(N, 512) float32`` unit rows, the network run in
        ``path`` (default: the encoder's ``precision``; the features are float32 on every path). On the CPU, a
        call of fewer than ``SMALL_CALL_FRAMES`` frames in all (one short file) runs on one thread: its
        convolutions are too small to share, and a second thread descheduled on a busy machine stalls every one."""
        frames = self.input_frames(batch.shape[1])
        budget = CPU_FRAMES_PER_PASS if self.device.type == "cpu" else GPU_FRAMES_PER_PASS
        per_pass = max(1, min(self.batch_size, budget // frames))
        small = self._small_call(batch.shape[1], batch.shape[0])
        with torch_threads(1) if small else contextlib.nullcontext(), torch.inference_mode():
            inputs = [self.model_input(chunk) for chunk in chunks(batch, per_pass)]
            with path_context(path or self.precision, self.device):
                parts = [self.net(x) for x in inputs]
            vectors = F.normalize(torch.cat(parts, dim=0).float(), dim=1)
        return np.ascontiguousarray(vectors.cpu().numpy(), dtype=np.float32)

    def model_input(self, windows: np.ndarray, normalise_peaks: bool = True) -> torch.Tensor:
        """``(N, S) float32`` windows -> the network's input ``(N, max(T, 100), 96) float32`` on the device:
        the (peak-normalised) window's scaled log-mel spectrogram, zero-padded to one block when shorter
        (``preprocessing.blocking``). ``normalise_peaks=False`` skips step 2, for measurements only."""
        samples = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
        spec = self._log_mel(peak_normalise(samples) if normalise_peaks else samples)
        frames = int(spec.shape[1])
        return F.pad(spec, (0, 0, 0, BLOCK_FRAMES - frames)) if frames < BLOCK_FRAMES else spec

    input_frames = staticmethod(input_frames)  # ``inputs.input_frames``

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Always raises ``QueryNotSupportedError``: aisfx has no text tower."""
        raise QueryNotSupportedError(TEXT_REFUSAL)


def peak_normalise(windows: torch.Tensor) -> torch.Tensor:
    """``(N, S) float32`` -> each row divided by ``max(its peak |sample|, PEAK_FLOOR)`` (step 2 above)."""
    peaks = windows.abs().amax(dim=1, keepdim=True).clamp_min(PEAK_FLOOR)
    return windows / peaks


def _numpy_scalar_globals() -> list[Any]:
    """The globals the shipped checkpoint's ``ds_dict`` needs (numpy int64 scalars), allowed by name.

    The file pickles ``numpy.core.multiarray.scalar`` (numpy 1.x's name; numpy 2 moved it to
    ``numpy._core``), ``numpy.dtype`` and the int64 dtype class. Nothing else is allowed.
    """
    core = getattr(np, "_core", None) or np.core
    return [(core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype(np.int64))]


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The ``embedding_net.*`` tensors of an aisfx checkpoint, keys without the prefix, read restrictedly.

    The file holds ``(state_dict, ds_dict)``: the ``CrossNet`` weights and ``{dataset: (index, classes)}``.
    It is read with ``torch.load(weights_only=True)``, allowing only numpy scalars besides tensors; a
    file needing anything else is refused with ``ModelUnavailableError``, never unpickled in full. The
    per-dataset classifier heads ``fc.*`` (nine training libraries) are dropped: only the embedding is used.
    """
    try:
        loaded = load_restricted(path, allow=lambda: torch.serialization.safe_globals(_numpy_scalar_globals()))
    except ModelUnavailableError as error:
        raise ModelUnavailableError(f"model 'aisfx': {error}; reinstall the package: {INSTALL_HINT}") from None
    if not (isinstance(loaded, (tuple, list)) and len(loaded) == 2 and isinstance(loaded[0], dict)):
        raise ModelUnavailableError(f"model 'aisfx': '{path}' is not an aisfx checkpoint (state_dict, ds_dict)")
    return {k[len(EMBEDDING_PREFIX):]: v for k, v in loaded[0].items() if k.startswith(EMBEDDING_PREFIX)}


def build_net(state: dict[str, torch.Tensor], path: Path) -> AisfxNet:
    """An ``AisfxNet`` holding ``state`` exactly (strict: no key missing or left over), in ``eval()``."""
    net = AisfxNet()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise ModelUnavailableError(f"model 'aisfx': the weights in '{path}' do not fit the network: {first}") from None
    return net.eval()


def load_aisfx_encoder(device: str = Device.AUTO, batch_size: int = 16, checkpoint: Path | None = None,
                       version: int = PREPROCESSING["audio"], precision: str = Precision.AUTO) -> AisfxEncoder:
    """The aisfx encoder from the installed package's checkpoint (or ``checkpoint``) on ``device``, making
    preprocessing ``version`` of its ``audio`` space (``package.supported_version``), its network in
    ``precision`` (auto, fp32 or bf16: ``precision.py``). With ``auto``, the first load on a machine with
    onnxruntime also exports the network for torch-free queries and checks it (``onnx_query.export_checked``).

    Raises ``ModelUnavailableError`` (package or file missing, a file that is not plain weights or does
    not fit the network, or a CUDA device that is not there) or ``UsageError`` (an unknown device name, or
    a precision that is not aisfx's).
    """
    checked_precision(precision)
    path = Path(checkpoint) if checkpoint is not None else find_checkpoint()
    if not path.is_file():
        raise ModelUnavailableError(f"model 'aisfx': checkpoint '{path}' does not exist; {INSTALL_HINT}")
    torch_device = prepare_device(device)
    net = build_net(read_checkpoint(path), path)
    encoder = AisfxEncoder(net, fingerprint=file_sha256(path), device=torch_device, batch_size=batch_size,
                           version=version, precision=precision)
    if checked_precision(precision) == Precision.AUTO:  # once per machine: queries then run without torch
        windows = probe_windows(int(PROBE_SECONDS * SAMPLE_RATE), SAMPLE_RATE)
        export_checked(encoder.net, encoder.fingerprint, lambda w: encoder._embed_equal(w, Precision.FP32), windows)
    return encoder
