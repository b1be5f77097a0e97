"""Entry point of the ``cuda`` backend (group ``spmdlearn.backends``).

Every kernel serves CuPy arrays (and anything exposing ``__cuda_array_interface__``) and
declines everything else by returning None. CuPy is imported on first use; without it the
backend reports itself unavailable and declines.
"""

from __future__ import annotations

from spmdlearn.hookspec import hookimpl

from ._device import as_cupy, cupy

NAME = "cuda"

#: Rows per kernel call (queries, candidates) where a fused kernel needs no block-sized
#: temporary: the top-k merge streams its candidates through shared memory and keeps the
#: running best of each query in registers, so one call should give the GPU many queries.
KERNEL_BLOCK_ROWS = {"knn_merge": (1 << 16, 1 << 21)}


def _cuda(*arrays):
    """The arguments as CuPy arrays (None stays None), or None if any array is not on a GPU."""
    out = []
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        c = as_cupy(a)
        if c is None:
            return None
        out.append(c)
    return out


@hookimpl
def spmdlearn_backend_info():
    cp = cupy()
    if cp is None:
        return {"name": NAME, "available": False, "devices": [],
                "note": "CuPy not installed (pip install cupy-cuda12x or cupy-cuda13x)"}
    try:
        n = cp.cuda.runtime.getDeviceCount()
        devices = [cp.cuda.runtime.getDeviceProperties(i)["name"].decode() for i in range(n)]
    except Exception as exc:  # noqa: BLE001 - a broken driver is reported, not fatal
        return {"name": NAME, "available": False, "devices": [], "note": f"CUDA failed: {exc}"}
    return {"name": NAME, "available": bool(devices), "devices": devices,
            "note": f"CuPy {cp.__version__}; one GPU per rank (rank mod devices)"}


@hookimpl
def spmdlearn_claims(X):
    # CuPy arrays and anything else on a GPU: an attribute test, so CuPy is not imported here.
    return hasattr(X, "__cuda_array_interface__")


@hookimpl
def spmdlearn_moments_local(X, sample_weight):
    args = _cuda(X, sample_weight)
    if args is None:
        return None
    from ._moments import moments_local

    return moments_local(*args)


@hookimpl
def spmdlearn_comoments_local(X, Y, sample_weight):
    args = _cuda(X, Y, sample_weight)
    if args is None:
        return None
    from ._moments import comoments_local

    return comoments_local(*args)


@hookimpl
def spmdlearn_column_stats_local(X, sample_weight):
    args = _cuda(X, sample_weight)
    if args is None:
        return None
    from ._moments import column_stats_local

    return column_stats_local(*args)


@hookimpl
def spmdlearn_linear_predict(X, coef, intercept):
    args = _cuda(X)
    if args is None:
        return None
    from ._linear import linear_predict

    return linear_predict(args[0], coef, intercept)


@hookimpl
def spmdlearn_mahalanobis(X, location, precision):
    args = _cuda(X)
    if args is None:
        return None
    from ._linear import mahalanobis

    return mahalanobis(args[0], location, precision)


def _neighbors_args(metric, p, X, Y):
    """Device views of a query block ``X`` and a candidate block ``Y`` when this backend
    computes ``metric`` and ``X`` is on a GPU, else None. A NumPy ``Y`` (a block of another
    rank's rows, staged through the host for MPI) is copied to ``X``'s device."""
    import numpy as np

    from ._neighbors import supported

    if not supported(metric, p):
        return None
    Xc = as_cupy(X)
    if Xc is None:
        return None
    Yc = as_cupy(Y)
    if Yc is None:
        if not isinstance(Y, np.ndarray):
            return None
        with Xc.device:
            Yc = cupy().asarray(Y)
    return [Xc, Yc]


@hookimpl
def spmdlearn_knn_merge(X, Y, y_index, best_distances, best_indices, metric, p, x_index):
    args = _neighbors_args(metric, p, X, Y)
    if args is None:
        return None
    from ._neighbors import knn_merge

    return knn_merge(*args, y_index, best_distances, best_indices, metric, p, x_index)


@hookimpl
def spmdlearn_radius_counts(X, Y, sample_weight, eps, metric, p):
    args = _neighbors_args(metric, p, X, Y)
    if args is None:
        return None
    from ._neighbors import radius_counts

    return radius_counts(*args, sample_weight, eps, metric, p)


@hookimpl
def spmdlearn_radius_min_label(X, Y, labels, current, eps, metric, p):
    args = _neighbors_args(metric, p, X, Y)
    if args is None:
        return None
    from ._neighbors import radius_min_label

    return radius_min_label(*args, labels, current, eps, metric, p)


@hookimpl
def spmdlearn_host_copy(x):
    c = as_cupy(x)
    if c is None:
        return None
    from ._device import to_host

    return to_host(c, pinned=True)


@hookimpl
def spmdlearn_radius_label_union(X, x_labels, Y, y_labels, eps, metric, p):
    args = _neighbors_args(metric, p, X, Y)
    if args is None:
        return None
    from ._neighbors import radius_label_union

    return radius_label_union(args[0], x_labels, args[1], y_labels, eps, metric, p)


