"""The reduction contract and its one-process simulator: pure, no MPI.

A reduction is three pure functions over NumPy arrays:

``local(*shard) -> partial``
    Sufficient statistics of one shard; their size does not grow with the number of rows.
    Never communicates.
``combine(a, b) -> partial``
    Associative and commutative (up to rounding); ``local`` of an empty shard is its identity.
``finalize(partial, ...) -> result``
    Turns the global partial into the model; pure, run identically on every rank.

A contract names the kernel hook that computes its ``local`` on a backend (``kernel``): running
the contract over MPI (:func:`spmdlearn.collective.allreduce`) dispatches that kernel to the
selected backend, while ``local`` stays the reference definition.

:func:`simulate` runs a contract in one process over a list of shards (fast property tests);
:func:`spmdlearn.collective.allreduce` runs it over a communicator. Both fold partials with
:func:`tree_fold`, in the same pairwise order, so :func:`simulate` over the ranks' shards, with the
same ``local`` as the backend's kernel, gives the bits an MPI run gives.

This module imports neither mpi4py nor :mod:`spmdlearn.comm`: it is part of the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

import numpy as np

__all__ = ["ReductionContract", "simulate", "empty_shard", "tree_fold", "pack_partial",
           "unpack_partial"]

P = TypeVar("P")


@dataclass(frozen=True)
class ReductionContract(Generic[P]):
    """A named reduction: ``local``, ``combine`` and ``finalize`` (see the module docstring).

    Parameters
    ----------
    name : str
    local : callable
        The reference ``local(*shard) -> partial``.
    combine : callable
        ``combine(a, b) -> partial``, associative and commutative.
    finalize : callable
        ``finalize(partial, ...) -> result``.
    row_args : tuple of int, default=None
        Positions of ``local``'s arguments that hold rows (the others, such as centers or a
        mean, are the same on every rank); None: every array argument.
    kernel : str, default=None
        The kernel hook (without the ``spmdlearn_`` prefix) that computes ``local`` on a
        backend. Its hookspec takes ``local``'s arguments, in the same order. None: no hook,
        ``local`` always runs.
    with_rows : bool, default=False
        The kernel returns ``(per_row_result, partial)``: a result for each of this rank's rows
        (k-means labels), kept on the rank, beside the partial that is reduced. ``local`` still
        returns the partial alone.
    """

    name: str
    local: Callable[..., P]
    combine: Callable[[P, P], P]
    finalize: Callable[..., Any]
    row_args: tuple | None = None
    kernel: str | None = None
    with_rows: bool = False

    def identity(self, *shard) -> P:
        """The partial of zero rows shaped like ``shard`` (the identity of ``combine``).

        Computed by ``local`` on NumPy arrays of zero rows with the shard's trailing shapes and
        dtypes, whatever the shard's array type: a rank whose local step failed sends it as
        the template of its partial, so it must not fail in turn on a device array."""
        return self.local(*(_no_rows(a) if self._is_rows(i, a) else a
                            for i, a in enumerate(shard)))

    def rows(self, shard: Sequence, lo: int, hi: int) -> tuple:
        """``shard`` with its row arguments cut to rows ``lo:hi`` (other arguments kept).

        The index names every axis (``a[lo:hi, ...]``): the array API does not take a partial
        multi-axis index, so rows of any array namespace are cut alike."""
        return tuple(a[lo:hi, ...] if self._is_rows(i, a) else a for i, a in enumerate(shard))

    def _is_rows(self, i, a) -> bool:
        if not hasattr(a, "shape") or not hasattr(a, "ndim") or a.ndim == 0:
            return False
        return self.row_args is None or i in self.row_args


def _no_rows(a) -> np.ndarray:
    """A NumPy array of zero rows with ``a``'s trailing shape and dtype (no data moves)."""
    from ._array_api import numpy_dtype

    return np.zeros((0,) + tuple(int(n) for n in a.shape[1:]), dtype=numpy_dtype(a.dtype))


