"""Histogram trees on the GPU: binning, bootstrap counts, histograms, routing and prediction.

One thread per value (binning) or per row (the others). Bootstrap counts use the reference's
counter-based SplitMix64 uniforms and inverse-CDF Poisson draws with ``exp(-lam)`` taken from
the host and no fused multiply-adds, so every count is the reference's bit for bit. Histograms
are added with float64 atomics: counts and integral weights come out exact, other sums to
rounding in any order; the split search reads them after the reduction over ranks.

Reference definitions: :func:`spmdlearn.reference.apply_bins`,
:func:`~spmdlearn.reference.bootstrap_counts`, :func:`~spmdlearn.reference.tree_histograms`,
:func:`~spmdlearn.reference.tree_route`, :func:`~spmdlearn.reference.tree_apply`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from spmdlearn.reference import BOOTSTRAP_STREAM
from spmdlearn.reference._forest import _GOLDEN, _mix  # the counter-based generator, shared

from ._device import cupy

__all__ = ["apply_bins", "bootstrap_counts", "tree_histograms", "tree_route", "tree_apply"]

_SOURCE = r"""
extern "C" __global__ void apply_bins(const T* X, long n, int d, long xs0, long xs1,
                                      const double* edges, int n_cuts, unsigned short* out) {
    long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n * d) return;
    long i = e / d; int j = (int)(e - i * d);
    double x = (double)X[i * xs0 + j * xs1];
    const double* cuts = edges + (long)j * n_cuts;
    int lo = 0, hi = n_cuts;                 // number of cuts < x (searchsorted, side="left")
    while (lo < hi) { int mid = (lo + hi) >> 1; if (cuts[mid] < x) lo = mid + 1; else hi = mid; }
    out[e] = (unsigned short)lo;
}

__device__ unsigned long long mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

extern "C" __global__ void bootstrap_counts(const long long* row_index, long n,
                                            unsigned long long key, double lam, double p0,
                                            long long* out) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const unsigned long long golden = 0x9E3779B97F4A7C15ULL;
    unsigned long long z = mix64(key + ((unsigned long long)row_index[i] + 1ULL) * golden);
    double u = (double)(z >> 11) * (1.0 / 9007199254740992.0);
    double p = p0, cdf = p0;
    int k = 0;
    while (u >= cdf && k < 64) { k += 1; p *= lam / k; cdf += p; }
    out[i] = k;
}

extern "C" __global__ void tree_histograms(const unsigned short* binned, long n, int d,
                                           long bs0, long bs1, const long long* node_pos,
                                           const double* y, const long long* yi,
                                           const double* w, const long long* counts,
                                           const double* class_weight, int n_bins,
                                           int n_classes, double* hist) {
    long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= n * d) return;
    long i = e / d; int j = (int)(e - i * d);
    long long pos = node_pos[i];
    long long c = counts[i];
    if (pos < 0 || c <= 0) return;
    double v = w[i] * (double)c;
    int channels = n_classes > 0 ? n_classes + 1 : 4;
    long cell = ((pos * d + j) * n_bins + binned[i * bs0 + j * bs1]) * channels;
    if (n_classes > 0) {
        long long k = yi[i];
        if (class_weight) v = v * class_weight[k];
        atomicAdd(hist + cell + k, v);
        atomicAdd(hist + cell + n_classes, 1.0);
    } else {
        double t = y[i];
        atomicAdd(hist + cell, v);
        atomicAdd(hist + cell + 1, v * t);
        atomicAdd(hist + cell + 2, v * t * t);
        atomicAdd(hist + cell + 3, 1.0);
    }
}

extern "C" __global__ void tree_route(const unsigned short* binned, long n, long bs0, long bs1,
                                      const long long* node_in, const long long* split_feature,
                                      const long long* split_bin, const long long* left,
                                      const long long* right, long long* node_out) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long node = node_in[i];
    if (node >= 0 && split_feature[node] >= 0) {
        long long f = split_feature[node];
        node = binned[i * bs0 + f * bs1] <= split_bin[node] ? left[node] : right[node];
    }
    node_out[i] = node;
}

