"""Entry point of the ``cuda`` backend (group ``spmdlearn.backends``).

Every kernel serves CuPy arrays (and anything exposing ``__cuda_array_interface__``) and
declines everything else by returning None. CuPy is imported on first use; without it the
backend reports itself unavailable and declines.
"""

from __future__ import annotations

from spmdlearn.hookspec import hookimpl

from ._device import as_cupy, cupy

NAME = "cuda"


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


def _neighbors_args(metric, p, *arrays):
    """Device views of the block arguments when this backend computes ``metric``, else None."""
    from ._neighbors import supported

    if not supported(metric, p):
        return None
    return _cuda(*arrays)


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
def spmdlearn_all_finite(X):
    args = _cuda(X)
    if args is None:
        return None
    return bool(cupy().isfinite(args[0]).all())
