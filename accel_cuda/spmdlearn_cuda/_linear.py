"""Per-row kernels of the linear and covariance families on the GPU (cuBLAS products)."""

from __future__ import annotations

import numpy as np

from ._device import cupy

__all__ = ["linear_predict", "mahalanobis"]


def linear_predict(X, coef, intercept):
    """:func:`spmdlearn.reference.linear_predict` on a CuPy shard, in ``X``'s dtype."""
    cp = cupy()
    coef = cp.asarray(np.asarray(coef, dtype=X.dtype))
    intercept = cp.asarray(np.asarray(intercept, dtype=X.dtype))
    return X @ coef.T + intercept


def mahalanobis(X, location, precision):
    """:func:`spmdlearn.reference.mahalanobis` on a CuPy shard, float64 per row."""
    cp = cupy()
    centered = X.astype(cp.float64) - cp.asarray(location, dtype=cp.float64)
    return cp.einsum("ij,ij->i", centered @ cp.asarray(precision, dtype=cp.float64), centered)
