"""Training and feeding the coarse quantiser of an IVF or compressed index: two-level k-means for many lists,
k-means on the GPU where faiss-gpu has one, and the HNSW beam vectors are added with.

A compressed index above :data:`~diffgap_search.store.index_budget.FLAT_COARSE_MAX_LISTS` lists (an HNSW32
coarse quantiser, from about 2·10⁶ vectors: ``IVF16384_HNSW32`` at 10⁷) trains its ``nlist`` centroids on
``64 · nlist`` sampled rows. Plain k-means costs ``rows · nlist · D`` per iteration: at 10⁷ vectors that is
10⁶ rows × 16 384 centroids × 512 per iteration, an hour of two CPU cores for the 10 iterations FAISS runs.
Two-level k-means (FAISS's ``contrib.clustering.two_level_clustering``, the way its own large-scale
benchmarks train IVF65536 and above) first splits the rows into ``√nlist`` clusters, then runs k-means
inside each with centroids in proportion to its rows: each row is compared with ``2·√nlist`` centroids per
iteration instead of ``nlist`` (64× less work at 16 384 lists) and the lists come out as balanced.

FAISS's helper asserts the L2 metric; here the k-means is spherical (the centroids re-normalised after each
iteration), as FAISS trains an inner-product IVF's coarse quantiser itself, and seeded, so the same vectors
give the same index.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

COARSE_ITERATIONS = 10  # FAISS's IVF default (ClusteringParameters.niter for an index's coarse quantiser)
GPU_ENV = "DGSEARCH_FAISS_GPU"  # "0": train on the CPU even where faiss-gpu sees a GPU


def faiss_gpus() -> int:
    """GPUs FAISS trains k-means on here: faiss-gpu's count of devices (0 with faiss-cpu, without a device,
    or with ``DGSEARCH_FAISS_GPU=0``). The k-means of a compressed or IVF index's coarse quantiser runs on
    them (its assignment step is a product of every sampled row with every centroid); the codes and the
    index itself stay on the CPU, so a GPU changes the time of training, not what is built from it beyond
    floating-point order."""
    import faiss

    if os.environ.get(GPU_ENV, "").strip() == "0" or not hasattr(faiss, "get_num_gpus"):
        return 0
    return int(faiss.get_num_gpus())


def clustering_index(dim: int) -> Any | None:
    """An inner-product ``IndexFlatIP`` of ``dim`` on every GPU :func:`faiss_gpus` counts, for an IVF's
    ``clustering_index`` (its coarse k-means' assignment); None without a GPU."""
    gpus = faiss_gpus()
    if not gpus:
        return None
    import faiss

    return faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(dim), ngpu=gpus)


@contextmanager
def trained_on_gpu(ivf: Any) -> Iterator[None]:
    """While inside, ``ivf`` (an ``IndexIVF``) runs its coarse k-means on the GPUs (:func:`clustering_index`),
    where there are some; the GPU index is let go on leaving (FAISS keeps only a pointer to it)."""
    gpu_index = clustering_index(ivf.d)
    if gpu_index is None:
        yield
        return
    ivf.clustering_index = gpu_index
    try:
        yield
    finally:
        ivf.clustering_index = None


ADD_EF_SEARCH = 16  # FAISS's HNSW beam, kept to assign added vectors to their list (k = 1); queries use more


def hnsw_quantizer(index: Any) -> Any | None:
    """The ``IndexHNSW`` coarse quantiser of an IVF ``index`` (any wrapping), or None (a flat one)."""
    import faiss

    quantizer = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
    return quantizer if isinstance(quantizer, faiss.IndexHNSW) else None


def set_add_beam(index: Any) -> None:
    """Give ``index``'s HNSW coarse quantiser (if it has one) the beam it adds vectors with,
    :data:`ADD_EF_SEARCH`: a reader's wider query beam (``index_choice.set_search_params``, 128) made encoding
    several times slower at 10⁷ vectors, for an assignment of one nearest list per vector."""
    quantizer = hnsw_quantizer(index)
    if quantizer is not None:
        quantizer.hnsw.efSearch = ADD_EF_SEARCH


def split_lists(counts: np.ndarray, nlist: int) -> np.ndarray:
    """``(len(counts),) int64``: how many of the ``nlist`` second-level centroids each first-level cluster
    of ``counts`` rows gets, in proportion to its rows (the cumulative rounding FAISS uses), summing to
    ``nlist`` and never more than the cluster's rows."""
    cum = np.cumsum(counts, dtype=np.int64)
    share = cum * nlist // cum[-1]
    share[1:] -= share[:-1].copy()
    return np.minimum(share, counts)


def two_level_centroids(rows: np.ndarray, nlist: int, seed: int, niter: int = COARSE_ITERATIONS) -> np.ndarray:
    """``(nlist, D) float32`` unit-norm centroids of ``rows (n, D) float32`` (n ≥ nlist) by two-level
    spherical k-means (module docstring), on the GPUs :func:`faiss_gpus` counts, if any. Centroids a small
    cluster could not take (it has fewer rows than its share) are given to the largest clusters, so exactly
    ``nlist`` come back."""
    import faiss

    rows = np.ascontiguousarray(rows, dtype=np.float32)
    n, dim = rows.shape
    if n < nlist:
        raise ValueError(f"{n} rows cannot give {nlist} centroids")
    n1 = max(1, int(round(math.sqrt(nlist))))
    gpus = faiss_gpus()
    top = faiss.Kmeans(dim, n1, niter=niter, spherical=True, seed=seed, max_points_per_centroid=2000, gpu=gpus)
    top.train(rows)
    _, assign = top.index.search(rows, 1)
    assign = assign[:, 0]
    counts = np.bincount(assign, minlength=n1)
    share = split_lists(counts, nlist)
    short = nlist - int(share.sum())
    for c in np.argsort(-counts, kind="stable"):  # the capped clusters' centroids go to the largest ones
        if short == 0:
            break
        extra = min(short, int(counts[c] - share[c]))
        share[c] += extra
        short -= extra
    order = np.argsort(assign, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    parts = []
    for c in range(n1):
        k = int(share[c])
        if k == 0:
            continue
        sub = rows[order[starts[c] : starts[c + 1]]]
        if k == len(sub):  # as many centroids as rows: the rows themselves
            parts.append(sub)
            continue
        km = faiss.Kmeans(dim, k, niter=niter, spherical=True, seed=seed + 1 + c, max_points_per_centroid=256,
                          gpu=gpus)
        km.train(sub)
        parts.append(km.centroids)
    return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)


def train_two_level(index: object, sample: np.ndarray, seed: int) -> None:
    """Trains ``OPQ{m},IVF{nlist}_HNSW32,PQ{m}`` (an ``IndexPreTransform`` from ``faiss.index_factory``) on
    ``sample (n, D) float32``: the OPQ rotation on the sample (its ``max_train_points`` rows), the coarse
    centroids by :func:`two_level_centroids` on the rotated sample, added to the HNSW quantiser, then the
    IVF-PQ's codebooks (FAISS skips coarse training when its quantiser already holds ``nlist`` centroids)."""
    import faiss

    pre = faiss.downcast_index(index)
    for i in range(pre.chain.size()):
        vt = pre.chain.at(i)
        vt.train(sample)
        sample = vt.apply(sample)
    ivf = faiss.downcast_index(pre.index)
    centroids = two_level_centroids(sample, ivf.nlist, seed)
    ivf.quantizer.add(centroids)
    ivf.quantizer.is_trained = True
    ivf.train(sample)
    pre.is_trained = True
