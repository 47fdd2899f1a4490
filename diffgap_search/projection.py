"""Two-dimensional projections of embeddings, for pictures: the library map (``store/library_map.py``) and the
gap plots of ``dgsearch eval --plot``.

**PCA by default.** A linear projection onto the two directions of largest variance: exact, deterministic
(the sign of each axis is fixed), cheap at any size (one ``D x D`` covariance accumulated over chunks; 10⁶ x
512 float32 is about a second), and *incremental*: the basis (mean and two axes) is stored, so windows indexed
later are placed by the same basis without moving the points already drawn. **UMAP** (``umap-learn``, not a
dependency) separates clusters better but is stochastic, slow beyond ~10⁵ points and has no stable basis: a
new window moves every point. It is used only where it is installed and asked for (``method="umap"``, or
``"auto"`` with it importable and at most :data:`UMAP_MAX` points).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

UMAP_MAX = 200_000  # beyond this, "auto" keeps PCA even where umap-learn is installed (minutes, memory)


@dataclass(frozen=True)
class Basis:
    """A PCA basis: ``mean (D,) float32`` and ``axes (2, D) float32`` (unit rows, orthogonal)."""

    mean: np.ndarray
    axes: np.ndarray

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """``vectors (N, D)`` -> ``(N, 2) float32`` coordinates in this basis."""
        x = np.asarray(vectors, dtype=np.float32).reshape(-1, self.mean.shape[0])
        return ((x - self.mean) @ self.axes.T).astype(np.float32)


def fit_pca(chunks: Iterable[np.ndarray]) -> Basis:
    """The PCA basis of the rows of every ``(n, D) float32`` chunk (streamed: memory ``D x D``).

    Each axis is signed so its largest-magnitude component is positive (a deterministic picture). Fewer than
    two distinct rows give axes along the first coordinates. Raises ValueError for no rows at all."""
    total, s1, s2 = 0, None, None
    for chunk in chunks:
        x = np.asarray(chunk, dtype=np.float64)
        if not len(x):
            continue
        s1 = x.sum(0) if s1 is None else s1 + x.sum(0)
        s2 = x.T @ x if s2 is None else s2 + x.T @ x
        total += len(x)
    if s1 is None or s2 is None or total == 0:
        raise ValueError("no vectors to project")
    mean = s1 / total
    cov = s2 / total - np.outer(mean, mean)
    vals, vecs = np.linalg.eigh(cov)  # ascending
    axes = vecs[:, ::-1][:, :2].T.copy()
    if axes.shape[0] < 2:  # D == 1
        axes = np.vstack([axes, np.zeros_like(axes)])
    for row in axes:
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1
    return Basis(mean.astype(np.float32), axes.astype(np.float32))


def project_2d(vectors: np.ndarray, method: str = "pca", seed: int = 0) -> tuple[np.ndarray, str]:
    """``vectors (N, D)`` -> ``(coordinates (N, 2) float32, method used)``: ``"pca"``, ``"umap"`` (ImportError
    where umap-learn is absent) or ``"auto"`` (UMAP where installed and N ≤ :data:`UMAP_MAX`, else PCA)."""
    x = np.asarray(vectors, dtype=np.float32)
    if method == "auto":
        method = "umap" if umap_available() and 3 <= len(x) <= UMAP_MAX else "pca"
    if method == "umap":
        import umap  # type: ignore[import-not-found]

        reducer = umap.UMAP(n_components=2, random_state=seed, n_neighbors=min(15, max(2, len(x) - 1)))
        return np.asarray(reducer.fit_transform(x), dtype=np.float32), "umap"
    if method != "pca":
        raise ValueError(f"unknown projection {method!r}: pca, umap or auto")
    return fit_pca([x]).project(x), "pca"


def umap_available() -> bool:
    """Whether ``umap-learn`` can be imported (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("umap") is not None
