"""Splitting an array that every rank holds into this rank's rows."""

from __future__ import annotations

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
        The same array on every rank (or ``None``, returned as is).
    comm : communicator, default=None
        See :func:`spmdlearn.comm.get_comm`.

    Returns
    -------
    X_local : view of X of shape (n_local, ...)
    """
    if X is None:
        return None
    comm = get_comm(comm)
    n = len(X)
    return X[comm.rank * n // comm.size:(comm.rank + 1) * n // comm.size]
