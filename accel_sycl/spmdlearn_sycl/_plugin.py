"""Entry point of the ``sycl`` backend (group ``spmdlearn.backends``).

It claims dpnp arrays and dpctl ``usm_ndarray`` s, and serves every kernel on them with dpnp
operations on the arrays' own queue (oneMKL underneath): the data stay on the SYCL device and
only partials (of the model's size) come to the host. Its dependencies (dpctl, dpnp) are
imported lazily; where they are missing the backend reports itself unavailable and declines.
Where a device lacks float64, the kernels accumulate in float32 (``float_type``) and float64
input is refused before any kernel runs (see ``spmdlearn._array_api.has_float64``).
"""

from __future__ import annotations

from spmdlearn.hookspec import hookimpl

from ._device import ARRAY_MODULES, as_dpnp, dpnp

NAME = "sycl"


@hookimpl
def spmdlearn_backend_info():
    try:
        import dpctl
    except ImportError:
        return {"name": NAME, "available": False, "devices": [],
                "note": "dpctl/dpnp not installed (pip install 'spmdlearn[sycl]')"}
    try:
        devices = [f"{d.backend.name}:{d.device_type.name} {d.name}"
                   + ("" if d.has_aspect_fp64 else " (no float64)") for d in dpctl.get_devices()]
        default = dpctl.select_default_device()
        chosen = f"{default.backend.name}:{default.device_type.name} {default.name}"
    except Exception as exc:  # noqa: BLE001 - a broken SYCL runtime is reported, not fatal
        return {"name": NAME, "available": False, "devices": [], "note": f"dpctl failed: {exc}"}
    return {"name": NAME, "available": bool(devices) and dpnp() is not None, "devices": devices,
            "selected": chosen,
            "note": "kernels run on the input's queue; arrays made without one (dpnp.asarray(x)) "
                    "are on the default device, the one it would use"}


@hookimpl
def spmdlearn_claims(X):
    # An array of dpnp or dpctl exists only if that module imported: no import needed here.
    return type(X).__module__.split(".")[0] in ARRAY_MODULES


def _call(module, name, X, *args):
    """``module.name(X as dpnp, *args)``, or None (decline) when ``X`` is no SYCL array."""
    Xd = as_dpnp(X)
    if Xd is None:
        return None
    from importlib import import_module

    return getattr(import_module(f"spmdlearn_sycl.{module}"), name)(Xd, *args)


def _radius(name, metric, p, X, *args):
    from ._neighbors import supported

    if not supported(metric, p):
        return None
    return _call("_neighbors", name, X, *args, metric, p)


@hookimpl
def spmdlearn_moments_local(X, sample_weight):
    return _call("_moments", "moments_local", X, sample_weight)


@hookimpl
def spmdlearn_comoments_local(X, Y, sample_weight):
    return _call("_moments", "comoments_local", X, Y, sample_weight)


@hookimpl
def spmdlearn_column_stats_local(X, sample_weight):
    return _call("_moments", "column_stats_local", X, sample_weight)


@hookimpl
def spmdlearn_linear_predict(X, coef, intercept):
    return _call("_linear", "linear_predict", X, coef, intercept)


@hookimpl
def spmdlearn_mahalanobis(X, location, precision):
    return _call("_linear", "mahalanobis", X, location, precision)


@hookimpl
def spmdlearn_affine_transform(X, shift, scale):
    return _call("_linear", "affine_transform", X, shift, scale)


@hookimpl
def spmdlearn_tsqr_local(X, mean):
    return _call("_pca", "tsqr_local", X, mean)


@hookimpl
def spmdlearn_logistic_loss_grad(X, target, sample_weight, coef, intercept, n_classes,
                                 with_hessian):
    return _call("_logistic", "logistic_loss_grad", X, target, sample_weight, coef, intercept,
                 n_classes, with_hessian)


@hookimpl
def spmdlearn_logistic_hessp(X, hess_weights, v_coef, v_intercept, n_classes):
    return _call("_logistic", "logistic_hessp", X, hess_weights, v_coef, v_intercept, n_classes)


