"""The forests' split search on a CuPy histogram: :func:`spmdlearn.reference.best_splits` bit
for bit.

Gini and squared error: one kernel launch per tree level. Each thread block takes a node; its
threads scan the bins of the node's features (the cumulative sums sequential, the sums over
classes in NumPy's pairwise order, no fused multiply-adds, as the cpu backend's compiled loops
do), then one thread walks the node's drawn feature order. Entropy, and more than
``_MAX_STATS`` classes: the namespace-generic
:func:`spmdlearn.reference._splits_in_namespace.best_splits_in` (NumPy's summation orders made
explicit; entropy's ``log2`` on the host).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from spmdlearn.reference._forest import no_splits
from spmdlearn.reference._splits_in_namespace import best_splits_in

from ._device import cupy, to_host

__all__ = ["best_splits"]

_MAX_STATS = 32  # statistics per bin (classes, or w, wy, wy^2) the kernel holds per thread
_THREADS = 64
_WARPS = 4  # features a block scores at once, a warp each, in the staged kernel
_STAGED = True
_MAX_SHARED = 48 * 1024  # bytes of shared memory a block may take without opting in
_GINI, _SQUARED_ERROR = 0, 2

_SOURCE = r"""
#define MAXK MAX_STATS
// NumPy's pairwise_sum of a[0], a[st], ..., a[(n - 1) st]: a plain loop below 8 elements,
// 8 accumulators up to 128, above that two halves cut at a multiple of 8.
__device__ double block_sum(const double* a, long st, int n) {
    if (n < 8) {
        double res = 0.0;
        for (int i = 0; i < n; ++i) res += a[i * st];
        return res;
    }
    double r0 = a[0], r1 = a[st], r2 = a[2 * st], r3 = a[3 * st];
    double r4 = a[4 * st], r5 = a[5 * st], r6 = a[6 * st], r7 = a[7 * st];
    int i = 8;
    for (; i < n - n % 8; i += 8) {
        r0 += a[i * st]; r1 += a[(i + 1) * st]; r2 += a[(i + 2) * st]; r3 += a[(i + 3) * st];
        r4 += a[(i + 4) * st]; r5 += a[(i + 5) * st]; r6 += a[(i + 6) * st]; r7 += a[(i + 7) * st];
    }
    double res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));
    for (; i < n; ++i) res += a[i * st];
    return res;
}

// NumPy's recursion, walked with an explicit stack (a recursive device function would need a
// call stack of a size the compiler cannot bound).
__device__ double pairwise(const double* a, long st, int n) {
    if (n <= 128) return block_sum(a, st, n);
    long lo[32];
    int len[32], stage[32];  // stage 1: waiting for the left half, 2: for the right half
    double left[32];
    int top = 0;
    lo[0] = 0; len[0] = n; stage[0] = 0;
    while (true) {
        const int m = len[top];
        if (m > 128) {   // split: the left half first
            stage[top] = 1;
            int half = m / 2;
            half -= half % 8;
            lo[top + 1] = lo[top]; len[top + 1] = half; stage[top + 1] = 0;
            ++top;
            continue;
        }
        double v = block_sum(a + lo[top] * st, st, m);
        --top;
        while (true) {   // hand v up to the node that waits for it
            if (stage[top] == 1) {
                left[top] = v;
                stage[top] = 2;
                int half = len[top] / 2;
                half -= half % 8;
                lo[top + 1] = lo[top] + half; len[top + 1] = len[top] - half; stage[top + 1] = 0;
                ++top;
                break;
            }
            v = left[top] + v;
            if (top == 0) return v;
            --top;
        }
    }
}

