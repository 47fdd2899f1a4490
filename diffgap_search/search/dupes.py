"""Near-duplicate sounds across a whole index, in one pass over FAISS (``dgsearch dupes``).

How two files are compared. A file is a set of windows (``audio`` space, ``(W, D) float32``, L2-normalised),
and copies of a sound rarely share a window grid: a trimmed copy's windows start 0.5 s later, a re-encoded
one differs in every sample. Two files A and B score

    sim(A, B) = min( mean_a max_b cos(a, b),  mean_b max_a cos(a, b) )

— every window of each file must have a near-identical window in the other (a symmetric Chamfer
similarity). Re-encoded, trimmed and gain-changed copies keep every window's partner; a 10 s excerpt of a
one-minute file does not (most of the long file's windows have no partner), so excerpts are not
duplicates, and neither are two long files that only share an intro. For one-window files (most sound
effects) it is the plain cosine of their windows.

One pass, not one query per file: every window is a query of one batched ``range_search`` of the space's
FAISS index (the published file, or an exact index of the catalog's vectors, plus vectors committed since
publishing), which returns every window pair with cosine ≥ ``threshold``. Since a mean of best matches
never exceeds the best match, a file pair with ``sim ≥ threshold`` always has such a window pair, so these
candidate pairs miss none (on an exact index; IVF's recall is measured in ``benchmarks/bench_dupes.py``).
Each candidate file pair is then scored exactly from the catalog's vectors, and pairs with
``sim ≥ threshold`` form groups by complete linkage (``group_pairs``): every two files of a group are such a
pair. Single linkage (union-find: every file linked by a *chain* of pairs) was the rule until 2026-12-06; on
short one-shots of similar kinds it chained unrelated sounds (a cow, a cello and a rooster through the wind
instruments between them) into groups of 15-19 files (``benchmarks/bench_dupes_threshold.py``).

The default threshold (``DEFAULT_THRESHOLD``) is measured on real recordings with the real aisfx model:
see ``tests/test_dupes.py`` and the README.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.config import FaissConfig
from diffgap_search.errors import IndexNotReadyError, UsageError
from diffgap_search.media.discover import exact_path_field
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.settings import stored_encoder
from diffgap_search.store.similarity_rows import file_segment_ids, files_by_id, segment_files
from diffgap_search.store.index_choice import set_search_params
from diffgap_search.store.vector_index import load_index

# Measured (benchmarks/bench_dupes_threshold.py) with aisfx on the 130 CC0 recordings plus re-encoded (mp3, ogg),
# trimmed (-0.5 s) and 6 dB quieter copies of 16 of them: the threshold that reproduces the most planted groups
# exactly; every copy of a recording of at least 2.5 s scores >= 0.945 with its original, two recordings of
# different kinds <= 0.911. See the README (dgsearch dupes) for what it also groups: takes of one drum stroke.
DEFAULT_THRESHOLD = 0.94
# Inverted lists probed per window on an IVF index (search probes 32): a near-duplicate sits in its window's
# own list or the nearest few; benchmarks/bench_dupes.py measures the planted pairs' recall at 8 and 32.
DUPES_NPROBE = 8


@dataclass(frozen=True)
class DupeFile:
    """One file of a group."""

    file_id: int
    path: str  # display form
    duration_s: float | None
    path_key: bytes = b""  # the exact path (``files.path_key``)


@dataclass(frozen=True)
class DupePair:
    """Two files of a group and their similarity (``sim`` in the module docstring, ≥ the threshold)."""

    a: str
    b: str
    score: float


@dataclass(frozen=True)
class DupeGroup:
    """Files linked by near-duplicate pairs: ``files`` sorted by path, ``pairs`` best first."""

    files: list[DupeFile]
    pairs: list[DupePair]

    @property
    def min_score(self) -> float:
        return min(p.score for p in self.pairs)

    def to_dict(self) -> dict[str, Any]:
        return {"size": len(self.files), "min_score": round(self.min_score, 6),
                "files": [{"path": f.path, "file_id": f.file_id, "duration_s": f.duration_s,
                           **exact_path_field(f.path, f.path_key)} for f in self.files],
                "pairs": [{"a": p.a, "b": p.b, "score": round(p.score, 6)} for p in self.pairs]}


@dataclass
class DupesResult:
    """Groups (largest first, then by first path), what was searched, and timings in milliseconds."""

    groups: list[DupeGroup]
    threshold: float
    files: int
    vectors: int
    candidate_pairs: int
    index_kind: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "files": self.files, "vectors": self.vectors,
                "candidate_pairs": self.candidate_pairs, "index_kind": self.index_kind,
                "groups": [g.to_dict() for g in self.groups],
                "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()}}


def file_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """``sim(A, B)`` of the module docstring for window vectors ``a (Wa, D)``, ``b (Wb, D)`` float32, unit."""
    s = a @ b.T
    return float(min(s.max(axis=1).mean(), s.max(axis=0).mean()))


def window_pairs(index: Any, queries: np.ndarray, query_ids: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair (query id, found id) with cosine ≥ ``threshold`` from one ``range_search`` of ``queries
    (Q, D) float32`` -> ``(ids_q (n,) int64, ids_found (n,) int64, cos (n,) float32)``."""
    lims, dist, ids = index.range_search(np.ascontiguousarray(queries, dtype=np.float32), float(threshold) - 1e-6)
    counts = np.diff(lims).astype(np.int64)
    return np.repeat(query_ids, counts), ids.astype(np.int64), dist.astype(np.float32)


