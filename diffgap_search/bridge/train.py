"""``dgsearch train`` / ``dgsearch eval``: train the index's DiffGAP bridge from the pairs it holds (or a pairs
file), store it in the index, and re-derive the bridged vector spaces from the stored audio vectors (no
re-embedding); evaluate it on pairs it never saw.

Captions (``--captions``): ``sidecars`` (real captions), ``names`` (weak captions from file names and tags,
``media/weak_captions.py``), ``all`` (both), or ``auto`` (the default): ``sidecars`` when any indexed file
has a sidecar caption, else ``names`` — a captioned library keeps training on what people wrote, and a
library without captions trains its own bridge from its names with no flag. ``eval`` always scores the
held-out clips' real captions and their weak captions, as two separate pair sets.

Two sources of pairs, both split by group (clip), never by row:

- the index's own pairs: a fixed tenth of the clips (``pairs.is_test_group``) is held out for ``eval``;
- a pairs file: ``train --pairs-file train.npz`` trains on all of it (less its fusion-validation groups)
  and ``eval --pairs-file test.npz`` evaluates all of it. ``eval`` refuses pairs from any group the bridge
  trained or tuned on (the bridge keeps their keys). Neither needs media in the index: ``train
  --pairs-file`` creates the index's catalog when the index does not exist yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.bridge.index_bridge import (
    BRIDGED_SPACES,
    audio_source,
    bridge_file_name,
    bridge_record,
    commit_bridge,
    encoder_fingerprints,
    stage_bridged_spaces,
)
from diffgap_search.config import EncoderConfig, FaissConfig
from diffgap_search.encoders.base import Encoder, identity_of
from diffgap_search.errors import (
    BridgeUnavailableError,
    QueryNotSupportedError,
    UsageError,
)
from diffgap_search.bridge.pairs import CAPTION_CHOICES, Pairs, TagReader, file_pairs, index_pairs
from diffgap_search.store.caption_rows import count_captions
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.generations import remove_unread
from diffgap_search.store.lock import writer_lock
from diffgap_search.store.settings import (
    bind_encoder,
    embeds,
    stored_encoder,
    stored_encoder_config,
)
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
    pairs_source: str
    captions: str | None = None  # the caption choice ``auto`` resolved to (None: a pairs file)
    caption_pairs: dict[str, int] | None = None  # training text pairs per caption source

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``train_pairs`` counts the pairs trained on plus those validating the fusion weights."""
        r = self.report
        return {
            "bridge": self.bridge_fingerprint, "file": self.bridge_file, "pairs_source": self.pairs_source,
            "captions": self.captions, "caption_pairs": self.caption_pairs,
            "train_pairs": self.train_pairs, "validation_pairs": r.n_val, "groups": r.n_groups,
            "held_out_pairs": self.test_pairs, "derived_vectors": self.derived, "seconds": round(self.seconds, 2),
            "epochs": r.epochs, "steps": r.steps, "pairs_per_s": round(r.pairs_per_s, 1),
            "final_loss": r.loss_history[-1] if r.loss_history else None, "validation": r.val, "fusion": r.fusion,
            "parameters": r.num_parameters, "sampler": r.sample,
        }


def resolve_captions(catalog: Catalog, captions: str) -> str:
    """``auto`` -> ``sidecars`` when the index holds any sidecar caption, else ``names``; others as given."""
    if captions == "auto":
        return "sidecars" if count_captions(catalog) else "names"
    if captions not in CAPTION_CHOICES:
        raise UsageError(f"--captions must be auto, {', '.join(CAPTION_CHOICES)}; got {captions!r}")
    return captions


