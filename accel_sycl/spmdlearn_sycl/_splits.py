"""The forests' split search on a dpnp histogram: :func:`spmdlearn.reference.best_splits`, with
the reference's arithmetic operation for operation, so that every decision (and every tie) is
the reference's bit for bit.

Each step is the reference's NumPy expression with NumPy's order of summation made explicit:
a cumulative sum over bins is sequential (``np.cumsum``), the sum of a node's bins is
sequential (NumPy reduces a non-innermost axis row by row), and a sum over the last axis
(classes) is NumPy's pairwise summation (:func:`_sum_last`). The elementwise operations are
IEEE operations, the same on the device. Entropy's ``log2`` is the one exception: the device's
logarithm may differ from NumPy's in the last bit, so the class shares cross to the host for it
(one array of the histogram's size).

Work O(n_nodes x n_features x n_bins x n_stats) on the device, in about ``n_bins`` launches.
"""

from __future__ import annotations

import numpy as np

from ._device import dpnp, on_device, to_host

__all__ = ["best_splits"]


def _pairwise(xp, a, lo, n):
    """NumPy's pairwise sum of ``a[..., lo:lo + n]`` (``pairwise_sum`` of its umath loops:
    8 accumulators up to 128 elements, halves above)."""
    if n < 8:
        out = xp.zeros(a.shape[:-1], dtype=a.dtype, sycl_queue=a.sycl_queue) \
            if xp is not np else np.zeros(a.shape[:-1], dtype=a.dtype)
        for i in range(n):
            out = out + a[..., lo + i]
        return out
    if n <= 128:
        r = [a[..., lo + j] for j in range(8)]
        i = 8
        while i < n - n % 8:
            r = [r[j] + a[..., lo + i + j] for j in range(8)]
            i += 8
        out = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        for k in range(i, n):
            out = out + a[..., lo + k]
        return out
    half = n // 2
    half -= half % 8
    return _pairwise(xp, a, lo, half) + _pairwise(xp, a, lo + half, n - half)


def _sum_last(xp, a):
    """``np.sum(a, axis=-1)`` of a C-ordered array, in NumPy's order."""
    return _pairwise(xp, a, 0, a.shape[-1])


def _cumsum(xp, a, axis):
    """``np.cumsum(a, axis)``: sequential."""
    parts = [xp.take(a, [0], axis=axis)]
    for i in range(1, a.shape[axis]):
        parts.append(parts[-1] + xp.take(a, [i], axis=axis))
    return xp.concatenate(parts, axis=axis)


def _impurity(xp, stats, classification, criterion):
    """The reference's ``_impurity``: (impurity, weight) of summed statistics."""
    if classification:
        w = _sum_last(xp, stats)
        safe = xp.where(w > 0, w, 1)[..., None]
        p = xp.where(w[..., None] > 0, stats / safe, 0.0)
        if criterion == "gini":
            return 1.0 - _sum_last(xp, p * p), w
        host = np.asarray(p) if xp is np else to_host(p)
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.where(host > 0, np.log2(np.where(host > 0, host, 1)), 0.0)
        logp = logp if xp is np else on_device(logp, p)
        return -_sum_last(xp, p * logp), w
    w = stats[..., 0]
    safe = xp.where(w > 0, w, 1)
    mean = xp.where(w > 0, stats[..., 1] / safe, 0.0)
    var = xp.where(w > 0, stats[..., 2] / safe - mean * mean, 0.0)
    return xp.maximum(var, 0.0), w


