"""KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors."""

from __future__ import annotations

import numpy as np
from sklearn import neighbors as _skn
from sklearn.base import ClassifierMixin, MultiOutputMixin, RegressorMixin

from .._array_api import like, to_host
from .._backends import call_kernel
from .._base import GatherFitDataMixin, thread_limit
from .._validation import validate_predict
from ..metrics import accuracy_score, r2_score
from ..metrics._classification import global_labels
from ..patterns import row_block

_CANDIDATE_BLOCK = 4096  # candidate rows per kernel call


def _slices(n, size):
    for lo in range(0, n, size):
        yield slice(lo, min(n, lo + size))
from ._base import _NeighborsBase

class _Servable(GatherFitDataMixin):
    """``gather_fit_data()`` (collective) then ``to_sklearn()`` (local): a neighbours model is
    its training rows, which serving without MPI needs in one process."""

    def _n_local_rows(self):
        return self._fit_X.shape[0]

    def _n_total_rows(self):
        return self.n_samples_fit_

    def _local_fit_data(self, start):
        data = {"X": to_host(self._fit_X, "to_sklearn")}
        if "_y" in self.__dict__:
            data["y"] = self._y
        return data

    def _sklearn_fitted_on(self, X, y=None):
        sk_class = type(self)._sklearn_class
        params = {k: v for k, v in self.get_params().items() if k in sk_class().get_params()}
        model = sk_class(**params)
        return model.fit(X) if y is None else model.fit(X, y)


_NOTES = """
    Notes
    -----
    **Distributed semantics.** Training rows stay on their rank: ``fit`` is collective (it
    validates and numbers the rows); ``kneighbors``, ``kneighbors_graph``{extra} are collective
    (every rank calls them with its queries, possibly none) and return this rank's queries'
    results, with global row indices. A neighbours model is its training rows: serving it
    without MPI takes the collective ``gather_fit_data()`` on every rank, after which
    ``to_sklearn()`` is local (without it, ``to_sklearn()`` raises on the calling rank unless
    that rank holds every training row). The local search structure (``algorithm``, ``leaf_size``)
    does not change the result: blocks of rows are compared directly. Neighbours are the ``k``
    smallest distances, ties broken by the lower global index.
"""


class NearestNeighbors(_Servable, _NeighborsBase):
    """Unsupervised neighbour search over the training rows of all ranks.

    Parameters
    ----------
    n_neighbors : int, default=5
    radius : float, default=1.0
        Default radius of :meth:`radius_neighbors`.
    algorithm : {"auto", "ball_tree", "kd_tree", "brute"}, default="auto"
    leaf_size : int, default=30
    metric : {"euclidean", "manhattan", "chebyshev", "minkowski", "cosine", ...}, default="minkowski"
    p : float, default=2
    metric_params : dict, default=None
        Only ``{"p": ...}``.
    n_jobs : int, default=None
        Threads for this rank's distance kernels.

    Attributes
    ----------
    n_samples_fit_ : int
        Training rows over all ranks.
    effective_metric_ : str
    effective_metric_params_ : dict
    n_features_in_ : int
    """ + _NOTES.format(extra=", ``radius_neighbors``")

    _sklearn_class = _skn.NearestNeighbors

    def __init__(self, *, n_neighbors=5, radius=1.0, algorithm="auto", leaf_size=30,
                 metric="minkowski", p=2, metric_params=None, n_jobs=None):
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.metric = metric
        self.p = p
        self.metric_params = metric_params
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        """Collective: keep this rank's training rows; number all ranks' rows globally."""
        self._clear_gathered()
        self._fit_rows(X)
        return self

    def radius_neighbors(self, X=None, radius=None, return_distance=True, sort_results=False):
        """Collective: the training rows (of all ranks) within ``radius`` of each of this rank's queries.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries,) of arrays
            Only with ``return_distance``.
        neigh_ind : ndarray of shape (n_queries,) of arrays
            Global row indices, in increasing order (or by distance with ``sort_results``).
        """
        comm = self._comm()
        radius = self.radius if radius is None else radius
        if X is None:
            shard = validate_predict(self, comm, self._fit_X, training_rows=True)
        else:
            shard = validate_predict(self, comm, X)
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        # Object arrays of per-query arrays have no array-API form: NumPy results, host rows.
        Q = to_host(shard.X, "NearestNeighbors.radius_neighbors")
        fit_X = to_host(self._fit_X, "NearestNeighbors.radius_neighbors")
        n_q = Q.shape[0]
        gidx = np.arange(self._fit_start, self._fit_start + self._fit_X.shape[0], dtype=np.int64)
        q_index = gidx if X is None else None
        rows, inds, dists = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
        with thread_limit(self.n_jobs):
            for _, (Y, G) in comm.ring((fit_X, gidx)):
                for bs in _slices(Y.shape[0], _CANDIDATE_BLOCK):
                    for qs in _slices(n_q, row_block(_CANDIDATE_BLOCK)):
                        indptr, ind, dist = call_kernel(
                            "radius_neighbors_csr", shard.backend, X=Q[qs], Y=Y[bs],
                            y_index=G[bs], eps=radius, metric=self.effective_metric_, p=self._p,
                            x_index=None if q_index is None else q_index[qs])
                        rows.append(np.repeat(np.arange(qs.start, qs.stop), np.diff(indptr)))
                        inds.append(ind)
                        dists.append(dist)
        rows, inds, dists = np.concatenate(rows), np.concatenate(inds), np.concatenate(dists)
        order = np.lexsort((inds, dists, rows)) if sort_results else np.lexsort((inds, rows))
        rows, inds, dists = rows[order], inds[order], dists[order]
        bounds = np.searchsorted(rows, np.arange(n_q + 1))
        out_d = np.empty(n_q, dtype=object)
        out_i = np.empty(n_q, dtype=object)
        for r in range(n_q):
            out_d[r], out_i[r] = dists[bounds[r]:bounds[r + 1]], inds[bounds[r]:bounds[r + 1]]
        return (out_d, out_i) if return_distance else out_i

    def _to_sklearn(self):
        return self._sklearn_fitted_on(self._fit_data()["X"])


