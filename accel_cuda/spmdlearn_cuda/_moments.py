"""Moments and co-moments on the GPU: one pass over the shard, split over blocks of rows.

Each thread block takes a contiguous range of rows and accumulates, for the rows shifted by the
range's first row ``s``, the sums ``S1 = sum w (z - s)`` and ``S2 = sum w (z - s)(z - s)^T`` (or
their diagonal), in float64. Shifting by a row of the same range keeps the terms at the scale of
the data's spread, so ``S2 - S1 S1^T / W`` loses nothing to cancellation even far from the
origin; the blocks' ``(W, mean, centered)`` triples are then merged with the exact
parallel form of Chan et al.'s update. No copy of the shard is made, and the shard is read once.

Up to 32 columns (compute capability 8.0 and newer), the products run on the tensor cores: one
``mma.m8n8k4`` in float64 per 8 x 8 block of the upper triangle and per 4 rows, on operands that
each lane loads straight from the shard (the 2x2-tile kernel, for wider data or older GPUs,
stages each tile of rows in shared memory and reads it back, which bounds its speed).

The reference definitions are :func:`spmdlearn.reference.moments_local`,
:func:`~spmdlearn.reference.comoments_local` and :func:`~spmdlearn.reference.column_stats_local`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from spmdlearn.reference import ColumnStatsPartial, ComomentsPartial, MomentsPartial

from ._device import cupy, to_host

__all__ = ["moments_local", "comoments_local", "column_stats_local"]

_THREADS = 256
_MERGE_THREADS = 256
_GRAM_THREADS = 128
_GRAM_MIN_BLOCKS = 8  # resident blocks per multiprocessor: caps registers at 64
_TILE_ROWS = 16
_MAX_GRAM_COLUMNS = 64  # 2x2 tiles of the upper triangle: at most 2 per thread

_SOURCE = r"""
// Element (i, j) of [X, Y]: X has dx columns, Y the rest; strides are in elements.
__device__ __forceinline__ double z_at(const T* X, const T* Y, long i, int j, int dx,
                                      long xs0, long xs1, long ys0, long ys1) {
    return j < dx ? (double)X[i * xs0 + j * xs1] : (double)Y[i * ys0 + (j - dx) * ys1];
}

