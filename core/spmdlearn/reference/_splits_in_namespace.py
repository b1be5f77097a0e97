"""The forests' split search in any array namespace: :func:`spmdlearn.reference.best_splits`
with the reference's arithmetic operation for operation, so that every decision (and every tie)
is the reference's bit for bit on a device.

A helper for backends (NumPy, CuPy and dpnp serve it), not a kernel. Each step is the
reference's NumPy expression with NumPy's order of summation made explicit: a cumulative sum
over bins is sequential (``np.cumsum``), the sum of a node's bins is sequential (NumPy reduces a
non-innermost axis row by row), and a sum over the last axis (classes) is NumPy's pairwise
summation (:func:`_sum_last`). The elementwise operations are IEEE operations, the same on a
device. Entropy's ``log2`` is the one exception: a device's logarithm may differ from NumPy's in
the last bit, so the class shares cross to the host for it (one array of the histogram's size).

Work O(n_nodes x n_features x n_bins x n_stats), in about ``n_bins`` array operations.
"""

from __future__ import annotations

import numpy as np

__all__ = ["best_splits_in"]


class _OnHost:
    """NumPy arrays: nothing moves."""

    @staticmethod
    def to_host(a):
        return np.asarray(a)

    @staticmethod
    def on_device(a, like):
        return np.asarray(a)


_ON_HOST = _OnHost()


def _pairwise(xp, a, lo, n):
    """NumPy's pairwise sum of ``a[..., lo:lo + n]`` (``pairwise_sum`` of its umath loops:
    8 accumulators up to 128 elements, halves above)."""
    if n < 8:
        out = xp.zeros_like(a[..., 0])
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


def _impurity(xp, stats, classification, criterion, move):
    """The reference's ``_impurity``: (impurity, weight) of summed statistics."""
    if classification:
        w = _sum_last(xp, stats)
        safe = xp.where(w > 0, w, 1)[..., None]
        p = xp.where(w[..., None] > 0, stats / safe, 0.0)
        if criterion == "gini":
            return 1.0 - _sum_last(xp, p * p), w
        host = move.to_host(p)
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = np.where(host > 0, np.log2(np.where(host > 0, host, 1)), 0.0)
        logp = move.on_device(logp, p)
        return -_sum_last(xp, p * logp), w
    w = stats[..., 0]
    safe = xp.where(w > 0, w, 1)
    mean = xp.where(w > 0, stats[..., 1] / safe, 0.0)
    var = xp.where(w > 0, stats[..., 2] / safe - mean * mean, 0.0)
    return xp.maximum(var, 0.0), w


def best_splits_in(xp, hist, order, n_draw, classification, criterion, min_samples_leaf,
                   min_impurity_decrease, weighted_n_root, min_weight_leaf, move=None):
    """:func:`~spmdlearn.reference.best_splits` in the namespace ``xp``, bit for bit.

    Parameters
    ----------
    xp : module
        NumPy, CuPy or dpnp: the namespace of ``hist`` and ``order``.
    hist : array of shape (n_nodes, n_features, n_bins, n_stats + 1), float64, C-ordered
        As for the reference; on ``xp``'s device.
    order : array of shape (n_nodes, n_features), int64
        Each node's drawn feature order, on ``hist``'s device.
    n_draw, classification, criterion, min_samples_leaf, min_impurity_decrease, \
weighted_n_root, min_weight_leaf
        As for the reference.
    move : object with ``to_host(a)`` and ``on_device(host, like)``, default=None
        How the class shares reach the host for entropy's ``log2`` and come back (None: NumPy,
        nothing moves).

    Returns
    -------
    feature, cut, decrease : arrays of shape (n_nodes,) in ``xp``
        The split feature (-1 where the node does not split), its bin and the impurity
        decrease, as the reference returns them.
    """
    move = move or _ON_HOST
    n_nodes, n_features, n_bins = hist.shape[:3]
    stats, rows = hist[..., :-1], hist[..., -1]
    total = hist[:, 0, 0, :-1]
    for b in range(1, n_bins):  # NumPy sums a non-innermost axis row by row
        total = total + hist[:, 0, b, :-1]
    total_rows = _sum_last(xp, xp.ascontiguousarray(hist[:, 0, :, -1]))
    impurity, w = _impurity(xp, total, classification, criterion, move)

    left = _cumsum(xp, stats, 2)[:, :, :-1]
    left_rows = _cumsum(xp, rows, 2)[:, :, :-1]
    right = total[:, None, None, :] - left
    right_rows = total_rows[:, None, None] - left_rows
    imp_l, w_l = _impurity(xp, left, classification, criterion, move)
    imp_r, w_r = _impurity(xp, right, classification, criterion, move)
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
    position = move.on_device(np.arange(n_features), order)[None, :]
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