@hookimpl
def spmdlearn_kmeans_lloyd_local(X, sample_weight, centers, labels_old, X_offset):
    return _call("_kmeans", "lloyd_local", X, sample_weight, centers, labels_old, X_offset)


@hookimpl
def spmdlearn_kmeans_inertia(X, sample_weight, centers, labels):
    return _call("_kmeans", "kmeans_inertia", X, sample_weight, centers, labels)


@hookimpl
def spmdlearn_kmeans_assign(X, centers):
    return _call("_kmeans", "kmeans_assign", X, centers)


@hookimpl
def spmdlearn_kmeans_transform(X, centers):
    return _call("_kmeans", "kmeans_transform", X, centers)


@hookimpl
def spmdlearn_kmeans_min_distances(X, centers, closest, x_squared_norms):
    return _call("_kmeans", "kmeans_min_distances", X, centers, closest, x_squared_norms)


@hookimpl
def spmdlearn_kmeans_plusplus_potentials(X, sample_weight, candidates, closest, x_squared_norms):
    return _call("_kmeans", "kmeans_plusplus_potentials", X, sample_weight, candidates, closest,
                 x_squared_norms)


@hookimpl
def spmdlearn_knn_merge(X, Y, y_index, best_distances, best_indices, metric, p, x_index):
    from ._neighbors import supported

    Xd = as_dpnp(X)
    if Xd is None or not supported(metric, p):
        return None
    from ._neighbors import knn_merge

    return knn_merge(Xd, Y, y_index, best_distances, best_indices, metric, p, x_index)


@hookimpl
def spmdlearn_radius_counts(X, Y, sample_weight, eps, metric, p):
    return _radius("radius_counts", metric, p, X, Y, sample_weight, eps)


@hookimpl
def spmdlearn_radius_min_label(X, Y, labels, current, eps, metric, p):
    return _radius("radius_min_label", metric, p, X, Y, labels, current, eps)


@hookimpl
def spmdlearn_radius_label_union(X, x_labels, Y, y_labels, eps, metric, p):
    return _radius("radius_label_union", metric, p, X, x_labels, Y, y_labels, eps)


@hookimpl
def spmdlearn_radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index):
    from ._neighbors import supported

    Xd = as_dpnp(X)
    if Xd is None or not supported(metric, p):
        return None
    from ._neighbors import radius_neighbors_csr

    return radius_neighbors_csr(Xd, Y, y_index, eps, metric, p, x_index)


@hookimpl
def spmdlearn_apply_bins(X, edges):
    return _call("_forest", "apply_bins", X, edges)


@hookimpl
def spmdlearn_bootstrap_counts(row_index, seed, lam):
    return _call("_forest", "bootstrap_counts", row_index, seed, lam)


@hookimpl
def spmdlearn_tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes, n_bins,
                              n_classes, class_weight):
    return _call("_forest", "tree_histograms", binned, node_pos, y, sample_weight, counts,
                 n_nodes, n_bins, n_classes, class_weight)


@hookimpl
def spmdlearn_best_splits(hist, feature_order, n_draw, classification, criterion,
                          min_samples_leaf, min_impurity_decrease, weighted_n_root,
                          min_weight_leaf):
    return _call("_splits", "best_splits", hist, feature_order, n_draw, classification,
                 criterion, min_samples_leaf, min_impurity_decrease, weighted_n_root,
                 min_weight_leaf)


@hookimpl
def spmdlearn_tree_route(binned, node_of_row, split_feature, split_bin, left, right):
    return _call("_forest", "tree_route", binned, node_of_row, split_feature, split_bin, left,
                 right)


@hookimpl
def spmdlearn_tree_apply(X, feature, threshold, left, right):
    return _call("_forest", "tree_apply", X, feature, threshold, left, right)


@hookimpl
def spmdlearn_all_finite(X):
    Xd = as_dpnp(X)
    if Xd is None:
        return None
    return bool(dpnp().isfinite(Xd).all())
