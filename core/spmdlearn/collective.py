"""Running a reduction contract over MPI: the collective layer above the pure contract core.

:func:`allreduce` computes this rank's partial with the contract's kernel, dispatched to the
selected backend (:func:`spmdlearn._backends.call_kernel`), then combines every rank's partial in
the fixed order of :func:`spmdlearn.contract.tree_fold` (:meth:`spmdlearn.comm.Comm.reduce_partials`),
so that the result is bitwise identical on every rank and equals
:func:`spmdlearn.contract.simulate` over the ranks' shards with the same kernel as ``local``.
"""

from __future__ import annotations

from ._backends import call_kernel, kernel_argnames
from .comm import get_comm
from .contract import ReductionContract, pack_partial

__all__ = ["allreduce", "reduce_step", "partial_size"]


def partial_size(contract: ReductionContract, *shard) -> int:
    """Local: how many float64 values the contract's partial of ``shard`` packs into (the size
    of its identity; the same for any number of rows). For :meth:`spmdlearn.comm.Comm.reserve`,
    so that the reduction travels in its status exchange."""
    from ._array_api import numpy_dtype

    key = (contract.name,) + tuple([
        (tuple(a.shape[1:]) if contract._is_rows(i, a) else tuple(a.shape),
         numpy_dtype(a.dtype).str) if hasattr(a, "shape") and hasattr(a, "dtype") else repr(a)
        for i, a in enumerate(shard)])
    size = _SIZES.get(key)
    if size is None:
        size = _SIZES[key] = int(pack_partial(contract.identity(*shard)).size)
    return size


_SIZES: dict = {}


def allreduce(contract: ReductionContract, *shard, comm=None, backend=None, local=None,
              with_rows=False, last=False):
    """Collective: the global partial of every rank's ``shard``, bitwise identical on every rank.

    This rank's partial comes from the contract's kernel (``contract.kernel``) on the selected
    backend, the reference serving what the backend declines; a contract without a kernel runs
    ``contract.local``. A rank whose local step raises does not leave the others waiting: every
    rank raises (see :meth:`spmdlearn.comm.Comm.reduce_partials`).

    Parameters
    ----------
    contract : ReductionContract
    *shard
        This rank's arguments to ``local`` (the kernel's arguments, in its hookspec's order).
    comm : communicator, default=None
        See :func:`spmdlearn.comm.get_comm`.
    backend : str, default=None
        The backend that serves the kernel (:func:`spmdlearn._backends.resolve_backend`);
        resolved from the first argument if None.
    local : callable, default=None
        Replaces the kernel for this call (tests inject failing steps with it).
    with_rows : bool, default=False
        Also return this rank's per-row result of the kernel (only for a contract with
        ``with_rows=True``, such as k-means' Lloyd step, whose kernel also labels the rows).
    last : bool, default=False
        The collective method's last collective: what follows is local and computed from the
        global partial alone (see :meth:`spmdlearn.comm.Comm.reduce_partials`).

    Returns
    -------
    partial
        The global partial. With ``with_rows``: ``(per_row_result, partial)``, the per-row
        result for this rank's rows only.
    """
    if with_rows and not contract.with_rows:
        raise ValueError(f"contract {contract.name!r} has no per-row result")
    rows = []

    def step():
        if local is not None:
            return local(*shard)
        if contract.kernel is None:
            return contract.local(*shard)
        names = kernel_argnames(contract.kernel)
        if len(names) != len(shard):
            raise TypeError(f"contract {contract.name!r}: kernel {contract.kernel!r} takes "
                            f"{names}, got {len(shard)} arguments")
        result = call_kernel(contract.kernel, backend, **dict(zip(names, shard)))
        if contract.with_rows:
            rows.append(result[0])
            return result[1]
        return result

    partial = reduce_step(contract, step, *shard, comm=comm, last=last)
    return (rows[0] if rows else None, partial) if with_rows else partial


def reduce_step(contract: ReductionContract, step, *shard, comm=None, last=False):
    """Collective: combine every rank's ``step()`` with ``contract.combine``.

    For a local step made of more than the contract's one kernel call (e.g. a kernel called again
    on rescaled columns when its first partial overflows): ``step`` computes this rank's partial,
    and the ranks' partials are combined as :func:`allreduce` combines them, bitwise identical
    on every rank. A rank whose ``step`` raises does not leave the others waiting: every rank
    raises (the failing rank sends ``contract.identity(*shard)`` as a template).

    Parameters
    ----------
    contract : ReductionContract
    step : callable
        No arguments; returns this rank's partial.
    *shard
        This rank's arguments of ``contract.identity``.
    comm : communicator, default=None
    last : bool, default=False
        The collective method's last collective (see :func:`allreduce`).

    Returns
    -------
    partial
        The global partial.
    """
    comm = get_comm(comm)
    try:
        partial, error, template = step(), None, None
    except Exception as exc:  # noqa: BLE001 - the error must reach every rank
        partial, error = None, exc
        try:
            template = contract.identity(*shard)
        except Exception as exc2:  # noqa: BLE001
            # Without a template this rank cannot tell the others; end the job rather than
            # leave them waiting.
            comm.abort(f"{contract.name}: local step failed ({exc!r}) and so did its identity "
                       f"({exc2!r})")
    return comm.reduce_partials(partial, contract.combine, error=error, template=template,
                                last=last)
