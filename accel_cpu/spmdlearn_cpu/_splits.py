"""The forests' split search and the finiteness check: the cpu twins of
:func:`spmdlearn.reference.best_splits` and :func:`spmdlearn.reference.all_finite`.

The split search runs one compiled loop per node over its features and bins, with no temporary
of the histogram's size (the reference makes about twelve). Every decision must be the
reference's bit for bit, so each operation is the reference's, in NumPy's order of summation: a
cumulative sum over bins is sequential (``np.cumsum``), the sum of a node's bins is sequential
(NumPy reduces a non-innermost axis row by row), and a sum over classes is NumPy's pairwise
summation (:func:`_pairwise`). Entropy's ``log2`` is the one operation a compiled loop cannot
reproduce (NumPy's vectorised logarithm and the C library's differ in the last bit for about 0.2%
of arguments), so for ``criterion="entropy"`` the class shares are written out and NumPy takes
their logarithm, in between two compiled passes.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spmdlearn.reference._forest import no_splits

from ._layout import canonical
from ._threads import use_kernel_threads

__all__ = ["all_finite", "best_splits"]

_GINI, _ENTROPY, _SQUARED_ERROR = 0, 1, 2


@njit(cache=True)
def _block(a, lo, n):
    """NumPy's ``pairwise_sum`` of ``a[lo:lo + n]`` for ``n <= 128``: a plain loop below 8
    elements, 8 accumulators above."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def _pairwise(a, lo, n):
    """NumPy's ``pairwise_sum`` of ``a[lo:lo + n]``: blocks of at most 128 (:func:`_block`),
    above that the sum of two halves cut at a multiple of 8, each summed the same way.

    The halving is NumPy's recursion, walked with an explicit stack: numba cannot reload a
    recursive function from its cache.
    """
    if n <= 128:
        return _block(a, lo, n)
    los = np.empty(64, np.int64)
    ns = np.empty(64, np.int64)
    stage = np.zeros(64, np.int64)  # 1: waiting for the left half, 2: for the right half
    left = np.empty(64)
    top = 0
    los[0] = lo
    ns[0] = n
    while True:
        m = ns[top]
        if m > 128:  # split: the left half first
            stage[top] = 1
            half = m // 2
            half -= half % 8
            los[top + 1] = los[top]
            ns[top + 1] = half
            top += 1
            continue
        v = _block(a, los[top], m)
        top -= 1
        while True:  # hand v up to the node that waits for it
            if stage[top] == 1:
                left[top] = v
                stage[top] = 2
                half = ns[top] // 2
                half -= half % 8
                los[top + 1] = los[top] + half
                ns[top + 1] = ns[top] - half
                top += 1
                break
            v = left[top] + v
            if top == 0:
                return v
            top -= 1


@njit(cache=True)
def _impurity(s, mode, logp, scratch):
    """(impurity, weight) of one vector of summed statistics ``s`` (the reference's
    ``_impurity``); ``logp``: log2 of the class shares (entropy only), ``scratch``: a buffer."""
    k = s.shape[0]
    if mode == _SQUARED_ERROR:
        w = s[0]
        if w > 0:
            mean = s[1] / w
            var = s[2] / w - mean * mean
        else:
            var = 0.0
        return max(var, 0.0), w
    w = _pairwise(s, 0, k)
    for c in range(k):
        p = s[c] / w if w > 0 else 0.0
        scratch[c] = p * p if mode == _GINI else p * logp[c]
    if mode == _GINI:
        return 1.0 - _pairwise(scratch, 0, k), w
    return -_pairwise(scratch, 0, k), w


