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


def test_eval_scores_a_bridge_from_before_as_search_serves_it_on_an_index_of_separate_words() -> None:
    """A bridge trained as if text shared audio's space carries a raw weight; on an index whose words come from
    a model of their own search drops that term and renormalises the other two. ``evaluate_methods`` told so
    (``separate_spaces``, from the index) scores DiffGAP + fusion exactly as those renormalised weights do."""
    from diffgap_search.gap.evaluation import evaluate_methods
    from diffgap_search.gap.fusion import FusionConfig

    bridge = _train(())
    audio, text = _world(300, seed=7)
    served = {}
    for q, g in (("text", "audio"), ("audio", "text")):
        f = bridge.fusion_for(q, g)
        total = f.w_query_bridged + f.w_item_bridged  # 0: only the raw term was tuned, the bridged query serves
        served[f"{q}->{g}"] = (FusionConfig(0.0, f.w_query_bridged / total, f.w_item_bridged / total) if total
                               else FusionConfig(0.0, 1.0, 0.0))
    pairs = {"audio": audio, "text": text}
    told = evaluate_methods(pairs, bridge, separate_spaces=("text",))["results"]
    renormalised = evaluate_methods(pairs, bridge, fusion=served)["results"]
    assert told["text->audio"]["diffgap_fusion"] == renormalised["text->audio"]["diffgap_fusion"]
    assert told["audio->text"]["diffgap_fusion"] == renormalised["audio->text"]["diffgap_fusion"]
