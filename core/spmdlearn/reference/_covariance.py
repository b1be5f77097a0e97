"""Per-row kernels of the covariance family."""

from __future__ import annotations

import numpy as np

__all__ = ["mahalanobis"]


def mahalanobis(X: np.ndarray, location: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances of the rows of ``X`` to ``location``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    location : ndarray of shape (n_features,)
    precision : ndarray of shape (n_features, n_features)

    Returns
    -------
    dist : ndarray of shape (n_samples,), float64
        ``(x - location)^T precision (x - location)`` for each row.
    """
    centered = np.asarray(X, dtype=np.float64) - location
    return np.einsum("ij,ij->i", centered @ precision, centered)
