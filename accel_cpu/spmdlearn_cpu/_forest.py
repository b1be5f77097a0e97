"""Histogram-tree kernels: the cpu twins of :mod:`spmdlearn.reference._forest`.

Histograms are filled by a compiled loop, one feature per thread (each thread owns a disjoint
slice of the histogram, so there are neither private copies nor atomics), adding rows in their
order as ``np.bincount`` does. Prediction walks each row down the tree in a compiled loop.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange

from ._layout import canonical
from ._threads import use_kernel_threads

__all__ = ["node_histograms", "tree_apply", "tree_histograms", "forest_histograms"]


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
    if (binned.dtype.kind not in "ui" or int(binned.max()) >= n_bins
            or int(node_pos.max()) >= n_nodes):
        return None
    use_kernel_threads()
    _histograms(binned, node_pos, stats, hist)
    return hist


@canonical(read_only="X")
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


@njit(cache=True, inline="always")
def _row_values(i, y, w, counts, class_weight, n_classes):
    """What row ``i`` adds to each of its bins: ``(c, v, v y, v y^2)`` with
    ``v = w * count (* class_weight[c])``; ``c`` is the class index (classification,
    ``n_classes > 0``; the caller has checked that it is in range) or 0 (regression, whose
    ``v y`` and ``v y^2`` are 0 in classification)."""
    v = w[i] * np.float64(counts[i])
    if n_classes > 0:
        c = np.int64(y[i])
        if class_weight.shape[0] > 0:
            v = v * class_weight[c]
        return c, v, 0.0, 0.0
    t = np.float64(y[i])
    vy = v * t
    return np.int64(0), v, vy, vy * t


@njit(cache=True, inline="always")
def _add_row(hist, p, j, b, c, v, vy, vyy, n_classes):
    """Row values (:func:`_row_values`) into the channels of bin ``hist[p, j, b]``: the class's
    weight and the row count (classification), or ``(v, v y, v y^2, 1)`` (regression). The one
    update of :func:`_histograms_from_rows`, :func:`_histograms_from_rows_serial` and
    :func:`_tree_place_histograms` (tree_histograms and forest_histograms)."""
    if n_classes > 0:
        hist[p, j, b, c] += v
        hist[p, j, b, n_classes] += 1.0
    else:
        hist[p, j, b, 0] += v
        hist[p, j, b, 1] += vy
        hist[p, j, b, 2] += vyy
        hist[p, j, b, 3] += 1.0


@njit(parallel=True, cache=True)
def _histograms_from_rows(binned, node_pos, y, w, counts, class_weight, n_classes, hist):
    """Channels per (node, feature, bin): per-class weights or (v, v y, v y^2), then rows.

    ``v = w * count (* class_weight[y])``; rows are added in their order, one feature per
    thread, as ``np.bincount`` adds them (the same sums, bit for bit).
    """
    n, n_features = binned.shape
    for f in prange(n_features):
        for i in range(n):
            p = node_pos[i]
            if p < 0 or counts[i] <= 0:
                continue
            c, v, vy, vyy = _row_values(i, y, w, counts, class_weight, n_classes)
            _add_row(hist, p, f, binned[i, f], c, v, vy, vyy, n_classes)


@njit(cache=True)
def _histograms_from_rows_serial(binned, node_pos, y, w, counts, class_weight, n_classes, hist):
    """:func:`_histograms_from_rows` on one thread: rows outer, so that each row's bins, label,
    weight and count are read once (the same sums: each bin still adds rows in their order)."""
    n, n_features = binned.shape
    for i in range(n):
        p = node_pos[i]
        if p < 0 or counts[i] <= 0:
            continue
        c, v, vy, vyy = _row_values(i, y, w, counts, class_weight, n_classes)
        for f in range(n_features):
            _add_row(hist, p, f, binned[i, f], c, v, vy, vyy, n_classes)


def tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes, n_bins, n_classes,
                    class_weight=None):
    """:func:`spmdlearn.reference.tree_histograms` in one compiled pass per feature, built from
    labels, weights and bootstrap counts (no per-row statistics matrix)."""
    n_features = binned.shape[1]
    n_channels = n_classes + 1 if n_classes > 0 else 4
    hist = np.zeros((n_nodes, n_features, n_bins, n_channels))
    node_pos = np.asarray(node_pos, np.int64)
    counts = np.asarray(counts)
    if binned.shape[0] == 0 or n_nodes == 0 or not np.any((node_pos >= 0) & (counts > 0)):
        return hist
    y = np.asarray(y)
    if (binned.dtype.kind not in "ui" or int(binned.max()) >= n_bins
            or int(node_pos.max()) >= n_nodes
            or (n_classes > 0 and (y.dtype.kind not in "ui" or int(y.max()) >= n_classes
                                   or int(y.min()) < 0))):
        return None  # out of range: the reference raises its own error
    cw = np.zeros(0) if class_weight is None else np.asarray(class_weight, np.float64)
    use_kernel_threads()
    # One thread per feature where there are threads; on one, one pass over the rows.
    kernel = _histograms_from_rows_serial if get_num_threads() == 1 else _histograms_from_rows
    kernel(binned, node_pos, _labels(y, n_classes), np.ascontiguousarray(sample_weight, np.float64),
           counts, cw, int(n_classes), hist)
    return hist


def _labels(y, n_classes):
    """``y`` as the histogram kernels read it, in one type per task (one compiled
    specialization each): int64 class indices (classification, checked in range by the caller)
    or float64 targets (regression), contiguous. The kernels read ``np.int64(y[i])`` and
    ``np.float64(y[i])``, so the values are the same; the copy is one value per row, at most."""
    return np.ascontiguousarray(y, np.int64 if n_classes > 0 else np.float64)


@njit(cache=True)
def _tree_place_histograms(binned, node, counts, position, columns, y, w, class_weight, n_classes,
                           hist):
    """One tree's rows into the histograms of their places (rows outer, in their order, as
    :func:`_histograms_from_rows_serial` adds them). Returns False at a bin or class out of
    range (the histogram is then partial)."""
    n_positions, k, n_bins = position.shape[0], columns.shape[1], hist.shape[2]
    for i in range(node.shape[0]):
        nd = node[i]
        if nd < 0 or nd >= n_positions or counts[i] <= 0:
            continue
        p = position[nd]
        if p < 0:
            continue
        if n_classes > 0 and (np.int64(y[i]) < 0 or np.int64(y[i]) >= n_classes):
            return False
        c, v, vy, vyy = _row_values(i, y, w, counts, class_weight, n_classes)
        for j in range(k):
            b = np.int64(binned[i, columns[p, j]])
            if b >= n_bins:
                return False
            _add_row(hist, p, j, b, c, v, vy, vyy, n_classes)
    return True


@njit(parallel=True, cache=True)
def _forest_histograms(binned, node_of_row, counts, position, columns, y, w, class_weight,
                       n_classes, hist):
    """One tree per thread (a place belongs to one tree: the trees write disjoint places);
    trees with no place are skipped."""
    n_trees = node_of_row.shape[0]
    ok = np.ones(n_trees, np.bool_)
    for t in prange(n_trees):
        placed = False
        for q in range(position.shape[1]):
            if position[t, q] >= 0:
                placed = True
                break
        if placed:
            cw = class_weight[t] if class_weight.shape[0] > 0 else np.zeros(0)
            ok[t] = _tree_place_histograms(binned, node_of_row[t], counts[t], position[t],
                                           columns, y, w, cw, n_classes, hist)
    return ok.all()


def forest_histograms(binned, node_of_row, counts, position, columns, y, sample_weight, n_bins,
                      n_classes, class_weight=None):
    """:func:`spmdlearn.reference.forest_histograms` in one compiled pass over each tree's
    rows, reading the bins of each row's place's features where they lie (no gathered copy
    of the rows), bit for bit."""
    position = np.ascontiguousarray(position, np.int64)
    columns = np.ascontiguousarray(columns, np.int64)
    n_places, k = columns.shape
    n_channels = n_classes + 1 if n_classes > 0 else 4
    hist = np.zeros((n_places, k, n_bins, n_channels))
    if binned.shape[0] == 0 or n_places == 0 or node_of_row.shape[0] == 0:
        return hist
    if (binned.dtype.kind not in "ui" or position.shape[0] != node_of_row.shape[0]
            or node_of_row.shape != counts.shape or node_of_row.shape[1] != binned.shape[0]
            or (position.size and int(position.max()) >= n_places)
            or (columns.size and (int(columns.min()) < 0
                                  or int(columns.max()) >= binned.shape[1]))
            or (n_classes > 0 and np.asarray(y).dtype.kind not in "ui")):
        return None  # out of range: the reference raises its own error
    cw = np.zeros((0, 0)) if class_weight is None else \
        np.ascontiguousarray(class_weight, np.float64).reshape(node_of_row.shape[0], -1)
    use_kernel_threads()
    if not _forest_histograms(binned, np.asarray(node_of_row, np.int64),
                              np.asarray(counts, np.int64), position, columns,
                              _labels(y, n_classes),
                              np.ascontiguousarray(sample_weight, np.float64), cw, int(n_classes),
                              hist):
        return None
    return hist


@njit(parallel=True, cache=True)
def _route(binned, node, split_feature, split_bin, left, right, out):
    for i in prange(node.shape[0]):
        nd = node[i]
        if nd >= 0 and split_feature[nd] >= 0:
            if binned[i, split_feature[nd]] <= split_bin[nd]:
                out[i] = left[nd]
            else:
                out[i] = right[nd]
        else:
            out[i] = nd


def tree_route(binned, node_of_row, split_feature, split_bin, left, right):
    """:func:`spmdlearn.reference.tree_route` in one compiled pass over the rows."""
    node = np.asarray(node_of_row, np.int64)
    out = np.empty_like(node)
    if node.shape[0] == 0:
        return out
    use_kernel_threads()
    _route(binned, node, np.asarray(split_feature, np.int64), np.asarray(split_bin, np.int64),
           np.asarray(left, np.int64), np.asarray(right, np.int64), out)
    return out


@canonical(read_only="X")
@njit(parallel=True, cache=True)
def _apply_bins(X, edges, n_cuts, out):
    n, d = X.shape
    for i in prange(n):
        for j in range(d):
            x = np.float64(X[i, j])
            lo, hi = 0, n_cuts[j]
            while lo < hi:  # the first cut that is not below x (searchsorted, side="left")
                mid = (lo + hi) // 2
                if edges[j, mid] < x:
                    lo = mid + 1
                else:
                    hi = mid
            out[i, j] = lo


def apply_bins(X, edges):
    """:func:`spmdlearn.reference.apply_bins`: a binary search per value, compiled."""
    if isinstance(edges, list):
        width = max([len(e) for e in edges] + [0])
        padded = np.full((len(edges), width), np.inf)
        for j, e in enumerate(edges):
            padded[j, : len(e)] = e
        edges = padded
    edges = np.ascontiguousarray(edges, dtype=np.float64)
    out = np.empty(X.shape, dtype=np.uint16)
    if X.shape[0] == 0:
        return out
    # padding (+inf) is never below a finite value, so the search may stop at the real cuts
    n_cuts = np.array([int(np.count_nonzero(np.isfinite(row))) for row in edges], np.int64)
    if not np.all(np.isfinite(edges[np.arange(edges.shape[1])[None, :] < n_cuts[:, None]])):
        return None
    use_kernel_threads()
    _apply_bins(X, edges, n_cuts, out)
    return out


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(parallel=True, cache=True)
def _bootstrap(row_index, key, p0, lam, out):
    golden = np.uint64(0x9E3779B97F4A7C15)
    scale = 1.0 / 2.0 ** 53
    for i in prange(row_index.shape[0]):
        z = _mix(key + (np.uint64(row_index[i]) + np.uint64(1)) * golden)
        u = np.float64(z >> np.uint64(11)) * scale
        p = p0
        cdf = p0
        k = 0
        while u >= cdf and k < 64:
            k += 1
            p *= lam / k
            cdf += p
        out[i] = k


def bootstrap_counts(row_index, seed, lam):
    """:func:`spmdlearn.reference.bootstrap_counts`, bit for bit: SplitMix64 uniforms and the
    inverse-CDF Poisson draw of each row in one compiled pass (no per-round array scans)."""
    row_index = np.asarray(row_index, np.int64)
    out = np.zeros(row_index.shape[0], np.int64)
    if row_index.shape[0] == 0:
        return out
    with np.errstate(over="ignore"):
        key = (np.asarray([seed], dtype=np.uint64) * _GOLDEN + np.uint64(2))
        key = key ^ (key >> np.uint64(30))
        key = key * _M1
        key = key ^ (key >> np.uint64(27))
        key = key * _M2
        key = key ^ (key >> np.uint64(31))
    use_kernel_threads()
    # exp(-lam) by NumPy, as the reference computes it: the CDF then matches bit for bit
    _bootstrap(row_index, np.uint64(key[0]), float(np.exp(-lam)), float(lam), out)
    return out
