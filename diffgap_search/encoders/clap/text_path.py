"""Which precision path a ``ClapEncoder``'s text tower takes, and its runner (the audio tower's is
``path_choice.py``).

A text runner maps ``(input_ids (B, L) int64, attention_mask (B, L) int64)`` to the projected, not yet
normalised embeddings ``(B, D)`` (float32, or bfloat16 on the bf16 path). Paths: ``fp32`` (the model itself),
``bf16`` (the text tower and its projection in bfloat16), ``int8`` (torch dynamic int8 on their ``nn.Linear``
layers, CPU only). The ONNX paths are the audio tower's alone: with ``--precision onnx`` or ``onnx-int8`` the
text tower stays in float32.

``auto`` takes the path remembered for these weights on this machine, else probes: every candidate this
device runs natively (bf16 where native; int8 on the CPU, for a serving process only: see ``candidates``)
embeds the fixed probe texts; one whose vectors fall
below cosine ``MIN_LOW_PRECISION_COSINE`` (0.999) to float32's on any text is rejected; of float32 and the
accepted ones, the fastest on one-text calls (a query is one text; best of three rounds over the probe texts)
wins and is remembered under the weights, tower, device, torch build and CPU capability
(``path_choice.auto_key``; a serving process's choice under the tower name ``text serving``). Towers below ``encoder.min_params_for_lowp`` parameters stay in float32.

Measured (``benchmarks/results/bench_precision.md``, full-size RoBERTa tower, one query, quiet AMX Xeon):
fp32 102 ms, bf16 42 ms, int8 28 ms natively; with torch capped to AVX2, fp32 115 ms, bf16 171 ms (emulated),
int8 30 ms; min cosine to float32 0.99993 (bf16) and 0.9995 (int8) on 16 texts.

When the path is known before any text is embedded (forced, or remembered) and the encoder loaded its model
itself (``owns_model``), the text tower is converted in place instead of copied (a cold ``dgsearch query``
saves the copy: ≈ 0.3 s and 250 MB for LAION-CLAP's RoBERTa); its float32 path is then gone, and calling it
raises.
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from diffgap_search.encoders.clap.batches import unit_rows
from diffgap_search.encoders.clap.path_choice import ClapEncoder, auto_key, base_key, best_time
from diffgap_search.encoders.precision import (
    MIN_LOW_PRECISION_COSINE, Precision, cached_choice, remember_verdict,
)
from diffgap_search.encoders.runtime import native_bf16
from diffgap_search.errors import UsageError

TextRunner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PROBE_TEXTS = ("a dog barking in the distance", "rain falling on a tin roof", "people talking", "piano music")
TEXT_PATHS = (Precision.FP32, Precision.BF16, Precision.INT8)


class TextTower(torch.nn.Module):
    """A ``ClapModel``'s text tower and projection as one module: token ids and mask -> ``(B, D)``."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.text_model = model.text_model
        self.text_projection = model.text_projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return self.text_projection(out.pooler_output if not isinstance(out, tuple) else out[1])


def forced_path(precision: Precision) -> Precision:
    """The text path a forced ``--precision`` means (the ONNX paths: float32; ``auto`` is not forced)."""
    return precision if precision in TEXT_PATHS else Precision.FP32


def serving(encoder: ClapEncoder) -> bool:
    """Whether the encoder embeds texts for a long-lived process (``text_serving``: ``dgsearch serve``)."""
    return bool(getattr(encoder, "text_serving", False))


def tower_key(encoder: ClapEncoder) -> str:
    """The tower name ``auto``'s choice is remembered under: ``text``, or ``text serving``."""
    return "text serving" if serving(encoder) else "text"


def candidates(encoder: ClapEncoder) -> list[Precision]:
    """The paths ``auto`` tries on the text tower, fastest expected first (float32 is always the fallback):
    bf16 where native; int8 on the CPU for a serving process only (quantising RoBERTa-base costs about 2 s
    of CPU once, paid back only after some hundred queries: a cold ``dgsearch query`` took 9.6 s with it and
    8.0 s with bf16, ``benchmarks/results/coldstart.md``)."""
    params = sum(p.numel() for p in encoder.model.text_model.parameters())
    if params < encoder.min_params_for_lowp:
        return []
    out = [Precision.BF16] if native_bf16(encoder.device) else []
    if encoder.device.type == "cpu" and serving(encoder):
        out.append(Precision.INT8)
    return out


