"""Moments and co-moments of a dpnp shard (oneMKL products), the partials to the host.

The reference's two-pass formulas (the mean, then centered sums), blocked over rows so that the
centered temporaries stay within a block: :func:`spmdlearn.reference.moments_local`,
:func:`~spmdlearn.reference.comoments_local`, :func:`~spmdlearn.reference.column_stats_local`.
"""

from __future__ import annotations

import numpy as np

from spmdlearn.reference import ColumnStatsPartial, ComomentsPartial, MomentsPartial

from ._device import dpnp, float_type, on_device, to_host

__all__ = ["moments_local", "comoments_local", "column_stats_local", "row_blocks"]

#: Rows per block of the centered temporaries (a block of 2**16 rows x 20 float64: 10 MiB).
BLOCK_ROWS = 1 << 16


def row_blocks(n, size=BLOCK_ROWS):
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


def moments_local(X, sample_weight=None) -> MomentsPartial:
    """:func:`spmdlearn.reference.moments_local` on a dpnp shard."""
    xp = dpnp()
    n, d = X.shape
    if n == 0:
        return MomentsPartial(0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf), np.full(d, -np.inf))
    f = float_type(X)
    w = None if sample_weight is None else on_device(sample_weight, X, f)

    def values(s):
        Z = X[s].astype(f)
        return Z if w is None else Z * w[s][:, None]

    total, lo, hi = xp.zeros(d, dtype=f, sycl_queue=X.sycl_queue), None, None
    for s in row_blocks(n):
        Z = values(s)
        total += Z.sum(axis=0)
        lo = Z.min(axis=0) if lo is None else xp.minimum(lo, Z.min(axis=0))
        hi = Z.max(axis=0) if hi is None else xp.maximum(hi, Z.max(axis=0))
    mean = total / n
    m2 = xp.zeros(d, dtype=f, sycl_queue=X.sycl_queue)
    for s in row_blocks(n):
        C = values(s) - mean
        m2 += (C * C).sum(axis=0)
    return MomentsPartial(float(n), *(to_host(a).astype(np.float64) for a in (mean, m2, lo, hi)))


def _columns(X, Y):
    """``[X, Y]`` as one block-sliceable callable: rows ``s`` as a float array."""
    xp = dpnp()
    f = float_type(X)
    if Y is None:
        return lambda s: X[s].astype(f)
    Y2 = Y[:, None] if Y.ndim == 1 else Y
    return lambda s: xp.concatenate([X[s].astype(f), Y2[s].astype(f)], axis=1)


def comoments_local(X, Y=None, sample_weight=None) -> ComomentsPartial:
    """:func:`spmdlearn.reference.comoments_local` on a dpnp shard."""
    xp = dpnp()
    n = X.shape[0]
    d = X.shape[1] + (0 if Y is None else (1 if Y.ndim == 1 else Y.shape[1]))
    if n == 0:
        return ComomentsPartial(0.0, 0.0, np.zeros(d), np.zeros((d, d)))
    f = float_type(X)
    Z = _columns(X, None if Y is None else on_device(Y, X))
    w = (xp.ones(n, dtype=f, sycl_queue=X.sycl_queue) if sample_weight is None
         else on_device(sample_weight, X, f))
    total = float(w.sum())
    if total == 0:
        return ComomentsPartial(float(n), 0.0, np.zeros(d), np.zeros((d, d)))
    wsum = xp.zeros(d, dtype=f, sycl_queue=X.sycl_queue)
    for s in row_blocks(n):
        wsum += w[s] @ Z(s)
    mean = wsum / total
    comoment = xp.zeros((d, d), dtype=f, sycl_queue=X.sycl_queue)
    for s in row_blocks(n):
        C = Z(s) - mean
        comoment += (C * w[s][:, None]).T @ C
    comoment = to_host(comoment).astype(np.float64)
    return ComomentsPartial(float(n), total, to_host(mean).astype(np.float64),
                            (comoment + comoment.T) / 2)


def column_stats_local(X, sample_weight=None) -> ColumnStatsPartial:
    """:func:`spmdlearn.reference.column_stats_local` on a dpnp shard."""
    xp = dpnp()
    n, d = X.shape
    if n == 0:
        return ColumnStatsPartial(0.0, 0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf),
                                  np.full(d, -np.inf))
    f = float_type(X)
    w = (xp.ones(n, dtype=f, sycl_queue=X.sycl_queue) if sample_weight is None
         else on_device(sample_weight, X, f))
    total = float(w.sum())
    lo = to_host(X.min(axis=0)).astype(np.float64)
    hi = to_host(X.max(axis=0)).astype(np.float64)
    if total == 0:
        return ColumnStatsPartial(float(n), 0.0, np.zeros(d), np.zeros(d), lo, hi)
    wsum = xp.zeros(d, dtype=f, sycl_queue=X.sycl_queue)
    for s in row_blocks(n):
        wsum += w[s] @ X[s].astype(f)
    mean = wsum / total
    m2 = xp.zeros(d, dtype=f, sycl_queue=X.sycl_queue)
    for s in row_blocks(n):
        C = X[s].astype(f) - mean
        m2 += w[s] @ (C * C)
    return ColumnStatsPartial(float(n), total, to_host(mean).astype(np.float64),
                              to_host(m2).astype(np.float64), lo, hi)
