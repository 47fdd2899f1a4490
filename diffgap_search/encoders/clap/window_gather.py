"""HTSAT's token shuffles as single gathers, for the ONNX export of CLAP's audio tower.

Every Swin block of ``ClapAudioLayer.forward`` moves its tokens three times around the attention: a zero
``Pad`` (a full copy even when nothing is padded), a cyclic ``torch.roll`` on two axes (exported as four
``Slice``s and two ``Concat``s) and the window partition's six-axis ``Transpose``; then the same in reverse.
Each patch merging (``ClapAudioPatchMerging``) takes four strided ``Slice``s and a ``Concat``. All of them
only reorder tokens of ``C`` contiguous floats, so each of those groups is one permutation of the token axis,
known when the graph is built: exported as one ``Gather`` on ``(B, H*W, C)`` it is one copy instead of two
to four. ONNX Runtime spent ~100 ms of a 1.4 s batch of 16 windows in those ops on an AVX2-only EPYC
(2026-12-04 profile). Gathers copy, they compute nothing: the tower's outputs are the same numbers
(``tests/test_window_gather.py`` checks the patched torch forward against transformers' bit for bit).

Used while exporting only (``gathered_windows``); the torch paths keep transformers' own code. A layer whose
map is not a whole number of windows (padding), or a merging of an odd map, keeps transformers' code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def window_order(height: int, width: int, window: int, shift: int) -> np.ndarray:
    """``(H*W,) int64``: for each token of the rolled (by ``-shift`` on both axes) and window-partitioned map,
    in partition order (window row, window column, row in window, column in window), its flat index
    ``h * W + w`` in the original map. Needs H and W to be multiples of ``window``."""
    rows = (np.arange(height) + shift) % height  # torch.roll(x, -shift)[i] == x[(i + shift) % n]
    cols = (np.arange(width) + shift) % width
    flat = rows[:, None] * width + cols[None, :]
    return flat.reshape(height // window, window, width // window, window).transpose(0, 2, 1, 3).reshape(-1)


def merge_order(height: int, width: int) -> np.ndarray:
    """``(H*W,) int64``: patch merging's token order — for each output position (i, j) of the half-size map,
    its four sources ``(2i, 2j), (2i+1, 2j), (2i, 2j+1), (2i+1, 2j+1)`` (the order of transformers' concat),
    as flat indices ``h * W + w``. Needs H and W even."""
    i = np.arange(height // 2)[:, None, None]
    j = np.arange(width // 2)[None, :, None]
    dh, dw = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
    return ((2 * i + dh) * width + (2 * j + dw)).reshape(-1)


def _take(tokens: torch.Tensor, order: np.ndarray) -> torch.Tensor:
    """``tokens`` ``(B, N, C)`` reordered along N by ``order`` (one Gather when exported)."""
    return torch.index_select(tokens, 1, torch.from_numpy(np.ascontiguousarray(order)).to(tokens.device))


def layer_forward(layer: Any, hidden_states: torch.Tensor, input_dimensions: tuple[int, int],
                  output_attentions: bool | None = False, always_partition: bool | None = False) -> tuple[Any, ...]:
    """``ClapAudioLayer.forward`` with its pad, rolls and partitions as two gathers (``window_order``); a map
    that needs padding goes to transformers' forward."""
    if not always_partition:
        layer.set_shift_and_window_size(input_dimensions)
    height, width = (int(v) for v in input_dimensions)
    window, shift = int(layer.window_size), int(layer.shift_size)
    if height % window or width % window:
        return type(layer).forward(layer, hidden_states, input_dimensions, output_attentions, True)
    batch, _, channels = hidden_states.size()
    order = window_order(height, width, window, shift)
    windows = _take(layer.layernorm_before(hidden_states), order).reshape(-1, window * window, channels)
    mask = layer.get_attn_mask(height, width, dtype=hidden_states.dtype, device=hidden_states.device)
    attention = layer.attention(windows, mask, output_attentions=output_attentions)
    back = _take(attention[0].reshape(batch, height * width, channels), np.argsort(order))
    hidden_states = hidden_states + layer.drop_path(back)
    out = hidden_states + layer.output(layer.intermediate(layer.layernorm_after(hidden_states)))
    return (out, attention[1]) if output_attentions else (out,)


def merging_forward(merging: Any, input_feature: torch.Tensor, input_dimensions: tuple[int, int]) -> torch.Tensor:
    """``ClapAudioPatchMerging.forward`` with its four strided slices and concat as one gather
    (``merge_order``); an odd map goes to transformers' forward."""
    height, width = (int(v) for v in input_dimensions)
    if height % 2 or width % 2:
        return type(merging).forward(merging, input_feature, input_dimensions)
    batch, _, channels = input_feature.shape
    merged = _take(input_feature, merge_order(height, width)).reshape(batch, (height // 2) * (width // 2), 4 * channels)
    return merging.reduction(merging.norm(merged))


@contextmanager
def gathered_windows(model: Any) -> Iterator[None]:
    """While inside, the Swin blocks and patch mergings of ``model``'s (a ``ClapModel``'s) audio encoder run
    ``layer_forward`` and ``merging_forward`` (for an export); transformers' methods are back on exit."""
    encoder = getattr(getattr(model, "audio_model", None), "audio_encoder", None)
    patched: list[Any] = []
    for stage in getattr(encoder, "layers", []):
        for block in getattr(stage, "blocks", []):
            block.forward = lambda *args, _b=block, **kw: layer_forward(_b, *args, **kw)
            patched.append(block)
        if getattr(stage, "downsample", None) is not None:
            merging = stage.downsample
            merging.forward = lambda *args, _m=merging, **kw: merging_forward(_m, *args, **kw)
            patched.append(merging)
    try:
        yield
    finally:
        for module in patched:
            del module.forward