class KNeighborsClassifier(ClassifierMixin, _Servable, _NeighborsBase):
    """k-nearest-neighbours vote over the training rows of all ranks.

    Parameters
    ----------
    n_neighbors : int, default=5
    weights : {"uniform", "distance"}, callable or None, default="uniform"
    algorithm, leaf_size, p, metric, metric_params, n_jobs
        As :class:`NearestNeighbors`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The union of the labels of all ranks.
    n_samples_fit_ : int
    n_features_in_ : int
    """ + _NOTES.format(extra=", ``predict``, ``predict_proba`` and ``score``")

    _sklearn_class = _skn.KNeighborsClassifier

    def __init__(self, n_neighbors=5, *, weights="uniform", algorithm="auto", leaf_size=30, p=2,
                 metric="minkowski", metric_params=None, n_jobs=None):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.p = p
        self.metric = metric
        self.metric_params = metric_params
        self.n_jobs = n_jobs

    def fit(self, X, y):
        """Collective: keep this rank's training rows and labels; agree on the classes."""
        from sklearn.utils.multiclass import check_classification_targets

        self._clear_gathered()
        shard = self._fit_rows(X, y, requires_y=True, classifier=True)
        y = shard.y
        if y.ndim == 2 and y.shape[1] == 1:
            import warnings

            from sklearn.exceptions import DataConversionWarning

            warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                          "change the shape of y to (n_samples,), for example using ravel().",
                          DataConversionWarning, stacklevel=2)
            y = y.ravel()
        check_classification_targets(y)
        self.outputs_2d_ = y.ndim == 2
        Y = y if self.outputs_2d_ else y[:, None]
        self._classes = [global_labels(self._comm(), Y[:, j]) for j in range(Y.shape[1])]
        self.classes_ = self._classes if self.outputs_2d_ else self._classes[0]
        self._y = np.column_stack([np.searchsorted(c, Y[:, j]) for j, c in enumerate(self._classes)]) \
            if len(Y) else np.zeros((0, Y.shape[1]), np.int64)
        return self

    def _payload(self):
        return self._y.astype(np.float64)

    def predict_proba(self, X):
        """Collective: class probabilities of this rank's queries (scikit-learn's vote).

        Returns
        -------
        p : array of shape (n_queries, n_classes), or a list of them (one per output)
            Of the queries' array type and on their device.
        """
        probabilities, Q = self._vote(X)
        return [like(p, Q) for p in probabilities] if self.outputs_2d_ else \
            like(probabilities[0], Q)

    def _vote(self, X):
        """(per-output NumPy probabilities, queries as validated)."""
        Q, k, exclude, backend = self._query(X, None)
        with thread_limit(self.n_jobs):
            dist, _, labels = self._ring_kneighbors(Q, k, exclude, backend)
        weights = self._weights(dist)
        weights = np.ones_like(dist) if weights is None else weights
        probabilities = []
        for j, classes in enumerate(self._classes):
            proba = np.zeros((Q.shape[0], len(classes)))
            idx = labels[:, :, j].astype(np.int64)
            for col in range(k):
                np.add.at(proba, (np.arange(Q.shape[0]), idx[:, col]), weights[:, col])
            normalizer = proba.sum(axis=1)[:, None]
            normalizer[normalizer == 0.0] = 1.0
            probabilities.append(proba / normalizer)
        return probabilities, Q

    def predict(self, X):
        """Collective: the predicted class of each of this rank's queries.

        Numeric labels come back in the queries' array type (string labels: NumPy).
        """
        proba, Q = self._vote(X)
        if not self.outputs_2d_:
            return like(self._classes[0][np.argmax(proba[0], axis=1)], Q)
        return like(np.column_stack([c[np.argmax(p, axis=1)]
                                     for c, p in zip(self._classes, proba)]), Q)

    def score(self, X, y, sample_weight=None):
        """Collective: accuracy over all ranks' rows."""
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

    def _to_sklearn(self):
        data = self._fit_data()
        labels = np.column_stack([c[data["y"][:, j]] for j, c in enumerate(self._classes)])
        return self._sklearn_fitted_on(data["X"], labels if self.outputs_2d_ else labels[:, 0])


