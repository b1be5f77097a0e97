"""k-means kernels: the cpu twins of :mod:`spmdlearn.reference._kmeans`.

The assignment is a GEMM of a row block against the centers (NumPy's matmul in the input's
dtype, the reference's own call, with scikit-learn's ``||c||^2 - 2 x.c`` scores, so ties and
near-ties fall as in the reference), fused in one compiled pass with the argmin, the
per-cluster weighted sums (float64), the inertia and the count of changed labels. Only a block
of scores exists at a time. The bounded step (:func:`lloyd_bounded`) skips the scores of the
rows whose label cannot change and gives the same labels and partial, bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spmdlearn.reference import LloydPartial

from ._blocks import block_rows
from ._layout import canonical, read_only
from ._threads import kernel_threads, single_threaded_blas, use_kernel_threads

__all__ = ["lloyd_local", "lloyd_bounded", "kmeans_inertia", "farthest_assigned_rows"]


@njit(cache=True, nogil=True, inline="always")
def _sq_distance(X, i, centers64, c):
    """``||X[i] - centers64[c]||^2`` in float64, from coordinate differences.

    Four partial sums break the chain of dependent additions (the order of a pairwise sum of
    four interleaved strands: rounding differs from a sequential sum by a few ulps).
    """
    d = X.shape[1]
    a0 = a1 = a2 = a3 = 0.0
    j = 0
    while j + 4 <= d:
        e0 = np.float64(X[i, j]) - centers64[c, j]
        e1 = np.float64(X[i, j + 1]) - centers64[c, j + 1]
        e2 = np.float64(X[i, j + 2]) - centers64[c, j + 2]
        e3 = np.float64(X[i, j + 3]) - centers64[c, j + 3]
        a0 += e0 * e0
        a1 += e1 * e1
        a2 += e2 * e2
        a3 += e3 * e3
        j += 4
    while j < d:
        e0 = np.float64(X[i, j]) - centers64[c, j]
        a0 += e0 * e0
        j += 1
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, nogil=True, inline="always")
def _add_row(X, i, best, wi, sums, centers64):
    """Add ``wi * X[i]`` to ``sums[best]``; return ``||X[i] - centers64[best]||^2`` (float64,
    four partial sums over the features, added as ``(a0 + a1) + (a2 + a3)``)."""
    d = X.shape[1]
    a0 = a1 = a2 = a3 = 0.0
    j = 0
    while j + 4 <= d:
        x0 = np.float64(X[i, j])
        x1 = np.float64(X[i, j + 1])
        x2 = np.float64(X[i, j + 2])
        x3 = np.float64(X[i, j + 3])
        sums[best, j] += wi * x0
        sums[best, j + 1] += wi * x1
        sums[best, j + 2] += wi * x2
        sums[best, j + 3] += wi * x3
        e0 = x0 - centers64[best, j]
        e1 = x1 - centers64[best, j + 1]
        e2 = x2 - centers64[best, j + 2]
        e3 = x3 - centers64[best, j + 3]
        a0 += e0 * e0
        a1 += e1 * e1
        a2 += e2 * e2
        a3 += e3 * e3
        j += 4
    while j < d:
        x0 = np.float64(X[i, j])
        sums[best, j] += wi * x0
        e0 = x0 - centers64[best, j]
        a0 += e0 * e0
        j += 1
    return (a0 + a1) + (a2 + a3)


@canonical(read_only="X")
@njit(cache=True, nogil=True)
def _offset_block(X, lo, hi, offset, out):
    """``out[:hi - lo] = X[lo:hi] - offset`` in X's dtype (each value as in the whole-array
    subtraction), in one compiled pass; NumPy's broadcast subtraction costs a loop call for
    every row of a few features."""
    d = X.shape[1]
    for r in range(hi - lo):
        for j in range(d):
            out[r, j] = X[lo + r, j] - offset[j]


@canonical(read_only="X w centers64")
@njit(cache=True, nogil=True)
def _assign_block(X, w, centers64, c_norms, S, labels, labels_old, sums, weights):
    """Labels of the rows of a block from their scores, and the block's share of the statistics.

    ``X``, ``w``, ``S``, ``labels`` and ``labels_old`` are the block's rows. Returns
    ``(inertia, n_changed)`` of the block; ``sums``/``weights`` are updated in place.
    Scores are rounded in the dtype of ``S`` (``2 s`` as ``s + s``, exact; a literal 2 would
    promote float32 scores to float64 and break near-ties differently from the reference).
    The inertia uses the squared distance to the chosen center computed from coordinate
    differences in float64 (no cancellation), in :func:`_sq_distance`'s four strands; it is
    fused with the cluster sums, so each value of the row is loaded once.
    """
    m, k = S.shape
    inertia = 0.0
    changed = 0
    for i in range(m):
        best = 0
        best_score = c_norms[0] - (S[i, 0] + S[i, 0])
        for c in range(1, k):
            score = c_norms[c] - (S[i, c] + S[i, c])
            if score < best_score:
                best_score = score
                best = c
        labels[i] = best
        if labels_old[i] != best:
            changed += 1
        wi = np.float64(w[i])
        weights[best] += wi
        inertia += wi * _add_row(X, i, best, wi, sums, centers64)
    return inertia, changed


#: Rows per block of the assignment: the block's scores ``(rows, n_clusters)`` stay in cache.
_ASSIGN_ROWS = 4096


def _stride_zero(w):
    w = np.asarray(w)
    return w.ndim == 1 and w.shape[0] > 1 and w.strides[0] == 0


def _weights_per_block(w):
    """``block(lo, hi)``: the weights of rows ``lo:hi`` as a contiguous array. A broadcast view
    of one weight (stride 0, what the estimator passes for unweighted rows) is read through one
    block of that weight, so no per-row array is made."""
    if w.ndim == 1 and w.shape[0] > 1 and w.strides[0] == 0:
        const = read_only(np.full(_ASSIGN_ROWS, w[0]))
        return lambda lo, hi: const[: hi - lo]
    w = read_only(np.ascontiguousarray(w))
    return lambda lo, hi: w[lo:hi]


def lloyd_local(X, sample_weight, centers, labels_old, X_offset=None):
    """:func:`spmdlearn.reference.lloyd_local`: labels and the fused Lloyd partial.

    Each block's scores come from NumPy's matmul of the block, the call the reference makes on
    the whole shard (the same BLAS kernel, or NumPy's own loop for strided views), so that the
    labels are the reference's, near-ties included; the compiled pass then does the argmin, the
    cluster sums and weights, the inertia and the changed count while the block is in cache.
    With ``X_offset``, each block is first offset into a block-sized buffer (the values of
    offsetting the whole shard), so the offset rows never exist beyond one block per thread.
    """
    k, d = centers.shape
    n = X.shape[0]
    if n == 0:
        return np.zeros(0, np.int32), LloydPartial(np.zeros((k, d)), np.zeros(k), 0.0, 0.0)
    C = np.asarray(centers, dtype=X.dtype)
    Ct = C.T
    c_norms = np.einsum("ij,ij->i", C, C)
    centers64 = read_only(np.asarray(centers, dtype=np.float64))
    X = read_only(X)  # the canonical kernels' argument types, once (see _layout)
    weights_of = _weights_per_block(_as_float(sample_weight))
    labels_old = np.asarray(labels_old)
    labels = np.empty(n, dtype=np.int32)
    offset = None if X_offset is None else np.asarray(X_offset, dtype=X.dtype)

    def task(t_lo, t_hi):
        sums, weights = np.zeros((k, d)), np.zeros(k)
        inertia, changed = 0.0, 0
        buf = None if offset is None else np.empty((min(_ASSIGN_ROWS, t_hi - t_lo), d), X.dtype)
        for lo in range(t_lo, t_hi, _ASSIGN_ROWS):
            hi = min(t_hi, lo + _ASSIGN_ROWS)
            if offset is None:
                Xb = X[lo:hi]
            else:
                Xb = buf[: hi - lo]
                _offset_block(X, lo, hi, offset, Xb)
            S = Xb @ Ct
            part, moved = _assign_block(Xb, weights_of(lo, hi), centers64, c_norms, S,
                                        labels[lo:hi], labels_old[lo:hi], sums, weights)
            inertia += part
            changed += moved
        return sums, weights, inertia, changed

    sums, weights, inertia, changed = _fold_tasks(_in_tasks(n, task))
    return labels, LloydPartial(sums, weights, float(inertia), float(changed))


#: Rows per task of the threaded assignment (whole blocks). Tasks depend on the rows only, not
#: on the thread count, and their partials are added in task order.
_TASK_ROWS = 16 * 4096


def _fold_tasks(parts):
    """``(sums, weights, inertia, changed)`` of the tasks' partials, added in task order: the
    same bits for any thread count."""
    sums, weights, inertia, changed = parts[0]
    for more in parts[1:]:
        sums += more[0]
        weights += more[1]
        inertia += more[2]
        changed += more[3]
    return sums, weights, inertia, changed


def _in_tasks(n, task):
    """``[task(lo, hi) for each task's rows]``, on the rank's kernel threads.

    Each task runs blocks of a BLAS product and a compiled pass that releases the GIL; BLAS is
    held to one thread meanwhile (its threads would spin between the small products and take
    the cores from the tasks). One task, or one thread: the calling thread, as before.
    """
    bounds = [(lo, min(n, lo + _TASK_ROWS)) for lo in range(0, n, _TASK_ROWS)]
    threads = min(kernel_threads(), len(bounds))
    if threads <= 1:
        return [task(lo, hi) for lo, hi in bounds]
    from concurrent.futures import ThreadPoolExecutor

    with single_threaded_blas(), ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda b: task(*b), bounds))


def _as_float(w):
    """The weights as float64, the one weight type the kernels are compiled for (they read
    each weight as float64, so float32 weights give the same values); a broadcast view of one
    weight stays a broadcast view (no per-row array)."""
    w = np.asarray(w)
    if w.dtype == np.float64:
        return w
    if _stride_zero(w):
        return np.broadcast_to(np.float64(w[0]), w.shape)
    return w.astype(np.float64)


@canonical(read_only="X w centers labels")
@njit(parallel=True, cache=True)
def _inertia(X, w, centers, labels, block):
    n, d = X.shape
    nb = (n + block - 1) // block
    parts = np.zeros(max(nb, 1))
    for b in prange(nb):
        total = 0.0
        for i in range(b * block, min(n, (b + 1) * block)):
            total += np.float64(w[i]) * _sq_distance(X, i, centers, labels[i])
        parts[b] = total
    return parts.sum()


def kmeans_inertia(X, sample_weight, centers, labels):
    """:func:`spmdlearn.reference.kmeans_inertia`, in one compiled pass (float64)."""
    if X.shape[0] == 0:
        return 0.0
    use_kernel_threads()
    # Contiguous float64 weights and int32 labels (the estimator's): one compiled
    # specialization per X type, whatever the caller's (a copy of one value per row at most).
    return float(_inertia(X, np.ascontiguousarray(_as_float(sample_weight)),
                          np.asarray(centers, dtype=np.float64),
                          np.ascontiguousarray(labels, dtype=np.int32), block_rows(X.shape[1])))


@canonical(read_only="X centers64")
@njit(cache=True, nogil=True)
def _assign_only(X, centers64, c_norms, S, lo, labels, sq):
    m, k = S.shape
    for r in range(m):
        best = 0
        best_score = c_norms[0] - (S[r, 0] + S[r, 0])
        for c in range(1, k):
            score = c_norms[c] - (S[r, c] + S[r, c])
            if score < best_score:
                best_score = score
                best = c
        labels[lo + r] = best
        sq[lo + r] = _sq_distance(X, lo + r, centers64, best)


def kmeans_assign(X, centers):
    """:func:`spmdlearn.reference.kmeans_assign`: block scores by NumPy's matmul (the
    reference's call, so the same decisions), fused in a compiled pass with the argmin and the
    squared distance to the chosen center (float64, from coordinate differences)."""
    n = X.shape[0]
    labels, sq = np.empty(n, np.int32), np.empty(n)
    if n == 0:
        return labels, sq
    C = np.asarray(centers, dtype=X.dtype)
    c_norms = np.einsum("ij,ij->i", C, C)
    centers64 = read_only(np.asarray(centers, dtype=np.float64))
    X = read_only(X)  # the canonical kernels' argument types, once (see _layout)

    def task(t_lo, t_hi):
        for lo in range(t_lo, t_hi, _ASSIGN_ROWS):
            hi = min(t_hi, lo + _ASSIGN_ROWS)
            _assign_only(X, centers64, c_norms, X[lo:hi] @ C.T, lo, labels, sq)

    _in_tasks(n, task)
    return labels, sq


def kmeans_transform(X, centers):
    """:func:`spmdlearn.reference.kmeans_transform`: scikit-learn's ``euclidean_distances`` (a
    BLAS GEMM plus norms), on the block of rows the caller passes."""
    from sklearn.metrics.pairwise import euclidean_distances

    centers = np.asarray(centers, dtype=X.dtype)
    if X.shape[0] == 0:
        return np.zeros((0, centers.shape[0]), dtype=X.dtype)
    return euclidean_distances(X, centers)


#: Rows per block of the k-means++ kernels: their distance blocks stay small.
_PLUSPLUS_ROWS = 1 << 14


def _sq_block(X, lo, hi, C, x_squared_norms):
    from sklearn.metrics.pairwise import euclidean_distances

    # scikit-learn's k-means++ orientation, euclidean_distances(candidates, X, ...): the terms
    # -2 c.x + ||c||^2 + ||x||^2 are added in that order, so that candidates whose potentials
    # are equal up to rounding (duplicated rows, grids) compare as in scikit-learn.
    norms = None if x_squared_norms is None else \
        np.asarray(x_squared_norms[lo:hi]).reshape(1, -1)
    return euclidean_distances(C, X[lo:hi], Y_norm_squared=norms, squared=True).T


def kmeans_min_distances(X, centers, closest=None, x_squared_norms=None):
    """:func:`spmdlearn.reference.kmeans_min_distances`, a block of rows at a time (scikit-learn's
    squared ``euclidean_distances``, as its k-means++), so no ``(n, n_new)`` matrix is made."""
    n = X.shape[0]
    C = np.asarray(centers, dtype=X.dtype)
    out = np.empty(n)
    for lo in range(0, n, _PLUSPLUS_ROWS):
        hi = min(n, lo + _PLUSPLUS_ROWS)
        out[lo:hi] = _sq_block(X, lo, hi, C, x_squared_norms).min(axis=1, initial=np.inf)
    if closest is not None:
        np.minimum(np.asarray(closest, np.float64), out, out=out)
    return out


def kmeans_plusplus_potentials(X, sample_weight, candidates, closest, x_squared_norms=None):
    """:func:`spmdlearn.reference.kmeans_plusplus_potentials`, a block of rows at a time: each
    block's distances are clipped by ``closest`` and reduced at once."""
    n = X.shape[0]
    C = np.asarray(candidates, dtype=X.dtype)
    total = np.zeros(C.shape[0])
    closest = np.asarray(closest, np.float64)
    w = np.asarray(sample_weight, np.float64)
    for lo in range(0, n, _PLUSPLUS_ROWS):
        hi = min(n, lo + _PLUSPLUS_ROWS)
        D = _sq_block(X, lo, hi, C, x_squared_norms).astype(np.float64, copy=False)
        np.minimum(closest[lo:hi, None], D, out=D)
        total += np.ascontiguousarray(w[lo:hi]) @ D
    return total


_EPS64 = float(np.finfo(np.float64).eps)


@njit(cache=True, nogil=True, inline="always")
def _sq_distance_row(x, centers64, c):
    """:func:`_sq_distance` of the row ``x`` (the same four strands, the same bits)."""
    d = x.shape[0]
    a0 = a1 = a2 = a3 = 0.0
    j = 0
    while j + 4 <= d:
        e0 = np.float64(x[j]) - centers64[c, j]
        e1 = np.float64(x[j + 1]) - centers64[c, j + 1]
        e2 = np.float64(x[j + 2]) - centers64[c, j + 2]
        e3 = np.float64(x[j + 3]) - centers64[c, j + 3]
        a0 += e0 * e0
        a1 += e1 * e1
        a2 += e2 * e2
        a3 += e3 * e3
        j += 4
    while j < d:
        e0 = np.float64(x[j]) - centers64[c, j]
        a0 += e0 * e0
        j += 1
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, nogil=True)
def _bound_pass(X, lo, hi, offset, centers64, decrement, separation, c_max, margin, labels_old,
                lower_old, labels, lower, upper, dist, G, redo, w, sums, weights, budget):
    """The bound test of :func:`spmdlearn.reference.lloyd_bounded` on rows ``lo:hi``.

    A kept row gets its label, its moved bound, ``dist`` (its squared distance to its
    center: :func:`_sq_distance`'s expression on the offset row, the plain step's inertia
    term) and its upper bound from it (:func:`_upper`). Up to ``budget`` rows that fail the test are assigned here from their float64
    distances to every center when the nearest wins by more than the margin (then the plain
    step's scores pick it too), with the second-nearest distance, rounded down, as their bound.
    Any other row (a near-tie, or beyond the budget) is copied, offset, into ``G`` and its
    position into ``redo``, for :func:`_redo_pass` to score it as the plain step does. Until
    the first such row, the rows' sums, weights and inertia are added at once in row order (the
    plain step's order); the rest is left to :func:`_sums_pass`.
    Returns ``(n_redo, first, inertia, n_failing)``: ``first`` is the first row position not
    yet summed, ``n_failing`` the rows that failed the bound test.
    """
    d = X.shape[1]
    k = centers64.shape[0]
    m = hi - lo
    n_failing = 0
    n_redo = 0
    first = m
    inertia = 0.0
    shrink = 1.0 - (d + 6) * _EPS64
    c_max2 = c_max * c_max
    x = np.empty(d, X.dtype)
    for r in range(m):
        i = lo + r
        a = labels_old[i]
        keep = False
        if a < 0:
            for j in range(d):
                x[j] = X[i, j] - offset[j]
        else:
            # the squared distance of the offset row to its center: _sq_distance's four
            # strands (the same bits); the offset row is stored only for a failing row
            a0 = a1 = a2 = a3 = 0.0
            j = 0
            while j + 4 <= d:
                x0 = X[i, j] - offset[j]
                x1 = X[i, j + 1] - offset[j + 1]
                x2 = X[i, j + 2] - offset[j + 2]
                x3 = X[i, j + 3] - offset[j + 3]
                e0 = np.float64(x0) - centers64[a, j]
                e1 = np.float64(x1) - centers64[a, j + 1]
                e2 = np.float64(x2) - centers64[a, j + 2]
                e3 = np.float64(x3) - centers64[a, j + 3]
                a0 += e0 * e0
                a1 += e1 * e1
                a2 += e2 * e2
                a3 += e3 * e3
                j += 4
            while j < d:
                x0 = X[i, j] - offset[j]
                e0 = np.float64(x0) - centers64[a, j]
                a0 += e0 * e0
                j += 1
            d2 = (a0 + a1) + (a2 + a3)
            if k == 1:
                keep = True
                moved = np.inf
            else:
                moved = lower_old[i] - decrement[a]
                moved -= 2.0 * _EPS64 * abs(moved)
                # (d_a + c_max)^2 <= 2 d_a^2 + 2 c_max^2: no square root on the common path
                if moved > 0.0 and moved * moved - d2 > margin * 2.0 * (d2 + c_max2):
                    keep = True
                else:
                    da = np.sqrt(d2)
                    bound = max(moved, separation[a] - da)
                    radius = da + c_max
                    keep = bound > da and (bound - da) * (bound + da) > margin * radius * radius
            if keep:
                labels[i] = a
                lower[i] = moved
        if not keep:
            n_failing += 1
            if a >= 0:
                for j in range(d):
                    x[j] = X[i, j] - offset[j]
        if not keep and budget > 0 and first == m and k > 1:
            # assigned here from the distances to every center, unless a near-tie
            best = 0
            d2 = _sq_distance_row(x, centers64, 0)
            second = np.inf
            for c in range(1, k):
                e = _sq_distance_row(x, centers64, c)
                if e < d2:
                    second = d2
                    d2 = e
                    best = c
                elif e < second:
                    second = e
            radius = np.sqrt(d2) + c_max
            budget -= 1
            if second - d2 > margin * radius * radius:
                keep = True
                a = best
                labels[i] = best
                lower[i] = np.sqrt(second * shrink) * shrink
        if keep:
            dist[r] = d2
            upper[i] = _upper(d2, d)
            if first == m:
                wi = np.float64(w[r])
                weights[a] += wi
                for j in range(d):
                    sums[a, j] += wi * np.float64(X[i, j] - offset[j])
                inertia += wi * d2
        else:
            if first == m:
                first = r
            for j in range(d):
                G[n_redo, j] = x[j]
            redo[n_redo] = r
            n_redo += 1
    return n_redo, first, inertia, n_failing


