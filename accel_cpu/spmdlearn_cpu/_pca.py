"""Tall-skinny QR of one shard: the cpu twin of :func:`spmdlearn.reference.tsqr_local`."""

from __future__ import annotations

import numpy as np
from scipy import linalg

from spmdlearn.reference import TSQRPartial

from ._blocks import block_rows

__all__ = ["tsqr_local"]

#: Rows of a TSQR block: large, so that LAPACK's blocked Householder QR runs at GEMM speed, and
#: so that any shard that fits in one block gets exactly the reference's factorization.
_TSQR_BYTES = 1 << 24


def tsqr_local(X, mean):
    """``R`` of this shard's rows centered by ``mean``, one block of rows at a time.

    ``R`` is carried from block to block: the next ``R`` is that of ``[R; X_block - mean]``,
    whose Gram matrix is the Gram matrix of all rows so far. Only one centered block exists at a
    time. The diagonal is made non-negative, as in the reference; when the centered rows are
    rank-deficient ``R`` is one of the valid factors (``R^T R`` is the same).
    """
    n, d = X.shape
    mean = np.asarray(mean, dtype=np.float64)
    R = np.zeros((d, d))
    if n == 0:
        return TSQRPartial(R)
    block = block_rows(d, _TSQR_BYTES, minimum=4 * d)
    buf = np.empty((min(block, n) + d, d))
    have = 0  # rows of R carried at the top of the buffer
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        A = buf[: have + hi - lo]
        np.subtract(X[lo:hi], mean, out=A[have:])
        r = linalg.qr(A, mode="r", overwrite_a=True, check_finite=False)[0]
        k = min(r.shape[0], d)
        buf[:k] = r[:k]
        buf[k:d] = 0.0
        have = d
        R = buf[:d].copy()
        R[k:] = 0.0
    signs = np.where(np.diag(R) < 0, -1.0, 1.0)
    return TSQRPartial(R * signs[:, None])
