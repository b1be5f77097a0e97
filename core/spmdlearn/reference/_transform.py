"""Per-row affine maps: the kernel behind the scalers' transforms and PCA's whitening."""

from __future__ import annotations

import numpy as np

__all__ = ["affine_transform"]


def affine_transform(X: np.ndarray, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(X - shift) * scale``, feature by feature, in ``X``'s dtype.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    shift : ndarray of shape (n_features,)
    scale : ndarray of shape (n_features,)

    Returns
    -------
    out : ndarray of shape (n_samples, n_features), X's dtype
        A new array: ``out[i, j] = (X[i, j] - shift[j]) * scale[j]``, both operations rounded
        in X's dtype.
    """
    X = np.asarray(X)
    dtype = X.dtype if X.dtype.kind == "f" else np.float64
    out = np.subtract(X, np.asarray(shift, dtype), dtype=dtype)
    out *= np.asarray(scale, dtype)
    return out
