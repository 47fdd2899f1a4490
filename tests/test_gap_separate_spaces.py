"""Words from a text model of their own (``--text-model``: WordLlama beside aisfx) share no space with the audio
rows, so search serves no raw text-audio cosine; training must tune none either (``TrainConfig.separate_spaces``).
A known world where the raw cosine is the *better* term on validation: with the modalities declared one space it
gets weight, declared apart it gets none — in the bridge's fusion and in its counterparts' — and the bridge
remembers it across a save and load, for ``dgsearch eval``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffgap_search.gap.bridge import load_bridge
from diffgap_search.gap.training import TrainConfig, train_bridge

D = 32
FP = {"audio": "a" * 64, "text": "b" * 64}


def _world(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (audio, text) unit rows, text = audio + strong noise: the raw cosine ranks the pairs, weakly."""
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((n, D))
    text = audio + 1.5 * rng.standard_normal((n, D))
    return tuple((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32) for x in (audio, text))


def _train(separate: tuple[str, ...]) -> object:
    audio, text = _world(500)
    cfg = TrainConfig(seed=0, epochs=2, val_fraction=0.4, threads=1, hidden=64, depth=1, separate_spaces=separate)
    return train_bridge({"audio": audio, "text": text}, cfg=cfg, encoder_fingerprints=FP)[0]


def _raw_weights(bridge: object) -> list[float]:
    weights = [bridge.fusion_for(q, g).w_raw for q, g in (("text", "audio"), ("audio", "text"))]
    counterparts = bridge.selection["counterpart_fusion"]
    return weights + [w["w_raw"] for kind in ("ridge", "procrustes") for w in counterparts[kind].values()]


def test_a_text_space_of_its_own_gets_no_raw_weight_where_one_space_would(tmp_path: Path) -> None:
    shared = _train(())
    assert shared.separate_spaces == () and max(_raw_weights(shared)) > 0  # one space: the raw term is tuned
    apart = _train(("text",))
    assert apart.separate_spaces == ("text",)
    assert _raw_weights(apart) == [0.0] * 6
    apart.save(tmp_path / "b.safetensors")
    again = load_bridge(tmp_path / "b.safetensors", FP)
    assert again.separate_spaces == ("text",) and again.train_info["separate_spaces"] == ["text"]
