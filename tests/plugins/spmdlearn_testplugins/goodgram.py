"""A correct foreign backend: co-moments from data shifted by its first row."""

import numpy as np

from spmdlearn.hookspec import hookimpl
from spmdlearn.reference import ComomentsPartial


@hookimpl
def spmdlearn_backend_info():
    return {"name": "goodgram", "available": True, "devices": ["host"], "note": "test plugin"}


@hookimpl
def spmdlearn_comoments_local(X, Y, sample_weight):
    Z = np.asarray(X, dtype=np.float64)
    if Y is not None:
        Y = np.asarray(Y, dtype=np.float64)
        Z = np.column_stack([Z, Y])
    n, d = Z.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(w.sum())
    if total == 0:
        return ComomentsPartial(float(n), 0.0, np.zeros(d), np.zeros((d, d)))
    shift = Z[0]
    S = Z - shift  # small numbers: the Gram of S does not cancel
    s_mean = np.einsum("i,ij->j", w, S) / total
    gram = np.einsum("i,ij,ik->jk", w, S, S)
    comoment = gram - total * np.outer(s_mean, s_mean)
    return ComomentsPartial(float(n), total, shift + s_mean, (comoment + comoment.T) / 2)


@hookimpl
def spmdlearn_linear_predict(X, coef, intercept):
    X = np.asarray(X)
    return np.einsum("ij,...j->i...", X, np.asarray(coef, X.dtype)) + np.asarray(intercept, X.dtype)
