"""Entry point of the ``cpu`` backend (group ``spmdlearn.backends``).

It claims NumPy arrays. Every kernel serves NumPy arrays of float32 or float64 and declines
anything else (returns None, so that the reference serves it). Kernels import numba lazily:
without numba they decline as well, and ``python -m spmdlearn info`` says so.
"""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np

from spmdlearn.hookspec import hookimpl

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

#: Rows per kernel call (queries, candidates) of the fused radius kernels: they keep one value
#: per query and a grid of the candidates (sorted copies of the queries and candidates: 16-40
#: bytes a row, no pair-sized temporary), so large blocks go in one call and the grid is built
#: once per block pair instead of once per small tile (a 20,000-row shard: one call).
KERNEL_BLOCK_ROWS = {kernel: (1 << 18, 1 << 19)
                     for kernel in ("radius_counts", "radius_min_label", "radius_label_union")}
#: The top-k merge keeps only per-thread GEMM tiles (no query x candidate temporary), so a
#: visiting block of up to 2^18 candidates meets up to 2^13 queries in one call: 32 query tiles
#: to spread over the threads, and the per-call costs (thread setup) are paid once a block. The
#: call returns a new running best of its queries (16 bytes x k a query) while the caller holds
#: the old one: 2^13 queries bound that copy to 1.3 MB at k=10 (2^16 made it 10 MB, and all the
#: queries' at once below that; candidate norms are per tile either way).
KERNEL_BLOCK_ROWS["knn_merge"] = (1 << 13, 1 << 18)


def _module(name):
    """``spmdlearn_cpu.<name>``, or None when its compiled dependencies are missing."""
    try:
        return importlib.import_module(f"spmdlearn_cpu.{name}")
    except ImportError:
        return None


def _served(*arrays) -> bool:
    """NumPy arrays of float32/float64 (None allowed for optional arguments)."""
    return all(a is None or (type(a) is np.ndarray and a.dtype in _FLOATS) for a in arrays)


def _is_2d(X) -> bool:
    return _served(X) and X.ndim == 2


@hookimpl
def spmdlearn_backend_info():
    import os

    numba = _module("_threads") and importlib.util.find_spec("numba")
    note = "NumPy/float32/float64 input: blocked BLAS and numba kernels"
    if not numba:
        note += "; numba is missing, so its kernels decline"
    return {"name": "cpu", "available": True,
            "devices": [f"host ({os.cpu_count()} cores)"], "note": note}


@hookimpl
def spmdlearn_claims(X):
    return isinstance(X, np.ndarray)


@hookimpl
def spmdlearn_moments_local(X, sample_weight):
    m = _module("_moments")
    if m is None or not _is_2d(X) or not _served(sample_weight):
        return None
    return m.moments_local(X, sample_weight)


@hookimpl
def spmdlearn_column_stats_local(X, sample_weight):
    m = _module("_moments")
    if m is None or not _is_2d(X) or not _served(sample_weight):
        return None
    return m.column_stats_local(X, sample_weight)


@hookimpl
def spmdlearn_comoments_local(X, Y, sample_weight):
    m = _module("_moments")
    if m is None or not _is_2d(X) or not _served(Y, sample_weight):
        return None
    return m.comoments_local(X, Y, sample_weight)


@hookimpl
def spmdlearn_linear_predict(X, coef, intercept):
    if not _is_2d(X):
        return None
    from ._linear import linear_predict

    return linear_predict(X, coef, intercept)


@hookimpl
def spmdlearn_mahalanobis(X, location, precision):
    if not _is_2d(X):
        return None
    from ._covariance import mahalanobis

    return mahalanobis(X, location, precision)


@hookimpl
def spmdlearn_tsqr_local(X, mean):
    if not _is_2d(X):
        return None
    from ._pca import tsqr_local

    return tsqr_local(X, mean)


