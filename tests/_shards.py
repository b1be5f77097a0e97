"""Test data split over the ranks: shared by the MPI test modules."""

import numpy as np


def uneven_data(comm, n_features=4, seed=0, *, target="regression"):
    """This rank's rows of one global data set: uneven shards, the last rank empty when there
    are several. ``target``: "regression" (a linear function plus noise) or "classification"
    (two classes)."""
    rng = np.random.RandomState(seed)
    sizes = [30 + 11 * r for r in range(comm.size)]
    if comm.size > 1:
        sizes[-1] = 0
    X = rng.randn(sum(sizes), n_features)
    if target == "regression":
        y = X @ np.arange(1.0, n_features + 1) + 0.1 * rng.randn(sum(sizes))
    else:
        y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(np.int64)
    lo = sum(sizes[:comm.rank])
    return X[lo:lo + sizes[comm.rank]], y[lo:lo + sizes[comm.rank]]
