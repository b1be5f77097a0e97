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
from .._backends import call_kernel
from .._base import SPMDEstimatorMixin
from .._validation import Interval, Options, validate_fit, validate_predict
from ..collective import allreduce
from ..comm import owned_ids
from ..patterns import row_block
from ..reference._kmeans import LLOYD, assigned_sq_distances, relocation_rows
from ..reference._moments import MOMENTS


class _Data:
    """This rank's centered rows and what every step needs about them.

    The rows, their weights and norms stay in the input's array namespace ``xp`` (on its device);
    what crosses to the host is O(n_clusters): totals, counts, the few rows chosen as centers.
    """

    def __init__(self, comm, X, w, backend):
        self.comm, self.X, self.w, self.backend = comm, X, w, backend
        self.xp = get_namespace(X)
        self.dtype = numpy_dtype(X.dtype)
        self.n_local = int(X.shape[0])
        self.start, self.n_total = comm.offsets(self.n_local)
        if self.xp is np:
            self.x_sq = np.einsum("ij,ij->i", X, X)
        else:  # scikit-learn's row_norms in a namespace (rounds apart from einsum's order)
            self.x_sq = self.xp.sum(X * X, axis=1)
        self.acc = np.float64 if self.xp is np else accumulation_dtype(X)

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
        """The rows of global indices ``ids`` (the same on every rank), on every rank, NumPy
        ``(len(ids), n_features)`` of X's dtype: each owner sends its rows (collective)."""
        owned = owned_ids(ids, self.start, self.n_local)
        return self.comm.share_rows(self.take(self.X, owned - self.start), owned, ids)

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
    if get_namespace(a, b) is np:
        return a @ b
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
    cdf, total = data.global_cumsum(w / W)
    u = random_state.random_sample()
    first = int(data.count_below(cdf / total, np.array([u]), "right")[0])
    centers[0] = data.rows([first])[0]
    closest = call_kernel("kmeans_min_distances", data.backend, X=X, centers=centers[:1],
                          closest=None, x_squared_norms=data.x_sq)
    current_pot = float(comm.sum_identical([_weighted_sum(closest, w)])[0])
    for c in range(1, n_clusters):
        rand_vals = random_state.uniform(size=n_local_trials) * current_pot
        cumsum, _ = data.global_cumsum(w * closest)
        candidate_ids = np.minimum(data.count_below(cumsum, rand_vals, "left"), data.n_total - 1)
        candidates = data.rows(candidate_ids)
        candidates_pot = comm.sum_identical(call_kernel(
            "kmeans_plusplus_potentials", data.backend, X=X, sample_weight=w,
            candidates=candidates, closest=closest, x_squared_norms=data.x_sq))
        best = int(np.argmin(candidates_pot))
        current_pot = float(candidates_pot[best])
        closest = call_kernel("kmeans_min_distances", data.backend, X=X,
                              centers=candidates[best:best + 1], closest=closest,
                              x_squared_norms=data.x_sq)
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
    if xp is np:
        codes = labels1.astype(np.int64)
        if labels2 is not None:
            codes = codes * n_clusters + labels2
        return np.unique(codes)
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


def _relocate_empty_clusters(data: _Data, centers_old, sums, weights, labels):
    """scikit-learn's relocation of empty clusters (``_relocate_empty_clusters_dense``), globally.

    The distances of all ranks' rows to their assigned centers are gathered on rank 0, which
    applies scikit-learn's rule to them (:func:`~spmdlearn.reference.relocation_rows`): the
    ``n_empty`` farthest rows in the order of ``np.argpartition``, so that equal distances fall
    exactly as on the gathered data, and no relocation when every row sits on its center. The
    chosen global indices are broadcast; each chosen row leaves its old cluster's sums for an
    empty cluster. This is the one step whose memory is O(all rows), on rank 0 only and only
    while a cluster is empty: NumPy's introselect places ties by the positions of all values,
    so no smaller summary reproduces its choice.
    """
    comm, xp = data.comm, data.xp
    empty = np.flatnonzero(weights == 0)
    n_empty = len(empty)
    if xp is np:
        distances = assigned_sq_distances(data.X, centers_old, labels)
    elif data.n_local == 0:
        distances = np.zeros(0, dtype=data.dtype)
    else:
        # assigned_sq_distances' expression, in the rows' namespace. The per-row vector (not the
        # rows) then crosses to the host for the gather on rank 0: a counted fallback, taken only
        # while a cluster is empty.
        C = from_model(np.asarray(centers_old, dtype=data.dtype), data.X)
        diff = data.X - xp.take(C, xp.astype(labels, xp.int64), axis=0)
        distances = to_host(xp.sum(diff ** 2, axis=1), "KMeans empty-cluster relocation")
    distances = comm.gather_rows(distances, root=0)
    chosen = relocation_rows(distances, n_empty) if comm.rank == 0 else None
    chosen = comm.bcast(None if chosen is None else [int(g) for g in chosen], root=0)
    if chosen is None:
        return
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


