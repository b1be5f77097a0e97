"""Logistic loss: per-shard sums of the loss, its gradient and Hessian-vector products."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp

__all__ = ["logistic_loss_grad", "logistic_hessp"]


def _raw(X, coef, intercept, n_classes):
    X = np.asarray(X, dtype=np.float64)
    if n_classes == 2:
        return X @ coef + intercept
    return X @ np.asarray(coef).T + intercept


def logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes, with_hessian=False):
    """Sums over one shard of scikit-learn's half binomial / half multinomial loss.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    target : ndarray of shape (n_samples,)
        0/1 for two classes, else class indices.
    sample_weight : ndarray of shape (n_samples,)
    coef : ndarray of shape (n_features,) for two classes, else (n_classes, n_features)
    intercept : float or ndarray of shape (n_classes,)
    n_classes : int
    with_hessian : bool, default=False
        Also return the per-row weights of the Hessian.

    Returns
    -------
    loss : float
        ``sum_i w_i loss_i`` (not divided by the weights: the caller reduces, then divides).
    grad_coef, grad_intercept : ndarrays
        Sums of the weighted pointwise gradients.
    hess_weights : ndarray or None
        Two classes: ``w_i p_i (1 - p_i)``; more: ``[probabilities, w]`` of shape
        (n_samples, n_classes + 1).
    """
    raw = _raw(X, coef, intercept, n_classes)
    w = np.asarray(sample_weight, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if n_classes == 2:
        loss = float(w @ (np.logaddexp(0.0, raw) - target * raw))
        p = expit(raw)
        g = w * (p - target)
        hess = w * p * (1.0 - p) if with_hessian else None
        return loss, X.T @ g, float(g.sum()), hess
    lse = logsumexp(raw, axis=1) if len(raw) else np.zeros(0)
    rows = np.arange(len(raw))
    idx = np.asarray(target, dtype=np.int64)
    loss = float(w @ (lse - raw[rows, idx]))
    proba = np.exp(raw - lse[:, None])
    g = proba.copy()
    g[rows, idx] -= 1.0
    g *= w[:, None]
    hess = np.column_stack([proba, w]) if with_hessian else None
    return loss, g.T @ X, g.sum(axis=0), hess


def logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes):
    """Sums over one shard of the Hessian (of the summed loss) times a direction ``v``.

    Returns
    -------
    h_coef, h_intercept : ndarrays shaped like ``v_coef`` and ``v_intercept``
    """
    X = np.asarray(X, dtype=np.float64)
    if n_classes == 2:
        t = hess_weights * (X @ v_coef + v_intercept)
        return X.T @ t, float(t.sum())
    proba, w = hess_weights[:, :-1], hess_weights[:, -1]
    R = X @ np.asarray(v_coef).T + v_intercept
    tmp = proba * R
    tmp -= proba * tmp.sum(axis=1, keepdims=True)
    tmp *= w[:, None]
    return tmp.T @ X, tmp.sum(axis=0)