@njit(cache=True)
def _sides(hist, node, f, cum, cum_rows):
    """Left statistics of every cut of feature ``f`` (sequential cumulative sums)."""
    n_bins, n_stats = hist.shape[2], hist.shape[3] - 1
    for s in range(n_stats):
        acc = hist[node, f, 0, s]
        cum[0, s] = acc
        for b in range(1, n_bins - 1):
            acc += hist[node, f, b, s]
            cum[b, s] = acc
    acc = hist[node, f, 0, n_stats]
    cum_rows[0] = acc
    for b in range(1, n_bins - 1):
        acc += hist[node, f, b, n_stats]
        cum_rows[b] = acc


@njit(cache=True)
def _node_totals(hist, node, total):
    """The node's summed statistics (first feature, bins summed row by row) and row count
    (pairwise, as ``np.sum`` over the last axis)."""
    n_bins, n_stats = hist.shape[2], hist.shape[3] - 1
    for s in range(n_stats):
        acc = hist[node, 0, 0, s]
        for b in range(1, n_bins):
            acc += hist[node, 0, b, s]
        total[s] = acc
    rows = np.empty(n_bins)
    for b in range(n_bins):
        rows[b] = hist[node, 0, b, n_stats]
    return _pairwise(rows, 0, n_bins)


@njit(parallel=True, cache=True)
def _shares(hist, shares):
    """Entropy's first pass: the class shares of each node's total and of both sides of every
    cut. ``shares``: (n_nodes, 1 + 2 * n_features * (n_bins - 1), n_classes)."""
    n_nodes, n_features, n_bins = hist.shape[0], hist.shape[1], hist.shape[2]
    k = hist.shape[3] - 1
    for node in prange(n_nodes):
        total = np.empty(k)
        _node_totals(hist, node, total)
        cum = np.empty((max(n_bins - 1, 1), k))
        cum_rows = np.empty(max(n_bins - 1, 1))
        side = np.empty(k)
        w = _pairwise(total, 0, k)
        for c in range(k):
            shares[node, 0, c] = total[c] / w if w > 0 else 0.0
        for f in range(n_features):
            _sides(hist, node, f, cum, cum_rows)
            for b in range(n_bins - 1):
                at = 1 + 2 * (f * (n_bins - 1) + b)
                wl = _pairwise(cum[b], 0, k)
                for c in range(k):
                    side[c] = total[c] - cum[b, c]
                wr = _pairwise(side, 0, k)
                for c in range(k):
                    shares[node, at, c] = cum[b, c] / wl if wl > 0 else 0.0
                    shares[node, at + 1, c] = side[c] / wr if wr > 0 else 0.0


@njit(parallel=True, cache=True)
def _search(hist, order, n_draw, mode, min_samples_leaf, min_impurity_decrease,
            weighted_n_root, min_weight_leaf, logs, feature, cut, gain):
    n_nodes, n_features, n_bins = hist.shape[0], hist.shape[1], hist.shape[2]
    k = hist.shape[3] - 1
    for node in prange(n_nodes):
        total = np.empty(k)
        total_rows = _node_totals(hist, node, total)
        scratch = np.empty(k)
        side = np.empty(k)
        cum = np.empty((n_bins - 1, k))
        cum_rows = np.empty(n_bins - 1)
        impurity, w = _impurity(total, mode, logs[node, 0], scratch)
        # Tried: the first n_draw features of the node's order, or, if none of them splits, up
        # to the first one that does; the earliest in the order wins among equal decreases.
        # Features are searched in that order and the search stops there, so a feature that is
        # not tried is never read.
        pick = -1
        score = -np.inf
        pick_bin = 0
        first_ok = -1
        for i in range(n_features):
            f = order[node, i]
            _sides(hist, node, f, cum, cum_rows)
            top = -np.inf
            top_bin = 0
            for b in range(n_bins - 1):
                at = 1 + 2 * (f * (n_bins - 1) + b)
                for c in range(k):
                    side[c] = total[c] - cum[b, c]
                imp_l, w_l = _impurity(cum[b], mode, logs[node, at], scratch)
                imp_r, w_r = _impurity(side, mode, logs[node, at + 1], scratch)
                left_rows = cum_rows[b]
                right_rows = total_rows - left_rows
                valid = (left_rows >= min_samples_leaf) and (right_rows >= min_samples_leaf) \
                    and w_l > 0 and w_r > 0 and w_l >= min_weight_leaf \
                    and w_r >= min_weight_leaf
                dec = impurity - (w_l / w) * imp_l - (w_r / w) * imp_r if valid else -np.inf
                if dec > top:  # np.argmax: the first maximum
                    top = dec
                    top_bin = b
            node_gain = top * w / weighted_n_root
            good = np.isfinite(top) and not (node_gain + 1e-12 < min_impurity_decrease) \
                and top > 0
            if good:
                if first_ok < 0:
                    first_ok = i
                if pick < 0 or top > score:
                    pick = i
                    score = top
                    pick_bin = top_bin
            if i + 1 >= n_draw and first_ok >= 0:
                break
        if pick >= 0:
            feature[node] = order[node, pick]
            cut[node] = pick_bin
            gain[node] = score