def empty_shard(shard: Sequence) -> tuple:
    """``shard`` with every array argument cut to zero rows (other arguments kept)."""
    return tuple(a[:0] if isinstance(a, np.ndarray) and a.ndim >= 1 else a for a in shard)


def tree_fold(items: Sequence, combine: Callable):
    """Combine ``items`` pairwise, neighbours first, in a fixed order.

    The order depends only on ``len(items)``, so every rank that folds the same list gets the
    same bits; pairwise merging also keeps the rounding error of many merges at O(log n).
    """
    items = list(items)
    if not items:
        raise ValueError("nothing to fold")
    while len(items) > 1:
        merged = [combine(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            merged.append(items[-1])
        items = merged
    return items[0]


def simulate(contract: ReductionContract[P], shards: Sequence[Sequence], local=None) -> P:
    """The global partial of ``shards`` (each a tuple of ``local``'s arguments), in one process.

    Parameters
    ----------
    contract : ReductionContract
    shards : sequence of tuples
        One tuple of ``local`` arguments per simulated rank; empty shards are allowed.
    local : callable, default=None
        A replacement for ``contract.local`` (a backend's kernel), to check it against the laws.
    """
    local = contract.local if local is None else local
    return tree_fold([local(*shard) for shard in shards], contract.combine)


def _leaves(partial):
    for field in partial:
        if isinstance(field, tuple):
            yield from _leaves(field)
        else:
            yield field


def pack_partial(partial) -> np.ndarray:
    """Flatten a partial (a NamedTuple of arrays, scalars and nested partials) into one float64 buffer.

    float64 holds float32 values, counts below 2**53 and the infinities of min/max identities
    exactly, so packing loses nothing.
    """
    return np.concatenate(
        [np.asarray(leaf, dtype=np.float64).ravel() for leaf in _leaves(partial)]
        or [np.empty(0, dtype=np.float64)]
    )


def unpack_partial(buffer: np.ndarray, template):
    """Inverse of :func:`pack_partial`, with the field shapes and dtypes of ``template``."""
    result, used = _unpack(buffer, template, 0)
    if used != buffer.size:
        raise ValueError(f"buffer of {buffer.size} values does not match the template ({used})")
    return result


def unpack_partials(buffers: np.ndarray, template) -> list:
    """``[unpack_partial(row, template) for row in buffers]`` (``buffers``: one packed partial
    per row, float64 of shape ``(n, size)``), made with one walk of the template's fields for
    all rows: each field is cut, shaped and cast for every row at once. The partials' arrays are
    rows of one array per field (each partial's its own row, never shared between partials)."""
    columns, used = _unpack_columns(buffers, template, 0)
    if used != buffers.shape[1]:
        raise ValueError(f"buffer of {buffers.shape[1]} values does not match the template "
                         f"({used})")
    return [type(template)(*fields) for fields in zip(*columns)]


def _unpack_columns(buffers, template, start):
    """Every row's value of each field of ``template``: an array of the rows' values (an array
    field), a list (a scalar field) or a list of partials (a nested partial)."""
    fields = []
    for field in template:
        if isinstance(field, np.ndarray):
            value = buffers[:, start:start + field.size].reshape(
                (buffers.shape[0],) + field.shape).astype(field.dtype)
            start += field.size
        elif isinstance(field, tuple):
            value, start = _unpack_columns(buffers, field, start)
            value = [type(field)(*inner) for inner in zip(*value)]
        else:
            column = buffers[:, start]
            if type(field) is float:
                value = column.tolist()
            elif isinstance(field, (int, float)):
                value = [type(field)(v) for v in column]
            else:
                value = list(column)
            start += 1
        fields.append(value)
    return fields, start


def _unpack(buffer, template, start):
    fields = []
    for field in template:
        if isinstance(field, tuple):
            value, start = _unpack(buffer, field, start)
        elif isinstance(field, np.ndarray):
            value = buffer[start:start + field.size].reshape(field.shape).astype(field.dtype)
            start += field.size
        else:
            value = type(field)(buffer[start]) if isinstance(field, (int, float)) else buffer[start]
            start += 1
        fields.append(value)
    return type(template)(*fields), start
