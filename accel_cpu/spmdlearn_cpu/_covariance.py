"""Per-row kernels of the covariance family: the cpu twin of
:func:`spmdlearn.reference.mahalanobis`."""

from __future__ import annotations

import numpy as np

from ._blocks import BLAS_BYTES, block_rows

__all__ = ["mahalanobis"]


def mahalanobis(X, location, precision):
    """Squared Mahalanobis distances, a block of rows at a time (float64).

    Each block is centered into a cache-sized float64 buffer, multiplied by the precision
    (GEMM), and reduced row by row; no shard-sized temporary is made.
    """
    n, d = X.shape
    location = np.asarray(location, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    out = np.empty(n)
    block = block_rows(2 * d, BLAS_BYTES)
    buf = np.empty((min(block, max(n, 1)), d))
    prod = np.empty_like(buf)
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        c = buf[: hi - lo]
        np.subtract(X[lo:hi], location, out=c)
        t = prod[: hi - lo]
        np.matmul(c, precision, out=t)
        np.einsum("ij,ij->i", t, c, out=out[lo:hi])
    return out
