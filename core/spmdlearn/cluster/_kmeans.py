"""KMeans over the rows of every rank: scikit-learn's algorithm, replayed collectively."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.cluster import KMeans as _SkKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array

from .._array_api import (accumulation_dtype, device, has_float64, empty_like_rows, from_model, get_namespace, is_foreign_array,
                          numpy_dtype, sum_float64, take_rows, to_host)
from .._backends import REFERENCE, backend_kernels, call_kernel
from .._base import SPMDEstimatorMixin
from .._validation import (Interval, Options, array_parameter, is_array_parameter, validate_fit,
                           validate_predict)
from ..collective import allreduce, partial_size, reduce_step
from ..comm import owned_ids
from ..patterns import row_block
from ..reference._kmeans import LLOYD, relocation_rows
from ..reference._moments import MOMENTS


#: Bytes of one block of centered rows that the estimator makes for a kernel call outside
#: the Lloyd step (k-means++, the inertia, the relocation of empty clusters), and of the blocks
#: of the ordered mean: NumPy rows, in the core's cache; rows on a device, large enough that a
#: kernel launch and its Python are small against the block's time (a 2M x 20 float64 shard
#: took 153 blocks of 2 MiB, and its k-means++ 2 s on an H200, nearly all in launches).
_CENTERED_BLOCK_BYTES = 1 << 21
_DEVICE_BLOCK_BYTES = 1 << 28


def _block_rows(xp, dtype, n_features) -> int:
    """Rows per block of :data:`_CENTERED_BLOCK_BYTES` (NumPy) or :data:`_DEVICE_BLOCK_BYTES`."""
    size = _CENTERED_BLOCK_BYTES if xp is np else _DEVICE_BLOCK_BYTES
    return max(1, size // (np.dtype(dtype).itemsize * max(1, n_features)))


#: Why negative weights are refused. scikit-learn's KMeans checks no sign: its k-means++ and
#: random init then fail in ``random_state.choice`` ("probabilities are not non-negative"),
#: while an array or callable init runs Lloyd's steps with them, to a negative inertia or a
#: cluster whose weights cancel (taken as empty). The same refusal for every init here.
_NEGATIVE_WEIGHTS_REFUSED = (
    "KMeans weighs each row by its sample_weight (a multiplicity, so a cluster's center is "
    "the weighted mean of its rows), which must be non-negative; scikit-learn's k-means++ and "
    "random init refuse negative weights too ('probabilities are not non-negative')")


#: A one-column mean is that of the gathered column (on rank 0) while the total rows are at most
#: this many (8 bytes a row there: 8 MiB): see :func:`_global_mean`.
_MEAN_GATHER_ROWS = 1 << 20


#: The centering mean is NumPy's bit for bit (:func:`_global_mean`, one pass over the rows
#: that runs one rank after another) while the total rows hold at most this many elements
#: (128 MiB of float64: about 20-40 ms of summing, whatever the number of ranks); beyond, it
#: is the merged moments' mean, whose cost does not grow with the ranks.
_ORDERED_MEAN_ELEMENTS = 1 << 24


def _global_mean(comm, X, n_total):
    """``X.mean(axis=0)`` of the gathered rows, in X's dtype, bit for bit, for any split of the
    rows (collective; host NumPy of shape ``(n_features,)``).

    scikit-learn's k-means runs on ``X - X.mean(axis=0)``, and the last bits of those centered
    values decide ties (which of equally far rows is relocated, which of two coinciding centers
    a row joins). NumPy sums a C-ordered array of two or more columns over its rows one row
    after another (a pairwise sum only along a contiguous axis, such as a single column). A
    merge of per-rank means would round differently for every split; instead the sum runs as
    one process would run it: each rank adds its rows, in order, to the sum of the ranks before
    it (:meth:`~spmdlearn.comm.Comm.fold_in_rank_order`: the ranks' passes run one after
    another). A single column is gathered on rank 0, where NumPy's own pairwise sum is taken,
    while the total rows are at most :data:`_MEAN_GATHER_ROWS`; beyond, and for rows in
    another namespace than NumPy, the rows are summed in order by the namespace's ``sum`` on
    blocks led by the running sum (NumPy's bits where that ``sum`` is NumPy's; a device's own
    reduction otherwise rounds as its blocks fall). The sum is then divided as ``np.mean``
    divides it: by the count as a float64, rounded to X's dtype.
    """
    xp = get_namespace(X)
    dtype = numpy_dtype(X.dtype)
    n_local, n_features = int(X.shape[0]), int(X.shape[1])
    start, _ = comm.offsets(n_local)
    if xp is np and n_features == 1 and n_total <= _MEAN_GATHER_ROWS:
        column = comm.gather_rows(np.ascontiguousarray(X, dtype=dtype).reshape(-1, 1), root=0)
        mean = column.mean(axis=0) if comm.rank == 0 else None
        return np.asarray(comm.bcast(mean, root=0), dtype=dtype)
    block = _block_rows(xp, dtype, n_features)

    def add_rows(running):
        if n_local == 0:
            return running
        first = 1 if start == 0 else 0  # the first row of all opens the sum, as in NumPy's
        if xp is np:
            total = running if first == 0 else np.array(X[0], dtype=dtype)
            buf = np.empty((min(block, n_local) + 1, n_features), dtype=dtype)
            for lo in range(first, n_local, block):
                hi = min(n_local, lo + block)
                buf[0] = total
                buf[1:hi - lo + 1] = X[lo:hi]
                # rows after rows; one column: its sum would be pairwise, the cumulative one
                # adds in order
                total = (np.add.reduce(buf[:hi - lo + 1], axis=0) if n_features > 1 else
                         np.add.accumulate(buf[:hi - lo + 1, 0])[-1:])
            return total
        total = from_model(running, X)[None, :] if first == 0 else take_rows(X, 0, 1)
        for lo in range(first, n_local, block):
            hi = min(n_local, lo + block)
            total = xp.sum(xp.concat([total, take_rows(X, lo, hi)], axis=0), axis=0)[None, :]
        return np.asarray(to_host(total), dtype=dtype).reshape(-1)

    total = comm.fold_in_rank_order(add_rows, np.zeros(n_features, dtype=dtype))
    return (total.astype(np.float64) / n_total).astype(dtype)


class _Data:
    """This rank's rows, centered as scikit-learn centers them, and what every step needs.

    scikit-learn runs k-means on ``X - X.mean(axis=0)``. No centered copy of the shard is
    made: ``X`` stays as given and ``offset`` (the global mean, X's dtype) is subtracted a block
    at a time, by the Lloyd kernel itself (its ``X_offset``) and by :meth:`centered_blocks`
    elsewhere; each centered value is the one the whole centered shard would hold.

    The rows, their weights and norms stay in the input's array namespace ``xp`` (on its device);
    what crosses to the host is O(n_clusters): totals, counts, the few rows chosen as centers.
    """

    def __init__(self, comm, X, offset, w, backend):
        self.comm, self.X, self.w, self.backend = comm, X, w, backend
        self.xp = get_namespace(X)
        self.dtype = numpy_dtype(X.dtype)
        self.offset = np.asarray(offset, dtype=self.dtype)
        self.offset_xp = from_model(self.offset, X)
        self.n_local = int(X.shape[0])
        self.start, self.n_total = comm.offsets(self.n_local)
        self.acc = np.float64 if self.xp is np else accumulation_dtype(X)
        self._x_sq = None
        #: the weights are a broadcast view of one 1.0 (the estimator's unweighted rows)
        self.unit_weights = (self.xp is np and w.ndim == 1 and w.shape[0] > 1
                             and w.strides[0] == 0 and float(w[0]) == 1.0)
        self.block = _block_rows(self.xp, self.dtype, X.shape[1])

    def centered_blocks(self):
        """``(lo, hi, X[lo:hi] - offset)`` for this rank's rows, one block at a time (a new
        array each time, which the caller may modify); one empty block for a rank without
        rows, so that every rank calls the kernels alike."""
        if self.n_local == 0:
            yield 0, 0, take_rows(self.X, 0, 0) - self.offset_xp
            return
        if self.xp is np and self.X.flags.c_contiguous and self.n_local:
            # The offset repeated over a block's rows: the subtraction of two contiguous blocks
            # is one flat loop (broadcasting a row costs a loop call for every row).
            tiled = np.broadcast_to(self.offset, (min(self.block, self.n_local),
                                                  self.offset.shape[0])).copy()
            for lo in range(0, self.n_local, self.block):
                hi = min(self.n_local, lo + self.block)
                yield lo, hi, np.subtract(self.X[lo:hi], tiled[: hi - lo])
            return
        for lo in range(0, self.n_local, self.block):
            hi = min(self.n_local, lo + self.block)
            yield lo, hi, take_rows(self.X, lo, hi) - self.offset_xp

    def centered(self):
        """The whole centered shard (a copy): only for a user's init callable, which
        scikit-learn calls with the centered rows."""
        return self.X - self.offset_xp

    @property
    def x_sq(self):
        """``||x - offset||^2`` of every row (k-means++ only), computed on first use."""
        if self._x_sq is None:
            xp = self.xp
            out = empty_like_rows(self.X, (self.n_local,))
            for lo, hi, Xc in self.centered_blocks():
                if xp is np:
                    out[lo:hi] = np.einsum("ij,ij->i", Xc, Xc)
                else:  # scikit-learn's row_norms in a namespace (rounds apart from einsum's)
                    out[lo:hi] = xp.sum(Xc * Xc, axis=1)
            self._x_sq = out
        return self._x_sq

    def global_cumsum(self, values):
        """This rank's part of the cumulative sum of ``values`` over all ranks' rows, and the total.

        Every rank adds the totals of the ranks before it (gathered, summed in the same order on
        every rank) to its local cumulative sums. With :meth:`count_below`, this replays
        ``searchsorted(cumsum(...))`` over the gathered rows. The sums stay in ``values``'
        namespace; one number per rank crosses to the host.
        """
        comm, xp = self.comm, self.xp
        if xp is np:
            local = np.cumsum(np.asarray(values, np.float64))
        else:
            local = xp.cumulative_sum(xp.astype(values, self.acc))
        last = float(local[-1]) if self.n_local else 0.0
        totals = comm.allgather_array(np.array([last]))[:, 0]
        prefix = float(np.sum(totals[: comm.rank])) if comm.rank else 0.0
        total = float(np.sum(totals))
        if xp is np:  # in place: the cumulative sums are this call's own array
            local += prefix
            return local, total
        return local + prefix, total

    def count_below(self, cumsum, targets, side):
        """Global ``searchsorted``: the local counts of a monotone sequence, summed over ranks."""
        if self.xp is np:
            counts = np.searchsorted(cumsum, targets, side=side).astype(np.int64)
        elif self.n_local:
            found = self.xp.searchsorted(
                cumsum, from_model(targets, cumsum, numpy_dtype(cumsum.dtype)), side=side)
            counts = to_host(found).astype(np.int64)  # O(len(targets)): counts only
        else:
            counts = np.zeros(len(targets), dtype=np.int64)
        return self.comm.allgather_array(counts).sum(axis=0)

    def take(self, values, local_ids):
        """``values[local_ids]`` (a few rows of this rank, host NumPy): selected in ``values``'
        namespace, so only those rows cross to the host."""
        local_ids = np.asarray(local_ids, dtype=np.int64)
        if self.xp is np:
            return values[local_ids]
        if local_ids.size == 0:
            return np.empty((0,) + tuple(values.shape[1:]), dtype=numpy_dtype(values.dtype))
        return to_host(self.xp.take(values, from_model(local_ids, values), axis=0))

    def rows(self, ids):
        """The centered rows of global indices ``ids`` (the same on every rank), on every rank,
        NumPy ``(len(ids), n_features)`` of X's dtype: each owner sends its rows (collective)."""
        owned = owned_ids(ids, self.start, self.n_local)
        mine = self.take(self.X, owned - self.start) - self.offset
        return self.comm.share_rows(mine, owned, ids)

    def _norms(self, lo, hi):
        """``x_squared_norms`` for the kernels on rows ``lo:hi``. float64 NumPy rows: None, the
        kernels' distance function computes the same ``einsum`` norms of the block itself, so
        no per-row vector is kept (float32 rows keep scikit-learn's float32 norms, which its
        distance function would otherwise compute in float64)."""
        if self.xp is np and self.dtype == np.float64:
            return None
        return take_rows(self.x_sq, lo, hi)

    def min_distances(self, centers, closest):
        """The ``kmeans_min_distances`` kernel over the centered rows, a block at a time
        (NumPy: in place in ``closest``, each block's result being a new array)."""
        if closest is not None and self.xp is np and closest.dtype == np.float64:
            out = closest
        else:
            out = empty_like_rows(self.X, (self.n_local,),
                                  np.float64 if has_float64(self.X) else np.float32)
        for lo, hi, Xc in self.centered_blocks():
            out[lo:hi] = call_kernel(
                "kmeans_min_distances", self.backend, X=Xc, centers=centers,
                closest=None if closest is None else take_rows(closest, lo, hi),
                x_squared_norms=self._norms(lo, hi))
        return out

    def plusplus_potentials(self, candidates, closest):
        """This rank's ``kmeans_plusplus_potentials`` over the centered rows (block partials
        added in row order)."""
        total = np.zeros(len(candidates))
        for lo, hi, Xc in self.centered_blocks():
            total += np.asarray(call_kernel(
                "kmeans_plusplus_potentials", self.backend, X=Xc,
                sample_weight=take_rows(self.w, lo, hi), candidates=candidates,
                closest=take_rows(closest, lo, hi), x_squared_norms=self._norms(lo, hi)),
                dtype=np.float64)
        return total

    def inertia(self, centers, labels):
        """This rank's ``kmeans_inertia`` of the centered rows (block partials in row order)."""
        total = 0.0
        for lo, hi, Xc in self.centered_blocks():
            total += float(call_kernel("kmeans_inertia", self.backend, X=Xc,
                                       sample_weight=take_rows(self.w, lo, hi), centers=centers,
                                       labels=take_rows(labels, lo, hi)))
        return total

    def zero_rows(self, values, local_ids):
        """``values`` with the entries at ``local_ids`` set to 0 (in place for NumPy; a mask in
        other namespaces, which need not support integer-array assignment)."""
        if len(local_ids) == 0:
            return values
        if self.xp is np:
            values[local_ids] = 0
            return values
        xp = self.xp
        ids = from_model(np.unique(np.asarray(local_ids, dtype=np.int64)), values)
        rows = xp.arange(self.n_local, dtype=xp.int64, device=device(values))
        nearest = xp.clip(xp.searchsorted(ids, rows), max=int(ids.shape[0]) - 1)
        return xp.where(xp.take(ids, nearest) == rows, xp.zeros_like(values), values)


