"""The library map for a reader (``GET /api/map``): the stored map (``store/library_map.py``), brought up to
date in memory when stale, joined with each window's file, seconds and colour key, and sampled beyond a cap.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffgap_search.errors import UsageError
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.labels import first_labels
from diffgap_search.store.library_map import StoredMap, current_generation, current_map, first_tags, map_rows, read_map

COLOURS = ("folder", "tag", "label")
DEFAULT_CAP = 100_000

_cache: dict[str, StoredMap] = {}  # index folder -> a map computed in memory (stale on disk), by generation
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class MapPoints:
    """Points of the map, in segment-id order: ``segment_id``, ``file_id`` (N,) int64, ``xy (N, 2) float32``,
    ``start_s``/``end_s`` (N,) float64, ``key (N,) int`` into ``keys`` (colour keys, sorted); ``total``:
    windows in the map before sampling; ``generation`` and ``method`` of the map; ``stale``: the stored map
    was behind the index and was brought up to date in memory."""

    segment_id: np.ndarray
    file_id: np.ndarray
    xy: np.ndarray
    start_s: np.ndarray
    end_s: np.ndarray
    key: np.ndarray
    keys: list[str]
    total: int
    generation: int
    method: str
    colour: str
    stale: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready columns (one list per field, one entry per point; coordinates to 5 decimals)."""
        return {"generation": self.generation, "method": self.method, "colour": self.colour, "total": self.total,
                "count": len(self.segment_id), "stale": self.stale, "keys": self.keys,
                "segment_id": self.segment_id.tolist(), "file_id": self.file_id.tolist(),
                "x": np.round(self.xy[:, 0].astype(np.float64), 5).tolist(),
                "y": np.round(self.xy[:, 1].astype(np.float64), 5).tolist(),
                "start_s": self.start_s.tolist(), "end_s": self.end_s.tolist(), "key": self.key.tolist()}


def fresh_map(index_dir: Path, catalog: Catalog) -> tuple[StoredMap, bool]:
    """``(map matching the published audio generation, whether the stored one was stale)``; a stale map is
    updated in memory (never written by a reader) and kept for the next request while the generation holds."""
    stored = read_map(index_dir)
    generation = current_generation(catalog)
    if stored is not None and stored.generation == generation:
        return stored, False
    key = str(index_dir.resolve())
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached.generation == generation:
            return cached, True
        computed = current_map(catalog, stored)
        _cache[key] = computed
        return computed, True


def sample_positions(n: int, cap: int) -> np.ndarray:
    """``(min(n, cap),) int64`` positions spread evenly over ``range(n)`` (all of them when ``n <= cap``)."""
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, cap).round().astype(np.int64))


def map_points(index_dir: Path, catalog: Catalog, *, cap: int = DEFAULT_CAP, colour: str = "folder") -> MapPoints:
    """The map's points (see :class:`MapPoints`): windows of files indexed ok, at most ``cap`` of them
    (evenly sampled in id order beyond it), coloured by the file's folder name, its first embedded tag or its
    first label (``dgsearch label``; ``""`` for none). UsageError for another ``colour`` or a ``cap`` below 1."""
    if colour not in COLOURS:
        raise UsageError(f"colour must be one of {', '.join(COLOURS)}, got {colour!r}")
    if cap < 1:
        raise UsageError(f"cap must be at least 1, got {cap}")
    m, stale = fresh_map(index_dir, catalog)
    rows = map_rows(catalog)
    listed = np.fromiter((int(i) in rows for i in m.ids), dtype=bool, count=len(m.ids))
    ids, xy = m.ids[listed], m.xy[listed]
    total = len(ids)
    pick = sample_positions(total, cap)
    ids, xy = ids[pick], xy[pick]
    info = [rows[int(i)] for i in ids]
    firsts = first_tags(catalog) if colour == "tag" else first_labels(catalog) if colour == "label" else {}
    names = [(firsts.get(f, "") if colour != "folder" else _folder_name(path)) for f, _, _, path in info]
    keys = sorted(set(names))
    index = {k: j for j, k in enumerate(keys)}
    return MapPoints(ids, np.array([r[0] for r in info], np.int64), xy, np.array([r[1] for r in info], np.float64),
                     np.array([r[2] for r in info], np.float64), np.array([index[k] for k in names], np.int64), keys,
                     total, m.generation, m.method, colour, stale)


def _folder_name(path: str) -> str:
    parts = path.rsplit("/", 2)
    return parts[-2] if len(parts) >= 2 else ""
