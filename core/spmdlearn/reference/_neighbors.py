"""Neighbour searches as fused per-block reductions: the reference kernels behind the
nearest-neighbour estimators and DBSCAN.

Every kernel here takes one block of query rows and one block of candidate rows and reduces their
distances at once (into a running top-k, weighted counts, a minimum label, or the pairs within a
radius), as scikit-learn's ``ArgKmin`` and ``RadiusNeighbors`` reductions do: the caller sizes the
blocks, and no kernel returns a distance matrix.

Distances are computed directly from coordinate differences (as scikit-learn's trees and
``cdist`` do), not with the ``||x||^2 - 2 x.y + ||y||^2`` expansion, so boundary cases
(``dist <= eps``, equal distances) fall the same way as in scikit-learn's brute force.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ["knn_merge", "radius_counts", "radius_min_label", "radius_neighbors_csr",
           "radius_label_union", "block_distances", "METRICS", "scipy_metric"]

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


def block_distances(X: np.ndarray, Y: np.ndarray, metric: str = "euclidean", p=None) -> np.ndarray:
    """Distances ``(n_x, n_y)`` between two blocks of rows, float64, from coordinate differences.

    A helper of the kernels below (not a kernel): callers size ``X`` and ``Y`` so that the block
    fits their memory budget.
    """
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return np.zeros((X.shape[0], Y.shape[0]))
    name, kwargs = scipy_metric(metric, p)
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if name != "cosine":
        return cdist(X, Y, name, **kwargs)
    # scikit-learn's cosine distance normalizes the rows and leaves a row of zeros zero, so
    # that a row of zeros is at distance 1 from every row (itself included); SciPy's is 0/0
    zero_x, zero_y = ~np.any(X != 0, axis=1), ~np.any(Y != 0, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        distances = cdist(X, Y, name)
    distances[zero_x[:, None] | zero_y[None, :]] = 1.0
    return distances


def knn_merge(X, Y, y_index, best_distances, best_indices, metric="euclidean", p=None,
              x_index=None):
    """Merge one block of candidate rows into the running k nearest neighbours of each query.

    The top-k merge contract: with ``best(S)`` the ``k`` smallest ``(distance, global index)``
    pairs of a candidate set ``S`` in lexicographic order, ``knn_merge`` returns
    ``best(best_so_far ∪ block)``. It is associative and commutative over blocks, so merging
    the blocks of all ranks in any order gives the same neighbours.

    Parameters
    ----------
    X : ndarray of shape (n_queries, n_features)
        A block of query rows (may be empty).
    Y : ndarray of shape (n_candidates, n_features)
        A block of candidate (training) rows (may be empty).
    y_index : ndarray of shape (n_candidates,), int64
        Global row index of each candidate.
    best_distances : ndarray of shape (n_queries, k), float64
        The running best, sorted increasingly per row; ``inf`` for an unfilled slot.
    best_indices : ndarray of shape (n_queries, k), int64
        Global indices of the running best; ``-1`` for an unfilled slot.
    metric : str, default="euclidean"
        A name from :data:`METRICS`.
    p : float, default=None
        Minkowski's power (``metric="minkowski"``).
    x_index : ndarray of shape (n_queries,), int64, default=None
        Global index of each query when the queries are training rows: a candidate with the
        query's own index is not its neighbour. None: no candidate is left out.

    Returns
    -------
    distances : ndarray of shape (n_queries, k), float64
        Sorted increasingly per row.
    indices : ndarray of shape (n_queries, k), int64
        Ties in distance go to the lower global index (unfilled slots, ``-1`` at ``inf``, sort
        before real candidates at ``inf``).

    Payload values of the neighbours (labels, targets) are looked up afterwards from the
    global indices, by position in their owner's rows.
    """
    best_distances = np.asarray(best_distances, np.float64)
    best_indices = np.asarray(best_indices, np.int64)
    k = best_distances.shape[1]
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return best_distances.copy(), best_indices.copy()
    y_index = np.asarray(y_index, np.int64)
    dist = block_distances(X, Y, metric, p)
    if x_index is not None:
        own = y_index[None, :] == np.asarray(x_index, np.int64)[:, None]
        # at +inf with its own index, the query itself never displaces an entry of the running
        # best (finite, or an unfilled slot (inf, -1)), which always holds k entries
        dist[own] = np.inf
    # Candidates are the running best (positions 0..k-1) then the block (positions k..): the
    # indices of a position are looked up only for the rows and positions that need them.
    all_d = np.concatenate([best_distances, dist], axis=1)

    def index_of(rows, pos):
        return np.where(pos < k, best_indices[rows, np.minimum(pos, k - 1)],
                        y_index[np.maximum(pos - k, 0)])

    rows = np.arange(X.shape[0])[:, None]
    part = np.argpartition(all_d, k - 1, axis=1)[:, :k] if all_d.shape[1] > k else \
        np.broadcast_to(np.arange(k), (X.shape[0], k))
    sub_d = np.take_along_axis(all_d, part, axis=1)
    sub_i = index_of(rows, part)
    order = np.lexsort((sub_i, sub_d), axis=-1)
    out_d = np.take_along_axis(sub_d, order, axis=1)
    out_i = np.take_along_axis(sub_i, order, axis=1)
    # Rows whose k-th distance ties with a candidate left out are ordered in full, so that the
    # lower global index wins.
    tied = np.flatnonzero(np.count_nonzero(all_d <= out_d[:, -1:], axis=1) > k)
    if tied.size:
        cand = np.arange(all_d.shape[1])[None, :]
        full_i = index_of(tied[:, None], cand)
        full = np.lexsort((full_i, all_d[tied]), axis=-1)[:, :k]
        out_d[tied] = np.take_along_axis(all_d[tied], full, axis=1)
        out_i[tied] = np.take_along_axis(full_i, full, axis=1)
    return out_d, out_i


def radius_counts(X, Y, sample_weight, eps, metric="euclidean", p=None):
    """Weighted neighbour counts: ``sum_j sample_weight[j] * (dist(X[i], Y[j]) <= eps)``.

    Parameters
    ----------
    X : ndarray of shape (n_x, n_features)
        A block of query rows.
    Y : ndarray of shape (n_y, n_features)
        A block of candidate rows.
    sample_weight : ndarray of shape (n_y,)
        Weight of each candidate (may be negative, as in scikit-learn's DBSCAN).
    eps : float
        The radius; a distance equal to ``eps`` counts.
    metric : str, default="euclidean"
    p : float, default=None

    Returns
    -------
    counts : ndarray of shape (n_x,), float64
    """
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return np.zeros(X.shape[0])
    within = block_distances(X, Y, metric, p) <= eps
    return within @ np.asarray(sample_weight, np.float64)


def radius_min_label(X, Y, labels, current, eps, metric="euclidean", p=None):
    """The smallest label among each query's neighbours, merged into a running minimum.

    The propagation step of DBSCAN's label propagation: ``min(current[i], min {labels[j] :
    dist(X[i], Y[j]) <= eps})``. ``min`` is associative and commutative, so blocks may come in
    any order.

    Parameters
    ----------
    X : ndarray of shape (n_x, n_features)
        A block of query rows.
    Y : ndarray of shape (n_y, n_features)
        A block of candidate rows (DBSCAN passes core rows only).
    labels : ndarray of shape (n_y,), int64
        Label of each candidate.
    current : ndarray of shape (n_x,), int64
        The running minimum (a value above every label where none was found yet).
    eps : float
        The radius; a distance equal to ``eps`` is a neighbour.
    metric : str, default="euclidean"
    p : float, default=None

    Returns
    -------
    minimum : ndarray of shape (n_x,), int64
    """
    current = np.asarray(current, np.int64)
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return current.copy()
    within = block_distances(X, Y, metric, p) <= eps
    big = np.iinfo(np.int64).max
    found = np.where(within, np.asarray(labels, np.int64)[None, :], big).min(axis=1)
    return np.minimum(current, found)


def radius_neighbors_csr(X, Y, y_index, eps, metric="euclidean", p=None, x_index=None):
    """The pairs within ``eps`` of one block of queries and one block of candidates, as CSR.

    Parameters
    ----------
    X : ndarray of shape (n_x, n_features)
        A block of query rows.
    Y : ndarray of shape (n_y, n_features)
        A block of candidate rows.
    y_index : ndarray of shape (n_y,), int64
        The global index of each candidate (or any labels the caller wants back).
    eps : float
        The radius; a distance equal to ``eps`` is a neighbour.
    metric : str, default="euclidean"
    p : float, default=None
    x_index : ndarray of shape (n_x,), int64, default=None
        Global index of each query when the queries are training rows: a candidate with the
        query's own index is left out. None: none is.

    Returns
    -------
    indptr : ndarray of shape (n_x + 1,), int64
        Query ``i``'s neighbours are entries ``indptr[i]:indptr[i + 1]``.
    indices : ndarray of shape (n_pairs,), int64
        ``y_index`` of the neighbours, in candidate order within each query.
    distances : ndarray of shape (n_pairs,), float64
    """
    n_x = X.shape[0]
    if n_x == 0 or Y.shape[0] == 0:
        return np.zeros(n_x + 1, np.int64), np.zeros(0, np.int64), np.zeros(0)
    dist = block_distances(X, Y, metric, p)
    within = dist <= eps
    if x_index is not None:
        within &= np.asarray(y_index, np.int64)[None, :] != np.asarray(x_index, np.int64)[:, None]
    rows, cols = np.nonzero(within)
    indptr = np.zeros(n_x + 1, np.int64)
    np.cumsum(np.count_nonzero(within, axis=1), out=indptr[1:])
    return indptr, np.asarray(y_index, np.int64)[cols], dist[rows, cols]


def radius_label_union(X, x_labels, Y, y_labels, eps, metric="euclidean", p=None):
    """The classes of labels joined by the pairs within ``eps`` of one block pair.

    The component step of DBSCAN: each query row carries a label (its component so far), each
    candidate row too, and every pair ``dist(X[i], Y[j]) <= eps`` joins ``x_labels[i]`` and
    ``y_labels[j]``. The result names, for each distinct label, the smallest label of its class
    (the connected components of the label graph). Joining is associative and commutative, so
    a caller merges the classes of several block pairs with any connected-components step.

    Parameters
    ----------
    X : ndarray of shape (n_x, n_features)
        A block of query rows.
    x_labels : ndarray of shape (n_x,), int64
        Label of each query row.
    Y : ndarray of shape (n_y, n_features)
        A block of candidate rows (may be ``X`` itself: its own pairs).
    y_labels : ndarray of shape (n_y,), int64
        Label of each candidate row.
    eps : float
        The radius; a distance equal to ``eps`` is a neighbour.
    metric : str, default="euclidean"
    p : float, default=None

    Returns
    -------
    labels : ndarray of shape (n_labels,), int64
        The distinct values of ``x_labels`` and ``y_labels``, sorted.
    roots : ndarray of shape (n_labels,), int64
        For each label, the smallest label joined to it (itself when none is smaller).

    Notes
    -----
    SciPy's ``connected_components`` of the graph of the labels of the pairs within ``eps``.
    """
    x_labels = np.asarray(x_labels, np.int64)
    y_labels = np.asarray(y_labels, np.int64)
    labels = np.unique(np.concatenate([x_labels, y_labels]))
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return labels, labels.copy()
    rows, cols = np.nonzero(block_distances(X, Y, metric, p) <= eps)
    return labels, label_roots(labels, np.searchsorted(labels, x_labels[rows]),
                               np.searchsorted(labels, y_labels[cols]))


def label_roots(labels, src, dst):
    """For each of the sorted ``labels``, the smallest label joined to it by the edges
    ``(src[i], dst[i])`` (positions in ``labels``): SciPy's ``connected_components``.
    A helper of :func:`radius_label_union`, not a kernel."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = labels.shape[0]
    _, comp = connected_components(coo_matrix((np.ones(src.shape[0]), (src, dst)), shape=(n, n)),
                                   directed=False)
    smallest = np.full(n, n, np.int64)
    np.minimum.at(smallest, comp, np.arange(n))  # labels are sorted: the smallest position
    return labels[smallest[comp]]
