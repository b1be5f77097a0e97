"""Running a reduction contract over MPI: the collective layer above the pure contract core.

:func:`allreduce` computes this rank's partial with the contract's kernel, dispatched to the
selected backend (:func:`spmdlearn._backends.call_kernel`), then combines every rank's partial in
the fixed order of :func:`spmdlearn.contract.tree_fold` (:meth:`spmdlearn.comm.Comm.reduce_partials`),
so that the result is bitwise identical on every rank and equals
:func:`spmdlearn.contract.simulate` over the ranks' shards.
"""

from __future__ import annotations

from ._backends import call_kernel, kernel_argnames
from .comm import get_comm
from .contract import ReductionContract

__all__ = ["allreduce"]


def allreduce(contract: ReductionContract, *shard, comm=None, backend=None, local=None,
              with_rows=False):
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

    Returns
    -------
    partial
        The global partial. With ``with_rows``: ``(per_row_result, partial)``, the per-row
        result for this rank's rows only.
    """
    if with_rows and not contract.with_rows:
        raise ValueError(f"contract {contract.name!r} has no per-row result")
    comm = get_comm(comm)
    rows = None
    try:
        if local is not None:
            result = local(*shard)
        elif contract.kernel is not None:
            names = kernel_argnames(contract.kernel)
            if len(names) != len(shard):
                raise TypeError(f"contract {contract.name!r}: kernel {contract.kernel!r} takes "
                                f"{names}, got {len(shard)} arguments")
            result = call_kernel(contract.kernel, backend, **dict(zip(names, shard)))
        else:
            result = contract.local(*shard)
        if contract.with_rows and local is None and contract.kernel is not None:
            rows, result = result
        partial, error, template = result, None, None
    except Exception as exc:  # noqa: BLE001 - the error must reach every rank
        partial, error = None, exc
        try:
            template = contract.identity(*shard)
        except Exception as exc2:  # noqa: BLE001
            # Without a template this rank cannot tell the others; end the job rather than
            # leave them waiting.
            comm.abort(f"{contract.name}: local step failed ({exc!r}) and so did its identity "
                       f"({exc2!r})")
    partial = comm.reduce_partials(partial, contract.combine, error=error, template=template)
    return (rows, partial) if with_rows else partial
