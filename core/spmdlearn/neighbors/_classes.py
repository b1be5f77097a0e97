"""KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from sklearn import neighbors as _skn
from sklearn.base import ClassifierMixin, MultiOutputMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets

from .._array_api import (array_namespace, csr_rows, accumulation_dtype, device, from_model, in_namespace_of,
                          is_foreign_array, take_labels, to_host)
from .._backends import call_kernel
from .._base import GatherFitDataMixin, thread_limit
from .._validation import validate_predict
from ..metrics import accuracy_score, r2_score
from ..metrics._classification import encode_labels, global_labels, label_values
from ..patterns import check_distance_range, piece_rows, row_block

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
            data["y"] = to_host(self._y, "to_sklearn")
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
        Minkowski's power, at least 1: scikit-learn's semi-metrics ``0 < p < 1`` (brute force
        only there) are refused on every rank.
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
    """ + _NOTES.format(extra=", ``radius_neighbors``, ``radius_neighbors_graph``")

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

        The object arrays are NumPy (as scikit-learn's); each per-query array is of the queries'
        array type and on their device (for ``X=None``: the training rows').

        Raises
        ------
        ValueError
            On every rank, when the distances between the rows can overflow float64 and the
            radius is too large to tell the pairs within it (euclidean and minkowski ``p > 1``:
            rows and radius of about ``1.8e308 ** (1 / p)`` and more), or, for the cosine
            metric, when a row's norm overflows (:func:`spmdlearn.patterns.check_distance_range`).
        """
        comm = self._comm()
        radius = self.radius if radius is None else radius
        if X is None:
            shard = validate_predict(self, comm, self._fit_X, training_rows=True)
        else:
            shard = validate_predict(self, comm, X)
        if sort_results and not return_distance:
            raise ValueError("return_distance must be True if sort_results is True.")
        # The pairs are found and ordered in the queries' namespace, on their device; only the
        # row boundaries (n_queries + 1 integers) come to the host, to build the object arrays
        # of per-query arrays (views of the ordered pairs, of the queries' type).
        Q = shard.X
        xp = array_namespace(Q)
        dev = device(Q)
        fit_X = in_namespace_of(self._fit_X, Q, "NearestNeighbors.radius_neighbors")
        # rows whose distances overflow cannot be told within the radius or not
        check_distance_range(comm, (Q, fit_X), metric=self._kernel_metric, p=self._p,
                             radius=radius)
        n_q = Q.shape[0]
        gidx = from_model(np.arange(self._fit_start, self._fit_start + self._fit_X.shape[0],
                                    dtype=np.int64), Q)
        q_index = gidx if X is None else None
        rows = [xp.zeros((0,), dtype=xp.int64, device=dev)]
        inds = [xp.zeros((0,), dtype=xp.int64, device=dev)]
        dists = [xp.zeros((0,), dtype=accumulation_dtype(Q), device=dev)]
        with thread_limit(self.n_jobs):
            for _, _, (Y, G) in comm.ring_pieces((fit_X, gidx), piece_rows(fit_X, gidx)):
                for bs in _slices(Y.shape[0], _CANDIDATE_BLOCK):
                    for qs in _slices(n_q, row_block(_CANDIDATE_BLOCK)):
                        indptr, ind, dist = call_kernel(
                            "radius_neighbors_csr", shard.backend, X=Q[qs, ...],
                            Y=Y[bs, ...], y_index=G[bs], eps=radius,
                            metric=self._kernel_metric, p=self._p,
                            x_index=None if q_index is None else q_index[qs])
                        rows.append(csr_rows(indptr, int(ind.shape[0]), qs.start))
                        inds.append(xp.astype(ind, xp.int64))
                        dists.append(dist)
        rows, inds = xp.concat(rows), xp.concat(inds)
        dists = xp.concat([xp.astype(d, dists[-1].dtype) for d in dists])
        # lexicographic order (rows, [distances,] indices): stable sorts, the last key first
        keys = (inds, dists, rows) if sort_results else (inds, rows)
        order = xp.arange(rows.shape[0], dtype=xp.int64, device=dev)
        for key in keys:
            order = xp.take(order, xp.argsort(xp.take(key, order), stable=True))
        rows, inds, dists = xp.take(rows, order), xp.take(inds, order), xp.take(dists, order)
        bounds = to_host(xp.searchsorted(rows, xp.arange(n_q + 1, dtype=xp.int64, device=dev)))
        out_d = np.empty(n_q, dtype=object)
        out_i = np.empty(n_q, dtype=object)
        for r in range(n_q):
            lo, hi = int(bounds[r]), int(bounds[r + 1])
            out_d[r], out_i[r] = dists[lo:hi], inds[lo:hi]
        return (out_d, out_i) if return_distance else out_i

    def radius_neighbors_graph(self, X=None, radius=None, mode="connectivity",
                               sort_results=False):
        """Collective: this rank's rows of the radius-neighbours graph, columns over all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            This rank's queries; None: this rank's training rows, each excluding itself.
        radius : float, default=None
            ``self.radius`` if None.
        mode : {"connectivity", "distance"}, default="connectivity"
        sort_results : bool, default=False
            Each row's entries by increasing distance (``mode="distance"`` only).

        Returns
        -------
        graph : sparse matrix of shape (n_queries, n_samples_fit_)
            CSR; column ``j`` is the global row index ``j`` (rank r's rows after ranks 0..r-1).
        """
        if mode == "connectivity":
            ind = self.radius_neighbors(X, radius, return_distance=False)
            dist = None
        elif mode == "distance":
            dist, ind = self.radius_neighbors(X, radius, return_distance=True,
                                              sort_results=sort_results)
        else:
            raise ValueError(f'Unsupported mode, must be one of "connectivity", or "distance" '
                             f'but got "{mode}" instead')
        # per-query arrays of the queries' type: an array-API array has a shape, not a len()
        lengths = np.array([int(i.shape[0]) for i in ind], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        # a SciPy sparse matrix is host memory
        indices = np.concatenate([to_host(i) for i in ind] + [np.zeros(0, np.int64)])
        data = np.ones(indices.shape[0]) if dist is None else \
            np.concatenate([np.asarray(to_host(d), np.float64) for d in dist] + [np.zeros(0)])
        return csr_matrix((data, indices, indptr), shape=(len(ind), self.n_samples_fit_))

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
        self._clear_gathered()
        shard = self._fit_rows(X, y, requires_y=True, classifier=True)
        y = shard.y
        if y.ndim == 2 and y.shape[1] == 1:
            import warnings

            from sklearn.exceptions import DataConversionWarning

            warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                          "change the shape of y to (n_samples,), for example using ravel().",
                          DataConversionWarning, stacklevel=2)
            y = y[:, 0]
        self.outputs_2d_ = y.ndim == 2
        if is_foreign_array(y):
            # numeric labels of a device array are encoded on its device: only the distinct
            # labels of each output (O(classes)) come to the host
            yp = array_namespace(y)
            Y = y if self.outputs_2d_ else y[:, None]
            for j in range(Y.shape[1]):
                check_classification_targets(label_values(Y[:, j]))
            encoded = [encode_labels(self._comm(), Y[:, j]) for j in range(Y.shape[1])]
            self._classes = [classes for classes, _ in encoded]
            self._y = yp.stack([in_namespace_of(index, y) for _, index in encoded], axis=1)
        else:
            y = np.asarray(y)
            check_classification_targets(y)
            Y = y if self.outputs_2d_ else y[:, None]
            self._classes = [global_labels(self._comm(), Y[:, j]) for j in range(Y.shape[1])]
            self._y = np.column_stack([np.searchsorted(c, Y[:, j])
                                       for j, c in enumerate(self._classes)]).astype(np.int64) \
                if len(Y) else np.zeros((0, Y.shape[1]), np.int64)
        self.classes_ = self._classes if self.outputs_2d_ else self._classes[0]
        return self

    def _payload(self):
        # class indices travel with the training rows, in their array type
        return in_namespace_of(self._y, self._fit_X, "KNeighborsClassifier.fit targets")

    def predict_proba(self, X):
        """Collective: class probabilities of this rank's queries (scikit-learn's vote).

        Returns
        -------
        p : array of shape (n_queries, n_classes), or a list of them (one per output)
            Of the queries' array type and on their device.
        """
        probabilities, _ = self._vote(X)
        return probabilities if self.outputs_2d_ else probabilities[0]

    def _vote(self, X):
        """(per-output probabilities, queries as validated), in the queries' namespace.

        scikit-learn's vote: each query's weighted class counts over its neighbours (added
        neighbour by neighbour, in order of distance), divided by their sum.
        """
        Q, k, exclude, backend = self._query(X, None)
        with thread_limit(self.n_jobs):
            dist, _, labels = self._ring_kneighbors(Q, k, exclude, backend)
        xp = array_namespace(dist)
        dev = device(dist)
        weights = self._weights(dist)
        if weights is None:
            weights = xp.ones(dist.shape, dtype=accumulation_dtype(dist), device=dev)
        probabilities = []
        for j, classes in enumerate(self._classes):
            columns = xp.arange(len(classes), dtype=xp.int64, device=dev)[None, :]
            idx = xp.astype(labels[:, :, j], xp.int64)
            proba = xp.zeros((Q.shape[0], len(classes)),
                             dtype=accumulation_dtype(dist), device=dev)
            for col in range(k):
                # adding 0.0 elsewhere leaves a count unchanged
                proba = proba + xp.where(idx[:, col:col + 1] == columns,
                                         weights[:, col:col + 1], 0.0)
            normalizer = xp.sum(proba, axis=1)[:, None]
            normalizer = xp.where(normalizer == 0.0, 1.0, normalizer)
            probabilities.append(proba / normalizer)
        return probabilities, Q

    def predict(self, X):
        """Collective: the predicted class of each of this rank's queries.

        Numeric labels come back in the queries' array type (string labels: NumPy). Ties go to
        the first class in ``classes_`` order, as in scikit-learn.
        """
        proba, Q = self._vote(X)
        xp = array_namespace(proba[0])
        # argmax takes the first maximum: scikit-learn's tie rule
        predicted = [take_labels(c, xp.argmax(p, axis=1)) for c, p in zip(self._classes, proba)]
        if not self.outputs_2d_:
            return predicted[0]
        if all(is_foreign_array(v) for v in predicted):
            return xp.stack(predicted, axis=1)
        return np.column_stack([to_host(v) for v in predicted])  # string labels: NumPy

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
        y = shard.y
        self._y_1d = y.ndim == 1
        # targets stay in their array type (a device array on its device)
        self._y = array_namespace(y).reshape(y, (y.shape[0], 1 if y.ndim == 1 else y.shape[1]))
        return self

    def _payload(self):
        yp = array_namespace(self._y)
        f = accumulation_dtype(self._y)  # float32 input on a device without float64
        return in_namespace_of(yp.astype(self._y, f), self._fit_X,
                               "KNeighborsRegressor.fit targets")

    def predict(self, X):
        """Collective: the (weighted) mean target of each query's neighbours."""
        Q, k, exclude, backend = self._query(X, None)
        with thread_limit(self.n_jobs):
            dist, _, values = self._ring_kneighbors(Q, k, exclude, backend)
        xp = array_namespace(values)
        weights = self._weights(dist)
        if weights is None:
            pred = xp.mean(values, axis=1)
        else:
            pred = xp.sum(values * weights[:, :, None], axis=1) / \
                xp.sum(weights, axis=1)[:, None]
        return pred[:, 0] if self._y_1d else pred

    def score(self, X, y, sample_weight=None):
        """Collective: R^2 over all ranks' rows."""
        return r2_score(y, self.predict(X), sample_weight=sample_weight)

    def _to_sklearn(self):
        data = self._fit_data()
        return self._sklearn_fitted_on(data["X"], data["y"][:, 0] if self._y_1d else data["y"])
