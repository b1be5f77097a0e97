"""Logistic loss on the GPU: per-shard sums of the loss, its gradient and Hessian products.

The same formulas as :mod:`spmdlearn.reference` (scikit-learn's half binomial / multinomial
loss, computed stably through ``logaddexp`` and ``logsumexp``), in float64, with cuBLAS
products. Per-row Hessian weights stay on the device between the two kernels; only the sums,
of the model's size, go to the host.
"""

from __future__ import annotations

import numpy as np

from ._device import cupy, to_host

__all__ = ["logistic_loss_grad", "logistic_hessp"]


def _f64(X):
    cp = cupy()
    return X if X.dtype == cp.float64 else X.astype(cp.float64)


def logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes, with_hessian=False):
    """:func:`spmdlearn.reference.logistic_loss_grad` on a CuPy shard."""
    cp = cupy()
    X = _f64(X)
    w = cp.asarray(sample_weight, dtype=cp.float64)
    coef = cp.asarray(np.asarray(coef, dtype=np.float64))
    intercept = cp.asarray(np.asarray(intercept, dtype=np.float64))
    if n_classes == 2:
        t = cp.asarray(target, dtype=cp.float64)
        raw = X @ coef + intercept
        loss = float(w @ (cp.logaddexp(0.0, raw) - t * raw))
        p = 1.0 / (1.0 + cp.exp(-raw))
        g = w * (p - t)
        hess = w * p * (1.0 - p) if with_hessian else None
        return loss, to_host(X.T @ g), float(g.sum()), hess
    raw = X @ coef.T + intercept
    idx = cp.asarray(target, dtype=cp.int64)
    rows = cp.arange(raw.shape[0])
    if raw.shape[0]:
        top = raw.max(axis=1, keepdims=True)
        lse = (top + cp.log(cp.exp(raw - top).sum(axis=1, keepdims=True)))[:, 0]
    else:
        lse = cp.zeros(0)
    loss = float(w @ (lse - raw[rows, idx]))
    proba = cp.exp(raw - lse[:, None])
    g = proba.copy()
    g[rows, idx] -= 1.0
    g *= w[:, None]
    hess = cp.concatenate([proba, w[:, None]], axis=1) if with_hessian else None
    return loss, to_host(g.T @ X), to_host(g.sum(axis=0)), hess


def logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes):
    """:func:`spmdlearn.reference.logistic_hessp` on a CuPy shard."""
    cp = cupy()
    X = _f64(X)
    hess_weights = cp.asarray(hess_weights, dtype=cp.float64)
    v_coef = cp.asarray(np.asarray(v_coef, dtype=np.float64))
    v_intercept = cp.asarray(np.asarray(v_intercept, dtype=np.float64))
    if n_classes == 2:
        t = hess_weights * (X @ v_coef + v_intercept)
        return to_host(X.T @ t), float(t.sum())
    proba, w = hess_weights[:, :-1], hess_weights[:, -1]
    R = X @ v_coef.T + v_intercept
    tmp = proba * R
    tmp -= proba * tmp.sum(axis=1, keepdims=True)
    tmp *= w[:, None]
    return to_host(tmp.T @ X), to_host(tmp.sum(axis=0))
