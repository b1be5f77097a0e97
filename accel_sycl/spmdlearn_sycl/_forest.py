"""Histogram trees on dpnp shards: binning, bootstrap counts, histograms, routing, prediction.

The reference's definitions (:func:`spmdlearn.reference.apply_bins`, ``bootstrap_counts``,
``tree_histograms``, ``tree_route``, ``tree_apply``) in dpnp operations: the counter-based
SplitMix64 uniforms in uint64 arithmetic, the inverse-CDF Poisson draws with ``exp(-lam)``
from the host (bit for bit), histograms by weighted ``bincount``.
"""

from __future__ import annotations

import math

import numpy as np

from spmdlearn.reference import BOOTSTRAP_STREAM
from spmdlearn.reference._forest import _GOLDEN, _mix  # the counter-based generator, shared

from ._device import dpnp, float_type, has_float64, on_device, to_host

__all__ = ["apply_bins", "bootstrap_counts", "tree_histograms", "tree_route", "tree_apply"]

def apply_bins(X, edges):
    xp = dpnp()
    edges = np.asarray(edges, dtype=np.float64)
    out = xp.empty(X.shape, dtype=xp.uint16, sycl_queue=X.sycl_queue)
    f = float_type(X)
    for j in range(X.shape[1]):
        cuts = on_device(edges[j], X, f)
        out[:, j] = xp.searchsorted(cuts, X[:, j].astype(f), side="left").astype(xp.uint16)
    return out


def bootstrap_counts(row_index, seed, lam):
    xp = dpnp()
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed) * _GOLDEN + np.uint64(BOOTSTRAP_STREAM))
    counters = row_index.astype(xp.uint64)
    z = _mix(key + (counters + np.uint64(1)) * _GOLDEN)
    # The reference's uniform is u = (z >> 11) * 2**-53, exact in float64, and u >= cdf holds
    # exactly when the integer z >> 11 >= ceil(cdf * 2**53) (a power-of-two scaling, exact):
    # the same draws in integer arithmetic, also on a device without float64.
    u = z >> np.uint64(11)
    counts = xp.zeros(u.shape, dtype=xp.int64, sycl_queue=row_index.sycl_queue)

    def reached(cdf):
        return u >= np.uint64(min(math.ceil(cdf * 2.0 ** 53), 2 ** 64 - 1))

    p = float(np.exp(-lam))
    cdf = p
    active = reached(cdf)
    k = 0
    while k < 64 and bool(active.any()):
        k += 1
        p *= lam / k
        cdf += p
        counts[active] = k
        active &= reached(cdf)
    return counts


def tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes, n_bins, n_classes,
                    class_weight=None):
    xp = dpnp()
    if n_classes == 0 and not has_float64(binned):
        # sums of y and y**2 in float32 lose the variances that split decisions compare:
        # decline (the reference runs on a host copy, counted), as best_splits does
        return None
    n, n_features = binned.shape
    n_channels = n_classes + 1 if n_classes > 0 else 4
    size = n_nodes * n_features * n_bins
    node_pos = on_device(node_pos, binned, xp.int64)
    counts = on_device(counts, binned, xp.int64)
    keep = (node_pos >= 0) & (counts > 0)
    if not bool(keep.any()):
        return np.zeros((n_nodes, n_features, n_bins, n_channels))
    rows = xp.nonzero(keep)[0]
    f = float_type(binned)
    v = on_device(sample_weight, binned, f)[rows] * counts[rows].astype(f)
    yv = on_device(y, binned)[rows]
    if class_weight is not None and n_classes > 0:
        v = v * on_device(class_weight, binned, f)[yv.astype(xp.int64)]
    cell = ((node_pos[rows][:, None] * n_features
             + xp.arange(n_features, sycl_queue=binned.sycl_queue)[None, :]) * n_bins
            + binned[rows].astype(xp.int64)).reshape(-1)
    ones = xp.bincount(cell, minlength=size).astype(f)
    if n_classes > 0:
        by_class = xp.bincount(cell * n_classes + xp.repeat(yv.astype(xp.int64), n_features),
                               weights=xp.repeat(v, n_features), minlength=size * n_classes)
        hist = xp.concatenate([by_class.reshape(size, n_classes), ones[:, None]], axis=1)
    else:
        yf = yv.astype(f)
        channels = [xp.bincount(cell, weights=xp.repeat(u, n_features), minlength=size)
                    for u in (v, v * yf, v * yf * yf)]
        hist = xp.stack(channels + [ones], axis=1)
    return to_host(hist).astype(np.float64).reshape(n_nodes, n_features, n_bins, n_channels)


def tree_route(binned, node_of_row, split_feature, split_bin, left, right):
    xp = dpnp()
    node = on_device(node_of_row, binned, xp.int64).copy()
    split_feature, split_bin, left, right = (on_device(a, binned, xp.int64) for a in
                                             (split_feature, split_bin, left, right))
    moving = node >= 0
    rows = xp.nonzero(moving)[0]
    if rows.size:
        rows = rows[split_feature[node[rows]] >= 0]
    if rows.size:
        nd = node[rows]
        go_left = binned[rows, split_feature[nd]].astype(xp.int64) <= split_bin[nd]
        node[rows] = xp.where(go_left, left[nd], right[nd])
    return node


def tree_apply(X, feature, threshold, left, right):
    xp = dpnp()
    feature, left, right = (on_device(a, X, xp.int64) for a in (feature, left, right))
    threshold = on_device(threshold, X, float_type(X))
    node = xp.zeros(X.shape[0], dtype=xp.int64, sycl_queue=X.sycl_queue)
    rows = xp.nonzero(left[node] >= 0)[0]
    while rows.size:
        nd = node[rows]
        go_left = X[rows, feature[nd]].astype(threshold.dtype) <= threshold[nd]
        node[rows] = xp.where(go_left, left[nd], right[nd])
        rows = rows[left[node[rows]] >= 0]
    return node