class KNeighborsRegressor(MultiOutputMixin, RegressorMixin, _Servable, _NeighborsBase):
    """k-nearest-neighbours regression over the training rows of all ranks.

    Parameters
    ----------
    n_neighbors : int, default=5
    weights : {"uniform", "distance"}, callable or None, default="uniform"
    algorithm, leaf_size, p, metric, metric_params, n_jobs
        As :class:`NearestNeighbors`.

    Attributes
    ----------
    n_samples_fit_ : int
    n_features_in_ : int
    """ + _NOTES.format(extra=", ``predict`` and ``score``")

    _sklearn_class = _skn.KNeighborsRegressor

    def __init__(self, n_neighbors=5, *, weights="uniform", algorithm="auto", leaf_size=30, p=2,
                 metric="minkowski", metric_params=None, n_jobs=None):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.algorithm = algorithm
        self.leaf_size = leaf_size
        self.p = p
        self.metric = metric
        self.metric_params = metric_params
        self.n_jobs = n_jobs

    def fit(self, X, y):
        """Collective: keep this rank's training rows and targets."""
        self._clear_gathered()
        shard = self._fit_rows(X, y, requires_y=True)
        self._y_1d = shard.y.ndim == 1
        self._y = shard.y.reshape(len(shard.y), -1) if len(shard.y) else \
            np.zeros((0, 1 if shard.y.ndim == 1 else shard.y.shape[1]), dtype=shard.y.dtype)
        return self

    def _payload(self):
        return np.asarray(self._y, dtype=np.float64)

    def predict(self, X):
        """Collective: the (weighted) mean target of each query's neighbours."""
        Q, k, exclude, backend = self._query(X, None)
        with thread_limit(self.n_jobs):
            dist, _, values = self._ring_kneighbors(Q, k, exclude, backend)
        weights = self._weights(dist)
        if weights is None:
            pred = values.mean(axis=1)
        else:
            pred = np.sum(values * weights[:, :, None], axis=1) / np.sum(weights, axis=1)[:, None]
        return like(pred[:, 0] if self._y_1d else pred, Q)

    def score(self, X, y, sample_weight=None):
        """Collective: R^2 over all ranks' rows."""
        return r2_score(y, self.predict(X), sample_weight=sample_weight)

    def _to_sklearn(self):
        data = self._fit_data()
        return self._sklearn_fitted_on(data["X"], data["y"][:, 0] if self._y_1d else data["y"])
