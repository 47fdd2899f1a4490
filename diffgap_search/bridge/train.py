"""``dgsearch train``: train the index's DiffGAP bridge from the pairs it holds (or a pairs file), store it in
the index, and re-derive the bridged vector spaces from the stored audio vectors (no re-embedding).

Captions (``--captions``, :class:`~diffgap_search.config.Captions`): ``sidecars`` (real captions), ``names``
(weak captions from file names and tags, ``media/weak_captions.py``), ``all`` (both), or ``auto`` (the
default): ``sidecars`` when any indexed file has a sidecar caption, else ``names`` — a captioned library
keeps training on what people wrote, and a library without captions trains its own bridge from its names
with no flag. ``dgsearch eval`` (``bridge/evaluate.py``) always scores the held-out clips' real captions and
their weak captions, as two separate pair sets.

Two sources of pairs, both split by group (clip), never by row:

- the index's own pairs: a fixed tenth of the clips (``pairs.is_test_group``) is held out for ``eval``;
- a pairs file: ``train --pairs-file train.npz`` trains on all of it (less its fusion-validation groups)
  and ``eval --pairs-file test.npz`` evaluates all of it. ``eval`` refuses pairs from any group the bridge
  trained or tuned on (the bridge keeps their keys). Neither needs media in the index: ``train
  --pairs-file`` creates the index's catalog when the index does not exist yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffgap_search.bridge.index_bridge import (
    BRIDGED_SPACES,
    chosen_record,
    audio_source,
    bridge_file_name,
    bridge_record,
    commit_bridge,
    encoder_fingerprints,
    stage_bridged_spaces,
)
from diffgap_search.bridge.pairs import CAPTION_CHOICES, EncoderLoader, Pairs, TagReader, file_pairs, gather_pairs
from diffgap_search.config import DEFAULT_CAPTIONS, DEFAULT_PAIRS, Captions, FaissConfig, PairSet
from diffgap_search.errors import UsageError
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.generations import remove_unread
from diffgap_search.store.lock import writer_lock
from diffgap_search.store.pair_rows import captioned_files
from diffgap_search.store.settings import spaces_apart_from_audio
from diffgap_search.store.vector_index import publish

if TYPE_CHECKING:
    from diffgap_search.gap.bridge import Bridge
    from diffgap_search.gap.training import TrainConfig, TrainReport

PAIRS_ERROR = "--pairs must be text, video or all, got {!r}"
CAPTIONS_ERROR = f"--captions must be auto, {', '.join(CAPTION_CHOICES)}; got {{!r}}"


@dataclass(frozen=True)
class TrainOutcome:
    """What ``dgsearch train`` did: pairs used and held out, the training report, the spaces derived."""

    bridge_fingerprint: str
    bridge_file: str
    train_pairs: dict[str, int]
    test_pairs: dict[str, int]
    report: TrainReport
    derived: dict[str, int]
    seconds: float
    pairs_source: str
    captions: Captions | None = None  # the caption choice ``auto`` resolved to (None: a pairs file)
    caption_pairs: dict[str, int] | None = None  # training text pairs per caption source

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``train_pairs`` counts the pairs trained on plus those validating the fusion weights."""
        r = self.report
        return {
            "bridge": self.bridge_fingerprint, "file": self.bridge_file, "pairs_source": self.pairs_source,
            "captions": None if self.captions is None else self.captions.value, "caption_pairs": self.caption_pairs,
            "train_pairs": self.train_pairs, "validation_pairs": r.n_val, "groups": r.n_groups,
            "held_out_pairs": self.test_pairs, "derived_vectors": self.derived, "seconds": round(self.seconds, 2),
            "epochs": r.epochs, "steps": r.steps, "pairs_per_s": round(r.pairs_per_s, 1),
            "final_loss": r.loss_history[-1] if r.loss_history else None, "validation": r.val, "fusion": r.fusion,
            "parameters": r.num_parameters, "sampler": r.sample, "chosen": chosen_record(r.selection),
        }


def resolve_captions(catalog: Catalog, captions: Captions | str) -> Captions:
    """``auto`` -> ``sidecars`` where at least half the indexed files have sidecar captions (a captioned library:
    the few others' names may be ids, not words), ``per-file`` where fewer do (a library of named files, some
    of them described: measured on Debian's sound packages, ``docs/commands/train.md``), ``names`` where none
    does; the other choices as given."""
    chosen = Captions.parse(captions, CAPTIONS_ERROR)
    if chosen is Captions.AUTO:
        captioned, files = captioned_files(catalog)
        if not captioned:
            return Captions.NAMES
        return Captions.SIDECARS if 2 * captioned >= files else Captions.PER_FILE
    return chosen


