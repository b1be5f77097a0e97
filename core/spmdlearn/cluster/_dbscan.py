"""DBSCAN over the rows of every rank, with scikit-learn's labels, numbering included."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN as _SkDBSCAN

from .._array_api import (accumulation_dtype, array_namespace, device, from_model,
                          in_namespace_of, is_foreign_array, numpy_dtype, to_host)
from .._backends import call_kernel, kernel_block_rows
from .._base import GatherFitDataMixin, SPMDEstimatorMixin, thread_limit
from .._validation import (Interval, Options, metric_meaning, neighbour_parameter_meaning,
                           validate_fit)
from ..patterns import COMPONENT_UNION, check_distance_range, row_block
from ..reference._neighbors import METRICS

_CANDIDATE_BLOCK = 4096  # candidate rows per kernel call; query rows from the block budget


def _slices(n, size):
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))


class DBSCAN(GatherFitDataMixin, SPMDEstimatorMixin, ClusterMixin, BaseEstimator):
    """Density-based clustering of the rows of all ranks.

    ``labels_`` are scikit-learn's on the gathered rows, numbering included: clusters are
    numbered in the order of their lowest-index core point (global row indices: rank r's rows
    come after ranks 0..r-1), and a border point joins the lowest-numbered cluster among its
    core neighbours.

    Parameters
    ----------
    eps : float, default=0.5
        Neighbourhood radius (> 0); ``dist <= eps`` is a neighbour.
    min_samples : int, default=5
        Weighted neighbours (the point itself included) that make a core point. Must not exceed
        the rows of all ranks.
    metric : {"euclidean", "manhattan", "chebyshev", "minkowski", "l1", "l2", "cityblock", \
"infinity"}, default="euclidean"
        Also "cosine". Other metrics ("precomputed" included: no rank holds the distances to
        other ranks' rows) raise NotImplementedError on every rank.
    metric_params : dict, default=None
        Only ``{"p": ...}`` for "minkowski" (it takes precedence over ``p``).
    algorithm : {"auto", "ball_tree", "kd_tree", "brute"}, default="auto"
        Accepted for scikit-learn's API; the result does not depend on the search structure, and
        spmdlearn compares blocks of rows directly.
    leaf_size : int, default=30
        Likewise accepted; no effect on the result.
    p : float, default=None
        Minkowski's power (2 if None), at least 1: scikit-learn's semi-metrics ``0 < p < 1``
        are refused on every rank.
    n_jobs : int, default=None
        Threads for this rank's distance kernels.

    Attributes
    ----------
    labels_ : array of shape (n_samples_local,)
        Labels of this rank's rows (-1: noise), of ``X``'s array type and on its device.
    core_sample_indices_ : ndarray of shape (n_core_local,)
        Indices into this rank's rows, so that ``X_local[core_sample_indices_]`` is
        ``components_``.
    components_ : ndarray of shape (n_core_local, n_features)
        This rank's core samples.
    n_features_in_ : int

    Notes
    -----
    **Distributed semantics.** ``fit`` and ``fit_predict`` are collective. Every attribute is
    for this rank's rows. The collective steps, each with its contract:

    1. *Neighbour counts* (ring pass): each rank's rows and weights visit every rank once
       (``Sendrecv`` around the ring); each rank adds, for each of its rows, the weights of the
       visiting rows within ``eps``. After the pass, every row knows whether its global
       weighted count reaches ``min_samples`` (with no negative weight, NumPy rows that reach it
       within their own rank are not queried against the visiting rows).
    2. *Components* (:data:`spmdlearn.patterns.COMPONENT_UNION`): this rank's
       core rows are joined along their pairs within ``eps`` (``radius_label_union``:
       union-find) into local components, each labelled with its smallest global index. One
       ring pass of the core rows and labels then compares each pair of ranks once (split
       evenly between the two) and returns the pairs of labels it joined (at most one per
       label); every rank gathers all ranks' pairs and computes the same connected components
       of the label graph (SciPy), so every core point holds the smallest global index of its
       cluster after one ring pass, whatever the clusters' shapes. (Where all ranks' pairs
       would exceed ``COMPONENT_UNION.max_gathered_pairs``, the local components go on to the
       label propagation to a fixed point, :data:`spmdlearn.patterns.LABEL_PROPAGATION`: each
       round, every rank's core points and labels visit every rank and each local component
       takes the smallest label of any core neighbour, until no label changes on any rank;
       rounds are bounded by the rank crossings along a cluster's longest path.)
    3. *Border points and numbering*: each non-core row takes the smallest label among its core
       neighbours (``radius_min_label``, one more ring pass of the core rows); clusters are
       numbered by sorting the distinct labels (gathered: one integer per cluster).

    Every step runs in ``X``'s array namespace, on its device (array-api-compat): rows, weights
    and labels visit the other ranks through host buffers only to be sent; the cluster ids (one
    integer per cluster) and the fitted ``core_sample_indices_`` and ``components_`` (NumPy)
    come to the host. Every distance computation is fused with its reduction in a kernel
    (``radius_counts``, ``radius_label_union``, ``radius_min_label``), one call per block (a
    backend may declare whole blocks: ``KERNEL_BLOCK_ROWS``). Memory per rank: its rows, one visiting block and one kernel block
    (``spmdlearn.patterns.BLOCK_BYTES``), and the joined label pairs of all ranks
    (at most one per local component and rank pair); never the rows of all ranks, nor all of
    its core-core pairs at once.

    Serving: ``gather_fit_data()`` (collective) gathers every rank's ``labels_``,
    ``core_sample_indices_`` (made global) and ``components_``; ``to_sklearn()`` is then local
    and returns scikit-learn's DBSCAN as fitted on the gathered rows. Without it,
    ``to_sklearn()`` raises on the calling rank (unless that rank holds every row).
    """

    _sklearn_class = _SkDBSCAN
    #: the stages in which scikit-learn's counterpart validates X with dtype="numeric", which
    #: refuses string arrays (:func:`spmdlearn._validation.x_dtype`)
    _numeric_X = ("fit", "predict")
    _fitted_attributes = ()
    _parameter_constraints = {
        "eps": [Interval(numbers.Real, 0.0, None, "neither")],
        "min_samples": [Interval(numbers.Integral, 1, None, "left")],
        "metric": [str, callable],
        "metric_params": [dict, None],
        "algorithm": [Options(("auto", "ball_tree", "kd_tree", "brute"))],
        "leaf_size": [Interval(numbers.Integral, 1, None, "left")],
        "p": [Interval(numbers.Real, 0.0, None, "left"), None],
        "n_jobs": [numbers.Integral, None],
    }

    def __init__(self, eps=0.5, *, min_samples=5, metric="euclidean", metric_params=None,
                 algorithm="auto", leaf_size=30, p=None, n_jobs=None):
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric
        self.metric_params = metric_params
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.p = p
        self.n_jobs = n_jobs

    def _metric(self):
        """``(metric, p)`` of the distance computed, by one name for all its spellings (the
        ranks agree on the distance, not on its spelling, and every rank calls the same
        kernels)."""
        return metric_meaning(self.metric, self.metric_params, self.p, METRICS)

    def _parameter_meaning(self, params):
        """The parameters by what they mean, for the ranks' comparison: the metric as the
        distance it computes (``"l2"`` is ``"euclidean"``, ``"minkowski"`` with ``p=1`` is
        ``"manhattan"``), and the local search structure (``algorithm``, ``leaf_size``) as the
        defaults (blocks of rows are compared directly)."""
        return neighbour_parameter_meaning(params, METRICS)

    def fit(self, X, y=None, sample_weight=None):
        """Collective: cluster all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (may be empty).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each row in its neighbours' counts (may be negative, as in scikit-learn).

        Returns
        -------
        self : DBSCAN

        Raises
        ------
        ValueError
            On every rank, for invalid input, or when the distances between the rows can
            overflow float64 and ``eps`` is too large to tell the pairs within it (euclidean and
            minkowski ``p > 1``: rows and ``eps`` of about ``1.8e308 ** (1 / p)`` and more), or,
            for the cosine metric, when a row's norm overflows
            (:func:`spmdlearn.patterns.check_distance_range`). scikit-learn gives no defined
            labels there (its trees join every pair, its brute force loses the distances).
        """
        comm = self._comm()
        self._clear_gathered()
        shard = validate_fit(self, comm, X, sample_weight=sample_weight, non_negative_weight=False,
                             extra_check=lambda est, X, y: est._metric())
        if self.min_samples > shard.n_samples:
            raise ValueError(f"min_samples={self.min_samples} should be <= n_samples="
                             f"{shard.n_samples} (summed over {comm.size} ranks)")
        metric, p = self._metric()
        # rows whose distances overflow cannot be told within eps or not: an error on every rank
        check_distance_range(comm, (shard.X,), metric=metric, p=p, radius=self.eps)
        # Every step runs in X's namespace, on its device: rows and labels visit the other
        # ranks through host buffers; only cluster ids (one integer per cluster) and the fitted
        # attributes come to the host.
        X = shard.X
        xp = array_namespace(X)
        dev = device(X)
        n = X.shape[0]
        start, n_total = comm.offsets(n)
        f = accumulation_dtype(X)  # float32 input on a device without float64
        w = xp.ones((n,), dtype=f, device=dev) if shard.sample_weight is None else \
            xp.astype(in_namespace_of(shard.sample_weight, X), f)

        with thread_limit(self.n_jobs):
            # 1. weighted neighbour counts, one ring pass. With no negative weight on any rank
            # (NumPy rows), a row whose count reached min_samples is core whatever follows
            # (adding non-negative numbers never lowers a floating-point sum): after this
            # rank's own block, only the rows still short of it are queried.
            counts = xp.zeros((n,), dtype=f, device=dev)
            q_rows, c_rows = kernel_block_rows("radius_counts", shard.backend, X,
                                               (row_block(_CANDIDATE_BLOCK), _CANDIDATE_BLOCK))
            negative = comm.exact_sum(int(bool(xp.any(w < 0))))
            for step, (_, (Y, wY)) in enumerate(comm.ring((X, w))):
                todo = None
                if step and not negative and not is_foreign_array(X):
                    todo = np.flatnonzero(counts < self.min_samples)
                Q = X if todo is None else X[todo]
                found = counts if todo is None else np.zeros(todo.shape[0], dtype=counts.dtype)
                for bs in _slices(Y.shape[0], c_rows):
                    for rows in _slices(Q.shape[0], q_rows):
                        found[rows] += call_kernel(
                            "radius_counts", shard.backend, X=Q[rows, ...], Y=Y[bs, ...],
                            sample_weight=wY[bs], eps=self.eps, metric=metric, p=p)
                if todo is not None:
                    counts[todo] += found
            core = counts >= self.min_samples
            core_idx = xp.nonzero(core)[0]
            m = int(core_idx.shape[0])
            Xc = xp.take(X, core_idx, axis=0)
            big = int(n_total)
            # 2-3. components in two ring passes, whatever the clusters' shapes
            core_label, best = COMPONENT_UNION.run(
                comm, X, core, eps=self.eps, metric=metric, p=p, backend=shard.backend,
                unlabelled=big, core_rows=Xc)

        # 4. numbering: clusters in the order of their lowest-index core point (the distinct
        # labels, one integer per cluster, are gathered on the host)
        cluster_ids = np.unique(comm.allgather_rows(
            to_host(xp.unique_values(core_label)).astype(np.int64)))
        ids = from_model(cluster_ids, X)
        labels = xp.full((n,), -1, dtype=xp.int64, device=dev)
        if m:
            labels = xp.where(core, xp.take(xp.searchsorted(ids, core_label), xp.clip(
                xp.cumulative_sum(xp.astype(core, xp.int64)) - 1, 0, None), axis=0), labels)
        border = ~core & (best < big)
        if cluster_ids.size:
            # searchsorted of an unlabelled row is masked out
            labels = xp.where(border, xp.searchsorted(ids, best), labels)
        self._n_samples_total = n_total
        self.labels_ = labels if is_foreign_array(X) else labels.astype(np.intp, copy=False)
        # fitted attributes are NumPy (the core rows' indices and coordinates)
        core_host = to_host(core_idx).astype(np.intp)
        self.core_sample_indices_ = core_host
        self.components_ = to_host(Xc).copy() if m else \
            np.empty((0, X.shape[1]), dtype=numpy_dtype(X.dtype))
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Collective: fit, then this rank's labels."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def _n_local_rows(self):
        return self.labels_.shape[0]

    def _n_total_rows(self):
        return self._n_samples_total

    def _local_fit_data(self, start):
        return {"labels_": self.labels_,
                "core_sample_indices_": (self.core_sample_indices_ + start).astype(np.intp),
                "components_": self.components_}

    def _to_sklearn(self):
        """scikit-learn's DBSCAN holding every rank's labels, core samples (global row indices)
        and components, as if fitted on the gathered rows (after ``gather_fit_data()``)."""
        est = _SkDBSCAN(**{k: v for k, v in self.get_params().items()
                           if k in _SkDBSCAN().get_params()})
        for name, value in self._fit_data().items():
            setattr(est, name, value)
        return est