def _files_of(seg_ids: np.ndarray, seg_files: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The file id of each segment in ``ids (n,) int64`` (``seg_ids`` ascending), -1 where unknown."""
    if len(seg_ids) == 0:
        return np.full(len(ids), -1, np.int64)
    pos = np.minimum(np.searchsorted(seg_ids, ids), len(seg_ids) - 1)
    return np.where(seg_ids[pos] == ids, seg_files[pos], -1)


def group_pairs(pairs: Iterable[tuple[int, int, float]]) -> list[tuple[list[int], list[tuple[int, int, float]]]]:
    """Complete linkage over ``(file a, file b, score)`` edges (every edge at or above the threshold) ->
    ``[(file ids sorted, every edge among them)]``, groups by their smallest file id, files without a partner
    left out. Edges are taken best first (ties by ids); an edge joins its two files' groups only when every
    file of one has an edge with every file of the other, so every two files of a group are near-duplicates
    and a group's lowest pair is its weakest member, not a link of a chain (A ~ B ~ C with A, C apart joins
    the better pair and leaves the third alone)."""
    edges = sorted({(min(a, b), max(a, b)): s for a, b, s in pairs}.items(), key=lambda e: (-e[1], e[0]))
    score = dict(edges)
    group: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    # groups found unable to merge: a missing pair stays missing as either grows, so they never can
    apart: dict[int, set[int]] = {}
    for (a, b), _s in edges:
        for f in (a, b):
            if f not in group:
                group[f], members[f] = f, [f]
        ga, gb = group[a], group[b]
        if ga == gb or gb in apart.get(ga, ()):
            continue
        if not all((min(x, y), max(x, y)) in score for x in members[ga] for y in members[gb]):
            apart.setdefault(ga, set()).add(gb)
            apart.setdefault(gb, set()).add(ga)
            continue
        keep, gone = min(ga, gb), max(ga, gb)
        for f in members[gone]:
            group[f] = keep
        members[keep] += members.pop(gone)
        for other in apart.pop(gone, set()):
            apart[other].discard(gone)
            apart[other].add(keep)
            apart.setdefault(keep, set()).add(other)
    out = []
    for root in sorted(members):
        files = sorted(members[root])
        if len(files) > 1:
            out.append((files, [(x, y, score[(x, y)]) for i, x in enumerate(files) for y in files[i + 1:]]))
    return out


def find_dupes(index_dir: Path, *, threshold: float = DEFAULT_THRESHOLD, space: str = "audio",
               faiss_cfg: FaissConfig = FaissConfig(), nprobe: int = DUPES_NPROBE,
               chunk_rows: int = 4096) -> DupesResult:
    """Groups of near-duplicate files in the index at ``index_dir`` (module docstring); ``nprobe``: lists
    probed per window when the published index is IVF.

    Raises IndexNotFoundError, IndexNotReadyError (nothing indexed yet), UsageError (threshold outside
    (0, 1]).
    """
    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"--threshold must be a cosine in (0, 1], got {threshold}")
    t0 = time.perf_counter()
    with Catalog.open(index_dir) as catalog:
        encoder = stored_encoder(catalog)
        if encoder is None:
            raise IndexNotReadyError(f"index {index_dir} has nothing indexed yet: run `dgsearch index FOLDER` first")
        seg_ids, seg_files = segment_files(catalog, space)
        loaded = load_index(index_dir, catalog, space, int(encoder["dim"]), faiss_cfg)
        set_search_params(loaded.index, replace(faiss_cfg, nprobe=nprobe))
        for ids, vecs in catalog.read_vectors(space, after_id=loaded.max_id):  # committed since publishing
            loaded.index.add_with_ids(vecs, ids)
        t1 = time.perf_counter()
        n_windows = dict(zip(*np.unique(seg_files, return_counts=True)))
        best: dict[tuple[int, int], float] = {}
        for ids, vecs in catalog.read_vectors(space, chunk_rows=chunk_rows):
            qi, fi, cos = window_pairs(loaded.index, vecs, ids, threshold)
            fa, fb = _files_of(seg_ids, seg_files, qi), _files_of(seg_ids, seg_files, fi)
            keep = (fa >= 0) & (fb >= 0) & (fa != fb)  # windows of failed files, and a file with itself, out
            lo, hi = np.minimum(fa[keep], fb[keep]), np.maximum(fa[keep], fb[keep])
            for a, b, c in zip(lo.tolist(), hi.tolist(), cos[keep].tolist()):
                if c > best.get((a, b), -2.0):
                    best[(a, b)] = c
        t2 = time.perf_counter()
        vectors: dict[int, np.ndarray] = {}

        def windows(file_id: int) -> np.ndarray:
            if file_id not in vectors:
                found = catalog.vectors_of(space, file_segment_ids(catalog, file_id))
                vectors[file_id] = np.stack(list(found.values()))
            return vectors[file_id]

        edges = []
        for (fa, fb), top in sorted(best.items()):
            one_each = n_windows[fa] == 1 and n_windows[fb] == 1  # then sim is that window pair's cosine
            score = top if one_each else file_similarity(windows(fa), windows(fb))
            if score >= threshold - 1e-6:
                edges.append((fa, fb, score))
        grouped = group_pairs(edges)
        rows = files_by_id(catalog, {f for members, _ in grouped for f in members})
        t3 = time.perf_counter()
    groups = []
    for members, links in grouped:
        files = sorted((DupeFile(f, rows[f].path, rows[f].duration_s, rows[f].path_key) for f in members),
                       key=lambda d: d.path)
        pairs = sorted((DupePair(*sorted((rows[a].path, rows[b].path)), s) for a, b, s in links),
                       key=lambda p: (-p.score, p.a, p.b))
        groups.append(DupeGroup(files, pairs))
    groups.sort(key=lambda g: (-len(g.files), g.files[0].path))
    return DupesResult(groups, threshold, len(set(seg_files.tolist())), len(seg_ids), len(best), loaded.kind,
                       {"load": (t1 - t0) * 1000, "search": (t2 - t1) * 1000, "verify": (t3 - t2) * 1000,
                        "total": (t3 - t0) * 1000})
