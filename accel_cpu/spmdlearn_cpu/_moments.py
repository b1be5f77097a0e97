"""Moments and co-moments of one shard, blocked: the cpu twins of
:mod:`spmdlearn.reference._moments`.

Each row block is read from memory once. Its mean is taken in a first compiled pass, its
centered sums of squares (or, for the co-moments, its centered co-moment matrix, one BLAS
``syrk``) in a second pass over the cached block, and the blocks are merged with Chan, Golub and
LeVeque's pairwise formula. No centered or float64 copy of the shard is ever made, and no raw
sum of squares is formed, so columns far from the origin keep their digits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from spmdlearn.reference import ColumnStatsPartial, ComomentsPartial, MomentsPartial

from ._blocks import BLAS_BYTES, block_rows
from ._threads import use_kernel_threads

__all__ = ["moments_local", "column_stats_local", "comoments_local"]

#: How sample weights enter: none, rows multiplied by them (moments), frequency weights.
_UNWEIGHTED, _SCALED, _FREQUENCY = 0, 1, 2


@njit(cache=True, nogil=True)
def _merge(W, M, M2, LO, HI, a, b):
    """Merge block ``b`` into block ``a`` (Chan et al.; a block of zero weight is the identity)."""
    d = M.shape[1]
    for j in range(d):
        LO[a, j] = min(LO[a, j], LO[b, j])
        HI[a, j] = max(HI[a, j], HI[b, j])
    wa, wb = W[a], W[b]
    if wb == 0.0:
        return
    if wa == 0.0:
        W[a] = wb
        for j in range(d):
            M[a, j] = M[b, j]
            M2[a, j] = M2[b, j]
        return
    w = wa + wb
    f = wa * wb / w
    for j in range(d):
        delta = M[b, j] - M[a, j]
        M[a, j] = (wa * M[a, j] + wb * M[b, j]) / w
        M2[a, j] = M2[a, j] + M2[b, j] + delta * delta * f
    W[a] = w


@njit(parallel=True, cache=True)
def _column_moments(X, w, mode, block):
    """Per-column weight, mean, centered sum of squares, min and max over all rows of ``X``.

    Blocks are independent (``prange``); each takes two passes (sums, then centered squares)
    over its rows while they are in cache; then the blocks are merged pairwise, as a tree.
    """
    n, d = X.shape
    nb = (n + block - 1) // block
    W = np.zeros(max(nb, 1))
    M = np.zeros((max(nb, 1), d))
    M2 = np.zeros((max(nb, 1), d))
    LO = np.full((max(nb, 1), d), np.inf)
    HI = np.full((max(nb, 1), d), -np.inf)
    for b in prange(nb):
        lo = b * block
        hi = min(n, lo + block)
        s = np.zeros(d)
        mn = np.full(d, np.inf)
        mx = np.full(d, -np.inf)
        wsum = 0.0
        if mode == 2:
            for i in range(lo, hi):
                wi = np.float64(w[i])
                wsum += wi
                for j in range(d):
                    x = np.float64(X[i, j])
                    s[j] += wi * x
                    mn[j] = min(mn[j], x)
                    mx[j] = max(mx[j], x)
        elif mode == 1:
            wsum = np.float64(hi - lo)
            for i in range(lo, hi):
                wi = np.float64(w[i])
                for j in range(d):
                    z = np.float64(X[i, j]) * wi
                    s[j] += z
                    mn[j] = min(mn[j], z)
                    mx[j] = max(mx[j], z)
        else:
            wsum = np.float64(hi - lo)
            for i in range(lo, hi):
                for j in range(d):
                    x = np.float64(X[i, j])
                    s[j] += x
                    mn[j] = min(mn[j], x)
                    mx[j] = max(mx[j], x)
        W[b] = wsum
        for j in range(d):
            LO[b, j] = mn[j]
            HI[b, j] = mx[j]
        if wsum == 0.0:
            continue
        mean = s / wsum
        m2 = np.zeros(d)
        if mode == 2:
            for i in range(lo, hi):
                wi = np.float64(w[i])
                for j in range(d):
                    c = np.float64(X[i, j]) - mean[j]
                    m2[j] += wi * c * c
        elif mode == 1:
            for i in range(lo, hi):
                wi = np.float64(w[i])
                for j in range(d):
                    c = np.float64(X[i, j]) * wi - mean[j]
                    m2[j] += c * c
        else:
            for i in range(lo, hi):
                for j in range(d):
                    c = np.float64(X[i, j]) - mean[j]
                    m2[j] += c * c
        for j in range(d):
            M[b, j] = mean[j]
            M2[b, j] = m2[j]
    step = 1
    while step < nb:
        for a in range(0, nb - step, 2 * step):
            _merge(W, M, M2, LO, HI, a, a + step)
        step *= 2
    return W[0], M[0].copy(), M2[0].copy(), LO[0].copy(), HI[0].copy()


def _weights(sample_weight, n):
    if sample_weight is None:
        return np.zeros(0)
    w = np.asarray(sample_weight)
    return w if w.dtype in (np.float32, np.float64) else w.astype(np.float64)


def moments_local(X, sample_weight=None) -> MomentsPartial:
    """:func:`spmdlearn.reference.moments_local`, in one blocked compiled pass."""
    n, d = X.shape
    if n == 0:
        return MomentsPartial(0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf),
                              np.full(d, -np.inf))
    use_kernel_threads()
    mode = _UNWEIGHTED if sample_weight is None else _SCALED
    _, mean, m2, lo, hi = _column_moments(X, _weights(sample_weight, n), mode, block_rows(d))
    return MomentsPartial(float(n), mean, m2, lo, hi)


def column_stats_local(X, sample_weight=None) -> ColumnStatsPartial:
    """:func:`spmdlearn.reference.column_stats_local`, in one blocked compiled pass."""
    n, d = X.shape
    if n == 0:
        return ColumnStatsPartial(0.0, 0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf),
                                  np.full(d, -np.inf))
    use_kernel_threads()
    mode = _UNWEIGHTED if sample_weight is None else _FREQUENCY
    weight, mean, m2, lo, hi = _column_moments(X, _weights(sample_weight, n), mode, block_rows(d))
    if weight == 0.0:
        mean, m2 = np.zeros(d), np.zeros(d)
    return ColumnStatsPartial(float(n), float(weight), mean, m2, lo, hi)


@njit(cache=True, nogil=True)
def _center_block(X, Y, w, weighted, lo, hi, out):
    """Write rows ``lo:hi`` of ``[X, Y]``, centered by their (weighted) mean and scaled by
    ``sqrt(w)``, into ``out[:hi - lo]`` (float64); return ``(weight, mean)``.

    Two passes over the block (the mean, then the centered copy); the second reads the rows from
    cache. ``sqrt(w)`` scaling makes the co-moment ``out.T @ out``, one symmetric rank-k update.
    """
    dx = X.shape[1]
    dy = Y.shape[1]
    d = dx + dy
    # Sums are taken relative to the block's first row: a constant column then has exactly
    # its value as mean and exactly zero co-moments, and the shift keeps the sums small.
    shift = np.empty(d)
    for j in range(dx):
        shift[j] = np.float64(X[lo, j])
    for j in range(dy):
        shift[dx + j] = np.float64(Y[lo, j])
    s = np.zeros(d)
    wsum = 0.0
    for i in range(lo, hi):
        wi = np.float64(w[i]) if weighted else 1.0
        wsum += wi
        for j in range(dx):
            s[j] += wi * (np.float64(X[i, j]) - shift[j])
        for j in range(dy):
            s[dx + j] += wi * (np.float64(Y[i, j]) - shift[dx + j])
    if wsum == 0.0:
        return wsum, s
    mean = shift + s / wsum
    for i in range(lo, hi):
        r = i - lo
        root = np.sqrt(np.float64(w[i])) if weighted else 1.0
        for j in range(dx):
            out[r, j] = (np.float64(X[i, j]) - mean[j]) * root
        for j in range(dy):
            out[r, dx + j] = (np.float64(Y[i, j]) - mean[dx + j]) * root
    return wsum, mean


def comoments_local(X, Y=None, sample_weight=None) -> ComomentsPartial:
    """:func:`spmdlearn.reference.comoments_local`: blocked ``syrk`` with pairwise merges.

    Each block of rows is centered by its own weighted mean into a cache-sized float64 buffer,
    its co-moment is one ``syrk`` (``buffer.T @ buffer``), and the blocks are merged with
    ``C = Ca + Cb + (Wa Wb / W) delta delta^T``. Memory: one block, whatever the shard.
    """
    n, dx = X.shape
    if Y is None:
        Y2 = np.zeros((n, 0), dtype=X.dtype)
    else:
        Y2 = Y[:, None] if Y.ndim == 1 else Y
    d = dx + Y2.shape[1]
    weighted = sample_weight is not None
    w = _weights(sample_weight, n) if weighted else np.zeros(0)
    if weighted and n and float(np.min(w)) < 0:
        return None  # sqrt(w) needs non-negative weights; the reference serves the others
    block = block_rows(d, BLAS_BYTES)
    buf = np.empty((min(block, max(n, 1)), d))
    weight, mean, comoment = 0.0, np.zeros(d), np.zeros((d, d))
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        wb, mb = _center_block(X, Y2, w, weighted, lo, hi, buf)
        if wb == 0.0:
            continue
        Z = buf[: hi - lo]
        cb = Z.T @ Z
        if weight == 0.0:
            weight, mean, comoment = wb, mb, cb
            continue
        total = weight + wb
        delta = mb - mean
        comoment += cb
        comoment += np.outer(delta, delta) * (weight * wb / total)
        mean = (weight * mean + wb * mb) / total
        weight = total
    comoment = (comoment + comoment.T) / 2  # exact symmetry, whatever the BLAS did
    return ComomentsPartial(float(n), float(weight), mean, comoment)
