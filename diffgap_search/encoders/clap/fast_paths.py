"""Runners for a CLAP audio tower on other precision paths than float32 torch (``precision.Precision``).

A runner maps the model's ``input_features`` ``(B, C, T, M) float32`` (on the CPU) to the projected,
not yet normalised embeddings ``(B, D) float32``. Paths:

- ``int8``: ``torch.ao.quantization.quantize_dynamic`` on a copy's ``nn.Linear`` layers (weights int8 per
  tensor, activations quantised per batch at run time);
- ``onnx``: the tower exported once to ONNX (torch's TorchScript exporter, opset 17, dynamic batch; HTSAT's
  bicubic time stretch exported as four gathers, ``time_stretch``, not as a ``Resize`` ONNX Runtime runs 10x
  slower than torch; each Swin block's pad, rolls and window partitions and each patch merging's slices as
  one gather each way, ``window_gather``) and run by ONNX Runtime's CPU execution provider with every graph
  optimisation;
- ``onnx-int8``: that export through ``onnxruntime.quantization.quantize_dynamic`` (int8 weights with
  per-channel scales, MatMuls on constant weights only; 7-bit weights on x86 CPUs without VNNI, where 8-bit
  ones saturate ONNX Runtime's int8 products: ``runtime.int8_products_saturate``).

Exports are cached in ``<cache_dir>/onnx/`` under the weights' sha256, the tower, the export's own version
(``EXPORT_VERSION``), and the torch, transformers and onnxruntime versions, written to a temporary name and
renamed, so a cold process only opens a session.
Imports torch; onnxruntime is imported only by the ONNX paths (``onnx_available`` says whether it is there).
"""

from __future__ import annotations

import copy
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from diffgap_search.atomic_files import temporary_beside
from diffgap_search.encoders.clap.time_stretch import gathered_stretch
from diffgap_search.encoders.clap.window_gather import gathered_windows
from diffgap_search.encoders.runtime import int8_products_saturate
from diffgap_search.encoders.weights.fingerprint import cache_dir

Runner = Callable[[torch.Tensor], torch.Tensor]
INPUT_NAME = "input_features"
EXPORT_VERSION = 3  # part of the cached file's name. 3: the Swin token shuffles as gathers; 2: the time
# stretch as gathers (1: a Resize node)


class AudioTower(torch.nn.Module):
    """A ``ClapModel``'s audio tower and projection as one module: ``(B, C, T, M) float32`` -> ``(B, D)``,
    ``is_longer`` False (windows of at most 10 s, as ``ClapEncoder`` feeds them)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.audio_model = model.audio_model
        self.audio_projection = model.audio_projection

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        is_longer = torch.zeros((input_features.shape[0], 1), dtype=torch.bool, device=input_features.device)
        out = self.audio_model(input_features=input_features, is_longer=is_longer)
        return self.audio_projection(out.pooler_output if not isinstance(out, tuple) else out[1])


def onnx_available() -> bool:
    """Whether onnxruntime and onnx can be imported (the ``onnx`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def onnx_runtime_version() -> str | None:
    """onnxruntime's version, None without it."""
    if not onnx_available():
        return None
    import onnxruntime

    return str(onnxruntime.__version__)


def torch_int8_runner(model: Any) -> Runner:
    """The ``int8`` path: dynamic int8 Linear layers on a deep copy of the audio tower (the float32 model is
    left as it was)."""
    import warnings

    tower = copy.deepcopy(AudioTower(model)).float().eval()
    with warnings.catch_warnings():  # torch.ao.quantization's notice that it moves to torchao one day
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(tower, {torch.nn.Linear}, dtype=torch.qint8)

    def run(features: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return quantized(features.float())

    return run


def int8_suffix() -> str:
    """The int8 export's file suffix: ``-int8``, or ``-int8r`` with 7-bit weights (this CPU's int8 products
    saturate with 8-bit ones: ``runtime.int8_products_saturate``)."""
    return "-int8r" if int8_products_saturate() else "-int8"


def onnx_file(fingerprint: str, tower: str, quantized: bool) -> Path:
    """Where the export of these weights' ``tower`` lives (``<cache_dir>/onnx/…``), keyed by versions (and for
    int8, by whether its weights have 7 bits)."""
    from importlib.metadata import version  # transformers' own, without importing it (~1 s cold)

    versions = f"x{EXPORT_VERSION}-torch{torch.__version__}-tf{version('transformers')}-ort{onnx_runtime_version()}"
    name = f"{fingerprint}-{tower}-{versions}{int8_suffix() if quantized else ''}.onnx"
    return cache_dir() / "onnx" / name.replace("+", "_")


def export_audio_onnx(model: Any, fingerprint: str, example: torch.Tensor, quantized: bool) -> Path:
    """The ONNX file of the audio tower (float32, or dynamically quantised), exported on first use.

    ``example``: ``(B, C, T, M) float32`` features of the right shape (B is dynamic in the export)."""
    target = onnx_file(fingerprint, "audio", quantized)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if quantized:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        source = export_audio_onnx(model, fingerprint, example, quantized=False)
        tmp = temporary_beside(target)
        import logging

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # its advice to pre-process, and a note per shape it cannot infer
        try:
            quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=int8_products_saturate(),
                             extra_options={"MatMulConstBOnly": True})
        finally:
            root.setLevel(level)
    else:
        tmp = temporary_beside(target)
        tower = AudioTower(model).float().eval()
        import warnings

        with warnings.catch_warnings(), torch.inference_mode(), gathered_stretch(model), gathered_windows(model):
            warnings.simplefilter("ignore")
            torch.onnx.export(tower, (example.float().cpu(),), str(tmp), input_names=[INPUT_NAME],
                              output_names=["embedding"], dynamic_axes={INPUT_NAME: {0: "batch"}, "embedding": {0: "batch"}},
                              opset_version=17, dynamo=False)
    os.replace(tmp, target)
    return target


def onnx_runner(path: Path) -> Runner:
    """An ONNX Runtime session on ``path`` (CPU execution provider, all graph optimisations, torch's CPU
    thread count), as a runner."""
    from diffgap_search.encoders.onnx_session import cpu_session

    session = cpu_session(path, torch.get_num_threads())

    def run(features: torch.Tensor) -> torch.Tensor:
        array = features.detach().float().cpu().contiguous().numpy()
        return torch.from_numpy(session.run(None, {INPUT_NAME: array})[0])

    return run


def fp32_runner(model: Any) -> Runner:
    """The float32 tower itself (shares the model's weights)."""
    tower = AudioTower(model).eval()
    return lambda features: tower(features)


def bf16_runner(model: Any) -> Runner:
    """The ``bf16`` path: a bfloat16 deep copy of the tower; outputs come back as float32."""
    tower = copy.deepcopy(AudioTower(model)).to(torch.bfloat16).eval()
    return lambda features: tower(features.to(torch.bfloat16)).float()
