"""The NumPy reference as a backend: the last implementation of every kernel."""

from __future__ import annotations

import numpy as np

from .._array_api import host_kernel
from ..hookspec import hookimpl
from ._finite import all_finite
from ._covariance import mahalanobis
from ._transform import affine_transform
from ._linear import linear_predict
from ._logistic import logistic_hessp, logistic_loss_grad
from ._moments import column_stats_local, comoments_local, moments_local
from ._forest import (apply_bins, best_splits, bootstrap_counts, forest_histograms, tree_apply,
                      tree_histograms, tree_route)
from ._kmeans import (farthest_assigned_rows, kmeans_assign, kmeans_inertia, kmeans_min_distances,
                      kmeans_plusplus_potentials, kmeans_transform, lloyd_bounded, lloyd_local)
from ._neighbors import (knn_merge, radius_counts, radius_label_union, radius_min_label,
                         radius_neighbors_csr)
from ._pca import tsqr_local

NAME = "reference"


@hookimpl
def spmdlearn_backend_info():
    return {"name": NAME, "available": True, "devices": ["host (NumPy)"],
            "note": f"NumPy {np.__version__}; defines every kernel"}


@hookimpl(trylast=True)
def spmdlearn_claims(X):
    # NumPy arrays, and host inputs that validation makes NumPy (lists, DataFrames, None); not
    # another library's array, which its own backend claims.
    import array_api_compat

    return isinstance(X, (np.ndarray, np.generic)) or not array_api_compat.is_array_api_obj(X)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_moments_local(X, sample_weight):
    return moments_local(np.asarray(X), None if sample_weight is None else np.asarray(sample_weight))


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_comoments_local(X, Y, sample_weight):
    return comoments_local(np.asarray(X), None if Y is None else np.asarray(Y),
                           None if sample_weight is None else np.asarray(sample_weight))


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_linear_predict(X, coef, intercept):
    return linear_predict(np.asarray(X), coef, intercept)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_mahalanobis(X, location, precision):
    return mahalanobis(np.asarray(X), location, precision)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_tsqr_local(X, mean):
    return tsqr_local(np.asarray(X), mean)


@hookimpl(trylast=True)
@host_kernel(rows=(0,))
def spmdlearn_kmeans_lloyd_local(X, sample_weight, centers, labels_old, X_offset):
    return lloyd_local(np.asarray(X), np.asarray(sample_weight), centers, labels_old, X_offset)


@hookimpl(trylast=True)
@host_kernel(rows=(0, 1, 3))
def spmdlearn_kmeans_lloyd_bounded(X, sample_weight, centers, centers_old, labels_old, lower_old,
                                   X_offset, upper_old, sums_old):
    return lloyd_bounded(np.asarray(X), np.asarray(sample_weight), centers, centers_old,
                         labels_old, lower_old, X_offset, upper_old, sums_old)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_kmeans_farthest_assigned_rows(X, centers, labels, n_rows, X_offset):
    return farthest_assigned_rows(np.asarray(X), centers, np.asarray(labels), n_rows, X_offset)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_kmeans_inertia(X, sample_weight, centers, labels):
    return kmeans_inertia(np.asarray(X), sample_weight, centers, labels)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_column_stats_local(X, sample_weight):
    return column_stats_local(np.asarray(X), None if sample_weight is None else np.asarray(sample_weight))


@hookimpl(trylast=True)
@host_kernel(rows=(3,))
def spmdlearn_logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes,
                                 with_hessian):
    return logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes, with_hessian)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes):
    return logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_tree_apply(X, feature, threshold, left, right):
    return tree_apply(np.asarray(X), feature, threshold, left, right)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_knn_merge(X, Y, y_index, best_distances, best_indices, metric, p, x_index):
    return knn_merge(np.asarray(X), np.asarray(Y), y_index, best_distances, best_indices,
                     metric, p, x_index)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_radius_counts(X, Y, sample_weight, eps, metric, p):
    return radius_counts(np.asarray(X), np.asarray(Y), sample_weight, eps, metric, p)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_radius_min_label(X, Y, labels, current, eps, metric, p):
    return radius_min_label(np.asarray(X), np.asarray(Y), labels, current, eps, metric, p)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index):
    return radius_neighbors_csr(np.asarray(X), np.asarray(Y), y_index, eps, metric, p, x_index)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_radius_label_union(X, x_labels, Y, y_labels, eps, metric, p):
    return radius_label_union(np.asarray(X), x_labels, np.asarray(Y), y_labels, eps, metric, p)


@hookimpl(trylast=True)
@host_kernel(rows=(0, 1))
def spmdlearn_kmeans_assign(X, centers):
    return kmeans_assign(np.asarray(X), centers)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_kmeans_transform(X, centers):
    return kmeans_transform(np.asarray(X), centers)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_kmeans_min_distances(X, centers, closest, x_squared_norms):
    return kmeans_min_distances(np.asarray(X), centers, closest, x_squared_norms)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_kmeans_plusplus_potentials(X, sample_weight, candidates, closest, x_squared_norms):
    return kmeans_plusplus_potentials(np.asarray(X), sample_weight, candidates, closest,
                                      x_squared_norms)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_apply_bins(X, edges):
    return apply_bins(np.asarray(X), edges)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_bootstrap_counts(row_index, seed, lam):
    return bootstrap_counts(row_index, seed, lam)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes, n_bins,
                              n_classes, class_weight):
    return tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes, n_bins,
                           n_classes, class_weight)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_forest_histograms(binned, node_of_row, counts, position, columns, y,
                                sample_weight, n_bins, n_classes, class_weight):
    return forest_histograms(binned, node_of_row, counts, position, columns, y, sample_weight,
                             n_bins, n_classes, class_weight)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_tree_route(binned, node_of_row, split_feature, split_bin, left, right):
    return tree_route(binned, node_of_row, split_feature, split_bin, left, right)


@hookimpl(trylast=True)
@host_kernel(rows="all")
def spmdlearn_affine_transform(X, shift, scale):
    return affine_transform(np.asarray(X), shift, scale)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_best_splits(hist, feature_order, n_draw, classification, criterion,
                          min_samples_leaf, min_impurity_decrease, weighted_n_root,
                          min_weight_leaf):
    return best_splits(hist, feature_order, n_draw, classification, criterion, min_samples_leaf,
                       min_impurity_decrease, weighted_n_root, min_weight_leaf)


@hookimpl(trylast=True)
@host_kernel()
def spmdlearn_all_finite(X):
    return all_finite(X)
