"""Neighbour kernels fused per block pair: the cpu twins of :mod:`spmdlearn.reference._neighbors`.

One compiled pass over the (query, candidate) pairs of a block pair, each distance computed from
coordinate differences in float64 (as the reference's ``cdist``, so that ``dist <= eps`` and
equal distances fall the same way) and reduced at once: inserted into the query's running top-k,
added to its count, folded into its minimum label, or appended to its CSR row. Queries run in
parallel; no distance matrix is formed. Radius counts, minimum labels and pairs of
low-dimensional blocks visit only the candidates of the query's and the neighbouring cells of a
uniform grid;
euclidean top-k merges screen candidates with GEMM tiles. The cosine metric is declined (the
reference serves it).
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit, prange
# numba's np.dot calls SciPy's BLAS: loaded here, so that a thread limit set before the first
# call of a kernel (single_threaded_blas) reaches it
from scipy.linalg import cython_blas  # noqa: F401

from spmdlearn.reference import METRICS

from ._layout import canonical
from ._threads import single_threaded_blas, use_kernel_threads

__all__ = ["metric_code", "knn_merge", "radius_counts", "radius_min_label", "radius_neighbors_csr",
           "radius_label_union"]

_EUCLIDEAN, _MANHATTAN, _CHEBYSHEV, _MINKOWSKI = 0, 1, 2, 3


def metric_code(metric, p):
    """``(code, p)`` of a metric the compiled kernels compute, or None (cosine, unknown)."""
    name = METRICS.get(metric)
    if name == "minkowski":
        p = 2.0 if p is None else float(p)
        if p == 2:
            return _EUCLIDEAN, 2.0
        if p == 1:
            return _MANHATTAN, 1.0
        if np.isinf(p):
            return _CHEBYSHEV, 0.0
        return _MINKOWSKI, p
    return {"euclidean": (_EUCLIDEAN, 2.0), "cityblock": (_MANHATTAN, 1.0),
            "chebyshev": (_CHEBYSHEV, 0.0)}.get(name)


@njit(cache=True, nogil=True, inline="always")
def _distance(X, i, Y, j, code, p):
    d = X.shape[1]
    acc = 0.0
    if code == 0:
        for f in range(d):
            diff = np.float64(X[i, f]) - np.float64(Y[j, f])
            acc += diff * diff
        return np.sqrt(acc)
    if code == 1:
        for f in range(d):
            acc += abs(np.float64(X[i, f]) - np.float64(Y[j, f]))
        return acc
    if code == 2:
        for f in range(d):
            acc = max(acc, abs(np.float64(X[i, f]) - np.float64(Y[j, f])))
        return acc
    for f in range(d):
        acc += abs(np.float64(X[i, f]) - np.float64(Y[j, f])) ** p
    return acc ** (1.0 / p)


@canonical(read_only="X Y")
@njit(parallel=True, cache=True)
def _knn_merge(X, Y, y_index, best_d, best_i, code, p, x_index, exclude):
    n_x = X.shape[0]
    n_y = Y.shape[0]
    for i in prange(n_x):
        bd = best_d[i]
        bi = best_i[i]
        for j in range(n_y):
            idx = y_index[j]
            if exclude and idx == x_index[i]:
                continue
            # lexicographic (distance, index) against the current k-th
            _insert(bd, bi, _distance(X, i, Y, j, code, p), idx)


@njit(cache=True, nogil=True, inline="always")
def _insert(bd, bi, dist, idx):
    """Insert ``(dist, idx)`` into the sorted top-k ``bd, bi`` if it is lexicographically below
    the current k-th (ties by the lower index)."""
    k = bd.shape[0]
    if dist > bd[k - 1] or (dist == bd[k - 1] and idx >= bi[k - 1]):
        return
    pos = k - 1
    while pos > 0 and (dist < bd[pos - 1] or (dist == bd[pos - 1] and idx < bi[pos - 1])):
        bd[pos] = bd[pos - 1]
        bi[pos] = bi[pos - 1]
        pos -= 1
    bd[pos] = dist
    bi[pos] = idx


@njit(cache=True, nogil=True, inline="always")
def _screen_threshold(kth, xn, margin, tiny):
    """``T`` such that a candidate with ``S + yn (1 - margin) > T`` (``S = -2 x.y`` by GEMM) has
    an exact distance above ``kth`` (see :func:`_knn_gemm_screen`). NaN (an overflowed norm)
    screens nothing out."""
    return kth * kth * (1.0 + margin) + tiny - xn * (1.0 - margin)


@njit(cache=True, nogil=True)
def _screen_tile(S, X, Y, y_index, q0, c0, xn, ynm, margin, tiny, best_d, best_i, x_index,
                 exclude):
    """The candidates of one GEMM tile that pass the screen go into the running top-k.

    A vectorised pass counts, per run of :data:`_SCAN` candidates, those whose expanded squared
    distance may be within the query's current k-th; only a run with some gets the scalar pass,
    which takes each one's exact distance from coordinate differences and inserts it.
    """
    m, c = S.shape
    for r in range(m):
        i = q0 + r
        bd = best_d[i]
        bi = best_i[i]
        T = _screen_threshold(bd[-1], xn[r], margin, tiny)
        row = S[r]
        for s0 in range(0, c, _SCAN):
            s1 = min(c, s0 + _SCAN)
            # 1-D slices from 0: unit-stride loads the loop vectoriser sees (no gathers)
            a = row[s0:s1]
            b = ynm[s0:s1]
            passed = 0
            for t in range(a.shape[0]):
                passed += not (a[t] + b[t] > T)
            if passed == 0:
                continue
            for t in range(s0, s1):
                if row[t] + ynm[t] > T:
                    continue
                j = c0 + t
                idx = y_index[j]
                if exclude and idx == x_index[i]:
                    continue
                _insert(bd, bi, _distance(X, i, Y, j, 0, 2.0), idx)
                T = _screen_threshold(bd[-1], xn[r], margin, tiny)


@canonical(read_only="X Y")
@njit(parallel=True, cache=True)
def _knn_gemm_screen(X, Y, y_index, best_d, best_i, x_index, exclude, tile_q, tile_c):
    """Euclidean top-k merge screened by GEMM tiles; the result is the exact kernel's.

    Each thread takes tiles of ``tile_q`` queries and, for every tile of ``tile_c`` candidates,
    forms ``S = X_t (-2 Y_t)^T`` by BLAS (float64; ``-2 y`` is exact) into a tile-sized buffer,
    then screens: a candidate whose expanded squared distance ``||x||^2 + ||y||^2 + S``, less a
    bound on its rounding error, exceeds the query's current k-th squared distance cannot enter
    the top-k. The others get their exact distance from coordinate differences (as the
    reference's ``cdist``), so the neighbours, their order and their distances are the exact
    kernel's (:func:`_knn_merge`).

    Error bound: with ``u`` the unit roundoff and ``g = (d + 2) u``, the computed norms and
    ``S`` are each within ``g (||x||^2 + ||y||^2)`` of their values (``2|x_f y_f| <= x_f^2 +
    y_f^2``), so ``margin = 4 (d + 4) u`` relative to ``||x||^2 + ||y||^2`` covers them and the
    additions of the screen; the squared k-th gets the same relative margin (the exact
    kernel's squared distance is within ``g`` of the true one, and the square root rounds),
    plus an absolute ``tiny`` for squares that underflow.
    """
    n_x, d = X.shape
    n_y = Y.shape[0]
    margin = 4.0 * (d + 4) * 2.220446049250313e-16
    tiny = 1e-300
    n_tiles = (n_x + tile_q - 1) // tile_q
    for b in prange(n_tiles):
        q0 = b * tile_q
        q1 = min(n_x, q0 + tile_q)
        nq = q1 - q0
        xq = np.empty((nq, d))
        xn = np.empty(nq)
        for r in range(nq):
            acc = 0.0
            for f in range(d):
                v = np.float64(X[q0 + r, f])
                xq[r, f] = v
                acc += v * v
            xn[r] = acc
        yb_full = np.empty((tile_c, d))
        ynm_full = np.empty(tile_c)
        s_full = np.empty(nq * tile_c)
        for c0 in range(0, n_y, tile_c):
            c1 = min(n_y, c0 + tile_c)
            nc = c1 - c0
            yb = yb_full[:nc]
            ynm = ynm_full[:nc]
            for t in range(nc):
                acc = 0.0
                for f in range(d):
                    v = np.float64(Y[c0 + t, f])
                    yb[t, f] = -2.0 * v
                    acc += v * v
                ynm[t] = acc * (1.0 - margin)
            S = s_full[:nq * nc].reshape((nq, nc))
            np.dot(xq, yb.T, S)
            _screen_tile(S, X, Y, y_index, q0, c0, xn, ynm, margin, tiny, best_d, best_i,
                         x_index, exclude)


#: Candidates per vectorised screening run (a run with no survivor costs one pass of loads).
_SCAN = 64

#: GEMM tile: queries x candidates (a 1 MiB float64 buffer, a core's L2). Measured on this
#: 2-core machine (1,024 queries against 100,000 candidates, one thread), the screened merge
#: costs about the GEMM alone, 2.5 to 7 times less than the exact kernel from 2 to 16 features.
_TILE_QUERIES, _TILE_CANDIDATES = 256, 512
#: Query tiles are cut thinner, down to this, to give every thread a share of few queries.
_MIN_TILE_QUERIES = 16
#: Bytes of each per-thread float64 copy of a tile's rows (queries, candidates): many features
#: take thinner tiles, so that the copies stay cache-sized whatever the feature count.
_TILE_ROW_BYTES = 1 << 20


def _knn_merge_euclidean(X, Y, y_index, best_d, best_i, x_index, exclude):
    """:func:`_knn_gemm_screen` with the query tiles spread over the kernel's threads."""
    threads = get_num_threads()
    rows = max(1, _TILE_ROW_BYTES // (8 * X.shape[1]))
    # enough tiles for every thread, but not tiles so thin that GEMM loses its efficiency
    tile_q = min(_TILE_QUERIES, rows, max(_MIN_TILE_QUERIES, -(-X.shape[0] // threads)))
    tile_c = min(_TILE_CANDIDATES, rows)
    with single_threaded_blas():  # each numba thread runs its own GEMMs
        _knn_gemm_screen(X, Y, y_index, best_d, best_i, x_index, exclude, tile_q, tile_c)


def knn_merge(X, Y, y_index, best_distances, best_indices, metric="euclidean", p=None,
              x_index=None):
    """:func:`spmdlearn.reference.knn_merge`: each candidate's distance goes straight into the
    query's sorted top-k (insertion; ties by the lower global index).

    Euclidean: tiles of squared distances by GEMM plus norms screen the candidates, and only
    those that may enter the top-k get their exact distance (the result is the exact kernel's).
    """
    best_d = np.array(best_distances, dtype=np.float64, order="C")
    best_i = np.array(best_indices, dtype=np.int64, order="C")
    if X.shape[0] == 0 or Y.shape[0] == 0 or best_d.shape[1] == 0:
        return best_d, best_i
    code, power = metric_code(metric, p)
    use_kernel_threads()
    exclude = x_index is not None
    xi = np.asarray(x_index, np.int64) if exclude else np.zeros(0, np.int64)
    yi = np.asarray(y_index, np.int64)
    if code == _EUCLIDEAN:
        _knn_merge_euclidean(X, Y, yi, best_d, best_i, xi, exclude)
    else:
        _knn_merge(X, Y, yi, best_d, best_i, code, power, xi, exclude)
    return best_d, best_i


# -- a uniform grid over low-dimensional blocks ---------------------------------------------------
#: Dimensions up to which radius queries use a grid (3^d neighbouring cells are visited).
_GRID_MAX_FEATURES = 3
#: Pairs per call from which building the grid pays off.
_GRID_MIN_PAIRS = 1 << 16


def _grid(X, Y, eps):
    """A grid of cells of width slightly above ``eps`` over the bounding box of both blocks.

    Any candidate within ``eps`` of a query in a metric at least the L-infinity distance (every
    metric served here) lies in the query's cell or a neighbouring one; the margin on the width
    absorbs the rounding of the cell coordinates. Returns ``(lo, inv_width, extent)`` or None
    when the grid would be degenerate (zero or huge radius relative to the box).
    """
    if not np.isfinite(eps) or eps <= 0:
        return None
    lo = np.minimum(X.min(axis=0), Y.min(axis=0)).astype(np.float64)
    hi = np.maximum(X.max(axis=0), Y.max(axis=0)).astype(np.float64)
    width = float(eps) * (1 + 1e-6)
    with np.errstate(over="ignore"):
        cells = np.floor((hi - lo) / width)  # inf where the box's side overflows float64
    if not np.all(cells < 1 << 20):
        return None
    extent = cells.astype(np.int64) + 1
    if float(np.prod(extent.astype(np.float64))) > 2.0 ** 62:
        return None
    return lo, 1.0 / width, extent


@njit(cache=True, nogil=True)
def _cell(X, i, lo, inv_w, extent, coords):
    key = 0
    for f in range(X.shape[1]):
        c = np.int64(np.floor((np.float64(X[i, f]) - lo[f]) * inv_w))
        c = min(max(c, 0), extent[f] - 1)
        coords[f] = c
        key = key * extent[f] + c
    return key


@njit(cache=True, nogil=True)
def _grid_keys(Y, lo, inv_w, extent):
    keys = np.empty(Y.shape[0], np.int64)
    coords = np.empty(Y.shape[1], np.int64)
    for j in range(Y.shape[0]):
        keys[j] = _cell(Y, j, lo, inv_w, extent, coords)
    return keys


@njit(cache=True, nogil=True, inline="always")
def _neighbour_cells(coords, extent, t, d):
    """Key of neighbour cell number ``t`` of ``3^d`` (offsets -1, 0, 1 per dimension), or -1."""
    key = 0
    for f in range(d):
        off = (t % 3) - 1
        t //= 3
        c = coords[f] + off
        if c < 0 or c >= extent[f]:
            return -1
        key = key * extent[f] + c
    return key


@njit(cache=True, nogil=True, inline="always")
def _cell_range(key, n_buckets, starts, skeys):
    """The positions ``[start, stop)`` of the candidates of cell ``key`` in sorted order."""
    b = key % n_buckets
    start = starts[b]
    stop = starts[b + 1]
    while start < stop and skeys[start] < key:
        start += 1
    end = start
    while end < stop and skeys[end] == key:
        end += 1
    return start, end


@njit(cache=True, nogil=True, inline="always")
def _within(X, i, Ys, s, eps, code, p, e2lo, e2hi):
    """``dist(X[i], Ys[s]) <= eps``, as :func:`_distance` decides it; the euclidean square root
    is taken only for squared distances within a relative 1e-12 of ``eps**2`` (elsewhere the
    correctly rounded root falls on the same side of ``eps``)."""
    if code == 0:
        acc = 0.0
        for f in range(X.shape[1]):
            diff = np.float64(X[i, f]) - Ys[s, f]
            acc += diff * diff
        if acc <= e2lo:
            return True
        if acc > e2hi:
            return False
        return np.sqrt(acc) <= eps
    return _distance(X, i, Ys, s, code, p) <= eps


@njit(parallel=True, cache=True)
def _grid_counts(X, Ys, ws, eps, code, p, e2lo, e2hi, lo, inv_w, extent, n_buckets, starts,
                 skeys, order, out):
    d = X.shape[1]
    n_cells = 3 ** d
    for i in prange(X.shape[0]):
        coords = np.empty(d, np.int64)
        _cell(X, i, lo, inv_w, extent, coords)
        total = 0.0
        for t in range(n_cells):
            key = _neighbour_cells(coords, extent, t, d)
            if key < 0:
                continue
            start, stop = _cell_range(key, n_buckets, starts, skeys)
            for s in range(start, stop):
                if _within(X, i, Ys, s, eps, code, p, e2lo, e2hi):
                    total += ws[s]
        out[i] = total


@njit(parallel=True, cache=True)
def _grid_min_label(X, Ys, slabels, eps, code, p, e2lo, e2hi, lo, inv_w, extent, n_buckets,
                    starts, skeys, order, out):
    d = X.shape[1]
    n_cells = 3 ** d
    for i in prange(X.shape[0]):
        coords = np.empty(d, np.int64)
        _cell(X, i, lo, inv_w, extent, coords)
        best = out[i]
        for t in range(n_cells):
            key = _neighbour_cells(coords, extent, t, d)
            if key < 0:
                continue
            start, stop = _cell_range(key, n_buckets, starts, skeys)
            for s in range(start, stop):
                if slabels[s] < best and _within(X, i, Ys, s, eps, code, p, e2lo, e2hi):
                    best = slabels[s]
        out[i] = best


@njit(parallel=True, cache=True)
def _grid_pairs(X, Ys, y_index, eps, code, p, x_index, exclude, lo, inv_w, extent, n_buckets,
                starts, skeys, order, indptr, counts_only, counts, positions, dists):
    """Pairs within ``eps`` through the grid: counts (first pass) or the candidates' positions
    and distances in candidate order (second pass: each query's slot sorted by position)."""
    d = X.shape[1]
    n_cells = 3 ** d
    for i in prange(X.shape[0]):
        coords = np.empty(d, np.int64)
        _cell(X, i, lo, inv_w, extent, coords)
        c = 0
        base = 0 if counts_only else indptr[i]
        for t in range(n_cells):
            key = _neighbour_cells(coords, extent, t, d)
            if key < 0:
                continue
            start, stop = _cell_range(key, n_buckets, starts, skeys)
            for s in range(start, stop):
                j = order[s]
                if exclude and y_index[j] == x_index[i]:
                    continue
                dist = _distance(X, i, Ys, s, code, p)
                if dist <= eps:
                    if not counts_only:
                        positions[base + c] = j
                        dists[base + c] = dist
                    c += 1
        if counts_only:
            counts[i] = c
        elif c > 1:
            slot = np.argsort(positions[base:base + c])
            positions[base:base + c] = positions[base:base + c][slot]
            dists[base:base + c] = dists[base:base + c][slot]


def _use_grid(X, Y, eps):
    """The grid of the candidates ``Y`` for queries ``X``, or None (too many features, too few
    pairs, a degenerate grid): ``(Ys, grid)``, ``Ys`` the candidates in grid order (float64,
    contiguous) and ``grid`` the arguments the grid kernels take after their own:
    ``(lo, inv_width, extent, n_buckets, starts, sorted_keys, order)``.

    Cells are hashed to ``n_buckets`` buckets (``key % n_buckets``: every cell its own bucket
    when the box holds at most two cells per candidate, so that sparse data over a large box
    costs O(candidates)); candidates are sorted by (bucket, key), and a cell's candidates are
    the run of its key within its bucket.
    """
    if X.shape[1] > _GRID_MAX_FEATURES or X.shape[0] * Y.shape[0] < _GRID_MIN_PAIRS:
        return None
    g = _grid(X, Y, eps)
    if g is None:
        return None
    lo, inv_w, extent = g
    keys = _grid_keys(Y, lo, inv_w, extent)
    n_cells = float(np.prod(extent.astype(np.float64)))
    n_buckets = int(min(n_cells, max(2 * Y.shape[0], 1024)))
    buckets = keys % n_buckets
    order = np.lexsort((keys, buckets))
    starts = np.zeros(n_buckets + 1, np.int64)
    np.cumsum(np.bincount(buckets, minlength=n_buckets), out=starts[1:])
    Ys = np.ascontiguousarray(Y[order], dtype=np.float64)
    return Ys, (lo, inv_w, extent, n_buckets, starts, keys[order], order)


def _grid_queries(X, g):
    """``(Xs, perm)``: the queries in grid order (float64, contiguous), ``Xs = X[perm]``, so
    that consecutive queries visit the same candidate cells (the cells stay in cache)."""
    perm = np.argsort(_grid_keys(X, g[0], g[1], g[2]), kind="stable")
    return np.ascontiguousarray(X[perm], dtype=np.float64), perm


def _squared_bounds(eps):
    """``eps**2`` less and more a relative 1e-12 (see :func:`_within`). The lower bound stays
    finite: a squared distance that overflows to ``inf`` is then decided by its root, ``inf``,
    never within a finite ``eps`` (as the reference decides it), even where ``eps**2``
    overflows too."""
    e2 = float(eps) * float(eps)
    return min(e2 * (1 - 1e-12), float(np.finfo(np.float64).max)), e2 * (1 + 1e-12)


@canonical(read_only="X Y")
@njit(parallel=True, cache=True)
def _radius_counts(X, Y, w, eps, code, p, out):
    for i in prange(X.shape[0]):
        total = 0.0
        for j in range(Y.shape[0]):
            if _distance(X, i, Y, j, code, p) <= eps:
                total += w[j]
        out[i] = total


@njit(cache=True, nogil=True)
def _grid_counts_self(Ys, ws, eps, code, p, e2lo, e2hi, lo, inv_w, extent, n_buckets, starts,
                      skeys, order, out):
    """Counts of a block against itself, each pair once (added to both rows), in grid order;
    a row is its own neighbour (distance 0)."""
    d = Ys.shape[1]
    n_cells = 3 ** d
    coords = np.empty(d, np.int64)
    for s in range(Ys.shape[0]):
        out[s] += ws[s]
        _cell(Ys, s, lo, inv_w, extent, coords)
        for t in range(n_cells):
            key = _neighbour_cells(coords, extent, t, d)
            if key < 0:
                continue
            start, stop = _cell_range(key, n_buckets, starts, skeys)
            for u in range(max(start, s + 1), stop):
                if _within(Ys, s, Ys, u, eps, code, p, e2lo, e2hi):
                    out[s] += ws[u]
                    out[u] += ws[s]


def _same_rows(X, Y) -> bool:
    """Whether ``X`` and ``Y`` are the same rows in memory (a block against itself)."""
    return (X.shape == Y.shape and X.dtype == Y.dtype and X.strides == Y.strides
            and X.__array_interface__["data"][0] == Y.__array_interface__["data"][0])


def radius_counts(X, Y, sample_weight, eps, metric="euclidean", p=None):
    """:func:`spmdlearn.reference.radius_counts` in one compiled pass. A block against itself
    on one thread visits each pair once (adding to both rows)."""
    out = np.zeros(X.shape[0])
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return out
    code, power = metric_code(metric, p)
    use_kernel_threads()
    w = np.asarray(sample_weight, np.float64)
    grid = _use_grid(X, Y, eps)
    if grid is not None:
        Ys, g = grid
        if get_num_threads() == 1 and _same_rows(X, Y):
            found = np.zeros(X.shape[0])
            _grid_counts_self(Ys, w[g[-1]], float(eps), code, power, *_squared_bounds(eps), *g,
                              found)
            out[g[-1]] = found
            return out
        Xs, perm = _grid_queries(X, g)
        found = np.empty(X.shape[0])
        _grid_counts(Xs, Ys, w[g[-1]], float(eps), code, power, *_squared_bounds(eps), *g, found)
        out[perm] = found
    else:
        _radius_counts(X, Y, w, float(eps), code, power, out)
    return out


@canonical(read_only="X Y")
@njit(parallel=True, cache=True)
def _radius_min_label(X, Y, labels, eps, code, p, out):
    for i in prange(X.shape[0]):
        best = out[i]
        for j in range(Y.shape[0]):
            if labels[j] < best and _distance(X, i, Y, j, code, p) <= eps:
                best = labels[j]
        out[i] = best


def radius_min_label(X, Y, labels, current, eps, metric="euclidean", p=None):
    """:func:`spmdlearn.reference.radius_min_label`; a distance is computed only for a candidate
    whose label would lower the running minimum."""
    out = np.array(current, dtype=np.int64, order="C")
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return out
    code, power = metric_code(metric, p)
    use_kernel_threads()
    labels = np.asarray(labels, np.int64)
    grid = _use_grid(X, Y, eps)
    if grid is not None:
        Ys, g = grid
        Xs, perm = _grid_queries(X, g)
        found = out[perm]
        _grid_min_label(Xs, Ys, labels[g[-1]], float(eps), code, power, *_squared_bounds(eps),
                        *g, found)
        out[perm] = found
    else:
        _radius_min_label(X, Y, labels, float(eps), code, power, out)
    return out


@canonical(read_only="X Y")
@njit(parallel=True, cache=True)
def _radius_count_pairs(X, Y, y_index, eps, code, p, x_index, exclude, counts):
    for i in prange(X.shape[0]):
        c = 0
        for j in range(Y.shape[0]):
            if exclude and y_index[j] == x_index[i]:
                continue
            if _distance(X, i, Y, j, code, p) <= eps:
                c += 1
        counts[i] = c


@canonical(read_only="X Y")
@njit(parallel=True, cache=True)
def _radius_fill_pairs(X, Y, y_index, eps, code, p, x_index, exclude, indptr, indices, dists):
    for i in prange(X.shape[0]):
        pos = indptr[i]
        for j in range(Y.shape[0]):
            if exclude and y_index[j] == x_index[i]:
                continue
            dist = _distance(X, i, Y, j, code, p)
            if dist <= eps:
                indices[pos] = y_index[j]
                dists[pos] = dist
                pos += 1


def radius_neighbors_csr(X, Y, y_index, eps, metric="euclidean", p=None, x_index=None):
    """:func:`spmdlearn.reference.radius_neighbors_csr`: a counting pass, then a filling pass
    into arrays of the exact size (no boolean matrix)."""
    n_x = X.shape[0]
    if n_x == 0 or Y.shape[0] == 0:
        return np.zeros(n_x + 1, np.int64), np.zeros(0, np.int64), np.zeros(0)
    code, power = metric_code(metric, p)
    use_kernel_threads()
    exclude = x_index is not None
    xi = np.asarray(x_index, np.int64) if exclude else np.zeros(0, np.int64)
    yi = np.asarray(y_index, np.int64)
    counts = np.zeros(n_x, np.int64)
    indptr = np.zeros(n_x + 1, np.int64)
    grid = _use_grid(X, Y, eps)
    if grid is not None:
        Ys, g = grid
        none_i, none_d = np.zeros(0, np.int64), np.zeros(0)
        _grid_pairs(X, Ys, yi, float(eps), code, power, xi, exclude, *g, indptr, True, counts,
                    none_i, none_d)
        np.cumsum(counts, out=indptr[1:])
        positions = np.empty(indptr[-1], np.int64)
        dists = np.empty(indptr[-1])
        _grid_pairs(X, Ys, yi, float(eps), code, power, xi, exclude, *g, indptr, False, counts,
                    positions, dists)
        return indptr, yi[positions], dists
    _radius_count_pairs(X, Y, yi, float(eps), code, power, xi, exclude, counts)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(indptr[-1], np.int64)
    dists = np.empty(indptr[-1])
    _radius_fill_pairs(X, Y, yi, float(eps), code, power, xi, exclude, indptr, indices, dists)
    return indptr, indices, dists


# -- union of labels along the pairs within eps -----------------------------------------------
@njit(cache=True, nogil=True, inline="always")
def _find(parent, a):
    """The root of ``a`` (path halving)."""
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@njit(cache=True, nogil=True)
def _grid_union(X, xl, Ys, syl, eps, code, p, e2lo, e2hi, lo, inv_w, extent, n_buckets, starts,
                skeys, order, parent):
    """Join ``xl[i]`` and the sorted candidates' labels ``syl[s]`` for the pairs within ``eps``
    through the grid; a distance is computed only for a pair whose labels are not joined yet.
    A root is always the smallest position of its class.

    A cell whose candidates were all found in one class is marked (classes only grow, so it
    stays so): a later query compares that class with its own once, and where they differ
    looks only for one candidate within ``eps``."""
    d = X.shape[1]
    n_cells = 3 ** d
    coords = np.empty(d, np.int64)
    uniform = np.zeros(Ys.shape[0], np.bool_)  # by the cell's first sorted position
    for i in range(X.shape[0]):
        rx = _find(parent, xl[i])
        _cell(X, i, lo, inv_w, extent, coords)
        for t in range(n_cells):
            key = _neighbour_cells(coords, extent, t, d)
            if key < 0:
                continue
            start, stop = _cell_range(key, n_buckets, starts, skeys)
            if start == stop:
                continue
            if uniform[start]:
                rc = _find(parent, syl[start])
                if rc == rx:
                    continue
                for s in range(start, stop):
                    if _within(X, i, Ys, s, eps, code, p, e2lo, e2hi):
                        if rc < rx:
                            parent[rx] = rc
                            rx = rc
                        else:
                            parent[rc] = rx
                        break
                continue
            joined = True
            for s in range(start, stop):
                ry = _find(parent, syl[s])
                if ry == rx:
                    continue
                if _within(X, i, Ys, s, eps, code, p, e2lo, e2hi):
                    if ry < rx:
                        parent[rx] = ry
                        rx = ry
                    else:
                        parent[ry] = rx
                else:
                    joined = False
            if joined:
                uniform[start] = True


@canonical(read_only="X Y")
@njit(cache=True, nogil=True)
def _brute_union(X, xl, Y, yl, eps, code, p, parent):
    for i in range(X.shape[0]):
        rx = _find(parent, xl[i])
        for j in range(Y.shape[0]):
            ry = _find(parent, yl[j])
            if ry == rx:
                continue
            if _distance(X, i, Y, j, code, p) <= eps:
                if ry < rx:
                    parent[rx] = ry
                    rx = ry
                else:
                    parent[ry] = rx


@njit(cache=True, nogil=True)
def _flatten(parent):
    for a in range(parent.shape[0]):
        parent[a] = _find(parent, a)


def radius_label_union(X, x_labels, Y, y_labels, eps, metric="euclidean", p=None):
    """:func:`spmdlearn.reference.radius_label_union` by union-find: one pass over the pairs
    (through the grid for low-dimensional blocks), computing a distance only for a pair whose
    labels are not joined yet, so that a dense cluster costs about one distance per row."""
    xl = np.asarray(x_labels, np.int64)
    yl = np.asarray(y_labels, np.int64)
    labels = np.unique(np.concatenate([xl, yl]))
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return labels, labels.copy()
    code, power = metric_code(metric, p)
    xi = np.searchsorted(labels, xl)
    yi = np.searchsorted(labels, yl)
    parent = np.arange(labels.shape[0], dtype=np.int64)
    grid = _use_grid(X, Y, eps)
    if grid is not None:
        Ys, g = grid
        Xs, perm = _grid_queries(X, g)
        _grid_union(Xs, xi[perm], Ys, yi[g[-1]], float(eps), code, power, *_squared_bounds(eps),
                    *g, parent)
    else:
        _brute_union(X, xi, Y, yi, float(eps), code, power, parent)
    _flatten(parent)
    return labels, labels[parent]
