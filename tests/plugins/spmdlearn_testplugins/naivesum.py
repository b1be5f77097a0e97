"""A subtly wrong foreign backend: textbook raw sums of squares (cancels far from the origin)."""

import numpy as np

from spmdlearn.hookspec import hookimpl
from spmdlearn.reference import ComomentsPartial, MomentsPartial


@hookimpl
def spmdlearn_backend_info():
    return {"name": "naivesum", "available": True, "devices": ["host"], "note": "test plugin"}


@hookimpl
def spmdlearn_comoments_local(X, Y, sample_weight):
    Z = np.asarray(X, dtype=np.float64)
    if Y is not None:
        Z = np.column_stack([Z, np.asarray(Y, dtype=np.float64)])
    n, d = Z.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(w.sum())
    if total == 0:
        return ComomentsPartial(float(n), 0.0, np.zeros(d), np.zeros((d, d)))
    mean = (w @ Z) / total
    comoment = (Z * w[:, None]).T @ Z - total * np.outer(mean, mean)
    return ComomentsPartial(float(n), total, mean, comoment)


@hookimpl
def spmdlearn_moments_local(X, sample_weight):
    Z = np.asarray(X, dtype=np.float64)
    if sample_weight is not None:
        Z = Z * np.asarray(sample_weight, dtype=np.float64)[:, None]
    n, d = Z.shape
    if n == 0:
        return MomentsPartial(0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf), np.full(d, -np.inf))
    mean = Z.mean(0)
    m2 = (Z * Z).sum(0) - n * mean * mean
    return MomentsPartial(float(n), mean, m2, Z.min(0), Z.max(0))
