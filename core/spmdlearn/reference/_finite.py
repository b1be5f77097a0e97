"""The finiteness check of input validation, as a kernel."""

from __future__ import annotations

import numpy as np

#: Rows per block when the whole-array sum does not settle finiteness: keeps the boolean
#: temporary of ``isfinite`` near 1 MiB instead of the size of the shard.
_BLOCK_ELEMENTS = 1 << 20


def all_finite(X) -> bool:
    """True when no element of ``X`` is NaN or infinite.

    Parameters
    ----------
    X : ndarray of any shape
        Integer and boolean arrays are always finite.

    Returns
    -------
    finite : bool

    Notes
    -----
    As scikit-learn's check: one sum over ``X`` (no temporary array) is finite exactly when no
    element is NaN or infinite, unless finite values overflow it; only then is every element
    tested, one block of rows at a time, so the extra memory stays bounded.
    """
    X = np.asarray(X)
    if X.size == 0 or X.dtype.kind not in "fc":
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(X.sum()):
            return True
    if X.ndim == 0:
        return bool(np.isfinite(X))
    step = max(1, _BLOCK_ELEMENTS // max(1, X.size // X.shape[0]))
    return all(bool(np.isfinite(X[lo:lo + step]).all()) for lo in range(0, X.shape[0], step))
