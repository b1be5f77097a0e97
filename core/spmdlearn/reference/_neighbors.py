"""Radius neighbourhoods: the reference kernel behind DBSCAN (and radius queries)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ["radius_adjacency", "pairwise_distances", "topk_select", "METRICS", "scipy_metric"]

#: scikit-learn metric names spmdlearn computes, and SciPy's name for each.
METRICS = {"euclidean": "euclidean", "l2": "euclidean", "manhattan": "cityblock",
           "cityblock": "cityblock", "l1": "cityblock", "chebyshev": "chebyshev",
           "infinity": "chebyshev", "minkowski": "minkowski", "cosine": "cosine"}


def scipy_metric(metric: str, p):
    """SciPy's metric name and keyword arguments for a scikit-learn metric (p for minkowski)."""
    name = METRICS[metric]
    if name == "minkowski":
        p = 2 if p is None else p
        if p == 2:
            return "euclidean", {}
        if p == 1:
            return "cityblock", {}
        if np.isinf(p):
            return "chebyshev", {}
        return "minkowski", {"p": p}
    return name, {}


def radius_adjacency(X: np.ndarray, Y: np.ndarray, eps: float, metric: str = "euclidean",
                     p=None) -> np.ndarray:
    """``dist(X[i], Y[j]) <= eps`` for every pair: a boolean ``(n_x, n_y)`` matrix.

    Distances are computed directly from coordinate differences (as scikit-learn's trees do),
    not with the ``||x||^2 - 2 x.y + ||y||^2`` expansion, so boundary cases fall the same way.
    """
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return np.zeros((X.shape[0], Y.shape[0]), dtype=bool)
    name, kwargs = scipy_metric(metric, p)
    return cdist(np.asarray(X, np.float64), np.asarray(Y, np.float64), name, **kwargs) <= eps


def pairwise_distances(X: np.ndarray, Y: np.ndarray, metric: str = "euclidean", p=None):
    """Distances ``(n_x, n_y)`` between the rows of ``X`` and ``Y``, from coordinate differences."""
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return np.zeros((X.shape[0], Y.shape[0]))
    name, kwargs = scipy_metric(metric, p)
    return cdist(np.asarray(X, np.float64), np.asarray(Y, np.float64), name, **kwargs)


def topk_select(distances: np.ndarray, indices: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest candidates of each row: by distance, ties by lower index.

    The top-k merge contract: ``select(concat(A, B))`` of two candidate lists equals the select
    of their union, whatever their order or split, so merging per-rank lists in any order
    gives the same neighbours.

    Parameters
    ----------
    distances, indices : ndarray of shape (n_rows, n_candidates)
        Candidates (global row indices); ``n_candidates >= k``.

    Returns
    -------
    positions : ndarray of shape (n_rows, k), int
    """
    order = np.lexsort((indices, distances), axis=-1)
    return order[:, :k]
