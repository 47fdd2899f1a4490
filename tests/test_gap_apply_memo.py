"""``selection.ApplyMemo`` with ``share_roles``: a pair set's two validation tasks share their vectors (one task's
query texts are the other's item texts), so a real bridge whose two roles have one residual scale bridges each
array once, and the ratings and validation figures are those of bridging every term afresh, to the bit."""

from __future__ import annotations

from typing import Any

import numpy as np

from diffgap_search.gap.bridge import Bridge
from diffgap_search.gap.groups import as_groups
from diffgap_search.gap.fusion import fused_unit_scores, tune_fusion
from diffgap_search.gap.selection import progress_score
from diffgap_search.gap.synthetic import GapSpec, GapWorld
from diffgap_search.gap.training import TrainConfig, train_bridge
from diffgap_search.gap.training_data import split_pairs
from diffgap_search.gap.selection import term_matrices
from diffgap_search.gap.validation import _score, validation_tasks

FP = {"audio": "a" * 64, "text": "b" * 64}


class Counting:
    """A real ``Bridge`` that counts its ``apply`` calls (everything else is the bridge's own)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge, self.calls = bridge, 0
        self.directions = bridge.directions

    def apply(self, x: np.ndarray, source: str, target: str, *, role: str = "query") -> np.ndarray:
        self.calls += 1
        return self.bridge.apply(x, source, target, role=role)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bridge, name)


def _setup() -> tuple[Bridge, list]:
    world = GapWorld(GapSpec(dim=32, latent_dim=8, features=32), seed=0)
    pairs, groups = world.sample_clips(300, 1, captions=2, caption_jitter=0.3).pairs()
    cfg = TrainConfig(seed=0, epochs=1, threads=1, hidden=64, depth=1, val_fraction=0.3)
    bridge, _ = train_bridge(pairs, groups=groups, cfg=cfg, encoder_fingerprints=FP)
    sets = split_pairs(pairs, as_groups(groups, pairs["audio"]), 0.3)
    return bridge, validation_tasks(sets, 2000)


def test_shared_vectors_are_bridged_once_and_every_figure_is_the_same() -> None:
    bridge, tasks = _setup()
    assert [t.key for t in tasks] == ["text->audio", "audio->text"]
    assert tasks[0].queries is tasks[1].items and tasks[0].items is tasks[1].queries
    texts = tasks[0].queries.vectors
    assert bridge.residual_scale("audio|text", "query") == bridge.residual_scale("audio|text", "items")
    assert np.array_equal(bridge.apply(texts, "text", "audio"), bridge.apply(texts, "text", "audio", role="items"))
    counted = Counting(bridge)
    progress_score(counted, tasks)
    assert counted.calls == 2  # text -> audio once, audio -> text once (4 without the memo)
    validated = Counting(bridge)
    val, fusion, _ = _score(validated, tasks)
    assert validated.calls == 2
    for task in tasks:  # validation's figures are those of every term bridged afresh
        raw, qb, ib = term_matrices(task, bridge)
        cfg = tune_fusion(task, raw, qb, ib)
        assert cfg == fusion[task.key]
        assert val[task.key]["fused_R@1"] == task.metrics(fused_unit_scores(task, raw, qb, ib, cfg))["R@1"]
        assert val[task.key]["bridged_R@1"] == task.vector_metrics(qb)["R@1"]
