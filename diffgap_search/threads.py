"""How many CPU threads a block of torch work may use: a core helper, so every stage (``gap``'s bridge,
``encoders``) can cap it without importing another stage.

torch is imported when the helper runs, never at import: importing this module stays instant.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def idle_cores(wanted: int) -> int:
    """How many of ``wanted`` threads a long CPU job should use now: at most the cores usable by this process
    less the load already on them (1-minute load average, rounded), at least 1.

    Why: torch's intra-op threads wait on each other at every operation; on a 2-core machine running other
    work, two training threads were measured 9x *slower* than one (2.3 s vs 0.27 s per step; ``bench_train``),
    while on an idle machine two are 1.7x faster than one.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - no load average
        load = 0.0
    return max(1, min(wanted, cores, int(cores - load + 0.5)))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with at most ``n`` intra-op threads (restored after). For tiny matrix products (one
    query text is a handful of tokens, one bridged query a few 512-d layers) a second thread only adds
    synchronisation, and on a busy machine a descheduled thread stalls every operation."""
    import torch

    before = torch.get_num_threads()
    if n >= before:
        yield
        return
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with numpy's BLAS (OpenBLAS, MKL) on at most ``n`` threads (restored after), through
    threadpoolctl. Why: a BLAS thread pool spins on every call, and on a busy core its second thread stalls the
    first — measured on 2 cores beside a one-thread job: the Gram matrix and eigenvectors of 166 x 512 vectors
    0.0024 s on one thread, 0.01-0.34 s on two; the covariance of 100,000 x 512 0.63 s against 4.9-5.1 s."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(1, n), user_api="blas"):
        yield
