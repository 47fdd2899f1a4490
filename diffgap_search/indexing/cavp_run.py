"""CAVP in an indexing run: the ``cavp_audio`` vectors of audio windows, and filling the windows an index
already holds without CAVP vectors (switching an index to ``--video-model cavp`` embeds only what is missing:
its CLAP vectors and everything else stay as they are).

With CAVP every window with sound gets a ``cavp_audio`` vector (the window's soundtrack in CAVP's space) and
every window with frames a ``video`` vector (``CavpEncoder``; the window -> clips rule is in
``encoders/cavp/features.py``). Both are keyed by the same segments as the CLAP vectors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any

import numpy as np

from diffgap_search.config import VideoConfig, WindowConfig
from diffgap_search.encoders.cavp.encoder import CAVP_SPACE
from diffgap_search.errors import MediaDecodeError
from diffgap_search.indexing.decode import SegmentData, stream_segments
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.cavp_gaps import FileGap, cavp_gaps

_SAME_S = 1e-6  # stored and decoded window bounds agree to float64 rounding


def cavp_audio_vectors(encoder: Any, segments: Sequence[SegmentData], sample_rate: int) -> np.ndarray:
    """``(N, D) float32``: the CAVP audio embedding of each segment's samples (all must have audio)."""
    return encoder.embed_audio(np.stack([s.audio for s in segments]), sample_rate=sample_rate,  # type: ignore[misc]
                               durations_s=[s.end_s - s.start_s for s in segments])


def fill_cavp_gaps(catalog: Catalog, load_encoder: Any, load_bridge: Any, window: WindowConfig, video: VideoConfig,
                   batch_size: int, note: Any = None, *, workers: int = 1, deadline_s: float | None = None) -> int:
    """Embed the CAVP vectors the index's windows lack, file by file: decoded again in the run's decode workers
    (``indexing/pool.ordered_map``, in order; a long file streamed in a worker of its own, as indexing does),
    one transaction per file. A file whose decoded windows no longer match its stored ones (changed under the
    index) or that cannot be decoded is left for the next run's change detection. ``load_encoder`` and
    ``load_bridge`` are called only when something is missing (an unchanged index loads no model). Returns the
    windows embedded."""
    from diffgap_search.bridge.index_bridge import bridge_vectors
    from diffgap_search.indexing.decode import decode_task, lost_decode
    from diffgap_search.indexing.pool import ordered_map
    from diffgap_search.indexing.run import MAX_WINDOWS_PER_TASK

    gaps = cavp_gaps(catalog, frames=video.frames)
    if not gaps:
        return 0
    if note is not None:
        note(f"adding CAVP vectors to {len(gaps)} indexed files")
    encoder, bridge = load_encoder(), load_bridge()
    done = 0
    tasks = ((g.path, g.kind, window, video, MAX_WINDOWS_PER_TASK) for g in gaps)
    with closing(ordered_map(decode_task, tasks, min(workers, len(gaps)), on_lost=lost_decode,
                             deadline_s=deadline_s)) as decoded:
        for gap, result in zip(gaps, decoded):
            if result.error is not None:
                continue
            try:
                if result.too_long:
                    _, stream = stream_segments((gap.path, gap.kind, window, video, 0), workers, deadline_s)
                    with closing(stream):  # type: ignore[type-var]
                        found = _matching(gap, stream, encoder, window, batch_size, bridge, bridge_vectors)
                else:
                    found = _matching(gap, iter(result.segments), encoder, window, batch_size, bridge, bridge_vectors)
            except MediaDecodeError:
                continue
            if found is None:
                continue
            with catalog.batch():
                for space, (ids, vecs) in found.items():
                    if ids:
                        catalog.put_vectors(space, np.asarray(ids), np.stack(vecs))
            done += len(set(found[CAVP_SPACE][0]) | set(found["video"][0]))
    return done


def _matching(gap: FileGap, segments: Iterator[SegmentData], encoder: Any, window: WindowConfig, batch_size: int,
              bridge: Any, bridge_vectors: Any) -> dict[str, tuple[list[int], list[np.ndarray]]] | None:
    """The missing vectors of one file by space, or None when its decoded windows are not its stored ones."""
    out: dict[str, tuple[list[int], list[np.ndarray]]] = {CAVP_SPACE: ([], []), "video": ([], []),
                                                           "audio_as_video": ([], [])}
    batch: list[tuple[int, SegmentData]] = []
    n = -1
    for n, seg in enumerate(segments):
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