def runner(model: Any, path: Precision, in_place: bool = False) -> TextRunner:
    """The runner of ``path`` for ``model``'s text tower: on a copy, or on the tower itself when ``in_place``
    (its float32 weights are then converted for good). Raises UsageError for int8 on a GPU."""
    tower = TextTower(model).eval()
    if path == Precision.FP32:
        return lambda ids, mask: tower(ids, mask)
    if not in_place:
        tower = copy.deepcopy(tower)
    if path == Precision.BF16:
        tower = tower.to(torch.bfloat16).eval()
    elif path == Precision.INT8:
        if model.device.type != "cpu":
            raise UsageError(f"precision '{path}' runs on the CPU only: use --device cpu, or --precision auto")
        with warnings.catch_warnings():  # torch.ao.quantization's notice that it moves to torchao one day
            warnings.simplefilter("ignore")
            tower = torch.ao.quantization.quantize_dynamic(tower.float(), {torch.nn.Linear}, dtype=torch.qint8,
                                                           inplace=in_place)
    else:
        raise ValueError(f"the text tower has no {path} path")
    return lambda ids, mask: tower(ids, mask)


def remembered(encoder: ClapEncoder) -> Precision | None:
    """The path known without probing: forced, or ``auto``'s remembered choice that is still a candidate
    here (None: ``auto`` must probe)."""
    if encoder.precision != Precision.AUTO:
        return forced_path(encoder.precision)
    options = candidates(encoder)
    if not options:
        return Precision.FP32
    choice = cached_choice(auto_key(encoder, tower_key(encoder)))
    if choice is not None and (choice == Precision.FP32 or choice in options):
        return Precision(choice)
    return None


def probe(encoder: ClapEncoder, tokens: Callable[[list[str]], tuple[torch.Tensor, torch.Tensor]]
          ) -> tuple[Precision, TextRunner]:
    """Probe the candidates against float32 on :data:`PROBE_TEXTS`; the fastest agreeing path (or float32),
    remembered. ``tokens(texts)``: the encoder's tokenisation, ``(input_ids, attention_mask)``."""
    exact = runner(encoder.model, Precision.FP32)
    each = [tokens([text]) for text in PROBE_TEXTS]
    all_ids, all_mask = tokens(list(PROBE_TEXTS))
    with torch.inference_mode():
        reference = unit_rows(exact(all_ids, all_mask))
    best: tuple[float, Precision, TextRunner] = (_pass_time(exact, each), Precision.FP32, exact)
    for path in candidates(encoder):
        try:
            run = runner(encoder.model, path)
        except Exception as error:  # noqa: BLE001 - a path that cannot be built here is skipped, said once
            print(f"text precision probe: skipping {path} ({type(error).__name__}: {error})", file=sys.stderr)
            continue
        with torch.inference_mode():
            cosine = float(np.min(np.sum(reference * unit_rows(run(all_ids, all_mask)), axis=1)))
        ok = cosine >= MIN_LOW_PRECISION_COSINE
        # the bf16 verdict keeps the key it always had; the others get "<base key>|<path>"
        key = base_key(encoder, "text") + ("" if path == Precision.BF16 else f"|{path}")
        remember_verdict(key, ok)
        encoder.probe_report[f"text {path}"] = cosine
        if ok:
            seconds = _pass_time(run, each)
            if seconds < best[0]:
                best = (seconds, path, run)
    remember_verdict(auto_key(encoder, tower_key(encoder)), str(best[1]))
    return best[1], best[2]


def _pass_time(run: TextRunner, each: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Seconds of the fastest of 3 passes over one-text calls (after one untimed pass)."""
    return best_time(lambda: [run(ids, mask) for ids, mask in each], repeats=3)
