"""k-means: the reference kernels and the Lloyd-step reduction contract.

Distances use scikit-learn's formula (``||c||^2 - 2 x.c`` for the assignment, ``||x - c||^2``
for the inertia), so that decisions fall the same way as scikit-learn's on the gathered data.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.metrics.pairwise import euclidean_distances

from ..contract import ReductionContract

__all__ = ["LloydPartial", "lloyd_local", "lloyd_combine", "LLOYD", "kmeans_inertia",
           "sq_distances", "farthest_rows"]


class LloydPartial(NamedTuple):
    """What one Lloyd step needs from one shard, fused into one reduction.

    Reduction contract
    ------------------
    Local
        :func:`lloyd_local`: assign each row to its nearest center, then per-cluster weighted
        sums and weights, the weighted inertia of that assignment and how many labels changed.
    Combine
        :func:`lloyd_combine`: element-wise sums.
    Finalize
        The estimator: centers ``sums * (1 / weights)`` (scikit-learn's ``_average_centers``),
        after relocating empty clusters.
    Identity
        Zeros.
    """

    sums: np.ndarray  #: (n_clusters, n_features) weighted sums of the rows of each cluster
    weights: np.ndarray  #: (n_clusters,) sum of weights of each cluster
    inertia: float  #: sum of w * squared distance to the assigned (old) center
    n_changed: float  #: labels different from ``labels_old``


def sq_distances(X: np.ndarray, centers: np.ndarray, x_squared_norms=None) -> np.ndarray:
    """Squared euclidean distances ``(n_samples, n_centers)``, scikit-learn's computation."""
    if X.shape[0] == 0:
        return np.zeros((0, centers.shape[0]), dtype=X.dtype)
    return euclidean_distances(X, centers, X_norm_squared=None if x_squared_norms is None
                               else x_squared_norms.reshape(-1, 1), squared=True)


def lloyd_local(X, sample_weight, centers, labels_old):
    """One Lloyd E-step on one shard, and the M-step's sufficient statistics.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,)
    centers : ndarray of shape (n_clusters, n_features)
    labels_old : ndarray of shape (n_samples,), int
        The previous labels (-1 before the first step).

    Returns
    -------
    labels : ndarray of shape (n_samples,), int32
        Nearest center (lowest index among ties), by ``||c||^2 - 2 x.c`` as scikit-learn.
    partial : LloydPartial
    """
    k, d = centers.shape
    if X.shape[0] == 0:
        return np.zeros(0, np.int32), LloydPartial(np.zeros((k, d)), np.zeros(k), 0.0, 0.0)
    centers = np.asarray(centers, dtype=X.dtype)
    c_norms = np.einsum("ij,ij->i", centers, centers)
    scores = c_norms[None, :] - 2.0 * (X @ centers.T)
    labels = np.argmin(scores, axis=1).astype(np.int32)
    w = np.asarray(sample_weight, dtype=np.float64)
    Xw = np.asarray(X, np.float64) * w[:, None]
    # Per-column weighted bincounts: the cluster sums without a Python loop over rows.
    sums = np.stack([np.bincount(labels, weights=Xw[:, j], minlength=k) for j in range(d)], axis=1)
    weights = np.bincount(labels, weights=w, minlength=k).astype(np.float64)
    x_norms = np.einsum("ij,ij->i", X, X).astype(np.float64)
    nearest = np.maximum(x_norms + scores[np.arange(len(labels)), labels], 0.0)
    return labels, LloydPartial(sums, weights, float(w @ nearest),
                                float(np.count_nonzero(labels != labels_old)))


def lloyd_combine(a: LloydPartial, b: LloydPartial) -> LloydPartial:
    return LloydPartial(a.sums + b.sums, a.weights + b.weights, a.inertia + b.inertia,
                        a.n_changed + b.n_changed)


#: The Lloyd step; its kernel also returns the labels of this rank's rows (``with_rows``).
LLOYD = ReductionContract("lloyd", lambda X, w, c, lo: lloyd_local(X, w, c, lo)[1],
                          lloyd_combine, lambda p: p, row_args=(0, 1, 3),
                          kernel="kmeans_lloyd_local", with_rows=True)


def kmeans_inertia(X, sample_weight, centers, labels) -> float:
    """``sum_i w_i ||x_i - centers[labels_i]||^2`` for one shard (scikit-learn's ``_inertia``)."""
    if X.shape[0] == 0:
        return 0.0
    diff = np.asarray(X, np.float64) - np.asarray(centers, np.float64)[labels]
    return float(np.asarray(sample_weight, np.float64) @ np.einsum("ij,ij->i", diff, diff))


def farthest_rows(X, centers, labels, n, offset):
    """This shard's ``n`` rows farthest from their centers: ``(distances, global indices)``.

    Sorted by decreasing distance, ties by lower global index; used to relocate empty clusters.
    """
    if X.shape[0] == 0 or n == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    diff = np.asarray(X, np.float64) - np.asarray(centers, np.float64)[labels]
    dist = np.einsum("ij,ij->i", diff, diff)
    order = np.lexsort((np.arange(len(dist)), -dist))[:n]
    return dist[order], order.astype(np.int64) + offset
