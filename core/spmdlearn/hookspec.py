"""Kernel hook specifications: what a backend may implement.

A backend is a pluggy plugin registered under the entry-point group ``spmdlearn.backends``::

    [project.entry-points."spmdlearn.backends"]
    mybackend = "mypackage.plugin"       # a module (or object) with @hookimpl functions

Selection: each backend says which inputs it serves (:func:`spmdlearn_claims`). With
``SPMDLEARN_BACKEND=auto`` (the default) the first available backend that claims the input is
selected; the reference (NumPy) claims NumPy and is asked last. ``SPMDLEARN_BACKEND=NAME`` or
``spmdlearn.config_context(backend=NAME)`` selects a backend by name, whatever it claims; a
name that is not installed, or installed but unavailable (``spmdlearn_backend_info`` says
``available: False``), is an error listing the available backends.

Dispatch: each kernel call goes through pluggy's relay (a subset hook caller of the selected
backend and the reference, ``firstresult``): the backend's implementation runs first, and the
reference (``trylast``) serves what the backend lacks or declines. Every call is counted per
(backend, kernel) as served, declined or fallback (``spmdlearn._backends.dispatch_counts``),
and ``SPMDLEARN_VERBOSE=1`` logs every decline and fallback.

Rules for every kernel below:

* it computes on this rank's data only and **must not communicate**;
* it is called by keyword; an implementation takes only the arguments it uses;
* returning ``None`` declines (wrong array type, unsupported dtype, missing dependency); the next
  backend, finally the NumPy reference, then serves the call. Never raise for "unsupported";
* its result must agree with the reference kernel (``spmdlearn.reference``) within the tolerances
  of the conformance suite (``python -m spmdlearn_conformance --backend NAME --array-type
  TYPE``), with the reference's dtype and array type on the same input;
* a backend that claims an array type serves, on that type, every kernel it implements.

The reference implements every kernel with ``trylast=True``.
"""

from __future__ import annotations

import pluggy

PROJECT = "spmdlearn"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Mark a backend's kernel implementations: ``@hookimpl def spmdlearn_moments_local(X, ...)``.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def spmdlearn_backend_info():
    """Describe this backend (for ``python -m spmdlearn info``).

    Returns
    -------
    info : dict
        ``{"name": str, "available": bool, "devices": list of str, "note": str}``: whether its
        dependencies import and which devices it would use.
    """


