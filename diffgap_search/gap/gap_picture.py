"""The modality gap as numbers to draw (``dgsearch eval --plot``): where paired embeddings sit before and after
the bridge, and how true pairs score against random ones.

For one pair set ``(a, b)`` (audio and text, or audio and video) of L2-normalised test rows ``xa, xb (N, D)``,
row i of one paired with row i of the other:

- ``before``: a 2-D PCA (``diffgap_search.projection``) fitted on ``xa`` and ``xb`` together, each side's rows
  in it (raw embeddings: two clouds apart, the gap);
- ``after``: the same with ``xb`` replaced by its bridged counterparts ``bridge(xb, b -> a)`` (the query side
  carried across: the clouds should meet);
- ``cosines``: per pair, the cosine of the true partner (row i with row i) and of a random partner (row i with
  row ``perm[i]``, a seeded permutation moving every row to another clip), before and after.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..projection import fit_pca
from .bridge import Bridge

MAX_POINTS = 2000  # pairs drawn at most (the first, in row order): a picture, not a measurement


def random_partners(groups: np.ndarray, seed: int = 0) -> np.ndarray:
    """``(N,) int64`` a seeded permutation sending each row to a row of another group where possible
    (``groups (N,)`` int codes; a row whose only choices share its group keeps a same-group partner)."""
    n = len(groups)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    for _ in range(32):  # swap away the rows that landed in their own group
        same = np.flatnonzero(groups[perm] == groups)
        if not len(same) or n < 2:
            break
        for i, j in zip(same.tolist(), rng.integers(0, n, size=len(same)).tolist()):
            perm[i], perm[j] = perm[j], perm[i]
    return perm.astype(np.int64)


def gap_picture(xa: np.ndarray, xb: np.ndarray, groups: np.ndarray, bridge: Bridge, a: str, b: str,
                seed: int = 0) -> dict[str, Any]:
    """See the module docstring: ``{"pair_set", "a", "b", "before": {"a": (n, 2), "b": (n, 2)}, "after": {...},
    "cosines": {"before": {"true": (n,), "random": (n,)}, "after": {...}}}`` (float32 arrays), ``n`` ≤
    :data:`MAX_POINTS`; ``xa, xb (N, D)`` unit rows, ``groups (N,)`` clip codes."""
    xa, xb = np.asarray(xa, np.float32)[:MAX_POINTS], np.asarray(xb, np.float32)[:MAX_POINTS]
    codes = np.asarray(groups)[:MAX_POINTS]
    bridged = bridge.apply(xb, b, a)
    perm = random_partners(codes, seed)
    out: dict[str, Any] = {"pair_set": f"{a}-{b}", "a": a, "b": b}
    for name, other in (("before", xb), ("after", bridged)):
        basis = fit_pca([xa, other])
        out[name] = {"a": basis.project(xa), "b": basis.project(other)}
        out.setdefault("cosines", {})[name] = {"true": np.einsum("ij,ij->i", xa, other).astype(np.float32),
                                               "random": np.einsum("ij,ij->i", xa, other[perm]).astype(np.float32)}
    return out
