"""``dgsearch train``: train the index's DiffGAP bridge from the pairs it holds (or a pairs file), store it
in the index, and re-derive the bridged vector spaces from the stored audio vectors (no re-embedding)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffgap_search.bridging import (
    BRIDGED_SPACES,
    bridge_file_name,
    bridge_record,
    commit_bridge,
    encoder_fingerprints,
    stage_bridged_spaces,
)
from diffgap_search.config import EncoderConfig, FaissConfig
from diffgap_search.encoders.base import Encoder
from diffgap_search.errors import QueryNotSupportedError, UsageError
from diffgap_search.pairs import Pairs, file_pairs, index_pairs
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.lock import writer_lock
from diffgap_search.store.settings import bind_encoder, embeds, stored_encoder, stored_encoder_config
from diffgap_search.store.vector_index import publish

EncoderLoader = Callable[[EncoderConfig], Encoder]
PAIR_KINDS = {"text": ("text",), "video": ("video",), "all": ("text", "video")}


@dataclass(frozen=True)
class TrainOutcome:
    """What ``dgsearch train`` did: pairs used and held out, the training report, the spaces derived."""

    bridge_fingerprint: str
    bridge_file: str
    train_pairs: dict[str, int]
    test_pairs: dict[str, int]
    report: Any  # gap.training.TrainReport
    derived: dict[str, int]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "bridge": self.bridge_fingerprint, "file": self.bridge_file, "train_pairs": self.train_pairs,
            "held_out_pairs": self.test_pairs, "derived_vectors": self.derived, "seconds": round(self.seconds, 2),
            "epochs": r.epochs, "steps": r.steps, "pairs_per_s": round(r.pairs_per_s, 1),
            "final_loss": r.loss_history[-1] if r.loss_history else None, "validation": r.val, "fusion": r.fusion,
            "parameters": r.num_parameters,
        }


def gather_pairs(catalog: Catalog, index_dir: Path, load_encoder: EncoderLoader, kinds: Sequence[str],
                 pairs_file: Path | None) -> Pairs:
    """The pairs to train/evaluate on: from ``pairs_file`` when given, else from the index."""
    if pairs_file is not None:
        pairs = file_pairs(pairs_file)
        dim = (stored_encoder(catalog) or {}).get("dim")
        if dim is not None and pairs.arrays["audio"].shape[1] != dim:
            raise UsageError(
                f"{pairs_file} holds {pairs.arrays['audio'].shape[1]}-d embeddings, but index {index_dir} uses"
                f" {dim}-d ones: pairs must come from the index's encoders"
            )
        return pairs
    encoder = None
    if "text" in kinds and not embeds(catalog, "text"):
        if list(kinds) == ["text"]:
            raise QueryNotSupportedError(
                f"index {index_dir} was built with an audio-only model ({(stored_encoder(catalog) or {}).get('model')!r}):"
                " it has no text embeddings to train a text bridge on; use --pairs video"
            )
        kinds = [kind for kind in kinds if kind != "text"]  # "all": the pairs this index can have
    if "text" in kinds:
        encoder = load_encoder(stored_encoder_config(catalog))
        bind_encoder(catalog, encoder, str(index_dir))
    return index_pairs(catalog, encoder, kinds)


def train_index_bridge(
    index_dir: Path,
    *,
    load_encoder: EncoderLoader,
    pairs: str = "all",
    pairs_file: Path | None = None,
    cfg: Any = None,
    faiss_cfg: FaissConfig = FaissConfig(),
    on_step: Callable[[int, int, float, float], None] | None = None,
    wait_s: float = 0.0,
) -> TrainOutcome:
    """Train, store and apply a DiffGAP bridge for the index at ``index_dir`` (holding its writer lock).

    Raises IndexNotFoundError, IndexBusyError, UsageError (too few pairs, bad pairs file).
    """
    from diffgap_search.gap.training import TrainConfig, train_bridge

    if pairs not in PAIR_KINDS:
        raise UsageError(f"--pairs must be text, video or all, got {pairs!r}")
    started = time.perf_counter()
    Catalog.open(index_dir).close()  # IndexNotFoundError before taking the lock
    with writer_lock(index_dir, wait_s=wait_s), Catalog.open(index_dir) as catalog:
        data = gather_pairs(catalog, index_dir, load_encoder, PAIR_KINDS[pairs], pairs_file)
        if pairs_file is None and pairs != "all":
            data = Pairs({k: v for k, v in data.arrays.items() if k in ("audio", pairs)}, data.groups)
        train, test = data.split()
        fingerprints = {m: fp for m, fp in encoder_fingerprints(catalog).items() if m in train.arrays}
        bridge, report = train_bridge(train.arrays, cfg=cfg or TrainConfig(), encoder_fingerprints=fingerprints,
                                      on_step=on_step)
        name = bridge_file_name(bridge)
        bridge.save(index_dir / name)
        derived = stage_bridged_spaces(catalog, bridge)
        record = bridge_record(bridge, report)
        record["held_out"] = test.counts()
        record["pairs_source"] = str(pairs_file) if pairs_file else f"index:{pairs}"
        commit_bridge(catalog, bridge, record)
        for space in BRIDGED_SPACES:
            if catalog.count_vectors(space) or catalog.get_meta(f"faiss.{space}") is not None:
                publish(index_dir, catalog, space, bridge.dim, faiss_cfg)
        for old in index_dir.glob("bridge-*.safetensors"):
            if old.name != name:
                old.unlink(missing_ok=True)
    return TrainOutcome(bridge.fingerprint, name, train.counts(), test.counts(), report, derived,
                        time.perf_counter() - started)


def evaluate_index_bridge(
    index_dir: Path,
    *,
    load_encoder: EncoderLoader,
    pairs_file: Path | None = None,
    max_test: int | None = None,
) -> dict[str, Any]:
    """R@1/5/10, median rank, mAP@10 on the held-out pairs, both directions, for raw cosine, mean shift,
    linear maps and DiffGAP with and without fusion (the bridge never saw these pairs)."""
    from diffgap_search.bridging import load_index_bridge
    from diffgap_search.gap.evaluation import evaluate_methods
    from diffgap_search.errors import BridgeUnavailableError

    with Catalog.open(index_dir) as catalog:
        bridge = load_index_bridge(index_dir, catalog)
        if bridge is None:
            raise BridgeUnavailableError(f"index {index_dir} has no DiffGAP bridge yet: run `dgsearch train` first")
        kinds = tuple(sorted({d.value.split("|")[0] for d in bridge.directions} - {"audio"}))
        data = gather_pairs(catalog, index_dir, load_encoder, kinds, pairs_file)
    train, test = data.split()
    if not len(test):
        raise UsageError("no held-out pairs to evaluate on: index more captioned clips or videos")
    result = evaluate_methods(train.arrays, test.arrays, bridge, max_test=max_test)
    result["bridge"] = bridge.fingerprint
    result["n_train"] = train.counts()
    return result
