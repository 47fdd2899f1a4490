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
    """The PCA basis of the rows of every ``(n, D) float32`` chunk (streamed: memory ``D x D`` at most).

    Exact either way, and cheap either way: while the rows number at most ``D`` they are kept and the axes come
    from their ``N x N`` Gram matrix (165 one-shots in 512 dimensions: 0.0024 s on one thread, where the full
    ``D x D`` eigendecomposition took 0.03 s, 0.3-1.8 s on two threads sharing a busy core); beyond, from the
    ``D x D`` covariance, of which only the two largest eigenpairs are computed (LAPACK's ``syevr`` by index).

    Each axis is signed so its largest-magnitude component is positive (a deterministic picture). Fewer than
    two distinct rows give axes along the first coordinates. Raises ValueError for no rows at all. Callers on a
    busy machine cap numpy's BLAS threads around it (``threads.blas_threads``; ``store/library_map.py``)."""
    total, s1, s2, rows = 0, None, None, []
    for chunk in chunks:
        x = np.asarray(chunk, dtype=np.float64)
        if not len(x):
            continue
        x = x.reshape(len(x), -1)
        s1 = x.sum(0) if s1 is None else s1 + x.sum(0)
        total += len(x)
        if s2 is None:
            rows.append(x)
            if total > x.shape[1]:  # more rows than dimensions: the covariance is the smaller matrix
                kept = np.concatenate(rows)
                s2, rows = kept.T @ kept, []
        else:
            s2 = s2 + x.T @ x
    if s1 is None or total == 0:
        raise ValueError("no vectors to project")
    mean = s1 / total
    dim = mean.shape[0]
    if s2 is None:
        axes = _axes_from_rows(np.concatenate(rows) - mean)
    else:
        axes = _top_two_eigenvectors(s2 / total - np.outer(mean, mean))
    for row in axes:
        if row[np.argmax(np.abs(row))] < 0:
            row *= -1
    if dim == 1:
        axes = np.vstack([axes[:1], np.zeros((1, 1))])
    return Basis(mean.astype(np.float32), axes.astype(np.float32))


def _top_two_eigenvectors(cov: np.ndarray) -> np.ndarray:
    """``cov (D, D) float64`` symmetric -> ``(min(D, 2), D) float64``: its eigenvectors of the largest
    eigenvalues, largest first."""
    from scipy.linalg import eigh  # librosa's dependency: no new one

    dim = cov.shape[0]
    _, vecs = eigh(cov, subset_by_index=[max(dim - 2, 0), dim - 1])  # ascending
    return vecs[:, ::-1].T.copy()


def _axes_from_rows(centred: np.ndarray) -> np.ndarray:
    """``centred (N, D) float64`` with ``N <= D`` -> ``(2, D) float64``: the two principal axes, from the
    ``N x N`` Gram matrix (its eigenvectors ``u`` give the axes ``centred.T @ u``); directions of zero variance
    (fewer than three distinct rows) are filled with unit coordinate vectors orthogonal to those found."""
    gram = centred @ centred.T
    vals, vecs = np.linalg.eigh(gram)  # ascending
    found = []
    floor = 1e-12 * max(float(vals[-1]), 0.0)
    for i in range(len(vals) - 1, max(len(vals) - 3, -1), -1):
        if vals[i] <= floor or vals[i] <= 0:
            break
        axis = centred.T @ vecs[:, i]
        found.append(axis / np.linalg.norm(axis))
    axes = list(found)
    for j in range(centred.shape[1]):  # complete with coordinate axes, orthogonalised (Gram-Schmidt)
        if len(axes) >= 2:
            break
        e = np.zeros(centred.shape[1])
        e[j] = 1.0
        for a in axes:
            e -= (a @ e) * a
        norm = np.linalg.norm(e)
        if norm > 1e-6:
            axes.append(e / norm)
    return np.asarray(axes[:2], dtype=np.float64)


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
