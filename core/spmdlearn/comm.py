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

Failing fast (:meth:`Comm.session` is what every public collective method of an estimator runs in):

* Every collective of :class:`Comm` starts with a *status exchange*: one non-blocking
  ``Iallgather`` of a few integers per rank (failed?, where, step, a check of the shapes, the
  estimator's parameters, the host). A rank
  whose code raised between two collectives joins the next exchange with its error, so the ranks
  waiting there raise too; ranks that took different paths (a rank-dependent branch, a method
  called on some ranks only) or pass arrays of different shapes raise instead of crashing.
* Small data rides in the exchange itself, after the integers (a *payload*): a validation
  summary, a count or sum, a few rows, a reduction's partial. Then one collective carries both
  each rank's verdict and its data; the data is used only once the verdict says that every rank
  succeeded and called the same collective with the same shapes. Every row of an exchange must
  have one size on every rank, a failing rank's included, which does not know what the others
  send: the payload's width is therefore 10 values outside collective methods and at a method's
  start, and a method widens it for its remaining exchanges only through an exchange (a rank
  reserves room, :meth:`Comm.reserve`, and the largest reservation of that exchange holds from
  the next one on, on every rank alike). Data larger than the width (or than 1024 values) takes
  a collective of its own after the exchange.
* A method whose last collective agreed that every rank succeeded and none warned, and whose
  remaining work is local and computed from agreed values (a finalize of the global partial:
  ``last=True``), leaves out its exit exchange. An exception there is then raised on each rank
  alone; if some ranks raised and others did not, their next status exchange on the
  communicator raises on every rank, naming the ranks, the method and the reason.
* The watchdog: a rank waits in an exchange at most ``SPMDLEARN_COLLECTIVE_TIMEOUT`` seconds
  (default 300; 0 waits forever). Past it, it prints the collective, the call site and the ranks
  that never arrived, then aborts the job (``MPI_Abort``).
* Under MPI with several ranks, an uncaught exception on any rank prints its traceback once and
  aborts the job, as ``python -m mpi4py`` does (opt out: ``SPMDLEARN_ABORT_ON_ERROR=0``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import sys
import threading
import time
import traceback
from typing import Callable

import numpy as np

from ._config import get_config
from .contract import pack_partial, tree_fold, unpack_partial, unpack_partials

#: Variables a launcher sets for each rank, which the processes a rank starts inherit.
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK",
                   "PALS_RANKID")


def _started_by_an_mpi_rank() -> bool:
    """Whether this process is a worker that an MPI rank started (joblib/loky's workers for
    ``n_jobs``, multiprocessing): it inherits the launcher's environment, and ``MPI_Init``
    there aborts it, because it cannot join the launcher's job."""
    import multiprocessing

    return (multiprocessing.parent_process() is not None
            and any(name in os.environ for name in _RANK_VARIABLES))


_IN_RANK_WORKER = _started_by_an_mpi_rank()
if _IN_RANK_WORKER:  # never initialize MPI here: get_comm raises a clear error instead
    MPI = None
else:
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
    "owned_ids",
    "DEVICE_BUFFER_KINDS",
    "array_kind",
    "decide_device_buffers",
    "device_buffer_support",
    "device_buffer_transfers",
    "reset_device_buffer_transfers",
]


class CollectiveError(RuntimeError):
    """Raised on every rank when a rank failed with an error that is not an input error.

    Input errors (``ValueError``, ``TypeError``, ...) keep their type; anything else (a
    ``MemoryError`` or a bug in a plugin kernel on one rank) becomes this on every rank, so that
    no rank is left waiting in a collective.
    """


_INPUT_ERRORS = (ValueError, TypeError, NotImplementedError, AttributeError, LookupError)

#: Columns of one rank's row in a status exchange; a payload of ``width`` 8-byte slots follows.
_FAILED, _WARNED = 1, 2
_STATUS, _WHERE, _STEP, _CHECK, _HOST, _PARAMS, _RESERVE, _LATE = range(8)
_ROW = 8
#: Payload slots of every status row outside a session and at a session's start: room for a
#: small collective's data (a count, a sum, the summary of a shard), so that it travels in the
#: exchange itself instead of in a second collective.
_BASE_WIDTH = 10
#: The most payload slots a session reserves (8 KiB per rank): larger data travels in a
#: collective of its own after the exchange, as every exchange of the session carries the width.
_MAX_WIDTH = 1024
_MAX = np.maximum.reduce
_ANY_IN_COLUMN = np.logical_or.reduce
_STATUS_FLAGS = np.bitwise_or.reduce


class _Head:
    """What the checks of a status exchange read from its gathered ``rows``, computed once per
    exchange (two array operations instead of one per column checked): ``differ[c]``, whether
    the ranks' values of status column ``c`` differ; ``status``, the ranks' status flags
    or-ed (``& _FAILED``: some rank failed; ``& _WARNED``: some rank warned)."""

    __slots__ = ("rows", "differ", "status")

    def __init__(self, rows):
        self.rows = rows
        head = rows[:, :_ROW]
        self.differ = _ANY_IN_COLUMN(head != head[0], axis=0).tolist()
        self.status = int(_STATUS_FLAGS(head[:, _STATUS]))

    @staticmethod
    def of(comm, rows) -> "_Head":
        """``comm``'s last exchange's head where ``rows`` are its rows, else made for them."""
        head = comm._head
        return head if head.rows is rows else _Head(rows)


#: Point-to-point tags of the watchdog's diagnosis (on the communicator in use).
_TAG_ASK, _TAG_ANSWER = 32001, 32002
_DEFAULT_TIMEOUT = 300.0


def _digest(value) -> int:
    """A stable 63-bit digest of ``repr``-able data (Python's ``hash`` of a str differs by process)."""
    text = value if isinstance(value, bytes) else repr(value)
    digest = _DIGESTS.get(text)
    if digest is None:
        data = text if isinstance(text, bytes) else text.encode()
        digest = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1
        if len(text) <= _DIGEST_TEXT:
            if len(_DIGESTS) >= _DIGEST_ENTRIES:
                _DIGESTS.clear()
            _DIGESTS[text] = digest
    return digest


#: Digests of short texts already made, by text: every collective digests the same few facts
#: (a method's name, a collective's shapes) call after call. Keyed by the text itself, so a
#: cached digest is the digest of exactly that text.
_DIGESTS: dict = {}
_DIGEST_TEXT, _DIGEST_ENTRIES = 2048, 4096


def owned_ids(ids, start: int, n_local: int) -> np.ndarray:
    """The global indices among ``ids`` of the rows that a rank holds (sorted, unique).

    The rank's rows have global indices ``start .. start + n_local - 1``. Local: no MPI call.
    """
    ids = np.asarray(ids, dtype=np.int64)
    return np.unique(ids[(ids >= start) & (ids < start + n_local)])


def _describe(exc: BaseException) -> tuple:
    # The class travels by name (module, qualified name), resolved on the receiving rank: a
    # class that cannot be pickled or imported there becomes CollectiveError, never a hang.
    cls = type(exc)
    return (cls.__module__, cls.__qualname__, str(exc) or cls.__name__)


def _resolve(described: tuple) -> type:
    module, qualname, _ = described
    try:
        obj = sys.modules[module]
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            return obj
    except (KeyError, AttributeError):
        pass
    return CollectiveError


def collective_timeout() -> float:
    """``SPMDLEARN_COLLECTIVE_TIMEOUT`` in seconds (default 300); 0 or less waits forever (not collective)."""
    text = os.environ.get("SPMDLEARN_COLLECTIVE_TIMEOUT", "")
    try:
        return float(text) if text.strip() else _DEFAULT_TIMEOUT
    except ValueError:
        return _DEFAULT_TIMEOUT


def _ranks(ranks) -> str:
    ranks = list(ranks)
    return f"rank{'s' if len(ranks) > 1 else ''} " + ", ".join(str(r) for r in ranks)


def _group(values: list) -> str:
    """``"ranks 0, 2: a; rank 1: b"`` for per-rank values."""
    order, members = [], {}
    for rank, value in enumerate(values):
        if value not in members:
            order.append(value)
            members[value] = []
        members[value].append(rank)
    return "; ".join(f"{_ranks(members[v])}: {v}" for v in order)


def _user_frame() -> str:
    """``file:line`` of the innermost caller outside spmdlearn, scikit-learn and threadpoolctl."""
    here = os.path.dirname(os.path.abspath(__file__))
    skip = (here, os.sep + "sklearn" + os.sep, "threadpoolctl", os.sep + "contextlib.py")
    for frame in reversed(traceback.extract_stack()):
        if not any(part in os.path.abspath(frame.filename) for part in skip):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"


class _Session:
    """One public collective method on one communicator: its name and its collectives so far."""

    __slots__ = ("comm", "where", "where_id", "step", "collective", "warnings", "overflow",
                 "params_digest", "entry", "width", "request", "depth", "closed_step")

    def __init__(self, comm, where: str):
        self.comm, self.where, self.where_id = comm, where, _digest(where)
        self.step, self.collective, self.warnings = 0, "", []
        # Payload slots of this session's status rows: _BASE_WIDTH until an exchange in which
        # some rank reserved more (``request``); the largest reservation of that exchange then
        # holds for the rest of the session. It is derived from gathered rows only, so every
        # rank uses the same width at every exchange, a failing rank's exit exchange included.
        self.width, self.request = _BASE_WIDTH, 0
        # Collective methods called inside this one (they are part of it), and the step of the
        # method's last collective, once it has agreed that every rank succeeded and that no
        # rank warned (see Comm._close): the exit exchange is then left out.
        self.depth, self.closed_step = 0, -1
        self.overflow = None  # the first overflow of a global reduction in this method
        self.params_digest = 0  # of the estimator's parameters, in every status row
        # (context, parameter values) until the method's first status exchange has checked
        # that every rank calls the same method with the same parameters
        self.entry = None


def _note_overflow(message: str) -> None:
    """Remember an overflow of a global reduction (identical on every rank) for the errors that
    follow it in the same collective method, whatever the warning filters."""
    stack = _sessions()
    if stack and stack[-1].overflow is None:
        stack[-1].overflow = message


def _with_overflow(exc: BaseException, session) -> BaseException:
    """``exc`` with its message extended by the session's overflow (naming the overflowing
    ranks), so that an error caused by values near the float64 limit says so on every rank."""
    note = getattr(session, "overflow", None)
    if note is None or not isinstance(exc, Exception) or not exc.args \
            or not isinstance(exc.args[0], str) or "overflow in " in exc.args[0]:
        return exc
    exc.args = (f"{exc.args[0]} (after an {note})",) + tuple(exc.args[1:])
    return exc


_local = threading.local()


def _sessions() -> list:
    try:
        return _local.stack
    except AttributeError:
        _local.stack = []
        return _local.stack


def _same(a, b) -> bool:
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - a stand-in without equality
        return False


#: Elements (float64) per MPI call of :meth:`Comm.reduce_bcast_sum` (4 MiB): MPI's temporary
#: buffers for a large reduction are the size of one call's message.
REDUCE_PIECE = 1 << 19


_NO_HEAD = _Head(np.zeros((1, _ROW), dtype=np.int64))