@canonical(read_only="X centers64 w")
@njit(cache=True, nogil=True)
def _bound_blocks(X, lo, t_hi, block, offset, centers64, decrement, separation, c_max, margin,
                  labels_old, lower_old, labels, lower, upper, dist, G, redo, w, unit_weights,
                  sums, weights, budget, full_share, inertia):
    """:func:`_bound_pass` on the blocks of rows ``lo:t_hi``, one after the other, while they
    need nothing else: the first block with rows to score by a BLAS product, or with more
    than ``full_share`` of its rows failing the bound test, is returned to the caller.

    Returns ``(lo, hi, n_redo, first, part, n_failing, inertia, changed)``: that block (``lo ==
    t_hi`` when none) and its :func:`_bound_pass` results, ``inertia`` (given: the task's so
    far) with the partials of the blocks before it added in block order, and their changed
    labels.
    """
    changed = 0
    while lo < t_hi:
        hi = min(t_hi, lo + block)
        wb = w[: hi - lo] if unit_weights else w[lo:hi]
        n_redo, first, part, n_failing = _bound_pass(
            X, lo, hi, offset, centers64, decrement, separation, c_max, margin, labels_old,
            lower_old, labels, lower, upper, dist, G, redo, wb, sums, weights, budget)
        if n_redo > 0 or n_failing > full_share * (hi - lo):
            return lo, hi, n_redo, first, part, n_failing, inertia, changed
        inertia += part
        for i in range(lo, hi):
            if labels[i] != labels_old[i]:
                changed += 1
        lo = hi
    return lo, lo, 0, 0, 0.0, 0, inertia, changed


