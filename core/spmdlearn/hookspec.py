"""Kernel hook specifications: what a backend may implement.

A backend is a pluggy plugin registered under the entry-point group ``spmdlearn.backends``::

    [project.entry-points."spmdlearn.backends"]
    mybackend = "mypackage.plugin"       # a module (or object) with @hookimpl functions

Rules for every kernel below:

* it computes on this rank's data only and **must not communicate**;
* it is called by keyword; an implementation takes only the arguments it uses;
* returning ``None`` declines (wrong array type, unsupported dtype, missing dependency); the next
  backend, finally the NumPy reference, then serves the call. Never raise for "unsupported";
* its result must agree with the reference kernel (``spmdlearn.reference``) within the tolerances
  of the conformance suite (``python -m spmdlearn_conformance``).

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
def spmdlearn_radius_adjacency(X, Y, eps, metric, p):
    """``dist(X[i], Y[j]) <= eps`` for all pairs: :func:`spmdlearn.reference.radius_adjacency`.

    Parameters
    ----------
    X : array of shape (n_x, n_features)
        A chunk of this rank's rows.
    Y : ndarray of shape (n_y, n_features)
        A block of rows (this rank's or a visiting rank's).
    eps : float
    metric : str
        A name from :data:`spmdlearn.reference.METRICS`.
    p : float or None
        Minkowski's power.

    Returns
    -------
    adjacency : ndarray of bool, shape (n_x, n_y), or None
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
def spmdlearn_pairwise_distances(X, Y, metric, p):
    """Distances between rows: :func:`spmdlearn.reference.pairwise_distances`.

    Returns
    -------
    distances : ndarray of shape (n_x, n_y), or None
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_topk_select(distances, indices, k):
    """The k nearest candidates of each row, ties by lower index: :func:`spmdlearn.reference.topk_select`.

    Returns
    -------
    positions : ndarray of shape (n_rows, k), or None
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