@hookimpl
def spmdlearn_kmeans_lloyd_local(X, sample_weight, centers, labels_old, X_offset):
    m = _module("_kmeans")
    if m is None or not _is_2d(X) or not _served(sample_weight):
        return None
    return m.lloyd_local(X, sample_weight, centers, labels_old, X_offset)


@hookimpl
def spmdlearn_kmeans_lloyd_bounded(X, sample_weight, centers, centers_old, labels_old, lower_old,
                                   X_offset, upper_old, sums_old, in_place):
    m = _module("_kmeans")
    if m is None or not _is_2d(X) or not _served(sample_weight):
        return None
    return m.lloyd_bounded(X, sample_weight, centers, centers_old, labels_old, lower_old, X_offset,
                           upper_old, sums_old, bool(in_place))


@hookimpl
def spmdlearn_kmeans_farthest_assigned_rows(X, centers, labels, n_rows, X_offset):
    m = _module("_kmeans")
    if m is None or not _is_2d(X) or not isinstance(labels, np.ndarray):
        return None
    return m.farthest_assigned_rows(X, centers, labels, int(n_rows), X_offset)


@hookimpl
def spmdlearn_kmeans_inertia(X, sample_weight, centers, labels):
    m = _module("_kmeans")
    if m is None or not _is_2d(X) or not _served(sample_weight):
        return None
    return m.kmeans_inertia(X, sample_weight, centers, labels)


@hookimpl
def spmdlearn_logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes,
                                 with_hessian):
    m = _module("_logistic")
    if m is None or not _is_2d(X):
        return None
    return m.logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes,
                                with_hessian)


@hookimpl
def spmdlearn_logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes):
    m = _module("_logistic")
    if m is None or not _is_2d(X):
        return None
    return m.logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes)


def _tree_histograms_hook():
    """The histogram hook for the hookspec installed: from a per-row statistics matrix (older
    spec) or from labels, weights and bootstrap counts (current spec)."""
    import inspect

    from spmdlearn import hookspec

    if "stats" in inspect.signature(hookspec.spmdlearn_tree_histograms).parameters:
        @hookimpl
        def spmdlearn_tree_histograms(binned, node_pos, stats, n_nodes, n_bins):
            m = _module("_forest")
            if m is None or type(binned) is not np.ndarray or binned.ndim != 2:
                return None
            return m.node_histograms(binned, node_pos, stats, n_nodes, n_bins)
    else:
        @hookimpl
        def spmdlearn_tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes,
                                      n_bins, n_classes, class_weight):
            m = _module("_forest")
            if m is None or type(binned) is not np.ndarray or binned.ndim != 2:
                return None
            return m.tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes,
                                     n_bins, n_classes, class_weight)
    return spmdlearn_tree_histograms


spmdlearn_tree_histograms = _tree_histograms_hook()


@hookimpl
def spmdlearn_tree_apply(X, feature, threshold, left, right):
    m = _module("_forest")
    if m is None or not _is_2d(X):
        return None
    return m.tree_apply(X, feature, threshold, left, right)


def _neighbours(X, Y, metric, p):
    """The neighbour module when it serves this block pair (NumPy floats, a coordinate metric)."""
    m = _module("_neighbors")
    if m is None or not (_is_2d(X) and _is_2d(Y)) or m.metric_code(metric, p) is None:
        return None
    return m


@hookimpl
def spmdlearn_knn_merge(X, Y, y_index, best_distances, best_indices, metric, p, x_index):
    m = _neighbours(X, Y, metric, p)
    if m is None:
        return None
    return m.knn_merge(X, Y, y_index, best_distances, best_indices, metric, p, x_index)


@hookimpl
def spmdlearn_radius_counts(X, Y, sample_weight, eps, metric, p):
    m = _neighbours(X, Y, metric, p)
    if m is None:
        return None
    return m.radius_counts(X, Y, sample_weight, eps, metric, p)


@hookimpl
def spmdlearn_radius_min_label(X, Y, labels, current, eps, metric, p):
    m = _neighbours(X, Y, metric, p)
    if m is None:
        return None
    return m.radius_min_label(X, Y, labels, current, eps, metric, p)


