"""Splitting an array that every rank holds into this rank's rows."""

from __future__ import annotations

from .._array_api import take_rows
from ..comm import get_comm


def shard(X, comm=None):
    """This rank's contiguous block of rows of ``X``.

    Not collective, except that the first use of the library's communicator in a process
    duplicates ``COMM_WORLD`` (every rank of an SPMD script gets there together).

    Rows are split as evenly as possible in rank order: rank ``r`` of ``p`` gets rows
    ``[r * n // p, (r + 1) * n // p)``. With fewer rows than ranks some ranks get none, which
    every estimator accepts.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        The same array on every rank (or ``None``, returned as is): NumPy, a list, a pandas
        object, or any array-API array (array-api-strict, CuPy, dpnp, ...), which stays in its
        type and on its device.
    comm : communicator, default=None
        See :func:`spmdlearn.comm.get_comm`.

    Returns
    -------
    X_local : view of X of shape (n_local, ...)
        Of ``X``'s type (for a pandas object: ``X.iloc`` of the rows).
    """
    if X is None:
        return None
    comm = get_comm(comm)
    n = int(X.shape[0]) if hasattr(X, "shape") else len(X)
    lo, hi = comm.rank * n // comm.size, (comm.rank + 1) * n // comm.size
    if hasattr(X, "iloc"):
        return X.iloc[lo:hi]
    return take_rows(X, lo, hi)
