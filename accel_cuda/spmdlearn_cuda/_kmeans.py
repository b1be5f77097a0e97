"""k-means on the GPU: the Lloyd step as one fused kernel (distances, argmin, per-cluster sums).

Each thread block takes a range of rows, tile by tile: one thread per row computes the scores
``||c||^2 - 2 x.c`` in the input's dtype (a plain loop over the features, so equal centers get
equal scores and the lowest index wins, as in the reference), the label, and the squared
distance to the assigned center from coordinate differences in float64 (a row whose two best
scores lie within the rounding bound of this loop and of the reference's BLAS product is flagged,
and such rows are labelled by the reference on the host); then each thread owns
some (cluster, feature) sums and adds the tile's rows of its cluster in order. Per-block sums
are added in a fixed order afterwards, by a second kernel: the result does not depend on
scheduling.

Reference definitions: :func:`spmdlearn.reference.lloyd_local`,
:func:`~spmdlearn.reference.kmeans_assign`, :func:`~spmdlearn.reference.kmeans_inertia`,
:func:`~spmdlearn.reference.kmeans_transform`, :func:`~spmdlearn.reference.kmeans_min_distances`,
:func:`~spmdlearn.reference.kmeans_plusplus_potentials`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from spmdlearn.reference import LloydPartial

from ._device import cupy, to_host

__all__ = ["lloyd_local", "kmeans_assign", "kmeans_inertia", "kmeans_transform",
           "kmeans_min_distances", "kmeans_plusplus_potentials"]

_THREADS = 128  # rows per tile: one thread each
_MAX_SLOTS = 16  # (cluster, feature) sums each thread may own: k * d <= 16 * 128
#: Thread blocks per multiprocessor (also the kernel's launch bound, which caps its registers)
#: and centers whose scores one thread computes side by side (independent product chains).
#: 2M x 20 float64, k = 10, on an H200, with a C-ordered tile loaded in one batch (kernel,
#: ms, two rounds): 7 blocks: 0.422, 0.417 (72 registers, 80 bytes spilled); 6: 0.402, 0.405;
#: 5: 0.393, 0.389 (96 registers); group sizes from an earlier sweep: 8 and 4: 0.408, 0.398;
#: 6 and 5: 0.391, 0.387; 8 and 2: 0.400, 0.389. A block for k = 10 centers of 20 float64
#: features holds about 27 KiB of shared memory.
_BLOCKS_PER_SM = 5
_GROUP = 5
#: Widest rows for which the kernel is built for their feature count (one module per count:
#: the loops over features unroll, and the tile's index arithmetic has no division by a
#: variable; 0.488 -> 0.429 ms on the shape above).
_MAX_FIXED_D = 32

_SOURCE = r"""
// DIM: the feature count as a compile-time constant where the module was built for one (the
// loops over features unroll, and the row's elements stay in registers), else d.
#if D_FIXED > 0
#define DIM D_FIXED
#else
#define DIM d
#endif
extern "C" __global__ void __launch_bounds__(THREADS, BLOCKS_PER_SM) lloyd_blocks(
        const T* X, long n, int d, long xs0, long xs1, const T* offset, const double* w,
        const T* centers,
        const double* centers64, int k, const int* labels_old, long rows_per_block,
        int with_sums, int* labels, double* sqdist, double* out, long out_width, double gamma, double unit, double c_max,
        unsigned char* near, unsigned long long* n_near) {
    extern __shared__ double smem[];
    // This block's outputs: k x d sums, k weights, the inertia, the count of changed labels.
    double* out_b = out + (long)blockIdx.x * out_width;
    T* c_sh = (T*)smem;                                  // k x d centers, input dtype
    double* c64 = smem + (k * d * sizeof(T) + 7) / 8;    // k x d centers, float64
    T* cn = (T*)(c64 + k * d);                           // k squared norms, input dtype
    double* xt = c64 + k * d + (k * sizeof(T) + 7) / 8;  // THREADS x (d + 1) tile, float64
    int* lt = (int*)(xt + THREADS * (d + 1));            // THREADS labels
    double* wt = (double*)(lt + THREADS + (THREADS & 1)); // THREADS weights
    int* order = (int*)(wt + THREADS);                   // THREADS rows, by cluster
    int* cstart = order + THREADS;                       // k + 1 cluster offsets
    int* wcount = cstart + k + 1;                        // k x WARPS rows per warp
    const int tid = threadIdx.x;
    for (int e = tid; e < k * d; e += THREADS) { c_sh[e] = centers[e]; c64[e] = centers64[e]; }
    for (int e = tid; e < k * WARPS; e += THREADS) wcount[e] = 0;
    __syncthreads();
    for (int c = tid; c < k; c += THREADS) {
        T s = 0;
        for (int j = 0; j < d; ++j) s += c_sh[c * d + j] * c_sh[c * d + j];
        cn[c] = s;
    }
    __syncthreads();
    const long start = (long)blockIdx.x * rows_per_block;
    const long stop = min(n, start + rows_per_block);
    double acc[SLOTS];
    int slot_c[SLOTS], slot_j[SLOTS];
#pragma unroll
    for (int q = 0; q < SLOTS; ++q) {
        acc[q] = 0.0;
        int e = tid + q * THREADS;
        slot_c[q] = e < k * d ? e / d : -1;
        slot_j[q] = e < k * d ? e % d : 0;
    }
    double wacc = 0.0, inertia = 0.0, changed = 0.0;
    for (long base = start; base < stop; base += THREADS) {
        const int rows = (int)min((long)THREADS, stop - base);
#if D_FIXED > 0 && CONTIGUOUS
        {
            // A C-ordered shard: the tile is contiguous. Every load of the tile is issued
            // before the first store (one round trip to memory), thread t reading elements t,
            // t + THREADS, ... (neighbouring threads, neighbouring addresses).
            const T* tile = X + base * DIM;
            T v[DIM];
#pragma unroll
            for (int u = 0; u < DIM; ++u) {
                const int e = tid + u * THREADS;
                v[u] = e < rows * DIM ? tile[e] : (T)0;
            }
#pragma unroll
            for (int u = 0; u < DIM; ++u) {
                const int e = tid + u * THREADS, r = e / DIM, jj = e - r * DIM;
                // The offset rows, rounded in the input's dtype as NumPy's X - offset is.
                if (r < rows) xt[r * (DIM + 1) + jj] = (double)(offset ? (T)(v[u] - offset[jj])
                                                                       : v[u]);
            }
        }
#else
        // Loading a tile: thread t copies its elements t, t + THREADS, ... of the tile in row
        // order (neighbouring threads read neighbouring addresses of a C-ordered shard:
        // coalesced; the loads of one thread are independent, so unrolled they overlap).
        const int tile = rows * DIM;
#pragma unroll 4
        for (int e = tid; e < tile; e += THREADS) {
            const int r = e / DIM;
            const int jj = e - r * DIM;
            // The offset rows, rounded in the input's dtype as NumPy's X - offset is.
            const T v = X[(base + r) * xs0 + (long)jj * xs1];
            xt[r * (DIM + 1) + jj] = (double)(offset ? (T)(v - offset[jj]) : v);
        }
#endif
        __syncthreads();
        const long i = base + tid;
        int label = -1;
        double wi = 0.0;
        if (i < stop) {
            const double* x = xt + tid * (DIM + 1);
            T best = 0, second = 0;
            bool has_second = false;
            double s_max = 0.0, x_sq = 0.0;
            // GROUP centers at a time: independent product chains (each center's products
            // and sums in the same order as one at a time), then the running best in center
            // order.
            for (int c0 = 0; c0 < k; c0 += GROUP) {
                const int m = min(GROUP, k - c0);
                T dot[GROUP];
#pragma unroll
                for (int q = 0; q < GROUP; ++q) dot[q] = 0;
                const T* cc = c_sh + c0 * DIM;
                if (c0 == 0) {
                    for (int j = 0; j < DIM; ++j) {  // with the squared norm of the row
                        const T xj = (T)x[j];
                        x_sq += x[j] * x[j];
#pragma unroll
                        for (int q = 0; q < GROUP; ++q)
                            if (q < m) dot[q] += xj * cc[q * DIM + j];
                    }
                } else {
                    for (int j = 0; j < DIM; ++j) {
                        const T xj = (T)x[j];
#pragma unroll
                        for (int q = 0; q < GROUP; ++q)
                            if (q < m) dot[q] += xj * cc[q * DIM + j];
                    }
                }
#pragma unroll
                for (int q = 0; q < GROUP; ++q) {
                    if (q < m) {
                        const int c = c0 + q;
                        T score = cn[c] - (T)2 * dot[q];
                        s_max = fmax(s_max, fabs((double)score));
                        if (label < 0 || score < best) {
                            if (label >= 0) { second = best; has_second = true; }
                            best = score; label = c;
                        } else if (!has_second || score < second) {
                            second = score; has_second = true;
                        }
                    }
                }
            }
            // A near-tie: the two best scores closer than twice a bound on the rounding error
            // of either this loop or the reference's BLAS product (2 (2 gamma |x| |c| + u |s|),
            // with a safety factor of 2): the reference decides the row (on the host).
            const double bound = 4.0 * (4.0 * gamma * sqrt(x_sq) * c_max + 2.0 * unit * s_max
                                        + 1.1754943508222875e-38);
            const bool is_near = has_second && (double)(second - best) <= 2.0 * bound;
            near[i] = is_near;
            if (is_near) atomicAdd(n_near, 1ULL);
            double dist = 0.0;
            for (int j = 0; j < DIM; ++j) {
                double diff = x[j] - c64[label * DIM + j];
                dist += diff * diff;
            }
            wi = w ? w[i] : 1.0;
            labels[i] = label;
            if (sqdist) sqdist[i] = dist;
            inertia += wi * dist;
            if (labels_old && labels_old[i] != label) changed += 1.0;
        }
        lt[tid] = label;
        wt[tid] = wi;
        if (with_sums) {
            // The tile's rows listed by cluster, each cluster's rows in row order (a stable
            // counting sort: the rows of one label within each warp, then warp by warp), so
            // that each (cluster, feature) sum adds only its cluster's rows, in row order.
            const int lane = tid & 31, warp = tid >> 5;
            const unsigned same = __match_any_sync(0xffffffffu, label);
            const int rank_in_warp = __popc(same & ((1u << lane) - 1u));
            if (label >= 0 && rank_in_warp == 0) wcount[label * WARPS + warp] = __popc(same);
            __syncthreads();
            if (k <= 32) {  // the clusters' offsets by one warp's prefix sum
                if (warp == 0) {
                    int total = 0;
                    if (lane < k)
                        for (int v = 0; v < WARPS; ++v) total += wcount[lane * WARPS + v];
                    for (int o = 1; o < 32; o <<= 1) {
                        const int up = __shfl_up_sync(0xffffffffu, total, o);
                        if (lane >= o) total += up;
                    }
                    if (lane < k) cstart[lane + 1] = total;
                    if (lane == 0) cstart[0] = 0;
                }
            } else {
                if (tid < k) {
                    int total = 0;
                    for (int v = 0; v < WARPS; ++v) total += wcount[tid * WARPS + v];
                    cstart[tid + 1] = total;
                }
                __syncthreads();
                if (tid == 0) {
                    cstart[0] = 0;
                    for (int c = 0; c < k; ++c) cstart[c + 1] += cstart[c];
                }
            }
            __syncthreads();
            if (label >= 0) {
                int pos = cstart[label] + rank_in_warp;
                for (int v = 0; v < warp; ++v) pos += wcount[label * WARPS + v];
                order[pos] = tid;
            }
            __syncthreads();
            for (int e = tid; e < k * WARPS; e += THREADS) wcount[e] = 0;  // for the next tile
#pragma unroll
            for (int q = 0; q < SLOTS; ++q) {
                if (slot_c[q] >= 0) {
                    double a = 0.0;
                    const int stop_c = cstart[slot_c[q] + 1];
                    for (int p = cstart[slot_c[q]]; p < stop_c; ++p) {
                        const int r = order[p];
                        a += wt[r] * xt[r * (DIM + 1) + slot_j[q]];
                    }
                    acc[q] += a;
                }
            }
            if (tid < k) {
                const int stop_c = cstart[tid + 1];
                for (int p = cstart[tid]; p < stop_c; ++p) wacc += wt[order[p]];
            }
        }
        __syncthreads();
    }
    if (with_sums) {
#pragma unroll
        for (int q = 0; q < SLOTS; ++q)
            if (slot_c[q] >= 0) out_b[tid + q * THREADS] = acc[q];
        if (tid < k) out_b[k * d + tid] = wacc;
    }
    // Per-thread inertia and change counts, added by a fixed tree: within each warp by
    // shuffles, then the warps' sums in warp order.
    for (int o = 16; o > 0; o >>= 1) {
        inertia += __shfl_down_sync(0xffffffffu, inertia, o);
        changed += __shfl_down_sync(0xffffffffu, changed, o);
    }
    __syncthreads();  // the tile's weights are no longer read
    if ((tid & 31) == 0) { wt[tid >> 5] = inertia; wt[WARPS + (tid >> 5)] = changed; }
    __syncthreads();
    if (tid == 0) {
        double si = 0.0, sc = 0.0;
        for (int v = 0; v < WARPS; ++v) { si += wt[v]; sc += wt[WARPS + v]; }
        out_b[k * d + k] = si;
        out_b[k * d + k + 1] = sc;
    }
}
"""


_SEGMENT_SOURCE = r"""
// Per-cluster weighted sums in a fixed order: rows sorted by cluster (``order``, cluster c's
// rows at order[starts[c]:starts[c + 1]]); block (c, j) sums column j of cluster c (j == d: the
// weights), each thread a fixed stride of the rows, then a fixed tree in shared memory.
extern "C" __global__ void segment_sums(const T* X, long xs0, long xs1, const double* w,
                                        const long long* order, const long long* starts, int d,
                                        double* sums, double* weights) {
    __shared__ double sh[SEG_THREADS];
    const int c = blockIdx.x, j = blockIdx.y;
    const long long s = starts[c], e = starts[c + 1];
    double acc = 0.0;
    for (long long t = s + threadIdx.x; t < e; t += SEG_THREADS) {
        const long long i = order[t];
        acc += j < d ? (double)X[i * xs0 + (long long)j * xs1] * w[i] : w[i];
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int h = SEG_THREADS / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        if (j < d) sums[(long long)c * d + j] = sh[0];
        else weights[c] = sh[0];
    }
}
"""
_SEG_THREADS = 256

_TOTALS_SOURCE = r"""
// The fused kernel's per-block outputs added (block e: output column e) in a fixed order: each
// thread a fixed stride of the blocks, then a fixed tree in shared memory. The last block
// (e == width) appends the count of near-ties. One grid over the columns: the final sum of
// 212 columns x 660 blocks in one block of the fused kernel took 0.034 ms of its 0.377 (2M x
// 20 float64, k = 10, H200); this kernel takes 0.006.
extern "C" __global__ void block_totals(const double* out, long blocks, long width,
                                        const unsigned long long* n_near, double* totals) {
    __shared__ double sh[TOT_THREADS];
    const long e = blockIdx.x;
    if (e == width) {
        if (threadIdx.x == 0) totals[width] = (double)n_near[0];
        return;
    }
    double s = 0.0;
    for (long b = threadIdx.x; b < blocks; b += TOT_THREADS) s += out[b * width + e];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int h = TOT_THREADS / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) totals[e] = sh[0];
}
"""
_TOT_THREADS = 256


@lru_cache(maxsize=None)
def _totals_kernel():
    return cupy().RawModule(code=f"#define TOT_THREADS {_TOT_THREADS}\n" + _TOTALS_SOURCE,
                            options=("-std=c++11",)).get_function("block_totals")


@lru_cache(maxsize=None)
def _segment_kernel(dtype_name: str):
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    return cupy().RawModule(code=f"#define T {ctype}\n#define SEG_THREADS {_SEG_THREADS}\n"
                            + _SEGMENT_SOURCE, options=("-std=c++11",)).get_function(
        "segment_sums")


def _cluster_sums(X, w, labels, k):
    """``(sums (k, d), weights (k,))`` float64: per-cluster sums of ``w * X`` and of ``w``, in
    an order fixed by the labels alone (no atomics: the same bits from run to run)."""
    cp = cupy()
    n, d = X.shape
    sums, weights = cp.zeros((k, d)), cp.zeros(k)
    if n == 0:
        return sums, weights
    order = cp.argsort(labels, kind="stable").astype(cp.int64)
    starts = cp.searchsorted(labels[order], cp.arange(k + 1)).astype(cp.int64)
    it = X.itemsize
    _segment_kernel(X.dtype.name)((k, d + 1), (_SEG_THREADS,), (
        X, np.int64(X.strides[0] // it), np.int64(X.strides[1] // it),
        cp.ascontiguousarray(w, dtype=cp.float64), order, starts, np.int32(d), sums, weights))
    return sums, weights


def _kernel(dtype_name: str, slots: int, d: int, contiguous: bool):
    return _compiled(dtype_name, slots, _GROUP, _THREADS, d if d <= _MAX_FIXED_D else 0,
                     contiguous, _BLOCKS_PER_SM)


@lru_cache(maxsize=None)
def _compiled(dtype_name: str, slots: int, group: int, threads: int, d_fixed: int = 0,
              contiguous: bool = False, blocks_per_sm: int = 1):
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    source = (f"#define T {ctype}\n#define THREADS {threads}\n#define WARPS {threads // 32}\n"
              f"#define SLOTS {slots}\n#define GROUP {group}\n#define D_FIXED {d_fixed}\n"
              f"#define CONTIGUOUS {int(contiguous)}\n#define BLOCKS_PER_SM {blocks_per_sm}\n"
              + _SOURCE)
    # No fused multiply-adds: the scores are rounded as plain products and sums.
    return cupy().RawModule(code=source, options=("-std=c++11", "--fmad=false")).get_function(
        "lloyd_blocks")


@lru_cache(maxsize=None)
def _multiprocessors(device_id: int) -> int:
    return cupy().cuda.runtime.getDeviceProperties(device_id)["multiProcessorCount"]


def _shared_bytes(k, d, itemsize):
    ints = _THREADS + (k + 1) + k * (_THREADS // 32)  # rows by cluster, offsets, warp counts
    return (-(-(k * d * itemsize) // 8) + k * d + -(-(k * itemsize) // 8) + _THREADS * (d + 1)
            + (_THREADS + 1) // 2 + 1 + _THREADS + -(-ints // 2)) * 8


def _fused(k, d, itemsize) -> bool:
    """Whether the fused kernel takes ``k`` centers of ``d`` features: one thread per
    cluster weight, the (cluster, feature) sums in registers, the centers in shared memory."""
    return (k <= _THREADS and -(-(k * d) // _THREADS) <= _MAX_SLOTS
            and _shared_bytes(k, d, itemsize) <= 48 * 1024)


def _run_gemm(X, sample_weight, centers, labels_old, with_sums):
    """Many or wide centers: scores by one cuBLAS product, sums in a fixed order."""
    cp = cupy()
    n, d = X.shape
    k = np.shape(centers)[0]
    C = cp.asarray(np.asarray(centers, dtype=X.dtype))
    scores = cp.einsum("ij,ij->i", C, C)[None, :] - 2 * (X @ C.T)
    labels = cp.argmin(scores, axis=1).astype(cp.int32)  # the first minimum: the lowest index
    w = cp.ones(n) if sample_weight is None else cp.asarray(sample_weight, dtype=cp.float64)
    if k > 1:  # near-ties, as in the fused kernel: cuBLAS and the host BLAS round apart
        unit = float(np.finfo(X.dtype).eps) / 2
        gamma = (d + 2) * unit / (1 - (d + 2) * unit)
        c64 = np.asarray(centers, dtype=np.float64)
        c_max = float(np.sqrt(np.max(np.einsum("ij,ij->i", c64, c64))))
        two = cp.partition(scores, 1, axis=1)[:, :2].astype(cp.float64)
        x_norm = cp.sqrt(cp.einsum("ij,ij->i", X.astype(cp.float64), X.astype(cp.float64)))
        s_max = cp.abs(scores).max(axis=1).astype(cp.float64)
        bound = 4 * (4 * gamma * x_norm * c_max + 2 * unit * s_max
                     + float(np.finfo(np.float32).tiny))
        near = (two[:, 1] - two[:, 0]) <= 2 * bound
        if bool(near.any()):
            del scores
            return _decide_near_ties(X, w, centers, labels_old, with_sums, labels, near)
    del scores
    return _partials(X, w, centers, labels_old, with_sums, labels)


def _partials(X, w, centers, labels_old, with_sums, labels):
    """The kernel's outputs from given labels: squared distances to the assigned centers,
    per-cluster sums and weights (:func:`_cluster_sums`), inertia and the count of changed
    labels."""
    cp = cupy()
    n, d = X.shape
    k = np.shape(centers)[0]
    diff = X.astype(cp.float64) - cp.asarray(centers, dtype=cp.float64)[labels]
    sqdist = cp.einsum("ij,ij->i", diff, diff)
    del diff
    sums, weights = (_cluster_sums(X, w, labels, k) if with_sums
                     else (cp.zeros((k, d)), cp.zeros(k)))
    changed = (cp.zeros(1) if labels_old is None else
               cp.count_nonzero(labels != cp.asarray(labels_old)).astype(cp.float64)[None])
    return labels, sqdist, cp.concatenate([sums.ravel(), weights, (w @ sqdist)[None], changed])


def _run(X, sample_weight, centers, labels_old, with_sums, with_sqdist=True):
    """One pass over ``X``: ``(labels, sqdist, totals)`` as device arrays.

    ``totals`` is ``[sums (k x d, raveled), weights (k), inertia, count of changed labels]`` in
    float64 (sums and weights only ``with_sums``). ``sqdist`` (float64, squared distance of each
    row to its center) may be None when ``with_sqdist`` is false.
    """
    run = _launch(X, sample_weight, centers, labels_old, with_sums, with_sqdist)
    if run.n_near is not None and np.shape(centers)[0] > 1 and int(run.n_near.get()[0]):
        labels, sqdist, totals = _settle_near_ties(X, run, centers, labels_old, with_sums)
        return labels, sqdist, cupy().asarray(totals)
    return run.labels, run.sqdist, run.totals


class _Launched(NamedTuple):
    """What :func:`_launch` leaves on the device. ``n_near`` (a 1-element count) and ``near``
    (per-row flags) are the near-ties the fused kernel found and nobody has acted on yet; both
    are None where the ties are already settled (the cuBLAS path). ``flat`` is the fused
    kernel's one buffer: ``totals`` then the count of near-ties (as a float64)."""

    labels: Any
    sqdist: Any
    totals: Any
    n_near: Any = None
    near: Any = None
    w: Any = None
    flat: Any = None  # totals and n_near, one device buffer (the fused kernel's)


