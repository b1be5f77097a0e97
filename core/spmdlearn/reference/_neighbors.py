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
    distances = np.asarray(distances)
    indices = np.asarray(indices)
    n_rows, m = distances.shape
    if m <= k:
        return np.lexsort((indices, distances), axis=-1)[:, :k]
    # Partition first (O(m)), then order the k survivors; rows whose k-th distance is tied
    # with a candidate left out are ordered in full, so that the lower index wins.
    part = np.argpartition(distances, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(distances, part, axis=1).max(axis=1)
    tied = np.count_nonzero(distances <= kth[:, None], axis=1) > k
    sub_d = np.take_along_axis(distances, part, axis=1)
    sub_i = np.take_along_axis(indices, part, axis=1)
    positions = np.take_along_axis(part, np.lexsort((sub_i, sub_d), axis=-1), axis=1)
    if tied.any():
        rows = np.flatnonzero(tied)
        positions[rows] = np.lexsort((indices[rows], distances[rows]), axis=-1)[:, :k]
    return positions