def gather_pairs(catalog: Catalog, index_dir: Path, load_encoder: EncoderLoader, kinds: Sequence[str],
                 pairs_file: Path | None, captions: str = "sidecars", tags_of: TagReader | None = None) -> Pairs:
    """The pairs to train/evaluate on: from ``pairs_file`` when given, else from the index (text pairs with
    the ``captions`` choice, ``pairs.index_pairs``)."""
    if pairs_file is not None:
        pairs = file_pairs(pairs_file)
        dim = (stored_encoder(catalog) or {}).get("dim")
        if dim is not None and pairs.arrays["audio"].shape[1] != dim:
            raise UsageError(
                f"{pairs_file} holds {pairs.arrays['audio'].shape[1]}-d embeddings, but index {index_dir} uses"
                f" {dim}-d ones: pairs must come from the index's encoders"
            )
        return pairs
    if stored_encoder(catalog) is None:
        raise UsageError(f"index {index_dir} holds no indexed media, so no pairs of its own: pass --pairs-file")
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
        bind_encoder(catalog, identity_of(encoder), str(index_dir))
    return index_pairs(catalog, encoder, kinds, captions=captions, tags_of=tags_of)


def _training_pairs(catalog: Catalog, index_dir: Path, load_encoder: EncoderLoader, pairs: str,
                    pairs_file: Path | None, captions: str, tags_of: TagReader | None) -> tuple[Pairs, Pairs]:
    """``(train, held out)``: all of a pairs file (nothing held out), or the index's pairs split by group."""
    data = gather_pairs(catalog, index_dir, load_encoder, PAIR_KINDS[pairs], pairs_file, captions, tags_of)
    if pairs_file is not None:
        return data, data.take(np.zeros(len(data), dtype=bool))
    if pairs != "all":
        data = Pairs({k: v for k, v in data.arrays.items() if k in ("audio", pairs)}, data.groups, data.sources)
    return data.split()


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
    captions: str = "auto",
    tags_of: TagReader | None = None,
) -> TrainOutcome:
    """Train, store and apply a DiffGAP bridge for the index at ``index_dir`` (holding its writer lock).

    ``captions``: ``auto``, ``sidecars``, ``names`` or ``all`` (module docstring); ``tags_of(file)`` gives a
    file's tag values for its weak captions. With ``pairs_file`` the index need not exist (its catalog is
    created); without, IndexNotFoundError. Raises IndexBusyError, InputNotFoundError (no pairs file),
    UsageError (too few pairs, bad pairs file, bad choice).
    """
    from diffgap_search.gap.training import TrainConfig, train_bridge

    if pairs not in PAIR_KINDS:
        raise UsageError(f"--pairs must be text, video or all, got {pairs!r}")
    if captions != "auto" and captions not in CAPTION_CHOICES:
        raise UsageError(f"--captions must be auto, {', '.join(CAPTION_CHOICES)}; got {captions!r}")
    started = time.perf_counter()
    if pairs_file is None:
        Catalog.open(index_dir).close()  # IndexNotFoundError before taking the lock
    else:
        file_pairs(pairs_file)  # InputNotFoundError / UsageError before creating anything
    with writer_lock(index_dir, wait_s=wait_s), Catalog.open(index_dir, create=pairs_file is not None) as catalog:
        chosen = resolve_captions(catalog, captions) if pairs_file is None else None
        if chosen == "sidecars" and pairs == "text" and not count_captions(catalog):
            raise UsageError(f"no file in index {index_dir} has a caption sidecar: train on the file names with"
                             " --captions names")
        train, test = _training_pairs(catalog, index_dir, load_encoder, pairs, pairs_file, chosen or "sidecars",
                                      tags_of)
        fingerprints = {m: fp for m, fp in encoder_fingerprints(catalog).items() if m in train.arrays}
        cfg = cfg or TrainConfig()
        if "video" in train.arrays and audio_source(catalog, "video") == "cavp_audio":
            cfg = replace(cfg, shared_spaces=tuple(sorted({*cfg.shared_spaces, "video"})))  # CAVP: one space
        bridge, report = train_bridge(train.arrays, groups=train.groups, cfg=cfg,
                                      encoder_fingerprints=fingerprints, on_step=on_step)
        source = str(pairs_file) if pairs_file else f"index:{pairs}"
        held_out = test.counts() if pairs_file is None else {}  # a pairs file is evaluated on another file
        record = {"held_out": held_out, "pairs_source": source, "captions": chosen}
        name, derived = _store_bridge(index_dir, catalog, bridge, report, record, faiss_cfg)
    return TrainOutcome(bridge.fingerprint, name, train.counts(), held_out, report, derived,
                        time.perf_counter() - started, source, chosen,
                        train.caption_counts() if pairs_file is None else None)


