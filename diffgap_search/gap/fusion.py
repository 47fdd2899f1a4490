"""Score fusion for DiffGAP retrieval: the score ``dgsearch query`` computes, and its weights' tuning.

For a query q of modality A and gallery items g of modality B, with ``bridge(., A -> B)`` DiffGAP:

    score(q, g) = w_raw * cos(q, g)                              raw query vs raw items
                + w_query_bridged * cos(bridge(q, A->B), g)      bridged query vs raw items
                + w_item_bridged * cos(q, bridge(g, B->A))       raw query vs items bridged into A

divided by the sum of the weights of the terms served. A weighted sum of cosines (not of ranks) so each
term is one inner-product search over a FAISS index (raw, or the stored bridged vectors) and candidates
from any index can be re-scored exactly from the stored vectors.

The raw term is served between text and audio (CLAP embeds both into one space) and between video and
audio when the video encoder is CAVP (one space for video and sound, ``TrainConfig.shared_spaces``); CLIP
frames' space is unrelated to audio's, so ``search.Searcher`` drops the raw term for CLIP video queries and
tuning never gives it weight there (``raw_term_served``). Scores are computed as the searcher does: for each
term, the maximum over the query's vectors (its windows); then the weighted mean per item vector
(window); then, per clip, the maximum over its windows (``protocol.Task``). Weights are non-negative and
sum to 1; ``tune_fusion`` picks them on validation pairs (R@1, then mAP@10) from a grid, never on test pairs.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from itertools import product

import numpy as np

from .protocol import Task


THREADED_SIZE = 1 << 16  # unit-score entries from which the grid's points are scored on several threads


@dataclass(frozen=True)
class FusionConfig:
    """Weights of the three cosine terms.

    ``train_bridge`` tunes them per query direction on its validation groups and stores them in the
    bridge (``Bridge.fusion_for``); these defaults are only a fallback.
    """

    w_raw: float = 0.0
    w_query_bridged: float = 0.4
    w_item_bridged: float = 0.6

    def __post_init__(self) -> None:
        ws = (self.w_raw, self.w_query_bridged, self.w_item_bridged)
        if min(ws) < 0 or sum(ws) <= 0:
            raise ValueError(f"fusion weights must be >= 0 with a positive sum, got {ws}")

    def to_dict(self) -> dict[str, float]:
        """JSON-ready weights."""
        return asdict(self)


def raw_term_served(query_modality: str, item_modality: str, shared_space: bool = False,
                    separate_space: bool = False) -> bool:
    """Whether the raw cosine is a term of the served score: within CLAP's shared text-audio space, and
    between any two modalities whose encoder embeds both into one space (``shared_space``: CAVP's video and
    audio towers, ``TrainConfig.shared_spaces``); never where the two sides' encoders are unrelated
    (``separate_space``: words from a text encoder of their own, ``TrainConfig.separate_spaces``)."""
    if separate_space:
        return False
    return shared_space or {query_modality, item_modality} == {"text", "audio"}


def fuse(
    raw: np.ndarray | None, query_bridged: np.ndarray, item_bridged: np.ndarray, cfg: FusionConfig,
    out: np.ndarray | None = None, scratch: np.ndarray | None = None,
) -> np.ndarray:
    """Weighted mean of ``(Q, N)`` cosine matrices -> ``(Q, N) float32``; ``raw=None`` drops the raw term
    (weight and all), as the searcher does for video; where only that dropped term had weight the bridged query
    serves alone, as ``search/terms.py`` does. ``out`` and
    ``scratch``: ``(Q, N) float32`` buffers to compute in (a tuning loop's), the same numbers either way."""
    w_raw = cfg.w_raw if raw is not None else 0.0
    total = w_raw + cfg.w_query_bridged + cfg.w_item_bridged
    if total <= 0:  # only the dropped raw term had weight (a FusionConfig's sum is positive)
        cfg, total = FusionConfig(0.0, 1.0, 0.0), 1.0
    out = np.multiply(query_bridged, cfg.w_query_bridged / total, dtype=np.float32, out=out)
    out += np.multiply(item_bridged, cfg.w_item_bridged / total, dtype=np.float32, out=scratch)
    if w_raw:
        out += np.multiply(raw, w_raw / total, dtype=np.float32, out=scratch)
    return out


def fused_unit_scores(
    task: Task, raw: np.ndarray, query_bridged: np.ndarray, item_bridged: np.ndarray, cfg: FusionConfig
) -> np.ndarray:
    """The served fused score of ``task``'s units: three ``(V_q, V_i)`` term matrices -> ``(U_q, U_i)``."""
    return task.items.pool(fuse(*query_pooled_terms(task, raw, query_bridged, item_bridged), cfg), axis=1)


def query_pooled_terms(
    task: Task, raw: np.ndarray, query_bridged: np.ndarray, item_bridged: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The three ``(V_q, V_i)`` terms pooled over each query unit's vectors -> ``(U_q, V_i)`` each, the raw one
    ``None`` where it is not served: what ``fuse`` takes, before the items are pooled."""
    pq = task.queries.pool
    served = raw_term_served(task.queries.modality, task.items.modality, task.shared_space, task.separate_space)
    return pq(raw, 0) if served else None, pq(query_bridged, 0), pq(item_bridged, 0)


def tune_fusion(
    task: Task, raw: np.ndarray, query_bridged: np.ndarray, item_bridged: np.ndarray, step: float = 0.1
) -> FusionConfig:
    """Grid-search the weights (multiples of ``step`` summing to 1) on validation ``(V_q, V_i)`` cosine
    matrices of ``task``, by the served score's R@1 then mAP@10; ties go to the first grid point (least
    raw weight, then least query-bridged weight). The raw weight stays 0 where the raw term is not served.

    Each grid point's figures are those of ``task.metrics(fused_unit_scores(...))``, bit for bit: the terms
    are pooled over the query's vectors once, each point's fused score is computed in reused buffers and
    ranked only as far as R@1 and mAP@10 need (``Task.cutoff_metrics``), and the points are scored on
    ``ranking_threads()`` threads from ``THREADED_SIZE`` entries on (numpy releases the GIL; the choice does not
    depend on the thread count)."""
    n = round(1 / step)
    p_raw, p_query, p_items = query_pooled_terms(task, raw, query_bridged, item_bridged)
    allow_raw = p_raw is not None
    if not all(np.isfinite(t).all() for t in (p_raw, p_query, p_items) if t is not None):
        raise ValueError("retrieval scores contain NaN or inf")
    grid = [FusionConfig(w_raw=i / n, w_query_bridged=j / n, w_item_bridged=(n - i - j) / n)
            for i, j in product(range(n + 1 if allow_raw else 1), range(n + 1)) if i + j <= n]
    _ = task.relevance  # computed once, before any thread needs it
    local = threading.local()

    def score(cfg: FusionConfig) -> tuple[float, float]:
        if not hasattr(local, "buffers"):
            local.buffers = (np.empty(p_query.shape, np.float32), np.empty(p_query.shape, np.float32))
        m = task.cutoff_metrics(task.items.pool(fuse(p_raw, p_query, p_items, cfg, *local.buffers), axis=1))
        return m["R@1"], m["mAP@10"]

    threads = min(len(grid), ranking_threads()) if p_query.size >= THREADED_SIZE else 1
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            keys = list(pool.map(score, grid))
    else:
        keys = [score(cfg) for cfg in grid]
    return grid[max(range(len(grid)), key=lambda k: (keys[k], -k))]


def ranking_threads() -> int:
    """Threads for the tuning grids: torch's intra-op thread count where torch is loaded (training sets it to
    the idle cores, ``threads.torch_threads``), else 1."""
    torch = sys.modules.get("torch")
    return max(1, int(torch.get_num_threads())) if torch is not None else 1