def _weighted_sum(a, b) -> float:
    """``a @ b`` for two vectors of this rank's rows, as a float (0.0 for none)."""
    if get_namespace(a, b) is np:  # contiguous: a broadcast view of unit weights sums as ones
        return np.ascontiguousarray(a) @ np.ascontiguousarray(b)
    return float(a @ b) if a.shape[0] else 0.0


def _kmeans_plusplus(data: _Data, n_clusters, random_state):
    """scikit-learn's greedy k-means++ with global cumulative sums (same draws on every rank).

    ``closest`` (each row's squared distance to its closest chosen center) stays where the
    kernels return it, in the rows' namespace; the candidates' potentials are O(n_candidates).
    """
    X, w, comm = data.X, data.w, data.comm
    n_local_trials = 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, X.shape[1]), dtype=data.dtype)
    W = float(comm.sum_identical([sum_float64(w)])[0])
    # random_state.choice(n_samples, p=w / w.sum()): cdf = cumsum(p) / cdf[-1]; one uniform draw.
    # unit weights: p is one value for every row (a view; the same values as w / W)
    p = np.broadcast_to(w[:1] / W, w.shape) if data.unit_weights else w / W
    cdf, total = data.global_cumsum(p)
    if data.xp is np:  # NumPy's choice divides its cdf in place
        cdf /= total
    else:
        cdf = cdf / total
    u = random_state.random_sample()
    first = int(data.count_below(cdf, np.array([u]), "right")[0])
    centers[0] = data.rows([first])[0]
    closest = data.min_distances(centers[:1], None)
    current_pot = float(comm.sum_identical([_weighted_sum(closest, w)])[0])
    for c in range(1, n_clusters):
        rand_vals = random_state.uniform(size=n_local_trials) * current_pot
        # unit weights (a broadcast view of ones): w * closest is closest, bit for bit
        cumsum, _ = data.global_cumsum(closest if data.unit_weights else w * closest)
        candidate_ids = np.minimum(data.count_below(cumsum, rand_vals, "left"), data.n_total - 1)
        candidates = data.rows(candidate_ids)
        candidates_pot = comm.sum_identical(data.plusplus_potentials(candidates, closest))
        best = int(np.argmin(candidates_pot))
        current_pot = float(candidates_pot[best])
        closest = data.min_distances(candidates[best:best + 1], closest)
        centers[c] = candidates[best]
    return centers