#: The share of a block's rows failing the bound test beyond which the next block is assigned
#: in full (a BLAS product and :func:`_full_block`, the plain kernel's cost).
_FULL_SHARE = 0.5

#: Rows of a block that :func:`_bound_pass` may assign from all their distances (beyond them,
#: the failing rows are scored by a BLAS product, cheaper per row when many rows fail).
_INLINE_ROWS = 512


@njit(cache=True, nogil=True, inline="always")
def _second_bound(d2, gap, c_max, margin):
    """A lower bound on a row's distance to every center but its nearest, from its squared
    distance ``d2`` to the nearest (float64, from coordinate differences) and the gap between
    its second-best and best scores (``||c||^2 - 2 x.c`` in X's dtype: the difference of the
    squared distances, up to the scores' rounding, which the margin takes off), rounded down."""
    radius = np.sqrt(d2) + c_max
    return np.sqrt(max(d2 + gap - 0.5 * margin * radius * radius, 0.0)) * (1.0 - 2.0 * _EPS64)


@njit(cache=True, nogil=True, inline="always")
def _upper(d2, d):
    """:func:`spmdlearn.reference.upper_bound`: an upper bound on a distance from its square
    ``d2`` (float64, from coordinate differences over ``d`` features)."""
    return np.sqrt(d2) * (1.0 + (d + 6) * _EPS64)


