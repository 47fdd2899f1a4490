"""The embed and bridge stages of an indexing run (the local engine's): windows -> vectors by space.

``embed_segments`` runs the encoders: ``audio`` for every window with samples (the audio encoder), ``cavp_audio``
for the same windows when the video model is CAVP, ``video`` for every window with frames. ``bridge_segments``
adds the bridged spaces (``audio_as_text``, ``audio_as_video``) when the index has a DiffGAP bridge. Each
vector is ``(D,) float32``, L2-normalised, D the dimension of its space's encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from diffgap_search.bridge.index_bridge import bridge_vectors
from diffgap_search.config import CAVP_SPACE, VIDEO_SPACE
from diffgap_search.encoders.base import embed_windows
from diffgap_search.indexing.decode import SegmentData

if TYPE_CHECKING:
    from diffgap_search.encoders.base import AudioVisualEncoder
    from diffgap_search.indexing.models import RunModels

AUDIO_SPACE = "audio"
Vectors = dict[str, np.ndarray]  # one window's vectors: space -> (D,) float32, L2-normalised


def embed_segments(models: RunModels, segments: list[SegmentData]) -> list[Vectors]:
    """Each segment's vectors by space: ``audio`` (and ``cavp_audio`` with CAVP) when it has samples, ``video``
    when it has frames; one encoder call per space for the whole list."""
    out: list[Vectors] = [{} for _ in segments]
    with_audio = [i for i, s in enumerate(segments) if s.audio is not None]
    if with_audio:
        vecs = embed_windows(models.audio(), np.stack([segments[i].audio for i in with_audio]),  # type: ignore[arg-type]
                             [segments[i].end_s - segments[i].start_s for i in with_audio])
        for i, v in zip(with_audio, vecs):
            out[i][AUDIO_SPACE] = v
    if with_audio and models.is_cavp:
        cavp = cavp_audio_vectors(models.video(), [segments[i] for i in with_audio],  # type: ignore[arg-type]
                                  models.window.sample_rate)
        for i, v in zip(with_audio, cavp):
            out[i][CAVP_SPACE] = v
    with_frames = [i for i, s in enumerate(segments) if s.frames is not None]
    if with_frames:
        vecs = models.video().embed_video([segments[i].frames for i in with_frames])  # type: ignore[misc]
        for i, v in zip(with_frames, vecs):
            out[i][VIDEO_SPACE] = v
    return out


def bridge_segments(models: RunModels, vectors: list[Vectors]) -> list[Vectors]:
    """``vectors`` with the bridged spaces added to every window that has an ``audio`` vector (in place, and
    returned): ``audio_as_text`` from ``audio``, ``audio_as_video`` from ``cavp_audio`` with CAVP (the space the
    bridge pairs with video), else from ``audio``. Unchanged when the index has no bridge."""
    bridge = models.bridge()
    with_audio = [i for i, v in enumerate(vectors) if AUDIO_SPACE in v]
    if not with_audio or bridge is None:
        return vectors
    audio = np.stack([vectors[i][AUDIO_SPACE] for i in with_audio])
    cavp = np.stack([vectors[i][CAVP_SPACE] for i in with_audio]) if models.is_cavp else None
    for space, vecs in bridge_vectors(bridge, audio, video_side=cavp).items():
        for i, v in zip(with_audio, vecs):
            vectors[i][space] = v
    return vectors


def cavp_audio_vectors(encoder: AudioVisualEncoder, segments: Sequence[SegmentData], sample_rate: int) -> np.ndarray:
    """``(N, D) float32``: the CAVP audio embedding of each segment's samples (all must have audio), each
    window's clips decided by its seconds."""
    return encoder.embed_audio(np.stack([s.audio for s in segments]), sample_rate=sample_rate,  # type: ignore[misc]
                               durations_s=[s.end_s - s.start_s for s in segments])