@njit(cache=True, inline="always")
def _sum(a, k):
    """NumPy's sum of ``a[:k]`` (pairwise: a plain loop below 8 elements)."""
    if k < 8:
        res = 0.0
        for i in range(k):
            res += a[i]
        return res
    return _pairwise(a, 0, k)


@njit(cache=True, inline="always")
def _gini(s, k, scratch):
    """(Gini impurity, weight) of the summed class weights ``s[:k]``: :func:`_impurity`'s."""
    w = _sum(s, k)
    for c in range(k):
        p = s[c] / w if w > 0 else 0.0
        scratch[c] = p * p
    return 1.0 - _sum(scratch, k), w


@njit(parallel=True, cache=True)
def _search_direct(hist, order, n_draw, mode, min_samples_leaf, min_impurity_decrease,
                   weighted_n_root, min_weight_leaf, feature, cut, gain):
    """:func:`_search` for Gini and squared error, one pass over each tried feature's bins.

    A bin that adds nothing (no rows, zero statistics) leaves the cut's statistics as they
    were at the previous bin, hence the same decrease, which is not a new maximum (the first
    maximum wins), and an empty first bin leaves an empty left side: such bins are not
    evaluated. At the deep levels of a tree most of a node's bins are empty.
    """
    n_nodes, n_features, n_bins = hist.shape[0], hist.shape[1], hist.shape[2]
    k = hist.shape[3] - 1
    for node in prange(n_nodes):
        total = np.empty(k)
        total_rows = _node_totals(hist, node, total)
        left = np.empty(k)
        side = np.empty(k)
        scratch = np.empty(max(k, 1))
        if mode == _GINI:
            impurity, w = _gini(total, k, scratch)
        else:
            impurity, w = _impurity(total, mode, scratch, scratch)
        pick = -1
        score = -np.inf
        pick_bin = 0
        first_ok = -1
        for i in range(n_features):
            f = order[node, i]
            top = -np.inf
            top_bin = 0
            left_rows = 0.0
            for c in range(k):
                left[c] = 0.0
            for b in range(n_bins - 1):
                rows = hist[node, f, b, k]
                if b == 0:  # the cumulative sums as np.cumsum forms them
                    left_rows = rows
                    for c in range(k):
                        left[c] = hist[node, f, 0, c]
                else:
                    left_rows += rows
                    for c in range(k):
                        left[c] += hist[node, f, b, c]
                if rows == 0:  # nothing added (rows and weights zero): the previous cut's
                    empty = True
                    for c in range(k):
                        if hist[node, f, b, c] != 0:
                            empty = False
                    if empty:
                        continue
                right_rows = total_rows - left_rows
                if left_rows < min_samples_leaf or right_rows < min_samples_leaf:
                    continue
                for c in range(k):
                    side[c] = total[c] - left[c]
                if mode == _GINI:
                    imp_l, w_l = _gini(left, k, scratch)
                    imp_r, w_r = _gini(side, k, scratch)
                else:
                    imp_l, w_l = _impurity(left, mode, scratch, scratch)
                    imp_r, w_r = _impurity(side, mode, scratch, scratch)
                if not (w_l > 0 and w_r > 0 and w_l >= min_weight_leaf
                        and w_r >= min_weight_leaf):
                    continue
                dec = impurity - (w_l / w) * imp_l - (w_r / w) * imp_r
                if dec > top:  # np.argmax: the first maximum
                    top = dec
                    top_bin = b
            node_gain = top * w / weighted_n_root
            good = np.isfinite(top) and not (node_gain + 1e-12 < min_impurity_decrease) \
                and top > 0
            if good:
                if first_ok < 0:
                    first_ok = i
                if pick < 0 or top > score:
                    pick = i
                    score = top
                    pick_bin = top_bin
            if i + 1 >= n_draw and first_ok >= 0:
                break
        if pick >= 0:
            feature[node] = order[node, pick]
            cut[node] = pick_bin
            gain[node] = score


