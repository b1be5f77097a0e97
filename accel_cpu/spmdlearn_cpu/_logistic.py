"""Logistic loss kernels: the cpu twins of :mod:`spmdlearn.reference._logistic`.

A block of rows at a time: GEMMs (GEMVs) of the cached block against the coefficients, NumPy's
vectorized transcendental functions on the block's predictors, and the gradient from the same
cached block, so that each row is read from memory once per call and no shard-sized temporary
is made (float32 blocks are widened to float64 one block at a time). Hessian-vector products of
two classes are one compiled pass, each row's product computed while it is in registers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from scipy.special import logsumexp

from ._blocks import BLAS_BYTES, block_rows
from ._layout import canonical
from ._threads import use_kernel_threads

__all__ = ["logistic_loss_grad", "logistic_hessp"]


@njit(cache=True, nogil=True, inline="always")
def _row_dot(X, i, v):
    """``X[i] @ v`` in float64 with four partial sums (no chain of dependent additions)."""
    d = X.shape[1]
    a0 = a1 = a2 = a3 = 0.0
    j = 0
    while j + 4 <= d:
        a0 += np.float64(X[i, j]) * v[j]
        a1 += np.float64(X[i, j + 1]) * v[j + 1]
        a2 += np.float64(X[i, j + 2]) * v[j + 2]
        a3 += np.float64(X[i, j + 3]) * v[j + 3]
        j += 4
    while j < d:
        a0 += np.float64(X[i, j]) * v[j]
        j += 1
    return (a0 + a1) + (a2 + a3)


def _binary_loss_grad(X, target, w, coef, intercept, with_hessian, block):
    """Loss, gradient and Hessian weights of the binomial loss, a cached block at a time.

    Per block: one GEMV for the linear predictor, NumPy's vectorized ``exp``/``log1p`` for
    ``logaddexp(0, raw)`` and ``expit(raw)`` (written to stay finite for any ``raw``), one GEMV
    of the block (still in cache) for the gradient. Temporaries are of the block's size.
    """
    n, d = X.shape
    loss, g_coef, g_int = 0.0, np.zeros(d), 0.0
    hess = np.empty(n) if with_hessian else None
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        Xb = X[lo:hi]
        raw = Xb @ coef if X.dtype == np.float64 else np.asarray(Xb, np.float64) @ coef
        raw += intercept
        e = np.abs(raw)
        np.negative(e, out=e)
        np.exp(e, out=e)  # exp(-|raw|), in (0, 1]
        softplus = np.log1p(e)
        softplus += np.maximum(raw, 0.0)
        tb, wb = target[lo:hi], w[lo:hi]
        softplus -= tb * raw
        loss += float(wb @ softplus)
        p = np.where(raw > 0, 1.0, e)
        p /= 1.0 + e  # expit(raw)
        if with_hessian:
            np.multiply(wb * p, 1.0 - p, out=hess[lo:hi])
        p -= tb
        p *= wb
        g_coef += (Xb.T @ p) if X.dtype == np.float64 else (np.asarray(Xb, np.float64).T @ p)
        g_int += float(p.sum())
    return loss, g_coef, g_int, hess


@canonical(read_only="X")
@njit(parallel=True, cache=True)
def _binary_hessp(X, h, v, v0, block):
    n, d = X.shape
    nb = (n + block - 1) // block
    out = np.zeros((max(nb, 1), d + 1))
    for b in prange(nb):
        o = np.zeros(d + 1)
        for i in range(b * block, min(n, (b + 1) * block)):
            r = v0 + _row_dot(X, i, v)
            t = h[i] * r
            for j in range(d):
                o[j] += t * np.float64(X[i, j])
            o[d] += t
        out[b] = o
    return out.sum(axis=0)


def logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes, with_hessian=False):
    """:func:`spmdlearn.reference.logistic_loss_grad` without a copy of ``X``."""
    n, d = X.shape
    w = np.asarray(sample_weight, dtype=np.float64)
    if n_classes == 2:
        return _binary_loss_grad(X, np.asarray(target, dtype=np.float64), w,
                                 np.asarray(coef, dtype=np.float64), float(intercept),
                                 bool(with_hessian), block_rows(d + 8, BLAS_BYTES))
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    K = coef.shape[0]
    idx = np.asarray(target, dtype=np.int64)
    loss, g_coef, g_int = 0.0, np.zeros((K, d)), np.zeros(K)
    hess = np.empty((n, K + 1)) if with_hessian else None
    block = block_rows(d + K, BLAS_BYTES)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        Xb = np.asarray(X[lo:hi], dtype=np.float64)
        raw = Xb @ coef.T
        raw += intercept
        rows = np.arange(hi - lo)
        lse = logsumexp(raw, axis=1)
        wb = w[lo:hi]
        loss += float(wb @ (lse - raw[rows, idx[lo:hi]]))
        proba = raw
        proba -= lse[:, None]
        np.exp(proba, out=proba)
        if with_hessian:
            hess[lo:hi, :K] = proba
            hess[lo:hi, K] = wb
        g = proba
        g[rows, idx[lo:hi]] -= 1.0
        g *= wb[:, None]
        g_coef += g.T @ Xb
        g_int += g.sum(axis=0)
    return loss, g_coef, g_int, hess


def logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes):
    """:func:`spmdlearn.reference.logistic_hessp` without a copy of ``X``."""
    n, d = X.shape
    if n_classes == 2:
        use_kernel_threads()
        out = _binary_hessp(X, np.asarray(hess_weights, dtype=np.float64),
                            np.asarray(v_coef, dtype=np.float64), float(v_intercept),
                            block_rows(d))
        return out[:d], float(out[d])
    v_coef = np.asarray(v_coef, dtype=np.float64)
    v_intercept = np.asarray(v_intercept, dtype=np.float64)
    K = v_coef.shape[0]
    h_coef, h_int = np.zeros((K, d)), np.zeros(K)
    block = block_rows(d + K, BLAS_BYTES)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        Xb = np.asarray(X[lo:hi], dtype=np.float64)
        proba, wb = hess_weights[lo:hi, :-1], hess_weights[lo:hi, -1]
        tmp = Xb @ v_coef.T
        tmp += v_intercept
        tmp *= proba
        tmp -= proba * tmp.sum(axis=1, keepdims=True)
        tmp *= wb[:, None]
        h_coef += tmp.T @ Xb
        h_int += tmp.sum(axis=0)
    return h_coef, h_int