def _best_splits(xp, hist, order, n_draw, classification, criterion, min_samples_leaf,
                 min_impurity_decrease, weighted_n_root, min_weight_leaf):
    """The reference's ``best_splits`` in the namespace ``xp`` (NumPy or dpnp)."""
    n_nodes, n_features, n_bins = hist.shape[:3]
    stats, rows = hist[..., :-1], hist[..., -1]
    total = hist[:, 0, 0, :-1]
    for b in range(1, n_bins):  # NumPy sums a non-innermost axis row by row
        total = total + hist[:, 0, b, :-1]
    total_rows = _sum_last(xp, xp.ascontiguousarray(hist[:, 0, :, -1]))
    impurity, w = _impurity(xp, total, classification, criterion)

    left = _cumsum(xp, stats, 2)[:, :, :-1]
    left_rows = _cumsum(xp, rows, 2)[:, :, :-1]
    right = total[:, None, None, :] - left
    right_rows = total_rows[:, None, None] - left_rows
    imp_l, w_l = _impurity(xp, left, classification, criterion)
    imp_r, w_r = _impurity(xp, right, classification, criterion)
    valid = (left_rows >= min_samples_leaf) & (right_rows >= min_samples_leaf) & \
        (w_l > 0) & (w_r > 0) & (w_l >= min_weight_leaf) & (w_r >= min_weight_leaf)
    ww = w[:, None, None]
    decrease = impurity[:, None, None] - (w_l / ww) * imp_l - (w_r / ww) * imp_r
    dec = xp.where(valid, decrease, -xp.inf)  # (nodes, features in their own order, bins - 1)

    cut = xp.argmax(dec, axis=2)  # the lowest bin among equal decreases
    best = xp.squeeze(xp.take_along_axis(dec, cut[:, :, None], axis=2), axis=2)
    node_gain = best * w[:, None] / weighted_n_root
    ok = xp.isfinite(best) & ~(node_gain + 1e-12 < min_impurity_decrease) & (best > 0)
    # In the node's order: tried are the first n_draw features, or up to the first that
    # splits if none of them does; the earliest in order wins among equal decreases.
    ok_o = xp.take_along_axis(ok, order, axis=1)
    best_o = xp.take_along_axis(best, order, axis=1)
    cut_o = xp.take_along_axis(cut, order, axis=1)
    position = xp.arange(n_features)[None, :] if xp is np else \
        xp.arange(n_features, sycl_queue=hist.sycl_queue)[None, :]
    any_ok = xp.any(ok_o, axis=1)
    first_ok = xp.where(any_ok, xp.argmax(ok_o, axis=1), n_features)
    limit = xp.maximum(n_draw, first_ok + 1)
    score = xp.where(ok_o & (position < limit[:, None]), best_o, -xp.inf)
    pick = xp.argmax(score, axis=1)[:, None]
    gain = xp.squeeze(xp.take_along_axis(score, pick, axis=1), axis=1)
    splits = xp.isfinite(gain)
    feature = xp.where(splits, xp.squeeze(xp.take_along_axis(order, pick, axis=1), axis=1), -1)
    cut = xp.where(splits, xp.squeeze(xp.take_along_axis(cut_o, pick, axis=1), axis=1), 0)
    return feature, cut, xp.where(splits, gain, 0.0)


def best_splits(hist, feature_order, n_draw, classification, criterion, min_samples_leaf,
                min_impurity_decrease, weighted_n_root, min_weight_leaf=0.0):
    """:func:`spmdlearn.reference.best_splits` on a dpnp histogram: the same
    ``(feature, bin, decrease)`` (int64, int64, float64 NumPy arrays: O(nodes), the level's
    decisions, which every rank needs on the host). Declines where the device lacks float64."""
    xp = dpnp()
    if not hist.sycl_device.has_aspect_fp64:
        return None  # the reference's decisions need float64 arithmetic: decline
    hist = hist.astype(xp.float64, copy=False)
    n_nodes, n_features, n_bins = hist.shape[:3]
    if n_nodes == 0 or n_bins < 2:
        return np.full(n_nodes, -1, np.int64), np.zeros(n_nodes, np.int64), np.zeros(n_nodes)
    order = on_device(np.asarray(to_host(feature_order) if hasattr(feature_order, "sycl_queue")
                                 else feature_order, np.int64), hist)
    feature, cut, gain = _best_splits(xp, xp.ascontiguousarray(hist), order, n_draw,
                                      classification, criterion, min_samples_leaf,
                                      min_impurity_decrease, weighted_n_root, min_weight_leaf)
    return (to_host(feature).astype(np.int64), to_host(cut).astype(np.int64),
            to_host(gain).astype(np.float64))
