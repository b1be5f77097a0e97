"""Histogram-tree kernels: the cpu twins of :mod:`spmdlearn.reference._forest`.

Histograms are filled by a compiled loop, one feature per thread (each thread owns a disjoint
slice of the histogram, so there are neither private copies nor atomics), adding rows in their
order as ``np.bincount`` does. Prediction walks each row down the tree in a compiled loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._threads import use_kernel_threads

__all__ = ["node_histograms", "tree_apply"]


@njit(parallel=True, cache=True)
def _histograms(binned, node_pos, stats, hist):
    n, n_features = binned.shape
    n_stats = stats.shape[1]
    for f in prange(n_features):
        for i in range(n):
            p = node_pos[i]
            if p < 0:
                continue
            b = binned[i, f]
            for s in range(n_stats):
                hist[p, f, b, s] += stats[i, s]


def node_histograms(binned, node_pos, stats, n_nodes, n_bins):
    """:func:`spmdlearn.reference.node_histograms` in one compiled pass per feature."""
    n_features = binned.shape[1]
    stats = np.asarray(stats, dtype=np.float64)
    hist = np.zeros((n_nodes, n_features, n_bins, stats.shape[1]))
    if binned.shape[0] == 0 or n_nodes == 0:
        return hist
    node_pos = np.asarray(node_pos)
    # The compiled loop does not check bounds: out-of-range positions or bins decline (the
    # reference then raises its own error).
    if int(binned.max()) >= n_bins or int(node_pos.max()) >= n_nodes or binned.dtype.kind not in "ui":
        return None
    use_kernel_threads()
    _histograms(binned, node_pos, stats, hist)
    return hist


@njit(parallel=True, cache=True)
def _apply(X, feature, threshold, left, right, out):
    for i in prange(X.shape[0]):
        node = 0
        while left[node] >= 0:
            if X[i, feature[node]] <= threshold[node]:
                node = left[node]
            else:
                node = right[node]
        out[i] = node


def tree_apply(X, feature, threshold, left, right):
    """:func:`spmdlearn.reference.tree_apply`: each row walks down the tree in compiled code."""
    out = np.zeros(X.shape[0], dtype=np.int64)
    if X.shape[0] == 0:
        return out
    use_kernel_threads()
    _apply(X, np.asarray(feature), np.asarray(threshold, dtype=np.float64), np.asarray(left),
           np.asarray(right), out)
    return out
