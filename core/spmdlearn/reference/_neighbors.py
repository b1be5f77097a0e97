"""Radius neighbourhoods: the reference kernel behind DBSCAN (and radius queries)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ["radius_adjacency", "METRICS", "scipy_metric"]

#: scikit-learn metric names spmdlearn computes, and SciPy's name for each.
METRICS = {"euclidean": "euclidean", "l2": "euclidean", "manhattan": "cityblock",
           "cityblock": "cityblock", "l1": "cityblock", "chebyshev": "chebyshev",
           "infinity": "chebyshev", "minkowski": "minkowski"}


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
