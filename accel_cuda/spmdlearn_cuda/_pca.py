"""TSQR's local step on the GPU: ``R`` of the shard centered by the global mean (cuSOLVER)."""

from __future__ import annotations

import numpy as np

from spmdlearn.reference import TSQRPartial

from ._device import cupy, to_host

__all__ = ["tsqr_local"]


def tsqr_local(X, mean) -> TSQRPartial:
    """:func:`spmdlearn.reference.tsqr_local` on a CuPy shard (float64, signs fixed)."""
    cp = cupy()
    d = X.shape[1]
    R = np.zeros((d, d))
    if X.shape[0]:
        A = X.astype(cp.float64) - cp.asarray(mean, dtype=cp.float64)
        r = to_host(cp.linalg.qr(A, mode="r"))[:d]
        # Signs do not matter to the SVD; fixing them makes R unique, as in the reference.
        signs = np.where(np.diag(r) < 0, -1.0, 1.0)
        R[: r.shape[0]] = r * signs[: r.shape[0], None]
    return TSQRPartial(R)
