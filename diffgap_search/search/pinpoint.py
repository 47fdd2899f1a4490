"""``--pinpoint``: each hit's seconds narrowed to the span of its window that matches the query best.

For each hit: the window to narrow is the hit's own (a keyword hit spans its whole file: then the file's
window that the query's terms score best, from its stored vectors); its seconds and a quarter window on each
side are decoded (``media/audio.load_span``: read from there, not from the file's start), and
``search/spans.narrow_all`` looks at shorter spans down to :data:`PINPOINT_MIN_S`, the hits side by side (one
encoder call per level for up to :data:`HITS_PER_CALL` hits). Each span is embedded as the index embeds a
window (the same encoder, the same repeat-padding of a short window, the index's bridge for its bridged
spaces) and scored by the query's own terms: the weighted mean of their best cosines, as ``search/rescore.py``
scores a window. The answer (``search/spans.answer``) is the best-scoring span over the levels for words and
a query shorter than half a window (a one-shot); a query at least half a window long (a scene, a recording, a
stored window) goes finer from the coarsest level while the score holds within 0.02.

The hit's ``start_s``/``end_s`` become the span's, ``window`` holds the indexed window it was found in and
``pinpoint_score`` the span's own score. A ranking by cosine (a semantic search: words or sound, ``similar``,
``--timeline``) is then ordered by the spans' scores (:func:`by_narrowed_score`): each hit's ``score`` becomes its
span's and ``window_score`` keeps its window's. A window's vector is mostly its background, its best span's is the
sound: on one-shots in recordings over real ambiences the right recording came first for 47 % of queries by the
window's score and for 64 % by the span's among ten hits (``benchmarks/bench_pinpoint_order.py``, judging seeds);
words on a library of one-shot files ranked alike either way (``benchmarks/real_gap/hybrid.py --pinpoint``). A
hybrid ranking keeps its order (its scores fuse ranks, not cosines). Listing every window (``--segments``), two
windows that narrow to one moment (a sound cut by their edge) are one hit, at the better rank
(:func:`one_per_moment`). A hit whose file cannot be read now, or whose window is shorter than twice the finest
span, is left as it was (the first with its reason).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from diffgap_search.bridge.index_bridge import bridge_vectors
from diffgap_search.config import CAVP_SPACE
from diffgap_search.encoders.base import embed_windows, for_many_windows, input_samples
from diffgap_search.errors import MediaDecodeError
from diffgap_search.search.rescore import exact_cosines, weighted_mean
from diffgap_search.search.spans import Span, answer, cut_spans, narrow_all, padded, region_of
from diffgap_search.search.types import Hit, SearchTerm
from diffgap_search.store.filters import segments_of_files

if TYPE_CHECKING:
    from diffgap_search.encoders.base import AudioEncoder
    from diffgap_search.search.open_index import OpenIndex

PINPOINT_MIN_S = 0.5  # the finest span looked at: levels of W/2, W/4, ... while at least this long
HITS_PER_CALL = 16  # hits narrowed side by side: one encoder call per level embeds about 5 spans of each
EPS = 1e-6


def pinpoint_hits(opened: OpenIndex, terms: Sequence[SearchTerm], hits: Sequence[Hit],
                  query_s: float | None = None) -> tuple[list[Hit], list[str]]:
    """``hits`` with their seconds narrowed (module docstring), in the same order, and one line per file that
    could not be read (``"PATH: not pinpointed: why"``). ``query_s``: the seconds of the query's longest window
    (None for words), which decide how a span is chosen among the levels (``spans.answer``). Regions are read
    :data:`HITS_PER_CALL` hits at a time, so memory stays that of 16 regions (a 10 s window's: 15 s of samples
    each) whatever ``-k``."""
    out = list(hits)
    notes: list[str] = []
    cfg = opened.window()
    todo: list[tuple[int, Span]] = []  # (position, the indexed window to narrow)
    for i, hit in enumerate(hits):
        window = indexed_window(opened, terms, hit, cfg.window_s)
        if window is not None and window[1] - window[0] >= 2 * PINPOINT_MIN_S - EPS:
            todo.append((i, window))
    encoder = for_many_windows(opened.encoder) if len(todo) > 1 else opened.encoder
    for start in range(0, len(todo), HITS_PER_CALL):
        part = read_regions([(i, hits[i], window) for i, window in todo[start : start + HITS_PER_CALL]], cfg.sample_rate,
                            notes)
        scorer = SpanScorer(opened, encoder, terms, [(lo, samples) for _, _, lo, samples in part], cfg.sample_rate)
        levels = narrow_all([(w, lo + len(samples) / cfg.sample_rate) for _, w, lo, samples in part], PINPOINT_MIN_S,
                            scorer)
        for (i, window, _, _), spots in zip(part, levels):
            spot = answer(spots, query_s, cfg.window_s)
            if spot is not None:
                out[i] = replace(hits[i], start_s=spot.start_s, end_s=spot.end_s, window=window,
                                 pinpoint_score=spot.score)
    return out, notes


def by_narrowed_score(hits: Sequence[Hit]) -> list[Hit]:
    """``hits`` scored by their narrowed seconds and ordered by that score, best first (equal ones keep their
    order, the index's): a pinpointed hit's ``score`` becomes its ``pinpoint_score`` and ``window_score`` keeps
    the window's; a hit left as it was keeps its ``score``."""
    rescored = [h if h.pinpoint_score is None else replace(h, score=h.pinpoint_score, window_score=h.score)
                for h in hits]
    return sorted(rescored, key=lambda h: -h.score)


def one_per_moment(hits: Sequence[Hit]) -> list[Hit]:
    """``hits`` without the pinpointed ones whose span another, better-ranked pinpointed hit of the same file
    already covers by at least half of the shorter span: with ``--segments``, a sound cut by the edge between two
    windows is found from both, and both narrow to it; it is listed once, at the better rank."""
    kept: list[Hit] = []
    for hit in hits:
        if hit.window is not None and any(
                other.window is not None and other.file_id == hit.file_id and overlaps(other, hit) for other in kept):
            continue
        kept.append(hit)
    return kept


def overlaps(a: Hit, b: Hit) -> bool:
    """Whether the spans of ``a`` and ``b`` share at least half of the shorter one."""
    shared = min(a.end_s, b.end_s) - max(a.start_s, b.start_s)
    return shared >= 0.5 * min(a.end_s - a.start_s, b.end_s - b.start_s) - EPS


def read_regions(asked: Sequence[tuple[int, Hit, Span]], rate: int,
                 notes: list[str]) -> list[tuple[int, Span, float, np.ndarray]]:
    """``(position, window, region start, its samples)`` of each hit whose file can be read: its region
    (``spans.region_of``) at ``rate``, the index's; a line in ``notes`` for each file that cannot (once a file:
    ``--segments`` lists a file's windows apart)."""
    out = []
    for i, hit, window in asked:
        lo, hi = region_of(window)
        try:
            out.append((i, window, lo, load_region(Path(hit.fs_path), rate, lo, hi)))
        except MediaDecodeError as exc:
            note = f"{hit.path}: not pinpointed: {getattr(exc, 'reason', None) or exc}"
            notes += [] if note in notes else [note]
    return out


def load_region(path: Path, rate: int, start_s: float, end_s: float) -> np.ndarray:
    """The file's sound from ``start_s`` to ``end_s`` (``media/audio.load_span``)."""
    from diffgap_search.media.audio import load_span

    return load_span(path, rate, start_s, end_s)


def indexed_window(opened: OpenIndex, terms: Sequence[SearchTerm], hit: Hit, window_s: float) -> Span | None:
    """The indexed window to narrow: the hit's own, or for a hit spanning more than one window (a keyword hit:
    its whole file) the file's window the terms score best (ties: the earlier); None when none scores."""
    if hit.end_s - hit.start_s <= window_s + EPS:
        return hit.start_s, hit.end_s
    seg_ids, _ = segments_of_files(opened.catalog, [hit.file_id])
    scores = weighted_mean(opened, terms, seg_ids)
    rows = opened.catalog.hit_rows(scores)
    if not rows:
        return None
    best = max(rows.values(), key=lambda r: (scores[r.segment_id], -r.start_s))
    return best.start_s, best.end_s


class SpanScorer:
    """Spans of several decoded regions -> their scores by the query's terms (``(n,) float64`` per region), each
    span embedded as the index embeds a window: the audio encoder (repeat-padded to what it hears at once),
    CAVP's audio tower for ``cavp_audio``, the index's bridge for the bridged spaces (``encoder``: the index's
    audio encoder, or its loaded network for many hits: ``encoders.base.for_many_windows``). ``regions``: ``(start
    second, mono samples at ``rate``, the index's)`` of each hit, in the order ``narrow_all`` asks."""

    def __init__(self, opened: OpenIndex, encoder: AudioEncoder, terms: Sequence[SearchTerm],
                 regions: Sequence[tuple[float, np.ndarray]], rate: int) -> None:
        self.opened, self.encoder, self.terms, self.regions, self.rate = opened, encoder, terms, regions, rate

    def __call__(self, asked: Sequence[Sequence[Span]]) -> list[np.ndarray]:
        rate = self.rate
        cuts = [c for (lo, samples), spans in zip(self.regions, asked) for c in cut_spans(samples, lo, rate, spans)]
        vectors = self.vectors(*padded(cuts, rate, input_samples(self.encoder)))
        num = np.zeros(len(cuts), np.float64)
        den = 0.0
        for term in self.terms:
            if term.space in vectors:
                num += term.weight * exact_cosines(vectors[term.space], term.queries)
                den += term.weight
        scores = num / den if den > 0 else num
        bounds = np.cumsum([0] + [len(spans) for spans in asked])
        return [scores[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def vectors(self, windows: np.ndarray, durations: list[float]) -> dict[str, np.ndarray]:
        """Space -> ``(n, D) float32`` L2-normalised vectors of ``windows``, for the spaces the terms score (and
        only those: a video query on a CAVP index runs CAVP's audio tower alone)."""
        opened = self.opened
        spaces = {t.space for t in self.terms}
        cavp = opened.cavp_video() if spaces & {CAVP_SPACE, "audio_as_video"} else False
        out: dict[str, np.ndarray] = {}
        if spaces & {"audio", "audio_as_text"} or ("audio_as_video" in spaces and not cavp):
            out["audio"] = embed_windows(self.encoder, windows, durations)
        if CAVP_SPACE in spaces or ("audio_as_video" in spaces and cavp):
            out[CAVP_SPACE] = opened.video_encoder.embed_audio(  # type: ignore[attr-defined]
                windows, sample_rate=self.rate, durations_s=durations)
        bridge = opened.bridge
        if bridge is not None and spaces - {"audio", CAVP_SPACE}:
            out.update(bridge_vectors(bridge, out.get("audio"), video_side=out.get(CAVP_SPACE)))  # type: ignore[arg-type]
        return out