@njit(cache=True, nogil=True, inline="always")
def _two_best(S, i, c_norms):
    """Row ``i``'s best center by the scores ``c_norms - 2 S[i]`` (the first of equals, as
    :func:`_assign_block`), its score, and the second-best score (float64; inf for one center)."""
    best = 0
    best_score = c_norms[0] - (S[i, 0] + S[i, 0])
    second = np.inf
    for c in range(1, S.shape[1]):
        score = c_norms[c] - (S[i, c] + S[i, c])
        if score < best_score:
            second = min(second, np.float64(best_score))
            best_score = score
            best = c
        else:
            second = min(second, np.float64(score))
    return best, best_score, second


@canonical(read_only="centers64")
@njit(cache=True, nogil=True)
def _redo_pass(G, S, n_redo, redo, lo, c_norms, centers64, c_max, margin, labels, lower, upper,
               dist):
    """The rows to recompute: :func:`_assign_block`'s argmin of their scores ``S`` (the plain
    step's decisions) and a bound from the second-best score, less its rounding."""
    k = S.shape[1]
    for q in range(n_redo):
        best, best_score, second = _two_best(S, q, c_norms)
        i = lo + redo[q]
        labels[i] = best
        dist[redo[q]] = _sq_distance(G, q, centers64, best)
        upper[i] = _upper(dist[redo[q]], G.shape[1])
        if k == 1:
            lower[i] = np.inf
            continue
        lower[i] = _second_bound(dist[redo[q]], second - np.float64(best_score), c_max, margin)


@canonical(read_only="X w centers64")
@njit(cache=True, nogil=True)
def _full_block(X, w, centers64, c_norms, S, labels, labels_old, sums, weights, lower, upper, lo,
                c_max, margin, lower_old, decrement, bounds_old):
    """:func:`_assign_block` (the same labels, sums, weights and inertia, in the same order) on
    the block's offset rows ``X`` and their scores ``S``, with each row's bound from its
    second-best score, as :func:`_redo_pass`; ``lower`` is indexed from ``lo``.

    Returns ``(inertia, n_changed, n_failing)``: ``n_failing`` estimates how many rows the
    bound test would have sent to a recomputation (from the scores, ``bounds_old``: whether
    ``lower_old`` holds bounds), which chooses how the next block is processed.
    """
    m, k = S.shape
    inertia = 0.0
    changed = 0
    failing = 0
    for i in range(m):
        best, best_score, second = _two_best(S, i, c_norms)
        labels[i] = best
        if labels_old[i] != best:
            changed += 1
        wi = np.float64(w[i])
        weights[best] += wi
        d2 = _add_row(X, i, best, wi, sums, centers64)
        inertia += wi * d2
        upper[lo + i] = _upper(d2, X.shape[1])
        if k == 1:
            lower[lo + i] = np.inf
            continue
        # the old bound is read before the new one is written: they may be one array
        a = labels_old[i]
        if not bounds_old or a < 0:
            failing += 1
        else:
            moved = lower_old[lo + i] - decrement[a]
            if moved <= 0.0 or moved * moved <= d2 + np.float64(
                    (c_norms[a] - (S[i, a] + S[i, a])) - best_score):
                failing += 1
        lower[lo + i] = _second_bound(d2, second - np.float64(best_score), c_max, margin)
    return inertia, changed, failing