def _store_bridge(index_dir: Path, catalog: Catalog, bridge: Any, report: Any, extra: dict[str, Any],
                  faiss_cfg: FaissConfig) -> tuple[str, dict[str, int]]:
    """Save the bridge, derive its spaces, record it in the catalog, publish, drop older bridge files.
    Returns ``(file name, vectors derived per space)``."""
    name = bridge_file_name(bridge)
    bridge.save(index_dir / name)
    derived = stage_bridged_spaces(catalog, bridge)
    commit_bridge(catalog, bridge, {**bridge_record(bridge, report), **extra})
    for space in BRIDGED_SPACES:
        if catalog.count_vectors(space) or catalog.get_meta(f"faiss.{space}") is not None:
            publish(index_dir, catalog, space, bridge.dim, faiss_cfg)
    # Old bridge files go once no reader is between reading the old record and loading its file; else the
    # next writer's sweep (store/generations.sweep_unpublished) removes them.
    remove_unread(index_dir, [old for old in index_dir.glob("bridge-*.safetensors") if old.name != name])
    return name, derived


def refuse_seen(test: Pairs, bridge: Any, source: str) -> None:
    """UsageError when any of ``test``'s groups is one the bridge trained or tuned its fusion weights on."""
    from diffgap_search.gap.groups import group_keys

    record = bridge.record
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
) -> dict[str, Any]:
    """R@1/5/10, median rank, mAP@10, both directions, for raw cosine, mean shift, linear maps and DiffGAP
    with and without fusion: on all of ``pairs_file``, or on the index's held-out clips; ``max_test`` caps
    the test clips per pair set. On the index, text pairs with real (sidecar) captions give ``results``
    and those with weak captions (names, tags) give ``weak_captions`` (``{"n_test", "results"}``, the same
    form), never mixed. Raises BridgeUnavailableError (no bridge), UsageError (a format-1 bridge, pairs
    the bridge saw, too few test clips)."""
    from diffgap_search.bridge.index_bridge import load_index_bridge
    from diffgap_search.gap.evaluation import evaluate_methods

    with Catalog.open(index_dir) as catalog:
        bridge = load_index_bridge(index_dir, catalog)
        if bridge is None:
            raise BridgeUnavailableError(f"index {index_dir} has no DiffGAP bridge yet: run `dgsearch train` first")
        if bridge.record is None:
            raise UsageError(f"the DiffGAP bridge of index {index_dir} predates stored baselines and training groups:"
                             " run `dgsearch train` again")
        kinds = tuple(sorted({d.value.split("|")[0] for d in bridge.directions} - {"audio"}))
        data = gather_pairs(catalog, index_dir, load_encoder, kinds, pairs_file, "all", tags_of)
    test = data if pairs_file is not None else data.split()[1]
    source = str(pairs_file) if pairs_file is not None else f"index {index_dir}'s held-out clips"
    if test.arrays["audio"].shape[1] != bridge.dim:
        raise UsageError(f"{source} holds {test.arrays['audio'].shape[1]}-d embeddings; the bridge is {bridge.dim}-d")
    refuse_seen(test, bridge, source)
    weak = test.weak_mask()
    result = evaluate_methods(test.take(~weak).arrays, bridge, groups=test.groups[~weak], max_groups=max_test)
    if weak.any():
        result["weak_captions"] = evaluate_methods(test.take(weak).arrays, bridge, groups=test.groups[weak],
                                                   max_groups=max_test)
    if not result["results"] and not result.get("weak_captions", {}).get("results"):
        raise UsageError(f"nothing to evaluate in {source}: a pair set the bridge serves needs at least 2 test clips")
    result["bridge"] = bridge.fingerprint
    result["pairs_source"] = str(pairs_file) if pairs_file is not None else "index"
    result["trained_on"] = bridge.record.summary()
    return result
