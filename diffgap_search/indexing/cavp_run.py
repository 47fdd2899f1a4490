"""CAVP in an indexing run: filling the windows an index already holds without CAVP vectors (switching an
index to ``--video-model cavp`` embeds only what is missing: its CLAP vectors and everything else stay as
they are). New windows get theirs from the embed stage (``indexing/embed.py``). The same filling, frames alone
(``sound=False``), gives the videos of an index switched from ``--no-frames`` to ``--frames`` their frame vectors
with any frame encoder (CLIP or CAVP).

With CAVP every window with sound gets a ``cavp_audio`` vector (the window's soundtrack in CAVP's space) and
every window with frames a ``video`` vector (``CavpEncoder``; the window -> clips rule is in
``encoders/cavp/features.py``). Both are keyed by the same segments as the CLAP vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from typing import TYPE_CHECKING, cast

import numpy as np

from diffgap_search.bridge.index_bridge import bridge_vectors
from diffgap_search.config import CAVP_SPACE, VIDEO_SPACE, VideoConfig, WindowConfig
from diffgap_search.errors import MediaDecodeError
from diffgap_search.indexing.decode import MAX_WINDOWS_PER_TASK, SegmentData, stream_segments
from diffgap_search.indexing.embed import cavp_audio_vectors
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.cavp_gaps import FileGap, cavp_gaps

if TYPE_CHECKING:
    from diffgap_search.encoders.base import AudioVisualEncoder, FrameEncoder
    from diffgap_search.gap.bridge import Bridge

_SAME_S = 1e-6  # stored and decoded window bounds agree to float64 rounding
Found = dict[str, tuple[list[int], list[np.ndarray]]]  # space -> (segment ids, their (D,) float32 vectors)


def fill_cavp_gaps(catalog: Catalog, load_encoder: Callable[[], FrameEncoder], load_bridge: Callable[[], Bridge | None],
                   window: WindowConfig, video: VideoConfig, batch_size: int, note: Callable[[str], None] | None = None,
                   *, workers: int = 1, deadline_s: float | None = None, sound: bool = True) -> int:
    """Embed the CAVP vectors the index's windows lack (without ``sound``: the ``video`` vectors of videos that
    have none, by ``load_encoder``'s frame encoder), file by file: decoded again in the run's decode workers
    (``indexing/pool.ordered_map``, in order; a long file streamed in a worker of its own, as indexing does),
    one transaction per file. A file whose decoded windows no longer match its stored ones (changed under the
    index) or that cannot be decoded is left for the next run's change detection. ``load_encoder`` and
    ``load_bridge`` are called only when something is missing (an unchanged index loads no model). Returns the
    windows embedded."""
    from diffgap_search.indexing.decode import decode_task, lost_decode
    from diffgap_search.indexing.pool import ordered_map

    gaps = cavp_gaps(catalog, frames=video.frames, sound=sound)
    if not gaps:
        return 0
    if note is not None:
        note(f"adding CAVP vectors to {len(gaps)} indexed files" if sound else
             f"adding frame vectors to {len(gaps)} indexed video{'' if len(gaps) == 1 else 's'}")
    encoder = cast("AudioVisualEncoder", load_encoder())  # CAVP: video and sound; without sound any frame encoder
    bridge = load_bridge() if sound else None  # the bridged spaces come from sound
    done = 0
    tasks = ((g.path, g.kind, window, video, MAX_WINDOWS_PER_TASK) for g in gaps)
    with closing(ordered_map(decode_task, tasks, min(workers, len(gaps)), on_lost=lost_decode,
                             deadline_s=deadline_s)) as decoded:
        for gap, result in zip(gaps, decoded):
            if result.error is not None:
                continue
            try:
                if result.too_long:
                    _, _, stream = stream_segments((gap.path, gap.kind, window, video, 0), workers, deadline_s)
                    with closing(stream):  # type: ignore[type-var]
                        found = _matching(gap, stream, encoder, window, batch_size, bridge)
                else:
                    found = _matching(gap, iter(result.segments), encoder, window, batch_size, bridge)
            except MediaDecodeError:
                continue
            if found is None:
                continue
            with catalog.batch():
                for space, (ids, vecs) in found.items():
                    if ids:
                        catalog.put_vectors(space, np.asarray(ids), np.stack(vecs))
            done += len(set(found[CAVP_SPACE][0]) | set(found[VIDEO_SPACE][0]))
    return done


def _matching(gap: FileGap, segments: Iterator[SegmentData], encoder: AudioVisualEncoder, window: WindowConfig,
              batch_size: int, bridge: Bridge | None) -> Found | None:
    """The missing vectors of one file by space, or None when its decoded windows are not its stored ones."""
    out: Found = {CAVP_SPACE: ([], []), VIDEO_SPACE: ([], []), "audio_as_video": ([], [])}
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
            _embed(batch, gap, encoder, window, bridge, out)
            batch = []
    if n + 1 != len(gap.segments):
        return None
    _embed(batch, gap, encoder, window, bridge, out)
    return out


def _embed(batch: list[tuple[int, SegmentData]], gap: FileGap, encoder: AudioVisualEncoder, window: WindowConfig,
           bridge: Bridge | None, out: Found) -> None:
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
        out[VIDEO_SPACE][0].extend(sid for sid, _ in framed)
        out[VIDEO_SPACE][1].extend(vecs)
