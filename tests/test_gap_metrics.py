"""Retrieval metrics on hand-made similarity matrices with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from diffgap_search.gap.metrics import retrieval_metrics, true_ranks


def test_identity_is_perfect() -> None:
    m = retrieval_metrics(np.eye(5))
    assert m == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0, "median_rank": 1.0, "mAP@10": 100.0}


def test_known_ranks() -> None:
    sim = np.array([[0.9, 0.1, 0.2], [0.8, 0.5, 0.1], [0.3, 0.7, 0.6]])
    assert true_ranks(sim).tolist() == [1, 2, 2]
    m = retrieval_metrics(sim)
    assert m["R@1"] == pytest.approx(100 / 3)
    assert m["R@5"] == 100.0
    assert m["median_rank"] == 2.0
    assert m["mAP@10"] == pytest.approx(100 * (1 + 0.5 + 0.5) / 3)


def test_ties_count_against_the_truth() -> None:
    assert true_ranks(np.zeros((4, 4))).tolist() == [4, 4, 4, 4]


def test_rank_beyond_ten_scores_zero_ap() -> None:
    n = 12
    sim = np.eye(n)
    sim[0] = np.arange(n, 0, -1) / n  # query 0: the truth (column 0) is the best ...
    sim[0, 0] = -1.0  # ... until it is the worst: rank 12
    ranks = true_ranks(sim)
    assert ranks[0] == 12 and (ranks[1:] == 1).all()
    m = retrieval_metrics(sim)
    assert m["R@10"] == pytest.approx(100 * 11 / 12)
    assert m["mAP@10"] == pytest.approx(100 * 11 / 12)
    assert m["median_rank"] == 1.0


def test_more_items_than_queries() -> None:
    sim = np.array([[0.5, 0.9, 0.1, 0.2], [0.0, 0.4, 0.3, 0.8]])  # query 0: rank 2; query 1: rank 2
    assert true_ranks(sim).tolist() == [2, 2]
    with pytest.raises(ValueError):
        true_ranks(sim.T)
