"""Per-row kernels of the linear and covariance families on a dpnp shard (oneMKL products)."""

from __future__ import annotations

import numpy as np

from ._device import float_type, on_device

__all__ = ["linear_predict", "mahalanobis", "affine_transform"]


def linear_predict(X, coef, intercept):
    """:func:`spmdlearn.reference.linear_predict`: ``X @ coef.T + intercept`` in X's dtype."""
    coef = np.asarray(coef, dtype=X.dtype)
    coef = on_device(coef.T if coef.ndim > 1 else coef, X)  # ``.T`` of a 1-D dpnp array warns
    return X @ coef + on_device(np.asarray(intercept, dtype=X.dtype), X)


def mahalanobis(X, location, precision):
    """:func:`spmdlearn.reference.mahalanobis` on a dpnp shard."""
    f = float_type(X)
    centered = X.astype(f) - on_device(location, X, f)
    return ((centered @ on_device(precision, X, f)) * centered).sum(axis=1)


def affine_transform(X, shift, scale):
    """:func:`spmdlearn.reference.affine_transform`: the subtraction, then the product, each
    rounded in X's dtype."""
    out = X - on_device(np.asarray(shift, dtype=X.dtype), X)
    out *= on_device(np.asarray(scale, dtype=X.dtype), X)
    return out
