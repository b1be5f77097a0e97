"""A subtly wrong foreign backend: nearest centers that break ties toward the highest index.

Its distances are right and it agrees with the reference whenever no two centers are equally
near a row, which random data almost never shows; only exact ties (duplicated centers, rows
exactly between two centers) tell it apart.
"""

import numpy as np

from spmdlearn.hookspec import hookimpl


@hookimpl
def spmdlearn_backend_info():
    return {"name": "lasttie", "available": True, "devices": ["host"], "note": "test plugin"}


@hookimpl
def spmdlearn_kmeans_assign(X, centers):
    if type(X) is not np.ndarray:
        return None
    if X.shape[0] == 0:
        return np.zeros(0, np.int32), np.zeros(0)
    C = np.asarray(centers, dtype=X.dtype)
    scores = np.einsum("ij,ij->i", C, C)[None, :] - 2.0 * (X @ C.T)
    k = C.shape[0]
    labels = (k - 1 - np.argmin(scores[:, ::-1], axis=1)).astype(np.int32)  # the last among equals
    diff = np.asarray(X, np.float64) - np.asarray(C, np.float64)[labels]
    return labels, np.einsum("ij,ij->i", diff, diff)
