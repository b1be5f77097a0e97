"""Communication: the only module of spmdlearn that calls MPI.

:class:`Comm` wraps an mpi4py communicator, or stands in for one process when mpi4py is absent
(:class:`SelfComm`). Arrays travel with mpi4py's buffer API (``Allgather``, ``Allgatherv``,
``Allreduce``, ``Sendrecv``); only small metadata (shapes, error messages) travels pickled.

Two rules from DESIGN.md live here:

* A value that steers control flow must be bitwise identical on every rank. MPI's ``Allreduce``
  does not promise identical rounding on every rank, so :meth:`Comm.reduce_partials` gathers every
  rank's partial (``Allgather`` of one packed buffer) and every rank folds them in the same fixed
  order, pairwise: identical inputs, identical operations, identical bits.
* Errors are collective: :meth:`Comm.agree` runs a local check on every rank and raises the same
  exception type on every rank if any rank failed, naming the failing ranks and their reasons.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Sequence

import numpy as np

from ._config import get_config
from .contract import pack_partial, tree_fold, unpack_partial

try:  # mpi4py is optional: without it everything runs as one process.
    from mpi4py import MPI
except ImportError:  # pragma: no cover - exercised in environments without mpi4py
    MPI = None

__all__ = [
    "Comm",
    "SelfComm",
    "CollectiveError",
    "get_comm",
    "pack_partial",
    "unpack_partial",
    "tree_fold",
    "self_comm",
    "world_rank",
    "world_size",
    "mpi_library_version",
]


class CollectiveError(RuntimeError):
    """Raised on every rank when a rank failed with an error that is not an input error.

    Input errors (``ValueError``, ``TypeError``, ...) keep their type; anything else (a
    ``MemoryError`` or a bug in a plugin kernel on one rank) becomes this on every rank, so that
    no rank is left waiting in a collective.
    """


_INPUT_ERRORS = (ValueError, TypeError, NotImplementedError, AttributeError, LookupError)


def _describe(exc: BaseException) -> tuple:
    # Send the class itself (pickled by reference: importable on every rank, since every rank
    # runs the same program) so that every rank can raise the same type.
    return (type(exc), str(exc) or type(exc).__name__)


class Comm:
    """A communicator for spmdlearn's collectives.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The mpi4py communicator to wrap. spmdlearn does not ``Dup`` it: the caller owns it.

    Notes
    -----
    Every method is collective unless it says otherwise: every rank of the communicator calls it,
    in the same order.
    """

    def __init__(self, comm):
        self.mpi = comm

    # -- facts ------------------------------------------------------------------------------
    @property
    def rank(self) -> int:
        """This process's rank (not collective)."""
        return self.mpi.Get_rank()

    @property
    def size(self) -> int:
        """Number of ranks (not collective)."""
        return self.mpi.Get_size()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"

    # -- small metadata (pickled) -----------------------------------------------------------
    def allgather(self, obj) -> list:
        """Gather one small Python object from every rank, on every rank (pickled: metadata only)."""
        return self.mpi.allgather(obj)

    def bcast(self, obj, root: int = 0):
        """Broadcast one small Python object from ``root``."""
        return self.mpi.bcast(obj, root=root)

    def barrier(self) -> None:
        self.mpi.Barrier()

    # -- arrays (buffer API) ----------------------------------------------------------------
    def allgather_array(self, local: np.ndarray) -> np.ndarray:
        """Stack an array of the same shape and dtype from every rank: shape ``(size, *shape)``."""
        local = np.ascontiguousarray(local)
        out = np.empty((self.size,) + local.shape, dtype=local.dtype)
        self.mpi.Allgather(local, out)
        return out

    def allgather_rows(self, local: np.ndarray) -> np.ndarray:
        """Concatenate every rank's rows in rank order (``Allgatherv``); trailing shapes agree.

        Memory: the result holds all ranks' rows on every rank.
        """
        local = np.ascontiguousarray(local)
        counts = self.allgather_array(np.array([local.shape[0]], dtype=np.int64))[:, 0]
        row = int(np.prod(local.shape[1:], dtype=np.int64))
        out = np.empty((int(counts.sum()),) + local.shape[1:], dtype=local.dtype)
        sizes = counts * row
        displs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.mpi.Allgatherv(local, [out, sizes, displs, _mpi_type(local.dtype)])
        return out

    def gather_rows(self, local: np.ndarray, root: int = 0):
        """Every rank's rows in rank order on ``root`` (``Gatherv``); None on the other ranks."""
        local = np.ascontiguousarray(local)
        counts = self.allgather_array(np.array([local.shape[0]], dtype=np.int64))[:, 0]
        if self.rank != root:
            self.mpi.Gatherv(local, None, root=root)
            return None
        row = int(np.prod(local.shape[1:], dtype=np.int64))
        out = np.empty((int(counts.sum()),) + local.shape[1:], dtype=local.dtype)
        sizes = counts * row
        displs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.mpi.Gatherv(local, [out, sizes, displs, _mpi_type(local.dtype)], root=root)
        return out

    def allreduce_sum(self, local: np.ndarray) -> np.ndarray:
        """Element-wise sum over ranks with ``Allreduce``.

        The rounding may differ between ranks: never let the result steer control flow (use
        :meth:`reduce_partials` for that).
        """
        local = np.ascontiguousarray(local)
        out = np.empty_like(local)
        self.mpi.Allreduce(local, out, op=MPI.SUM)
        return out

    def sum_identical(self, local) -> np.ndarray:
        """Sum over ranks that is bitwise identical on every rank (gather, then one fixed-order sum).

        For values that steer control flow (a convergence test, a choice among candidates).
        """
        local = np.asarray(local, dtype=np.float64)
        return self.allgather_array(local).sum(axis=0)

    def fetch_rows(self, X_local: np.ndarray, ids, start: int) -> np.ndarray:
        """The rows with global indices ``ids`` (same on every rank), from the ranks that own them.

        ``start`` is this rank's first global index. Returns ``(len(ids), n_features)``, in the
        order of ``ids``; one ``Allgatherv`` of the owned rows.
        """
        ids = np.asarray(ids, dtype=np.int64)
        mine = (ids >= start) & (ids < start + X_local.shape[0])
        owned = np.unique(ids[mine])
        rows = self.allgather_rows(np.ascontiguousarray(X_local[owned - start], dtype=np.float64))
        where = self.allgather_rows(owned)
        lookup = {int(g): i for i, g in enumerate(where)}
        return rows[[lookup[int(g)] for g in ids]].astype(X_local.dtype, copy=False)

    def reduce_bcast_sum(self, local) -> np.ndarray:
        """Sum over ranks, bitwise identical on every rank: ``Reduce`` to rank 0, then ``Bcast``.

        Memory O(size of ``local``) (``sum_identical`` gathers every rank's copy): for large
        arrays such as histograms.
        """
        local = np.ascontiguousarray(local, dtype=np.float64)
        out = np.empty_like(local)
        self.mpi.Reduce(local, out, op=None if MPI is None else MPI.SUM, root=0)
        self.mpi.Bcast(out, root=0)
        return out

    def exact_sum(self, value: int) -> int:
        """Sum of one integer per rank; integers add exactly, so every rank agrees."""
        return int(self.allgather_array(np.array([value], dtype=np.int64)).sum())

    def offsets(self, n_local: int) -> tuple[int, int]:
        """``(first global index of this rank's rows, total rows)``; rank r's rows come after ranks 0..r-1."""
        counts = self.allgather_array(np.array([n_local], dtype=np.int64))[:, 0]
        return int(counts[: self.rank].sum()), int(counts.sum())

    def sendrecv(self, send: np.ndarray, dest: int, source: int) -> np.ndarray:
        """Send ``send`` to ``dest`` and receive an array of the same shape and dtype from ``source``."""
        send = np.ascontiguousarray(send)
        recv = np.empty_like(send)
        self.mpi.Sendrecv(send, dest=dest, recvbuf=recv, source=source)
        return recv

    def ring(self, blocks: tuple):
        """Yield every rank's ``blocks`` (a tuple of arrays with rows), this rank's first.

        A ring pass: at step ``t`` this rank holds the blocks of rank ``(rank - t) % size`` and
        forwards them to ``rank + 1`` (``Sendrecv``). Collective; memory: one visiting block.
        Yields ``(source_rank, arrays)``.
        """
        counts = self.allgather_array(np.array([blocks[0].shape[0]], dtype=np.int64))[:, 0]
        current = tuple(np.ascontiguousarray(b) for b in blocks)
        dest, source = (self.rank + 1) % self.size, (self.rank - 1) % self.size
        for step in range(self.size):
            owner = (self.rank - step) % self.size
            yield owner, current
            if step == self.size - 1:
                break
            incoming = int(counts[(owner - 1) % self.size])
            received = []
            for b in current:
                buf = np.empty((incoming,) + b.shape[1:], dtype=b.dtype)
                self.mpi.Sendrecv(b, dest=dest, recvbuf=buf, source=source)
                received.append(buf)
            current = tuple(received)

    # -- the reduction contract -------------------------------------------------------------
    def reduce_partials(self, partial, combine: Callable, *, error: BaseException | None = None,
                        template=None):
        """Combine one partial per rank into the global partial, bitwise identical on every rank.

        One ``Allgather`` of a packed float64 buffer, then a pairwise fold in rank order, done
        the same way on every rank. A rank whose local step raised passes ``error`` (and a
        ``template`` partial, for the buffer's size); then every rank raises.

        Parameters
        ----------
        partial : NamedTuple or None
            This rank's partial (None when ``error`` is given).
        combine : callable
            The contract's associative, commutative ``combine(a, b)``.
        error : BaseException, default=None
            The exception this rank's local step raised.
        template : NamedTuple, default=None
            A partial of the right shapes, used when ``partial`` is None.
        """
        template = partial if partial is not None else template
        flat = pack_partial(template)
        status = np.array([0.0 if error is None else 1.0])
        payload = np.concatenate([status, flat if error is None else np.zeros_like(flat)])
        gathered = self.allgather_array(payload)
        if gathered[:, 0].any():
            self.raise_collective(error)
        parts = [unpack_partial(row[1:], template) for row in gathered]
        return tree_fold(parts, combine)

    # -- collective errors ------------------------------------------------------------------
    def agree(self, check: Callable, *args, summarize: Callable | None = None, **kwargs):
        """Run ``check(*args, **kwargs)`` on every rank; raise on every rank if any rank failed.

        One ``allgather`` carries each rank's error (or None) and, optionally, a small summary of
        its result (``summarize(result)``), so that cross-rank checks need no second collective.

        Returns
        -------
        result
            ``check``'s result on this rank.
        summaries : list
            Every rank's summary, in rank order (only when ``summarize`` is given).

        Failing ranks' errors are reported together, in rank order; the exception type is that
        of the lowest failing rank when it is an input error (``ValueError``, ``TypeError``,
        ``NotImplementedError``, ...), else :class:`CollectiveError`.
        """
        error, result, summary = None, None, None
        try:
            result = check(*args, **kwargs)
            if summarize is not None:
                summary = summarize(result)
        except Exception as exc:  # noqa: BLE001 - every failure must reach every rank
            error = exc
        gathered = self.allgather((None if error is None else _describe(error), summary))
        described = [d for d, _ in gathered]
        if any(d is not None for d in described):
            self._raise_from(described, error)
        if summarize is None:
            return result
        return result, [s for _, s in gathered]

    def raise_collective(self, error: BaseException | None):
        """Collective: share every rank's error (or None) and raise the same exception everywhere."""
        self._raise_from(self.allgather(None if error is None else _describe(error)), error)

    def _raise_from(self, described: list, error: BaseException | None):
        failures = [(rank, d) for rank, d in enumerate(described) if d is not None]
        if not failures:  # cannot happen when called after a failed agreement
            raise CollectiveError("raise_collective called while no rank failed")
        first_type = failures[0][1][0]
        exc_type = first_type if issubclass(first_type, _INPUT_ERRORS) else CollectiveError
        if self.size == 1 and error is not None and type(error) is exc_type:
            raise error  # one process: the original exception, traceback and all
        if self.size == 1:
            message = failures[0][1][1]
        else:
            ranks = ", ".join(str(rank) for rank, _ in failures)
            message = (f"failed on {len(failures)} of {self.size} ranks ({ranks}):\n"
                       + "\n".join(f"rank {rank}: {msg}" for rank, (_, msg) in failures))
        try:
            exc = exc_type(message)
        except Exception:  # noqa: BLE001 - an exception class with an unusual signature
            exc = CollectiveError(message)
        raise exc from error

    def abort(self, message: str):
        """Not collective: end the whole job from this rank, saying why (the last resort)."""
        import sys

        print(f"spmdlearn: rank {self.rank}: aborting the job: {message}", file=sys.stderr,
              flush=True)
        self.mpi.Abort(1)
        raise CollectiveError(message)  # one process: Abort is a no-op there

    # -- communicators ----------------------------------------------------------------------
    def split(self, color: int, key: int = 0) -> "Comm":
        return Comm(self.mpi.Split(color, key))


