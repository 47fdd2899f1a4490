"""A query's vectors: text through the text tower, a file's windows through the audio or video encoder,
or an indexed window's stored audio vector (more like this)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from diffgap_search.config import index_option
from diffgap_search.encoders.base import embed_windows, fit_window, for_many_windows
from diffgap_search.errors import (
    BridgeUnavailableError,
    InputNotFoundError,
    MediaDecodeError,
    QueryNotSupportedError,
    UsageError,
)
from diffgap_search.search.terms import bridge_for
from diffgap_search.search.types import Query

if TYPE_CHECKING:
    from diffgap_search.search.open_index import OpenIndex

QUERY_WINDOWS = 4  # video query windows decoded and embedded at a time
QUERY_BATCH = 12  # audio query windows embedded at a time (aisfx's one-file ONNX path takes up to twelve 10 s)


def embed_query(opened: OpenIndex, query: Query, *, use_bridge: bool = True) -> np.ndarray:
    """``(Q, D) float32`` L2-normalised query vectors (one per window for an audio or video query).

    ``use_bridge`` False (``--no-bridge``): a video query on a CLIP index, which needs the bridge, is refused."""
    return query_vectors(opened, query, use_bridge=use_bridge)[0]


def query_vectors(opened: OpenIndex, query: Query, *, use_bridge: bool = True) -> tuple[np.ndarray, float | None]:
    """``(the vectors of embed_query, the seconds of the query's longest window)``: a file's longest window
    (no longer than the index's window), a stored window's own seconds, None for words (``--pinpoint`` chooses
    its spans by it: ``search/spans.answer``)."""
    kind = query.kind
    if kind == "text":
        text = (query.text or "").strip()
        opened.require_ready()
        if not opened.embeds_text():
            raise QueryNotSupportedError(
                f"index {opened.index_dir} was built with model {opened.encoder_cfg.model!r}, which embeds"
                " audio only: a text query cannot be searched in it; query with --audio FILE, give it words of its"
                f" own (`dgsearch index FOLDER --index {index_option(opened.index_dir)} --text-model wordllama`, then"
                f" `dgsearch train --index {index_option(opened.index_dir)}`), or build an index with a CLAP model (the"
                " default) to search by words"
            )
        reason = opened.words_need_bridge(use_bridge)
        if reason is not None:
            raise BridgeUnavailableError(f"a text query cannot be searched in index {opened.index_dir}: {reason}")
        return opened.encoder.embed_text([text]), None
    if kind == "segment":
        return segment_vector(opened, int(query.segment_id))  # type: ignore[arg-type]
    vectors, spans = file_windows(opened, query, use_bridge=use_bridge)
    return vectors, longest(spans)


def longest(spans: Spans) -> float:
    """The seconds of the longest of ``spans`` (each ``(start, end)``; 0 for none)."""
    return max((end - start for start, end in spans), default=0.0)


Spans = list[tuple[float, float]]  # each query window's (start, end) in seconds into its file


def query_windows(opened: OpenIndex, query: Query, *, use_bridge: bool = True) -> tuple[np.ndarray, Spans]:
    """``(vectors (W, D) float32 L2-normalised, each window's seconds into the file)`` of a query file
    (``--audio`` or ``--video``), windowed and checked as :func:`embed_query` does. Raises UsageError for words
    or a segment: they have no windows of their own."""
    if query.kind not in ("audio", "video"):
        raise UsageError("--timeline lists hits for each window of a query file: give --audio FILE or --video FILE")
    return file_windows(opened, query, use_bridge=use_bridge)


def file_windows(opened: OpenIndex, query: Query, *, use_bridge: bool = True) -> tuple[np.ndarray, Spans]:
    """A query file's window vectors and seconds (:func:`query_windows`), after its checks."""
    kind = query.kind
    path = Path(query.audio or query.video)  # type: ignore[arg-type]
    if path.is_dir():
        raise UsageError(f"--{kind} takes one file, and {path} is a folder")
    if not path.is_file():
        raise InputNotFoundError(f"query file not found: {path}")
    opened.require_ready()
    if kind == "video":
        if not opened.cavp_video() and bridge_for(opened.bridge if use_bridge else None, "video") is None:
            # CLIP frames live in a space unrelated to CLAP's: only a bridge connects them (CAVP needs none)
            raise BridgeUnavailableError(
                "video -> audio search needs a DiffGAP bridge between the video and audio encoders, and this"
                " index has none" + ("" if use_bridge else " in use (--no-bridge)")
                + ": index some videos, then run `dgsearch train --pairs video`; or search by the video's own"
                " sound: --audio FILE"
            )
        return embed_video_file(opened, path, query.start_s, query.end_s)
    return embed_audio_file(opened, path, query.start_s, query.end_s)


def segment_vector(opened: OpenIndex, segment_id: int) -> tuple[np.ndarray, float]:
    """``((1, D) float32, the window's seconds)``: the stored audio vector of an indexed window (more like this)
    and how long that window is. Raises InputNotFoundError for an id the catalog does not hold, or whose window
    has no audio vector."""
    opened.require_ready()
    vec = opened.catalog.vectors_of("audio", [segment_id]).get(segment_id)
    rows = opened.catalog.hit_rows([segment_id])
    if vec is None or segment_id not in rows:
        raise InputNotFoundError(
            f"segment {segment_id} is not in index {opened.index_dir} (or has no audio): take a segment_id"
            " from a query's --json output"
        )
    row = rows[segment_id]
    return np.asarray(vec, dtype=np.float32).reshape(1, -1), row.end_s - row.start_s


def embed_video_file(opened: OpenIndex, path: Path, start_s: float | None, end_s: float | None) -> tuple[np.ndarray, Spans]:
    """``(W, D) float32``: the query video's frames embedded per window (the index's windowing), optionally
    only the windows overlapping ``[start_s, end_s]``, with the windows' seconds. Streamed: only
    :data:`QUERY_WINDOWS` windows' frames are decoded and held at a time, whatever the video's length."""
    from diffgap_search.media.video import open_frames, window_bounds

    encoder = opened.video_encoder
    window_cfg = opened.window()
    sampler = open_frames(path, fps=encoder.fps, fit=encoder.fit)
    lo = start_s or 0.0
    hi = sampler.info.duration_s if end_s is None else min(end_s, sampler.info.duration_s)
    bounds = [(s, e) for s, e in window_bounds(sampler.info.duration_s, window_cfg) if e > lo and s < hi]
    if not bounds:
        raise MediaDecodeError(f"{path}: no video frames in the requested span")
    return np.concatenate([
        encoder.embed_video([sampler.window(s, e).frames for s, e in bounds[i : i + QUERY_WINDOWS]])
        for i in range(0, len(bounds), QUERY_WINDOWS)]), bounds


def embed_audio_file(opened: OpenIndex, path: Path, start_s: float | None, end_s: float | None) -> tuple[np.ndarray, Spans]:
    """``(W, D) float32``: the query file's windows (the index's windowing) through the audio encoder,
    optionally only the samples in ``[start_s, end_s]``, with the windows' seconds into the file.

    Streamed: the file is decoded block by block and windowed as it comes (``media/windows.iter_windows``: the
    same windows as the whole file's), :data:`QUERY_BATCH` windows embedded at a time, so a query by an
    hour-long recording holds a dozen windows, not the hour (1.4 GB at 48 kHz, whole and windowed). A file of
    more than one batch is embedded by the encoder's bulk path (``encoders.base.for_many_windows``), as the
    whole file's windows in one call were."""
    from diffgap_search.media.audio import iter_audio_blocks
    from diffgap_search.media.windows import iter_windows

    window_cfg = opened.window()
    sr = window_cfg.sample_rate
    lo = int(round((start_s or 0.0) * sr))
    hi = None if end_s is None else int(round(end_s * sr))
    blocks = span_blocks(iter_audio_blocks(path, sr), lo, hi)
    first = next(blocks, None)
    if first is None:
        raise MediaDecodeError(f"{path}: the file ends before --start {start_s:g} s" if lo > 0 else
                               f"{path}: no audio in the requested span")
    encoder = opened.encoder  # loaded once the file has begun to decode: a file that cannot costs no model load
    windows = iter_windows(itertools.chain([first], blocks), fit_window(window_cfg, encoder))
    batch = list(itertools.islice(windows, QUERY_BATCH))
    following = list(itertools.islice(windows, QUERY_BATCH))
    embedder = for_many_windows(encoder) if following else encoder
    vectors: list[np.ndarray] = []
    spans: Spans = []
    while batch:
        samples = np.stack([w.samples for w in batch])
        vectors.append(embed_windows(embedder, samples, [w.end_s - w.start_s for w in batch]))  # as the index embeds them
        spans += [(lo / sr + w.start_s, lo / sr + w.end_s) for w in batch]
        batch, following = following, list(itertools.islice(windows, QUERY_BATCH))
    return np.concatenate(vectors), spans


def span_blocks(blocks: Iterator[np.ndarray], lo: int, hi: int | None) -> Iterator[np.ndarray]:
    """The parts of consecutive 1-D ``blocks`` between sample ``lo`` and ``hi`` (None: the end), non-empty;
    the stream is left at ``hi``."""
    at = 0
    for block in blocks:
        start, end = at, at + len(block)
        at = end
        if end <= lo:
            continue
        part = block[max(0, lo - start) : len(block) if hi is None else max(0, min(len(block), hi - start))]
        if len(part):
            yield part
        if hi is not None and end >= hi:
            return