@hookimpl
def spmdlearn_radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index):
    args = _neighbors_args(metric, p, X, Y)
    if args is None:
        return None
    from ._neighbors import radius_neighbors_csr

    return radius_neighbors_csr(*args, y_index, eps, metric, p, x_index)


@hookimpl
def spmdlearn_tsqr_local(X, mean):
    args = _cuda(X)
    if args is None:
        return None
    from ._pca import tsqr_local

    return tsqr_local(args[0], mean)


@hookimpl
def spmdlearn_logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes,
                                 with_hessian):
    args = _cuda(X)
    if args is None:
        return None
    from ._logistic import logistic_loss_grad

    return logistic_loss_grad(args[0], target, sample_weight, coef, intercept, n_classes,
                              with_hessian)


@hookimpl
def spmdlearn_logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes):
    args = _cuda(X)
    if args is None:
        return None
    from ._logistic import logistic_hessp

    return logistic_hessp(args[0], hess_weights, v_coef, v_intercept, n_classes)


@hookimpl
def spmdlearn_kmeans_lloyd_local(X, sample_weight, centers, labels_old, X_offset):
    args = _cuda(X)
    if args is None:
        return None
    from ._kmeans import lloyd_local

    return lloyd_local(args[0], sample_weight, centers, labels_old, X_offset)


@hookimpl
def spmdlearn_kmeans_inertia(X, sample_weight, centers, labels):
    args = _cuda(X)
    if args is None:
        return None
    from ._kmeans import kmeans_inertia

    return kmeans_inertia(args[0], sample_weight, centers, labels)


@hookimpl
def spmdlearn_kmeans_assign(X, centers):
    args = _cuda(X)
    if args is None:
        return None
    from ._kmeans import kmeans_assign

    return kmeans_assign(args[0], centers)


@hookimpl
def spmdlearn_kmeans_transform(X, centers):
    args = _cuda(X)
    if args is None:
        return None
    from ._kmeans import kmeans_transform

    return kmeans_transform(args[0], centers)


@hookimpl
def spmdlearn_kmeans_min_distances(X, centers, closest, x_squared_norms):
    args = _cuda(X)
    if args is None:
        return None
    from ._kmeans import kmeans_min_distances

    return kmeans_min_distances(args[0], centers, closest, x_squared_norms)


@hookimpl
def spmdlearn_kmeans_plusplus_potentials(X, sample_weight, candidates, closest, x_squared_norms):
    args = _cuda(X)
    if args is None:
        return None
    from ._kmeans import kmeans_plusplus_potentials

    return kmeans_plusplus_potentials(args[0], sample_weight, candidates, closest,
                                      x_squared_norms)


@hookimpl
def spmdlearn_affine_transform(X, shift, scale):
    args = _cuda(X)
    if args is None:
        return None
    cp = cupy()
    X = args[0]
    dtype = X.dtype if X.dtype.kind == "f" else cp.float64
    # The subtraction, then the product, each rounded in X's dtype, as in the reference.
    out = cp.subtract(X, cp.asarray(shift, dtype=dtype), dtype=dtype)
    out *= cp.asarray(scale, dtype=dtype)
    return out


@hookimpl
def spmdlearn_apply_bins(X, edges):
    args = _cuda(X)
    if args is None:
        return None
    from ._forest import apply_bins

    return apply_bins(args[0], edges)


@hookimpl
def spmdlearn_bootstrap_counts(row_index, seed, lam):
    args = _cuda(row_index)
    if args is None:
        return None
    from ._forest import bootstrap_counts

    return bootstrap_counts(args[0], seed, lam)


@hookimpl
def spmdlearn_tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes, n_bins,
                              n_classes, class_weight):
    args = _cuda(binned)
    if args is None:
        return None
    from ._forest import tree_histograms

    return tree_histograms(args[0], node_pos, y, sample_weight, counts, n_nodes, n_bins,
                           n_classes, class_weight)


@hookimpl
def spmdlearn_best_splits(hist, feature_order, n_draw, classification, criterion,
                          min_samples_leaf, min_impurity_decrease, weighted_n_root,
                          min_weight_leaf):
    args = _cuda(hist)
    if args is None:
        return None
    from ._splits import best_splits

    return best_splits(args[0], feature_order, n_draw, classification, criterion,
                       min_samples_leaf, min_impurity_decrease, weighted_n_root, min_weight_leaf)


@hookimpl
def spmdlearn_tree_route(binned, node_of_row, split_feature, split_bin, left, right):
    args = _cuda(binned)
    if args is None:
        return None
    from ._forest import tree_route

    return tree_route(args[0], node_of_row, split_feature, split_bin, left, right)


@hookimpl
def spmdlearn_tree_apply(X, feature, threshold, left, right):
    args = _cuda(X)
    if args is None:
        return None
    from ._forest import tree_apply

    return tree_apply(args[0], feature, threshold, left, right)


@hookimpl
def spmdlearn_all_finite(X):
    args = _cuda(X)
    if args is None:
        return None
    from ._finite import all_finite

    return all_finite(args[0])
