"""Score fusion for DiffGAP retrieval.

For a query q of modality A and gallery items g of modality B, with ``bridge(., A -> B)`` DiffGAP:

    score(q, g) = w_raw * cos(q, g)                              raw query vs raw items
                + w_query_bridged * cos(bridge(q, A->B), g)      bridged query vs raw items
                + w_item_bridged * cos(q, bridge(g, B->A))       raw query vs items bridged into A

A weighted sum of cosines (not of ranks) so each term is one inner-product search over a FAISS index
(raw, or the stored bridged vectors) and candidates from any index can be re-scored exactly from the
stored vectors. Weights are non-negative and sum to 1; ``tune_fusion`` picks them on validation pairs
(R@1, then mAP@10) from a grid, never on test pairs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import product

import numpy as np

from .metrics import retrieval_metrics


@dataclass(frozen=True)
class FusionConfig:
    """Weights of the three cosine terms.

    ``train_bridge`` tunes them per query direction on its validation split and stores them in the
    bridge (``Bridge.fusion_for``); these defaults are only a fallback, taken from the synthetic
    benchmark's validation split (where it chose 0 / 0.3-0.4 / 0.6-0.7).
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


def fuse(raw: np.ndarray, query_bridged: np.ndarray, item_bridged: np.ndarray, cfg: FusionConfig) -> np.ndarray:
    """Combine three ``(Q, N)`` cosine matrices into one ``(Q, N) float32`` score matrix with ``cfg``'s weights."""
    total = cfg.w_raw + cfg.w_query_bridged + cfg.w_item_bridged
    out = (cfg.w_raw * raw + cfg.w_query_bridged * query_bridged + cfg.w_item_bridged * item_bridged) / total
    return out.astype(np.float32)


def tune_fusion(
    raw: np.ndarray, query_bridged: np.ndarray, item_bridged: np.ndarray, step: float = 0.1
) -> FusionConfig:
    """Grid-search the weights (multiples of ``step`` summing to 1) on validation ``(Q, N)`` cosine matrices."""
    n = round(1 / step)
    best: tuple[tuple[float, float], FusionConfig] | None = None
    for i, j in product(range(n + 1), repeat=2):
        if i + j > n:
            continue
        cfg = FusionConfig(w_raw=i / n, w_query_bridged=j / n, w_item_bridged=(n - i - j) / n)
        m = retrieval_metrics(fuse(raw, query_bridged, item_bridged, cfg))
        key = (m["R@1"], m["mAP@10"])
        if best is None or key > best[0]:
            best = (key, cfg)
    assert best is not None
    return best[1]