// (impurity, weight) of one vector of summed statistics: the reference's _impurity.
__device__ void impurity(const double* s, int k, int mode, double* scratch, double* imp,
                         double* w) {
    if (mode == SQUARED_ERROR) {
        const double wt = s[0];
        double var = 0.0;
        if (wt > 0) {
            const double mean = s[1] / wt;
            var = s[2] / wt - mean * mean;
        }
        *w = wt;
        *imp = (0.0 > var) ? 0.0 : var;   // max(var, 0.0): NaN and -0.0 stay
        return;
    }
    const double wt = pairwise(s, 1, k);
    for (int c = 0; c < k; ++c) {
        const double p = wt > 0 ? s[c] / wt : 0.0;
        scratch[c] = p * p;
    }
    *w = wt;
    *imp = 1.0 - pairwise(scratch, 1, k);
}

// The impurity decrease of one cut (the reference's expression, operation for operation), or
// -inf where a side is too small or weightless.
__device__ double decrease(const double* left, const double* side, double left_rows,
                           double total_rows, int k, int mode, double imp, double w,
                           double min_samples_leaf, double min_weight_leaf, double* scratch) {
    double imp_l, w_l, imp_r, w_r;
    impurity(left, k, mode, scratch, &imp_l, &w_l);
    impurity(side, k, mode, scratch, &imp_r, &w_r);
    const double right_rows = total_rows - left_rows;
    const bool valid = left_rows >= min_samples_leaf && right_rows >= min_samples_leaf
        && w_l > 0 && w_r > 0 && w_l >= min_weight_leaf && w_r >= min_weight_leaf;
    return valid ? imp - (w_l / w) * imp_l - (w_r / w) * imp_r : -1.0 / 0.0;
}

// A node's split from its features' best cuts. Tried: the first n_draw features of the node's
// order, or, if none of them splits, up to the first one that does; the earliest in the order
// wins among equal decreases.
__device__ void pick_split(int node, const long long* order, const double* top_of,
                           const long long* bin_of, int n_features, long long n_draw, double w,
                           double weighted_n_root, double min_impurity_decrease,
                           long long* feature, long long* cut, double* gain) {
    const long long* ord = order + (long)node * n_features;
    int pick = -1, first_ok = -1;
    double score = -1.0 / 0.0;
    long long pick_bin = 0;
    for (int i = 0; i < n_features; ++i) {
        const long long f = ord[i];
        const double top = top_of[f];
        const double node_gain = top * w / weighted_n_root;
        const bool good = isfinite(top) && !(node_gain + 1e-12 < min_impurity_decrease)
            && top > 0;
        if (good) {
            if (first_ok < 0) first_ok = i;
            if (pick < 0 || top > score) { pick = i; score = top; pick_bin = bin_of[f]; }
        }
        if (i + 1 >= n_draw && first_ok >= 0) break;
    }
    feature[node] = pick >= 0 ? ord[pick] : -1;
    cut[node] = pick >= 0 ? pick_bin : 0;
    gain[node] = pick >= 0 ? score : 0.0;
}

