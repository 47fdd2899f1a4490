"""The DiffGAP bridge inside an index: where it lives, how it is checked, and the bridged vector spaces.

An index holds at most one bridge, ``<index>/bridge.safetensors``, recorded in ``meta["bridge"]`` with its
fingerprint. For every audio window the bridge generates its text-side and video-side counterparts
(``audio_as_text``, ``audio_as_video``), stored as further vector spaces (catalog BLOBs + FAISS), so a
query is fused against them with one inner-product search each. Training a new bridge re-derives these
spaces from the stored audio vectors: nothing is decoded or embedded again.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffgap_search.config import CAVP_SPACE, EncoderRole
from diffgap_search.errors import BridgeUnavailableError, CorruptIndexError, IncompatibleIndexError
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.generations import reading
from diffgap_search.store.settings import stored_encoder
from diffgap_search.store.vector_index import REBUILD_KEY

if TYPE_CHECKING:
    from diffgap_search.gap.bridge import Bridge
    from diffgap_search.gap.served_bridge import ServedBridge
    from diffgap_search.gap.training import TrainReport

STAGING_SUFFIX = ".staging"
# bridged space -> (source modality, target modality): audio windows bridged into the target's space
BRIDGED_SPACES: dict[str, tuple[str, str]] = {"audio_as_text": ("audio", "text"), "audio_as_video": ("audio", "video")}


def bridge_file_name(bridge: Bridge) -> str:
    """Bridges are stored under their fingerprint, so a new one never overwrites the one in use."""
    return f"bridge-{bridge.fingerprint[:16]}.safetensors"


def encoder_fingerprints(catalog: Catalog) -> dict[str, str]:
    """Modality -> weights sha256 of the encoders this index uses (text shares CLAP with audio, unless the
    index records a text encoder of its own: ``--text-model``)."""
    out: dict[str, str] = {}
    audio = stored_encoder(catalog)
    if audio:
        out["audio"] = out["text"] = audio["fingerprint"]
    text = stored_encoder(catalog, EncoderRole.TEXT)
    if text:
        out["text"] = text["fingerprint"]
    video = stored_encoder(catalog, EncoderRole.VIDEO)
    if video:
        out["video"] = video["fingerprint"]
    return out


def load_index_bridge(index_dir: Path, catalog: Catalog, *, served: bool = False) -> Bridge | ServedBridge | None:
    """The index's bridge, checked against its encoders and its recorded fingerprint; None when absent.
    ``served``: as a search serves it (``gap/served_bridge.py``: no torch until a query needs the network).

    The record is read and its file loaded under the readers' lock (``store/generations.reading``), so a
    writer replacing the bridge keeps the old file until this read is done; a file gone all the same (a
    record read just before a replacement committed) means the record moved: it is read once more.

    Raises BridgeMismatchError when the bridge was trained for other encoders, IncompatibleIndexError when
    the file is not the one the catalog recorded.
    """
    try:
        return _load_recorded_bridge(index_dir, catalog, served)
    except BridgeUnavailableError:
        return _load_recorded_bridge(index_dir, catalog, served)


def _load_recorded_bridge(index_dir: Path, catalog: Catalog, served: bool) -> Bridge | ServedBridge | None:
    with reading(index_dir):
        record = catalog.get_meta("bridge")
        if record is None:
            return None
        path = index_dir / record["file"]
        # An index that records no encoder yet (a catalog made by `train --pairs-file`) has nothing to check against.
        expected = encoder_fingerprints(catalog) or None
        if served:
            from diffgap_search.gap.served_bridge import ServedBridge

            try:
                light = ServedBridge.read(path, expected)
                if light.fingerprint == record["fingerprint"]:
                    return light
            except CorruptIndexError:  # numpy cannot hold it (or it is corrupt): the full load says which
                pass
        from diffgap_search.gap.bridge import load_bridge  # imports torch: only for an index that has a bridge

        bridge = load_bridge(path, expected_fingerprints=expected)
    if bridge.fingerprint != record["fingerprint"]:
        raise IncompatibleIndexError(
            f"{path} is not the bridge this index recorded (fingerprint {bridge.fingerprint[:12]}, expected "
            f"{record['fingerprint'][:12]}): run `dgsearch train` again"
        )
    return bridge


def bridged_spaces_of(bridge: Bridge) -> dict[str, tuple[str, str]]:
    """The bridged spaces this bridge can generate (by its trained directions)."""
    from diffgap_search.gap.directions import Direction

    out = {}
    for space, (src, dst) in BRIDGED_SPACES.items():
        try:
            direction = Direction.of(src, dst)
        except ValueError:
            continue
        if direction in bridge.directions:
            out[space] = (src, dst)
    return out


def bridge_vectors(bridge: Bridge, audio: np.ndarray | None, *,
                   video_side: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Bridged counterparts of ``audio (N, D) float32`` windows: space -> ``(N, D) float32`` L2-normalised.

    ``video_side``: the windows' vectors in the space the bridge pairs with video, when that is not ``audio``
    (CAVP: ``cavp_audio``, see ``audio_source``); ``audio_as_video`` is bridged from it."""
    out = {}
    for space, (src, dst) in bridged_spaces_of(bridge).items():
        source = video_side if dst == "video" and video_side is not None else audio
        if source is not None:
            out[space] = bridge.apply(source, src, dst, role="items")
    return out


