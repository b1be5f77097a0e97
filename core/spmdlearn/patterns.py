"""Named collective patterns: the steps that are more than one reduction.

Each pattern is an object with a ``run(comm, ...)`` method (``run_stacked`` for the level
histograms, which reduce several node lists at once), written once against a small
communicator interface (``rank``, ``size``, ``allgather``, ``allgather_array``, ``offsets``,
``exact_sum``, ``sum_identical``, ``reduce_bcast_sum``, ``ring``) and its hot loop in kernel
hooks (one call per block). The same ``run`` executes over MPI (:class:`spmdlearn.comm.Comm`) and
in one process over simulated ranks (:func:`simulate_collective`, threads exchanging NumPy
arrays), which is how each pattern's law is tested: any split of the rows over any number of
ranks, empty ones included, gives the result of one rank holding all rows.

Patterns
--------
:data:`RING_TOPK`
    The ring top-k merge of the nearest-neighbour estimators.
:data:`LABEL_PROPAGATION`
    DBSCAN's propagation of the smallest core label to a fixed point.
:data:`COMPONENT_UNION`
    DBSCAN's clusters in one pass: local components, then the component pairs across ranks.
:data:`LEVEL_HISTOGRAMS`
    The per-level node histograms of histogram trees, summed over ranks.
:data:`GRADIENT_SUM`
    The logistic loss, gradient (and Hessian weights) summed over ranks.

This module imports neither mpi4py nor :mod:`spmdlearn.comm`.
"""

from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np

from ._backends import call_kernel, kernel_block_rows

__all__ = ["BLOCK_BYTES", "PIECE_BYTES", "row_block", "piece_rows", "SimulatedComm", "simulate_collective", "RingTopKMerge",
           "RING_TOPK", "LabelPropagation", "LABEL_PROPAGATION", "ComponentUnion", "COMPONENT_UNION", "LevelHistograms",
           "LEVEL_HISTOGRAMS", "GradientSum", "GRADIENT_SUM", "lookup_payload",
           "segment_min", "check_distance_range"]

#: Memory budget of one kernel block (the distances of a block of queries against a block of
#: candidates, or of rows against centers): blocks are sized so that one such matrix of float64
#: stays within it, whatever the number of rows.
BLOCK_BYTES = 16 << 20


#: Memory budget of one visiting piece of a ring pass (:meth:`spmdlearn.comm.Comm.ring_pieces`):
#: the other ranks' rows arrive in pieces of about this many bytes, so that a rank holds its own
#: rows and one piece of another's, never another rank's block whole (a 200,000 x 16 float64
#: shard is 26 MB; its pieces are 2 MiB). A consumer still holds the previous piece while the
#: next one arrives, so two pieces is the most a rank holds.
PIECE_BYTES = 2 << 20


def piece_rows(*blocks, budget: int | None = None) -> int:
    """Rows per ring piece such that one row of every block of ``blocks`` together fits
    ``budget`` bytes per piece (:data:`PIECE_BYTES` if None); at least 1."""
    from ._array_api import numpy_dtype

    row_bytes = sum(numpy_dtype(b.dtype).itemsize * int(np.prod(b.shape[1:], dtype=np.int64))
                    for b in blocks)
    return row_block(row_bytes, itemsize=1, budget=PIECE_BYTES if budget is None else budget)