@canonical(read_only="X w")
@njit(cache=True, nogil=True)
def _sums_pass(X, lo, hi, first, offset, w, labels, dist, sums, weights, inertia):
    """The sums, weights and inertia of rows ``lo + first:hi`` in row order (the plain step's
    values and order), from their labels and ``dist``; ``inertia``: the block's so far."""
    d = X.shape[1]
    for r in range(first, hi - lo):
        i = lo + r
        best = labels[i]
        wi = np.float64(w[r])
        weights[best] += wi
        for j in range(d):
            sums[best, j] += wi * np.float64(X[i, j] - offset[j])
        inertia += wi * dist[r]
    return inertia


@njit(cache=True, nogil=True)
def _count_changed(labels, labels_old, lo, hi):
    changed = 0
    for i in range(lo, hi):
        if labels[i] != labels_old[i]:
            changed += 1
    return changed


def _reusable(a, n):
    """Whether ``a`` can take a new bound of each of ``n`` rows in place."""
    return (isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape == (n,)
            and a.flags.c_contiguous and a.flags.writeable)


def _lloyd_bounded_exact(X, sample_weight, centers, centers_old, labels_old, lower_old,
                         X_offset, upper_old=None, in_place=False):
    """The bounded Lloyd step that reads every row: :func:`lloyd_local`'s partial, bit for bit.

    One pass over each block of rows offsets them (no offset copy of the shard), tests each
    row's bound against its exact distance to its center, and adds the kept rows' sums,
    weights and inertia; the rows that fail the test are gathered and scored by NumPy's matmul
    (the plain kernel's call, so the same decisions), and the block's remaining sums follow in
    row order. Blocks and tasks are those of :func:`lloyd_local` and its partials are added in
    the same order, so with the same labels the partial is the plain kernel's, bit for bit.
    ``in_place``: the new bounds are written into ``lower_old`` and ``upper_old`` (each row's
    old bound is read before its new one is written).
    """
    k, d = centers.shape
    n = X.shape[0]
    from spmdlearn.reference._kmeans import bound_margin, center_motion

    C = np.asarray(centers, dtype=X.dtype)
    Ct = C.T
    c_norms = np.einsum("ij,ij->i", C, C)
    centers64 = read_only(np.ascontiguousarray(centers, dtype=np.float64))
    X = read_only(X)  # the canonical kernels' argument types, once (see _layout)
    c_max = float(np.sqrt((centers64 ** 2).sum(axis=1)).max())
    margin = bound_margin(X.dtype, d)
    decrement, separation = center_motion(centers64, centers_old)
    weights_of = _weights_per_block(_as_float(sample_weight))
    w_all = weights_of(0, min(n, _ASSIGN_ROWS)) if _stride_zero(sample_weight) else \
        read_only(np.ascontiguousarray(_as_float(sample_weight)))
    unit_weights = _stride_zero(sample_weight)
    labels_old = np.asarray(labels_old, dtype=np.int32)
    lower_old = np.asarray(lower_old, dtype=np.float64)
    labels = np.empty(n, dtype=np.int32)
    lower = lower_old if in_place and _reusable(lower_old, n) else np.empty(n)
    upper = upper_old if in_place and _reusable(upper_old, n) else np.empty(n)
    offset = (np.zeros(d, X.dtype) if X_offset is None
              else np.asarray(X_offset, dtype=X.dtype))
    # Rows as given (no offset) in a layout the plain kernel multiplies as a strided view: its
    # scores round as that product does, so the failing rows are scored from it.
    plain_rows = X_offset is None and not X.flags.c_contiguous

    bounds_old = centers_old is not None

    def task(t_lo, t_hi):
        sums, weights = np.zeros((k, d)), np.zeros(k)
        inertia, changed = 0.0, 0
        m = min(_ASSIGN_ROWS, t_hi - t_lo)
        G = np.empty((m, d), X.dtype)
        redo = np.empty(m, np.int64)
        dist = np.empty(m)
        # Blocks where many rows fail the bound test are assigned in full, as the plain
        # kernel does (no bound test, no gathering): the first step, and after a block where
        # more than a _FULL_SHARE of the rows failed. The choice depends on the rows only, not
        # on the threads, and the labels and partials are the same either way.
        full = not bounds_old
        lo = t_lo
        while lo < t_hi:
            hi = min(t_hi, lo + _ASSIGN_ROWS)
            w = weights_of(lo, hi)
            if full:
                Xb = G[: hi - lo]
                _offset_block(X, lo, hi, offset, Xb)
                S = (X[lo:hi] if X_offset is None else Xb) @ Ct
                part, moved, failing = _full_block(
                    Xb, w, centers64, c_norms, S, labels[lo:hi], labels_old[lo:hi], sums,
                    weights, lower, upper, lo, c_max, margin, lower_old, decrement, bounds_old)
                inertia += part
                changed += moved
                full = failing > _FULL_SHARE * (hi - lo)
                lo = hi
                continue
            # blocks of kept rows in one compiled call; back here for one that needs more
            lo, hi, n_redo, first, part, n_failing, inertia, moved = _bound_blocks(
                X, lo, t_hi, _ASSIGN_ROWS, offset, centers64, decrement, separation, c_max,
                margin, labels_old, lower_old, labels, lower, upper, dist, G, redo, w_all,
                unit_weights, sums, weights, _INLINE_ROWS, _FULL_SHARE, inertia)
            changed += moved
            if lo == t_hi:
                break
            w = weights_of(lo, hi)
            if n_redo:
                if plain_rows:
                    # the plain kernel's product of this block, rows taken from it
                    S = (X[lo:hi] @ Ct)[redo[:n_redo]]
                else:
                    # at least two rows: NumPy's product of one row is a matrix-vector call,
                    # which rounds otherwise than the block's matrix product
                    S = G[:max(n_redo, min(2, G.shape[0]))] @ Ct
                _redo_pass(G, S, n_redo, redo, lo, c_norms, centers64, c_max, margin, labels,
                           lower, upper, dist)
                part = _sums_pass(X, lo, hi, first, offset, w, labels, dist, sums, weights, part)
            inertia += part
            changed += _count_changed(labels, labels_old, lo, hi)
            full = n_failing > _FULL_SHARE * (hi - lo)
            lo = hi
        return sums, weights, inertia, changed

    sums, weights, inertia, changed = _fold_tasks(_in_tasks(n, task))
    return labels, lower, LloydPartial(sums, weights, float(inertia), float(changed)), upper