@hookspec
def spmdlearn_claims(X):
    """Whether this backend serves kernels on inputs like ``X`` (its array type, its device).

    ``SPMDLEARN_BACKEND=auto`` (the default) selects the first available backend that claims
    the input; the reference claims NumPy and is asked last. A backend that claims an array
    type must serve, on that type, every kernel it implements: the conformance suite
    (``--array-type``) checks it. Claim nothing to be used only when selected by name.

    Parameters
    ----------
    X : any
        The estimator's input: a NumPy array, another library's array, a list, a DataFrame, or
        None (no input). Do not import a library only to inspect ``X``: an array of a library
        that is not imported cannot be ``X``.

    Returns
    -------
    claimed : bool or None
        True claims ``X``; False or None does not. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_moments_local(X, sample_weight):
    """Per-column moments of one shard: :func:`spmdlearn.reference.moments_local`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        May have zero rows.
    sample_weight : array of shape (n_samples,) or None
        Multiplies each row before its statistics are taken.

    Returns
    -------
    partial : spmdlearn.reference.MomentsPartial or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_comoments_local(X, Y, sample_weight):
    """Weighted means and centered co-moments of ``[X, Y]``: :func:`spmdlearn.reference.comoments_local`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    Y : array of shape (n_samples,) or (n_samples, n_targets), or None
    sample_weight : array of shape (n_samples,) or None
        Non-negative frequency weights.

    Returns
    -------
    partial : spmdlearn.reference.ComomentsPartial or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_linear_predict(X, coef, intercept):
    """``X @ coef.T + intercept`` for this rank's rows: :func:`spmdlearn.reference.linear_predict`.

    Returns
    -------
    y : array of shape (n_samples,) or (n_samples, n_targets), in X's array type, or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_mahalanobis(X, location, precision):
    """Squared Mahalanobis distances of this rank's rows: :func:`spmdlearn.reference.mahalanobis`.

    Returns
    -------
    dist : array of shape (n_samples,), or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_tsqr_local(X, mean):
    """``R`` of the QR of this rank's rows centered by ``mean``: :func:`spmdlearn.reference.tsqr_local`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    mean : ndarray of shape (n_features,), float64

    Returns
    -------
    partial : spmdlearn.reference.TSQRPartial or None
        ``(n_features, n_features)``, zero-padded, non-negative diagonal. None declines.
        Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_sq_distances(X, centers, x_squared_norms):
    """Squared euclidean distances of this rank's rows to ``centers``: :func:`spmdlearn.reference.sq_distances`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    centers : ndarray of shape (n_centers, n_features)
    x_squared_norms : ndarray of shape (n_samples,) or None
        Precomputed ``||x||^2``.

    Returns
    -------
    distances : array of shape (n_samples, n_centers), or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_kmeans_lloyd_local(X, sample_weight, centers, labels_old):
    """One Lloyd E-step and the M-step's statistics: :func:`spmdlearn.reference.lloyd_local`.

    Returns
    -------
    result : tuple (labels, spmdlearn.reference.LloydPartial), or None
        Labels of this rank's rows (int32, nearest center, lowest index among ties) and the
        partial. None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_kmeans_inertia(X, sample_weight, centers, labels):
    """``sum_i w_i ||x_i - centers[labels_i]||^2`` over this rank's rows: :func:`spmdlearn.reference.kmeans_inertia`.

    Returns
    -------
    inertia : float or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_column_stats_local(X, sample_weight):
    """Weighted per-column moments and extremes: :func:`spmdlearn.reference.column_stats_local`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    sample_weight : array of shape (n_samples,) or None
        Frequency weights.

    Returns
    -------
    partial : spmdlearn.reference.ColumnStatsPartial or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes,
                                 with_hessian):
    """Sums over this rank's rows of the logistic loss and gradient: :func:`spmdlearn.reference.logistic_loss_grad`.

    Returns
    -------
    result : tuple (loss, grad_coef, grad_intercept, hess_weights) or None
        Undivided sums (the caller reduces over ranks, then divides). None declines. Must not
        communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes):
    """Sums over this rank's rows of Hessian-vector products: :func:`spmdlearn.reference.logistic_hessp`.

    Returns
    -------
    result : tuple (h_coef, h_intercept) or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_tree_histograms(binned, node_pos, stats, n_nodes, n_bins):
    """Per (node, feature, bin) sums of row statistics: :func:`spmdlearn.reference.node_histograms`.

    Returns
    -------
    hist : ndarray of shape (n_nodes, n_features, n_bins, n_stats), float64, or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_tree_apply(X, feature, threshold, left, right):
    """The leaf each row reaches: :func:`spmdlearn.reference.tree_apply`.

    Returns
    -------
    leaves : ndarray of shape (n_samples,), int, or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_knn_merge(X, Y, y_index, best_distances, best_indices, metric, p, x_index):
    """Merge one block of candidates into the running k nearest neighbours: :func:`spmdlearn.reference.knn_merge`.

    Parameters
    ----------
    X : array of shape (n_queries, n_features)
        A block of query rows (may be empty).
    Y : array of shape (n_candidates, n_features)
        A block of candidate rows (may be empty), same dtype as ``X``.
    y_index : ndarray of shape (n_candidates,), int64
        Global index of each candidate.
    best_distances : ndarray of shape (n_queries, k), float64
        Running best, increasing per row; ``inf`` in unfilled slots.
    best_indices : ndarray of shape (n_queries, k), int64
        Their global indices; ``-1`` in unfilled slots.
    metric : str
        A name of :data:`spmdlearn.reference.METRICS`; distances from coordinate differences.
    p : float or None
        Minkowski's power.
    x_index : ndarray of shape (n_queries,), int64, or None
        Global index of each query when the queries are training rows: the candidate with the
        query's own index is never its neighbour.

    Returns
    -------
    result : tuple (distances, indices), or None
        ``(n_queries, k)`` float64 and int64: the ``k`` smallest ``(distance, index)`` pairs of
        the running best and the block together, in lexicographic order (equal distances: the
        lower global index first; an unfilled slot ``(inf, -1)`` before a real candidate at
        ``inf``). No distance matrix beyond the block is kept. None declines. Must not
        communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_radius_counts(X, Y, sample_weight, eps, metric, p):
    """Weighted neighbour counts of one block pair: :func:`spmdlearn.reference.radius_counts`.

    Parameters
    ----------
    X : array of shape (n_x, n_features)
    Y : array of shape (n_y, n_features)
    sample_weight : ndarray of shape (n_y,), float64
        May be negative.
    eps : float
        ``dist <= eps`` is a neighbour (equality counts).
    metric : str
    p : float or None

    Returns
    -------
    counts : ndarray of shape (n_x,), float64, or None
        ``sum_j sample_weight[j] * (dist(X[i], Y[j]) <= eps)``. None declines. Must not
        communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_radius_min_label(X, Y, labels, current, eps, metric, p):
    """The smallest neighbour label, merged into a running minimum: :func:`spmdlearn.reference.radius_min_label`.

    Parameters
    ----------
    X : array of shape (n_x, n_features)
    Y : array of shape (n_y, n_features)
    labels : ndarray of shape (n_y,), int64
    current : ndarray of shape (n_x,), int64
        The running minimum.
    eps : float
        ``dist <= eps`` is a neighbour.
    metric : str
    p : float or None

    Returns
    -------
    minimum : ndarray of shape (n_x,), int64, or None
        ``min(current[i], min {labels[j] : dist(X[i], Y[j]) <= eps})``; ``current[i]`` where
        no candidate is within ``eps``. None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index):
    """The pairs within ``eps`` of one block pair, as CSR: :func:`spmdlearn.reference.radius_neighbors_csr`.

    Parameters
    ----------
    X : array of shape (n_x, n_features)
    Y : array of shape (n_y, n_features)
    y_index : ndarray of shape (n_y,), int64
        Returned for each neighbour.
    eps : float
        ``dist <= eps`` is a neighbour.
    metric : str
    p : float or None
    x_index : ndarray of shape (n_x,), int64, or None
        A candidate whose ``y_index`` equals the query's ``x_index`` is left out.

    Returns
    -------
    result : tuple (indptr, indices, distances), or None
        ``indptr`` ``(n_x + 1,)`` int64; ``indices`` ``(n_pairs,)`` int64 (``y_index`` of the
        neighbours, in candidate order within each query); ``distances`` ``(n_pairs,)``
        float64. None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_all_finite(X):
    """Whether every element of ``X`` is finite: :func:`spmdlearn.reference.all_finite`.

    Input validation runs it on this rank's ``X`` (any array type a backend claims), so that
    the check runs where the data live.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        May have zero rows.

    Returns
    -------
    finite : bool or None
        False if any element is NaN or infinite. None declines. Must not communicate.
    """