def best_splits(hist, feature_order, n_draw, classification, criterion, min_samples_leaf,
                min_impurity_decrease, weighted_n_root, min_weight_leaf=0.0):
    """:func:`spmdlearn.reference.best_splits` in compiled loops: the same
    ``(feature, bin, decrease)`` bit for bit, with O(n_features x n_bins) memory per node
    (and, for entropy, one array of the class shares of every cut)."""
    hist = np.ascontiguousarray(hist, dtype=np.float64)
    n_nodes, n_features, n_bins = hist.shape[:3]
    feature, cut, gain = no_splits(n_nodes)
    if n_nodes == 0 or n_bins < 2:
        return feature, cut, gain
    order = np.ascontiguousarray(feature_order, dtype=np.int64)
    mode = _SQUARED_ERROR if not classification else (
        _GINI if criterion == "gini" else _ENTROPY)
    k = hist.shape[3] - 1
    use_kernel_threads()
    if mode != _ENTROPY:
        _search_direct(hist, order, int(n_draw), mode, float(min_samples_leaf),
                       float(min_impurity_decrease), float(weighted_n_root),
                       float(min_weight_leaf), feature, cut, gain)
        return feature, cut, gain
    if mode == _ENTROPY:
        shares = np.empty((n_nodes, 1 + 2 * n_features * (n_bins - 1), k))
        _shares(hist, shares)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.where(shares > 0, np.log2(np.where(shares > 0, shares, 1)), 0.0)
    else:
        logs = np.zeros((n_nodes, 1 + 2 * n_features * (n_bins - 1), 0))  # not read
    _search(hist, order, int(n_draw), mode, float(min_samples_leaf),
            float(min_impurity_decrease), float(weighted_n_root), float(min_weight_leaf), logs,
            feature, cut, gain)
    return feature, cut, gain


@canonical(read_only="X")
@njit(parallel=True, cache=True, fastmath={"reassoc"})
def _finite_rows(X):
    """Whether every element is finite: ``x - x`` is 0 for a finite ``x`` and NaN for NaN and
    the infinities, so the sum of them is 0 exactly when all are finite. The sum may be taken in
    any order (``reassoc`` only: no flag that assumes finite values), so it runs in SIMD lanes."""
    total = 0.0
    for i in prange(X.shape[0]):
        row = 0.0
        for j in range(X.shape[1]):
            row += X[i, j] - X[i, j]
        total += row
    return total == 0.0


def all_finite(X):
    """:func:`spmdlearn.reference.all_finite`: one compiled pass over the rows, no temporary."""
    if X.size == 0 or X.dtype.kind not in "fc":
        return True
    if X.ndim == 0:
        return bool(np.isfinite(X))
    use_kernel_threads()
    if X.dtype.kind == "c":  # finite when both parts are
        X = np.ascontiguousarray(X).view(X.real.dtype)
    return bool(_finite_rows(X.reshape(X.shape[0], -1)))
