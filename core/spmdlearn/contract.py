"""The reduction contract, and the two ways to run one.

A reduction is three pure functions over NumPy arrays:

``local(*shard) -> partial``
    Sufficient statistics of one shard; their size does not grow with the number of rows.
    Never communicates.
``combine(a, b) -> partial``
    Associative and commutative (up to rounding); ``local`` of an empty shard is its identity.
``finalize(partial, ...) -> result``
    Turns the global partial into the model; pure, run identically on every rank.

:func:`simulate` runs a contract in one process over a list of shards (fast property tests);
:func:`allreduce` runs it over a communicator. Both fold partials in the same pairwise order, so
:func:`simulate` over the ranks' shards gives the bits an MPI run gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

import numpy as np

from .comm import get_comm, tree_fold

__all__ = ["ReductionContract", "simulate", "allreduce", "empty_shard"]

P = TypeVar("P")


@dataclass(frozen=True)
class ReductionContract(Generic[P]):
    """A named reduction: ``local``, ``combine`` and ``finalize`` (see the module docstring)."""

    name: str
    local: Callable[..., P]
    combine: Callable[[P, P], P]
    finalize: Callable[..., Any]
    #: Positions of ``local``'s arguments that hold rows (the others, such as centers or a
    #: mean, are the same on every rank); None: every array argument.
    row_args: tuple | None = None

    def identity(self, *shard) -> P:
        """The partial of zero rows shaped like ``shard`` (the identity of ``combine``)."""
        return self.local(*self.rows(shard, 0, 0))

    def rows(self, shard: Sequence, lo: int, hi: int) -> tuple:
        """``shard`` with its row arguments cut to rows ``lo:hi`` (other arguments kept)."""
        return tuple(a[lo:hi] if self._is_rows(i, a) else a for i, a in enumerate(shard))

    def _is_rows(self, i, a) -> bool:
        if not isinstance(a, np.ndarray) or a.ndim == 0:
            return False
        return self.row_args is None or i in self.row_args


def empty_shard(shard: Sequence) -> tuple:
    """``shard`` with every array argument cut to zero rows (other arguments kept)."""
    return tuple(a[:0] if isinstance(a, np.ndarray) and a.ndim >= 1 else a for a in shard)


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


def allreduce(contract: ReductionContract[P], *shard, comm=None, local=None) -> P:
    """Collective: the global partial of every rank's ``shard``, bitwise identical on every rank.

    A rank whose local step raises does not leave the others waiting: every rank raises (see
    :meth:`spmdlearn.comm.Comm.reduce_partials`).

    Parameters
    ----------
    contract : ReductionContract
    *shard
        This rank's arguments to ``local``.
    comm : communicator, default=None
        See :func:`spmdlearn.comm.get_comm`.
    local : callable, default=None
        The kernel that computes this rank's partial (a backend's); ``contract.local`` if None.
    """
    comm = get_comm(comm)
    local = contract.local if local is None else local
    try:
        partial, error, template = local(*shard), None, None
    except Exception as exc:  # noqa: BLE001 - the error must reach every rank
        partial, error = None, exc
        try:
            template = contract.identity(*shard)
        except Exception as exc2:  # noqa: BLE001
            # Without a template this rank cannot tell the others; end the job rather than
            # leave them waiting.
            comm.abort(f"{contract.name}: local step failed ({exc!r}) and so did its identity "
                       f"({exc2!r})")
    return comm.reduce_partials(partial, contract.combine, error=error, template=template)