@hookimpl
def spmdlearn_radius_label_union(X, x_labels, Y, y_labels, eps, metric, p):
    m = _neighbours(X, Y, metric, p)
    if m is None:
        return None
    return m.radius_label_union(X, x_labels, Y, y_labels, eps, metric, p)


@hookimpl
def spmdlearn_radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index):
    m = _neighbours(X, Y, metric, p)
    if m is None:
        return None
    return m.radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index)


# Kernels of the k-means and forest families that newer hookspecs define: each is registered
# only where the installed hookspec has it.

def _if_specified(function):
    from spmdlearn import hookspec

    return hookimpl(function) if hasattr(hookspec, function.__name__) else None

@_if_specified
def spmdlearn_kmeans_assign(X, centers):
    m = _module("_kmeans")
    if m is None or not _is_2d(X):
        return None
    return m.kmeans_assign(X, centers)


@_if_specified
def spmdlearn_kmeans_transform(X, centers):
    m = _module("_kmeans")
    if m is None or not _is_2d(X):
        return None
    return m.kmeans_transform(X, centers)


@_if_specified
def spmdlearn_kmeans_min_distances(X, centers, closest, x_squared_norms):
    m = _module("_kmeans")
    if m is None or not _is_2d(X):
        return None
    return m.kmeans_min_distances(X, centers, closest, x_squared_norms)


@_if_specified
def spmdlearn_kmeans_plusplus_potentials(X, sample_weight, candidates, closest, x_squared_norms):
    m = _module("_kmeans")
    if m is None or not _is_2d(X):
        return None
    return m.kmeans_plusplus_potentials(X, sample_weight, candidates, closest, x_squared_norms)


@_if_specified
def spmdlearn_apply_bins(X, edges):
    m = _module("_forest")
    if m is None or not _is_2d(X):
        return None
    return m.apply_bins(X, edges)


@_if_specified
def spmdlearn_bootstrap_counts(row_index, seed, lam):
    m = _module("_forest")
    if m is None or type(row_index) is not np.ndarray:
        return None
    return m.bootstrap_counts(row_index, seed, lam)


@_if_specified
def spmdlearn_forest_histograms(binned, node_of_row, counts, position, columns, y,
                                sample_weight, n_bins, n_classes, class_weight):
    m = _module("_forest")
    if m is None or any(type(a) is not np.ndarray for a in (binned, node_of_row, counts, y,
                                                             sample_weight)) \
            or binned.ndim != 2 or node_of_row.ndim != 2:
        return None
    return m.forest_histograms(binned, node_of_row, counts, position, columns, y,
                               sample_weight, n_bins, n_classes, class_weight)


@_if_specified
def spmdlearn_tree_route(binned, node_of_row, split_feature, split_bin, left, right):
    m = _module("_forest")
    if m is None or type(binned) is not np.ndarray or binned.ndim != 2:
        return None
    return m.tree_route(binned, node_of_row, split_feature, split_bin, left, right)


@_if_specified
def spmdlearn_affine_transform(X, shift, scale):
    m = _module("_transform")
    if m is None or not _is_2d(X):
        return None
    return m.affine_transform(X, shift, scale)


@_if_specified
def spmdlearn_best_splits(hist, feature_order, n_draw, classification, criterion,
                          min_samples_leaf, min_impurity_decrease, weighted_n_root,
                          min_weight_leaf):
    m = _module("_splits")
    if m is None or type(hist) is not np.ndarray or hist.ndim != 4:
        return None
    return m.best_splits(hist, feature_order, n_draw, classification, criterion,
                         min_samples_leaf, min_impurity_decrease, weighted_n_root,
                         min_weight_leaf)


@_if_specified
def spmdlearn_all_finite(X):
    m = _module("_splits")
    if m is None or type(X) is not np.ndarray:
        return None
    return m.all_finite(X)
