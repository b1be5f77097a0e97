"""Logistic loss on a dpnp shard: the reference's sums of the loss, gradient and Hessian
products (:func:`spmdlearn.reference.logistic_loss_grad`, ``logistic_hessp``)."""

from __future__ import annotations

import numpy as np

from ._device import dpnp, float_type, on_device, to_host

__all__ = ["logistic_loss_grad", "logistic_hessp"]


def logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes, with_hessian=False):
    xp = dpnp()
    f = float_type(X)
    Xf = X.astype(f)
    w = on_device(sample_weight, X, f)
    coef = on_device(np.asarray(coef, dtype=np.float64), X, f)
    intercept = on_device(np.asarray(intercept, dtype=np.float64), X, f)
    if n_classes == 2:
        t = on_device(target, X, f)
        raw = Xf @ coef + intercept
        loss = float(w @ (xp.logaddexp(0.0, raw) - t * raw))
        p = 1.0 / (1.0 + xp.exp(-raw))
        g = w * (p - t)
        hess = w * p * (1.0 - p) if with_hessian else None
        return loss, to_host(Xf.T @ g).astype(np.float64), float(g.sum()), hess
    raw = Xf @ coef.T + intercept
    idx = on_device(target, X, xp.int64)
    rows = xp.arange(raw.shape[0], sycl_queue=X.sycl_queue)
    if raw.shape[0]:
        top = raw.max(axis=1, keepdims=True)
        lse = (top + xp.log(xp.exp(raw - top).sum(axis=1, keepdims=True)))[:, 0]
    else:
        lse = xp.zeros(0, dtype=f, sycl_queue=X.sycl_queue)
    loss = float(w @ (lse - raw[rows, idx]))
    proba = xp.exp(raw - lse[:, None])
    g = proba.copy()
    g[rows, idx] -= 1.0
    g *= w[:, None]
    hess = xp.concatenate([proba, w[:, None]], axis=1) if with_hessian else None
    return (loss, to_host(g.T @ Xf).astype(np.float64), to_host(g.sum(axis=0)).astype(np.float64),
            hess)


def logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes):
    f = float_type(X)
    Xf = X.astype(f)
    hess_weights = on_device(hess_weights, X, f)
    v_coef = on_device(np.asarray(v_coef, dtype=np.float64), X, f)
    v_intercept = on_device(np.asarray(v_intercept, dtype=np.float64), X, f)
    if n_classes == 2:
        t = hess_weights * (Xf @ v_coef + v_intercept)
        return to_host(Xf.T @ t).astype(np.float64), float(t.sum())
    proba, w = hess_weights[:, :-1], hess_weights[:, -1]
    R = Xf @ v_coef.T + v_intercept
    tmp = proba * R
    tmp -= proba * tmp.sum(axis=1, keepdims=True)
    tmp *= w[:, None]
    return to_host(tmp.T @ Xf).astype(np.float64), to_host(tmp.sum(axis=0)).astype(np.float64)