def audio_source(catalog: Catalog, target: str) -> str:
    """The stored space that plays "audio" for pairs with ``target``: ``cavp_audio`` for video when the index's
    video encoder is CAVP (video and sound share CAVP's space), else ``audio`` (CLAP)."""
    video = stored_encoder(catalog, EncoderRole.VIDEO) or {}
    return CAVP_SPACE if target == "video" and CAVP_SPACE in video.get("modalities", ()) else "audio"


def stage_bridged_spaces(catalog: Catalog, bridge: Bridge, *, chunk_rows: int = 8192) -> dict[str, int]:
    """Derive every bridged space from the stored audio vectors (``audio_source``) into staging spaces (``<space>.staging``);
    returns space -> vectors written. Each chunk is one transaction; :func:`commit_bridge` swaps them in."""
    spaces = bridged_spaces_of(bridge)
    counts = {space: 0 for space in spaces}
    with catalog.batch():
        for space in BRIDGED_SPACES:
            catalog.delete_space(space + STAGING_SUFFIX)
    for source in sorted({audio_source(catalog, dst) for _, dst in spaces.values()}):
        from_source = {space: sd for space, sd in spaces.items() if audio_source(catalog, sd[1]) == source}
        for ids, vecs in catalog.read_vectors(source, chunk_rows=chunk_rows):
            derived = {space: bridge.apply(vecs, src, dst, role="items") for space, (src, dst) in from_source.items()}
            with catalog.batch():
                for space, out in derived.items():
                    catalog.put_vectors(space + STAGING_SUFFIX, ids, out)
                    counts[space] += len(ids)
    return counts


def commit_bridge(catalog: Catalog, bridge: Bridge, record: dict[str, Any]) -> None:
    """One transaction: the staged spaces replace the bridged spaces and ``meta["bridge"]`` names the new
    bridge. A kill before it leaves the old bridge and spaces in force; after it, the new ones."""
    with catalog.batch():
        for space in BRIDGED_SPACES:
            catalog.delete_space(space)
            catalog.rename_space(space + STAGING_SUFFIX, space)
        catalog.set_meta({"bridge": {**record, "file": bridge_file_name(bridge)}})
        # The bridged vectors changed under the same segment ids: their FAISS files must be rebuilt, not
        # updated (an incremental publish only adds ids above the old maximum and would keep the old vectors).
        marked = set(catalog.get_meta(REBUILD_KEY) or []) | set(BRIDGED_SPACES)
        catalog.set_meta({REBUILD_KEY: sorted(marked)})


def bridge_record(bridge: Bridge, report: TrainReport | None) -> dict[str, Any]:
    """What ``meta["bridge"]`` holds: fingerprint, directions, training figures (pairs trained on and
    validating, groups of each; empty without a ``report``, for a bridge copied from another index)."""
    return {
        "fingerprint": bridge.fingerprint,
        "directions": [d.value for d in bridge.directions],
        "encoder_fingerprints": bridge.encoder_fingerprints,
        "pairs": getattr(report, "n_train", {}),
        "validation_pairs": getattr(report, "n_val", {}),
        "groups": getattr(report, "n_groups", {}),
        "val": getattr(report, "val", {}),
        "chosen": chosen_record(bridge.selection),
    }


def chosen_record(selection: dict[str, Any]) -> dict[str, Any]:
    """What validation chose and the validation scores behind it (``dgsearch info``); empty before format 4."""
    if not selection:
        return {}
    checkpoint = selection.get("checkpoint", {})
    val = selection.get("val", {})
    return {"residual_scale": selection.get("residual_scale", {}),
            "residual_scale_items": selection.get("residual_scale_items", selection.get("residual_scale", {})),
            "epoch": checkpoint.get("epoch"),
            "epochs_run": checkpoint.get("epochs_run"), "stopped_early": checkpoint.get("stopped_early"),
            "served_R@1": {k: v.get("fused_R@1") for k, v in sorted(val.items())},
            # each task's own bootstrap share (since the per-task rule); bridges before it stored the pair's joint one
            "confirmation": {k: v.get("task_confidence", v["gain_confidence"]) for k, v in sorted(val.items())
                             if "gain_confidence" in v},
            "counterparts_served_R@1": {kind: {k: v["served_R@1"] for k, v in sorted(per.items())}
                                        for kind, per in sorted(selection.get("counterparts_val", {}).items())},
            # the linear map each pair set's network is anchored on (bridges before the choice: ridge)
            "anchor": dict(sorted(selection.get("anchor_kind", {}).items()))}
