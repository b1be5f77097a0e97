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
        dependencies import and the devices this process sees; optionally ``"selected": str``,
        the device it would use here (``python -m spmdlearn info`` lists both for every rank).
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
def spmdlearn_host_copy(x):
    """A NumPy copy of a large array ``x`` of a type this backend claims, or None.

    Not a kernel: :func:`spmdlearn._array_api.to_host` asks for it before DLPack when ``x``
    holds at least ``HOST_COPY_MIN_BYTES``: the arrays that go through host memory for MPI
    (a tree level's histograms summed over ranks, ring blocks where MPI takes no device
    buffers). A backend may copy into page-locked memory, which a device copies to at full
    bandwidth.

    Parameters
    ----------
    x : array
        Another library's array (not NumPy).

    Returns
    -------
    copy : ndarray or None
        ``x``'s values, shape and dtype; None leaves the copy to DLPack. Must not communicate.
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
def spmdlearn_kmeans_lloyd_local(X, sample_weight, centers, labels_old, X_offset):
    """One Lloyd E-step and the M-step's statistics: :func:`spmdlearn.reference.lloyd_local`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    sample_weight : array of shape (n_samples,)
        May be a read-only broadcast view (stride 0) of one weight for every row.
    centers : ndarray of shape (n_clusters, n_features), float64
    labels_old : array of shape (n_samples,), int32
        The previous labels (-1 before the first step), of X's array type and device (the
        labels this kernel returned in the previous step).
    X_offset : ndarray of shape (n_features,), X's dtype, or None
        The kernel works on the rows ``X - X_offset`` (the subtraction in X's dtype, element
        by element: the values of centering the whole shard first), a block at a time, so that
        no centered copy of the shard exists. None: the rows of ``X`` as given. The centers,
        sums and inertia are those of the offset rows.

    Returns
    -------
    result : tuple (labels, spmdlearn.reference.LloydPartial), or None
        Labels of this rank's rows (int32, of X's array type and device; nearest center by
        ``||c||^2 - 2 x.c`` computed in X's dtype, lowest index among ties) and the partial:
        per-cluster weighted sums and weights (float64), the inertia of the *new* labels
        against ``centers`` from coordinate differences in float64 (``kmeans_inertia``'s
        expression), and the count of labels that differ from ``labels_old``. None declines.
        Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_kmeans_lloyd_bounded(X, sample_weight, centers, centers_old, labels_old, lower_old,
                                   X_offset, upper_old, sums_old, in_place):
    """The Lloyd step of ``kmeans_lloyd_local``, skipping the rows whose label cannot change:
    :func:`spmdlearn.reference.lloyd_bounded` (Hamerly's bounds).

    Optional: the estimator calls it only on a backend that implements it (its own
    implementation, not the reference's), and ``kmeans_lloyd_local`` otherwise. It must give
    ``kmeans_lloyd_local``'s labels and partial on the same rows and centers.

    Parameters
    ----------
    X, sample_weight, X_offset
        As in ``kmeans_lloyd_local``.
    centers : ndarray of shape (n_clusters, n_features), float64
    centers_old : ndarray of shape (n_clusters, n_features), float64, or None
        The centers of the previous call (to which ``lower_old`` refers); None: the first step,
        every row assigned in full.
    labels_old : array of shape (n_samples,), int32
        The labels the previous call returned (-1: none yet).
    lower_old : array of shape (n_samples,), float64
        The bounds the previous call returned (any values when ``centers_old`` is None).
    upper_old : array of shape (n_samples,), float64, or None
        The upper bounds the previous call returned (on each row's distance to its label's
        center of ``centers_old``); None: none (the first step, or not kept).
    sums_old : spmdlearn.reference.LloydPartial or None
        This rank's partial that the previous call returned, before any reduction. Given, the
        kernel may return its sums and weights updated by the rows whose label changed (equal
        to ``kmeans_lloyd_local``'s up to rounding; a cluster left without a row of nonzero
        weight exactly zero) with ``inertia`` 0 (not computed) and ``incremental`` 1, so that
        the rows that keep their label are not read; or ``kmeans_lloyd_local``'s partial.
        None: ``kmeans_lloyd_local``'s partial.
    in_place : bool
        True: the caller no longer needs ``lower_old`` and ``upper_old`` (its own arrays, which
        it drops for the returned ones), so the kernel may write the new bounds into them and
        return them: one generation of the per-row bounds instead of two (16 bytes a row).
        False: the inputs are not modified. An implementation may ignore it (the reference
        does: it always returns new arrays).

    Returns
    -------
    result : tuple (labels, lower, spmdlearn.reference.LloydPartial, upper), or None
        ``kmeans_lloyd_local``'s labels and partial (see ``sums_old``), each row's lower bound
        on its distance to every center but its own and an upper bound on its distance to its
        own (of X's array type and device; new arrays, or with ``in_place`` possibly
        ``lower_old`` and ``upper_old`` rewritten; ``labels_old`` is never modified). None
        declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_kmeans_farthest_assigned_rows(X, centers, labels, n_rows, X_offset):
    """This rank's ``n_rows`` rows farthest from their assigned centers (the candidates for the
    relocation of empty clusters): :func:`spmdlearn.reference.farthest_assigned_rows`.

    Optional: the estimator calls it only on a backend that implements it (its own
    implementation, not the reference's), and computes every row's distance itself otherwise.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    centers : ndarray of shape (n_clusters, n_features)
        Cast to X's dtype.
    labels : array of shape (n_samples,), int
    n_rows : int
    X_offset : ndarray of shape (n_features,), X's dtype, or None
        As in ``kmeans_lloyd_local``: the rows are ``X - X_offset``.

    Returns
    -------
    result : tuple (distances, indices), or None
        Host NumPy: the distances (X's dtype, scikit-learn's expression
        ``((X - centers[labels]) ** 2).sum(axis=1)``, the reference's bits: they decide ties)
        and local row indices (int64) of the ``min(n_rows, n_samples)`` farthest rows, by
        decreasing distance, then increasing index. None declines. Must not communicate.
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
def spmdlearn_radius_label_union(X, x_labels, Y, y_labels, eps, metric, p):
    """The classes of labels joined by the pairs within ``eps`` of one block pair: :func:`spmdlearn.reference.radius_label_union`.

    Every pair ``dist(X[i], Y[j]) <= eps`` joins ``x_labels[i]`` and ``y_labels[j]``; DBSCAN's
    components of core rows, within a rank and across ranks, on every array type.

    Parameters
    ----------
    X : array of shape (n_x, n_features)
    x_labels : ndarray of shape (n_x,), int64
    Y : array of shape (n_y, n_features)
        May be ``X`` itself.
    y_labels : ndarray of shape (n_y,), int64
    eps : float
        ``dist <= eps`` is a neighbour.
    metric : str
    p : float or None

    Returns
    -------
    result : tuple (labels, roots), or None
        ``labels`` ``(n_labels,)`` int64: the distinct values of ``x_labels`` and ``y_labels``,
        sorted; ``roots`` ``(n_labels,)`` int64: the smallest label of each one's class (the
        connected components of the label graph). None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_kmeans_assign(X, centers):
    """The nearest center of each row and the squared distance to it: :func:`spmdlearn.reference.kmeans_assign`.

    An E-step without an M-step (``predict``, ``score``). Callers pass blocks of rows.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    centers : ndarray of shape (n_clusters, n_features)

    Returns
    -------
    result : tuple (labels, sq_distances), or None
        ``labels`` ``(n_samples,)`` int32: nearest center by ``||c||^2 - 2 x.c`` in X's dtype,
        the lowest index among ties (the decisions of ``kmeans_lloyd_local``);
        ``sq_distances`` ``(n_samples,)`` float64: ``||x - centers[label]||^2`` from coordinate
        differences in float64. None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_kmeans_transform(X, centers):
    """Euclidean distances of a block of rows to every center: :func:`spmdlearn.reference.kmeans_transform`.

    Parameters
    ----------
    X : array of shape (n_rows, n_features)
        A block of rows; the caller sizes it so that ``(n_rows, n_clusters)`` fits its budget.
    centers : ndarray of shape (n_clusters, n_features)

    Returns
    -------
    distances : array of shape (n_rows, n_clusters), X's dtype, or None
        scikit-learn's ``euclidean_distances(X, centers)``. None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_kmeans_min_distances(X, centers, closest, x_squared_norms):
    """k-means++'s update of the squared distance to the closest chosen center: :func:`spmdlearn.reference.kmeans_min_distances`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    centers : ndarray of shape (n_new, n_features), X's dtype
        The newly chosen centers (one, in k-means++).
    closest : array of shape (n_samples,), float64, or None
        The current squared distances, as this kernel returned them (X's array type and
        device); None: no center chosen yet.
    x_squared_norms : array of shape (n_samples,) or None
        ``||x||^2`` of the rows, of X's array type and device.

    Returns
    -------
    closest : array of shape (n_samples,), float64, or None
        Of X's array type and device (float64, or the device's widest float type where it
        has no float64): ``min(closest, min_c d(x, c))`` with ``d`` scikit-learn's
        ``euclidean_distances(X, centers, squared=True)`` (the expansion its k-means++ uses).
        None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_kmeans_plusplus_potentials(X, sample_weight, candidates, closest, x_squared_norms):
    """This rank's k-means++ potential of each candidate center: :func:`spmdlearn.reference.kmeans_plusplus_potentials`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    sample_weight : array of shape (n_samples,)
    candidates : ndarray of shape (n_candidates, n_features), X's dtype
    closest : array of shape (n_samples,), float64
        As ``kmeans_min_distances`` returned it (X's array type and device).
    x_squared_norms : array of shape (n_samples,) or None

    Returns
    -------
    potentials : ndarray of shape (n_candidates,), float64, or None
        ``sum_i w_i min(closest_i, d(x_i, c))`` per candidate, ``d`` as in
        ``kmeans_min_distances``; the caller sums over ranks and picks the smallest. Only
        ``(n_candidates,)`` leaves the kernel. None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_apply_bins(X, edges):
    """Bin index of every value: :func:`spmdlearn.reference.apply_bins`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    edges : ndarray of shape (n_features, max_cuts), float64
        Increasing cut points per feature, padded with +inf.

    Returns
    -------
    binned : ndarray of shape (n_samples, n_features), uint16, or None
        ``#{c : edges[j, c] < X[i, j]}`` (a value equal to a cut point is in the bin left of
        it; comparisons in float64). None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_bootstrap_counts(row_index, seed, lam):
    """Counter-based Poisson bootstrap counts: :func:`spmdlearn.reference.bootstrap_counts`.

    Parameters
    ----------
    row_index : ndarray of shape (n_samples,), int64
        Global row indices.
    seed : int
    lam : float

    Returns
    -------
    counts : ndarray of shape (n_samples,), int64, or None
        ``poisson_counts(counter_uniform(seed, 2, row_index), lam)`` bit for bit (SplitMix64
        uniforms, inverse-CDF Poisson capped at 64): a row's count depends on its global index
        only. None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes, n_bins,
                              n_classes, class_weight):
    """Per (node, feature, bin) sums from labels, weights and bootstrap counts: :func:`spmdlearn.reference.tree_histograms`.

    Parameters
    ----------
    binned : ndarray of shape (n_samples, n_features), uint16
    node_pos : ndarray of shape (n_samples,), int64
        Position among the ``n_nodes`` nodes being split; -1: the row is skipped.
    y : ndarray of shape (n_samples,)
        Class index (int64) when ``n_classes > 0``, else the float64 target.
    sample_weight : ndarray of shape (n_samples,), float64
    counts : ndarray of shape (n_samples,), int64
        Bootstrap counts; a row with 0 is skipped.
    n_nodes, n_bins, n_classes : int
    class_weight : ndarray of shape (n_classes,), float64, or None
        Multiplies each row's weight by its class's.

    Returns
    -------
    hist : array of shape (n_nodes, n_features, n_bins, n_classes + 1 or 4), float64, or None
        With ``v = sample_weight * counts (* class_weight[y])``: channels ``v`` per class and
        the row count (classification), or ``(v, v*y, v*y^2, row count)`` (regression).
        NumPy, or in the rows' namespace and on their device (then, on one rank, the level's
        split search runs there too: ``best_splits`` on the rows' backend; on more ranks the
        sum over ranks takes a host copy). None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_forest_histograms(binned, node_of_row, counts, position, columns, y,
                                sample_weight, n_bins, n_classes, class_weight):
    """The histograms of a level's nodes of several trees, each node with its own features,
    from every row: :func:`spmdlearn.reference.forest_histograms`.

    Optional: the forest calls it only on a backend that implements it (its own
    implementation, not the reference's), and otherwise gathers each tree's rows and the
    features of their nodes for ``tree_histograms``. It must give those histograms, bit for
    bit: each (place, column, bin) adds its rows in their order, one tree after another.

    Parameters
    ----------
    binned : ndarray of shape (n_samples, n_features), uint16
    node_of_row : ndarray of shape (n_trees, n_samples), int64
        Each tree's node of each row (-1: none).
    counts : ndarray of shape (n_trees, n_samples), int64
        Each tree's bootstrap counts; a row with 0 is skipped.
    position : ndarray of shape (n_trees, n_tree_nodes), int64
        The place of each tree's node among the histogram's nodes (-1: not in it). A place
        belongs to one tree at most.
    columns : ndarray of shape (n_places, n_columns), int64
        The features of each place.
    y, sample_weight : ndarray of shape (n_samples,)
        As in ``tree_histograms``.
    n_bins, n_classes : int
    class_weight : ndarray of shape (n_trees, n_classes), float64, or None
        Each tree's class weights.

    Returns
    -------
    hist : ndarray of shape (n_places, n_columns, n_bins, n_classes + 1 or 4), float64, or None
        ``hist[p, j]``: ``tree_histograms``' channels of feature ``columns[p, j]`` of the rows
        at place ``p``. None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_tree_route(binned, node_of_row, split_feature, split_bin, left, right):
    """Rows of the nodes that split move to their children: :func:`spmdlearn.reference.tree_route`.

    Parameters
    ----------
    binned : ndarray of shape (n_samples, n_features), uint16
    node_of_row : ndarray of shape (n_samples,), int64
        -1: not in the tree.
    split_feature, split_bin, left, right : ndarray of shape (n_nodes,), int64
        ``split_feature`` is -1 except at the nodes that split now; a row goes left when
        ``binned[row, split_feature[node]] <= split_bin[node]``.

    Returns
    -------
    node_of_row : ndarray of shape (n_samples,), int64, or None
        A new array; rows of non-splitting nodes keep theirs. None declines. Must not
        communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_affine_transform(X, shift, scale):
    """``(X - shift) * scale`` per feature: :func:`spmdlearn.reference.affine_transform`.

    The scalers' ``transform`` and ``inverse_transform`` and PCA's whitening.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    shift : ndarray of shape (n_features,), X's dtype
    scale : ndarray of shape (n_features,), X's dtype

    Returns
    -------
    out : array of shape (n_samples, n_features), X's dtype and array type, or None
        A new array (``X`` is not modified); the subtraction, then the product, each rounded
        in X's dtype. None declines. Must not communicate.
    """


@hookspec(firstresult=True)
def spmdlearn_best_splits(hist, feature_order, n_draw, classification, criterion,
                          min_samples_leaf, min_impurity_decrease, weighted_n_root,
                          min_weight_leaf):
    """The best split of every node of a tree level: :func:`spmdlearn.reference.best_splits`.

    Parameters
    ----------
    hist : ndarray of shape (n_nodes, n_features, n_bins, n_stats + 1), float64
        The global histograms (identical on every rank); the last channel counts rows.
    feature_order : ndarray of shape (n_nodes, n_features), int64
        Each node's drawn order of the features.
    n_draw : int
        Features tried per node; more only while none of them splits.
    classification : bool
    criterion : {"gini", "entropy", "squared_error"}
    min_samples_leaf, min_impurity_decrease, weighted_n_root, min_weight_leaf : float

    Returns
    -------
    result : tuple (feature, bin, decrease), or None
        ``(n_nodes,)`` int64, int64, float64; ``feature`` -1 where a node does not split.
        Decisions must be those of the reference bit for bit (every rank takes them from the
        same histograms; ties: the earlier feature in the order, then the lower bin). None
        declines. Must not communicate.
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