@njit(cache=True, nogil=True, inline="always")
def _bounds_keep(u, low, sep, c_max, c_max2, margin):
    """Whether a row keeps its label ``a`` from its bounds alone: ``u`` bounds its distance to
    ``a`` from above, ``low`` its distance to every other center from below; every other center
    is also at least ``sep - u`` away (``sep``: ``a``'s distance to its nearest other center).
    The test of :func:`_bound_pass` with ``u`` for the exact distance (its margin only grows)."""
    if low > 0.0 and low * low - u * u > margin * 2.0 * (u * u + c_max2):
        return True  # (u + c_max)^2 <= 2 u^2 + 2 c_max^2
    bound = max(low, sep - u)
    radius = u + c_max
    return bound > u and (bound - u) * (bound + u) > margin * radius * radius


@njit(cache=True, nogil=True, inline="always")
def _moved_bounds(upper_old, lower_old, i, a, shift, decrement):
    """Row ``i``'s bounds moved with the centers (rounded outwards): ``(upper, lower)``."""
    u = (upper_old[i] + shift[a]) * (1.0 + 2.0 * _EPS64)
    low = lower_old[i] - decrement[a]
    return u, low - 2.0 * _EPS64 * abs(low)


@njit(cache=True, nogil=True)
def _failing_on_bounds(labels_old, lower_old, upper_old, shift, decrement, separation, c_max,
                       margin, stride):
    """How many of the rows ``0, stride, 2 stride, ...`` must be read (their bounds do not
    keep their label), and how many rows that is."""
    failing = 0
    tested = 0
    c_max2 = c_max * c_max
    for i in range(0, labels_old.shape[0], stride):
        a = labels_old[i]
        u, low = _moved_bounds(upper_old, lower_old, i, a, shift, decrement)
        if not _bounds_keep(u, low, separation[a], c_max, c_max2, margin):
            failing += 1
        tested += 1
    return failing, tested


@njit(cache=True, nogil=True, inline="always")
def _move_row(x, a, b, wi, dsums, dweights):
    """Row ``x`` (weight ``wi``) leaves cluster ``a`` for ``b`` in the sums' changes: the terms
    ``wi * x`` that :func:`_assign_block` adds, subtracted from ``a`` and added to ``b``."""
    for j in range(x.shape[0]):
        v = wi * np.float64(x[j])
        dsums[a, j] -= v
        dsums[b, j] += v
    dweights[a] -= wi
    dweights[b] += wi


@canonical(read_only="X centers64 w")
@njit(cache=True, nogil=True)
def _incremental_blocks(X, lo, t_hi, block, offset, centers64, gaps, shift, decrement,
                        separation, c_max, margin, labels_old, lower_old, upper_old, labels, lower,
                        upper, G, redo, w, unit_weights, dsums, dweights):
    """The bounded step on rows ``lo:t_hi`` without their sums: a row is read only when its
    bounds (moved with the centers) do not keep its label. Then its exact distance ``d_a`` to
    its center ``a`` is computed, and to each center ``j`` that may be nearer than ``a`` or
    within the margin: a center with ``gaps[a, j] - d_a > d_a`` (``gaps``: the centers'
    distances, rounded down) is farther than ``a`` (Elkan's lemma), and that difference bounds
    its distance from below. The row is assigned from these when the nearest wins by more than
    the margin (the bound of the others refreshed), else copied into ``G`` for a BLAS product,
    as :func:`_bound_pass`. A row that changes cluster moves its terms in ``dsums``/``dweights``.

    Returns ``(lo, hi, n_redo, changed)`` at the first block with rows to score by BLAS
    (``lo == t_hi``: none), ``changed`` counting the changed labels of the blocks before it and
    of that block's rows assigned here.
    """
    d = X.shape[1]
    k = centers64.shape[0]
    c_max2 = c_max * c_max
    shrink = 1.0 - (d + 6) * _EPS64
    failing = np.empty(block, np.int64)
    # the failing rows, offset, gathered before any is scored: the gather's loads do not
    # depend on each other, so many scattered rows' cache misses are in flight at once (a row
    # scored as it is read waits for its misses alone, which bounded the step)
    F = np.empty((block, d), X.dtype)
    changed = 0
    while lo < t_hi:
        hi = min(t_hi, lo + block)
        n_redo = 0
        # the bounds of every row of the block (a tight loop), then the rows they fail
        n_failing = 0
        for i in range(lo, hi):
            a = labels_old[i]
            u, low = _moved_bounds(upper_old, lower_old, i, a, shift, decrement)
            labels[i] = a
            lower[i] = low
            upper[i] = u
            if not _bounds_keep(u, low, separation[a], c_max, c_max2, margin):
                failing[n_failing] = i
                n_failing += 1
        for f in range(n_failing):
            i = failing[f]
            for j in range(d):
                F[f, j] = X[i, j] - offset[j]
        for f in range(n_failing):
            i = failing[f]
            a = labels_old[i]
            x = F[f]
            d2a = _sq_distance_row(x, centers64, a)
            da = _upper(d2a, d)
            best = a
            d2 = d2a
            second = np.inf
            for c in range(k):
                if c == a:
                    continue
                far = (gaps[a, c] - da) * shrink
                if far > da:
                    e = far * far * shrink  # a lower bound on its squared distance
                else:
                    e = _sq_distance_row(x, centers64, c)
                    if e < d2 or (e == d2 and c < best):
                        second = d2
                        d2 = e
                        best = c
                        continue
                if e < second:
                    second = e
            radius = np.sqrt(d2) + c_max
            if second - d2 > margin * radius * radius:
                labels[i] = best
                lower[i] = np.sqrt(second * shrink) * shrink
                upper[i] = _upper(d2, d)
                if best != a:
                    changed += 1
                    _move_row(x, a, best, np.float64(w[0 if unit_weights else i]), dsums,
                              dweights)
            else:
                for j in range(d):
                    G[n_redo, j] = x[j]
                redo[n_redo] = i - lo
                n_redo += 1
        if n_redo > 0:
            return lo, hi, n_redo, changed
        lo = hi
    return lo, lo, 0, changed


@canonical(read_only="centers64 w")
@njit(cache=True, nogil=True)
def _incremental_redo(G, S, n_redo, redo, lo, c_norms, centers64, c_max, margin, labels_old,
                      labels, lower, upper, w, unit_weights, dsums, dweights):
    """:func:`_redo_pass`'s labels and bounds for the rows copied into ``G``, with the moves of
    the rows that change cluster; returns how many change."""
    k, d = S.shape[1], G.shape[1]
    changed = 0
    for q in range(n_redo):
        best, best_score, second = _two_best(S, q, c_norms)
        i = lo + redo[q]
        labels[i] = best
        d2 = _sq_distance(G, q, centers64, best)
        upper[i] = _upper(d2, d)
        lower[i] = np.inf if k == 1 else _second_bound(
            d2, second - np.float64(best_score), c_max, margin)
        a = labels_old[i]
        if best != a:
            changed += 1
            _move_row(G[q], a, best, np.float64(w[0 if unit_weights else i]), dsums, dweights)
    return changed


