"""Linear prediction: the cpu twin of :func:`spmdlearn.reference.linear_predict`."""

from __future__ import annotations

import numpy as np

__all__ = ["linear_predict"]


def linear_predict(X, coef, intercept):
    """``X @ coef.T + intercept`` in ``X``'s dtype: one GEMM (GEMV) written into the output,
    the intercept added in place, with no temporary of the output's size."""
    coef = np.asarray(coef, dtype=X.dtype)
    intercept = np.asarray(intercept, dtype=X.dtype)
    shape = (X.shape[0],) if coef.ndim == 1 else (X.shape[0], coef.shape[0])
    out = np.empty(shape, dtype=X.dtype)
    np.matmul(X, coef.T, out=out)
    out += intercept
    return out
