"""Nearest neighbours over the training rows of every rank: a ring pass and a top-k merge."""

from __future__ import annotations

import numbers

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.base import BaseEstimator

from .._array_api import array_namespace, in_namespace_of, to_host
from .._base import SPMDEstimatorMixin, thread_limit
from .._validation import (Interval, Options, check_metric, metric_meaning,
                           neighbour_parameter_meaning, validate_fit, validate_predict)
from ..patterns import RING_TOPK, lookup_payload
from ..reference._neighbors import METRICS


class _NeighborsBase(SPMDEstimatorMixin, BaseEstimator):
    """Training rows stay on their rank; queries meet them in a ring pass.

    Collective pattern (``kneighbors``): :data:`spmdlearn.patterns.RING_TOPK`. Every rank's
    training block (rows, global indices) visits every rank once (``Sendrecv`` around the ring).
    Each rank keeps, for each of its query rows, the ``k`` best candidates so far and merges each
    visiting block into them with the ``knn_merge`` kernel (the ``k`` smallest distances, ties
    broken by the lower global index). The merge is associative and commutative, so the result
    does not depend on the order in which blocks arrive. Targets are then looked up by global
    index (:func:`spmdlearn.patterns.lookup_payload`, a ring pass of the targets only). The
    other ranks' rows visit in pieces (:meth:`spmdlearn.comm.Comm.ring_pieces`). Memory per
    rank: its rows, one visiting piece (``PIECE_BYTES``), the running best ``(n_queries, k)``
    and one kernel block (``BLOCK_BYTES``).

    Everything between kernels (the search, the lookup, the vote or mean) runs in the queries'
    array namespace, on their device; blocks cross the host only to be sent.
    """

    #: the stages in which scikit-learn's counterpart validates X with dtype="numeric", which
    #: refuses string arrays (:func:`spmdlearn._validation.x_dtype`)
    _numeric_X = ("fit", "predict")

    _parameter_constraints = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, "left"), None],
        "radius": [Interval(numbers.Real, 0, None, "both"), None],
        "algorithm": [Options(("auto", "ball_tree", "kd_tree", "brute"))],
        "leaf_size": [Interval(numbers.Integral, 1, None, "left")],
        "p": [Interval(numbers.Real, 0, None, "right"), None],
        "metric": [str],
        "metric_params": [dict, None],
        "n_jobs": [numbers.Integral, None],
        "weights": [Options(("uniform", "distance")), callable, None],
    }

    def _metric(self):
        metric, p = check_metric(self.metric, self.metric_params, self.p, METRICS)
        return metric, (p if metric == "minkowski" else None)

    def _parameter_meaning(self, params):
        """The parameters by what they mean, for the ranks' comparison
        (:func:`~spmdlearn._validation.neighbour_parameter_meaning`): ``"l2"`` is
        ``"euclidean"``, ``"minkowski"`` with ``p=1`` is ``"manhattan"``, ``weights=None`` is
        ``"uniform"``; ``algorithm`` and ``leaf_size`` do not change the result."""
        return neighbour_parameter_meaning(params, METRICS)

    def _fit_rows(self, X, y=None, *, requires_y=False, classifier=False):
        comm = self._comm()
        shard = validate_fit(self, comm, X, y, requires_y=requires_y, multi_output=True,
                             y_numeric=not classifier,
                             extra_check=lambda est, X, y: est._metric())
        self._fit_X = shard.X
        self._fit_start, self.n_samples_fit_ = comm.offsets(shard.X.shape[0])
        metric, p = self._metric()
        # what every rank computes: the same distance, by one name (the ranks agreed on the
        # distance, not on its spelling), so that every rank calls the same kernels
        self._kernel_metric, self._p = metric_meaning(self.metric, self.metric_params, self.p,
                                                      METRICS)
        # scikit-learn's: the metric as given, "minkowski" with p 1, 2 or infinity by its name
        if metric == "minkowski" and self._kernel_metric != "minkowski":
            metric, p = self._kernel_metric, None
        self.effective_metric_ = metric
        self.effective_metric_params_ = {} if p is None else {"p": p}
        return shard

    def _payload(self):
        """Per-row values that travel with the training rows (targets), shape (n_rows, m), in
        the training rows' array type; None for none."""
        return None

    def _ring_kneighbors(self, Q, k, exclude_self, backend, with_payload=True):
        """(distances, global indices, payload) of the k nearest training rows of each query.

        The search runs in the queries' array namespace, on their device: the running best
        stays there, the training rows travel the ring through host buffers and arrive there
        (:data:`~spmdlearn.patterns.RING_TOPK`), and the payload is looked up there
        (:func:`~spmdlearn.patterns.lookup_payload`). All three are of the queries' type; the
        payload is None without ``with_payload`` or when the estimator has none.
        """
        comm = self._comm()
        name = type(self).__name__
        # training rows of another type than the queries (fitted on NumPy, asked with device
        # arrays, or the reverse) meet them in the queries' type
        fit_X = in_namespace_of(self._fit_X, Q, f"{name} neighbour search")
        dist, ind = RING_TOPK.run(comm, Q, fit_X, k, exclude_self=exclude_self,
                                  metric=self._kernel_metric, p=self._p, backend=backend)
        payload = self._payload() if with_payload else None
        values = None if payload is None else lookup_payload(comm, ind, payload)
        return dist, ind, values

    def _query(self, X, n_neighbors):
        """Collective validation; returns (queries, k, exclude_self, backend)."""
        comm = self._comm()
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        if X is None:
            shard = validate_predict(self, comm, self._fit_X, training_rows=True)
            exclude_self = True
        else:
            shard = validate_predict(self, comm, X)
            exclude_self = False
        if not isinstance(k, numbers.Integral) or k <= 0:
            raise ValueError(f"Expected n_neighbors > 0. Got {k}")
        limit = self.n_samples_fit_ - int(exclude_self)
        if k > limit:
            raise ValueError(f"Expected n_neighbors <= n_samples_fit{' - 1' if exclude_self else ''},"
                             f" but n_neighbors = {k}, n_samples_fit = {self.n_samples_fit_} "
                             f"(summed over {comm.size} ranks)")
        return shard.X, int(k), exclude_self, shard.backend

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Collective: the k nearest training rows (of all ranks) of each of this rank's queries.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            This rank's queries; None: this rank's training rows, each excluding itself.
        n_neighbors : int, default=None
            ``self.n_neighbors`` if None.
        return_distance : bool, default=True

        Returns
        -------
        neigh_dist : array of shape (n_queries, n_neighbors)
            Only with ``return_distance``.
        neigh_ind : array of shape (n_queries, n_neighbors)
            Global row indices (rank r's rows come after ranks 0..r-1).

        Both are of the queries' array type and on their device (for ``X=None``: the training
        rows' type).
        """
        Q, k, exclude_self, backend = self._query(X, n_neighbors)
        with thread_limit(self.n_jobs):
            dist, ind, _ = self._ring_kneighbors(Q, k, exclude_self, backend, with_payload=False)
        return (dist, ind) if return_distance else ind

    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity"):
        """Collective: this rank's rows of the k-neighbours graph, columns over all ranks' rows.

        Returns
        -------
        graph : sparse matrix of shape (n_queries, n_samples_fit_)
        """
        if mode not in ("connectivity", "distance"):
            raise ValueError(f'Unsupported mode, must be one of "connectivity", or "distance" '
                             f"but got {mode!r} instead")
        dist, ind = self.kneighbors(X, n_neighbors, return_distance=True)
        dist, ind = to_host(dist), to_host(ind)  # a SciPy sparse matrix is host memory
        n_q, k = ind.shape
        data = np.ones(n_q * k) if mode == "connectivity" else dist.ravel()
        return csr_matrix((data, ind.ravel(), np.arange(0, n_q * k + 1, k)),
                          shape=(n_q, self.n_samples_fit_))

    def _weights(self, dist):
        """scikit-learn's neighbour weights, in ``dist``'s namespace: None (uniform), 1/d (a
        query at distance zero of some neighbours weighs those 1, the others 0), or the
        callable's (of ``dist``'s array type)."""
        if self.weights in (None, "uniform"):
            return None
        if self.weights == "distance":
            xp = array_namespace(dist)
            with np.errstate(divide="ignore"):
                w = 1.0 / dist
            inf_mask = xp.isinf(w)
            inf_row = xp.any(inf_mask, axis=1)
            return xp.where(inf_row[:, None], xp.astype(inf_mask, w.dtype), w)
        return in_namespace_of(self.weights(dist), dist, "neighbour weights")