// Each thread owns PAIRS 2x2 tiles (I, J), I <= J, of the upper block triangle of the d x d
// result; tile rows are padded with zero columns to dp = 2 ceil(d / 2), so 16-byte loads of
// two neighbouring columns need no bounds test.
extern "C" __global__ void __launch_bounds__(GRAM_THREADS, GRAM_MIN_BLOCKS) gram_blocks(
        const T* X, const T* Y, const T* w, int has_w, long n, int dx, int d,
        long xs0, long xs1, long ys0, long ys1, long rows_per_block,
        double* out_w, double* out_shift, double* out_s1, double* out_s2) {
    extern __shared__ double smem[];
    const int nb = (d + 1) / 2, dp = 2 * nb;
    double* tile = smem;                          // TILE_ROWS x dp: z - shift
    double* tile_w = smem + TILE_ROWS * dp;       // TILE_ROWS x dp: w (z - shift)
    double* shift = tile_w + TILE_ROWS * dp;      // dp
    const long start = (long)blockIdx.x * rows_per_block;
    const long stop = min(n, start + rows_per_block);
    const int nblocks = nb * (nb + 1) / 2;
    const int tid = threadIdx.x;
    double acc[PAIRS][4];
    int bi[PAIRS], bj[PAIRS];
#pragma unroll
    for (int k = 0; k < PAIRS; ++k) {
        acc[k][0] = acc[k][1] = acc[k][2] = acc[k][3] = 0.0;
        bi[k] = 0; bj[k] = 0;
        int p = tid + k * blockDim.x;
        if (p < nblocks) {           // p -> (I, J), I <= J, row-major upper triangle
            int I = 0, rem = p;
            while (rem >= nb - I) { rem -= nb - I; ++I; }
            bi[k] = I; bj[k] = I + rem;
        }
    }
    double s1 = 0.0, wsum = 0.0;
    for (int j = tid; j < dp; j += blockDim.x)
        shift[j] = (start < stop && j < d) ? z_at(X, Y, start, j, dx, xs0, xs1, ys0, ys1) : 0.0;
    __syncthreads();
    const double2* tile2 = (const double2*)tile;
    const double2* tile_w2 = (const double2*)tile_w;
    // Software pipeline: each thread holds its EPT elements of the next tile in registers,
    // loaded from global memory while the current tile is reduced from shared memory.
    double nxt[EPT], nxt_w[EPT];
    // Which element of a tile each of this thread's EPT slots holds never changes: its row in
    // the tile, its column, and the column's base pointer and row stride are computed once.
    const T* src[EPT];
    long stride[EPT];
    int row_of[EPT], col_of[EPT];
#pragma unroll
    for (int q = 0; q < EPT; ++q) {
        int e = tid + q * GRAM_THREADS;
        int r = e / dp, j = e - r * dp;
        bool real = e < TILE_ROWS * dp && j < d;
        row_of[q] = real ? r : TILE_ROWS;   // TILE_ROWS: never loaded
        col_of[q] = j;
        src[q] = j < dx ? X + (long)j * xs1 : Y + (long)(j - dx) * ys1;
        stride[q] = j < dx ? xs0 : ys0;
    }
    auto fetch = [&](long base) {
        const int rows = (int)min((long)TILE_ROWS, stop - base);
#pragma unroll
        for (int q = 0; q < EPT; ++q) {
            double v = 0.0, wr = 0.0;
            if (row_of[q] < rows) {
                long i = base + row_of[q];
                v = (double)src[q][i * stride[q]];
                wr = has_w ? (double)w[i] : 1.0;
            }
            nxt[q] = v; nxt_w[q] = wr;
        }
    };
    if (start < stop) fetch(start);
    for (long base = start; base < stop; base += TILE_ROWS) {
#pragma unroll
        for (int q = 0; q < EPT; ++q) {
            int e = tid + q * GRAM_THREADS;
            if (e < TILE_ROWS * dp) {
                int j = col_of[q];
                // Padding columns are zero; rows past the end have weight zero, so their
                // (finite) values contribute nothing: the loops below need no test.
                double c = j < d ? nxt[q] - shift[j] : 0.0;
                tile[e] = c;
                tile_w[e] = nxt_w[q] * c;
                if (j == 0) wsum += nxt_w[q];
            }
        }
        __syncthreads();
        if (base + TILE_ROWS < stop) fetch(base + TILE_ROWS);
#pragma unroll
        for (int k = 0; k < PAIRS; ++k) {
            if (tid + k * blockDim.x < nblocks) {
                double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
#pragma unroll 8
                for (int r = 0; r < TILE_ROWS; ++r) {
                    double2 u = tile_w2[(r * dp) / 2 + bi[k]];
                    double2 v = tile2[(r * dp) / 2 + bj[k]];
                    a0 += u.x * v.x; a1 += u.x * v.y; a2 += u.y * v.x; a3 += u.y * v.y;
                }
                acc[k][0] += a0; acc[k][1] += a1; acc[k][2] += a2; acc[k][3] += a3;
            }
        }
        if (tid < d) {
            for (int r = 0; r < TILE_ROWS; ++r) s1 += tile_w[r * dp + tid];
        }
        __syncthreads();
    }
    if (tid < d) {
        out_s1[(long)blockIdx.x * d + tid] = s1;
        out_shift[(long)blockIdx.x * d + tid] = shift[tid];
    }
    __syncthreads();   // shift[] is read above before shared memory is reused below
    double* s2 = out_s2 + (long)blockIdx.x * d * d;
#pragma unroll
    for (int k = 0; k < PAIRS; ++k) {
        if (tid + k * blockDim.x < nblocks) {
            for (int q = 0; q < 4; ++q) {
                int a = 2 * bi[k] + q / 2, b = 2 * bj[k] + q % 2;
                if (a < d && b < d && a <= b) {
                    s2[a * d + b] = acc[k][q];
                    s2[b * d + a] = acc[k][q];
                }
            }
        }
    }
    __syncthreads();
    // Each thread's share of sum(w) (rows it loaded at column 0) is merged in shared memory.
    smem[tid] = wsum;
    __syncthreads();
    if (tid == 0) {
        double total = 0.0;
        for (int t = 0; t < blockDim.x; ++t) total += smem[t];
        out_w[blockIdx.x] = total;
    }
}