def _offset_rows(X, offset):
    """``X - offset`` on the device, in ``X``'s dtype (the paths that read the rows more than
    once); ``X`` itself without an offset."""
    if offset is None:
        return X
    return X - cupy().asarray(offset, dtype=X.dtype)


def _launch(X, sample_weight, centers, labels_old, with_sums, with_sqdist,
            offset=None) -> _Launched:
    """The fused kernel launched on the rows ``X - offset`` (subtracted as each tile is read),
    its near-ties pending; for centers it does not take, :func:`_run_gemm`'s result, settled."""
    cp = cupy()
    n, d = X.shape
    k = np.shape(centers)[0]
    if not _fused(k, d, X.itemsize):
        return _Launched(*_run_gemm(_offset_rows(X, offset), sample_weight, centers, labels_old,
                                    with_sums))
    slots = max(1, -(-(k * d) // _THREADS))
    B = int(max(1, min(_BLOCKS_PER_SM * _multiprocessors(cp.cuda.runtime.getDevice()),
                       -(-n // _THREADS))))
    rows_per_block = -(-n // B)
    centers64 = cp.asarray(np.ascontiguousarray(centers, dtype=np.float64))
    # The same rounding as NumPy's astype.
    centers_t = centers64 if X.dtype == np.float64 else centers64.astype(X.dtype)
    w = None if sample_weight is None else cp.asarray(sample_weight, dtype=cp.float64)
    labels = cp.empty(n, cp.int32)
    sqdist = cp.empty(n, cp.float64) if with_sqdist else None
    width = k * d + k + 2  # per block: sums, weights, inertia, changed
    out = (cp.empty if with_sums else cp.zeros)((B, width))
    old = None if labels_old is None else cp.asarray(labels_old, dtype=cp.int32)
    it = X.itemsize
    smem = _shared_bytes(k, d, it)
    unit = float(np.finfo(X.dtype).eps) / 2
    gamma = (d + 2) * unit / (1 - (d + 2) * unit)
    c64 = np.asarray(centers, dtype=np.float64)
    c_max = float(np.sqrt(np.max(np.einsum("ij,ij->i", c64, c64), initial=0.0)))
    near = cp.empty(n, cp.uint8)
    n_near = cp.zeros(1, cp.uint64)
    totals = cp.empty(width + 1)  # the blocks' outputs added, then the count of near-ties
    null = np.uint64(0)
    _kernel(X.dtype.name, slots, d, bool(X.flags.c_contiguous))(
        (B,), (_THREADS,),
        (X, np.int64(n), np.int32(d), np.int64(X.strides[0] // it), np.int64(X.strides[1] // it),
         null if offset is None else cp.asarray(offset, dtype=X.dtype),
         null if w is None else w, centers_t, centers64, np.int32(k),
         null if old is None else old, np.int64(rows_per_block), np.int32(with_sums), labels,
         null if sqdist is None else sqdist, out, np.int64(width), np.float64(gamma),
         np.float64(unit), np.float64(c_max), near, n_near),
        shared_mem=smem)
    _totals_kernel()((width + 1,), (_TOT_THREADS,), (out, np.int64(B), np.int64(width), n_near,
                                                    totals))
    return _Launched(labels, sqdist, totals[:width], totals[width:], near, w, totals)


def _reference_labels(X, centers, near, offset=None):
    """The near-tie rows' labels by the reference's scores, computed on the host.

    The kernel's scores are a plain loop, the reference's a host BLAS product: they round
    apart in the last bits, which decides a row only where its two best scores are within the
    rounding bound (constructed data, duplicate centers, data far from the origin, and a few
    rows in 10,000 of a float32 shard). Those rows alone are gathered on the device and copied
    to the host in one transfer (``offset`` subtracted there, in X's dtype: the values of the
    offset shard), then scored ``||c||^2 - 2 x.c`` in X's dtype and memory order by the host
    BLAS as the shard's own product scores them
    (:func:`spmdlearn.reference._kmeans.assign_rows`). Counted and logged as a fallback.

    Returns ``(rows, X_rows, labels)``: the rows' indices (device), their values (host, offset)
    and their labels (host, int32).
    """
    from spmdlearn._array_api import note_fallback
    from spmdlearn.reference._kmeans import assign_rows

    cp = cupy()
    note_fallback("k-means near-ties", X)
    rows = cp.flatnonzero(near)
    gathered = to_host(X[rows])
    if offset is not None:
        gathered = gathered - np.asarray(offset, dtype=gathered.dtype)
    order = "F" if (X.flags.f_contiguous and not X.flags.c_contiguous) else "C"
    return rows, gathered, assign_rows(gathered, centers, order)


def _decide_near_ties(X, w, centers, labels_old, with_sums, labels, near):
    """:func:`_reference_labels` for the near-ties of the cuBLAS path, then the partials from
    the final labels on the device."""
    cp = cupy()
    rows, _, host = _reference_labels(X, centers, near)
    labels = labels.copy()
    labels[rows] = cp.asarray(host)
    w = cp.ones(X.shape[0]) if w is None else w
    return _partials(X, w, centers, labels_old, with_sums, labels)


def _settle_near_ties(X, run, centers, labels_old, with_sums, offset=None):
    """The fused kernel's outputs with its near-ties labelled by :func:`_reference_labels`.

    Returns ``(labels, sqdist, totals)``: labels and sqdist on the device (changed in place),
    totals on the host. Where the reference's label differs from the kernel's (rarely: most
    near-ties fall the same way), the row's weight, weighted values and squared distance move
    from the kernel's cluster to the reference's in the totals, row by row in row order (the
    sums then differ from a recomputation only by the rounding of those few updates), and the
    count of changed labels follows.
    """
    cp = cupy()
    totals = to_host(run.totals)
    rows, X_rows, want = _reference_labels(X, centers, run.near, offset)
    got = to_host(run.labels[rows])
    moved = np.flatnonzero(got != want)
    labels, sqdist = run.labels, run.sqdist
    if moved.size == 0:
        return labels, sqdist, totals
    at = rows[cp.asarray(moved)]
    src, dst = got[moved], want[moved]
    x = np.asarray(X_rows[moved], dtype=np.float64)
    c64 = np.asarray(centers, dtype=np.float64)
    w = np.ones(len(moved)) if run.w is None else to_host(run.w[at])
    d_src = np.einsum("ij,ij->i", x - c64[src], x - c64[src])
    d_dst = np.einsum("ij,ij->i", x - c64[dst], x - c64[dst])
    k, d = c64.shape
    if with_sums:
        sums, weights = totals[:k * d].reshape(k, d), totals[k * d:k * d + k]
        for i in range(len(moved)):
            sums[src[i]] -= w[i] * x[i]
            sums[dst[i]] += w[i] * x[i]
            weights[src[i]] -= w[i]
            weights[dst[i]] += w[i]
    totals[k * d + k] += float(w @ (d_dst - d_src))
    if labels_old is not None:
        old = to_host(cp.asarray(labels_old, dtype=cp.int32)[at])
        totals[k * d + k + 1] += float(np.count_nonzero(dst != old) - np.count_nonzero(src != old))
    labels[at] = cp.asarray(dst)
    if sqdist is not None:
        sqdist[at] = cp.asarray(d_dst)
    return labels, sqdist, totals


def lloyd_local(X, sample_weight, centers, labels_old, X_offset=None):
    """:func:`spmdlearn.reference.lloyd_local` on a CuPy shard: labels stay on the device.
    ``X_offset`` (n_features,) is subtracted from the rows as the kernel reads them."""
    cp = cupy()
    k, d = np.shape(centers)
    if X.shape[0] == 0:
        return cp.zeros(0, cp.int32), LloydPartial(np.zeros((k, d)), np.zeros(k), 0.0, 0.0)
    run = _launch(X, sample_weight, centers, labels_old, True, False, X_offset)
    labels = run.labels
    # One copy to the host: the totals and, from the fused kernel, the count of near-ties.
    pending = run.n_near is not None
    flat = to_host(run.flat if pending else run.totals)
    if pending:
        if k > 1 and flat[-1]:
            labels, _, flat = _settle_near_ties(X, run, centers, labels_old, True, X_offset)
        else:
            flat = flat[:-1]
    return labels, LloydPartial(flat[:k * d].reshape(k, d), flat[k * d:k * d + k],
                                float(flat[-2]), float(flat[-1]))


def kmeans_assign(X, centers):
    """:func:`spmdlearn.reference.kmeans_assign` on a CuPy shard."""
    cp = cupy()
    if X.shape[0] == 0:
        return cp.zeros(0, cp.int32), cp.zeros(0)
    labels, sqdist, _ = _run(X, None, centers, None, False)
    return labels, sqdist


def kmeans_inertia(X, sample_weight, centers, labels):
    """:func:`spmdlearn.reference.kmeans_inertia` on a CuPy shard."""
    cp = cupy()
    if X.shape[0] == 0:
        return 0.0
    diff = X.astype(cp.float64) - cp.asarray(centers, dtype=cp.float64)[cp.asarray(labels)]
    return float(cp.asarray(sample_weight, dtype=cp.float64) @ cp.einsum("ij,ij->i", diff, diff))


def _sq_distances64(X, centers, x_squared_norms=None):
    """``||x||^2 - 2 x.c + ||c||^2`` clipped at 0 (scikit-learn's expansion), in float64."""
    cp = cupy()
    X64 = X.astype(cp.float64)
    C = cp.asarray(centers, dtype=cp.float64)
    xx = (cp.einsum("ij,ij->i", X64, X64) if x_squared_norms is None
          else cp.asarray(x_squared_norms, dtype=cp.float64))
    d = xx[:, None] - 2.0 * (X64 @ C.T) + cp.einsum("ij,ij->i", C, C)[None, :]
    return cp.maximum(d, 0.0)


def kmeans_transform(X, centers):
    """:func:`spmdlearn.reference.kmeans_transform` on a CuPy block, in ``X``'s dtype."""
    cp = cupy()
    if X.shape[0] == 0:
        return cp.zeros((0, np.shape(centers)[0]), dtype=X.dtype)
    return cp.sqrt(_sq_distances64(X, centers)).astype(X.dtype)


def kmeans_min_distances(X, centers, closest=None, x_squared_norms=None):
    """:func:`spmdlearn.reference.kmeans_min_distances` on a CuPy shard (float64, on device)."""
    cp = cupy()
    d = (_sq_distances64(X, centers, x_squared_norms).min(axis=1) if X.shape[0]
         else cp.zeros(0))
    return d if closest is None else cp.minimum(cp.asarray(closest, dtype=cp.float64), d)


def kmeans_plusplus_potentials(X, sample_weight, candidates, closest, x_squared_norms=None):
    """:func:`spmdlearn.reference.kmeans_plusplus_potentials` on a CuPy shard."""
    cp = cupy()
    n_cand = candidates.shape[0]
    if X.shape[0] == 0:
        return np.zeros(n_cand)
    to_c = cp.minimum(cp.asarray(closest, dtype=cp.float64)[:, None],
                      _sq_distances64(X, candidates, x_squared_norms))
    return to_host(cp.asarray(sample_weight, dtype=cp.float64) @ to_c)
