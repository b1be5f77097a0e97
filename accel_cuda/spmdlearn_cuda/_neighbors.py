"""Neighbour searches on the GPU: one block of queries against one block of candidates.

Distances come from coordinate differences, in float64, in column order and without fused
multiply-adds (``--fmad=false``), which is the arithmetic of SciPy's ``cdist`` that the reference
uses: boundary cases (``dist <= eps``, equal distances) fall the same way bit for bit. The merge
into the running top-k sorts each query's ``k + n_candidates`` pairs on the device by
``(distance, global index)``; nothing goes to the host.

Reference definitions: :func:`spmdlearn.reference.knn_merge`,
:func:`~spmdlearn.reference.radius_counts`, :func:`~spmdlearn.reference.radius_min_label`,
:func:`~spmdlearn.reference.radius_neighbors_csr`,
:func:`~spmdlearn.reference.radius_label_union`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ._device import cupy

__all__ = ["block_distances", "knn_merge", "radius_counts", "radius_min_label",
           "radius_neighbors_csr", "radius_label_union", "METRIC_CODES"]

#: scikit-learn metric names and the distance each computes here.
METRIC_CODES = {"euclidean": 0, "l2": 0, "manhattan": 1, "cityblock": 1, "l1": 1,
                "chebyshev": 2, "infinity": 2, "minkowski": 3}

_EXCLUDED = np.iinfo(np.int64).max

_TOPK_SOURCE = r"""
// One thread per query: the query in registers, blocks of candidates staged in shared memory,
// the running k best (distance, index) pairs kept sorted in registers and merged candidate by
// candidate (lexicographic: equal distances go to the lower global index). Distances are the
// reference's (float64 coordinate differences in column order, no fused multiply-add).
#define INF (1.0 / 0.0)
extern "C" __global__ void __launch_bounds__(QT) knn_merge(
        const T* X, long nq, long xs0, long xs1, const T* Y, long ny, long ys0, long ys1,
        const long long* y_index, const long long* x_index, int has_x_index,
        const double* best_d_in, const long long* best_i_in, double p,
        double* best_d, long long* best_i) {
    __shared__ double ys[CT * D];
    __shared__ long long yi[CT];
    const long q = (long)blockIdx.x * QT + threadIdx.x;
    const bool live = q < nq;
    double xq[D];
    double bd[K];
    long long bi[K];
#pragma unroll
    for (int j = 0; j < D; ++j) xq[j] = live ? (double)X[q * xs0 + (long)j * xs1] : 0.0;
#pragma unroll
    for (int s = 0; s < K; ++s) {
        bd[s] = live ? best_d_in[q * K + s] : INF;
        bi[s] = live ? best_i_in[q * K + s] : -1;
    }
    const long long own = live && has_x_index ? x_index[q] : -2;
    for (long c0 = 0; c0 < ny; c0 += CT) {
        const int nc = (int)min((long)CT, ny - c0);
        __syncthreads();
        for (int e = threadIdx.x; e < nc * D; e += QT) {
            int r = e / D, j = e - r * D;
            ys[e] = (double)Y[(c0 + r) * ys0 + (long)j * ys1];
        }
        for (int r = threadIdx.x; r < nc; r += QT) yi[r] = y_index[c0 + r];
        __syncthreads();
        if (!live) continue;
        for (int r = 0; r < nc; ++r) {
            const long long idx = yi[r];
            if (idx == own) continue;
            double acc = 0.0;
#pragma unroll
            for (int j = 0; j < D; ++j) {
                double diff = xq[j] - ys[r * D + j];
                if (METRIC == 0) acc = acc + diff * diff;
                else if (METRIC == 1) acc = acc + fabs(diff);
                else if (METRIC == 2) acc = fmax(acc, fabs(diff));
                else acc = acc + pow(fabs(diff), p);
            }
            const double worst = bd[K - 1];
            if (METRIC == 0) {
                // sqrt is monotonic: a sum above worst^2 (with a margin for the rounding of the
                // square and the root) cannot enter; the others are compared after the root.
                if (acc > worst * worst * (1.0 + 1e-14)) continue;
                acc = sqrt(acc);
            } else if (METRIC == 3) {
                acc = pow(acc, 1.0 / p);
            }
            // Lexicographic order of (distance, index): an unfilled slot (inf, -1) sorts before
            // a real candidate at inf, as in the reference.
            if (!(acc < worst || (acc == worst && idx < bi[K - 1]))) continue;
            // insert (acc, idx), keeping the list sorted; the last pair drops out
            double cd = acc;
            long long ci = idx;
#pragma unroll
            for (int s = 0; s < K; ++s) {
                if (cd < bd[s] || (cd == bd[s] && ci < bi[s])) {
                    double td = bd[s]; long long ti = bi[s];
                    bd[s] = cd; bi[s] = ci;
                    cd = td; ci = ti;
                }
            }
        }
    }
    if (live) {
#pragma unroll
        for (int s = 0; s < K; ++s) { best_d[q * K + s] = bd[s]; best_i[q * K + s] = bi[s]; }
    }
}
"""

_SOURCE = r"""
extern "C" __global__ void block_distances(const T* X, const T* Y, long nx, long ny, int d,
                                           long xs0, long xs1, long ys0, long ys1, int metric,
                                           double p, double* out) {
    long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= nx * ny) return;
    long i = e / ny, j = e - i * ny;
    double acc = 0.0;
    for (int c = 0; c < d; ++c) {
        double diff = (double)X[i * xs0 + c * xs1] - (double)Y[j * ys0 + c * ys1];
        if (metric == 0) acc = acc + diff * diff;
        else if (metric == 1) acc = acc + fabs(diff);
        else if (metric == 2) acc = fmax(acc, fabs(diff));
        else acc = acc + pow(fabs(diff), p);
    }
    if (metric == 0) acc = sqrt(acc);
    else if (metric == 3) acc = pow(acc, 1.0 / p);
    out[e] = acc;
}
"""


@lru_cache(maxsize=None)
def _kernel(dtype_name: str):
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    module = cupy().RawModule(code=f"#define T {ctype}\n" + _SOURCE,
                              options=("-std=c++11", "--fmad=false"))
    return module.get_function("block_distances")


def supported(metric, p) -> bool:
    """Whether this backend computes ``metric`` exactly as the reference (else it declines)."""
    return metric in METRIC_CODES and (metric != "minkowski" or (p is not None and p >= 1))


def block_distances(X, Y, metric="euclidean", p=None):
    """``(n_x, n_y)`` float64 distances between two device blocks (a helper, not a kernel)."""
    cp = cupy()
    nx, ny = X.shape[0], Y.shape[0]
    out = cp.empty((nx, ny), cp.float64)
    if nx == 0 or ny == 0:
        return out
    code = _metric_code(metric, p)
    if code == 3:
        return _minkowski_on_host(X, Y, p)
    Y = Y.astype(X.dtype, copy=False)
    it = X.itemsize
    total = nx * ny
    _kernel(X.dtype.name)((-(-total // 256),), (256,),
                          (X, Y, np.int64(nx), np.int64(ny), np.int32(X.shape[1]),
                           np.int64(X.strides[0] // it), np.int64(X.strides[1] // it),
                           np.int64(Y.strides[0] // it), np.int64(Y.strides[1] // it),
                           np.int32(code), np.float64(p if p is not None else 2.0), out))
    return out


_QT, _CT = 128, 128
_CHUNK_ELEMENTS = 1 << 22  # distances per block of the unfused path (32 MiB of float64)
_MAX_D, _MAX_K = 64, 32  # registers per thread: the query and the running best


@lru_cache(maxsize=None)
def _topk_kernel(dtype_name: str, d: int, k: int, metric_code: int):
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    source = (f"#define T {ctype}\n#define D {d}\n#define K {k}\n#define METRIC {metric_code}\n"
              f"#define QT {_QT}\n#define CT {_CT}\n" + _TOPK_SOURCE)
    return cupy().RawModule(code=source, options=("-std=c++11", "--fmad=false")).get_function(
        "knn_merge")


def _minkowski_on_host(X, Y, p):
    """Minkowski distances for a power other than 1, 2 or inf, from SciPy on a host copy of the
    blocks (counted and logged as a fallback).

    ``|d| ** p`` and the p-th root come from the C library's ``pow`` in SciPy; CUDA's ``pow`` is
    accurate to two units in the last place, not correctly rounded, so near-ties would fall
    otherwise than in the reference.
    """
    from spmdlearn._array_api import note_fallback, to_host
    from spmdlearn.reference import block_distances

    note_fallback(f"minkowski p={p:g} distances", X)
    return cupy().asarray(block_distances(to_host(X), to_host(Y), "minkowski", p))


def _metric_code(metric, p):
    code = METRIC_CODES[metric]
    if code == 3 and p == 2:
        return 0  # SciPy's minkowski with p=2 is the euclidean distance
    if code == 3 and p == 1:
        return 1
    if code == 3 and np.isinf(p):
        return 2
    return code


def _lex_smallest(dist, idx, k):
    """Per row, the ``k`` smallest ``(distance, index)`` pairs, lexicographic, on the device."""
    cp = cupy()
    # A stable sort by index, then a stable sort by distance: lexicographic order.
    order = cp.argsort(idx, axis=1)
    dist = cp.take_along_axis(dist, order, axis=1)
    idx = cp.take_along_axis(idx, order, axis=1)
    order = cp.argsort(dist, axis=1)[:, :k]
    return cp.take_along_axis(dist, order, axis=1), cp.take_along_axis(idx, order, axis=1)


def knn_merge(X, Y, y_index, best_distances, best_indices, metric="euclidean", p=None,
              x_index=None):
    """:func:`spmdlearn.reference.knn_merge` on device blocks; the result stays on the device."""
    cp = cupy()
    best_d = cp.asarray(best_distances, dtype=cp.float64)
    best_i = cp.asarray(best_indices, dtype=cp.int64)
    k = best_d.shape[1]
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return best_d.copy(), best_i.copy()
    d = X.shape[1]
    if d <= _MAX_D and k <= _MAX_K and _metric_code(metric, p) != 3:
        Y = Y.astype(X.dtype, copy=False)
        out_d, out_i = cp.empty_like(best_d), cp.empty_like(best_i)
        it = X.itemsize
        nq = X.shape[0]
        x_idx = (cp.asarray(x_index, dtype=cp.int64) if x_index is not None
                 else cp.zeros(1, cp.int64))
        _topk_kernel(X.dtype.name, d, k, _metric_code(metric, p))(
            (-(-nq // _QT),), (_QT,),
            (X, np.int64(nq), np.int64(X.strides[0] // it), np.int64(X.strides[1] // it),
             Y, np.int64(Y.shape[0]), np.int64(Y.strides[0] // it), np.int64(Y.strides[1] // it),
             cp.asarray(y_index, dtype=cp.int64), x_idx, np.int32(x_index is not None),
             cp.ascontiguousarray(best_d), cp.ascontiguousarray(best_i),
             np.float64(p if p is not None else 2.0), out_d, out_i))
        return out_d, out_i
    # Wide data, many neighbours or Minkowski's pow on the host: distance blocks, then a sort
    # per query, in chunks whose distance block stays within _CHUNK_ELEMENTS (a caller may pass
    # the large blocks the fused kernel takes).
    y_index = cp.asarray(y_index, dtype=cp.int64)
    x_index = None if x_index is None else cp.asarray(x_index, dtype=cp.int64)
    c_rows = min(Y.shape[0], 8192)
    q_rows = max(1, _CHUNK_ELEMENTS // (c_rows + k))
    parts_d, parts_i = [], []
    for q0 in range(0, X.shape[0], q_rows):
        qs = slice(q0, min(X.shape[0], q0 + q_rows))
        bd, bi = best_d[qs], best_i[qs]
        for c0 in range(0, Y.shape[0], c_rows):
            cs = slice(c0, min(Y.shape[0], c0 + c_rows))
            dist = block_distances(X[qs], Y[cs], metric, p)
            cand = cp.broadcast_to(y_index[cs][None, :], dist.shape)
            if x_index is not None:
                own = cand == x_index[qs][:, None]
                dist = cp.where(own, cp.inf, dist)
                cand = cp.where(own, _EXCLUDED, cand)
            bd, bi = _lex_smallest(cp.concatenate([bd, dist], axis=1),
                                   cp.concatenate([bi, cp.ascontiguousarray(cand)], axis=1), k)
        parts_d.append(bd)
        parts_i.append(bi)
    return cp.concatenate(parts_d), cp.concatenate(parts_i)


def radius_counts(X, Y, sample_weight, eps, metric="euclidean", p=None):
    """:func:`spmdlearn.reference.radius_counts` on device blocks."""
    cp = cupy()
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return cp.zeros(X.shape[0])
    within = block_distances(X, Y, metric, p) <= eps
    return within.astype(cp.float64) @ cp.asarray(sample_weight, dtype=cp.float64)


def radius_min_label(X, Y, labels, current, eps, metric="euclidean", p=None):
    """:func:`spmdlearn.reference.radius_min_label` on device blocks."""
    cp = cupy()
    current = cp.asarray(current, dtype=cp.int64)
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return current.copy()
    within = block_distances(X, Y, metric, p) <= eps
    found = cp.where(within, cp.asarray(labels, dtype=cp.int64)[None, :], _EXCLUDED).min(axis=1)
    return cp.minimum(current, found)


def radius_neighbors_csr(X, Y, y_index, eps, metric="euclidean", p=None, x_index=None):
    """:func:`spmdlearn.reference.radius_neighbors_csr` on device blocks."""
    cp = cupy()
    n_x = X.shape[0]
    if n_x == 0 or Y.shape[0] == 0:
        return cp.zeros(n_x + 1, cp.int64), cp.zeros(0, cp.int64), cp.zeros(0)
    dist = block_distances(X, Y, metric, p)
    within = dist <= eps
    y_index = cp.asarray(y_index, dtype=cp.int64)
    if x_index is not None:
        within &= y_index[None, :] != cp.asarray(x_index, dtype=cp.int64)[:, None]
    rows, cols = cp.nonzero(within)
    indptr = cp.zeros(n_x + 1, cp.int64)
    cp.cumsum(cp.count_nonzero(within, axis=1), out=indptr[1:])
    return indptr, y_index[cols], dist[rows, cols]


def radius_label_union(X, x_labels, Y, y_labels, eps, metric="euclidean", p=None):
    """:func:`spmdlearn.reference.radius_label_union` on device blocks.

    The pairs within ``eps`` are found on the device and reduced there to their distinct pairs
    of labels (at most one per pair of touching components); those come to the host, where
    SciPy's connected components join them, as in the reference.
    """
    from spmdlearn._array_api import to_host
    from spmdlearn.reference import label_roots

    cp = cupy()
    x_labels = np.asarray(to_host(x_labels), np.int64)
    y_labels = np.asarray(to_host(y_labels), np.int64)
    labels = np.unique(np.concatenate([x_labels, y_labels]))
    if X.shape[0] == 0 or Y.shape[0] == 0:
        return labels, labels.copy()
    rows, cols = cp.nonzero(block_distances(X, Y, metric, p) <= eps)
    n = labels.shape[0]
    src = cp.asarray(np.searchsorted(labels, x_labels))[rows]
    dst = cp.asarray(np.searchsorted(labels, y_labels))[cols]
    pairs = to_host(cp.unique(src * n + dst))
    return labels, label_roots(labels, pairs // n, pairs % n)
