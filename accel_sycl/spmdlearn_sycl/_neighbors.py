"""Neighbour searches on dpnp blocks: the reference's kernels on the device.

Distances come from coordinate differences accumulated feature by feature in float64, the
arithmetic of SciPy's ``cdist`` that the reference uses, with a correctly rounded square root
(:func:`~spmdlearn_sycl._exact.sqrt_rn`), so ties and boundary cases fall the same way.
(:func:`spmdlearn.reference.knn_merge`, ``radius_counts``, ``radius_min_label``,
``radius_neighbors_csr``, ``radius_label_union``.)
"""

from __future__ import annotations

import numpy as np

from ._device import dpnp, float_type, on_device, to_host
from ._exact import sqrt_rn

__all__ = ["supported", "knn_merge", "radius_counts", "radius_min_label", "radius_neighbors_csr",
           "radius_label_union"]

_CODES = {"euclidean": 0, "l2": 0, "manhattan": 1, "cityblock": 1, "l1": 1,
          "chebyshev": 2, "infinity": 2, "minkowski": 3}
_EXCLUDED = np.iinfo(np.int64).max


def supported(metric, p) -> bool:
    """Whether this backend computes ``metric`` as the reference does (else it declines)."""
    return metric in _CODES and (metric != "minkowski" or (p is not None and p >= 1))


def _distances(X, Y, metric, p):
    xp = dpnp()
    f = float_type(X)
    code = _CODES[metric]
    if code == 3 and p == 2:
        code = 0
    elif code == 3 and p == 1:
        code = 1
    elif code == 3 and np.isinf(p):
        code = 2
    if code == 3:
        # |d|**p and the p-th root come from libm in SciPy, and the device's pow rounds
        # otherwise in the last bits, which reorders near-ties: this block's distances are the
        # reference's, on a host copy of the block (counted and logged as a fallback).
        from spmdlearn._array_api import note_fallback
        from spmdlearn.reference import block_distances

        note_fallback(f"minkowski p={p:g} distances", X)
        return on_device(block_distances(to_host(X), to_host(on_device(Y, X)), metric, p), X, f)
    Y = on_device(Y, X)
    acc = xp.zeros((X.shape[0], Y.shape[0]), dtype=f, sycl_queue=X.sycl_queue)
    for j in range(X.shape[1]):
        diff = X[:, j].astype(f)[:, None] - Y[:, j].astype(f)[None, :]
        if code == 0:
            acc += diff * diff
        elif code == 1:
            acc += xp.abs(diff)
        else:
            acc = xp.maximum(acc, xp.abs(diff))
    if code == 0:
        return sqrt_rn(acc)
    return acc


def knn_merge(X, Y, y_index, best_distances, best_indices, metric="euclidean", p=None,
              x_index=None):
    xp = dpnp()
    f = float_type(X)
    best_d = on_device(best_distances, X, f)
    best_i = on_device(best_indices, X, xp.int64)
    k = best_d.shape[1]
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return best_d.copy(), best_i.copy()
    dist = _distances(X, Y, metric, p)
    cand = xp.broadcast_to(on_device(y_index, X, xp.int64)[None, :], dist.shape)
    if x_index is not None:
        own = cand == on_device(x_index, X, xp.int64)[:, None]
        dist = xp.where(own, xp.inf, dist)
        cand = xp.where(own, _EXCLUDED, cand)
    dist = xp.concatenate([best_d, dist], axis=1)
    idx = xp.concatenate([best_i, xp.ascontiguousarray(cand)], axis=1)
    # Lexicographic (distance, index): a stable sort by index, then by distance.
    order = xp.argsort(idx, axis=1, kind="stable")
    dist, idx = xp.take_along_axis(dist, order, axis=1), xp.take_along_axis(idx, order, axis=1)
    order = xp.argsort(dist, axis=1, kind="stable")[:, :k]
    return xp.take_along_axis(dist, order, axis=1), xp.take_along_axis(idx, order, axis=1)


def radius_counts(X, Y, sample_weight, eps, metric="euclidean", p=None):
    xp = dpnp()
    f = float_type(X)
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return xp.zeros(X.shape[0], dtype=f, sycl_queue=X.sycl_queue)
    within = _distances(X, Y, metric, p) <= eps
    return within.astype(f) @ on_device(sample_weight, X, f)


def radius_min_label(X, Y, labels, current, eps, metric="euclidean", p=None):
    xp = dpnp()
    current = on_device(current, X, xp.int64)
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return current.copy()
    within = _distances(X, Y, metric, p) <= eps
    found = xp.where(within, on_device(labels, X, xp.int64)[None, :], _EXCLUDED).min(axis=1)
    return xp.minimum(current, found)


def radius_neighbors_csr(X, Y, y_index, eps, metric="euclidean", p=None, x_index=None):
    xp = dpnp()
    q = X.sycl_queue
    n_x = X.shape[0]
    if n_x == 0 or Y.shape[0] == 0:
        return (xp.zeros(n_x + 1, dtype=xp.int64, sycl_queue=q),
                xp.zeros(0, dtype=xp.int64, sycl_queue=q),
                xp.zeros(0, dtype=float_type(X), sycl_queue=q))
    dist = _distances(X, Y, metric, p)
    within = dist <= eps
    y_index = on_device(y_index, X, xp.int64)
    if x_index is not None:
        within &= y_index[None, :] != on_device(x_index, X, xp.int64)[:, None]
    rows, cols = xp.nonzero(within)
    indptr = xp.zeros(n_x + 1, dtype=xp.int64, sycl_queue=q)
    indptr[1:] = xp.cumsum(xp.count_nonzero(within, axis=1))
    return indptr, y_index[cols], dist[rows, cols]


def radius_label_union(X, x_labels, Y, y_labels, eps, metric="euclidean", p=None):
    """:func:`spmdlearn.reference.radius_label_union` on device blocks: the pairs within
    ``eps`` are reduced on the device to their distinct pairs of labels, which SciPy's
    connected components join on the host, as in the reference."""
    from spmdlearn.reference import label_roots

    xp = dpnp()
    x_labels = np.asarray(x_labels if isinstance(x_labels, np.ndarray) else to_host(x_labels),
                          np.int64)
    y_labels = np.asarray(y_labels if isinstance(y_labels, np.ndarray) else to_host(y_labels),
                          np.int64)
    labels = np.unique(np.concatenate([x_labels, y_labels]))
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return labels, labels.copy()
    rows, cols = xp.nonzero(_distances(X, Y, metric, p) <= eps)
    n = labels.shape[0]
    src = on_device(np.searchsorted(labels, x_labels), X, xp.int64)[rows]
    dst = on_device(np.searchsorted(labels, y_labels), X, xp.int64)[cols]
    pairs = to_host(xp.unique(src * n + dst))
    return labels, label_roots(labels, pairs // n, pairs % n)