class _SelfMPI:
    """The few mpi4py methods that :class:`Comm` uses, for one process without mpi4py."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 1

    def allgather(self, obj):
        return [obj]

    def bcast(self, obj, root=0):
        return obj

    def Barrier(self):
        pass

    def Allgather(self, send, recv):
        recv[...] = np.asarray(send).reshape(recv.shape)

    def Allgatherv(self, send, spec):
        out = spec[0]
        out[...] = np.asarray(send).reshape(out.shape)

    def Allreduce(self, send, recv, op=None):
        recv[...] = send

    def Reduce(self, send, recv, op=None, root=0):
        recv[...] = send

    def Bcast(self, buf, root=0):
        pass

    def Gatherv(self, send, spec, root=0):
        out = spec[0]
        out[...] = np.asarray(send).reshape(out.shape)

    def Sendrecv(self, send, dest, recvbuf, source):
        recvbuf[...] = send

    def Split(self, color, key=0):
        return self

    def Abort(self, code=1):
        pass


class SelfComm(Comm):
    """One-process stand-in, used when mpi4py is not installed."""

    def __init__(self):
        super().__init__(_SelfMPI())

    def split(self, color: int, key: int = 0) -> "Comm":
        return self


def _mpi_type(dtype):
    if MPI is None:
        return None
    return MPI._typedict[np.dtype(dtype).char]


_default = None
_default_lock = threading.Lock()
_threads_limited: set = set()


def _library_comm() -> Comm:
    """The library-owned duplicate of COMM_WORLD, made once, on first use (a collective moment)."""
    global _default
    with _default_lock:
        if _default is None:
            if MPI is None:
                _default = SelfComm()
            else:
                _default = Comm(MPI.COMM_WORLD.Dup())
        return _default


def get_comm(comm=None) -> Comm:
    """Resolve the communicator to use now.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, Comm or None
        An explicit communicator; None means ``config_context``'s, else the library's duplicate
        of ``MPI.COMM_WORLD`` (a one-process stand-in without mpi4py).
    """
    if comm is None:
        comm = get_config()["comm"]
    if comm is None:
        resolved = _library_comm()
    elif isinstance(comm, Comm):
        resolved = comm
    elif MPI is not None and isinstance(comm, MPI.Comm):
        resolved = Comm(comm)
    else:
        raise TypeError(f"comm={comm!r} should be an mpi4py communicator or a spmdlearn.comm.Comm")
    _limit_threads(resolved)
    return resolved


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMBA_NUM_THREADS", "SPMDLEARN_NUM_THREADS")


def _limit_threads(comm: Comm) -> None:
    """Give each rank its share of the node's cores, once per process, unless the user chose.

    Ranks of one node share its cores; without a limit every rank's BLAS starts one thread per
    core and the node runs ranks x cores threads. The ranks of a node are found with a
    shared-memory split of the communicator (collective: it happens on the first collective call).
    """
    if _threads_limited or MPI is None or comm.size == 1 or not isinstance(comm.mpi, MPI.Comm):
        return
    _threads_limited.add(True)
    if any(os.environ.get(name) for name in _THREAD_VARIABLES):
        return
    node = comm.mpi.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        ranks_on_node = node.Get_size()
    finally:
        node.Free()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=max(1, (cores or 1) // ranks_on_node))


def mpi_library_version() -> str:
    """The MPI library's version string, or a note that mpi4py is absent (not collective)."""
    if MPI is None:
        return "mpi4py not installed: one process"
    return MPI.Get_library_version().strip().splitlines()[0]


def world_size() -> int:
    """Number of ranks in COMM_WORLD (not collective)."""
    return 1 if MPI is None else MPI.COMM_WORLD.Get_size()


def world_rank() -> int:
    """This process's rank in COMM_WORLD; 0 without mpi4py (not collective)."""
    return 0 if MPI is None else MPI.COMM_WORLD.Get_rank()


def self_comm() -> Comm:
    """A communicator of this process alone (``COMM_SELF``; the stand-in without mpi4py).

    For rank-local work that runs through collective code paths (not collective).
    """
    return SelfComm() if MPI is None else Comm(MPI.COMM_SELF)

