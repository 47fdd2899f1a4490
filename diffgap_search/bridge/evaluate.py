"""``dgsearch eval``: every gap-fixing method side by side on pairs the index's bridge never saw.

The methods (raw cosine, mean shift, linear maps, DiffGAP with and without fusion) and the protocol are
``gap/evaluation.py``'s; this module finds the test pairs (all of a pairs file, or the index's held-out
clips, ``bridge/pairs.py``), refuses any the bridge trained or tuned on, and scores the index's text pairs
with real (sidecar) captions apart from those with weak captions (names, tags).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffgap_search.bridge.pairs import EncoderLoader, Pairs, TagReader, gather_pairs
from diffgap_search.config import Captions
from diffgap_search.errors import BridgeUnavailableError, UsageError
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import spaces_apart_from_audio

if TYPE_CHECKING:
    from diffgap_search.gap.bridge import Bridge

PLOT_K = 50  # R@k curves (dgsearch eval --plot) run from k = 1 to this (or the gallery's size)

# direction ("text->audio") -> method ("diffgap") -> metric ("R@1", "R@5", "R@10", "median_rank", "mAP@10")
Metrics = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class MethodScores:
    """One evaluation (``gap.evaluation.evaluate_methods``): ``n_test``, test units per pair set and modality
    (``{"audio-text": {"audio": clips, "text": captions}}``); ``results``, percentages per direction, method
    and metric (:data:`Metrics`)."""

    n_test: dict[str, dict[str, int]]
    results: Metrics
    verdict: dict[str, dict[str, Any]] = field(default_factory=dict)

    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # with plot=True: R@1..R@K
    pictures: dict[str, dict[str, Any]] = field(default_factory=dict)  # with plot=True: gap_picture per pair set

    @classmethod
    def of(cls, evaluation: Mapping[str, Any]) -> MethodScores:
        """From ``evaluate_methods``' ``{"n_test", "results", "verdict"}`` (and ``curves``, ``pictures``)."""
        return cls(evaluation["n_test"], evaluation["results"], evaluation.get("verdict", {}),
                   evaluation.get("curves", {}), evaluation.get("pictures", {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"n_test", "results", "verdict"}``."""
        return {"n_test": self.n_test, "results": self.results, "verdict": self.verdict}


@dataclass(frozen=True)
class EvalResult:
    """What ``dgsearch eval`` measured: ``n_test`` and ``results`` (:class:`MethodScores`) on the real pairs,
    ``weak_captions`` on the text pairs with weak captions (None when there are none), the ``bridge``
    fingerprint, ``pairs_source`` (a pairs file's path, or ``"index"``) and what the bridge was ``trained_on``
    (``TrainingRecord.summary()``: groups, validation groups, pairs per pair set)."""

    n_test: dict[str, dict[str, int]]
    results: Metrics
    weak_captions: MethodScores | None
    bridge: str
    pairs_source: str
    trained_on: dict[str, Any]
    verdict: dict[str, dict[str, Any]] = field(default_factory=dict)
    chosen: dict[str, Any] = field(default_factory=dict)
    real: MethodScores | None = None  # the real captions' scores, with curves and pictures when asked for

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the order ``dgsearch eval --json`` prints (``weak_captions`` only when present)."""
        out: dict[str, Any] = {"n_test": self.n_test, "results": self.results, "verdict": self.verdict}
        if self.weak_captions is not None:
            out["weak_captions"] = self.weak_captions.to_dict()
        out.update(bridge=self.bridge, pairs_source=self.pairs_source, trained_on=self.trained_on, chosen=self.chosen)
        return out


def refuse_seen(test: Pairs, bridge: Bridge, source: str) -> None:
    """UsageError when any of ``test``'s groups is one the bridge trained or tuned its fusion weights on."""
    from diffgap_search.gap.groups import group_keys

    record = bridge.record
    assert record is not None  # checked by the caller: a format-1 bridge has no record
    keys = group_keys(set(test.groups.tolist()))
    trained, tuned = np.isin(keys, record.train_groups), np.isin(keys, record.val_groups)
    overlap = int((trained | tuned).sum())
    if overlap:
        raise UsageError(
            f"{overlap} of the {len(keys)} clips (groups) in {source} were seen by this bridge ({int(trained.sum())}"
            f" trained on, {int(tuned.sum())} tuned its fusion weights): evaluate on pairs it never saw"
        )


def evaluate_index_bridge(
    index_dir: Path,
    *,
    load_encoder: EncoderLoader,
    pairs_file: Path | None = None,
    max_test: int | None = None,
    tags_of: TagReader | None = None,
    plot: bool = False,
) -> EvalResult:
    """R@1/5/10, median rank, mAP@10, both directions, for raw cosine, mean shift, linear maps and DiffGAP
    with and without fusion: on all of ``pairs_file``, or on the index's held-out clips; ``max_test`` caps
    the test clips per pair set. On the index, text pairs with real (sidecar) captions give ``results``
    and those with weak captions (names, tags) give ``weak_captions`` (the same form), never mixed. Raises
    BridgeUnavailableError (no bridge), UsageError (a format-1 bridge, pairs the bridge saw, too few test
    clips). ``plot``: the scores also carry R@k curves and the gap pictures (``bridge/plot.py`` draws them)."""
    from diffgap_search.bridge.index_bridge import chosen_record, load_index_bridge
    from diffgap_search.gap.evaluation import evaluate_methods

    with Catalog.open(index_dir) as catalog:
        bridge = load_index_bridge(index_dir, catalog)
        if bridge is None:
            raise BridgeUnavailableError(f"index {index_dir} has no DiffGAP bridge yet: run `dgsearch train` first")
        if bridge.record is None:
            raise UsageError(f"the DiffGAP bridge of index {index_dir} predates stored baselines and training groups:"
                             " run `dgsearch train` again")
        kinds = tuple(sorted({d.value.split("|")[0] for d in bridge.directions} - {"audio"}))
        apart = spaces_apart_from_audio(catalog)  # --text-model: search serves no raw text term
        data = gather_pairs(catalog, index_dir, load_encoder, kinds, pairs_file, Captions.ALL, tags_of)
    test = data if pairs_file is not None else data.split()[1]
    source = str(pairs_file) if pairs_file is not None else f"index {index_dir}'s held-out clips"
    if test.arrays["audio"].shape[1] != bridge.dim:
        raise UsageError(f"{source} holds {test.arrays['audio'].shape[1]}-d embeddings; the bridge is {bridge.dim}-d")
    refuse_seen(test, bridge, source)
    weak = test.weak_mask()
    extra: dict[str, Any] = {"curves_k": PLOT_K, "picture": True} if plot else {}
    extra["separate_spaces"] = apart
    real = MethodScores.of(evaluate_methods(test.take(~weak).arrays, bridge, groups=test.groups[~weak],
                                            max_groups=max_test, **extra))
    weak_scores = MethodScores.of(evaluate_methods(test.take(weak).arrays, bridge, groups=test.groups[weak],
                                                   max_groups=max_test, **extra)) if weak.any() else None
    if not real.results and not (weak_scores is not None and weak_scores.results):
        raise UsageError(f"nothing to evaluate in {source}: a pair set the bridge serves needs at least 2 test clips")
    return EvalResult(real.n_test, real.results, weak_scores, bridge.fingerprint,
                      str(pairs_file) if pairs_file is not None else "index", bridge.record.summary(), real.verdict,
                      chosen_record(bridge.selection), real)


__all__ = ["EvalResult", "MethodScores", "evaluate_index_bridge", "refuse_seen"]