def _lloyd(data: _Data, centers_init, max_iter, tol, verbose):
    """scikit-learn's ``_kmeans_single_lloyd``, with one fused reduction per step."""
    comm, xp = data.comm, data.xp
    centers = np.asarray(centers_init, dtype=np.float64)
    # The labels stay where the Lloyd kernel returns them: in the rows' namespace.
    labels = (np.full(data.n_local, -1, dtype=np.int32) if xp is np else
              xp.full((data.n_local,), -1, dtype=xp.int32, device=device(data.X)))
    strict = False

    def step(c, labels_old):
        return allreduce(LLOYD, data.X, data.w, c, labels_old, comm=comm, backend=data.backend,
                         with_rows=True)

    for i in range(max_iter):
        new_labels, p = step(centers, labels)
        sums, weights = p.sums.copy(), p.weights.copy()
        if np.any(weights == 0):
            _relocate_empty_clusters(data, centers, sums, weights, new_labels)
        centers_new = _average_centers(sums, weights)
        shift = np.sqrt(((centers_new - centers) ** 2).sum(axis=1))
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
        labels, p = step(centers, labels)
        inertia = float(p.inertia)
    else:
        inertia = float(comm.sum_identical([call_kernel(
            "kmeans_inertia", data.backend, X=data.X, sample_weight=data.w, centers=centers,
            labels=labels)])[0])
    return labels, inertia, centers, i + 1


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
        from the same start), so spmdlearn runs Lloyd for both.

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
    branch. Memory per rank: this rank's rows plus O(n_clusters x n_features).

    **Array types.** Rows of any array-API type (dpnp, CuPy, ...) stay in their namespace and
    on their device through seeding, Lloyd's iterations and the comparison of ``n_init`` runs;
    what crosses to the host is O(n_clusters): totals, counts, the rows drawn as centers, each
    step's partial. The exception is the relocation of an empty cluster, which takes each row's
    distance to its center (one number per row) to the host for the gather on rank 0.
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

    def _check_init(self, estimator, X, y):
        if isinstance(self.init, (list, tuple, np.ndarray)):
            init = check_array(self.init, dtype=numpy_dtype(X.dtype), input_name="init")
            if init.shape != (self.n_clusters, X.shape[1]):
                raise ValueError(f"The shape of the initial centers {init.shape} does not match "
                                 f"the number of clusters {self.n_clusters} and features "
                                 f"{X.shape[1]}.")

    def fit(self, X, y=None, sample_weight=None):
        """Collective: cluster all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (may be empty).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : KMeans
        """
        comm = self._comm()
        shard = validate_fit(self, comm, X, sample_weight=sample_weight,
                             extra_check=self._check_init)
        if shard.n_samples < self.n_clusters:
            raise ValueError(f"n_samples={shard.n_samples} should be >= n_clusters="
                             f"{self.n_clusters} (summed over {comm.size} ranks).")
        # Seeding and Lloyd's iterations run in X's namespace, on its device: only totals,
        # counts, the rows chosen as centers and the partials cross to the host.
        Xv = shard.X
        xp = get_namespace(Xv)
        dtype = numpy_dtype(Xv.dtype)
        if shard.sample_weight is None:
            w = (np.ones(Xv.shape[0], dtype=dtype) if xp is np else
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
        init_is_array = isinstance(init, (list, tuple, np.ndarray))
        n_init = self.n_init
        if n_init == "auto":
            n_init = 1 if (init_is_array or (isinstance(init, str) and init == "k-means++")) else 10
        if init_is_array and n_init != 1:
            warnings.warn("Explicit initial center position passed: performing only one init in "
                          f"KMeans instead of n_init={n_init}.", RuntimeWarning, stacklevel=2)
            n_init = 1
        # Center the data for more accurate distances, as scikit-learn does.
        X_mean = moments.mean.astype(dtype)
        data = _Data(comm, Xv - from_model(X_mean, Xv), w, shard.backend)
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
        distinct = len(np.unique(comm.allgather_rows(_unique_codes(labels, None,
                                                                   self.n_clusters))))
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
            return np.asarray(init, dtype=data.dtype) - X_mean
        if isinstance(init, str) and init == "k-means++":
            return _kmeans_plusplus(data, self.n_clusters, random_state)
        if isinstance(init, str) and init == "random":
            return _random_init(data, self.n_clusters, random_state)

        def call():
            # The callable gets the centered rows in their own array type, as in scikit-learn;
            # its centers (O(n_clusters)) come to the host.
            centers = check_array(to_host(init(data.X, self.n_clusters,
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

    def _assign(self, X, backend):
        """Labels and squared distances to the nearest center, block by block (E-step only)."""
        n, k = X.shape[0], self.cluster_centers_.shape[0]
        # In X's array type and on its device, as the kernel returns them.
        labels = empty_like_rows(X, (n,), np.int32)
        sq = empty_like_rows(X, (n,), np.float64 if has_float64(X) else np.float32)
        for lo in range(0, n, row_block(k)):
            hi = min(n, lo + row_block(k))
            labels[lo:hi], sq[lo:hi] = call_kernel("kmeans_assign", backend,
                                                   X=take_rows(X, lo, hi),
                                                   centers=self.cluster_centers_)
        return labels, sq

    def predict(self, X):
        """Collective validation, local result: the nearest center of each of this rank's rows."""
        shard = validate_predict(self, self._comm(), X)
        return self._assign(shard.X, shard.backend)[0]

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
