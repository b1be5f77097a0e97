"""The affine transform of the scalers and PCA's whitening: the cpu twin of
:func:`spmdlearn.reference.affine_transform`."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._layout import canonical
from ._threads import use_kernel_threads

__all__ = ["affine_transform"]


@canonical(read_only="X shift scale")
@njit(parallel=True, cache=True)
def _affine(X, shift, scale, out):
    n, d = X.shape
    for i in prange(n):
        for j in range(d):
            out[i, j] = (X[i, j] - shift[j]) * scale[j]


def affine_transform(X, shift, scale):
    """``(X - shift) * scale`` in one compiled pass, written straight into the output (the
    subtraction, then the product, each rounded in X's dtype, as the reference)."""
    out = np.empty(X.shape, dtype=X.dtype)
    if X.size == 0:
        return out
    use_kernel_threads()
    _affine(X, np.ascontiguousarray(shift, dtype=X.dtype), np.ascontiguousarray(scale, X.dtype),
            out)
    return out
