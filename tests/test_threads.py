"""``threads.py``: the thread caps around small linear algebra, on the real thread pools (numpy's BLAS through
threadpoolctl, torch's intra-op pool)."""

from __future__ import annotations

import os

import numpy as np
import threadpoolctl
import torch

from diffgap_search.threads import blas_threads, idle_cores, torch_threads


def _blas() -> list[int]:
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


def test_blas_threads_caps_numpys_blas_inside_the_block_and_restores_it() -> None:
    np.ones((2, 2)) @ np.ones((2, 2))  # numpy's BLAS is loaded
    before = _blas()
    assert before, "numpy's BLAS is visible to threadpoolctl"
    with blas_threads(1):
        assert _blas() == [1] * len(before)
        with blas_threads(0):  # never below one
            assert _blas() == [1] * len(before)
    assert _blas() == before


def test_torch_threads_caps_and_restores_and_idle_cores_stays_within_the_machine() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert 1 <= idle_cores(64) <= len(os.sched_getaffinity(0))
    assert idle_cores(1) == 1