def _training_pairs(catalog: Catalog, index_dir: Path, load_encoder: EncoderLoader, pairs: PairSet,
                    pairs_file: Path | None, captions: Captions, tags_of: TagReader | None) -> tuple[Pairs, Pairs]:
    """``(train, held out)``: all of a pairs file (nothing held out), or the index's pairs split by group."""
    data = gather_pairs(catalog, index_dir, load_encoder, pairs.kinds, pairs_file, captions, tags_of)
    if pairs_file is not None:
        return data, data.take(np.zeros(len(data), dtype=bool))
    if pairs is not PairSet.ALL:
        data = Pairs({k: v for k, v in data.arrays.items() if k in ("audio", pairs.value)}, data.groups, data.sources)
    return data.split()


def train_index_bridge(
    index_dir: Path,
    *,
    load_encoder: EncoderLoader,
    pairs: PairSet | str = DEFAULT_PAIRS,
    pairs_file: Path | None = None,
    cfg: TrainConfig | None = None,
    faiss_cfg: FaissConfig = FaissConfig(),
    on_step: Callable[[int, int, float, float], None] | None = None,
    wait_s: float = 0.0,
    captions: Captions | str = DEFAULT_CAPTIONS,
    tags_of: TagReader | None = None,
) -> TrainOutcome:
    """Train, store and apply a DiffGAP bridge for the index at ``index_dir`` (holding its writer lock).

    ``pairs``: ``text``, ``video`` or ``all`` (:class:`~diffgap_search.config.PairSet`); ``captions``:
    ``auto``, ``sidecars``, ``names`` or ``all`` (module docstring); ``tags_of(file)`` gives a file's tag
    values for its weak captions. With ``pairs_file`` the index need not exist (its catalog is created);
    without, IndexNotFoundError. Raises IndexBusyError, InputNotFoundError (no pairs file), UsageError (too
    few pairs, bad pairs file, bad choice, a training device that is not here).
    """
    from diffgap_search.gap.training import TrainConfig, train_bridge

    pair_set = PairSet.parse(pairs, PAIRS_ERROR)
    caption_choice = Captions.parse(captions, CAPTIONS_ERROR)
    if cfg is not None:
        cfg.torch_device()  # UsageError for a CUDA device that is not here, before anything is read or created
    started = time.perf_counter()
    if pairs_file is None:
        Catalog.open(index_dir).close()  # IndexNotFoundError before taking the lock
    else:
        file_pairs(pairs_file)  # InputNotFoundError / UsageError before creating anything
    with writer_lock(index_dir, wait_s=wait_s), Catalog.open(index_dir, create=pairs_file is not None) as catalog:
        chosen = resolve_captions(catalog, caption_choice) if pairs_file is None else None
        if chosen is Captions.SIDECARS and pair_set is PairSet.TEXT and not captioned_files(catalog)[0]:
            raise UsageError(f"no file in index {index_dir} has a caption sidecar: train on the file names with"
                             " --captions names")
        train, test = _training_pairs(catalog, index_dir, load_encoder, pair_set, pairs_file,
                                      chosen or Captions.SIDECARS, tags_of)
        fingerprints = {m: fp for m, fp in encoder_fingerprints(catalog).items() if m in train.arrays}
        cfg = cfg or TrainConfig()
        if "video" in train.arrays and audio_source(catalog, "video") == "cavp_audio":
            cfg = replace(cfg, shared_spaces=tuple(sorted({*cfg.shared_spaces, "video"})))  # CAVP: one space
        if "text" in train.arrays and (apart := spaces_apart_from_audio(catalog)):  # --text-model: words apart
            cfg = replace(cfg, separate_spaces=tuple(sorted({*cfg.separate_spaces, *apart})))
        bridge, report = train_bridge(train.arrays, groups=train.groups, cfg=cfg,
                                      encoder_fingerprints=fingerprints, on_step=on_step)
        source = str(pairs_file) if pairs_file else f"index:{pair_set.value}"
        held_out = test.counts() if pairs_file is None else {}  # a pairs file is evaluated on another file
        record = {"held_out": held_out, "pairs_source": source, "captions": None if chosen is None else chosen.value}
        name, derived = _store_bridge(index_dir, catalog, bridge, report, record, faiss_cfg)
    return TrainOutcome(bridge.fingerprint, name, train.counts(), held_out, report, derived,
                        time.perf_counter() - started, source, chosen,
                        train.caption_counts() if pairs_file is None else None)


def _store_bridge(index_dir: Path, catalog: Catalog, bridge: Bridge, report: TrainReport | None,
                  extra: dict[str, Any], faiss_cfg: FaissConfig) -> tuple[str, dict[str, int]]:
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


__all__ = ["TrainOutcome", "resolve_captions", "train_index_bridge"]
