"""Nearest neighbours over the training rows of every rank: a ring pass and a top-k merge."""

from __future__ import annotations

import numbers

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.base import BaseEstimator

from .._array_api import is_foreign_array, like, to_host
from .._backends import claims
from .._base import SPMDEstimatorMixin, thread_limit
from .._validation import Interval, Options, check_metric, validate_fit, validate_predict
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
    index (:func:`spmdlearn.patterns.lookup_payload`, a ring pass of the targets only). Memory
    per rank: its rows, one visiting block, and one kernel block (``BLOCK_BYTES``).
    """

    _parameter_constraints = {
        "n_neighbors": [Interval(numbers.Integral, 1, None, "left"), None],
        "radius": [Interval(numbers.Real, 0, None, "left"), None],
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

    def _fit_rows(self, X, y=None, *, requires_y=False, classifier=False):
        comm = self._comm()
        shard = validate_fit(self, comm, X, y, requires_y=requires_y, multi_output=True,
                             y_numeric=not classifier,
                             extra_check=lambda est, X, y: est._metric())
        self._fit_X = shard.X
        # Targets are encoded on the host (one value per row).
        shard.y = to_host(shard.y, f"{type(self).__name__}.fit targets")
        self._fit_start, self.n_samples_fit_ = comm.offsets(shard.X.shape[0])
        self.effective_metric_, p = self._metric()
        self.effective_metric_params_ = {} if p is None else {"p": p}
        self._p = p
        return shard

    def _payload(self):
        """Per-row values that travel with the training rows (targets), shape (n_rows, m)."""
        return np.zeros((self._fit_X.shape[0], 0))

    def _ring_kneighbors(self, Q, k, exclude_self, backend, with_payload=True,
                         keep_device=False):
        """(distances, global indices, payload) of the k nearest training rows of each query.

        Where the backend claims the queries' array type (a device array), the search runs
        there: the queries and the running best stay on their device, and the training rows
        travel the ring through host memory (MPI's buffers). Otherwise the search runs on host
        copies, a counted fallback. The distances and indices are NumPy, or with
        ``keep_device`` of the queries' type; the payload is NumPy.
        """
        comm = self._comm()
        name = type(self).__name__
        on_device = is_foreign_array(Q) and claims(backend, Q)
        if not on_device:
            Q = to_host(Q, f"{name} neighbour search")
        fit_X = to_host(self._fit_X, None if on_device else f"{name} neighbour search")
        dist, ind = RING_TOPK.run(comm, Q, fit_X, k, exclude_self=exclude_self,
                                  metric=self.effective_metric_, p=self._p, backend=backend)
        host_ind = to_host(ind)
        if not keep_device:  # the vote (or prediction) runs on the host: counted
            dist, ind = to_host(dist, f"{name} neighbour vote"), host_ind
        payload = self._payload()
        values = lookup_payload(comm, host_ind, payload) if with_payload and payload.shape[1] \
            else np.zeros(host_ind.shape + (payload.shape[1],))
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
            dist, ind, _ = self._ring_kneighbors(Q, k, exclude_self, backend, with_payload=False,
                                                 keep_device=True)
        return (like(dist, Q), like(ind, Q)) if return_distance else like(ind, Q)

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
        """scikit-learn's neighbour weights: None (uniform), 1/d (zeros take all), or callable."""
        if self.weights in (None, "uniform"):
            return None
        if self.weights == "distance":
            with np.errstate(divide="ignore"):
                w = 1.0 / dist
            inf_mask = np.isinf(w)
            inf_row = np.any(inf_mask, axis=1)
            w[inf_row] = inf_mask[inf_row]
            return w
        return self.weights(dist)