// Chan et al.'s parallel merge of B blocks' shifted sums: W (B), shift/S1 (B, d), S2 (B, d, d)
// or (B, d) for the diagonal only. One thread block per output entry; its threads stride over
// the B blocks, then a tree in shared memory adds their shares in a fixed order.
__device__ double block_sum(double v, double* sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

extern "C" __global__ void merge_mean(const double* W, const double* shift, const double* S1,
                                      int B, int d, double* mean, double* total) {
    __shared__ double sh[MERGE_THREADS];
    const int j = blockIdx.x;
    double t = 0.0, m = 0.0;
    for (int b = threadIdx.x; b < B; b += blockDim.x) {
        double wb = W[b];
        if (wb > 0) { t += wb; m += wb * (shift[b * d + j] + S1[b * d + j] / wb); }
    }
    t = block_sum(t, sh);
    m = block_sum(m, sh);
    if (threadIdx.x == 0) {
        mean[j] = t > 0 ? m / t : 0.0;
        if (j == 0) total[0] = t;
    }
}

extern "C" __global__ void merge_centered(const double* W, const double* shift, const double* S1,
                                          const double* S2, const double* mean, int B, int d,
                                          int diagonal, double* out) {
    __shared__ double sh[MERGE_THREADS];
    const int e = blockIdx.x;
    const int i = diagonal ? e : e / d, j = diagonal ? e : e % d;
    double c = 0.0;
    for (int b = threadIdx.x; b < B; b += blockDim.x) {
        double wb = W[b];
        if (wb > 0) {
            double s1i = S1[b * d + i], s1j = S1[b * d + j];
            double di = shift[b * d + i] + s1i / wb - mean[i];
            double dj = shift[b * d + j] + s1j / wb - mean[j];
            double s2 = diagonal ? S2[b * d + i] : S2[(long)b * d * d + e];
            c += (s2 - s1i * s1j / wb) + wb * di * dj;
        }
    }
    c = block_sum(c, sh);
    if (threadIdx.x == 0) out[e] = c;
}

// Per-column minimum and maximum over B blocks' (B, d) extrema; NaN, once met, stays.
__device__ double nan_min(double a, double b) { return (a != a || a < b) ? a : (b != b ? b : fmin(a, b)); }
__device__ double nan_max(double a, double b) { return (a != a || a > b) ? a : (b != b ? b : fmax(a, b)); }

extern "C" __global__ void merge_extrema(const double* lo, const double* hi, int B, int d,
                                         double* out_lo, double* out_hi) {
    __shared__ double sl[MERGE_THREADS];
    __shared__ double sh[MERGE_THREADS];
    const int j = blockIdx.x;
    double a = 1.0 / 0.0, b = -1.0 / 0.0;
    for (int k = threadIdx.x; k < B; k += blockDim.x) {
        a = nan_min(a, lo[k * d + j]);
        b = nan_max(b, hi[k * d + j]);
    }
    sl[threadIdx.x] = a;
    sh[threadIdx.x] = b;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            sl[threadIdx.x] = nan_min(sl[threadIdx.x], sl[threadIdx.x + s]);
            sh[threadIdx.x] = nan_max(sh[threadIdx.x], sh[threadIdx.x + s]);
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) { out_lo[j] = sl[0]; out_hi[j] = sh[0]; }
}