extern "C" __global__ void tree_apply(const T* X, long n, long xs0, long xs1,
                                      const long long* feature, const double* threshold,
                                      const long long* left, const long long* right,
                                      long long* out) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long node = 0;
    while (left[node] >= 0) {
        double x = (double)X[i * xs0 + feature[node] * xs1];
        node = x <= threshold[node] ? left[node] : right[node];
    }
    out[i] = node;
}
"""


@lru_cache(maxsize=None)
def _kernel(dtype_name: str, name: str):
    ctype = {"float32": "float", "float64": "double"}[dtype_name]
    module = cupy().RawModule(code=f"#define T {ctype}\n" + _SOURCE,
                              options=("-std=c++11", "--fmad=false"))
    return module.get_function(name)


def _grid(n):
    return (max(1, -(-n // 256)),), (256,)


def _dev(a, dtype):
    return cupy().asarray(a, dtype=dtype)


def _strides(a):
    return np.int64(a.strides[0] // a.itemsize), np.int64(a.strides[1] // a.itemsize)


def apply_bins(X, edges):
    """:func:`spmdlearn.reference.apply_bins` on a CuPy shard; the bins stay on the device."""
    cp = cupy()
    edges = np.asarray(edges, dtype=np.float64)
    n, d = X.shape
    out = cp.empty((n, d), cp.uint16)
    if n:
        _kernel(X.dtype.name, "apply_bins")(*_grid(n * d), (
            X, np.int64(n), np.int32(d), *_strides(X), _dev(edges, cp.float64),
            np.int32(edges.shape[1]), out))
    return out


def bootstrap_counts(row_index, seed, lam):
    """:func:`spmdlearn.reference.bootstrap_counts` on the device, bit for bit."""
    cp = cupy()
    row_index = _dev(row_index, cp.int64)
    out = cp.empty(row_index.shape[0], cp.int64)
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed) * _GOLDEN + np.uint64(BOOTSTRAP_STREAM))
    if out.size:
        _kernel("float64", "bootstrap_counts")(*_grid(out.size), (
            row_index, np.int64(out.size), np.uint64(key), np.float64(lam),
            np.float64(np.exp(-lam)), out))
    return out


def tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes, n_bins, n_classes,
                    class_weight=None):
    """:func:`spmdlearn.reference.tree_histograms` on a CuPy shard; the histogram stays on the
    device (on one rank the split search reads it there)."""
    cp = cupy()
    n, d = binned.shape
    channels = n_classes + 1 if n_classes > 0 else 4
    hist = cp.zeros((n_nodes, d, n_bins, channels))
    if n:
        classification = n_classes > 0
        yi = _dev(y, cp.int64) if classification else cp.zeros(1, cp.int64)
        yf = cp.zeros(1) if classification else _dev(y, cp.float64)
        cw = (_dev(class_weight, cp.float64) if class_weight is not None and classification
              else np.uint64(0))
        _kernel("float64", "tree_histograms")(*_grid(n * d), (
            binned, np.int64(n), np.int32(d), *_strides(binned), _dev(node_pos, cp.int64), yf, yi,
            _dev(sample_weight, cp.float64), _dev(counts, cp.int64), cw, np.int32(n_bins),
            np.int32(n_classes), hist))
    return hist


def tree_route(binned, node_of_row, split_feature, split_bin, left, right):
    """:func:`spmdlearn.reference.tree_route` on a CuPy shard; a new device array."""
    cp = cupy()
    n = binned.shape[0]
    out = cp.empty(n, cp.int64)
    if n:
        _kernel("float64", "tree_route")(*_grid(n), (
            binned, np.int64(n), *_strides(binned), _dev(node_of_row, cp.int64),
            *(_dev(a, cp.int64) for a in (split_feature, split_bin, left, right)), out))
    return out


def tree_apply(X, feature, threshold, left, right):
    """:func:`spmdlearn.reference.tree_apply` on a CuPy shard; leaves stay on the device."""
    cp = cupy()
    n = X.shape[0]
    out = cp.empty(n, cp.int64)
    if n:
        _kernel(X.dtype.name, "tree_apply")(*_grid(n), (
            X, np.int64(n), *_strides(X), _dev(feature, cp.int64),
            _dev(threshold, cp.float64), _dev(left, cp.int64), _dev(right, cp.int64), out))
    return out