def _random_init(data: _Data, n_clusters, random_state):
    """``random_state.choice(n_samples, size=k, replace=False, p=w / w.sum())``, collectively."""
    comm, xp = data.comm, data.xp
    W = float(comm.sum_identical([sum_float64(data.w)])[0])
    p = data.w / W
    positive = (int(np.count_nonzero(p > 0)) if xp is np
                else int(xp.sum(xp.astype(p > 0, xp.int64))))
    if comm.exact_sum(positive) < n_clusters:
        raise ValueError("Fewer non-zero entries in p than size")
    found: list[int] = []
    while len(found) < n_clusters:
        x = random_state.random_sample(n_clusters - len(found))
        p = data.zero_rows(p, [g - data.start for g in found
                               if data.start <= g < data.start + data.n_local])
        cumsum, total = data.global_cumsum(p)
        new = data.count_below(cumsum / total, x, "right")
        _, first = np.unique(new, return_index=True)
        found += [int(v) for v in new[np.sort(first)]]
    return data.rows(found)


def _unique_codes(labels1, labels2, n_clusters):
    """The distinct ``labels1 * n_clusters + labels2`` of this rank's rows (``labels2`` None:
    the distinct ``labels1``), found in the labels' namespace; host NumPy int64, O(k^2)."""
    xp = get_namespace(labels1, labels2)
    if xp is np:  # counts of the O(k^2) possible codes: no per-row temporaries, no sort
        if labels2 is None:
            return np.flatnonzero(np.bincount(labels1, minlength=n_clusters)).astype(np.int64)
        seen = np.zeros(n_clusters * n_clusters, dtype=bool)
        for lo in range(0, len(labels1), 1 << 16):
            codes = labels1[lo:lo + (1 << 16)].astype(np.int64) * n_clusters
            codes += labels2[lo:lo + (1 << 16)]
            seen |= np.bincount(codes, minlength=n_clusters * n_clusters) > 0
        return np.flatnonzero(seen).astype(np.int64)
    if labels1.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    codes = xp.astype(labels1, xp.int64)
    if labels2 is not None:
        codes = codes * n_clusters + xp.astype(labels2, xp.int64)
    return to_host(xp.unique_values(codes)).astype(np.int64)


