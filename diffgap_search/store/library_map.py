"""The library map on disk: every audio window's 2-D position, derived from the ``audio`` space's vectors as
its FAISS file is, and kept beside it (``dgsearch serve``'s ``GET /api/map`` draws it).

**Where and why a file.** ``<index>/map.audio.npz`` (uncompressed numpy arrays: 16 bytes a window, 16 MB at
10⁶, plus the basis) holds ``ids (N,) int64`` ascending, ``xy (N, 2) float32``, the PCA basis (``mean (D,)``,
``axes (2, D)``), ``generation`` (of the ``audio`` FAISS file it matches), ``fitted`` (how many windows the
basis was fitted on) and ``method``. Being derived data like the FAISS files, it lives beside them rather
than in the catalog: one ``os.replace`` publishes it (a reader holding the old file keeps reading it whole),
so it needs no transaction, no readers' lock and no deletion of old generations; the generation inside it
says whether it is current.

**When.** The writer (``dgsearch index``, ``train``) calls :func:`update_map` after publishing the ``audio``
space. Incremental with PCA: deleted windows are dropped, windows above the map's highest id are placed by
the stored basis, and the basis is fitted again from all vectors only when the space has grown past twice
the count it was fitted on (or the map is missing, of another dimension, or made by UMAP, which has no basis).
A reader that finds the map stale (an index written before maps, or a writer killed in between) computes the
same update in memory (:func:`current_map`) and writes nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffgap_search.atomic_files import replacing
from diffgap_search.projection import UMAP_MAX, Basis, fit_pca, project_2d, umap_available
from diffgap_search.store.catalog import Catalog
from diffgap_search.store.vector_index import Published
from diffgap_search.threads import blas_threads, idle_cores

log = logging.getLogger(__name__)

MAP_FILE = "map.audio.npz"
SPACE = "audio"
REFIT_GROWTH = 2.0  # fit the basis again once the space holds this many times the windows it was fitted on


@dataclass(frozen=True)
class StoredMap:
    """A map of ``SPACE``: ``ids (N,) int64`` ascending, ``xy (N, 2) float32``; ``basis`` (None for UMAP),
    the FAISS ``generation`` it matches, ``fitted`` (windows the projection was fitted on), ``method``."""

    ids: np.ndarray
    xy: np.ndarray
    basis: Basis | None
    generation: int
    fitted: int
    method: str


def map_path(index_dir: Path) -> Path:
    """``<index>/map.audio.npz``."""
    return index_dir / MAP_FILE


def read_map(index_dir: Path) -> StoredMap | None:
    """The stored map, or None when there is none or it cannot be read (logged)."""
    try:
        with np.load(map_path(index_dir), allow_pickle=False) as z:
            basis = Basis(z["mean"], z["axes"]) if z["mean"].size else None
            return StoredMap(z["ids"].astype(np.int64), z["xy"].astype(np.float32), basis, int(z["generation"]),
                             int(z["fitted"]), str(z["method"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        log.warning("library map %s unreadable (%s): it will be computed again", map_path(index_dir), exc)
        return None


def write_map(index_dir: Path, m: StoredMap) -> None:
    """Replace ``<index>/map.audio.npz`` atomically with ``m``."""
    empty = np.zeros(0, np.float32)
    with replacing(map_path(index_dir)) as tmp, open(tmp, "xb") as fh:
        np.savez(fh, ids=m.ids, xy=m.xy, mean=m.basis.mean if m.basis else empty,
                 axes=m.basis.axes if m.basis else empty, generation=np.int64(m.generation),
                 fitted=np.int64(m.fitted), method=np.str_(m.method))


def current_generation(catalog: Catalog) -> int:
    """The generation of the published ``audio`` FAISS file (0 when none is published)."""
    pub = Published.read(catalog, SPACE)
    return pub.generation if pub is not None else 0


def current_map(catalog: Catalog, old: StoredMap | None, method: str = "auto") -> StoredMap:
    """``old`` brought up to date with the catalog's ``audio`` vectors (see the module docstring); ``method``
    chooses the projection of a full fit (``pca``, ``umap``, ``auto``)."""
    generation = current_generation(catalog)
    n = catalog.count_vectors(SPACE)
    if n == 0:
        return StoredMap(np.zeros(0, np.int64), np.zeros((0, 2), np.float32), None, generation, 0, "pca")
    if old is not None and old.basis is not None and n <= REFIT_GROWTH * max(old.fitted, 1):
        updated = _extended(catalog, old, generation)
        if updated is not None:
            return updated
    if method not in ("pca", "umap", "auto"):
        raise ValueError(f"unknown projection {method!r}: pca, umap or auto")
    if method == "umap" or (method == "auto" and umap_available() and 3 <= n <= UMAP_MAX):  # all in memory
        chunks = list(catalog.read_vectors(SPACE))
        xy_all, used = project_2d(np.concatenate([c[1] for c in chunks]), method)
        if used != "pca":
            return StoredMap(np.concatenate([c[0] for c in chunks]), xy_all, None, generation, n, used)
    basis = fit_pca(vecs for _, vecs in catalog.read_vectors(SPACE))  # two streamed passes: memory D x D
    placed = [(ids, basis.project(vecs)) for ids, vecs in catalog.read_vectors(SPACE)]
    return StoredMap(np.concatenate([i for i, _ in placed]), np.concatenate([xy for _, xy in placed]), basis,
                     generation, n, "pca")


def _extended(catalog: Catalog, old: StoredMap, generation: int) -> StoredMap | None:
    """``old`` without its deleted windows and with the windows above its highest id placed by its basis;
    None when the vectors have another dimension (a new model: fit again)."""
    assert old.basis is not None
    keep = np.isin(old.ids, catalog.live_ids(SPACE))
    ids, xy = [old.ids[keep]], [old.xy[keep]]
    top = int(old.ids.max()) if len(old.ids) else 0
    for chunk_ids, vecs in catalog.read_vectors(SPACE, after_id=top):
        if vecs.shape[1] != old.basis.mean.shape[0]:
            return None
        ids.append(chunk_ids)
        xy.append(old.basis.project(vecs))
    return StoredMap(np.concatenate(ids), np.concatenate(xy), old.basis, generation, old.fitted, old.method)


def update_map(index_dir: Path, catalog: Catalog, method: str = "auto") -> StoredMap:
    """Writer only, after publishing the ``audio`` space: bring the stored map up to date and write it
    (nothing is written when it is already current)."""
    old = read_map(index_dir)
    if old is not None and old.generation == current_generation(catalog) and len(old.ids) == catalog.count_vectors(SPACE):
        return old
    with blas_threads(idle_cores(os.cpu_count() or 1)):  # one thread right after indexing on 2 cores
        new = current_map(catalog, old, method)
    write_map(index_dir, new)
    return new


def map_rows(catalog: Catalog) -> dict[int, tuple[int, float, float, str]]:
    """Segment id -> ``(file id, start_s, end_s, file path)`` of every window of the files indexed ok."""
    rows = catalog.conn.execute("SELECT s.id, s.file_id, s.start_s, s.end_s, f.path FROM segments s"
                                " JOIN files f ON f.id = s.file_id WHERE f.status = 'ok'")
    return {int(s): (int(f), float(a), float(b), p) for s, f, a, b, p in rows}


def first_tags(catalog: Catalog) -> dict[int, str]:
    """File id -> the value of its first embedded tag (files indexed ok that have one)."""
    rows = catalog.conn.execute("SELECT t.file_id, t.value FROM tags t JOIN files f ON f.id = t.file_id"
                                " WHERE f.status = 'ok' ORDER BY t.id DESC")
    return {int(f): v for f, v in rows}  # descending ids: the first tag is written last, and stays