// Per-column sums of one block of rows: value v = x (or x * w when mul_w), frequency f = w
// (when freq_w) or 1. Threads split as lanes over rows x columns; shared memory merges lanes.
extern "C" __global__ void column_blocks(
        const T* X, const T* w, int mul_w, int freq_w, long n, int d, long xs0, long xs1,
        long rows_per_block, double* out_w, double* out_shift, double* out_s1,
        double* out_s2, double* out_min, double* out_max) {
    extern __shared__ double smem[];
    const long start = (long)blockIdx.x * rows_per_block;
    const long stop = min(n, start + rows_per_block);
    const int tid = threadIdx.x;
    const int lanes = d <= blockDim.x ? blockDim.x / d : 1;
    const int lane = d <= blockDim.x ? tid / d : 0;
    const double inf = 1.0 / 0.0;
    for (int j0 = d <= blockDim.x ? tid % d : tid; j0 < d; j0 += (d <= blockDim.x ? d : blockDim.x)) {
        if (lane >= lanes) break;
        double s = 0.0;
        if (start < stop) {
            double x0 = (double)X[start * xs0 + j0 * xs1];
            s = mul_w ? x0 * (double)w[start] : x0;
        }
        double s1 = 0.0, s2 = 0.0, f = 0.0, lo = inf, hi = -inf;
        for (long i = start + lane; i < stop; i += lanes) {
            double x = (double)X[i * xs0 + j0 * xs1];
            double wi = (mul_w || freq_w) ? (double)w[i] : 1.0;
            double v = mul_w ? x * wi : x;
            double fi = freq_w ? wi : 1.0;
            double c = v - s;
            s1 += fi * c; s2 += fi * c * c; f += fi;
            lo = fmin(lo, v); hi = fmax(hi, v);
        }
        if (d <= blockDim.x) {
            // Lanes of column j0 sit at j0, j0 + d, ...: merge them (same shift s).
            double* sh = smem;
            const int nl = lanes;
            sh[0 * nl * d + lane * d + j0] = s1;
            sh[1 * nl * d + lane * d + j0] = s2;
            sh[2 * nl * d + lane * d + j0] = f;
            sh[3 * nl * d + lane * d + j0] = lo;
            sh[4 * nl * d + lane * d + j0] = hi;
        } else {
            long o = (long)blockIdx.x * d + j0;
            out_s1[o] = s1; out_s2[o] = s2; out_w[o] = f; out_min[o] = lo; out_max[o] = hi;
            out_shift[o] = s;
        }
        if (d <= blockDim.x) {
            // stash the shift for the merge below
            if (lane == 0) out_shift[(long)blockIdx.x * d + j0] = s;
        }
    }
    if (d <= blockDim.x) {
        __syncthreads();
        if (tid < d) {
            const int nl = lanes;
            double s1 = 0.0, s2 = 0.0, f = 0.0, lo = inf, hi = -inf;
            for (int l = 0; l < nl; ++l) {
                s1 += smem[0 * nl * d + l * d + tid];
                s2 += smem[1 * nl * d + l * d + tid];
                f += smem[2 * nl * d + l * d + tid];
                lo = fmin(lo, smem[3 * nl * d + l * d + tid]);
                hi = fmax(hi, smem[4 * nl * d + l * d + tid]);
            }
            long o = (long)blockIdx.x * d + tid;
            out_s1[o] = s1; out_s2[o] = s2; out_w[o] = f; out_min[o] = lo; out_max[o] = hi;
        }
    }
}
"""


_MMA_SOURCE = r"""
// The co-moments of [X, Y] on the tensor cores: D += A B with mma.m8n8k4 in float64 (IEEE
// products and sums, as the FMA units give). Lane l of a warp holds, for its row l % 4 of a
// group of 4 rows and for each 8-column block I, the element at column 8 I + l / 4: that is
// at once its element of the A operand (8 x 4: columns x rows, times the weight) and of the B
// operand (4 x 8: rows x columns) of the block product (I, J), so no shared memory is needed.
// Every warp accumulates the upper block triangle over its groups of rows; the warps' sums are
// added in warp order at the end.
#define NBLK (NB8 * (NB8 + 1) / 2)
#define WARPS (GRAM_THREADS / 32)

__device__ __forceinline__ void mma884(double& c0, double& c1, double a, double b) {
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%0,%1};"
                 : "+d"(c0), "+d"(c1) : "d"(a), "d"(b));
}