def _is_same_clustering(comm, labels1, labels2, n_clusters):
    """scikit-learn's test over all ranks' labels: does labels1 map to labels2 by a function?

    Each rank sends its distinct pairs (encoded ``label1 * n_clusters + label2``), O(k^2).
    """
    pairs = np.unique(comm.allgather_rows(_unique_codes(labels1, labels2, n_clusters)))
    return len(np.unique(pairs // n_clusters)) == len(pairs)


#: The relocation of empty clusters gathers every row's distance on rank 0 only while the
#: total rows are at most this many (16 bytes a row there: 16 MiB), and only when the farthest
#: rows alone do not determine scikit-learn's choice (see :func:`_relocate_empty_clusters`).
_RELOCATION_GATHER_ROWS = 1 << 20


def _assigned_distances(data: _Data, centers_old, labels):
    """``(lo, hi, distances)`` blocks, host NumPy of X's dtype: scikit-learn's
    ``((X - centers_old[labels]) ** 2).sum(axis=1)`` on the centered rows, a block at a time
    (each row's value is the one of the whole-shard expression)."""
    xp = data.xp
    C = from_model(np.asarray(centers_old, dtype=data.dtype), data.X)
    for lo, hi, Xc in data.centered_blocks():
        if hi == lo:
            continue
        lab = take_rows(labels, lo, hi)
        if xp is np:  # in place in the block's centered copy: the same operations, no more blocks
            np.subtract(Xc, C[np.asarray(lab)], out=Xc)
            yield lo, hi, np.square(Xc, out=Xc).sum(axis=1)
        else:
            # The per-row vector of one block (not the rows) crosses to the host: a counted
            # fallback, taken only while a cluster is empty.
            diff = Xc - xp.take(C, xp.astype(lab, xp.int64), axis=0)
            yield lo, hi, to_host(xp.sum(diff ** 2, axis=1), "KMeans empty-cluster relocation")


def _farthest_first(distances, ids, n):
    """The ``n`` entries of largest distance, by decreasing distance then increasing id."""
    if len(distances) > n:
        keep = np.flatnonzero(distances >= np.partition(distances, -n)[-n])
        distances, ids = distances[keep], ids[keep]
    order = np.lexsort((ids, -distances.astype(np.float64)))[:n]
    return distances[order], ids[order]


def _relocate_empty_clusters(data: _Data, centers_old, sums, weights, labels):
    """scikit-learn's relocation of empty clusters (``_relocate_empty_clusters_dense``), globally.

    scikit-learn moves the ``n_empty`` rows farthest from their centers,
    ``np.argpartition(distances, -n_empty)[:-n_empty-1:-1]`` in that order, into the empty
    clusters (none when every row sits on its center); each chosen row leaves its old cluster's
    sums. In one pass over the rows, each rank finds its ``n_empty + 1`` farthest rows and
    sends them (O(n_empty) per rank). The choice follows from those alone when they determine
    ``np.argpartition``'s output, which is when exactly ``n_empty`` rows are at least as far as
    the ``n_empty``-th farthest (the next is nearer), their distances are distinct, and
    ``n_empty <= 2``: any selection then puts the farthest last and the second before it. Otherwise (ties at the threshold, or
    three or more empty clusters at once, whose order within the top is left to the selection
    algorithm, even to the CPU's SIMD width), the distances of all rows are gathered on rank 0
    and ``np.argpartition`` itself decides, as on the gathered data, while the total rows are
    at most ``_RELOCATION_GATHER_ROWS``; beyond that, to keep every rank's memory bounded, the
    rows are the same farthest rows up to ties, taken by decreasing distance and then by
    increasing global index (a documented difference from scikit-learn only in which of equally
    far rows moves, and in which empty cluster each of three or more rows goes to).
    """
    comm = data.comm
    empty = np.flatnonzero(weights == 0)
    n_empty = len(empty)
    keep_all = data.n_total <= _RELOCATION_GATHER_ROWS
    kept = None
    if _serves_kernel(data.backend, "kmeans_farthest_assigned_rows") and data.xp is np:
        # the backend's pass finds this rank's n_empty + 1 farthest rows (the reference's
        # distances); every row's distance is computed only if the gather below needs it
        local_d, local_i = call_kernel(
            "kmeans_farthest_assigned_rows", data.backend, X=data.X, centers=centers_old,
            labels=labels, n_rows=n_empty + 1, X_offset=data.offset)
        local_d = np.asarray(local_d, dtype=data.dtype)
        local_i = np.asarray(local_i, dtype=np.int64) + data.start
    else:
        # One pass: this rank's n_empty + 1 farthest rows, and, while the total rows are
        # within the gather bound, every row's distance (kept for the gather).
        kept = []
        local_d, local_i = np.zeros(0, dtype=data.dtype), np.zeros(0, dtype=np.int64)
        for lo, hi, d in _assigned_distances(data, centers_old, labels):
            if keep_all:
                kept.append(d)
            ids = np.arange(data.start + lo, data.start + hi, dtype=np.int64)
            local_d, local_i = _farthest_first(np.concatenate([local_d, d]),
                                               np.concatenate([local_i, ids]), n_empty + 1)
    pairs = comm.allgather_rows(np.column_stack([local_d.astype(np.float64),
                                                 local_i.astype(np.float64)]))
    # The n_empty + 1 farthest rows of all (each rank sent its own n_empty + 1 farthest).
    top_d, top_i = _farthest_first(pairs[:, 0], pairs[:, 1].astype(np.int64), n_empty + 1)
    if len(top_d) == 0 or top_d[0] == 0:
        return  # every row sits on its center: scikit-learn relocates nothing
    # Exactly n_empty rows at least as far as the n_empty-th farthest: the next one is nearer.
    alone = len(top_d) == n_empty or top_d[n_empty] < top_d[n_empty - 1]
    top_d, top_i = top_d[:n_empty], top_i[:n_empty]
    if alone and n_empty <= 2 and len(np.unique(top_d)) == n_empty:
        chosen = [int(g) for g in top_i]
    elif keep_all:
        if kept is None:  # the farthest rows did not decide: every row's distance
            kept = [d for _, _, d in _assigned_distances(data, centers_old, labels)]
        local = np.concatenate(kept) if kept else np.zeros(0, dtype=data.dtype)
        distances = comm.gather_rows(local, root=0)
        chosen = relocation_rows(distances, n_empty) if comm.rank == 0 else None
        chosen = comm.bcast(None if chosen is None else [int(g) for g in chosen], root=0)
        if chosen is None:
            return
    else:
        chosen = [int(g) for g in top_i]
    chosen = np.asarray(chosen, dtype=np.int64)
    rows = data.rows(chosen).astype(np.float64)
    mine = (chosen >= data.start) & (chosen < data.start + data.n_local)
    info = np.zeros((n_empty, 2))  # (weight, old label) of each chosen row, from its owner
    local = chosen[mine] - data.start
    info[mine] = np.column_stack([data.take(data.w, local), data.take(labels, local)])
    info = comm.allgather_array(info).sum(axis=0)  # exactly one rank owns each row
    for new_id, row, (weight, old_id) in zip(empty, rows, info):
        sums[int(old_id)] -= row * weight
        sums[new_id] = row * weight
        weights[new_id] = weight
        weights[int(old_id)] -= weight


def _average_centers(sums, weights):
    """scikit-learn's ``_average_centers``: ``sums / weights``; an empty cluster (possible only
    when every row sits on its center) takes the row of the heaviest cluster as it stands at
    that point of the loop (not yet divided when the heaviest cluster comes later)."""
    centers = sums.copy()
    heaviest = int(np.argmax(weights))
    for j in range(len(weights)):
        if weights[j] > 0:
            centers[j] *= 1.0 / weights[j]
        else:
            centers[j] = centers[heaviest]
    return centers


def _serves_kernel(backend, kernel) -> bool:
    """Whether ``backend`` implements the optional ``kernel`` itself (``kmeans_lloyd_bounded``,
    ``kmeans_farthest_assigned_rows``: the reference's, a NumPy definition, serves as the
    conformance oracle, and the estimator's other path serves the backends that lack it)."""
    return backend != REFERENCE and kernel in backend_kernels(backend)


def _serves_bounded_step(backend) -> bool:
    """Whether ``backend`` implements the bounded Lloyd step itself (else the plain step)."""
    return _serves_kernel(backend, "kmeans_lloyd_bounded")


#: Rows of a rank from which the bounded step may update the cluster sums from the rows that
#: change cluster (``sums_old``) instead of adding every row: beyond one task of the cpu kernel
#: (whose sums are added in row order within a task, then task by task), where the sums' last
#: bits already depend on how the rows are cut. Below, every step's sums are added in row
#: order, as scikit-learn's on one thread, so that ties fall as there.
_INCREMENTAL_ROWS = 1 << 16


def _lloyd(data: _Data, centers_init, max_iter, tol, verbose):
    """scikit-learn's ``_kmeans_single_lloyd``, with one fused reduction per step.

    On a backend with the bounded step (``kmeans_lloyd_bounded``), each row's lower bound on
    its distance to the other centers and upper bound on its distance to its own are kept from
    step to step beside its label, so that a step recomputes only the rows whose label may
    change (Hamerly 2010); the labels are the plain step's. The centers' moves, from which the
    bounds follow, are the same on every rank: the bounds need no communication.

    On a rank of more than ``_INCREMENTAL_ROWS`` rows, the step is also given this rank's
    previous partial, so that it may update the sums from the rows that change cluster and read
    no other row (the step's inertia is then not computed): the centers are then the plain step's up to
    the rounding of the sums. The sums are recomputed from every row (the plain step's, bit for
    bit) where the model is decided: at the last iteration, when the steps converge (strictly
    or within ``tol``; a convergence that the recomputed sums do not confirm iterates on), in
    the final E-step, and at every step under ``verbose`` (which prints the inertia).
    """
    comm, xp = data.comm, data.xp
    centers = np.asarray(centers_init, dtype=np.float64)
    # The labels stay where the Lloyd kernel returns them: in the rows' namespace.
    labels = (np.full(data.n_local, -1, dtype=np.int32) if xp is np else
              xp.full((data.n_local,), -1, dtype=xp.int32, device=device(data.X)))
    strict = False
    bounded = _serves_bounded_step(data.backend)
    incremental = bounded and data.n_local > _INCREMENTAL_ROWS
    # the bounded step's state: the centers its bounds refer to, the bounds, and this rank's
    # partial of the previous step
    state = {"centers": None, "lower": empty_like_rows(data.X, (data.n_local,), np.float64)
             if bounded else None, "upper": None, "partial": None}

    def step(c, labels_old, exact=False):
        if not bounded:
            return allreduce(LLOYD, data.X, data.w, c, labels_old, data.offset, comm=comm,
                             backend=data.backend, with_rows=True)
        rows = {}

        def local():
            rows["labels"], rows["lower"], partial, rows["upper"] = call_kernel(
                "kmeans_lloyd_bounded", data.backend, X=data.X, sample_weight=data.w,
                centers=c, centers_old=state["centers"], labels_old=labels_old,
                lower_old=state["lower"], X_offset=data.offset, upper_old=state["upper"],
                sums_old=None if exact or not incremental else state["partial"],
                # the state's bounds are replaced by the returned ones: the kernel may reuse
                # their memory (one generation of per-row bounds, not two)
                in_place=True)
            rows["partial"] = partial
            return partial

        partial = reduce_step(LLOYD, local, data.X, data.w, c, labels_old, data.offset,
                              comm=comm)
        state.update(centers=c, lower=rows["lower"], upper=rows["upper"],
                     partial=rows["partial"])
        return rows["labels"], partial

    def update(p, new_labels):
        sums, weights = p.sums.copy(), p.weights.copy()
        if np.any(weights == 0):
            _relocate_empty_clusters(data, centers, sums, weights, new_labels)
        centers_new = _average_centers(sums, weights)
        return centers_new, np.sqrt(((centers_new - centers) ** 2).sum(axis=1))

    for i in range(max_iter):
        new_labels, p = step(centers, labels, exact=verbose or i == max_iter - 1)
        centers_new, shift = update(p, new_labels)
        if p.incremental and (p.n_changed == 0 or float((shift ** 2).sum()) <= tol):
            # Sums updated from the changed rows (on some rank) where the steps converge: the same step again, its sums from every row (the same labels), so
            # that the model is the plain step's; the test is made again on those sums.
            again_labels, again = step(centers, new_labels, exact=True)
            if again.n_changed:  # a near-tie broken otherwise by another BLAS product
                new_labels = again_labels
            p = again._replace(n_changed=p.n_changed + again.n_changed)
            centers_new, shift = update(p, new_labels)
        if verbose and comm.rank == 0:
            print(f"Iteration {i}, inertia {p.inertia}, center shift {(shift ** 2).sum()}.",
                  flush=True)
        centers = centers_new
        if p.n_changed == 0:
            if verbose and comm.rank == 0:
                print(f"Converged at iteration {i}: strict convergence.", flush=True)
            strict = True
            labels = new_labels
            break
        shift_tot = float((shift ** 2).sum())
        labels = new_labels
        if shift_tot <= tol:
            if verbose and comm.rank == 0:
                print(f"Converged at iteration {i}: center shift {shift_tot} within tolerance "
                      f"{tol}.", flush=True)
            break
    if not strict:
        # Re-run the E-step so that the labels match the final centers; the step returns the
        # inertia of its assignment, so no other pass over the rows is needed.
        labels, p = step(centers, labels, exact=True)
        inertia = float(p.inertia)
    else:
        inertia = float(comm.sum_identical([data.inertia(centers, labels)])[0])
    return labels, inertia, centers, i + 1



def _resolved_n_init(n_init, init):
    """``n_init="auto"`` as scikit-learn resolves it: 1 for k-means++ or an array init, else
    10; other values as given."""
    if n_init != "auto":
        return n_init
    return 1 if is_array_parameter(init) or (isinstance(init, str) and init == "k-means++") \
        else 10

class KMeans(SPMDEstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin,
             BaseEstimator):
    """K-means clustering of the rows of all ranks (Lloyd's algorithm).

    With the same integer ``random_state``, the result is scikit-learn's ``KMeans`` on the
    gathered rows: the same k-means++ (or random) draws, replayed with global cumulative sums,
    the same tolerance (``tol`` times the mean global variance), the same strict-convergence test
    (no label changed on any rank), the same relocation of empty clusters (the farthest rows,
    chosen globally) and the same final E-step.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"}, callable or array-like of shape (n_clusters, n_features), \
default="k-means++"
        A callable is called on every rank as ``init(X_local_centered, n_clusters,
        random_state=random_state)`` (scikit-learn passes the centered data) and must return the
        same centers on every rank; this is checked.
    n_init : "auto" or int, default="auto"
        Runs with different initializations (1 for "k-means++" and arrays, 10 otherwise); the
        run with the lowest global inertia is kept.
    max_iter : int, default=300
    tol : float, default=1e-4
        Relative to the mean of the per-feature variances of all ranks' rows.
    verbose : int, default=0
        Rank 0 prints the iteration, inertia and center shift.
    random_state : int, RandomState instance or None, default=None
        The same on every rank (every rank draws the same numbers). None: rank 0 draws a seed
        from NumPy's global generator and broadcasts it, so the model is the same on every rank
        however each rank seeded NumPy.
    copy_x : bool, default=True
        spmdlearn centers a copy of this rank's rows and never modifies ``X``, whatever this value.
    algorithm : {"lloyd", "elkan"}, default="lloyd"
        "elkan" gives the same result as "lloyd" by definition (both find the same fixed point
        from the same start), so spmdlearn runs the same iterations for both: Lloyd's steps,
        which on a backend with the bounded step (``kmeans_lloyd_bounded``, the cpu backend)
        skip the rows whose label cannot change, with Hamerly's bounds (a lighter form of
        Elkan's, one lower bound per row) and the same labels and centers as the plain step.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    labels_ : array of shape (n_samples_local,), int32
        Labels of this rank's rows, of ``X``'s array type and on its device.
    inertia_ : float
        Over all ranks' rows.
    n_iter_ : int
    n_features_in_ : int

    Notes
    -----
    **Distributed semantics.** ``fit``, ``fit_predict``, ``fit_transform`` and ``score`` are
    collective; ``predict`` and ``transform`` validate collectively and return this rank's rows.
    ``cluster_centers_``, ``inertia_`` and ``n_iter_`` are identical on every rank;
    ``labels_`` are this rank's. Each Lloyd step is one fused reduction (sums, weights, inertia
    and the count of changed labels), folded in a fixed order so every rank takes the same
    branch. Memory per rank: this rank's rows (never copied: the centering is applied a block
    at a time), its labels, and O(n_clusters x n_features); k-means++ adds three per-row vectors,
    the bounded step two (each row's lower and upper bounds, float64).

    **Ties and the number of ranks.** Equal or near-equal values (rows equally far from their
    centers when an empty cluster is relocated; a relocated row and the mean of its copies, two
    centers a row is equally near) fall as the last bits of the centered rows and of the
    cluster sums fall. The centering is NumPy's ``X.mean(axis=0)`` of the gathered rows, bit
    for bit, for every number of ranks and split (the rows are summed in order over the ranks,
    one rank after another: one pass over the rows, not in parallel), while the rows hold at
    most 2**24 elements in all; beyond, it is the mean merged from the ranks' moments, whose
    last bits depend on the split. The choices among
    equally far rows are made on the distances of all ranks, as scikit-learn makes them, or
    beyond a bound by decreasing distance and then increasing global index. The cluster sums
    are each rank's partial, folded in rank order: where a cluster's rows lie on several
    ranks, their last bits, and so which of two coinciding centers a row joins, may differ
    from one process's, as scikit-learn's differ with its number of OpenMP threads.

    **Bounded steps.** A row keeps its label without a distance to every center only when its
    bound says the label wins by more than any rounding of the plain step's scores
    (``spmdlearn.reference.bound_margin``); the other rows are scored as the plain step scores
    them. Labels, centers, ``inertia_`` and ``n_iter_`` are therefore the plain step's, bit for
    bit on the cpu backend, except where a recomputed row's scores round differently in the
    BLAS product of fewer rows than the plain step's block, at a true near-tie. On a rank of
    more than 65,536 rows, a step whose rows mostly keep their labels also reads only the rows
    whose bounds fail, and updates the cluster sums from the rows that change cluster: the
    centers between steps are then the plain step's up to the rounding of the sums, so that a
    row at a tie (within that rounding) may fall otherwise; the sums are recomputed from every
    row at the last iteration, at convergence and in the final E-step, so that the fitted
    centers are the plain step's whenever the labels are.

    **Array types.** Rows of any array-API type (dpnp, CuPy, ...) stay in their namespace and
    on their device through seeding, Lloyd's iterations and the comparison of ``n_init`` runs;
    what crosses to the host is O(n_clusters): totals, counts, the rows drawn as centers, each
    step's partial. The exception is the relocation of an empty cluster, which takes each row's
    distance to its center (one number per row, a block at a time) to the host.

    **Empty clusters.** The rows that receive them are scikit-learn's (the farthest from their
    centers, as ``np.argpartition`` places them) whenever the farthest rows determine that
    choice or the total rows are at most 2**20; beyond, with ties among the farthest rows or
    three or more clusters empty at once, equally far rows are taken by lower global index and
    the rows go to the empty clusters by decreasing distance, so that no rank ever holds a
    per-row vector of all ranks (see ``_relocate_empty_clusters``).
    """

    _sklearn_class = _SkKMeans
    _fitted_attributes = ("cluster_centers_", "inertia_", "n_iter_", "_n_features_out")
    _parameter_constraints = {
        "n_clusters": [Interval(numbers.Integral, 1, None, "left")],
        "init": [Options(("k-means++", "random")), callable, "array-like"],
        "n_init": [Options(("auto",)), Interval(numbers.Integral, 1, None, "left")],
        "max_iter": [Interval(numbers.Integral, 1, None, "left")],
        "tol": [Interval(numbers.Real, 0, None, "left")],
        "verbose": ["verbose"],
        "random_state": ["random_state_like"],
        "copy_x": ["boolean"],
        "algorithm": [Options(("lloyd", "elkan"))],
    }

    def __init__(self, n_clusters=8, *, init="k-means++", n_init="auto", max_iter=300, tol=1e-4,
                 verbose=0, random_state=None, copy_x=True, algorithm="lloyd"):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm

    def _parameter_meaning(self, params):
        """The parameters by what they mean, for the ranks' comparison: ``n_init="auto"`` as
        scikit-learn resolves it (1 for k-means++ or an array init, else 10); ``copy_x`` and
        ``algorithm``, which do not change what spmdlearn computes, as their defaults."""
        params["n_init"] = _resolved_n_init(params.get("n_init"), params.get("init"))
        # X is never modified, and "elkan" runs Lloyd's steps (see the parameters)
        params.update(copy_x=True, algorithm="lloyd")
        return params

    def _check_init(self, estimator, X, y):
        if is_array_parameter(self.init):
            init = check_array(array_parameter(self.init), dtype=numpy_dtype(X.dtype),
                               input_name="init")
            if init.shape != (self.n_clusters, X.shape[1]):
                raise ValueError(f"The shape of the initial centers {init.shape} does not match "
                                 f"the number of clusters {self.n_clusters} and features "
                                 f"{X.shape[1]}.")

    def _reduction_size(self, X, y, sample_weight):
        """Float64 values of the fit's largest reduction (the moments, or a Lloyd step's
        partial): reserved in the status exchanges, so that each travels in its exchange."""
        d = X.shape[1]
        centers = np.zeros((self.n_clusters, d))
        return max(partial_size(MOMENTS, X, None),
                   partial_size(LLOYD, X, np.zeros(0, numpy_dtype(X.dtype)), centers,
                                np.zeros(0, dtype=np.int32), np.zeros(d, numpy_dtype(X.dtype))))

    def fit(self, X, y=None, sample_weight=None):
        """Collective: cluster all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (may be empty).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            This rank's row weights, non-negative.

        Returns
        -------
        self : KMeans

        Raises
        ------
        ValueError
            On every rank, naming the ranks at fault: a negative weight on any rank (for every
            init; scikit-learn's k-means++ and random init refuse them too, its array and
            callable inits do not check), fewer rows than clusters over all ranks, or an init
            array of the wrong shape.
        """
        comm = self._comm()
        shard = validate_fit(self, comm, X, sample_weight=sample_weight,
                             extra_check=self._check_init,
                             non_negative_weight=_NEGATIVE_WEIGHTS_REFUSED,
                             reserve=self._reduction_size)
        if shard.n_samples < self.n_clusters:
            raise ValueError(f"n_samples={shard.n_samples} should be >= n_clusters="
                             f"{self.n_clusters} (summed over {comm.size} ranks).")
        # Seeding and Lloyd's iterations run in X's namespace, on its device: only totals,
        # counts, the rows chosen as centers and the partials cross to the host.
        Xv = shard.X
        xp = get_namespace(Xv)
        dtype = numpy_dtype(Xv.dtype)
        if shard.sample_weight is None:
            # NumPy: one weight seen by every row (a read-only broadcast view, no per-row array)
            w = (np.broadcast_to(np.ones(1, dtype=dtype), (Xv.shape[0],)) if xp is np else
                 xp.ones((Xv.shape[0],), dtype=Xv.dtype, device=device(Xv)))
        elif xp is np:  # weights of another array type with NumPy rows: to the rows' host
            w = to_host(shard.sample_weight, "KMeans.fit")
        elif is_foreign_array(shard.sample_weight):
            w = shard.sample_weight
        else:  # host weights with device rows: to the rows' device, once
            w = from_model(shard.sample_weight, Xv)
        moments = allreduce(MOMENTS, Xv, None, comm=comm, backend=shard.backend)
        n = shard.n_samples
        tol = 0.0 if self.tol == 0 else float(np.mean(moments.m2 / n) * self.tol)
        init = self.init
        init_is_array = is_array_parameter(init)
        n_init = _resolved_n_init(self.n_init, init)
        if init_is_array and n_init != 1:
            warnings.warn("Explicit initial center position passed: performing only one init in "
                          f"KMeans instead of n_init={n_init}.", RuntimeWarning, stacklevel=2)
            n_init = 1
        # Center the data for more accurate distances, as scikit-learn does: NumPy's bits of
        # the mean up to a bound on the rows' elements (a pass that runs rank after rank),
        # beyond it the merged moments' mean (its last bits depend on the split).
        X_mean = (_global_mean(comm, Xv, n) if n * Xv.shape[1] <= _ORDERED_MEAN_ELEMENTS
                  else moments.mean.astype(dtype))
        data = _Data(comm, Xv, X_mean, w, shard.backend)
        # None: one seed for every rank, or the ranks would start from different centers.
        random_state = check_random_state(comm.agreed_random_state(self.random_state))
        best = None
        for _ in range(n_init):
            centers = self._init_centroids(data, init, init_is_array, X_mean, random_state)
            if self.verbose and comm.rank == 0:
                print("Initialization complete")
            labels, inertia, centers, n_iter = _lloyd(data, centers, self.max_iter, tol,
                                                     self.verbose)
            if best is None or (inertia < best[1] and not _is_same_clustering(
                    comm, labels, best[0], self.n_clusters)):
                best = (labels, inertia, centers, n_iter)
        labels, inertia, centers, n_iter = best
        # The last collective: what follows is computed from agreed values alone.
        distinct = len(np.unique(comm.allgather_rows(_unique_codes(labels, None,
                                                                   self.n_clusters), last=True)))
        if distinct < self.n_clusters:
            warnings.warn(f"Number of distinct clusters ({distinct}) found smaller than "
                          f"n_clusters ({self.n_clusters}). Possibly due to duplicate points "
                          "in X.", ConvergenceWarning, stacklevel=2)
        self.cluster_centers_ = (centers + X_mean).astype(dtype)
        self._n_features_out = self.n_clusters
        self.labels_ = labels  # the Lloyd kernel's labels: X's array type and device
        self.inertia_ = inertia
        self.n_iter_ = n_iter
        return self

    def _init_centroids(self, data, init, init_is_array, X_mean, random_state):
        comm = data.comm
        if init_is_array:
            return array_parameter(init, dtype=data.dtype) - X_mean
        if isinstance(init, str) and init == "k-means++":
            return _kmeans_plusplus(data, self.n_clusters, random_state)
        if isinstance(init, str) and init == "random":
            return _random_init(data, self.n_clusters, random_state)

        def call():
            # The callable gets the centered rows in their own array type, as in scikit-learn;
            # its centers (O(n_clusters)) come to the host.
            centers = check_array(to_host(init(data.centered(), self.n_clusters,
                                               random_state=random_state)),
                                  dtype=data.dtype, input_name="init")
            if centers.shape != (self.n_clusters, data.X.shape[1]):
                raise ValueError(f"The shape of the initial centers {centers.shape} does not "
                                 f"match the number of clusters {self.n_clusters}")
            return centers

        centers = comm.agree(call)
        digests = comm.allgather(centers.tobytes())
        if len(set(digests)) > 1:
            raise ValueError("the init callable returned different centers on different ranks; "
                             "it must return the same centers on every rank")
        return centers

    def _assign(self, X, backend, with_sq=True):
        """Labels and squared distances to the nearest center, block by block (E-step only);
        ``with_sq=False``: the labels only (no per-row distances are kept)."""
        n, k = X.shape[0], self.cluster_centers_.shape[0]
        # In X's array type and on its device, as the kernel returns them.
        labels = empty_like_rows(X, (n,), np.int32)
        sq = (empty_like_rows(X, (n,), np.float64 if has_float64(X) else np.float32)
              if with_sq else None)
        for lo in range(0, n, row_block(k)):
            hi = min(n, lo + row_block(k))
            block_labels, block_sq = call_kernel("kmeans_assign", backend,
                                                 X=take_rows(X, lo, hi),
                                                 centers=self.cluster_centers_)
            labels[lo:hi] = block_labels
            if with_sq:
                sq[lo:hi] = block_sq
        return labels, sq

    def predict(self, X):
        """Collective validation, local result: the nearest center of each of this rank's rows."""
        shard = validate_predict(self, self._comm(), X)
        return self._assign(shard.X, shard.backend, with_sq=False)[0]

    def fit_predict(self, X, y=None, sample_weight=None):
        """Collective: fit, then this rank's labels."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X):
        """Collective validation, local result: distances of this rank's rows to every center."""
        shard = validate_predict(self, self._comm(), X)
        n, k = shard.X.shape[0], self.cluster_centers_.shape[0]
        out = empty_like_rows(shard.X, (n, k))
        for lo in range(0, n, row_block(k)):
            hi = min(n, lo + row_block(k))
            out[lo:hi, ...] = call_kernel("kmeans_transform", shard.backend,
                                          X=take_rows(shard.X, lo, hi),
                                          centers=self.cluster_centers_)
        return out

    def fit_transform(self, X, y=None, sample_weight=None):
        """Collective: fit, then distances of this rank's rows to every center."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X, y=None, sample_weight=None):
        """Collective: minus the inertia of all ranks' rows (identical on every rank)."""
        comm = self._comm()
        shard = validate_predict(self, comm, X, sample_weight=sample_weight)
        w = np.ones(shard.X.shape[0]) if shard.sample_weight is None else shard.sample_weight
        _, sq = self._assign(shard.X, shard.backend)
        if is_foreign_array(sq):  # the weighted sum in the rows' namespace: one number crosses
            xp = get_namespace(sq)
            f = accumulation_dtype(sq)
            w = xp.astype(w, f) if is_foreign_array(w) else from_model(w, sq, numpy_dtype(f))
            local = float(xp.sum(w * sq))
        else:
            local = float(np.asarray(w, np.float64) @ sq) if len(sq) else 0.0
        return -float(comm.sum_identical([local])[0])

    def _to_sklearn(self):
        est = super()._to_sklearn()
        est._n_threads = 1
        return est
