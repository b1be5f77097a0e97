"""TSQR's local step on a dpnp shard: ``R`` of the rows centered by the global mean (oneMKL)."""

from __future__ import annotations

import numpy as np

from spmdlearn.reference import TSQRPartial

from ._device import dpnp, float_type, on_device, to_host

__all__ = ["tsqr_local"]


def tsqr_local(X, mean) -> TSQRPartial:
    """:func:`spmdlearn.reference.tsqr_local` on a dpnp shard (signs fixed as the reference)."""
    d = X.shape[1]
    R = np.zeros((d, d))
    if X.shape[0]:
        f = float_type(X)
        r = to_host(dpnp().linalg.qr(X.astype(f) - on_device(mean, X, f), mode="r"))
        r = r.astype(np.float64)[:d]
        signs = np.where(np.diag(r) < 0, -1.0, 1.0)
        R[: r.shape[0]] = r * signs[: r.shape[0], None]
    return TSQRPartial(R)
