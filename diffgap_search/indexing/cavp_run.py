"""CAVP in an indexing run: the ``cavp_audio`` vectors of audio windows, and filling the windows an index
already holds without CAVP vectors (switching an index to ``--video-model cavp`` embeds only what is missing:
its CLAP vectors and everything else stay as they are).

With CAVP every window with sound gets a ``cavp_audio`` vector (the window's soundtrack in CAVP's space) and
every window with frames a ``video`` vector (``CavpEncoder``; the window -> clips rule is in
``encoders/cavp_features.py``). Both are keyed by the same segments as the CLAP vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from typing import Any

import numpy as np

from diffgap_search.config import VideoConfig, WindowConfig
from diffgap_search.encoders.cavp_encoder import CAVP_SPACE
from diffgap_search.errors import MediaDecodeError
from diffgap_search.indexing.decode import SegmentData, iter_segments
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.cavp_gaps import FileGap, cavp_gaps

_SAME_S = 1e-6  # stored and decoded window bounds agree to float64 rounding


def cavp_audio_vectors(encoder: Any, segments: Sequence[SegmentData], sample_rate: int) -> np.ndarray:
    """``(N, D) float32``: the CAVP audio embedding of each segment's samples (all must have audio)."""
    return encoder.embed_audio(np.stack([s.audio for s in segments]), sample_rate=sample_rate,  # type: ignore[misc]
                               durations_s=[s.end_s - s.start_s for s in segments])


def fill_cavp_gaps(catalog: Catalog, encoder: Any, bridge: Any, window: WindowConfig, video: VideoConfig,
                   batch_size: int, note: Any = None) -> int:
    """Embed the CAVP vectors the index's windows lack, file by file (decoded again, streamed; one transaction
    per file). A file whose decoded windows no longer match its stored ones (changed under the index) or that
    cannot be decoded is left for the next run's change detection. Returns the windows embedded."""
    from diffgap_search.bridging import bridge_vectors

    gaps = cavp_gaps(catalog, frames=video.frames)
    if gaps and note is not None:
        note(f"adding CAVP vectors to {len(gaps)} indexed files")
    done = 0
    for gap in gaps:
        try:
            found = _decode_matching(gap, window, video, encoder, batch_size, bridge, bridge_vectors)
        except MediaDecodeError:
            continue
        if found is None:
            continue
        with catalog.batch():
            for space, (ids, vecs) in found.items():
                if len(ids):
                    catalog.put_vectors(space, np.asarray(ids), np.stack(vecs))
        done += len(set(found[CAVP_SPACE][0]) | set(found["video"][0]))
    return done


def _decode_matching(gap: FileGap, window: WindowConfig, video: VideoConfig, encoder: Any, batch_size: int,
                     bridge: Any, bridge_vectors: Any) -> dict[str, tuple[list[int], list[np.ndarray]]] | None:
    """The missing vectors of one file by space, or None when its windows moved."""
    out: dict[str, tuple[list[int], list[np.ndarray]]] = {CAVP_SPACE: ([], []), "video": ([], []),
                                                           "audio_as_video": ([], [])}
    _, stream = iter_segments(gap.path, gap.kind, window, video)
    batch: list[tuple[int, SegmentData]] = []
    n = -1
    with closing(stream):  # type: ignore[type-var]
        for n, seg in enumerate(stream):
            if n >= len(gap.segments):
                return None
            sid, start, end = gap.segments[n]
            if abs(seg.start_s - start) > _SAME_S or abs(seg.end_s - end) > _SAME_S:
                return None
            if sid in gap.missing_audio or sid in gap.missing_video:
                batch.append((sid, seg))
            if len(batch) >= batch_size:
                _embed(batch, gap, encoder, window, bridge, bridge_vectors, out)
                batch = []
        if n + 1 != len(gap.segments):
            return None
    _embed(batch, gap, encoder, window, bridge, bridge_vectors, out)
    return out


def _embed(batch: list[tuple[int, SegmentData]], gap: FileGap, encoder: Any, window: WindowConfig, bridge: Any,
           bridge_vectors: Any, out: dict[str, tuple[list[int], list[np.ndarray]]]) -> None:
    sound = [(sid, s) for sid, s in batch if sid in gap.missing_audio and s.audio is not None]
    if sound:
        vecs = cavp_audio_vectors(encoder, [s for _, s in sound], window.sample_rate)
        ids = [sid for sid, _ in sound]
        out[CAVP_SPACE][0].extend(ids)
        out[CAVP_SPACE][1].extend(vecs)
        if bridge is not None:
            bridged = bridge_vectors(bridge, None, video_side=vecs).get("audio_as_video")
            if bridged is not None:
                out["audio_as_video"][0].extend(ids)
                out["audio_as_video"][1].extend(bridged)
    framed = [(sid, s) for sid, s in batch if sid in gap.missing_video and s.frames is not None]
    if framed:
        vecs = encoder.embed_video([s.frames for _, s in framed])
        out["video"][0].extend(sid for sid, _ in framed)
        out["video"][1].extend(vecs)