@njit(cache=True, nogil=True)
def _clusters_held(labels, w, unit_weights, k):
    """Per cluster, whether a row of nonzero weight has that label."""
    held = np.zeros(k, np.bool_)
    for i in range(labels.shape[0]):
        if unit_weights:
            if w[0] == 0.0:
                break
        elif w[i] == 0.0:
            continue
        held[labels[i]] = True
    return held


#: The share of rows whose bounds fail (rows to read) beyond which a step given ``sums_old``
#: reads every row and recomputes the sums instead (the first steps, where centers move far).
_INCREMENTAL_SHARE = 0.25
#: The share is estimated on every ``_SAMPLE_STRIDE``-th row (a pass over all rows' bounds
#: would cost a fifth of the step it decides).
_SAMPLE_STRIDE = 256


def lloyd_bounded(X, sample_weight, centers, centers_old, labels_old, lower_old, X_offset=None,
                  upper_old=None, sums_old=None, in_place=False):
    """:func:`spmdlearn.reference.lloyd_bounded`: the bounded Lloyd step, compiled.

    Without ``sums_old`` (or ``upper_old``, or while more than ``_INCREMENTAL_SHARE`` of the
    rows fail their bounds): one pass over each block of rows offsets them (no offset copy of
    the shard), tests each row's bound against its exact distance to its center, and adds the
    kept rows' sums, weights and inertia; the rows that fail the test are gathered and scored
    by NumPy's matmul (the plain kernel's call, so the same decisions), and the block's
    remaining sums follow in row order. Blocks and tasks are those of :func:`lloyd_local` and
    its partials are added in the same order, so with the same labels the partial is the plain
    kernel's, bit for bit.

    With ``sums_old``: Hamerly's upper bounds too. A row whose bounds keep its label is not
    read; the others are assigned as above; the rows that change cluster move their terms
    between the clusters' sums (tasks' changes added in task order, then to ``sums_old``: the
    same bits for any thread count); the inertia is not computed (0, ``incremental`` 1). The
    labels are the same.

    ``in_place``: the caller no longer needs ``lower_old`` and ``upper_old``: the new bounds
    are written into them (float64 contiguous NumPy arrays of one value a row; others are not
    reused) and returned, so that no second generation of the per-row bounds exists.
    """
    k, d = centers.shape
    n = X.shape[0]
    if n == 0:
        return (np.zeros(0, np.int32), np.zeros(0),
                LloydPartial(np.zeros((k, d)), np.zeros(k), 0.0, 0.0), np.zeros(0))
    exact = (sums_old is None or upper_old is None or centers_old is None or k == 1)
    if not exact:
        from spmdlearn.reference._kmeans import bound_margin, center_motion, center_shift

        centers64 = read_only(np.ascontiguousarray(centers, dtype=np.float64))
        X = read_only(X)  # the canonical kernels' argument types, once (see _layout)
        c_max = float(np.sqrt((centers64 ** 2).sum(axis=1)).max())
        margin = bound_margin(X.dtype, d)
        decrement, separation = center_motion(centers64, centers_old)
        shift = center_shift(centers64, centers_old)
        # the centers' distances, rounded down
        gaps = np.sqrt(((centers64[:, None, :] - centers64[None, :, :]) ** 2).sum(axis=2)) * (
            1 - (d + 4) * _EPS64)
        labels_old = np.asarray(labels_old, dtype=np.int32)
        lower_old = np.asarray(lower_old, dtype=np.float64)
        upper_old = np.asarray(upper_old, dtype=np.float64)
        exact = labels_old.min() < 0  # rows without a label yet: no bounds
        if not exact:
            failing, tested = _failing_on_bounds(labels_old, lower_old, upper_old, shift,
                                                 decrement, separation, c_max, margin,
                                                 _SAMPLE_STRIDE)
            exact = failing > _INCREMENTAL_SHARE * tested
    if exact:
        return _lloyd_bounded_exact(X, sample_weight, centers, centers_old, labels_old, lower_old,
                                    X_offset, upper_old, in_place)
    C = np.asarray(centers, dtype=X.dtype)
    Ct = C.T
    c_norms = np.einsum("ij,ij->i", C, C)
    unit_weights = _stride_zero(sample_weight)
    w = _as_float(sample_weight)
    w = read_only(np.full(1, w[0]) if unit_weights else np.ascontiguousarray(w))
    labels = np.empty(n, dtype=np.int32)
    # in place: each row's old bounds are read (_moved_bounds) before its new ones are written
    lower = lower_old if in_place and _reusable(lower_old, n) else np.empty(n)
    upper = upper_old if in_place and _reusable(upper_old, n) else np.empty(n)
    offset = (np.zeros(d, X.dtype) if X_offset is None
              else np.asarray(X_offset, dtype=X.dtype))
    plain_rows = X_offset is None and not X.flags.c_contiguous

    def task(t_lo, t_hi):
        dsums, dweights = np.zeros((k, d)), np.zeros(k)
        changed = 0
        m = min(_ASSIGN_ROWS, t_hi - t_lo)
        G = np.empty((m, d), X.dtype)
        redo = np.empty(m, np.int64)
        lo = t_lo
        while lo < t_hi:
            lo, hi, n_redo, moved = _incremental_blocks(
                X, lo, t_hi, _ASSIGN_ROWS, offset, centers64, gaps, shift, decrement, separation,
                c_max, margin, labels_old, lower_old, upper_old, labels, lower, upper, G, redo,
                w, unit_weights, dsums, dweights)
            changed += moved
            if lo == t_hi:
                break
            if plain_rows:
                S = (X[lo:hi] @ Ct)[redo[:n_redo]]
            else:
                S = G[:max(n_redo, min(2, G.shape[0]))] @ Ct
            changed += _incremental_redo(G, S, n_redo, redo, lo, c_norms, centers64, c_max,
                                         margin, labels_old, labels, lower, upper, w,
                                         unit_weights, dsums, dweights)
            lo = hi
        return dsums, dweights, 0.0, changed

    dsums, dweights, _, changed = _fold_tasks(_in_tasks(n, task))
    sums = np.asarray(sums_old.sums, np.float64) + dsums
    weights = np.asarray(sums_old.weights, np.float64) + dweights
    # a cluster that lost all its rows (of nonzero weight) is empty exactly, as the plain
    # step's sums are, whatever the rounding of its moves
    # (rows of one weight: the weights count rows, exactly)
    empty = (weights == 0.0) if unit_weights else ~_clusters_held(labels, w, unit_weights, k)
    sums[empty] = 0.0
    weights[empty] = 0.0
    return labels, lower, LloydPartial(sums, weights, 0.0, float(changed), 1.0), upper


