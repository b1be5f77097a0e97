"""Logistic loss kernels: the cpu twins of :mod:`spmdlearn.reference._logistic`.

Two classes: one compiled pass over the rows, each row's linear predictor, loss, gradient and
Hessian weight computed while it is in registers; rows are never copied (float32 rows are
widened to float64 one value at a time). More classes: a block of rows at a time, with GEMMs
of the block against the coefficients, so that no shard-sized temporary is made.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from scipy.special import logsumexp

from ._blocks import BLAS_BYTES, block_rows
from ._threads import use_kernel_threads

__all__ = ["logistic_loss_grad", "logistic_hessp"]


@njit(parallel=True, cache=True)
def _binary_loss_grad(X, target, w, coef, intercept, with_hessian, hess, block):
    n, d = X.shape
    nb = (n + block - 1) // block
    loss = np.zeros(max(nb, 1))
    grad = np.zeros((max(nb, 1), d + 1))
    for b in prange(nb):
        g_b = np.zeros(d + 1)
        loss_b = 0.0
        for i in range(b * block, min(n, (b + 1) * block)):
            raw = intercept
            for j in range(d):
                raw += np.float64(X[i, j]) * coef[j]
            wi = np.float64(w[i])
            t = np.float64(target[i])
            # logaddexp(0, raw) and expit(raw), written to stay finite for any raw
            if raw > 0:
                e = np.exp(-raw)
                softplus = raw + np.log1p(e)
                p = 1.0 / (1.0 + e)
            else:
                e = np.exp(raw)
                softplus = np.log1p(e)
                p = e / (1.0 + e)
            loss_b += wi * (softplus - t * raw)
            g = wi * (p - t)
            for j in range(d):
                g_b[j] += g * np.float64(X[i, j])
            g_b[d] += g
            if with_hessian:
                hess[i] = wi * p * (1.0 - p)
        loss[b] = loss_b
        grad[b] = g_b
    return loss.sum(), grad.sum(axis=0)


@njit(parallel=True, cache=True)
def _binary_hessp(X, h, v, v0, block):
    n, d = X.shape
    nb = (n + block - 1) // block
    out = np.zeros((max(nb, 1), d + 1))
    for b in prange(nb):
        o = np.zeros(d + 1)
        for i in range(b * block, min(n, (b + 1) * block)):
            r = v0
            for j in range(d):
                r += np.float64(X[i, j]) * v[j]
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
        use_kernel_threads()
        hess = np.empty(n) if with_hessian else np.empty(0)
        loss, g = _binary_loss_grad(X, np.asarray(target, dtype=np.float64), w,
                                    np.asarray(coef, dtype=np.float64), float(intercept),
                                    bool(with_hessian), hess, block_rows(d))
        return float(loss), g[:d], float(g[d]), (hess if with_hessian else None)
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
