"""The ranking fast paths equal the protocol's definition, bit for bit: ``ranks_of`` (one comparison pass per
relevant item, or the partition shortcut under a cutoff) against ranks counted one query at a time in plain
Python, and ``tune_fusion``'s buffered, cutoff-ranked grid against the plain loop it replaced (every grid
point's fused score pooled and ranked by ``Task.metrics``). Scores are rounded to a few levels so ties between
relevant items, and between relevant and irrelevant ones, are common."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest

from diffgap_search.gap import fusion
from diffgap_search.gap.fusion import FusionConfig, fused_unit_scores, raw_term_served, tune_fusion
from diffgap_search.gap.metrics import AP_CUTOFF, cutoff_metrics, ranks_of, relevance, relevant_ranks, retrieval_metrics
from diffgap_search.gap.protocol import Task, tasks_for


def _ranks_by_definition(sim: np.ndarray, ql: np.ndarray, il: np.ndarray) -> np.ndarray:
    """The j-th relevant score (best first) ranks ``j + #{irrelevant items scoring >= it}``; padding 0."""
    rows = []
    for i in range(len(ql)):
        rel = sorted((float(sim[i, k]) for k in range(len(il)) if il[k] == ql[i]), reverse=True)
        wrong = [float(sim[i, k]) for k in range(len(il)) if il[k] != ql[i]]
        rows.append([j + 1 + sum(w >= s for w in wrong) for j, s in enumerate(rel)])
    out = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _case(seed: int, q: int, n_groups: int, per_group: int, levels: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    il = np.repeat(np.arange(n_groups), per_group)
    rng.shuffle(il)
    il[: n_groups] = np.arange(n_groups)  # every group has an item; counts then vary
    ql = rng.integers(0, n_groups, q)
    sim = (np.round(rng.random((q, len(il))) * levels) / levels).astype(np.float32)
    return sim, ql, il


@pytest.mark.parametrize("seed,q,n_groups,per_group,levels", [
    (0, 40, 30, 1, 6), (1, 40, 12, 5, 4), (2, 25, 8, 7, 3), (3, 60, 40, 3, 50), (4, 30, 5, 12, 2),
])
def test_ranks_equal_the_definition_with_ties(seed: int, q: int, n_groups: int, per_group: int, levels: int) -> None:
    sim, ql, il = _case(seed, q, n_groups, per_group, levels)
    expected = _ranks_by_definition(sim, ql, il)
    ranks, n_rel = relevant_ranks(sim, ql, il)
    assert ranks.tolist() == expected.tolist()
    assert n_rel.tolist() == [int((il == g).sum()) for g in ql]
    cut = ranks_of(sim, relevance(ql, il), cutoff=AP_CUTOFF)
    beyond = np.where(expected > AP_CUTOFF, AP_CUTOFF + 1, expected)
    assert cut.tolist() == beyond.tolist()
    full = relevant_ranks(sim, ql, il)
    assert cutoff_metrics(cut, n_rel) == cutoff_metrics(*full)


def test_the_partition_shortcut_is_taken_and_agrees() -> None:
    """5 relevant items among 200: ranked from the 15 best scores; a relevant score tied with the lowest of
    them is beyond the cutoff, as the definition says."""
    sim, ql, il = _case(7, 50, 40, 5, 8)
    assert relevance(ql, il).columns.shape[1] >= 3 and sim.shape[1] > AP_CUTOFF + 5
    expected = _ranks_by_definition(sim, ql, il)
    cut = ranks_of(sim, relevance(ql, il), cutoff=AP_CUTOFF)
    assert cut.tolist() == np.where(expected > AP_CUTOFF, AP_CUTOFF + 1, expected).tolist()
    assert ((expected >= 1) & (expected <= AP_CUTOFF)).any() and (expected > AP_CUTOFF).any()


def _old_tune(task: Task, raw: np.ndarray, qb: np.ndarray, ib: np.ndarray, step: float) -> FusionConfig:
    """The grid search as it was written before its fast path: every point fused, pooled and ranked in full."""
    n = round(1 / step)
    allow_raw = raw_term_served(task.queries.modality, task.items.modality, task.shared_space)
    best = None
    for i, j in product(range(n + 1 if allow_raw else 1), range(n + 1)):
        if i + j > n:
            continue
        cfg = FusionConfig(w_raw=i / n, w_query_bridged=j / n, w_item_bridged=(n - i - j) / n)
        m = task.metrics(fused_unit_scores(task, raw, qb, ib, cfg))
        if best is None or (m["R@1"], m["mAP@10"]) > best[0]:
            best = ((m["R@1"], m["mAP@10"]), cfg)
    assert best is not None
    return best[1]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("other", ["text", "video"])
def test_tune_fusion_chooses_what_the_plain_loop_chose(seed: int, other: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clips with several windows (pooled by their best), captions or a video per clip, noisy terms: the weights
    equal the plain loop's on one thread and on three (the grid points scored in any order)."""
    rng = np.random.default_rng(seed)
    clips, dim = 30, 16
    windows = rng.integers(1, 4, clips)
    codes = np.repeat(np.arange(clips), windows * (5 if other == "text" else 1))
    audio = rng.standard_normal((len(codes), dim)).astype(np.float32)
    if other == "text":
        rows = np.concatenate([np.repeat(np.arange(w), 5) for w in windows])  # each caption paired with every window
        audio = np.concatenate([rng.standard_normal((w, dim)) for w in windows]).astype(np.float32)
        audio = audio[np.cumsum(np.r_[0, windows[:-1]]).repeat(windows * 5) + rows]
    x_b = rng.standard_normal((len(codes), dim)).astype(np.float32)
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    x_b /= np.linalg.norm(x_b, axis=1, keepdims=True)
    tasks = tasks_for("audio", other, audio, x_b, codes, shared_space=seed % 2 == 1)
    assert tasks[0].items.n_units == clips < len(tasks[0].items.vectors)  # clips of several windows
    assert tasks[0].queries.n_units == (len(codes) if other == "text" else clips)  # captions vary per row
    for task in tasks:
        q, g = task.queries.vectors, task.items.vectors
        noise = rng.standard_normal((3, len(q), len(g))).astype(np.float32) * 0.3
        raw = np.round(q @ g.T + noise[0], 2)  # rounded: ties between clips
        qb, ib = np.round(q @ g.T + noise[1], 2), np.round(q @ g.T + noise[2], 2)
        for step, threads in product((0.25, 0.1), (1, 3)):
            monkeypatch.setattr(fusion, "ranking_threads", lambda: threads)
            monkeypatch.setattr(fusion, "THREADED_SIZE", 0)
            assert tune_fusion(task, raw, qb, ib, step) == _old_tune(task, raw, qb, ib, step)
        cfg = FusionConfig(w_raw=0.2, w_query_bridged=0.3, w_item_bridged=0.5)
        units = fused_unit_scores(task, raw, qb, ib, cfg)
        full = task.metrics(units)
        assert full == retrieval_metrics(units, task.queries.labels, task.items.labels)  # the cached relevance
        assert task.cutoff_metrics(units) == {k: v for k, v in full.items() if k != "median_rank"}


def test_non_finite_terms_are_refused_before_tuning() -> None:
    task = tasks_for("audio", "text", np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), np.arange(3))[0]
    ok = np.eye(3, dtype=np.float32)
    bad = ok.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        tune_fusion(task, bad, ok, ok)


@pytest.mark.parametrize("threads", [1, 4])
def test_a_tie_over_the_whole_grid_goes_to_its_first_point(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Perfect terms score R@1 = mAP@10 = 100 at every grid point: the first point (no raw weight, no
    query-bridged weight) is kept, whatever the threads' finishing order."""
    monkeypatch.setattr(fusion, "ranking_threads", lambda: threads)
    monkeypatch.setattr(fusion, "THREADED_SIZE", 0)
    x = np.eye(6, dtype=np.float32)
    task = tasks_for("audio", "text", x, x, np.arange(6))[0]
    assert tune_fusion(task, x, x, x) == FusionConfig(w_raw=0.0, w_query_bridged=0.0, w_item_bridged=1.0)