@njit(cache=True, nogil=True, inline="always")
def _assigned_sq_approx(X, i, offset, C64, a):
    """Row ``i``'s squared distance to center ``a``, in float64 from the offset row in X's dtype
    (the reference's values up to its rounding: a relative error below ``(d + 4) eps``)."""
    d = X.shape[1]
    a0 = a1 = a2 = a3 = 0.0
    j = 0
    while j + 4 <= d:
        e0 = np.float64(X[i, j] - offset[j]) - C64[a, j]
        e1 = np.float64(X[i, j + 1] - offset[j + 1]) - C64[a, j + 1]
        e2 = np.float64(X[i, j + 2] - offset[j + 2]) - C64[a, j + 2]
        e3 = np.float64(X[i, j + 3] - offset[j + 3]) - C64[a, j + 3]
        a0 += e0 * e0
        a1 += e1 * e1
        a2 += e2 * e2
        a3 += e3 * e3
        j += 4
    while j < d:
        e0 = np.float64(X[i, j] - offset[j]) - C64[a, j]
        a0 += e0 * e0
        j += 1
    return (a0 + a1) + (a2 + a3)


@njit(cache=True, nogil=True, inline="always")
def _insert_top(top, s):
    """``s`` into ``top`` (descending, length n) where it is among the n largest so far."""
    n = top.shape[0]
    if s > top[n - 1]:
        p = n - 1
        while p > 0 and top[p - 1] < s:
            top[p] = top[p - 1]
            p -= 1
        top[p] = s


@njit(cache=True, nogil=True, inline="always")
def _keep_at_least(ids, values, found, threshold):
    """The first ``found`` candidates compacted to those of value at least ``threshold``, in
    order; returns how many."""
    kept = 0
    for q in range(found):
        if values[q] >= threshold:
            ids[kept] = ids[q]
            values[kept] = values[q]
            kept += 1
    return kept


@canonical(read_only="X C64")
@njit(cache=True, nogil=True)
def _farthest_candidates(X, offset, C64, labels, n_top, slack, ids, values):
    """One pass: the ``n_top`` largest approximate distances, and in ``ids`` the rows whose
    approximate distance is at least ``(1 - slack)`` times the ``n_top``-th largest of all.

    A row is kept when it passes the threshold of the rows so far (which only rises, so the
    final candidates are all kept); a full buffer is compacted to the current threshold.
    Returns ``(found, complete)``: ``complete`` is False when the candidates (ties) outgrow
    ``ids``, which then holds nothing usable.
    """
    n = X.shape[0]
    top = np.full(n_top, -1.0)
    cap = ids.shape[0]
    found = 0
    threshold = -1.0
    for i in range(n):
        s = _assigned_sq_approx(X, i, offset, C64, labels[i])
        if s > top[n_top - 1]:
            _insert_top(top, s)
            if top[n_top - 1] >= 0.0:
                threshold = top[n_top - 1] * (1.0 - slack)
        if s >= threshold:
            if found == cap:
                found = _keep_at_least(ids, values, found, threshold)
                if found == cap:
                    return 0, False
            ids[found] = i
            values[found] = s
            found += 1
    return _keep_at_least(ids, values, found, threshold), True


@canonical(read_only="X C64")
@njit(cache=True, nogil=True)
def _collect_above(X, offset, C64, labels, threshold, start, out):
    """The rows from ``start`` on whose approximate distance is at least ``threshold``, into
    ``out`` until it is full: ``(next row to test, rows found)``."""
    found = 0
    i = start
    n = X.shape[0]
    while i < n and found < out.shape[0]:
        if _assigned_sq_approx(X, i, offset, C64, labels[i]) >= threshold:
            out[found] = i
            found += 1
        i += 1
    return i, found


@canonical(read_only="X C64")
@njit(cache=True, nogil=True)
def _approx_top(X, offset, C64, labels, top):
    """``top`` (descending, initially -1): the ``len(top)`` largest approximate distances."""
    for i in range(X.shape[0]):
        _insert_top(top, _assigned_sq_approx(X, i, offset, C64, labels[i]))


#: Candidate rows whose exact distances are computed at a time by NumPy (ties: many).
_CANDIDATE_ROWS = 4096


def farthest_assigned_rows(X, centers, labels, n_rows, X_offset=None):
    """:func:`spmdlearn.reference.farthest_assigned_rows`: the rows farthest from their
    centers, with the reference's distances, bit for bit, without the reference's pass of
    NumPy over every row.

    One compiled pass finds the ``n_rows`` largest distances computed in float64 (the
    reference's up to a relative error ``delta`` below ``(d + 4) eps`` of X's dtype) and keeps
    the rows whose float64 distance is at least ``1 - 4 (d + 4) eps`` times the ``n_rows``-th
    largest: they include every row that can be among the reference's ``n_rows`` farthest or
    tied with the last of them (the ``n_rows``-th largest exact distance is at least the
    ``n_rows``-th largest float64 one times ``1 - delta``; such a row's float64 distance is
    at least its exact one times ``1 - delta``). Their distances are computed by the
    reference's NumPy expression (a row's value does not depend on the rows computed with it)
    and ordered as the reference orders them. When ties make the candidates more than
    ``_CANDIDATE_ROWS``, a second pass takes them ``_CANDIDATE_ROWS`` at a time.
    """
    n, d = X.shape
    dtype = np.result_type(X.dtype, np.float32)
    if n == 0 or n_rows <= 0:
        return np.zeros(0, dtype=dtype), np.zeros(0, np.int64)
    C = np.asarray(centers, dtype=X.dtype)
    C64 = C.astype(np.float64)
    labels = np.ascontiguousarray(labels)
    offset = (np.zeros(d, X.dtype) if X_offset is None
              else np.asarray(X_offset, dtype=X.dtype))
    n_top = min(n_rows, n)
    slack = 4.0 * (d + 4) * float(np.finfo(dtype).eps)
    ids = np.empty(min(n, _CANDIDATE_ROWS), np.int64)
    found, complete = _farthest_candidates(X, offset, C64, labels, n_top, slack, ids,
                                           np.empty(ids.shape[0]))

    def exact(rows):
        Xc = X[rows] if X_offset is None else X[rows] - offset
        return ((Xc - C[labels[rows]]) ** 2).sum(axis=1)

    def first(dist, rows):
        order = np.lexsort((rows, -dist.astype(np.float64)))[:n_rows]
        return dist[order], rows[order]

    if complete:
        rows = np.sort(ids[:found])
        return first(exact(rows), rows)
    # many tied candidates: a second pass, ids.shape[0] rows at a time
    top = np.full(n_top, -1.0)
    _approx_top(X, offset, C64, labels, top)
    threshold = top[-1] * (1.0 - slack)
    best_d, best_i = np.zeros(0, dtype=dtype), np.zeros(0, np.int64)
    start = 0
    while start < n:
        start, found = _collect_above(X, offset, C64, labels, threshold, start, ids)
        if found == 0:
            break
        rows = ids[:found].copy()
        best_d, best_i = first(np.concatenate([best_d, exact(rows)]),
                               np.concatenate([best_i, rows]))
    return best_d, best_i
