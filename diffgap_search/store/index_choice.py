"""Choosing and building the FAISS index for a number of vectors (the rule autofaiss follows).

Exact inner-product search while small; an inverted-file index (IVF-Flat) once large, because it builds in
minutes on two cores at 10⁶ vectors, supports ``remove_ids`` (HNSW does not) and reaches recall@10 ≥ 0.95
with a modest ``nprobe``; above the memory budget a compressed OPQ/IVF-PQ index (the rule, with the size
rule's ``index_kind_for`` and ``ivf_lists``, is ``index_budget.py``; re-exported here). Flat and IVF-Flat
indexes are wrapped in ``IndexIDMap2`` so their ids are catalog segment ids; a compressed one keeps them in
its inverted lists.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from diffgap_search.config import FaissConfig
from diffgap_search.store.coarse_training import hnsw_quantizer, train_two_level, trained_on_gpu
from diffgap_search.store.index_budget import Compressed, index_kind_for, ivf_lists, parse_compressed

__all__ = ["build_index", "build_compressed", "index_kind_for", "ivf_lists", "probes", "search_threads",
           "set_search_params", "train_rows", "train_sample"]

PQ_TRAIN = 65_536  # rows the PQ codebooks train on (256 centroids: 256 points each)
OPQ_TRAIN = 16_384  # rows the OPQ rotation trains on (each round trains a PQ and a D×D SVD: minutes at 65 536)


def build_index(kind: str, dim: int, train_vectors: np.ndarray | None, cfg: FaissConfig, seed: int = 0) -> Any:
    """An empty ``IndexIDMap2`` of the given kind (IVF is trained on ``train_vectors`` (n, D) float32); a
    compressed kind is :func:`build_compressed`'s unwrapped index."""
    import faiss

    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    comp = parse_compressed(kind)
    if comp is not None:
        assert train_vectors is not None
        return build_compressed(comp, dim, train_vectors, cfg, seed)
    if not kind.startswith("ivf"):
        raise ValueError(f"unknown index kind {kind!r}")
    nlist = int(kind[3:])
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = seed
    assert train_vectors is not None
    with trained_on_gpu(ivf):
        ivf.train(train_sample(train_vectors, nlist * cfg.ivf_train_per_list, seed))
    ivf.nprobe = probes(nlist, cfg.nprobe)
    return faiss.IndexIDMap2(ivf)  # faiss's wrappers keep ivf and quantizer referenced


def train_sample(vectors: np.ndarray, n_train: int, seed: int) -> np.ndarray:
    """``(min(n_train, n), D) float32``: rows of ``vectors (n, D)`` drawn without replacement, in order (a
    ``np.memmap`` is read only at those rows)."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(vectors), size=min(n_train, len(vectors)), replace=False))
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


def train_rows(comp: Compressed, cfg: FaissConfig) -> int:
    """Rows a compressed index trains on: ``ivf_train_per_list`` per list for the coarse k-means (1 048 576
    at 16 384 lists: 2 GB at D = 512), at least :data:`PQ_TRAIN` for the codebooks."""
    return max(comp.nlist * cfg.ivf_train_per_list, PQ_TRAIN)


def build_compressed(comp: Compressed, dim: int, train_vectors: np.ndarray, cfg: FaissConfig, seed: int = 0) -> Any:
    """An empty, trained ``OPQ{m},IVF{nlist}[_HNSW32],PQ{m}`` for inner product. Not wrapped in
    ``IndexIDMap2``: the inverted lists keep the segment ids themselves (publish filters deleted ones out
    when it merges the next generation's lists: ``ondisk_index.py``).

    Trained on a sample of ``train_vectors (n, D) float32`` (an array or a ``np.memmap``): ``nlist ·
    ivf_train_per_list`` rows for the coarse k-means, at least :data:`PQ_TRAIN` for the codebooks (OPQ uses
    :data:`OPQ_TRAIN` of them),
    so memory is bounded by the sample, not by ``n``. With an HNSW coarse quantiser (more than 4 096 lists)
    the centroids come from two-level k-means (``coarse_training.py``: an hour less at 10⁷ vectors on two
    cores). Seeded: the same vectors give the same index.
    """
    import faiss

    index = faiss.index_factory(dim, comp.factory(), faiss.METRIC_INNER_PRODUCT)
    opq = faiss.downcast_VectorTransform(faiss.downcast_index(index).chain.at(0))
    opq.niter = cfg.opq_iterations
    opq.max_train_points = OPQ_TRAIN
    ivf = faiss.downcast_index(faiss.extract_index_ivf(index))  # IndexIVFPQ
    ivf.cp.seed = seed
    ivf.pq.cp.seed = seed + 1
    n_train = train_rows(comp, cfg)
    if comp.hnsw:  # many lists: two-level k-means (coarse_training.py); the sample is dropped once rotated
        train_two_level(index, train_sample(train_vectors, n_train, seed), seed)
    else:
        with trained_on_gpu(ivf):
            index.train(train_sample(train_vectors, n_train, seed))
    ivf.nprobe = probes(ivf.nlist, cfg.nprobe)  # the HNSW beam stays FAISS's to add; readers widen it
    return index


REFERENCE_LISTS = 4096  # ``FaissConfig.nprobe`` is the number of lists probed at this many lists
COARSE_EF_SEARCH = 128  # an HNSW coarse quantiser's beam (FAISS's default, 16, misses some of the nearest lists)


def probes(nlist: int, nprobe: int) -> int:
    """Lists a search probes in an index of ``nlist`` lists: ``nprobe`` up to :data:`REFERENCE_LISTS`, then
    ``nprobe · √(nlist / 4096)`` (64 at 16 384 lists), never more than ``nlist``. Lists hold ≈ N/nlist
    vectors and nlist ≈ 4√N, so a fixed ``nprobe`` would scan an ever smaller share of the vectors: at 10⁷
    vectors (16 384 lists) ``nprobe`` 32 measured recall@10 0.947 after re-scoring, against 0.985 at 10⁶
    (``docs/operations.md``)."""
    scaled = round(nprobe * math.sqrt(nlist / REFERENCE_LISTS)) if nlist > REFERENCE_LISTS else nprobe
    return max(1, min(nlist, scaled))


def set_search_params(index: Any, cfg: FaissConfig) -> None:
    """Apply query-time parameters to an index, whatever its wrapping: :func:`probes` lists, and an HNSW
    coarse quantiser's beam of at least :data:`COARSE_EF_SEARCH` (and at least the lists probed)."""
    import faiss

    try:
        ivf = faiss.extract_index_ivf(index)
    except (RuntimeError, TypeError):
        return
    ivf.nprobe = probes(ivf.nlist, cfg.nprobe)
    quantizer = hnsw_quantizer(ivf)
    if quantizer is not None:
        quantizer.hnsw.efSearch = max(COARSE_EF_SEARCH, ivf.nprobe)


FEW_QUERIES = 8  # up to this many query vectors, FAISS searches on one thread


@contextmanager
def search_threads(n_queries: int) -> Iterator[None]:
    """FAISS's OpenMP threads for a search of ``n_queries`` vectors: one thread for a few queries (their
    work is a millisecond; a second thread only adds a barrier per call, and on a busy machine a
    descheduled thread makes that barrier cost ~10x the search), the default for batches."""
    import faiss

    if n_queries > FEW_QUERIES:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