class _Wrapped:
    """:attr:`Comm.mpi`: read as a plain instance attribute (a descriptor without ``__get__``),
    set through here, which also keeps the communicator's ``rank`` and ``size``: they are read
    at every collective, and an MPI communicator's rank and size never change."""

    def __set__(self, comm, mpi):
        comm.__dict__["mpi"] = mpi
        comm.__dict__["rank"], comm.__dict__["size"] = mpi.Get_rank(), mpi.Get_size()


class Comm:
    """A communicator for spmdlearn's collectives.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The mpi4py communicator to wrap. spmdlearn does not ``Dup`` it: the caller owns it.

    Attributes
    ----------
    rank : int
        This process's rank (not collective).
    size : int
        Number of ranks (not collective).

    Notes
    -----
    Every method is collective unless it says otherwise: every rank of the communicator calls it,
    in the same order. Each begins with a status exchange (see the module docstring), bounded by
    the watchdog.
    """

    #: The wrapped mpi4py communicator. Setting it (a proxy that counts calls, in benchmarks)
    #: also sets ``rank`` and ``size``.
    mpi = _Wrapped()
    #: The :class:`_Head` of this communicator's last status exchange (set by ``_exchange``).
    _head = _NO_HEAD

    def __init__(self, comm):
        self.mpi = comm

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"

    # -- the status exchange and the watchdog ---------------------------------------------------
    def _session(self):
        stack = _sessions()
        if stack:
            mpi = stack[-1].comm.mpi
            if mpi is self.mpi or _same(mpi, self.mpi):
                return stack[-1]
        return None

    def _exchange(self, collective: str, check: int = 0, status: int = 0,
                  session: _Session | None = None, payload=None) -> np.ndarray:
        """Collective: every rank's status row ``[status, where, step, check, host, params,
        reserve]`` followed by its payload, shape ``(size, _ROW + width)``.

        Non-blocking (``Iallgather``) and waited for with the watchdog's deadline. ``payload``
        (int64, at most :meth:`_payload_width` values; a float64 array travels as its bits,
        ``.view(np.int64)``) rides in the row: what the ranks gather is valid once the verdict
        on the rows (:meth:`_verdict`) passes.
        """
        session = self._session() if session is None else session
        width = _BASE_WIDTH if session is None else session.width
        row = np.zeros(_ROW + width, dtype=np.int64)
        row[_STATUS], row[_CHECK] = status, check
        row[_HOST] = _host_id()
        if session is not None:
            session.step += 1
            session.collective = collective
            row[_WHERE], row[_STEP] = session.where_id, session.step
            row[_PARAMS] = session.params_digest
            row[_RESERVE] = session.request
        if payload is not None:
            row[_ROW:_ROW + payload.size] = payload
        out = np.empty((self.size, _ROW + width), dtype=np.int64)
        if self.size == 1:
            out[0] = row
            return out
        late = _pop_late_failure(self.mpi) if _late_failures else None
        if late is not None:
            row[_LATE] = late[0]
        request = self.mpi.Iallgather(row, out)
        self._wait(request, collective, session)
        head = self._head = _Head(out)
        if head.differ[_LATE]:
            self._raise_late(late)
        if session is not None:
            session.request = 0
            reserved = int(_MAX(out[:, _RESERVE]))
            if reserved > session.width:
                session.width = min(reserved, _MAX_WIDTH)
            if session.entry is not None:
                context, values = session.entry
                session.entry = None
                context._check_entry(out, values, head)
        return out

    def _raise_late(self, late):
        """Some ranks, not all, raised after the last collective of a method whose exit
        exchange was left out (see :meth:`_close`): raise on every rank, naming them."""
        gathered = self.mpi.allgather(None if late is None else late[1:])
        failed = [(rank, g) for rank, g in enumerate(gathered) if g is not None]
        fine = [rank for rank, g in enumerate(gathered) if g is None]
        message = ("a collective method failed on some ranks after its last collective, so the "
                   "ranks' models may differ: " + "; ".join(
                       f"rank {rank}: {where}: {d[1]}: {d[2]}" for rank, (where, d) in failed)
                   + (f"; {_ranks(fine)} succeeded" if fine else ""))
        raise _mark(CollectiveError(message), self, [rank for rank, _ in failed])

    def _close(self, rows, session) -> None:
        """After the verdict of the exchange of a method's last collective (``rows``: every
        rank's status, each with its warned flag): where every rank succeeded and none warned,
        and the method is not called inside another one, the exit exchange is left out.

        The caller vouches that what follows is local and computed from values identical on
        every rank (a finalize of the global partial), so that it raises or warns alike on
        every rank: then every rank raises its own exception, and rank 0 shows the warnings.
        Should one rank raise there alone all the same (out of memory), it raises on its own,
        and the ranks' next status exchange on the communicator raises on every rank, naming
        it (:meth:`_raise_late`)."""
        if session is not None and session.depth == 0 and not _Head.of(self, rows).status & _WARNED:
            session.closed_step = session.step
            # Should a rank make another collective all the same (a rank-dependent branch),
            # its row has the width of the rows of the other ranks' next collective method
            # (they left without an exchange), so the exchange still meets them and raises.
            session.width = _BASE_WIDTH

    def _payload_width(self) -> int:
        """Payload slots of this rank's next status row (not collective)."""
        session = self._session()
        return _BASE_WIDTH if session is None else session.width

    def reserve(self, values: int) -> None:
        """Not collective: ask for ``values`` payload slots in the status rows of the rest of the
        current collective method, from its next status exchange on, so that a later collective
        of that many 8-byte values (a reduction's partial) travels in its status exchange: one
        synchronisation instead of two. Ranks may ask for different sizes (the largest holds,
        up to 1024 slots); without a collective method on this communicator it does nothing."""
        session = self._session()
        if session is not None and int(values) <= _MAX_WIDTH:
            session.request = max(session.request, int(values))

    def _gather_small(self, collective: str, local: np.ndarray, facts: tuple):
        """Collective: ``_enter(collective, *facts)`` and, when ``local`` (C-contiguous, of a
        size and dtype that ``facts`` pin down, so equal on every rank that passes the check)
        fits the status row's payload, every rank's ``local`` gathered in the same exchange:
        shape ``(size, *local.shape)``. Returns None where it does not fit: the caller then
        gathers with a collective of its own after the check."""
        if self.size == 1:
            return None
        nbytes = local.nbytes
        slots = -(-nbytes // 8)
        if slots > self._payload_width() or local.dtype.kind not in "biufc":
            self._enter(collective, *facts)
            return None
        self._last_check = (collective,) + facts
        payload = np.zeros(slots, dtype=np.int64)
        payload.view(np.uint8)[:nbytes] = local.reshape(-1).view(np.uint8)
        rows = self._exchange(collective, _digest(self._last_check), payload=payload)
        self._verdict(rows, collective, compare_check=True)
        data = np.ascontiguousarray(rows[:, _ROW:_ROW + slots]).view(np.uint8)[:, :nbytes]
        return np.ascontiguousarray(data).view(local.dtype).reshape((self.size,) + local.shape)

    def _enter(self, collective: str, *facts) -> None:
        """Collective: the status exchange that begins every collective of this class.

        Raises on every rank if any rank failed before it (joining with its error), if the
        ranks are at different points of their programs, or if they call different collectives
        or pass different ``facts`` (shapes and dtypes that must agree, a root).
        """
        if self.size == 1:
            return
        self._last_check = (collective,) + facts
        rows = self._exchange(collective, _digest(self._last_check))
        self._verdict(rows, collective, compare_check=True)

    def _verdict(self, rows, collective, compare_check, error=None):
        head = _Head.of(self, rows)
        if head.status & _FAILED:
            self._raise_gathered(error)
        differ = head.differ
        if differ[_WHERE] or differ[_STEP]:
            self._raise_diverged(collective)
        if compare_check and differ[_CHECK]:
            self._raise_mismatch(collective)

    def _position(self, collective) -> tuple:
        session = self._session()
        if session is None:
            return (f"{collective} (outside an estimator method)", _user_frame())
        return (f"{session.where}, collective #{session.step} ({collective})", _user_frame())

    def _raise_diverged(self, collective):
        positions = self.mpi.allgather(self._position(collective))
        wheres = [p[0] for p in positions]
        calls = {rank: p[1] for rank, p in enumerate(positions)}
        message = ("ranks are in different collectives (mismatched calls, or a rank-dependent "
                   f"branch): {_group(wheres)}; called from "
                   + "; ".join(f"rank {r}: {c}" for r, c in calls.items()))
        raise _mark(CollectiveError(message), self, range(self.size))

    def _raise_mismatch(self, collective):
        facts = self.mpi.allgather(getattr(self, "_last_check", None))
        raise _mark(CollectiveError(
            "ranks call different collectives, or pass arrays of different shapes or dtypes "
            f"(collective, facts): {_group(facts)}"), self, range(self.size))

    def _wait(self, request, collective: str, session) -> None:
        """Wait for ``request`` like a blocking MPI call (spinning on ``Test``), then, past a
        few milliseconds, with short sleeps that leave the core to other ranks; answer the
        watchdog questions of other ranks; fire the watchdog past the deadline. On a node with
        more ranks than cores, sleep from the start: a spinning rank takes the core from one
        that computes."""
        start = time.monotonic()
        spin_end = start + (0.0 if _oversubscribed() else 0.005)
        while time.monotonic() < spin_end:
            for _ in range(50):
                if request.Test():
                    return
        timeout = collective_timeout()
        pause, next_look = 0.0, start
        while True:
            for _ in range(20):
                if request.Test():
                    return
            now = time.monotonic()
            if now >= next_look:
                self._answer_questions(collective, session)
                next_look = now + 0.05
                if timeout > 0 and now - start > timeout:
                    self._watchdog(request, collective, session, now - start, timeout)
            pause = min(max(pause * 2, 1e-5), 5e-4)
            time.sleep(pause)

    def _state(self, collective, session) -> tuple:
        where = session.where if session is not None else "(outside an estimator method)"
        step = session.step if session is not None else -1
        return (where, step, collective, _user_frame())

    def _answer_questions(self, collective, session) -> None:
        """While waiting: tell ranks whose watchdog fired where this rank waits."""
        status = MPI.Status()
        while self.mpi.Iprobe(source=MPI.ANY_SOURCE, tag=_TAG_ASK, status=status):
            source = status.Get_source()
            self.mpi.recv(source=source, tag=_TAG_ASK)
            _pending.append(self.mpi.isend(self._state(collective, session), dest=source,
                                           tag=_TAG_ANSWER))

    def _watchdog(self, request, collective, session, waited, timeout) -> None:
        """The deadline passed: find who waits where, say it, and abort the job."""
        me = self._state(collective, session)
        for rank in range(self.size):
            if rank != self.rank:
                _pending.append(self.mpi.isend(None, dest=rank, tag=_TAG_ASK))
        answers = {self.rank: me}
        grace_end = time.monotonic() + min(2.0, max(0.2, timeout))
        status = MPI.Status()
        while len(answers) < self.size and time.monotonic() < grace_end:
            if self.mpi.Iprobe(source=MPI.ANY_SOURCE, tag=_TAG_ANSWER, status=status):
                answers[status.Get_source()] = self.mpi.recv(source=status.Get_source(),
                                                             tag=_TAG_ANSWER)
            else:
                self._answer_questions(collective, session)
                request.Test()
                time.sleep(1e-3)
        same = sorted(r for r, a in answers.items() if a[:2] == me[:2])
        elsewhere = {r: a for r, a in answers.items() if a[:2] != me[:2]}
        never = [r for r in range(self.size) if r not in answers]
        lines = [f"spmdlearn: rank {self.rank}: watchdog: waited {waited:.1f} s "
                 f"(SPMDLEARN_COLLECTIVE_TIMEOUT={timeout:g}) in {me[0]}, collective "
                 f"{me[2]!r}, called from {me[3]}."]
        if never:
            lines.append(f"  {_ranks(never)} never arrived (they run other code, have finished, "
                         "or are stuck outside spmdlearn).")
        for rank, (where, step, coll, call) in sorted(elsewhere.items()):
            lines.append(f"  rank {rank} waits elsewhere: {where}, collective {coll!r}, "
                         f"called from {call}.")
        lines.append(f"  {_ranks(same)} arrived. Aborting the job.")
        print("\n".join(lines), file=sys.stderr, flush=True)
        _abort_after_output(MPI.COMM_WORLD if MPI is not None else self.mpi)
        raise CollectiveError("\n".join(lines))  # only reached without a real MPI

    # -- sessions: the failing-fast frame of one public collective method ------------------------
    def session(self, where: str, params: Callable | None = None, caller=None):
        """Context manager: run one public collective method (``where``, e.g. ``"KMeans.fit"``).

        Collective. The ranks agree on ``where`` and on the digest of ``params()`` (a mapping of
        parameter names to canonical values) in the method's first status exchange (its first
        collective, or its exit); a mismatch raises on every rank, naming the method or the
        parameters and the ranks. Inside, an exception on one rank is joined
        to the next status exchange, so that every rank raises; on exit, a closing exchange
        catches failures after the last collective (left out where the method's last collective
        says that what follows is alike on every rank: see the module docstring). Warnings
        raised inside are shown once, on rank 0 (each distinct message; those from some ranks
        only name them). Nested sessions on the same communicator are part of the outer one.

        Parameters
        ----------
        where : str
            ``"Class.method"``: ranks must agree on it.
        params : callable, default=None
            Returns ``{name: (canonical value, text to show)}``; ranks must agree on the
            canonical values.
        caller : tuple, default=None
            ``(file, line, wrapper file)``: warnings located in the wrapper file (a method's
            ``stacklevel`` counted without the wrapper) are shown at the caller's file and line.
        """
        return _SessionContext(self, where, params, caller)

    # -- small metadata (pickled) -----------------------------------------------------------
    def allgather(self, obj) -> list:
        """Gather one small Python object from every rank, on every rank (pickled: metadata only)."""
        self._enter("allgather")
        return self.mpi.allgather(obj)

    def bcast(self, obj, root: int = 0):
        """Broadcast one small Python object from ``root``."""
        self._enter("bcast", root)
        return self.mpi.bcast(obj, root=root)

    def barrier(self) -> None:
        self._enter("barrier")

    def agreed_random_state(self, random_state):
        """Collective: ``random_state`` as every rank must use it.

        None (fresh randomness from NumPy's global generator, which each rank seeds on its own)
        becomes one int seed drawn from rank 0's global generator and broadcast, so that every
        rank draws the same numbers; an int or a ``RandomState``/``Generator`` is returned as
        is (the entry agreement on parameters has already compared ints by value and instances
        by their state).
        """
        if random_state is None:
            seed = (int(np.random.mtrand._rand.randint(np.iinfo(np.int32).max))
                    if self.rank == 0 else 0)
            # the seed travels in the status exchange (what a broadcast from rank 0 checks)
            gathered = self._gather_small("bcast", np.array([seed], dtype=np.int64), (0,))
            return self.bcast(seed) if gathered is None else int(gathered[0, 0])
        return random_state

    # -- arrays (buffer API) ----------------------------------------------------------------
    def _checked(self, name, *arrays, rows_free=False, extra=()):
        self._enter(name, *self._facts(*arrays, rows_free=rows_free, extra=extra))

    @staticmethod
    def _facts(*arrays, rows_free=False, extra=()) -> tuple:
        return tuple([(np.dtype(a.dtype).str, a.shape[1:] if rows_free else a.shape)
                      for a in arrays]) + tuple(extra)

    def allgather_array(self, local: np.ndarray) -> np.ndarray:
        """Stack an array of the same shape and dtype from every rank: shape ``(size, *shape)``."""
        local = np.ascontiguousarray(local)
        gathered = self._gather_small("allgather_array", local, self._facts(local))
        return self._allgather_array(local) if gathered is None else gathered

    def _allgather_array(self, local):
        out = np.empty((self.size,) + local.shape, dtype=local.dtype)
        self.mpi.Allgather(local, out)
        return out

    def allgather_rows(self, local: np.ndarray, *, last: bool = False) -> np.ndarray:
        """Concatenate every rank's rows in rank order (``Allgatherv``); trailing shapes agree.

        Memory: the result holds all ranks' rows on every rank. ``last``: the collective
        method's last collective (see :meth:`reduce_partials`).
        """
        # an empty rank takes the others' layout; the exchange that agrees on it also
        # gathers the row counts
        local, counts = self._row_layout(local, "allgather_rows", last=last)
        return self._allgather_rows(local, counts)

    def _allgather_rows(self, local, counts=None):
        if counts is None:
            counts = self._allgather_array(np.array([local.shape[0]], dtype=np.int64))[:, 0]
        row = int(np.prod(local.shape[1:], dtype=np.int64))
        out = np.empty((int(counts.sum()),) + local.shape[1:], dtype=local.dtype)
        sizes = counts * row
        displs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        self.mpi.Allgatherv(local, [out, sizes, displs, _mpi_type(local.dtype)])
        return out

    def _row_layout(self, local: np.ndarray, collective: str = "row layout",
                    extra=(), last=False) -> tuple[np.ndarray, np.ndarray]:
        """Agree on the layout of an array of rows: ``(local, row counts of every rank)``.

        A rank with zero rows may have built its empty array with another dtype or trailing
        shape than the ranks with rows (``np.zeros((0, 1))`` for float32 rows of width 3); the
        buffers would then be read with the wrong layout. The ranks with rows decide: an empty
        rank takes their dtype and trailing shape. Ranks with rows that disagree raise a
        ValueError on every rank.
        """
        local = np.ascontiguousarray(local)
        dtype, shape, counts = self._agree_layout(int(local.shape[0]), local.dtype,
                                                  local.shape[1:], collective, extra, last)
        if local.shape[0] == 0 and (dtype, shape) != (local.dtype, local.shape[1:]):
            local = np.empty((0,) + tuple(shape), dtype=dtype)
        return local, counts

    def _agree_layout(self, n_rows: int, dtype, trailing: tuple, collective: str = "row layout",
                      extra=(), last=False):
        """Collective: ``(dtype, trailing shape, row counts of every rank)`` of an array of rows
        of which this rank holds ``n_rows`` of ``dtype`` and ``trailing`` (see
        :meth:`_row_layout`). The layouts travel in one status exchange (``collective``, whose
        ``extra`` facts must agree), as integers; a dtype name of more than 8 characters or a
        trailing shape of more than 7 axes on some rank sends them all pickled after it."""
        dtype, trailing = np.dtype(dtype), tuple(int(n) for n in trailing)
        code = _dtype_code(dtype)
        fits = code != 0 and len(trailing) <= _BASE_WIDTH - 3
        payload = np.zeros(_BASE_WIDTH, dtype=np.int64)
        payload[:3] = (n_rows, code, len(trailing) if fits else -1)
        if fits:
            payload[3:3 + len(trailing)] = trailing
        if self.size == 1:
            rows = payload[None, :]
        else:
            self._last_check = (collective,) + tuple(extra)
            session = self._session()
            status = _WARNED if last and session is not None and session.warnings else 0
            rows = self._exchange(collective, _digest(self._last_check), status=status,
                                  payload=payload)
            self._verdict(rows, collective, compare_check=True)
            if last:
                self._close(rows, session)
            rows = rows[:, _ROW:]
        if (rows[:, 2] < 0).any():
            layouts = self.mpi.allgather((n_rows, dtype.str, trailing))
        else:
            layouts = [(int(r[0]), _dtype_from_code(int(r[1])),
                        tuple(int(n) for n in r[3:3 + r[2]])) for r in rows]
        counts = np.array([n for n, _, _ in layouts], dtype=np.int64)
        with_rows = {(d, shape) for n, d, shape in layouts if n}
        if len(with_rows) > 1:
            detail = "; ".join(f"rank {r}: {n} rows of {np.dtype(d)} x {s}"
                               for r, (n, d, s) in enumerate(layouts) if n)
            raise ValueError(f"ranks hold rows of different dtypes or widths: {detail}")
        if with_rows and n_rows == 0:
            d, shape = with_rows.pop()
            dtype, trailing = np.dtype(d), tuple(shape)
        return dtype, trailing, counts

    def gather_rows(self, local: np.ndarray, root: int = 0):
        """Every rank's rows in rank order on ``root`` (``Gatherv``); None on the other ranks."""
        # an empty rank takes the others' layout; the exchange also gathers the row counts
        local, counts = self._row_layout(local, "gather_rows", (root,))
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
        self._checked("allreduce_sum", local)
        out = np.empty_like(local)
        self.mpi.Allreduce(local, out, op=MPI.SUM)
        return out

    def sum_identical(self, local) -> np.ndarray:
        """Sum over ranks that is bitwise identical on every rank (gather, then one fixed-order sum).

        For values that steer control flow (a convergence test, a choice among candidates).
        """
        local = np.ascontiguousarray(local, dtype=np.float64)
        gathered = self._gather_small("sum_identical", local, self._facts(local))
        if gathered is None:
            gathered = self._allgather_array(local)
        with np.errstate(over="ignore", invalid="ignore"):
            total = gathered.sum(axis=0)
        if not np.isfinite(total).all() and np.isfinite(gathered).any():
            _warn_overflow_sum(total, gathered)
        return total

    def fold_in_rank_order(self, step: Callable, initial: np.ndarray) -> np.ndarray:
        """A fold over the ranks in rank order: rank 0 applies ``step`` to ``initial``, rank 1
        to rank 0's result, and so on; every rank returns the last rank's result.

        For a fold that is not associative, such as floating-point sums in row order: the
        result is the one of a single process folding all ranks' rows in order, for any split of
        the rows. ``step(value)`` is called on this rank only (not collective) and must return
        an array of ``initial``'s shape and dtype. Costs one small broadcast per rank, and the
        ranks' steps run one after another (each waits for the rank before it).
        """
        value = np.array(initial, order="C")  # a copy: the broadcasts write into it
        for root in range(self.size):
            if self.rank == root:
                value = np.ascontiguousarray(step(value), dtype=value.dtype).reshape(value.shape)
            # the root's value travels in the status exchange where it fits (the others' rows
            # carry theirs, unread), else in a broadcast after it
            gathered = self._gather_small("fold_in_rank_order", value,
                                          self._facts(value, extra=(root,)))
            if gathered is not None:
                value = gathered[root].copy()
            elif self.size > 1:
                self.mpi.Bcast(value, root=root)
        return value

    def fetch_rows(self, X_local: np.ndarray, ids, start: int) -> np.ndarray:
        """The rows with global indices ``ids`` (same on every rank), from the ranks that own them.

        ``start`` is this rank's first global index. Returns ``(len(ids), n_features)``, in the
        order of ``ids``; one ``Allgatherv`` of the owned rows.
        """
        ids = np.asarray(ids, dtype=np.int64)
        owned = owned_ids(ids, start, X_local.shape[0])
        return self.share_rows(X_local[owned - start], owned, ids)

    def share_rows(self, rows: np.ndarray, owned, ids) -> np.ndarray:
        """The rows with global indices ``ids`` (same on every rank), each sent by its owner.

        For rows that live in another array type (a device array): the owner selects its few
        rows there and passes only them. ``owned`` are the global indices of the rows of ``ids``
        that this rank holds (:func:`owned_ids`), ``rows`` those rows, ``(len(owned),
        n_features)``, NumPy. Returns ``(len(ids), n_features)`` in the order of ``ids``, of
        ``rows``' dtype; one ``Allgatherv`` of the owned rows.
        """
        ids = np.asarray(ids, dtype=np.int64)
        owned = np.asarray(owned, dtype=np.int64)
        rows = np.asarray(rows)
        facts = self._facts(rows, ids, rows_free=True, extra=(_digest(ids.tobytes()),))
        width = int(np.prod(rows.shape[1:], dtype=np.int64))
        # Each rank's share: one row per entry of ids, a flag (1: this rank owns it) and the row;
        # where that fits the status row's payload, it travels in the exchange itself.
        share = np.zeros((ids.size, 1 + width))
        if owned.size:
            position = {int(g): i for i, g in enumerate(owned)}
            mine = np.array([position.get(int(g), -1) for g in ids], dtype=np.int64)
            hit = mine >= 0
            share[hit, 0] = 1.0
            share[hit, 1:] = rows.reshape(rows.shape[0], width)[mine[hit]]
        gathered = self._gather_small("fetch_rows", share, facts) if self.size > 1 else share[None]
        if gathered is not None:
            flags = gathered[:, :, 0]
            lost = ids[~flags.any(axis=0)]
            if lost.size:
                raise KeyError(int(lost[0]))
            owner = np.argmax(flags, axis=0)
            out = gathered[owner, np.arange(ids.size), 1:]
            return out.reshape((ids.size,) + rows.shape[1:]).astype(rows.dtype, copy=False)
        # Too large for the payload: the owned rows with their global indices, in one Allgatherv.
        packed = np.column_stack([owned.astype(np.float64),
                                  rows.reshape(rows.shape[0], width).astype(np.float64)])
        gathered = self._allgather_rows(packed)
        lookup = {int(g): i for i, g in enumerate(gathered[:, 0])}
        out = gathered[[lookup[int(g)] for g in ids], 1:]
        return out.reshape((ids.size,) + rows.shape[1:]).astype(rows.dtype, copy=False)

    def reduce_bcast_sum(self, local, *, overwrite: bool = False) -> np.ndarray:
        """Sum over ranks, bitwise identical on every rank: ``Reduce`` to rank 0, then ``Bcast``
        (on two ranks one ``Allreduce``, whose sums are then the same bits on both).

        Memory O(size of ``local``) (``sum_identical`` gathers every rank's copy): for large
        arrays such as histograms. The sum goes through MPI in pieces of about
        :data:`REDUCE_PIECE` elements (all of one size class, so MPI picks the same algorithm
        for each, and each element is summed as in one call): MPI's own buffers stay a piece,
        not the array. ``overwrite=True``: the sum is made in ``local``'s own buffer where it
        is a writeable, C-contiguous float64 array (``MPI.IN_PLACE``; no second array of its
        size), and ``local`` is returned; the caller must not need its values after. On one
        rank the sum is ``local`` itself (as float64), not a copy.
        """
        local = np.ascontiguousarray(local, dtype=np.float64)
        self._checked("reduce_bcast_sum", local)
        if self.size == 1:
            return local
        in_place = overwrite and local.flags.writeable and MPI is not None
        out = local if in_place else np.empty_like(local)
        send, recv = local.reshape(-1), out.reshape(-1)
        pieces = max(1, -(-send.size // REDUCE_PIECE))
        op = None if MPI is None else MPI.SUM
        for i in range(pieces):
            lo, hi = send.size * i // pieces, send.size * (i + 1) // pieces
            if self.size == 2 and MPI is not None:
                # Two ranks: whichever rank adds, a + b and b + a are the same bits, so one
                # Allreduce (about 2.5x faster than Reduce and Bcast) is identical everywhere.
                self.mpi.Allreduce(MPI.IN_PLACE if in_place else send[lo:hi], recv[lo:hi],
                                   op=op)
                continue
            if not in_place:
                self.mpi.Reduce(send[lo:hi], recv[lo:hi], op=op, root=0)
            elif self.rank == 0:
                self.mpi.Reduce(MPI.IN_PLACE, recv[lo:hi], op=op, root=0)
            else:
                self.mpi.Reduce(send[lo:hi], None, op=op, root=0)
            self.mpi.Bcast(recv[lo:hi], root=0)
        return out

    def exact_sum(self, value: int) -> int:
        """Sum of one integer per rank; integers add exactly, so every rank agrees."""
        local = np.array([value], dtype=np.int64)
        gathered = self._gather_small("exact_sum", local, ())
        return int((self._allgather_array(local) if gathered is None else gathered).sum())

    def row_counts(self, n_local: int) -> np.ndarray:
        """Every rank's ``n_local`` in rank order: int64 array of shape ``(size,)``, identical
        on every rank. Collective (one ``Allgather``). A caller that needs the offsets
        (:meth:`offsets`) and other facts of the shard sizes (the largest) takes them all from
        these counts, in one collective."""
        self._enter("row_counts")
        return self._allgather_array(np.array([n_local], dtype=np.int64))[:, 0]

    def offsets(self, n_local: int) -> tuple[int, int]:
        """``(first global index of this rank's rows, total rows)``; rank r's rows come after ranks 0..r-1."""
        local = np.array([n_local], dtype=np.int64)
        gathered = self._gather_small("offsets", local, ())
        counts = (self._allgather_array(local) if gathered is None else gathered)[:, 0]
        return int(counts[: self.rank].sum()), int(counts.sum())

    def sendrecv(self, send: np.ndarray, dest: int, source: int) -> np.ndarray:
        """Send ``send`` to ``dest`` and receive an array of the same shape and dtype from ``source``.

        Collective here (every rank calls it, with a status exchange first), though MPI's
        ``Sendrecv`` is point-to-point.
        """
        send = np.ascontiguousarray(send)
        self._checked("sendrecv", send)
        recv = np.empty_like(send)
        self.mpi.Sendrecv(send, dest=dest, recvbuf=recv, source=source)
        return recv

    def ring(self, blocks: tuple):
        """Yield every rank's ``blocks`` (a tuple of arrays with rows), this rank's first.

        A ring pass: at step ``t`` this rank holds the blocks of rank ``(rank - t) % size`` and
        forwards them to ``rank + 1`` (``Sendrecv``). Collective; memory: one visiting block.
        Yields ``(source_rank, arrays)``. Each step begins with a status exchange, so that an
        error on one rank while it works on a block reaches every rank.

        A block of another array type than NumPy (a device array) keeps its type: a received
        block arrives in the type and device of this rank's own block at the same position, and
        this rank's own blocks are yielded as given. Where the ranks agree that the MPI library
        takes device buffers of the blocks' kind (:meth:`device_buffers`), device blocks go to
        MPI as they are and are received into device memory; otherwise they are staged in host
        memory only to be sent (MPI's buffers).
        """
        from ._array_api import from_model, is_foreign_array, numpy_dtype, to_host

        own = tuple(blocks)
        foreign = [is_foreign_array(b) for b in own]
        if self.size == 1 and any(foreign):  # nothing to send: no host copy
            self._checked("ring", *(np.empty((0,) + tuple(b.shape[1:]), numpy_dtype(b.dtype))
                                    for b in own), rows_free=True)
            yield self.rank, own
            return
        kinds = [array_kind(b) if f else None for b, f in zip(own, foreign)]
        present = sorted(set().union(*self.allgather(sorted({k for k in kinds if k}))))
        verdicts = self.device_buffers() if present else {}
        if any(verdicts[k][0] for k in present):
            yield from self._ring_direct(own, kinds, verdicts)
            return
        # an empty rank takes the others' layout
        host = tuple(self._row_layout(to_host(b))[0] for b in own)
        self._checked("ring", *host, rows_free=True)
        counts = self._allgather_array(np.array([host[0].shape[0]], dtype=np.int64))[:, 0]
        current = tuple(np.ascontiguousarray(b) for b in host)

        def exchange(incoming, dest, source):
            nonlocal current
            received = []
            for b in current:
                buf = np.empty((incoming,) + b.shape[1:], dtype=b.dtype)
                self.mpi.Sendrecv(b, dest=dest, recvbuf=buf, source=source)
                received.append(buf)
            current = tuple(received)
            for k in kinds:
                if k is not None:
                    _note_transfer(k, "staged")
            return tuple(from_model(h, b) if f else h for b, f, h in zip(own, foreign, current))

        yield from self._ring_steps(tuple(b if f else h for b, f, h in zip(own, foreign, current)),
                                    counts, exchange)

    def ring_pieces(self, blocks: tuple, rows: int):
        """Yield every rank's ``blocks`` (a tuple of arrays with rows), the other ranks' in
        pieces of at most ``rows`` rows: ``(owner, start, arrays)``, ``arrays`` being rows
        ``start:start + len`` of rank ``owner``'s blocks.

        This rank's blocks come first, whole (``start`` 0, as :meth:`ring` yields them). Then,
        at step ``t`` of ``1..size - 1``, this rank sends its own blocks to ``rank + t`` and
        receives those of ``rank - t``, a piece at a time (``Sendrecv``), each piece preceded by
        a status exchange (so that an error on one rank while it works on a piece reaches every
        rank); the pieces of one owner come in order of ``start``. Every rank sends only its own
        rows, so no rank holds another's block whole: memory is one visiting piece, where
        :meth:`ring` holds one visiting block (two while forwarding). Collective; every rank
        passes the same ``rows``.

        Blocks of another array type than NumPy (device arrays) travel whole, as in
        :meth:`ring` (each owner one piece, ``start`` 0): ``rows`` bounds host memory, and a
        device block is not staged through the host piece by piece. The ranks choose the path
        together (one small ``allgather``): where any rank's blocks are of another type, every
        rank's travel whole, NumPy blocks arriving as NumPy, device blocks in their type (the
        two paths call different collectives, so a rank-local choice would make the ranks
        diverge on mixed array types).
        """
        from ._array_api import is_foreign_array

        rows = int(rows)
        if rows < 1:
            raise ValueError(f"rows={rows} should be >= 1")
        own = tuple(blocks)
        kinds = sorted({array_kind(b) for b in own if is_foreign_array(b)})
        if self.size == 1:
            whole = bool(kinds)
        else:
            whole = any(self.allgather(kinds))
        if whole:
            for owner, arrays in self.ring(own):
                yield owner, 0, arrays
            return
        if self.size == 1:
            yield self.rank, 0, tuple(np.ascontiguousarray(b) for b in own)
            return
        # an empty rank takes the others' layout
        host = tuple(self._row_layout(b)[0] for b in own)
        self._checked("ring pieces", *host, rows_free=True, extra=(rows,))
        counts = self._allgather_array(np.array([host[0].shape[0]], dtype=np.int64))[:, 0]
        yield self.rank, 0, host
        # the same number of pieces on every rank: every rank takes part in each status exchange
        n_pieces = -(-int(counts.max()) // rows)
        mine = int(host[0].shape[0])
        for step in range(1, self.size):
            dest, source = (self.rank + step) % self.size, (self.rank - step) % self.size
            incoming = int(counts[source])
            for piece in range(n_pieces):
                lo = piece * rows
                self._enter("ring piece")
                n_in = max(0, min(rows, incoming - lo))
                received = []
                for b in host:
                    buf = np.empty((n_in,) + b.shape[1:], dtype=b.dtype)
                    self.mpi.Sendrecv(b[min(lo, mine):min(lo + rows, mine)], dest=dest,
                                      recvbuf=buf, source=source)
                    received.append(buf)
                if n_in:
                    yield source, lo, tuple(received)
                del received, buf  # the piece goes when its consumer drops it

    def _ring_steps(self, first, row_counts, exchange):
        """The steps of a ring pass: yield ``(owner, visiting)``, this rank's blocks ``first``
        first; between steps a status exchange, then ``exchange(incoming_rows, dest, source)``
        sends the blocks held to ``rank + 1`` and returns those received from ``rank - 1``."""
        dest, source = (self.rank + 1) % self.size, (self.rank - 1) % self.size
        visiting = first
        for step in range(self.size):
            owner = (self.rank - step) % self.size
            yield owner, visiting
            if step == self.size - 1:
                break
            self._enter("ring step")
            visiting = exchange(int(row_counts[(owner - 1) % self.size]), dest, source)

    def _ring_direct(self, own, kinds, verdicts):
        """:meth:`ring` where the MPI library takes device buffers (``verdicts``): a device
        block it can use goes to ``Sendrecv`` as it is, and the block that comes in is received
        into device memory like this rank's own; other blocks are staged through host memory.
        Every rank sends bytes (``MPI.BYTE``), so host and device buffers meet in one call."""
        from ._array_api import from_model, numpy_dtype, to_host

        layouts = []
        for i, b in enumerate(own):  # the ranks with rows decide the layout; no host copy
            dtype, trailing, counts = self._agree_layout(
                int(b.shape[0]), numpy_dtype(b.dtype), tuple(int(d) for d in b.shape[1:]))
            layouts.append((dtype, trailing))
            if i == 0:
                row_counts = counts
        self._checked("ring", *(np.empty((0,) + t, d) for d, t in layouts), rows_free=True)
        direct = [k is not None and _usable_directly(b, k, verdicts[k]) for b, k in zip(own, kinds)]
        current = []
        for b, k, use, (dtype, trailing) in zip(own, kinds, direct, layouts):
            if int(b.shape[0]) == 0 and (numpy_dtype(b.dtype), tuple(b.shape[1:])) != \
                    (dtype, trailing):
                use, b = False, np.empty((0,) + trailing, dtype)  # an empty rank's stand-in
            current.append(_contiguous_device(b, k) if use else
                           np.ascontiguousarray(to_host(b), dtype=dtype))

        def exchange(incoming, dest, source):
            nonlocal current
            received = []
            for b, mine, k, use, (dtype, trailing) in zip(current, own, kinds, direct, layouts):
                shape = (incoming,) + trailing
                buf = _empty_device(mine, k, shape, dtype) if use else np.empty(shape, dtype)
                if k is not None:
                    _note_transfer(k, "direct" if use else "staged")
                self.mpi.Sendrecv(_byte_buffer(b), dest=dest, recvbuf=_byte_buffer(buf),
                                  source=source)
                received.append(buf)
            current = received
            return tuple(h if use or k is None else from_model(h, mine)
                         for h, mine, k, use in zip(current, own, kinds, direct))

        yield from self._ring_steps(own, row_counts, exchange)

    def device_buffers(self) -> dict:
        """Collective: whether the MPI library of every rank takes device buffers, by array kind.

        Each rank asks its MPI library (:func:`device_buffer_support`: the library's documented
        query, or ``SPMDLEARN_DEVICE_BUFFERS``); the kind is passed directly only where every
        rank says yes, so all ranks use one verdict. Asked once per communicator object (then
        kept); with ``SPMDLEARN_VERBOSE=1`` rank 0 logs the verdict.

        Returns
        -------
        verdicts : dict
            ``{kind: (passed directly: bool, reason: str)}`` for each kind of
            :data:`DEVICE_BUFFER_KINDS`, identical on every rank.

        Raises
        ------
        ValueError
            On every rank, where ``SPMDLEARN_DEVICE_BUFFERS`` has a value other than ``0``,
            ``1`` or ``auto`` on some rank (naming the ranks).
        """
        cached = getattr(self, "_device_verdicts", None)
        if cached is not None:
            return cached

        def local():
            return {kind: device_buffer_support(kind) for kind in DEVICE_BUFFER_KINDS}

        mine, every = self.agree(local, summarize=lambda verdicts: verdicts)
        verdicts = {}
        for kind in DEVICE_BUFFER_KINDS:
            answers = [v[kind] for v in every]
            if all(ok for ok, _ in answers):
                verdicts[kind] = (True, answers[0][1] if len({r for _, r in answers}) == 1
                                  else _group([r for _, r in answers]))
            else:
                refusing = [(r, reason) for r, (ok, reason) in enumerate(answers) if not ok]
                reasons = {reason for _, reason in refusing}
                why = refusing[0][1] if len(reasons) == 1 and len(refusing) == len(answers) \
                    else "; ".join(f"rank {r}: {reason}" for r, reason in refusing)
                verdicts[kind] = (False, why)
        self._device_verdicts = verdicts
        if _verbose() and self.rank == 0:
            for kind, (ok, why) in verdicts.items():
                print(f"[spmdlearn] MPI and {kind} device arrays: "
                      f"{'device buffers passed to MPI directly' if ok else 'staged through host memory'}"
                      f" ({why})", file=sys.stderr, flush=True)
        return verdicts

    # -- the reduction contract -------------------------------------------------------------
    def reduce_partials(self, partial, combine: Callable, *, error: BaseException | None = None,
                        template=None, last: bool = False):
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
        last : bool, default=False
            The collective method's last collective: what the method does after it is local and
            computed from the global partial alone (identical on every rank), so that it raises
            or warns alike on every rank. Where the partial travels in its status exchange, the
            method's exit exchange is then left out (see :meth:`_close`).
        """
        template = partial if partial is not None else template
        if template is None:
            # No shapes to offer: join the status exchange with the error instead.
            self._join_failure(error or TypeError("reduce_partials: neither a partial nor a "
                                                  "template was given"), "reduce_partials")
        flat = pack_partial(template)
        if self.size == 1:
            if error is not None:
                self._join_failure(error, "reduce_partials")
            # nothing to gather or combine: the partial, as a fold returns it
            parts = [unpack_partial(flat, template)]
            result = parts[0]
        else:
            gathered = self._gather_partials(flat, error, last)
            parts = unpack_partials(gathered, template)
            result = tree_fold(parts, combine)
        _warn_overflow(result, parts, getattr(combine, "__qualname__", "reduction"))
        return result

    def _gather_partials(self, flat: np.ndarray, error: BaseException | None,
                         last: bool = False) -> np.ndarray:
        """Collective: every rank's packed partial ``flat``, shape ``(size, flat.size)``; a rank
        whose local step raised passes ``error`` (and a template's ``flat``): then every rank
        raises.

        Where the partial fits the status row (a size reserved earlier in the method:
        :meth:`reserve`), the partials travel in the status exchange itself, beside each rank's
        verdict (one synchronisation); otherwise the exchange comes first, then an
        ``Allgather``, and the size is reserved so that the method's next reductions of this
        size travel in their exchange. ``last``: the method's last collective (see
        :meth:`_close`; only for a partial that travels in the exchange)."""
        facts = self._facts(flat)
        session = self._session()
        if session is None or flat.size > session.width:
            if session is not None and flat.size <= _MAX_WIDTH:
                session.request = max(session.request, flat.size)
            if error is not None:
                self._join_failure(error, "reduce_partials")
            self._enter("reduce_partials", *facts)
            return self._allgather_array(flat)
        self._last_check = ("reduce_partials",) + facts
        status = _FAILED if error is not None else 0
        if last and session.warnings:
            status |= _WARNED
        rows = self._exchange("reduce_partials", _digest(self._last_check), status=status,
                              session=session, payload=flat.view(np.int64))
        self._verdict(rows, "reduce_partials", compare_check=True, error=error)
        if last:
            self._close(rows, session)
        return np.ascontiguousarray(rows[:, _ROW:_ROW + flat.size]).view(np.float64)

    # -- collective errors ------------------------------------------------------------------
    def agree(self, check: Callable, *args, summarize: Callable | None = None,
              summary_ints: Callable | None = None, **kwargs):
        """Run ``check(*args, **kwargs)`` on every rank; raise on every rank if any rank failed.

        One status exchange carries each rank's verdict and, optionally, a small summary of its
        result, so that cross-rank checks need no second collective: ``summary_ints(result)``,
        a fixed number (at most 10, the same on every rank) of integers, travels in the
        exchange itself; ``summarize(result)``, any small picklable object, travels in a
        pickled ``allgather`` after it (a second collective). Only the error messages of
        failing ranks travel pickled.

        Returns
        -------
        result
            ``check``'s result on this rank.
        summaries : list or ndarray
            Every rank's summary, in rank order (only when ``summarize`` is given): a list of
            ``summarize``'s objects, or, with ``summary_ints``, an int64 array of shape
            ``(size, n_ints)``.

        Failing ranks' errors are reported together, in rank order; the exception type is that
        of the lowest failing rank when it is an input error (``ValueError``, ``TypeError``,
        ``NotImplementedError``, ...), else :class:`CollectiveError`.
        """
        error, result, summary = None, None, None
        try:
            result = check(*args, **kwargs)
            if summary_ints is not None:
                summary = np.asarray(summary_ints(result), dtype=np.int64).reshape(-1)
                if summary.size > _BASE_WIDTH:
                    raise ValueError(f"agree: summary_ints gave {summary.size} integers; at "
                                     f"most {_BASE_WIDTH} travel in a status exchange")
            elif summarize is not None:
                summary = summarize(result)
        except Exception as exc:  # noqa: BLE001 - every failure must reach every rank
            error = exc
        if error is not None and self.size > 1:
            self._join_failure(error, "agree")
        if summary_ints is not None:
            if self.size == 1:
                if error is not None:
                    self._raise_from([_describe(error)], error)
                return result, summary[None, :]
            self._last_check = ("agree", summary.size)
            rows = self._exchange("agree", _digest(self._last_check), payload=summary)
            self._verdict(rows, "agree", compare_check=True)
            return result, rows[:, _ROW:_ROW + summary.size].copy()
        self._enter("agree")
        if error is not None:  # one process
            self._raise_from([_describe(error)], error)
        if summarize is None:
            return result
        if self.size == 1:
            return result, [summary]
        return result, self.mpi.allgather(summary)

    def raise_collective(self, error: BaseException | None):
        """Collective: share every rank's error (or None) and raise the same exception everywhere."""
        if error is not None:
            self._join_failure(error, "raise_collective")
        self._enter("raise_collective")
        raise CollectiveError("raise_collective called while no rank failed")

    def _join_failure(self, error: BaseException, collective: str, session=None):
        """Join the next status exchange with ``error``: every rank then raises (never returns)."""
        if self.size == 1:
            self._raise_from([_describe(error)], error)
        rows = self._exchange(collective, status=_FAILED, session=session)
        self._raise_gathered(error, rows)

    def _raise_gathered(self, error: BaseException | None, rows=None):
        """After an exchange in which some rank failed: share the errors, raise on every rank."""
        described = self.mpi.allgather(None if error is None else _describe(error))
        self._raise_from(described, error)

    def _raise_from(self, described: list, error: BaseException | None):
        failures = [(rank, d) for rank, d in enumerate(described) if d is not None]
        if not failures:  # cannot happen when called after a failed agreement
            raise CollectiveError("raise_collective called while no rank failed")
        first_type = _resolve(failures[0][1])
        exc_type = first_type if issubclass(first_type, _INPUT_ERRORS) else CollectiveError
        ranks = [rank for rank, _ in failures]
        if error is not None and type(error) is exc_type and (
                self.size == 1 or (len(failures) == self.size
                                   and len({d for _, d in failures}) == 1)):
            # Every rank failed alike (an error computed from agreed values): the original
            # exception, traceback and all.
            raise _mark(error, self, ranks)
        if self.size == 1:
            message = failures[0][1][2]
        else:
            message = (f"failed on {len(failures)} of {self.size} ranks "
                       f"({', '.join(str(r) for r in ranks)}):\n"
                       + "\n".join(f"rank {rank}: {d[2]}" for rank, d in failures))
        try:
            exc = exc_type(message)
        except Exception:  # noqa: BLE001 - an exception class with an unusual signature
            exc = CollectiveError(message)
        raise _mark(exc, self, ranks) from error

    def abort(self, message: str):
        """Not collective: end the whole job from this rank, saying why (the last resort)."""
        print(f"spmdlearn: rank {self.rank}: aborting the job: {message}", file=sys.stderr,
              flush=True)
        _abort_after_output(self.mpi)
        raise CollectiveError(message)  # one process: Abort is a no-op there

    # -- communicators ----------------------------------------------------------------------
    def split(self, color: int, key: int = 0) -> "Comm":
        self._enter("split")
        return Comm(self.mpi.Split(color, key))


def _fields(partial, prefix=""):
    for name, value in zip(getattr(partial, "_fields", range(len(partial))), partial):
        if isinstance(value, tuple):
            yield from _fields(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", np.asarray(value, dtype=np.float64)


def _holds_no_rows(partial) -> bool:
    """Whether a partial counts zero rows (its row count field, ``n`` or ``n_rows``, at its
    top level or in a nested partial, is 0): its non-finite fields are then the identity's (a
    min/max of no values), not an overflow."""
    for name, value in _fields(partial):
        if name.rsplit(".", 1)[-1] in ("n", "n_rows") and value.ndim == 0:
            return float(value) == 0
    return False


def _warn_overflow(result, parts, reduction: str) -> None:
    """Warn (the same on every rank) when a reduction's global partial is not finite.

    Input is checked finite before any reduction, so a non-finite field means that values near
    the float64 limit overflowed it: on the ranks whose own partial is not finite there, or in
    the combination of finite per-rank partials. Identity values of empty shards (the
    infinities of a min/max) do not count: only fields not finite in the global result.
    """
    try:
        fields = list(_fields(result))
    except TypeError:  # not a NamedTuple of arrays
        return
    bad = [(name, value) for name, value in fields if not np.isfinite(value).all()]
    if not bad or _holds_no_rows(result):  # zero rows everywhere: the identity, as it is
        return
    per_rank = [dict(_fields(p)) for p in parts]
    names = ", ".join(name for name, _ in bad)
    ranks = sorted({r for r, p in enumerate(per_rank) for name, _ in bad
                    if not np.isfinite(p[name]).all() and not _holds_no_rows(parts[r])})
    where = (f"the partials of {_ranks(ranks)} overflow" if ranks else
             "the combination of the ranks' finite partials overflows")
    message = (f"overflow in the reduction {reduction} over {len(parts)} rank(s): {names} not "
               f"finite ({where}; the input has values near the float64 limit)")
    _note_overflow(message)
    warnings_module.warn(
        f"{message}; the results that depend on it are inf or nan, as scikit-learn's are on the "
        "same rows", RuntimeWarning, stacklevel=3)


def _warn_overflow_sum(total, gathered) -> None:
    ranks = [r for r in range(gathered.shape[0]) if not np.isfinite(gathered[r]).all()]
    where = (f"the values of {_ranks(ranks)} overflow" if ranks else
             "the sum of the ranks' finite values overflows")
    message = (f"overflow in a sum over {gathered.shape[0]} rank(s): {where} (the input has "
               "values near the float64 limit)")
    _note_overflow(message)
    warnings_module.warn(f"{message}; the results that depend on it are inf or nan",
                         RuntimeWarning, stacklevel=3)


def _mark(exc: BaseException, comm: Comm, ranks) -> BaseException:
    """Mark ``exc`` as raised on every rank of ``comm`` (failing ranks ``ranks``)."""
    try:
        exc.__spmdlearn_collective__ = (comm, list(ranks))
    except AttributeError:  # pragma: no cover - exceptions with __slots__
        pass
    return exc


def is_collective(exc: BaseException) -> bool:
    """Whether ``exc`` was raised on every rank by spmdlearn's agreement (not collective)."""
    return getattr(exc, "__spmdlearn_collective__", None) is not None


_pending: list = []  # requests of the watchdog's point-to-point answers, kept alive

#: ``[mpi communicator, digest, method, description]`` of exceptions raised after the last
#: collective of a method that left out its exit exchange; told in the next status exchange.
_late_failures: list = []


def _note_late_failure(mpi, where: str, exc: BaseException) -> None:
    described = _describe(exc)
    _late_failures.append([mpi, _digest(described), where, described])


def _pop_late_failure(mpi):
    """``(digest, method, description)`` of this communicator's earliest late failure, or None."""
    for i, entry in enumerate(_late_failures):
        if _same(entry[0], mpi):
            del _late_failures[i]
            return tuple(entry[1:])
    return None


class _SessionContext:
    """See :meth:`Comm.session`."""

    def __init__(self, comm: Comm, where: str, params, caller=None):
        self.comm, self.where, self.params, self.caller = comm, where, params, caller
        self.session = self.outer = None

    def __enter__(self):
        comm = self.comm
        stack = _sessions()
        self.outer = None
        if comm.size == 1:
            return None
        if stack and _same(stack[-1].comm.mpi, comm.mpi):
            self.outer = stack[-1]  # part of the outer method
            self.outer.depth += 1
            return None
        self.session = session = _Session(comm, self.where)
        stack.append(session)
        try:
            values = self.params() if self.params is not None else {}
        except BaseException:
            stack.pop()
            raise
        # The agreement on the method and its parameters rides on the method's first status
        # exchange (its first collective, or its exit): one exchange fewer per call.
        session.params_digest = _digest(sorted([(k, v[0]) for k, v in values.items()]))
        session.entry = (self, values)
        if not _threads_limited and _launcher_ranks_on_node() is not None:
            # else from the host ids of that exchange
            _apply_thread_limit(comm, None)
        self._old_show = warnings_module.showwarning
        warnings_module.showwarning = self._collect
        return session

    def _check_entry(self, rows, values, head):
        """In the method's first status exchange (``head``: :class:`_Head` of its ``rows``), on
        every rank alike: the ranks call the same method with the same parameters (unless a
        rank failed: that is raised instead)."""
        if not _threads_limited:
            _apply_thread_limit(self.comm, rows[:, _HOST])
        if head.status & _FAILED:
            return  # the caller raises every rank's error
        differ = head.differ
        if differ[_WHERE] or differ[_STEP]:
            self._raise_mismatched_calls()
        if differ[_PARAMS]:
            self._raise_mismatched_params(values)

    def _collect(self, message, category, filename, lineno, file=None, line=None):
        if self.caller is not None and filename == self.caller[2]:
            filename, lineno = self.caller[:2]
        self.session.warnings.append((category, str(message), filename, lineno))

    def _raise_mismatched_calls(self):
        comm = self.comm
        positions = comm.mpi.allgather(comm._position("method entry"))
        message = ("ranks call different collective methods: "
                   + _group([p[0].split(", collective #")[0] for p in positions])
                   + "; called from " + "; ".join(f"rank {r}: {p[1]}"
                                                   for r, p in enumerate(positions))
                   + ". Every rank must call the same estimator method in the same order.")
        raise _mark(CollectiveError(message), comm, range(comm.size))

    def _raise_mismatched_params(self, values):
        comm = self.comm
        gathered = comm.mpi.allgather({k: (_digest(v[0]), str(v[1])) for k, v in values.items()})
        names = sorted(set().union(*gathered))
        lines = []
        for name in names:
            seen = [g.get(name, (None, "<absent>")) for g in gathered]
            if len({d for d, _ in seen}) > 1:
                lines.append(f"{name} ({_group([text for _, text in seen])})")
        raise _mark(ValueError(
            f"{self.where}: parameters differ across ranks: " + "; ".join(lines)
            + ". Every rank must build the estimator with the same parameters and pass the "
            "same arguments to its methods."),
            comm, range(comm.size))

    def __exit__(self, exc_type, exc, tb):
        session = self.session
        if session is None:
            if self.outer is not None:
                self.outer.depth -= 1
            return False
        comm = self.comm
        warnings_module.showwarning = self._old_show
        try:
            if exc is not None and not isinstance(exc, Exception):
                return False  # KeyboardInterrupt, SystemExit: the excepthook ends the job
            if exc is not None and is_collective(exc):
                self._show([self._portable()])
                _with_overflow(exc, session)
                return False
            if session.closed_step == session.step:
                # The method's last collective agreed that every rank succeeded and none had
                # warned; what followed is local and alike on every rank (Comm._close): no exit
                # exchange. Warnings since then are alike everywhere: rank 0 shows them.
                if session.warnings:
                    self._show([self._portable()])
                if exc is not None:
                    _note_late_failure(comm.mpi, session.where, exc)
                    _with_overflow(exc, session)
                return False
            if exc is not None:
                comm._exchange("method exit", status=_FAILED, session=session)
                self._show([self._portable()])
                try:
                    comm._raise_gathered(exc)
                except Exception as gathered:
                    raise _with_overflow(gathered, session)
            rows = comm._exchange("method exit", status=self._warned(), session=session)
            head = _Head.of(comm, rows)
            if head.status & _FAILED:
                self._show([self._portable()])
                comm._raise_gathered(None)
            if head.differ[_WHERE] or head.differ[_STEP]:
                comm._raise_diverged("method exit")
            any_warned = bool(head.status & _WARNED)
            if any_warned or session.warnings:
                self._show(self._gather_warnings(any_warned))
            return False
        finally:
            _sessions().remove(session)

    def _warned(self) -> int:
        return _WARNED if self.session.warnings else 0

    def _portable(self):
        return [(c.__module__, c.__qualname__, m, f, n) for c, m, f, n in self.session.warnings]

    def _gather_warnings(self, any_rank: bool):
        if not any_rank:
            return [self._portable()]  # this rank's only, shown where they are recorded
        return self.comm.mpi.allgather(self._portable())

    def _show(self, per_rank: list):
        """Show warnings once: rank 0 shows each distinct one; other ranks only record theirs."""
        comm = self.comm
        if len(per_rank) == comm.size:
            if comm.rank == 0:
                order, ranks = [], {}
                for rank, items in enumerate(per_rank):
                    for item in items:
                        key = item[:3]
                        if key not in ranks:
                            order.append(item)
                            ranks[key] = []
                        if rank not in ranks[key]:
                            ranks[key].append(rank)
                shown = [(item, ranks[item[:3]]) for item in order]
            else:
                shown = [(item, None) for item in per_rank[comm.rank]]
        else:
            shown = [(item, None) for item in per_rank[0]]
        for (module, qualname, message, filename, lineno), on in shown:
            category = _resolve((module, qualname, ""))
            if not issubclass(category, Warning):
                category = UserWarning
            if on is not None and len(on) < comm.size:
                message = f"{message} [on {_ranks(on)} of {comm.size}]"
            if comm.rank != 0 and _prints_warnings():
                continue  # shown by rank 0
            record = warnings_module.WarningMessage(message, category, filename, lineno)
            warnings_module._showwarnmsg(record)


import warnings as warnings_module  # noqa: E402 - kept apart from the "warnings" lists above

_PRINTING_IMPL = warnings_module._showwarnmsg_impl


class relocated_warnings:
    """Context: show warnings located in ``wrapper_file`` at ``(file, line)`` instead (not collective).

    For one process, where a collective method runs without a session: a ``stacklevel``
    counted from the method would otherwise point at the wrapper.
    """

    def __init__(self, file, line, wrapper_file):
        self.file, self.line, self.wrapper_file = file, line, wrapper_file

    def __enter__(self):
        self.old = warnings_module.showwarning
        warnings_module.showwarning = self._show
        return self

    def _show(self, message, category, filename, lineno, file=None, line=None):
        if filename == self.wrapper_file:
            filename, lineno = self.file, self.line
        if self.old is warnings_module._showwarning_orig:
            warnings_module._showwarnmsg_impl(
                warnings_module.WarningMessage(message, category, filename, lineno, file, line))
        else:
            self.old(message, category, filename, lineno, file, line)

    def __exit__(self, *exc):
        warnings_module.showwarning = self.old
        return False


def _prints_warnings() -> bool:
    """Whether a warning shown now would be printed (not recorded by ``catch_warnings``/pytest)."""
    return (warnings_module.showwarning is warnings_module._showwarning_orig
            and warnings_module._showwarnmsg_impl is _PRINTING_IMPL)


def _host_id() -> int:
    global _HOST_ID
    if _HOST_ID is None:
        _HOST_ID = _digest(socket.gethostname()) & 0x7FFFFFFF
    return _HOST_ID


_HOST_ID = None


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


def _dtype_code(dtype) -> int:
    """``dtype.str`` (at most 8 ASCII characters) as one int64; 0 where it does not fit."""
    text = np.dtype(dtype).str.encode()
    return int.from_bytes(text, "little") if 0 < len(text) <= 8 else 0


def _dtype_from_code(code: int) -> str:
    """Inverse of :func:`_dtype_code`: the dtype's ``str``."""
    return code.to_bytes(8, "little").rstrip(b"\0").decode()


def _mpi_type(dtype):
    if MPI is None:
        return None
    return MPI._typedict[np.dtype(dtype).char]


_default = None
_default_lock = threading.Lock()


def _library_comm() -> Comm:
    """The library-owned duplicate of COMM_WORLD, made once, on first use (collective on the world).

    Made with the non-blocking ``Idup`` under the watchdog, so a rank that reaches it alone (a
    method called on some ranks only) is reported and the job ends, instead of hanging.
    """
    global _default
    with _default_lock:
        if _default is None:
            if MPI is None:
                _default = SelfComm()
            else:
                world = Comm(MPI.COMM_WORLD)
                if world.size == 1:
                    _default = Comm(MPI.COMM_WORLD.Dup())
                else:
                    dup, request = MPI.COMM_WORLD.Idup()
                    world._wait(request, "the library's duplicate of COMM_WORLD (first use)", None)
                    _default = Comm(dup)
        return _default


#: Launcher variables: (name of the world size, of this process's rank), by launcher.
_LAUNCHER_SIZES = (
    ("PMI_SIZE", "PMI_RANK"),                          # MPICH/Intel MPI hydra, PMI-1/2
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),  # Open MPI
    ("PMIX_SIZE", "PMIX_RANK"),                        # PMIx launchers
    ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"),    # MVAPICH2
    ("PALS_SIZE", "PALS_RANKID"),                      # Cray PALS
    ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"),          # srun (a job step)
)


def launcher_size() -> tuple[int, str] | None:
    """``(ranks, variable)`` that the launcher announces for this job, if any (not collective).

    A Slurm allocation without a job step (``SLURM_STEP_ID`` unset, as in a batch script
    outside ``srun``) announces nothing.
    """
    env = os.environ
    for size_name, rank_name in _LAUNCHER_SIZES:
        if size_name.startswith("SLURM") and "SLURM_STEP_ID" not in env:
            continue
        value = env.get(size_name)
        if value and rank_name in env:
            try:
                return int(value.split("(")[0].split(",")[0]), size_name
            except ValueError:
                continue
    return None


_launcher_checked = False


def check_launcher() -> None:
    """Raise if a launcher started several ranks that cannot talk to each other (not collective).

    Under ``mpiexec -n 4`` without mpi4py (or with an mpi4py built for another MPI library, so
    that each process sees a world of one rank), every rank would silently fit its own rows as a
    separate one-process job. Opt out with ``SPMDLEARN_IGNORE_LAUNCHER=1``.
    """
    global _launcher_checked
    if _launcher_checked or os.environ.get("SPMDLEARN_IGNORE_LAUNCHER", "") not in ("", "0"):
        return
    announced = launcher_size()
    size = 1 if MPI is None else MPI.COMM_WORLD.Get_size()
    if announced is not None and announced[0] > 1 and size == 1:
        n, name = announced
        reason = ("mpi4py is not installed, so every rank would run alone" if MPI is None else
                  f"mpi4py's MPI library ({mpi_library_version()}) sees a world of 1 rank: it is "
                  "not the MPI library of the launcher")
        raise RuntimeError(
            f"spmdlearn runs under an MPI launcher that started {n} ranks ({name}={n}), but "
            f"{reason}; the ranks would fit {n} separate models without a word. Install "
            "mpi4py built against the launcher's MPI (pip install \"spmdlearn[mpi]\" brings "
            "MPICH and its mpiexec), or set SPMDLEARN_IGNORE_LAUNCHER=1 to run each process "
            "on its own.")
    _launcher_checked = True


def get_comm(comm=None) -> Comm:
    """Resolve the communicator to use now (not collective, except the library's first
    duplicate of ``MPI.COMM_WORLD``, made once).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, Comm or None
        An explicit communicator; None means ``config_context``'s, else the library's duplicate
        of ``MPI.COMM_WORLD`` (a one-process stand-in without mpi4py).

    Raises
    ------
    RuntimeError
        Under a launcher that started several ranks that cannot communicate (see
        :func:`check_launcher`).
    """
    if _IN_RANK_WORKER:
        raise RuntimeError(
            "spmdlearn was called in a worker process that an MPI rank started (n_jobs of "
            "joblib/scikit-learn, or multiprocessing): its collectives can run only in the ranks "
            "themselves, one after another. Leave n_jobs=None: for model selection use "
            "spmdlearn.model_selection, whose parallelism is the MPI ranks")
    check_launcher()
    if comm is None:
        comm = get_config()["comm"]
    if comm is None:
        return _library_comm()
    if isinstance(comm, Comm):
        return comm
    if MPI is not None and isinstance(comm, MPI.Comm):
        return Comm(comm)
    raise TypeError(f"comm={comm!r} should be an mpi4py communicator or a spmdlearn.comm.Comm")


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "NUMBA_NUM_THREADS", "SPMDLEARN_NUM_THREADS")
#: Launcher variables giving the number of this job's ranks on this node.
_LOCAL_SIZES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "MV2_COMM_WORLD_LOCAL_SIZE",
                "PMIX_LOCAL_SIZE", "PALS_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE")
_threads_limited: set = set()


def _launcher_ranks_on_node() -> int | None:
    """Ranks of this job on this node as the launcher's variables say, or None."""
    for name in _LOCAL_SIZES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def ranks_on_node(hosts=None) -> int:
    """Ranks of this job on this node: from the launcher's variables, else from ``hosts`` (the
    host ids of the communicator's ranks, from a status exchange), else 1. Not collective."""
    launcher = _launcher_ranks_on_node()
    if launcher is not None:
        return launcher
    if hosts is not None:
        return max(1, int(np.count_nonzero(np.asarray(hosts) == _host_id())))
    return 1


@functools.lru_cache(maxsize=None)
def _oversubscribed() -> bool:
    """Whether the launcher placed more ranks on this node than it has cores. Not collective."""
    return ranks_on_node() > (os.cpu_count() or 1)


def _apply_thread_limit(comm: Comm, hosts) -> None:
    """Give each rank its share of the node's cores, once per process, unless the user chose.

    Ranks of one node share its cores; without a limit every rank's BLAS starts one thread per
    core and the node runs ranks x cores threads. Local: the ranks of the node come from the
    launcher's variables (on method entry), else from the host ids that the method's first
    status exchange carries on the communicator in use (no collective of its own).
    """
    if _threads_limited or MPI is None or comm.size == 1:
        return
    _threads_limited.add(True)
    if any(os.environ.get(name) for name in _THREAD_VARIABLES):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=max(1, (cores or 1) // ranks_on_node(hosts)))


# -- an uncaught exception on one rank ends the job --------------------------------------------
def _abort_on_error_enabled() -> bool:
    return os.environ.get("SPMDLEARN_ABORT_ON_ERROR", "1").strip().lower() not in ("0", "false",
                                                                                  "no", "off")


def _excepthook(exc_type, exc, tb):
    """Print the traceback once and abort the job (``python -m mpi4py``'s behaviour).

    For an error that spmdlearn raised on every rank (:func:`is_collective`), the lowest failing
    rank prints the full traceback and the others one line; then the ranks abort together.
    """
    world = MPI.COMM_WORLD
    marker = getattr(exc, "__spmdlearn_collective__", None)
    try:
        if marker is None:
            print(f"spmdlearn: rank {world.Get_rank()}: uncaught exception; aborting the job "
                  "(SPMDLEARN_ABORT_ON_ERROR=0 turns this off)", file=sys.stderr, flush=True)
            sys.__excepthook__(exc_type, exc, tb)
        else:
            comm, failing = marker
            printer = failing[0] if failing else 0
            if comm.rank == printer:
                sys.__excepthook__(exc_type, exc, tb)
            else:
                first = str(exc).splitlines()[0] if str(exc) else ""
                print(f"spmdlearn: rank {world.Get_rank()}: {exc_type.__name__}: {first} "
                      f"(traceback printed by rank {printer} of the communicator)",
                      file=sys.stderr, flush=True)
            sys.stderr.flush()
            # Let the printing rank finish before anyone aborts the job.
            try:
                request = comm.mpi.Ibarrier()
                end = time.monotonic() + 5.0
                while not request.Test() and time.monotonic() < end:
                    time.sleep(1e-3)
            except Exception:  # noqa: BLE001 - aborting anyway
                pass
        sys.stderr.flush()
    finally:
        _abort_after_output(world)


#: Seconds an aborting rank waits after its last words: MPI_Abort ends every process at once,
#: and the launcher may drop output still in its forwarding pipes.
_ABORT_GRACE = 0.5


def _abort_after_output(mpi_comm, code: int = 1) -> None:
    """End the job from this rank (``MPI_Abort`` on ``mpi_comm``) once what it printed is out."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream must not stop the abort
            pass
    time.sleep(_ABORT_GRACE)
    mpi_comm.Abort(code)


def _install_excepthook() -> None:
    if (MPI is None or not _abort_on_error_enabled() or sys.flags.interactive
            or hasattr(sys, "ps1") or sys.excepthook is not sys.__excepthook__):
        return
    if MPI.COMM_WORLD.Get_size() > 1:
        sys.excepthook = _excepthook


_install_excepthook()



# -- device buffers: passed to MPI directly where the library takes them ---------------------
#: Array kinds whose memory a device-aware MPI library may take directly: ``"sycl"`` (dpnp and
#: dpctl arrays, SYCL USM) and ``"cuda"`` (arrays exposing ``__cuda_array_interface__``).
DEVICE_BUFFER_KINDS = ("sycl", "cuda")
#: The user's word: ``0`` stages device arrays through host memory, ``1`` passes them to MPI
#: directly (the user vouches for the MPI library), ``auto`` (default) asks the library.
DEVICE_BUFFERS_VARIABLE = "SPMDLEARN_DEVICE_BUFFERS"

_transfers_lock = threading.Lock()
_transfers: dict = {}


def _verbose() -> bool:
    return os.environ.get("SPMDLEARN_VERBOSE", "") not in ("", "0")


def array_kind(x) -> str | None:
    """The device-buffer kind of array ``x`` (not collective): ``"sycl"`` for dpnp and dpctl
    arrays, ``"cuda"`` for an array exposing ``__cuda_array_interface__``, None otherwise (host
    memory, or memory no MPI library query covers)."""
    if x is None or isinstance(x, np.ndarray):
        return None
    if type(x).__module__.split(".")[0] in ("dpnp", "dpctl"):
        return "sycl"
    try:
        if hasattr(x, "__cuda_array_interface__"):
            return "cuda"
    except Exception:  # noqa: BLE001 - a CPU tensor's property may raise: not CUDA memory
        pass
    return None


def _mpi_library_paths() -> list:
    """Paths of the MPI shared libraries loaded in this process (Linux: ``/proc/self/maps``)."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and os.path.basename(fields[-1]).startswith("libmpi"):
                    if fields[-1] not in paths:
                        paths.append(fields[-1])
    except OSError:
        pass
    return paths


def _mpi_query(name: str):
    """The MPI library's ``int name(void)`` extension query (MPICH's and Open MPI's
    ``MPIX_Query_cuda_support``, MPICH's ``MPIX_Query_ze_support``), or None where the library
    has no such function (not collective; MPI must be initialized, as mpi4py does)."""
    if MPI is None:
        return None
    import ctypes

    handles = [None] + _mpi_library_paths()
    mode = getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_LAZY", 1)
    for path in handles:
        try:
            library = ctypes.CDLL(path, mode=mode)
            function = getattr(library, name)
        except (OSError, AttributeError):
            continue
        function.restype, function.argtypes = ctypes.c_int, []
        return int(function())
    return None


def decide_device_buffers(kind: str, library_version: str, environ, query) -> tuple[bool, str]:
    """Whether an MPI library takes device buffers of ``kind``, and why (not collective).

    The rules, in order:

    1. ``SPMDLEARN_DEVICE_BUFFERS`` in ``environ``: ``0`` (also ``off``, ``false``, ``no``)
       stages through host memory, ``1`` (``on``, ``true``, ``yes``) passes device buffers
       directly (the user vouches for the library), ``auto`` or unset asks the library.
    2. ``"sycl"``: Intel MPI (``Intel(R) MPI Library`` in its version string) takes SYCL/Level
       Zero USM when ``I_MPI_OFFLOAD`` is 1 or more (Intel MPI's documented switch of its GPU
       buffer support); another library, where ``query("MPIX_Query_ze_support")`` returns 1
       (MPICH built with Level Zero).
    3. ``"cuda"``: ``query("MPIX_Query_cuda_support")`` returns 1 (Open MPI and MPICH built
       with CUDA: their documented run-time query).
    4. Anything else: no.

    Parameters
    ----------
    kind : str
        One of :data:`DEVICE_BUFFER_KINDS`.
    library_version : str
        ``MPI.Get_library_version()``.
    environ : mapping
        The environment variables (``os.environ``).
    query : callable
        ``query(name)``: the library's ``int name(void)`` query, or None where it lacks it.

    Returns
    -------
    (passed directly, reason) : (bool, str)

    Raises
    ------
    ValueError
        ``SPMDLEARN_DEVICE_BUFFERS`` set to another value.
    """
    raw = environ.get(DEVICE_BUFFERS_VARIABLE, "")
    setting = raw.strip().lower()
    if setting in ("0", "off", "false", "no"):
        return False, f"{DEVICE_BUFFERS_VARIABLE}={raw}"
    if setting in ("1", "on", "true", "yes"):
        return True, f"{DEVICE_BUFFERS_VARIABLE}={raw}: the user vouches for the MPI library"
    if setting not in ("", "auto"):
        raise ValueError(f"{DEVICE_BUFFERS_VARIABLE}={raw!r} is not one of 0, 1 or auto")
    name = " ".join(library_version.strip().splitlines()[0].split()) if library_version \
        and library_version.strip() else "no MPI library"
    if kind == "sycl":
        if "Intel(R) MPI" in (library_version or ""):
            offload = environ.get("I_MPI_OFFLOAD", "").strip()
            try:
                level = int(offload) if offload else 0
            except ValueError:
                level = 0
            if level >= 1:
                return True, f"Intel MPI with I_MPI_OFFLOAD={offload}"
            return False, ("Intel MPI without I_MPI_OFFLOAD>=1 (set I_MPI_OFFLOAD=1 for its "
                           "GPU buffer support)")
        answer = query("MPIX_Query_ze_support")
        if answer:
            return True, f"{name}: MPIX_Query_ze_support() = {answer}"
        return False, (f"{name}: no Level Zero support" + (
            " (MPIX_Query_ze_support() = 0)" if answer is not None else
            " (neither Intel MPI with I_MPI_OFFLOAD nor MPIX_Query_ze_support)"))
    if kind == "cuda":
        answer = query("MPIX_Query_cuda_support")
        if answer:
            return True, f"{name}: MPIX_Query_cuda_support() = {answer}"
        return False, (f"{name}: not CUDA-aware" + (
            " (MPIX_Query_cuda_support() = 0)" if answer is not None else
            " (no MPIX_Query_cuda_support)"))
    return False, f"no query for {kind} device buffers"


def device_buffer_support(kind: str) -> tuple[bool, str]:
    """:func:`decide_device_buffers` for this process's MPI library and environment (not
    collective: :meth:`Comm.device_buffers` agrees on one verdict over the ranks)."""
    if MPI is None:
        if os.environ.get(DEVICE_BUFFERS_VARIABLE, "").strip().lower() in ("", "auto"):
            return False, "mpi4py not installed: one process, nothing to send"
        return decide_device_buffers(kind, "", os.environ, lambda name: None)
    return decide_device_buffers(kind, MPI.Get_library_version(), os.environ, _mpi_query)


def _usable_directly(a, kind: str, verdict: tuple) -> bool:
    """Whether the MPI library may take ``a``'s memory (not collective): the ranks' verdict for
    its kind, and for SYCL arrays memory the library can reach: the user's word, USM that the
    host can address (``host``, ``shared``), or a Level Zero device (what Intel MPI's and
    MPICH's GPU support handle; device USM of an OpenCL queue is not theirs)."""
    ok, why = verdict
    if not ok:
        return False
    if kind != "sycl" or why.startswith(DEVICE_BUFFERS_VARIABLE):
        return True
    if getattr(a, "usm_type", None) in ("host", "shared"):
        return True
    backend = getattr(getattr(getattr(a, "sycl_device", None), "backend", None), "name", "")
    return "level_zero" in str(backend)


def _contiguous_device(a, kind: str):
    """``a`` C-contiguous, on its device (a copy there only if it is not)."""
    if kind == "sycl":
        import dpnp

        return dpnp.ascontiguousarray(a)
    from ._array_api import get_namespace

    xp = get_namespace(a)
    return a if getattr(getattr(a, "flags", None), "c_contiguous", True) else xp.asarray(a, copy=True)


def _empty_device(like, kind: str, shape: tuple, dtype):
    """An uninitialised array of ``shape`` and ``dtype`` in ``like``'s type, on its device (for
    SYCL: its queue and USM type)."""
    if kind == "sycl":
        import dpnp

        out = dpnp.empty(shape, dtype=np.dtype(dtype).name, sycl_queue=like.sycl_queue,
                         usm_type=like.usm_type)
        return out if isinstance(like, dpnp.ndarray) else out.get_array()
    from ._array_api import empty_like_rows

    return empty_like_rows(like, shape, dtype)


def _synchronize(a) -> None:
    """Wait for the work queued on ``a``'s device, so that MPI reads its final values."""
    queue = getattr(a, "sycl_queue", None)
    if queue is not None:
        queue.wait()
        return
    module = type(a).__module__.split(".")[0]
    if module == "cupy":
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif module == "torch":
        import torch

        torch.cuda.synchronize(a.device)


def _byte_buffer(a):
    """``[buffer, MPI.BYTE]`` for a host or device array (C-contiguous): NumPy's memory, a
    SYCL USM pointer (mpi4py's DLPack import does not take dpctl's queue-typed streams), or
    the array itself for ``__cuda_array_interface__`` (mpi4py reads it)."""
    byte = MPI.BYTE if MPI is not None else None
    if isinstance(a, np.ndarray):
        return [a, byte]
    _synchronize(a)
    if getattr(a, "sycl_queue", None) is not None:
        nbytes = int(a.nbytes)
        if nbytes == 0:
            return [np.empty(0, np.uint8), byte]
        usm = a.get_array() if hasattr(a, "get_array") else a
        return [MPI.buffer.fromaddress(int(usm._pointer), nbytes), byte]
    return [a, byte]


def _note_transfer(kind: str, how: str) -> None:
    with _transfers_lock:
        _transfers[(kind, how)] = _transfers.get((kind, how), 0) + 1


def device_buffer_transfers() -> dict:
    """``{(kind, "direct" | "staged"): count}``: device blocks this process sent over MPI
    directly or through host memory (not collective)."""
    with _transfers_lock:
        return dict(_transfers)


def reset_device_buffer_transfers() -> None:
    """Forget the counted transfers (not collective)."""
    with _transfers_lock:
        _transfers.clear()


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

