"""DBSCAN over the rows of every rank, with scikit-learn's labels, numbering included."""

from __future__ import annotations

import numbers

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN as _SkDBSCAN

from .._array_api import like, to_host
from .._backends import call_kernel
from .._base import GatherFitDataMixin, SPMDEstimatorMixin, thread_limit
from .._validation import Interval, Options, check_metric, validate_fit
from ..patterns import LABEL_PROPAGATION, row_block
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
        Minkowski's power (2 if None).
    n_jobs : int, default=None
        Threads for this rank's distance kernels.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples_local,)
        Labels of this rank's rows (-1: noise).
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
       visiting rows within ``eps``. After the pass, every row knows its global weighted count.
    2. *Components* (label propagation to a fixed point,
       :data:`spmdlearn.patterns.LABEL_PROPAGATION`): each core point starts with the
       smallest global index of its local connected component (this rank's core-core pairs,
       block by block, merged into the components found so far). Each round, every rank's core points and labels visit every rank; each
       local component takes the smallest label of any core neighbour. Rounds repeat until no
       label changes on any rank (an exact integer agreement); then every core point holds the
       smallest global index of its cluster. Rounds are bounded by the number of rank crossings
       along a cluster's longest path.
    3. *Border points and numbering*: in the last round each non-core row records the smallest
       label among its core neighbours; clusters are numbered by sorting the distinct labels
       (gathered: one integer per cluster).

    Every distance computation is fused with its reduction in a kernel (``radius_counts``,
    ``radius_neighbors_csr``, ``radius_min_label``), one call per block. Memory per rank: its
    rows, one visiting block and one kernel block (``spmdlearn.patterns.BLOCK_BYTES``); never the
    rows of all ranks, nor all of its core-core pairs at once.

    Serving: ``gather_fit_data()`` (collective) gathers every rank's ``labels_``,
    ``core_sample_indices_`` (made global) and ``components_``; ``to_sklearn()`` is then local
    and returns scikit-learn's DBSCAN as fitted on the gathered rows. Without it,
    ``to_sklearn()`` raises on the calling rank (unless that rank holds every row).
    """

    _sklearn_class = _SkDBSCAN
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
        return check_metric(self.metric, self.metric_params, self.p, METRICS)

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
        """
        comm = self._comm()
        self._clear_gathered()
        shard = validate_fit(self, comm, X, sample_weight=sample_weight, non_negative_weight=False,
                             extra_check=lambda est, X, y: est._metric())
        if self.min_samples > shard.n_samples:
            raise ValueError(f"min_samples={self.min_samples} should be <= n_samples="
                             f"{shard.n_samples} (summed over {comm.size} ranks)")
        metric, p = self._metric()
        # The ring pass and the label propagation work on host rows: a counted fallback for an
        # array that is not NumPy (labels_ go back to its type).
        X = to_host(shard.X, "DBSCAN.fit")
        n = X.shape[0]
        start, n_total = comm.offsets(n)
        w = np.ones(n) if shard.sample_weight is None else \
            to_host(shard.sample_weight, "DBSCAN.fit").astype(np.float64)

        with thread_limit(self.n_jobs):
            # 1. weighted neighbour counts, one ring pass
            counts = np.zeros(n)
            for _, (Y, wY) in comm.ring((X, w)):
                for bs in _slices(Y.shape[0], _CANDIDATE_BLOCK):
                    for rows in _slices(n, row_block(_CANDIDATE_BLOCK)):
                        counts[rows] += call_kernel(
                            "radius_counts", shard.backend, X=X[rows], Y=Y[bs],
                            sample_weight=wY[bs], eps=self.eps, metric=metric, p=p)
            core = counts >= self.min_samples

            # 2. local components of core points: the core-core pairs of this rank, block by
            # block (radius_neighbors_csr), merged into the components found so far
            core_idx = np.flatnonzero(core)
            m = len(core_idx)
            Xc = X[core_idx]
            local_index = np.arange(m, dtype=np.int64)
            component = local_index.copy()
            n_comp = m
            for bs in _slices(m, _CANDIDATE_BLOCK):
                for rows in _slices(m, row_block(_CANDIDATE_BLOCK)):
                    indptr, nbr, _ = call_kernel(
                        "radius_neighbors_csr", shard.backend, X=Xc[rows], Y=Xc[bs],
                        y_index=local_index[bs], eps=self.eps, metric=metric, p=p, x_index=None)
                    src = component[np.repeat(local_index[rows], np.diff(indptr))]
                    dst = component[nbr]
                    keep = src != dst
                    if keep.any():
                        n_comp, merged = connected_components(coo_matrix(
                            (np.ones(int(keep.sum())), (src[keep], dst[keep])),
                            shape=(n_comp, n_comp)), directed=False)
                        component = merged[component]
            big = np.int64(n_total)
            comp_label = np.full(n_comp, big)
            np.minimum.at(comp_label, component, core_idx + start)

            # 3. propagate the smallest global index across ranks, to a fixed point
            comp_label, best = LABEL_PROPAGATION.run(
                comm, X, core, component, comp_label, eps=self.eps, metric=metric, p=p,
                backend=shard.backend, unlabelled=n_total)

        # 4. numbering: clusters in the order of their lowest-index core point
        cluster_ids = np.unique(comm.allgather_rows(np.unique(comp_label).astype(np.int64)))
        labels = np.full(n, -1, dtype=np.intp)
        labels[core_idx] = np.searchsorted(cluster_ids, comp_label[component])
        border = ~core & (best < big)
        labels[border] = np.searchsorted(cluster_ids, best[border])
        self._n_samples_total = n_total
        self.labels_ = like(labels, shard.X)
        self.core_sample_indices_ = core_idx.astype(np.intp)
        self.components_ = X[core_idx].copy() if m else np.empty((0, X.shape[1]), dtype=X.dtype)
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