def row_block(n_columns: int, itemsize: int = 8, budget: int | None = None) -> int:
    """Rows per block such that a ``(rows, n_columns)`` matrix of ``itemsize`` fits ``budget``.

    Parameters
    ----------
    n_columns : int
        Columns of the per-block matrix a kernel builds (candidates, centers, ...).
    itemsize : int, default=8
    budget : int, default=None
        Bytes; :data:`BLOCK_BYTES` if None.

    Returns
    -------
    rows : int
        At least 1.
    """
    budget = BLOCK_BYTES if budget is None else budget
    return max(1, int(budget // (itemsize * max(1, n_columns))))


def _slices(n: int, size: int):
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


# -- the simulator ---------------------------------------------------------------------------

class _Exchange:
    def __init__(self, size: int, timeout: float):
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.slots = [None] * size


class SimulatedComm:
    """One simulated rank of an in-process communicator (threads exchanging NumPy arrays).

    Implements the part of :class:`spmdlearn.comm.Comm` the patterns use, with the same
    semantics (rank order, bitwise-identical sums on every rank). Made by
    :func:`simulate_collective`; never communicates outside the process.
    """

    def __init__(self, rank: int, size: int, exchange: _Exchange):
        self.rank, self.size, self._ex = rank, size, exchange

    def allgather(self, obj) -> list:
        ex = self._ex
        ex.slots[self.rank] = obj
        ex.barrier.wait()
        out = list(ex.slots)
        ex.barrier.wait()
        return out

    def allgather_array(self, local) -> np.ndarray:
        return np.stack([np.array(a) for a in self.allgather(np.array(local, copy=True))])

    def allgather_rows(self, local) -> np.ndarray:
        return np.concatenate([np.array(a) for a in self.allgather(np.array(local, copy=True))])

    def offsets(self, n_local: int) -> tuple[int, int]:
        counts = self.allgather_array(np.array([n_local], np.int64))[:, 0]
        return int(counts[: self.rank].sum()), int(counts.sum())

    def exact_sum(self, value: int) -> int:
        return int(self.allgather_array(np.array([value], np.int64)).sum())

    def sum_identical(self, local) -> np.ndarray:
        return self.allgather_array(np.asarray(local, np.float64)).sum(axis=0)

    def reduce_bcast_sum(self, local, *, overwrite: bool = False) -> np.ndarray:
        return self.allgather_array(np.asarray(local, np.float64)).sum(axis=0)

    def ring(self, blocks: tuple):
        """Every rank's ``blocks``, this rank's first, then ranks ``rank - 1``, ``rank - 2``, ..."""
        from ._array_api import from_model, is_foreign_array, to_host

        # As over MPI: blocks travel as host copies and arrive in the type and device of this
        # rank's own block at the same position; this rank's own blocks are yielded as given.
        own = tuple(blocks)
        everyone = self.allgather(tuple(np.array(to_host(b), copy=True) for b in own))
        for step in range(self.size):
            owner = (self.rank - step) % self.size
            yield owner, tuple((b if step == 0 else from_model(h, b)) if is_foreign_array(b)
                               else h for b, h in zip(own, everyone[owner]))

    def ring_pieces(self, blocks: tuple, rows: int):
        """:meth:`spmdlearn.comm.Comm.ring_pieces`: this rank's blocks whole, then the other
        ranks' (``rank - 1``, ``rank - 2``, ...) in pieces of at most ``rows`` rows, as
        ``(owner, start, arrays)``; device blocks whole, every rank's blocks whole where any
        rank's are device blocks (the ranks choose together, as over MPI)."""
        from ._array_api import is_foreign_array

        rows = int(rows)
        if rows < 1:
            raise ValueError(f"rows={rows} should be >= 1")
        foreign = any(self.allgather(any(is_foreign_array(b) for b in blocks)))
        for step, (owner, arrays) in enumerate(self.ring(blocks)):
            n = int(arrays[0].shape[0])
            if step == 0 or foreign:
                yield owner, 0, arrays
                continue
            for lo in range(0, n, rows):
                yield owner, lo, tuple(a[lo:lo + rows] for a in arrays)


def simulate_collective(fn: Callable, shards: Sequence[Sequence], timeout: float = 120.0) -> list:
    """Run ``fn(comm, *shard)`` on simulated ranks, one per shard, and return their results.

    Every simulated rank runs in its own thread with a :class:`SimulatedComm`; collectives
    meet at barriers, so ``fn`` runs exactly as under ``mpiexec -n len(shards)``. An exception
    on any rank is raised here (after the others are released).

    Parameters
    ----------
    fn : callable
        ``fn(comm, *shard)``: the collective code (a pattern's ``run``).
    shards : sequence of tuples
        One tuple of arguments per simulated rank; empty shards are allowed.
    timeout : float, default=120
        Seconds any rank may wait at a collective.

    Returns
    -------
    results : list
        ``fn``'s result on each simulated rank, in rank order.
    """
    size = len(shards)
    ex = _Exchange(size, timeout)
    results: list = [None] * size
    errors: list = [None] * size

    def body(rank):
        try:
            results[rank] = fn(SimulatedComm(rank, size, ex), *shards[rank])
        except BaseException as exc:  # noqa: BLE001 - reported below, after every rank stops
            errors[rank] = exc
            ex.barrier.abort()

    threads = [threading.Thread(target=body, args=(r,), daemon=True) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first = next((e for e in errors if e is not None and
                  not isinstance(e, threading.BrokenBarrierError)), None)
    first = first or next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return results


# -- distances that leave the floating-point range --------------------------------------------

def _safe_norm(v, power):
    """The ``power``-norm of a float64 vector without overflow (scaled by its largest entry)."""
    top = float(np.max(v)) if v.size else 0.0
    if top == 0.0 or not np.isfinite(top):
        return top
    return top * float(np.sum((v / top) ** power)) ** (1.0 / power)


def check_distance_range(comm, rows, *, metric="euclidean", p=None, radius=None):
    """Collective: raise the same ValueError on every rank when the distances between ``rows``
    can overflow the floating-point type they are computed in, so that the result cannot be
    decided.

    Distances are computed from coordinate differences (:func:`spmdlearn.reference.
    block_distances`); for the euclidean and minkowski (``p > 1``) metrics the sum of the
    ``p``-th powers overflows to ``inf`` for rows ``T = max ** (1 / p)`` apart and more
    (``max`` the largest finite value of the computation's dtype: about 1.3e154 for euclidean
    in float64). Such a pair is then never within ``radius``, which is right when
    ``radius < T`` and may be wrong otherwise. For the other metrics (manhattan, chebyshev,
    ``p <= 1``) an overflowed distance exceeds ``max``, hence every finite radius: never
    wrong. The cosine distance divides by the rows' norms, which overflow (``nan``) for rows of
    norm ``sqrt(max)`` and more, whatever the radius or ``k``. scikit-learn gives no defined
    answer there either (its brute force loses the distances to cancellation, its trees square
    the radius to ``inf`` and call every pair a neighbour), so the search raises instead.

    Parameters
    ----------
    comm : communicator
    rows : sequence of array of shape (n_rows, n_features)
        This rank's rows of every side of the search (queries, training rows); any of them
        may be empty. Any array type: only per-feature extremes or row norms come to the host.
    metric, p : as :func:`spmdlearn.reference.radius_neighbors_csr`.
    radius : float, default=None
        The search radius; None (a k-nearest-neighbour search, whose overflowed candidates
        rank last, rightly) checks only the cosine metric.

    Raises
    ------
    ValueError
        On every rank, naming the metric, the limit and the rows' extent (over all ranks).

    One ``allgather`` of ``2 * n_features + 2`` numbers per call; none when the metric and
    radius cannot overflow in any floating type a rank may compute in. Whether to gather depends
    only on the metric, ``p`` and ``radius``, which the ranks agree on (the estimator's
    parameters and its methods' arguments: :func:`spmdlearn._base.collective_method`), never on
    this rank's rows or dtype (a rank on a device without float64 computes in float32): every
    rank takes the same branch, and each rank's limit travels in the gather, so that the verdict
    is the same on every rank and names the ranks whose distances overflow.
    """
    from ._array_api import accumulation_dtype, array_namespace, numpy_dtype, to_host
    from .reference._neighbors import scipy_metric

    name, kwargs = scipy_metric(metric, p)
    power = {"euclidean": 2.0, "minkowski": kwargs.get("p")}.get(name)
    if name != "cosine" and (radius is None or power is None or power <= 1):
        return

    def safe_limit(dtype):
        # the largest distance (or norm) that cannot overflow, less a margin for the rounding
        # of the sums (relative 1e-6 is far above it for any number of features)
        limit = float(np.finfo(dtype).max)
        return (limit ** 0.5 if name == "cosine" else limit ** (1.0 / power)) * (1 - 1e-6)

    # below the smallest limit (float32's), an overflowed pair is farther than the radius on
    # every rank: rightly not a neighbour; an infinite radius holds every pair, an infinite
    # distance too
    if name != "cosine" and (float(radius) < safe_limit(np.float32) or float(radius) == np.inf):
        return
    rows = [r for r in rows if r is not None]
    dtype = np.dtype(numpy_dtype(accumulation_dtype(rows[0])))
    d = rows[0].shape[1]
    lo, hi, top = np.full(d, np.inf), np.full(d, -np.inf), 0.0
    for r in rows:
        if r.shape[0] == 0:
            continue
        xp = array_namespace(r)
        if name == "cosine":
            a = xp.abs(xp.astype(r, xp.float64 if dtype == np.float64 else xp.float32))
            scale = xp.max(a, axis=1)
            scaled = a / xp.where(scale > 0, scale, xp.ones_like(scale))[:, None]
            top = max(top, float(xp.max(scale * xp.sqrt(xp.sum(scaled * scaled, axis=1)))))
        else:
            lo = np.minimum(lo, to_host(xp.min(r, axis=0)).astype(np.float64))
            hi = np.maximum(hi, to_host(xp.max(r, axis=0)).astype(np.float64))
    gathered = comm.allgather_array(np.concatenate([lo, hi, [top, safe_limit(dtype)]]))
    lo, hi, top = gathered[:, :d].min(axis=0), gathered[:, d:2 * d].max(axis=0), \
        float(gathered[:, -2].max())
    safes = gathered[:, -1]
    ranks = f"over {comm.size} rank{'s' if comm.size > 1 else ''}"

    def overflow(bad):  # "overflow float64" and, if not all, the ranks whose rows do
        kind = "float64" if float(safes[bad].min()) >= safe_limit(np.float64) else "float32"
        if comm.size == 1 or bad.all():
            return f"overflow {kind}"
        names = ", ".join(str(r) for r in np.flatnonzero(bad))
        return f"overflow {kind} on rank{'s' if bad.sum() > 1 else ''} {names}"

    if name == "cosine":
        bad = top >= safes
        if bad.any():
            safe = float(safes[bad].min())
            raise ValueError(
                f"the cosine distances of these rows {overflow(bad)}: a row's norm reaches "
                f"{top:.3g} ({ranks}), and norms of {safe:.3g} and more overflow; "
                "scale the data (the cosine distance does not depend on each row's scale)")
        return
    with np.errstate(over="ignore", invalid="ignore"):
        extent = _safe_norm(np.where(hi >= lo, hi - lo, 0.0), power)
    bad = (extent >= safes) & (float(radius) >= safes)
    if bad.any():
        safe = float(safes[bad].min())
        raise ValueError(
            f"the {metric}{f' (p={power:g})' if metric == 'minkowski' else ''} distances "
            f"between these rows {overflow(bad)}: rows {safe:.3g} apart and more have an "
            f"infinite distance, and the rows span {extent:.3g} ({ranks}); with "
            f"radius={radius!r} the pairs within it cannot be told apart; scale the data or use "
            "a radius below the limit")


# -- ring top-k merge -------------------------------------------------------------------------

class RingTopKMerge:
    """The k nearest training rows, over all ranks, of each of this rank's queries.

    Collective pattern: every rank's training block (rows and global indices) visits every rank
    once (a ring pass, in pieces of :data:`PIECE_BYTES`: :meth:`spmdlearn.comm.Comm.ring_pieces`).
    Each rank keeps, for each of its queries, the ``k`` best candidates so far and merges each
    visiting piece into them with the ``knn_merge`` kernel, one call per (query block, candidate
    block) sized by :data:`BLOCK_BYTES`.

    Law: the merge keeps the ``k`` smallest ``(distance, global index)`` pairs of the union of
    the candidates, which is associative and commutative; so the result is the same for any
    split of the training rows and queries over any number of ranks (empty ones included), and
    equals one rank's search over all rows. Memory per rank: its rows, one visiting piece, the
    running best ``(n_queries, k)`` and one kernel block.
    """

    name = "ring_topk_merge"
    #: candidate rows per kernel call (query rows: from the block budget)
    candidate_block = 8192

    def local(self, Q, q_index, Y, y_index, best_d, best_i, *, metric, p, backend=None):
        """Merge one visiting block into the running best, block by block (no communication)."""
        k = best_d.shape[1]
        q_rows, c_rows = kernel_block_rows("knn_merge", backend, Q,
                                           (row_block(self.candidate_block + k),
                                            self.candidate_block))
        for bs in _slices(Y.shape[0], c_rows):
            for qs in _slices(Q.shape[0], q_rows):
                best_d[qs, ...], best_i[qs, ...] = call_kernel(
                    "knn_merge", backend, X=Q[qs, ...], Y=Y[bs, ...], y_index=y_index[bs],
                    best_distances=best_d[qs, ...], best_indices=best_i[qs, ...], metric=metric,
                    p=p,
                    x_index=None if q_index is None else q_index[qs])
        return best_d, best_i

    def run(self, comm, Q, X, k, *, exclude_self=False, metric="euclidean", p=None,
            backend=None):
        """Collective: ``(distances, global indices)``, each ``(n_queries, k)``.

        Parameters
        ----------
        comm : communicator
        Q : array of shape (n_queries, n_features)
            This rank's queries; with ``exclude_self`` they must be this rank's rows ``X``. A
            device array stays on its device (the results are of its type).
        X : array of shape (n_rows, n_features)
            This rank's training rows (of the queries' type: a device array travels the ring
            through host buffers and arrives on the receiver's device).
        k : int
            At most the rows of all ranks (minus one with ``exclude_self``).
        exclude_self : bool, default=False
            Each query is a training row and is not its own neighbour.
        metric, p : as :func:`spmdlearn.reference.knn_merge`.
        backend : str, default=None

        Raises
        ------
        ValueError
            On every rank, when a query has fewer than ``k`` candidates at a finite distance:
            finite rows whose distances overflow float64 (the euclidean distance of rows about
            1e154 apart and more). No neighbour can then be named. With the cosine metric,
            when a row's norm overflows (:func:`check_distance_range`).
        """
        from ._array_api import array_namespace, empty_like_rows, from_model, has_float64

        # cosine distances of rows whose norms overflow are NaN: such candidates would be left
        # out silently (the other metrics' overflowed candidates are rightly the farthest)
        check_distance_range(comm, (Q, X), metric=metric, p=p)
        start, _ = comm.offsets(X.shape[0])
        gidx = from_model(np.arange(start, start + X.shape[0], dtype=np.int64), X)
        # The running best lives with the queries (in their array type, on their device), as
        # the backend's knn_merge returns it there: float64, or float32 on a device without it.
        best_d = empty_like_rows(Q, (Q.shape[0], k),
                                 np.float64 if has_float64(Q) else np.float32)
        best_i = empty_like_rows(Q, (Q.shape[0], k), np.int64)
        best_d[...] = np.inf
        best_i[...] = -1
        q_index = gidx if exclude_self else None
        # the other ranks' rows visit in pieces (memory: one piece, not a rank's block)
        for _, _, (Y, G) in comm.ring_pieces((X, gidx), piece_rows(X, gidx)):
            best_d, best_i = self.local(Q, q_index, Y, G, best_d, best_i, metric=metric, p=p,
                                        backend=backend)
        xp = array_namespace(best_i)
        unnamed = comm.exact_sum(int(xp.sum(xp.astype(xp.any(best_i < 0, axis=1),
                                                       xp.int64))))
        if unnamed:
            raise ValueError(
                f"{unnamed} of the {comm.exact_sum(int(best_i.shape[0]))} queries' {k} nearest "
                "neighbours have no finite distance (summed over "
                f"{comm.size} rank{'s' if comm.size > 1 else ''}): the {metric} distances "
                "between these rows overflow float64 (values near the float64 limit); scale "
                "the data")
        return best_d, best_i


#: Indices per slice of :func:`lookup_payload` (its temporaries are of one slice).
_LOOKUP_SLICE = 1 << 15


def lookup_payload(comm, indices, payload):
    """Collective: ``payload`` rows of the training rows named by global ``indices``.

    Every rank's payload (labels, targets: ``(n_rows, m)``) visits every rank once (a ring pass);
    each rank picks, by position in the owner's rows, the values its ``indices`` name. O(indices)
    work per visiting piece (:data:`PIECE_BYTES`); memory the result, one visiting piece and
    temporaries of a slice of the indices. Runs in the namespace of ``indices`` (a
    device array stays on its device; the payload travels through host buffers).

    Returns
    -------
    values : array of shape indices.shape + (m,)
        Of ``indices``' array type, ``payload``'s dtype.
    """
    from ._array_api import array_namespace, empty_like_rows, in_namespace_of, numpy_dtype

    xp = array_namespace(indices)
    payload = in_namespace_of(payload, indices, "lookup_payload")
    counts = comm.allgather_array(np.array([payload.shape[0]], np.int64))[:, 0]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    m = payload.shape[1]
    flat = xp.reshape(indices, (-1,))
    out = empty_like_rows(indices, (flat.shape[0], m), numpy_dtype(payload.dtype))
    out[...] = 0
    for owner, start, (P,) in comm.ring_pieces((payload,), piece_rows(payload)):
        lo, n_owner = int(starts[owner]) + start, int(P.shape[0])
        if n_owner == 0 or flat.shape[0] == 0:
            continue
        # the indices a slice at a time: the temporaries (offsets, mask, picked values) are of
        # one slice, not of all the queries' k neighbours
        for sl in _slices(flat.shape[0], _LOOKUP_SLICE):
            local = flat[sl] - lo
            mine = (local >= 0) & (local < n_owner)
            picked = xp.take(P, xp.clip(local, 0, n_owner - 1), axis=0)
            out[sl, ...] = xp.where(mine[:, None], picked, out[sl, ...])
    return xp.reshape(out, tuple(indices.shape) + (m,))


RING_TOPK = RingTopKMerge()


# -- label propagation to a fixed point ------------------------------------------------------

class LabelPropagation:
    """DBSCAN's clusters: the smallest global index of each cluster's core points, everywhere.

    Collective pattern. Each rank starts with its core rows grouped into local components (rows
    linked within ``eps`` on this rank), each labelled with the smallest global index of its
    rows. Each round, every rank's core rows and labels visit every rank (a ring pass); the
    ``radius_min_label`` kernel gives each row of this rank the smallest label among the core
    rows within ``eps``, and each local component takes the smallest label any of its rows saw.
    Rounds repeat until no label changes on any rank (an exact integer agreement).

    Law: at the fixed point every core row holds the smallest global index of its cluster (the
    connected component of the core rows' ``eps``-graph), whatever the split of the rows over
    ranks; and each row holds the smallest cluster label among its core neighbours (``best``),
    which numbers border points. Rounds are bounded by the rank crossings of a cluster's
    longest path.
    """

    name = "label_propagation"
    #: candidate rows per kernel call
    candidate_block = 4096

    def local(self, X, Y, labels, current, *, eps, metric, p, backend=None):
        """``current`` lowered by the labels of the visiting core rows within ``eps``."""
        for bs in _slices(Y.shape[0], self.candidate_block):
            for rs in _slices(X.shape[0], row_block(self.candidate_block)):
                current[rs] = call_kernel("radius_min_label", backend, X=X[rs, ...], Y=Y[bs, ...],
                                          labels=labels[bs], current=current[rs], eps=eps,
                                          metric=metric, p=p)
        return current

    def run(self, comm, X, core, component, comp_label, *, eps, metric="euclidean", p=None,
            backend=None, unlabelled=None):
        """Collective: ``(comp_label, best)`` at the fixed point.

        Parameters
        ----------
        comm : communicator
        X : array of shape (n_rows, n_features)
            This rank's rows. Every array argument is of ``X``'s type and on its device; the
            rounds run there (rows and labels visit the other ranks through host buffers).
        core : array of shape (n_rows,), bool
        component : array of shape (n_core,), int
            Local component of each core row (in row order).
        comp_label : array of shape (n_components,), int64
            Starting label of each local component (its smallest global index).
        eps, metric, p : as :func:`spmdlearn.reference.radius_min_label`.
        unlabelled : int, default=None
            The label of "no core neighbour" (above every label); the total rows if None.

        Returns
        -------
        comp_label : array of shape (n_components,), int64
        best : array of shape (n_rows,), int64
            The smallest final label among each row's core neighbours (``unlabelled`` if none).
        """
        from ._array_api import array_namespace, device

        if unlabelled is None:
            unlabelled = comm.offsets(X.shape[0])[1]
        xp = array_namespace(X)
        big = np.int64(unlabelled)
        n = X.shape[0]
        comp_label = xp.astype(comp_label, xp.int64, copy=True)
        full_big = xp.full((n,), int(big), dtype=xp.int64, device=device(X))
        core_idx = xp.nonzero(core)[0]
        # each row's local component (core rows; any value for the others, masked below)
        row_comp = xp.take(component, xp.clip(xp.cumulative_sum(xp.astype(core, xp.int64)) - 1,
                                              0, None), axis=0) if component.shape[0] else None
        while True:
            labels_all = full_big if row_comp is None else xp.where(
                core, xp.take(comp_label, row_comp, axis=0), full_big)
            best = xp.full((n,), int(big), dtype=xp.int64, device=device(X))
            for _, (Y, coreY, labY) in comm.ring((X, core, labels_all)):
                if bool(xp.any(coreY)):
                    best = self.local(X, Y[coreY], labY[coreY], best, eps=eps, metric=metric,
                                      p=p, backend=backend)
            new_label = segment_min(component, xp.take(best, core_idx, axis=0), comp_label)
            changed = comm.exact_sum(int(xp.sum(xp.astype(new_label != comp_label, xp.int64))))
            comp_label = new_label
            if changed == 0:
                return comp_label, best


class ComponentUnion:
    """DBSCAN's clusters in a fixed number of passes: the smallest global index of
    each cluster's core points, and of each row's core neighbours' clusters.

    Collective pattern, four steps:

    1. *Local components*: the ``radius_label_union`` kernel joins this rank's core rows along
       their pairs within ``eps`` (block pair by block pair); each core row takes the smallest
       global index of its local component.
    2. *Component pairs across ranks* (a ring pass of the core rows and their labels): each
       pair of ranks is compared once, split evenly between the two (the lower rank compares
       the first half of its core rows with all of the higher rank's; the higher rank compares
       all of its core rows with the second half of the lower rank's). The kernel returns the
       classes of labels it joined: at most one pair per label, whatever the number of row
       pairs.
    3. *Global merge*: every rank's pairs are gathered (``allgather_rows``) and every rank
       computes the same connected components of the label graph (SciPy), so each core row
       ends with the smallest global index of its cluster. Where all ranks' pairs exceed
       :attr:`max_gathered_pairs` (clusters that cross ranks through many small local
       components), the local components go to :class:`LabelPropagation` instead, whose
       memory does not depend on the pairs.
    4. *Border rows* (a ring pass of the core rows and their final labels): every non-core row
       takes the smallest label among its core neighbours (``radius_min_label``).

    Law: the result of :class:`LabelPropagation` (every core row holds the smallest global
    index of its cluster; every row the smallest cluster label among its core neighbours),
    whatever the split of the rows over ranks, in two ring passes whatever the clusters' shapes.
    Memory per rank: its rows, one visiting block, one kernel block, and the pairs of labels
    of all ranks (at most one per local component and rank pair it touches; O(clusters) for
    clusters larger than their ranks' share), at most :attr:`max_gathered_pairs`.
    """

    name = "component_union"
    #: the most label pairs gathered on every rank (16 bytes each: ``BLOCK_BYTES``)
    max_gathered_pairs = BLOCK_BYTES // 16
    #: candidate rows per kernel call (query rows: from the block budget), unless the backend
    #: declares its own (``KERNEL_BLOCK_ROWS``)
    candidate_block = 4096

    def _blocks(self, kernel, backend, X):
        return kernel_block_rows(kernel, backend, X,
                                 (row_block(self.candidate_block), self.candidate_block))

    def union(self, X, x_labels, Y, y_labels, *, eps, metric, p, backend=None):
        """The pairs ``(label, root)`` (label != root) of the classes of labels that the pairs
        within ``eps`` of ``X`` and ``Y`` join (no communication)."""
        if X.shape[0] == 0 or Y.shape[0] == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        q_rows, c_rows = self._blocks("radius_label_union", backend, X)
        keys, roots = [], []
        for bs in _slices(Y.shape[0], c_rows):
            for rs in _slices(X.shape[0], q_rows):
                k, r = call_kernel("radius_label_union", backend, X=X[rs, ...],
                                   x_labels=x_labels[rs], Y=Y[bs, ...], y_labels=y_labels[bs],
                                   eps=eps, metric=metric, p=p)
                joined = k != r
                keys.append(k[joined])
                roots.append(r[joined])
            # keep the pairs a forest of the classes found so far
            keys, roots = [np.concatenate(keys)], [np.concatenate(roots)]
            keys[0], roots[0] = _label_forest(keys[0], roots[0])
        return keys[0], roots[0]

    def run(self, comm, X, core, *, eps, metric="euclidean", p=None, backend=None,
            unlabelled=None, core_rows=None):
        """Collective: ``(core_label, best)``.

        Parameters
        ----------
        comm : communicator
        X : array of shape (n_rows, n_features)
            This rank's rows, of any array type: they stay in their namespace and on their
            device, where the kernels run; labels and label pairs are NumPy (one integer per
            core row, pairs per joined component).
        core : array of shape (n_rows,), bool
            In ``X``'s namespace.
        eps, metric, p : as :func:`spmdlearn.reference.radius_label_union`.
        unlabelled : int, default=None
            The label of "no core neighbour" (above every label); the total rows if None.
        core_rows : array of shape (n_core, n_features), default=None
            ``X[core]`` when the caller holds it already (no second copy).

        Returns
        -------
        core_label : array of shape (n_core,), int64
            The smallest global index of each core row's cluster (core rows in row order), in
            ``X``'s namespace and on its device.
        best : array of shape (n_rows,), int64
            The smallest cluster label among each row's core neighbours (``unlabelled`` for a
            row without core neighbours; a core row's own label for a core row), as
            ``core_label``.
        """
        from ._array_api import array_namespace, from_model, is_foreign_array, to_host

        start, n_total = comm.offsets(X.shape[0])
        big = n_total if unlabelled is None else int(unlabelled)
        foreign = is_foreign_array(X)
        xp = array_namespace(X) if foreign else np

        def rows_of(index):  # X's rows at host positions, in X's namespace
            return X[index] if not foreign else xp.take(X, from_model(index, X), axis=0)

        core_idx = np.flatnonzero(to_host(core))
        Xc = rows_of(core_idx) if core_rows is None else core_rows
        label = core_idx.astype(np.int64) + start
        # 1. local components
        keys, roots = self.union(Xc, label, Xc, label, eps=eps, metric=metric, p=p,
                                 backend=backend)
        label = _relabel(label, keys, roots)
        # 2. component pairs across ranks, each pair of ranks compared once
        keys, roots = [], []
        half = Xc.shape[0] // 2
        for source, (Y, y_label) in comm.ring((Xc, label)):
            if source == comm.rank or Xc.shape[0] == 0 or Y.shape[0] == 0:
                continue
            if comm.rank < source:
                Q, q_label = Xc[:half, ...], label[:half]
            else:
                Q, q_label = Xc, label
                Y, y_label = Y[Y.shape[0] // 2:, ...], y_label[Y.shape[0] // 2:]
            k, r = self.union(Q, q_label, Y, y_label, eps=eps, metric=metric, p=p,
                              backend=backend)
            keys.append(k)
            roots.append(r)
        k = np.concatenate(keys) if keys else np.zeros(0, np.int64)
        r = np.concatenate(roots) if roots else np.zeros(0, np.int64)
        k, r = _label_forest(k, r)
        if comm.exact_sum(int(k.shape[0])) > self.max_gathered_pairs:
            # too many pairs to gather: propagate the local components' labels instead
            comp_label, component = np.unique(label, return_inverse=True)
            component = from_model(component.astype(np.int64), X)
            comp_label, best = LABEL_PROPAGATION.run(
                comm, X, core, component, from_model(comp_label, X), eps=eps, metric=metric,
                p=p, backend=backend, unlabelled=big)
            return (comp_label[component] if not foreign
                    else xp.take(comp_label, component, axis=0)), best
        # 3. the same merge on every rank
        k, r = _label_forest(comm.allgather_rows(k), comm.allgather_rows(r))
        label = _relabel(label, k, r)
        # 4. border rows: the smallest label among their core neighbours
        best = np.full(X.shape[0], big, np.int64)
        best[core_idx] = label
        other = np.flatnonzero(~to_host(core))
        if comm.exact_sum(int(other.shape[0])) and comm.exact_sum(int(core_idx.shape[0])):
            Xo = rows_of(other)
            found = np.full(other.shape[0], big, np.int64)
            q_rows, c_rows = self._blocks("radius_min_label", backend, X)
            for _, (Y, y_label) in comm.ring((Xc, label)):
                for bs in _slices(Y.shape[0], c_rows):
                    for rs in _slices(Xo.shape[0], q_rows):
                        found[rs] = to_host(call_kernel(
                            "radius_min_label", backend, X=Xo[rs, ...], Y=Y[bs, ...],
                            labels=y_label[bs], current=found[rs], eps=eps, metric=metric, p=p))
            best[other] = found
        return from_model(label, X), from_model(best, X)


def _label_forest(keys, roots):
    """The pairs ``(label, root)`` (label != root) of the connected components of the label
    graph with edges ``(keys[i], roots[i])``: each root the smallest label of its component
    (SciPy's ``connected_components``). At most one pair per label."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    keys, roots = np.asarray(keys, np.int64), np.asarray(roots, np.int64)
    if keys.shape[0] == 0:
        return keys, roots
    nodes, inverse = np.unique(np.concatenate([keys, roots]), return_inverse=True)
    n = nodes.shape[0]
    src, dst = inverse[:keys.shape[0]], inverse[keys.shape[0]:]
    _, comp = connected_components(coo_matrix((np.ones(src.shape[0]), (src, dst)), shape=(n, n)),
                                   directed=False)
    smallest = np.full(n, n, np.int64)
    np.minimum.at(smallest, comp, np.arange(n))  # nodes are sorted: the smallest position
    root = nodes[smallest[comp]]
    joined = root != nodes
    return nodes[joined], root[joined]


def _relabel(label, keys, roots):
    """``label`` with each value found in the sorted ``keys`` replaced by its root."""
    if keys.shape[0] == 0 or label.shape[0] == 0:
        return label
    order = np.argsort(keys, kind="stable")
    keys, roots = keys[order], roots[order]
    at = np.clip(np.searchsorted(keys, label), 0, keys.shape[0] - 1)
    return np.where(keys[at] == label, roots[at], label)


COMPONENT_UNION = ComponentUnion()


def segment_min(keys, values, initial):
    """``initial`` lowered at each ``keys[i]`` by ``values[i]`` (NumPy's ``minimum.at``), in the
    arrays' namespace: a new array, ``initial`` is left unchanged.

    Outside NumPy (whose ``minimum.at`` is used), the array API has no scatter: the pairs are
    sorted by (key, value) with two stable sorts, the first pair of each key is its minimum, and
    each position finds its key by a binary search. Minima are exact, so both ways give the same
    values.

    Parameters
    ----------
    keys : array of shape (n,), int
        Positions in ``initial``.
    values : array of shape (n,)
    initial : array of shape (n_segments,)

    Returns
    -------
    minimum : array of shape (n_segments,)
    """
    from ._array_api import array_namespace, device, get_namespace

    if get_namespace(keys, values, initial) is np:
        out = np.array(initial, copy=True)
        np.minimum.at(out, keys, values)
        return out
    xp = array_namespace(keys, values, initial)
    if keys.shape[0] == 0 or initial.shape[0] == 0:
        return xp.asarray(initial, copy=True)
    order = xp.argsort(values, stable=True)
    keys_s, values_s = xp.take(keys, order, axis=0), xp.take(values, order, axis=0)
    order = xp.argsort(keys_s, stable=True)
    keys_s, values_s = xp.take(keys_s, order, axis=0), xp.take(values_s, order, axis=0)
    first = xp.concat([xp.ones((1,), dtype=xp.bool, device=device(keys)),
                       keys_s[1:] != keys_s[:-1]])
    seg, low = keys_s[first], values_s[first]
    positions = xp.arange(initial.shape[0], dtype=keys.dtype, device=device(keys))
    at = xp.clip(xp.searchsorted(seg, positions), 0, seg.shape[0] - 1)
    hit = xp.take(seg, at, axis=0) == positions
    return xp.where(hit, xp.minimum(initial, xp.take(low, at, axis=0)), initial)


LABEL_PROPAGATION = LabelPropagation()


# -- level-wise histograms -------------------------------------------------------------------

class LevelHistograms:
    """The node histograms of one tree level, summed over ranks (identical on every rank).

    Collective pattern (:meth:`run_stacked`): each rank builds the histograms of its rows for
    each list of nodes being split (e.g. one per tree of a level) with the ``tree_histograms``
    kernel (one call per list, from labels, weights and bootstrap counts); the per-rank
    histograms of all lists, stacked, are summed with one reduce and a broadcast, so every rank
    holds the same bits and chooses the same splits.

    Law: histograms are sums over rows, so the sum over ranks equals the histogram of one rank
    holding all rows (up to the rounding of the sums), for any split, empty ranks included.
    """

    name = "level_histograms"

    def local(self, binned, node_pos, y, sample_weight, counts, *, n_nodes, n_bins, n_classes,
              class_weight=None, backend=None):
        return call_kernel("tree_histograms", backend, binned=binned, node_pos=node_pos, y=y,
                           sample_weight=sample_weight, counts=counts, n_nodes=n_nodes,
                           n_bins=n_bins, n_classes=n_classes, class_weight=class_weight)

    def run_stacked(self, comm, parts, *, n_bins, n_classes, backend=None):
        """Collective: the histograms of several node lists, stacked along the node axis and
        summed over ranks in ONE reduction (e.g. the nodes of a level of several trees).

        Parameters
        ----------
        comm : Comm
        parts : sequence of tuple
            ``(binned, node_pos, y, sample_weight, counts, class_weight, n_nodes)`` per node
            list, as :meth:`local` takes them (each list from its own rows, bootstrap counts and
            class weights); every part's ``binned`` has the same number of columns.
        n_bins, n_classes : int

        Returns
        -------
        hist : array of shape (sum of n_nodes, n_columns, n_bins, n_channels), float64
            Part ``i``'s nodes come after those of parts ``0..i-1``. Identical on every rank.
            On one rank, device histograms stay on the device, in the kernels' namespace (one
            part: the kernel's own array; several: concatenated there); NumPy histograms come
            back as a float64 NumPy array, as on more ranks, where the sum goes through host
            memory.

        Memory: the stacked histogram and one part's. Law: part by part, the sum over ranks
        equals the histograms of one rank holding all rows (up to the rounding of the sums),
        for any split, empty ranks included; a part's histograms do not depend on the others.
        """
        from ._array_api import array_namespace, is_foreign_array, to_host

        total = sum(int(part[6]) for part in parts)
        out, at, device_parts = None, 0, []
        for binned, node_pos, y, sample_weight, counts, class_weight, n_nodes in parts:
            hist = self.local(binned, node_pos, y, sample_weight, counts, n_nodes=n_nodes,
                              n_bins=n_bins, n_classes=n_classes, class_weight=class_weight,
                              backend=backend)
            if comm.size == 1 and is_foreign_array(hist):
                device_parts.append(hist)
                continue
            if out is None:
                out = np.empty((total,) + tuple(hist.shape[1:]), dtype=np.float64)
            out[at: at + n_nodes] = to_host(hist)
            at += n_nodes
        if device_parts:  # one rank: the device histograms stay there (every part's is one)
            return device_parts[0] if len(device_parts) == 1 else \
                array_namespace(device_parts[0]).concat(device_parts, axis=0)
        if comm.size == 1:  # no status exchange on one rank either
            return out
        return comm.reduce_bcast_sum(out, overwrite=True)


    def run_forest(self, comm, binned, node_of_row, counts, position, columns, y,
                   sample_weight, *, n_bins, n_classes, class_weight=None, backend=None):
        """Collective: the histograms of several trees' nodes, each with its own features, from
        every row (the ``forest_histograms`` kernel: no gathered copy of the rows), summed over
        ranks in ONE reduction.

        Arguments as the kernel takes them. Returns ``(n_places, n_columns, n_bins,
        n_channels)`` float64, identical on every rank: :meth:`run_stacked`'s histograms of
        each tree's rows in their nodes with the nodes' features, bit for bit. NumPy rows only.
        """
        from ._array_api import to_host

        hist = call_kernel("forest_histograms", backend, binned=binned, node_of_row=node_of_row,
                           counts=counts, position=position, columns=columns, y=y,
                           sample_weight=sample_weight, n_bins=n_bins, n_classes=n_classes,
                           class_weight=class_weight)
        if comm.size == 1:  # no status exchange on one rank either
            return hist
        return comm.reduce_bcast_sum(to_host(hist), overwrite=True)


LEVEL_HISTOGRAMS = LevelHistograms()


# -- the logistic gradient sum ---------------------------------------------------------------

class GradientSum:
    """The logistic loss and gradient of all ranks' rows: sums of per-rank kernel sums.

    Collective pattern: each rank computes the undivided sums of its rows with the
    ``logistic_loss_grad`` kernel; the sums (loss, gradient; the Hessian weights stay per row)
    are added over ranks in rank order (gathered, then one fixed-order sum), so every rank holds
    the same bits and the optimizer takes the same steps everywhere.

    Law: the sums over ranks equal the sums over one rank holding all rows (up to rounding), for
    any split, empty ranks included.
    """

    name = "gradient_sum"

    def local(self, X, target, sample_weight, coef, intercept, *, n_classes, with_hessian=False,
              backend=None):
        return call_kernel("logistic_loss_grad", backend, X=X, target=target,
                           sample_weight=sample_weight, coef=coef, intercept=intercept,
                           n_classes=n_classes, with_hessian=with_hessian)

    def run(self, comm, X, target, sample_weight, coef, intercept, *, n_classes,
            with_hessian=False, backend=None):
        """Collective: ``(loss, grad_coef, grad_intercept, hess_weights)``.

        ``loss`` and the gradients are sums over all ranks' rows, identical on every rank;
        ``hess_weights`` are this rank's rows' (for Hessian-vector products).
        """
        loss, g_coef, g_int, hess = self.local(X, target, sample_weight, coef, intercept,
                                               n_classes=n_classes, with_hessian=with_hessian,
                                               backend=backend)
        g_coef = np.asarray(g_coef, np.float64)
        g_int = np.asarray(g_int, np.float64)
        flat = np.concatenate([[loss], g_coef.ravel(), g_int.ravel()])
        total = comm.sum_identical(flat)
        n_coef = g_coef.size
        return (float(total[0]), total[1:1 + n_coef].reshape(g_coef.shape),
                total[1 + n_coef:].reshape(g_int.shape), hess)


GRADIENT_SUM = GradientSum()
