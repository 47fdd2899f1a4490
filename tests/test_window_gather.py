"""``window_gather``: HTSAT's pads, rolls, window partitions and patch mergings as single gathers (for the
ONNX export) — the token orders equal transformers' tensor ops exactly, and the patched tower's outputs equal
transformers' bit for bit, on the tiny test CLAP and on a tiny HTSAT-tiny-shaped tower whose stages all
shift, merge and (in the last) shrink the window; a map that needs padding keeps transformers' code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from diffgap_search.encoders.clap.fast_paths import AudioTower
from diffgap_search.encoders.clap.window_gather import gathered_windows, merge_order, window_order


@pytest.mark.parametrize(("height", "width", "window", "shift"), [(8, 8, 4, 2), (16, 8, 8, 4), (64, 64, 8, 0),
                                                                   (8, 16, 4, 0), (6, 12, 3, 1)])
def test_window_order_is_roll_then_partition(height: int, width: int, window: int, shift: int) -> None:
    from transformers.models.clap.modeling_clap import window_partition

    grid = torch.arange(height * width).view(1, height, width, 1)
    rolled = torch.roll(grid, shifts=(-shift, -shift), dims=(1, 2)) if shift else grid
    expected = window_partition(rolled, window).reshape(-1).numpy()
    np.testing.assert_array_equal(window_order(height, width, window, shift), expected)


@pytest.mark.parametrize(("height", "width"), [(8, 8), (4, 16), (64, 64)])
def test_merge_order_is_the_strided_slices_concat(height: int, width: int) -> None:
    grid = torch.arange(height * width).view(1, height, width, 1)
    merged = torch.cat([grid[:, row::2, col::2, :] for col in range(2) for row in range(2)], dim=-1)
    np.testing.assert_array_equal(merge_order(height, width), merged.reshape(-1).numpy())


def _tower(config: Any, seed: int = 0) -> Any:
    from transformers import ClapModel

    torch.manual_seed(seed)
    return ClapModel(config).eval()


def _htsat_shaped() -> Any:
    """HTSAT-tiny's stage pattern at a small width: 4 stages (64 -> 32 -> 16 -> 8 tokens a side), shifted
    blocks in each, the last stage's map equal to the window (transformers then sets shift 0)."""
    from transformers import ClapConfig

    audio = {"num_mel_bins": 64, "spec_size": 256, "patch_size": 4, "patch_stride": 4, "window_size": 8,
             "patch_embeds_hidden_size": 8, "hidden_size": 64, "depths": [2, 2, 2, 2],
             "num_attention_heads": [1, 2, 4, 8], "num_hidden_layers": 4, "projection_hidden_size": 64}
    text = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 32, "max_position_embeddings": 40}
    return ClapConfig(text_config=text, audio_config=audio, projection_dim=16)


def _features(batch: int = 2) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy((rng.standard_normal((batch, 1, 1001, 64)) * 10 - 40).astype(np.float32))


@pytest.mark.parametrize(("which", "gathers"), [("tiny test CLAP", 2 * 2 + 1), ("HTSAT-tiny-shaped", 2 * 8 + 3)])
def test_the_patched_tower_equals_transformers_bit_for_bit(tiny_clap_dir: Path, which: str, gathers: int,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gathers a block, one a merging (counted: the patch really ran), the same numbers as transformers'."""
    from transformers import ClapModel

    from diffgap_search.encoders.clap import window_gather

    calls: list[int] = []
    take = window_gather._take
    monkeypatch.setattr(window_gather, "_take", lambda tokens, order: calls.append(len(order)) or take(tokens, order))

    model = ClapModel.from_pretrained(str(tiny_clap_dir)).eval() if which == "tiny test CLAP" else _tower(_htsat_shaped())
    tower = AudioTower(model).eval()
    features = _features()
    with torch.inference_mode():
        expected = tower(features)
        with gathered_windows(model):
            patched = tower(features)
        after = tower(features)
    assert torch.equal(patched, expected)
    assert torch.equal(after, expected)  # transformers' forwards are back
    assert len(calls) == gathers


def test_a_map_that_needs_padding_keeps_transformers_code() -> None:
    from transformers.models.clap.modeling_clap import ClapAudioLayer

    config = _htsat_shaped().audio_config
    layer = ClapAudioLayer(config, dim=8, input_resolution=(12, 12), num_heads=1, shift_size=4).eval()
    tokens = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 144, 8)).astype(np.float32))
    holder = type("Encoder", (), {})()
    holder.layers = [type("Stage", (), {"blocks": [layer], "downsample": None})()]
    model = type("Model", (), {"audio_model": type("Audio", (), {"audio_encoder": holder})()})()
    with torch.inference_mode():
        expected = layer(tokens, (12, 12))[0]
        with gathered_windows(model):
            patched = layer(tokens, (12, 12))[0]  # 12 is not a multiple of the window (8): padded, as before
    assert torch.equal(patched, expected)