extern "C" __global__ void __launch_bounds__(GRAM_THREADS, GRAM_MIN_BLOCKS) gram_mma(
        const T* X, const T* Y, const T* w, int has_w, long n, int dx, int d,
        long xs0, long xs1, long ys0, long ys1, long rows_per_block,
        double* out_w, double* out_shift, double* out_s1, double* out_s2) {
    __shared__ double red[NBLK * 64];
    __shared__ double red_s1[WARPS][NB8 * 8];
    __shared__ double red_w[WARPS];
    __shared__ double sh_shift[NB8 * 8];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int k = lane & 3, m = lane >> 2;
    const long start = (long)blockIdx.x * rows_per_block;
    const long stop = min(n, start + rows_per_block);
    const T* src[NB8];
    long stride[NB8];
    bool real[NB8];
    double shift[NB8], s1[NB8];
#pragma unroll
    for (int I = 0; I < NB8; ++I) {
        const int j = 8 * I + m;
        real[I] = j < d;
        src[I] = j < dx ? X + (long)j * xs1 : Y + (long)(j - dx) * ys1;
        stride[I] = j < dx ? xs0 : ys0;
        shift[I] = (real[I] && start < stop) ? (double)src[I][start * stride[I]] : 0.0;
        s1[I] = 0.0;
    }
    double acc[NBLK][2];
#pragma unroll
    for (int b = 0; b < NBLK; ++b) acc[b][0] = acc[b][1] = 0.0;
    double wsum = 0.0;
    for (long base = start + 4 * warp; base < stop; base += 4 * WARPS * UNROLL) {
        double v[UNROLL][NB8], wr[UNROLL];
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {   // every load of the step first, then the products
            const long i = base + (long)u * 4 * WARPS + k;
            const bool in = i < stop;
            wr[u] = in ? (has_w ? (double)w[i] : 1.0) : 0.0;
#pragma unroll
            for (int I = 0; I < NB8; ++I)
                v[u][I] = (in && real[I]) ? (double)src[I][i * stride[I]] - shift[I] : 0.0;
        }
#pragma unroll
        for (int u = 0; u < UNROLL; ++u) {
            wsum += wr[u];
            double a[NB8];
#pragma unroll
            for (int I = 0; I < NB8; ++I) { a[I] = wr[u] * v[u][I]; s1[I] += a[I]; }
            int b = 0;
#pragma unroll
            for (int I = 0; I < NB8; ++I)
#pragma unroll
                for (int J = I; J < NB8; ++J) { mma884(acc[b][0], acc[b][1], a[I], v[u][J]); ++b; }
        }
    }
    // The four lanes of one column hold four rows' shares: add them (xor shuffles).
#pragma unroll
    for (int I = 0; I < NB8; ++I) {
        s1[I] += __shfl_xor_sync(0xffffffffu, s1[I], 1);
        s1[I] += __shfl_xor_sync(0xffffffffu, s1[I], 2);
        if (k == 0) red_s1[warp][8 * I + m] = s1[I];
        if (k == 0 && warp == 0) sh_shift[8 * I + m] = shift[I];
    }
    wsum += __shfl_xor_sync(0xffffffffu, wsum, 1);
    wsum += __shfl_xor_sync(0xffffffffu, wsum, 2);
    if (lane == 0) red_w[warp] = wsum;
    for (int v = 0; v < WARPS; ++v) {       // the warps' block sums, in warp order
        if (warp == v) {
#pragma unroll
            for (int b = 0; b < NBLK; ++b)
#pragma unroll
                for (int q = 0; q < 2; ++q) {
                    const int e = b * 64 + m * 8 + 2 * k + q;
                    red[e] = (v == 0 ? 0.0 : red[e]) + acc[b][q];
                }
        }
        __syncthreads();
    }
    const int tid = threadIdx.x;
    if (tid < d) {
        double s = 0.0;
        for (int v = 0; v < WARPS; ++v) s += red_s1[v][tid];
        out_s1[(long)blockIdx.x * d + tid] = s;
        out_shift[(long)blockIdx.x * d + tid] = sh_shift[tid];
    }
    if (tid == 0) {
        double t = 0.0;
        for (int v = 0; v < WARPS; ++v) t += red_w[v];
        out_w[blockIdx.x] = t;
    }
    double* s2 = out_s2 + (long)blockIdx.x * d * d;
    for (int e = tid; e < d * d; e += blockDim.x) {
        int a = e / d, c = e - a * d;
        if (a > c) { int t = a; a = c; c = t; }  // the upper triangle's entry, both places
        const int I = a >> 3, J = c >> 3;
        const int blk = I * NB8 - I * (I - 1) / 2 + (J - I);
        s2[e] = red[blk * 64 + (a & 7) * 8 + (c & 7)];
    }
}
"""

#: Widest [X, Y] (columns) for the tensor-core kernel: 4 blocks of 8 (10 block products, 20
#: accumulators per thread); wider data takes the 2x2-tile kernel.
_MMA_MAX_COLUMNS = 32
#: Groups of 4 rows each warp loads before their products, and resident blocks per
#: multiprocessor (registers at most 65536 / (128 x blocks)). On an H200, [X, y] of 2M x 20
#: float64 (ms; read bound 0.088): 4 and 5 blocks, 2 groups: 0.190, 0.175; 4 blocks, 1, 3 and 4
#: groups: 0.179, 0.221, 0.220; 2, 3 and 8 blocks: 0.33, 0.25, 0.32. The 2x2-tile kernel: 0.324.
_MMA_UNROLL = 2
_MMA_MIN_BLOCKS = 5


@lru_cache(maxsize=None)
def _mma_kernel(dtype_name: str, nb8: int):
    cp = cupy()
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    source = (f"#define T {ctype}\n#define NB8 {nb8}\n#define UNROLL {_MMA_UNROLL}\n"
              f"#define GRAM_THREADS {_GRAM_THREADS}\n#define GRAM_MIN_BLOCKS {_MMA_MIN_BLOCKS}\n"
              + _MMA_SOURCE)
    return cp.RawModule(code=source, options=("-std=c++14",)).get_function("gram_mma")


@lru_cache(maxsize=None)
def _has_mma(device_id: int) -> bool:
    """Float64 mma.m8n8k4 needs compute capability 8.0 or newer."""
    major = cupy().cuda.runtime.getDeviceProperties(device_id)["major"]
    return major >= 8


@lru_cache(maxsize=None)
def _module(dtype_name: str, pairs: int, ept: int = 1):
    cp = cupy()
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    source = (f"#define T {ctype}\n#define TILE_ROWS {_TILE_ROWS}\n#define PAIRS {pairs}\n"
              f"#define EPT {ept}\n"
              f"#define MERGE_THREADS {_MERGE_THREADS}\n#define GRAM_THREADS {_GRAM_THREADS}\n"
              f"#define GRAM_MIN_BLOCKS {_GRAM_MIN_BLOCKS}\n" + _SOURCE)
    return cp.RawModule(code=source, options=("-std=c++14",))


@lru_cache(maxsize=None)
def _kernel(dtype_name: str, name: str, pairs: int = 1, ept: int = 1):
    return _module(dtype_name, pairs, ept).get_function(name)


@lru_cache(maxsize=None)
def _multiprocessors(device_id: int) -> int:
    return cupy().cuda.runtime.getDeviceProperties(device_id)["multiProcessorCount"]


def _n_blocks(n: int) -> int:
    sms = _multiprocessors(cupy().cuda.runtime.getDevice())
    # Enough blocks to keep every multiprocessor busy, each with a few tiles of rows.
    return int(max(1, min(8 * sms, -(-n // (4 * _TILE_ROWS)))))


def _strides(a):
    item = a.itemsize
    if a.ndim == 1:
        return a.strides[0] // item, 0
    return a.strides[0] // item, a.strides[1] // item


def _merge_blocks(W, shift, S1, S2, extra=0):
    """Chan et al.'s parallel merge of per-block shifted sums (two small kernels, float64).

    ``W`` (B,), ``shift``/``S1`` (B, d), ``S2`` (B, d, d), or (B, d) for the diagonal only.
    Returns ``(flat, (W_total, mean, centered))``: the three are views of the one device
    buffer ``flat``, which has ``extra`` more entries at its end for the caller, so that one
    copy brings every result to the host. Blocks of zero weight contribute nothing.
    """
    cp = cupy()
    B, d = S1.shape
    diagonal = S2.ndim == 2
    n_out = d if diagonal else d * d
    flat = cp.empty(1 + d + n_out + extra)
    mean, centered = flat[1:1 + d], flat[1 + d:1 + d + n_out]
    W, shift, S1, S2 = (cp.ascontiguousarray(a) for a in (W, shift, S1, S2))
    _kernel("float64", "merge_mean")((d,), (_MERGE_THREADS,),
                                     (W, shift, S1, np.int32(B), np.int32(d), mean, flat[:1]))
    _kernel("float64", "merge_centered")((n_out,), (_MERGE_THREADS,),
                                         (W, shift, S1, S2, mean, np.int32(B), np.int32(d),
                                          np.int32(diagonal), centered))
    return flat, (flat[0], mean, centered if diagonal else centered.reshape(d, d))


def _to_host(flat, *parts):
    """NumPy copies of views of the float64 device buffer ``flat``: one copy to the host."""
    host = to_host(flat)
    out = []
    for p in parts:
        start = (p.data.ptr - flat.data.ptr) // flat.itemsize
        out.append(host[start:start + p.size].reshape(p.shape))
    return out


def _gram(X, Y, w):
    """``(flat, (W, mean, comoment))`` of ``[X, Y]`` with weights ``w`` (device arrays),
    float64: views of one device buffer (:func:`_merge_blocks`)."""
    cp = cupy()
    n, dx = X.shape
    dy = 0 if Y is None else (1 if Y.ndim == 1 else Y.shape[1])
    d = dx + dy
    if d > _MAX_GRAM_COLUMNS:
        return _gram_chunked(X, Y, w)
    nb = (d + 1) // 2
    pairs = -(-(nb * (nb + 1) // 2) // _GRAM_THREADS)
    dp = 2 * nb
    ept = -(-(_TILE_ROWS * dp) // _GRAM_THREADS)  # tile elements each thread loads
    mma = d <= _MMA_MAX_COLUMNS and _has_mma(cp.cuda.runtime.getDevice())
    gram = (_mma_kernel(X.dtype.name, -(-d // 8)) if mma
            else _kernel(X.dtype.name, "gram_blocks", pairs, ept))
    # One full wave of resident blocks (no tail), fewer for small shards.
    B = int(max(1, min((_MMA_MIN_BLOCKS if mma else _GRAM_MIN_BLOCKS)
                       * _multiprocessors(cp.cuda.runtime.getDevice()),
                       -(-n // (4 * _TILE_ROWS)))))
    rows_per_block = -(-n // B)
    out_w = cp.empty(B, cp.float64)
    out_shift = cp.empty((B, d), cp.float64)
    out_s1 = cp.empty((B, d), cp.float64)
    out_s2 = cp.empty((B, d, d), cp.float64)
    Yk = X if Y is None else Y
    wk = X if w is None else w
    xs0, xs1 = _strides(X)
    ys0, ys1 = _strides(Yk) if Y is not None else (0, 0)
    smem = 0 if mma else max(2 * _TILE_ROWS * dp + dp, _GRAM_THREADS) * 8
    gram((B,), (_GRAM_THREADS,), (X, Yk, wk, np.int32(w is not None), np.int64(n), np.int32(dx),
                             np.int32(d), np.int64(xs0), np.int64(xs1), np.int64(ys0),
                             np.int64(ys1), np.int64(rows_per_block), out_w, out_shift, out_s1,
                             out_s2), shared_mem=smem)
    return _merge_blocks(out_w, out_shift, out_s1, out_s2)


def _gram_chunked(X, Y, w, chunk=1 << 16):
    """Wide data: cuBLAS products over chunks of rows, each shifted by its first row."""
    cp = cupy()
    Z = X if Y is None else cp.concatenate([X, Y[:, None] if Y.ndim == 1 else Y], axis=1)
    n, d = Z.shape
    ws, shifts, s1s, s2s = [], [], [], []
    for start in range(0, n, chunk):
        block = Z[start:start + chunk].astype(cp.float64) - Z[start].astype(cp.float64)
        wb = cp.ones(block.shape[0]) if w is None else w[start:start + chunk].astype(cp.float64)
        ws.append(wb.sum())
        shifts.append(Z[start].astype(cp.float64))
        s1s.append(wb @ block)
        s2s.append((block * wb[:, None]).T @ block)
    return _merge_blocks(cp.stack(ws), cp.stack(shifts), cp.stack(s1s), cp.stack(s2s))


def _columns(X, w, *, mul_w: bool, freq_w: bool):
    """``(flat, (W, mean, m2, min, max))`` per column of a shard on the device, float64: views
    of one device buffer (:func:`_merge_blocks`)."""
    cp = cupy()
    n, d = X.shape
    column = _kernel(X.dtype.name, "column_blocks")
    B = _n_blocks(n)
    rows_per_block = -(-n // B)
    outs = [cp.empty((B, d), cp.float64) for _ in range(6)]
    xs0, xs1 = _strides(X)
    lanes = _THREADS // d if d <= _THREADS else 1
    smem = 5 * lanes * d * 8 if d <= _THREADS else 0
    column((B,), (_THREADS,), (X, X if w is None else w, np.int32(mul_w), np.int32(freq_w),
                               np.int64(n), np.int32(d), np.int64(xs0), np.int64(xs1),
                               np.int64(rows_per_block), *outs), shared_mem=smem)
    out_w, out_shift, out_s1, out_s2, out_min, out_max = outs
    # Every column of a block has the same frequency total.
    W = out_w[:, 0]
    flat, (total, mean, m2) = _merge_blocks(W, out_shift, out_s1, out_s2, extra=2 * d)
    lo, hi = flat[flat.size - 2 * d:flat.size - d], flat[flat.size - d:]
    _kernel("float64", "merge_extrema")((d,), (_MERGE_THREADS,),
                                        (out_min, out_max, np.int32(B), np.int32(d), lo, hi))
    return flat, (total, mean, m2, lo, hi)


def moments_local(X, sample_weight=None) -> MomentsPartial:
    """:func:`spmdlearn.reference.moments_local` on a CuPy shard."""
    n, d = X.shape
    if n == 0:
        return MomentsPartial(0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf), np.full(d, -np.inf))
    flat, (_, mean, m2, lo, hi) = _columns(X, sample_weight, mul_w=sample_weight is not None,
                                           freq_w=False)
    return MomentsPartial(float(n), *_to_host(flat, mean, m2, lo, hi))


def column_stats_local(X, sample_weight=None) -> ColumnStatsPartial:
    """:func:`spmdlearn.reference.column_stats_local` on a CuPy shard."""
    n, d = X.shape
    if n == 0:
        return ColumnStatsPartial(0.0, 0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf),
                                  np.full(d, -np.inf))
    flat, parts = _columns(X, sample_weight, mul_w=False, freq_w=sample_weight is not None)
    total, mean, m2, lo, hi = _to_host(flat, *parts)
    total = float(total)
    if total == 0:
        return ColumnStatsPartial(float(n), 0.0, np.zeros(d), np.zeros(d), lo, hi)
    return ColumnStatsPartial(float(n), total, mean, m2, lo, hi)


def comoments_local(X, Y=None, sample_weight=None) -> ComomentsPartial:
    """:func:`spmdlearn.reference.comoments_local` on a CuPy shard."""
    n, dx = X.shape
    d = dx + (0 if Y is None else (1 if Y.ndim == 1 else Y.shape[1]))
    if n == 0:
        return ComomentsPartial(0.0, 0.0, np.zeros(d), np.zeros((d, d)))
    if Y is not None and Y.dtype != X.dtype:
        Y = Y.astype(X.dtype)
    if sample_weight is not None and sample_weight.dtype != X.dtype:
        sample_weight = sample_weight.astype(X.dtype)
    flat, parts = _gram(X, Y, sample_weight)
    total, mean, comoment = _to_host(flat, *parts)
    total = float(total)
    if total == 0:
        return ComomentsPartial(float(n), 0.0, np.zeros(d), np.zeros((d, d)))
    return ComomentsPartial(float(n), total, mean, (comoment + comoment.T) / 2)