extern "C" __global__ void split_search(
        const double* hist, const long long* order, int n_features, int n_bins, int k,
        long long n_draw, int mode, double min_samples_leaf, double min_impurity_decrease,
        double weighted_n_root, double min_weight_leaf, long long* feature, long long* cut,
        double* gain) {
    extern __shared__ double sh[];
    double* top_of = sh;                                  // n_features: best decrease
    long long* bin_of = (long long*)(sh + n_features);   // n_features: its bin
    const int node = blockIdx.x;
    const long S = k + 1;
    const double* h = hist + (long)node * n_features * n_bins * S;
    double total[MAXK], left[MAXK], side[MAXK], scratch[MAXK];
    // The node's totals: the first feature's bins, summed bin by bin; rows pairwise.
    for (int s = 0; s < k; ++s) {
        double acc = h[s];
        for (int b = 1; b < n_bins; ++b) acc += h[b * S + s];
        total[s] = acc;
    }
    const double total_rows = pairwise(h + k, S, n_bins);
    double imp, w;
    impurity(total, k, mode, scratch, &imp, &w);
    for (int f = threadIdx.x; f < n_features; f += blockDim.x) {
        const double* hf = h + (long)f * n_bins * S;
        double top = -1.0 / 0.0, left_rows = 0.0;
        long long top_bin = 0;
        for (int b = 0; b < n_bins - 1; ++b) {
            for (int s = 0; s < k; ++s) {
                left[s] = b == 0 ? hf[s] : left[s] + hf[b * S + s];
                side[s] = total[s] - left[s];
            }
            left_rows = b == 0 ? hf[k] : left_rows + hf[b * S + k];
            const double dec = decrease(left, side, left_rows, total_rows, k, mode, imp, w,
                                        min_samples_leaf, min_weight_leaf, scratch);
            if (dec > top) { top = dec; top_bin = b; }   // np.argmax: the first maximum
        }
        top_of[f] = top;
        bin_of[f] = top_bin;
    }
    __syncthreads();
    if (threadIdx.x == 0)
        pick_split(node, order, top_of, bin_of, n_features, n_draw, w, weighted_n_root,
                   min_impurity_decrease, feature, cut, gain);
}
// The same search, a warp per feature: the warp copies the feature's bins to shared memory
// (coalesced), lanes accumulate the cumulative sums there (one lane per statistic, bins in
// order), then score the cuts side by side (lane l: cuts l, l + 32, ...) and keep the first
// maximum by a shuffle reduction (the larger decrease, or the lower bin among equal ones: the
// first maximum in bin order; NaN never wins, as in the sequential scan).
extern "C" __global__ void split_search_warps(
        const double* hist, const long long* order, int n_features, int n_bins, int k,
        long long n_draw, int mode, double min_samples_leaf, double min_impurity_decrease,
        double weighted_n_root, double min_weight_leaf, long long* feature, long long* cut,
        double* gain) {
    extern __shared__ double sh[];
    __shared__ double node_stats[MAXK + 3];   // totals, then rows, impurity and weight
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nw = blockDim.x >> 5;
    const int node = blockIdx.x;
    const int S = k + 1, nb1 = n_bins - 1;
    double* c = sh + (long)warp * n_bins * S;                  // this warp's feature, bins x S
    double* top_of = sh + (long)nw * n_bins * S;              // n_features
    long long* bin_of = (long long*)(top_of + n_features);   // n_features
    const double* h = hist + (long)node * n_features * n_bins * S;
    double total[MAXK], side[MAXK], scratch[MAXK];
    if (warp == 0) {   // the node's totals from the first feature, in the sequential order
        for (int e = lane; e < n_bins * S; e += 32) c[e] = h[e];
        __syncwarp();
        for (int s = lane; s < k; s += 32) {
            double acc = c[s];
            for (int b = 1; b < n_bins; ++b) acc += c[b * S + s];
            node_stats[s] = acc;
        }
        __syncwarp();
        if (lane == 0) {
            for (int s = 0; s < k; ++s) total[s] = node_stats[s];
            double imp, w;
            impurity(total, k, mode, scratch, &imp, &w);
            node_stats[k] = pairwise(c + k, S, n_bins);
            node_stats[k + 1] = imp;
            node_stats[k + 2] = w;
        }
        __syncwarp();
    }
    __syncthreads();
    for (int s = 0; s < k; ++s) total[s] = node_stats[s];
    const double total_rows = node_stats[k], imp = node_stats[k + 1], w = node_stats[k + 2];
    for (int f = warp; f < n_features; f += nw) {
        const double* hf = h + (long)f * n_bins * S;
        __syncwarp();
        for (int e = lane; e < n_bins * S; e += 32) c[e] = hf[e];
        __syncwarp();
        for (int s = lane; s < S; s += 32) {   // left sides: cumulative sums, bins in order
            double acc = c[s];
            for (int b = 1; b < nb1; ++b) { acc += c[b * S + s]; c[b * S + s] = acc; }
        }
        __syncwarp();
        double top = -1.0 / 0.0;
        int top_bin = 0;
        for (int b = lane; b < nb1; b += 32) {
            const double* left = c + b * S;
            for (int s = 0; s < k; ++s) side[s] = total[s] - left[s];
            const double dec = decrease(left, side, left[k], total_rows, k, mode, imp, w,
                                        min_samples_leaf, min_weight_leaf, scratch);
            if (dec > top) { top = dec; top_bin = b; }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const double ov = __shfl_down_sync(0xffffffffu, top, o);
            const int ob = __shfl_down_sync(0xffffffffu, top_bin, o);
            if (ov > top || (ov == top && ob < top_bin)) { top = ov; top_bin = ob; }
        }
        if (lane == 0) { top_of[f] = top; bin_of[f] = top_bin; }
    }
    __syncthreads();
    if (threadIdx.x == 0)
        pick_split(node, order, top_of, bin_of, n_features, n_draw, w, weighted_n_root,
                   min_impurity_decrease, feature, cut, gain);
}
"""


@lru_cache(maxsize=None)
def _kernel(name="split_search"):
    source = (f"#define MAX_STATS {_MAX_STATS}\n#define SQUARED_ERROR {_SQUARED_ERROR}\n"
              + _SOURCE)
    # No fused multiply-adds: every product and sum rounds as NumPy's does.
    return cupy().RawModule(code=source, options=("-std=c++14", "--fmad=false")).get_function(name)


class _Move:
    to_host = staticmethod(to_host)

    @staticmethod
    def on_device(a, like):
        with like.device:
            return cupy().asarray(a)


def best_splits(hist, feature_order, n_draw, classification, criterion, min_samples_leaf,
                min_impurity_decrease, weighted_n_root, min_weight_leaf=0.0):
    """:func:`spmdlearn.reference.best_splits` on a CuPy histogram: the same
    ``(feature, bin, decrease)`` (int64, int64, float64 NumPy arrays: O(nodes), the level's
    decisions, which every rank needs on the host)."""
    cp = cupy()
    hist = hist.astype(cp.float64, copy=False)
    n_nodes, n_features, n_bins = hist.shape[:3]
    k = hist.shape[3] - 1
    if n_nodes == 0 or n_bins < 2:
        return no_splits(n_nodes)
    with hist.device:
        hist = cp.ascontiguousarray(hist)
        order = cp.ascontiguousarray(cp.asarray(feature_order, dtype=cp.int64))
        if (classification and criterion != "gini") or k > _MAX_STATS or \
                16 * n_features > _MAX_SHARED:
            feature, cut, gain = best_splits_in(cp, hist, order, n_draw, classification,
                                                criterion, min_samples_leaf,
                                                min_impurity_decrease, weighted_n_root,
                                                min_weight_leaf, _Move)
        else:
            feature = cp.empty(n_nodes, cp.int64)
            cut = cp.empty(n_nodes, cp.int64)
            gain = cp.empty(n_nodes, cp.float64)
            mode = _GINI if classification else _SQUARED_ERROR
            staged = _WARPS * n_bins * (k + 1) * 8 + 16 * n_features
            if _STAGED and staged <= _MAX_SHARED - 1024:  # a warp per feature, its bins staged
                kernel, threads, smem = _kernel("split_search_warps"), 32 * _WARPS, staged
            else:  # a thread per feature
                kernel, threads, smem = _kernel(), _THREADS, 16 * n_features
            kernel((n_nodes,), (threads,), (
                hist, order, np.int32(n_features), np.int32(n_bins), np.int32(k),
                np.int64(n_draw), np.int32(mode), np.float64(min_samples_leaf),
                np.float64(min_impurity_decrease), np.float64(weighted_n_root),
                np.float64(min_weight_leaf), feature, cut, gain), shared_mem=smem)
            flat = to_host(cp.concatenate([feature.view(cp.float64), cut.view(cp.float64), gain]))
            return (flat[:n_nodes].view(np.int64).copy(), flat[n_nodes:2 * n_nodes].view(np.int64).copy(),
                    flat[2 * n_nodes:].copy())
    return (to_host(feature).astype(np.int64), to_host(cut).astype(np.int64),
            to_host(gain).astype(np.float64))
