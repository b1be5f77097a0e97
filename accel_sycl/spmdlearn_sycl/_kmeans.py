"""k-means on a dpnp shard, blocked over rows so that the scores stay within a block.

The reference's decisions (:func:`spmdlearn.reference.lloyd_local` and the other k-means
kernels): scores ``||c||^2 - 2 x.c`` in X's dtype, the lowest index among ties (near-ties,
where the device's GEMM and the host's BLAS could round apart, are decided by the reference on
those rows), inertia from coordinate differences; per-cluster sums by weighted ``bincount``.
"""

from __future__ import annotations

import numpy as np

from spmdlearn._array_api import numpy_dtype
from spmdlearn.reference import LloydPartial

from ._device import dpnp, float_type, on_device, to_host
from ._moments import row_blocks

__all__ = ["lloyd_local", "kmeans_assign", "kmeans_inertia", "kmeans_transform",
           "kmeans_min_distances", "kmeans_plusplus_potentials"]


def _centers(centers, X):
    """What the assignment needs of the centers, on X's queue: the centers in X's dtype, their
    norms ``||c||^2`` computed on the host as the reference computes them (the same bits), and
    the largest center norm (for the rounding bound)."""
    C = np.asarray(centers, dtype=X.dtype)
    c_norms = np.einsum("ij,ij->i", C, C)
    c_max = float(np.sqrt(np.max(np.einsum("ij,ij->i", C.astype(np.float64), C), initial=0.0)))
    return centers, on_device(C, X), on_device(c_norms, X), c_max


def _labels(Xb, prepared):
    """Nearest center by the reference's ``||c||^2 - 2 x.c`` (lowest index among ties).

    The scores are a GEMM on the device, whose rounding differs from the host BLAS of the
    reference in the last bits. Where that can change a decision (the two best scores of a
    row closer than twice a bound on both computations' rounding error, identical centers
    included), those rows are decided by the reference's scores on a host copy of those rows
    (:func:`spmdlearn.reference._kmeans.assign_rows`): a few rows in 10,000 of float32 data,
    more on constructed data.
    """
    from spmdlearn.reference._kmeans import assign_rows

    xp = dpnp()
    centers, C, c_norms, c_max = prepared
    scores = c_norms[None, :] - 2 * (Xb @ C.T)
    labels = xp.argmin(scores, axis=1).astype(xp.int32)
    if C.shape[0] < 2 or Xb.shape[0] == 0:
        return labels
    d = Xb.shape[1]
    u = float(np.finfo(np.dtype(str(Xb.dtype))).eps) / 2
    gamma = (d + 2) * u / (1 - (d + 2) * u)
    two = xp.sort(scores, axis=1)[:, :2]
    f = float_type(Xb)
    Xf = Xb.astype(f)
    x_norm = xp.sqrt((Xf * Xf).sum(axis=1))
    s_max = xp.max(xp.abs(scores), axis=1).astype(f)
    # |device score - reference score| <= 2 (2 gamma |x| |c| + u |s|) for either computation:
    # a safety factor of 2 on top
    bound = 4 * (4 * gamma * x_norm * c_max + 2 * u * s_max + float(np.finfo(np.float32).tiny))
    near = xp.nonzero((two[:, 1] - two[:, 0]).astype(f) <= 2 * bound)[0]
    if near.size:
        # Only those rows cross to the host, scored as the shard's own product scores them.
        order = "F" if (Xb.flags.f_contiguous and not Xb.flags.c_contiguous) else "C"
        host = assign_rows(to_host(xp.take(Xb, near, axis=0)), centers, order)
        labels[near] = on_device(host, Xb, xp.int32)
    return labels


def _sq_to_assigned(Xb, C64, labels, f):
    diff = Xb.astype(f) - C64[labels]
    return (diff * diff).sum(axis=1)


def lloyd_local(X, sample_weight, centers, labels_old, X_offset=None):
    """:func:`spmdlearn.reference.lloyd_local` on dpnp rows; ``X_offset`` (n_features,) is
    subtracted a block of rows at a time (no offset copy of the shard)."""
    xp = dpnp()
    k, d = np.shape(centers)
    n = X.shape[0]
    q = X.sycl_queue
    if n == 0:
        return xp.zeros(0, dtype=xp.int32, sycl_queue=q), LloydPartial(
            np.zeros((k, d)), np.zeros(k), 0.0, 0.0)
    f = float_type(X)
    prepared = _centers(centers, X)
    C64 = on_device(np.asarray(centers, dtype=np.float64), X, f)
    w = on_device(sample_weight, X, f)
    old = None if labels_old is None else on_device(labels_old, X, xp.int32)
    labels = xp.empty(n, dtype=xp.int32, sycl_queue=q)
    sums = xp.zeros((k, d), dtype=f, sycl_queue=q)
    weights = xp.zeros(k, dtype=f, sycl_queue=q)
    inertia, changed = 0.0, 0
    offset = None if X_offset is None else on_device(X_offset, X, numpy_dtype(X.dtype))
    for s in row_blocks(n):
        Xs = X[s] if offset is None else X[s] - offset
        lab = _labels(Xs, prepared)
        labels[s] = lab
        Xw = Xs.astype(f) * w[s][:, None]
        for j in range(d):
            sums[:, j] += xp.bincount(lab, weights=Xw[:, j], minlength=k)
        weights += xp.bincount(lab, weights=w[s], minlength=k)
        inertia += float(w[s] @ _sq_to_assigned(Xs, C64, lab, f))
        if old is not None:
            changed += int(xp.count_nonzero(lab != old[s]))
    return labels, LloydPartial(to_host(sums).astype(np.float64),
                                to_host(weights).astype(np.float64), inertia, float(changed))


def kmeans_assign(X, centers):
    xp = dpnp()
    n = X.shape[0]
    q = X.sycl_queue
    f = float_type(X)
    labels = xp.empty(n, dtype=xp.int32, sycl_queue=q)
    sq = xp.empty(n, dtype=f, sycl_queue=q)
    if n == 0:
        return labels, sq
    prepared = _centers(centers, X)
    C64 = on_device(np.asarray(centers, dtype=np.float64), X, f)
    for s in row_blocks(n):
        lab = _labels(X[s], prepared)
        labels[s] = lab
        sq[s] = _sq_to_assigned(X[s], C64, lab, f)
    return labels, sq


def kmeans_inertia(X, sample_weight, centers, labels):
    if X.shape[0] == 0:
        return 0.0
    f = float_type(X)
    C64 = on_device(np.asarray(centers, dtype=np.float64), X, f)
    lab = on_device(labels, X, dpnp().int64)
    return float(on_device(sample_weight, X, f) @ _sq_to_assigned(X, C64, lab, f))


def _sq_distances(Xb, C, x_norms=None):
    """scikit-learn's expansion ``||x||^2 - 2 x.c + ||c||^2``, clipped at 0, in float64."""
    xp = dpnp()
    f = C.dtype
    Xf = Xb.astype(f)
    xx = (Xf * Xf).sum(axis=1) if x_norms is None else x_norms.astype(f)
    return xp.maximum(xx[:, None] - 2 * (Xf @ C.T) + (C * C).sum(axis=1)[None, :], 0)


def kmeans_transform(X, centers):
    xp = dpnp()
    C = on_device(np.asarray(centers, dtype=np.float64), X, float_type(X))
    if X.shape[0] == 0:
        return xp.zeros((0, C.shape[0]), dtype=X.dtype, sycl_queue=X.sycl_queue)
    return xp.sqrt(_sq_distances(X, C)).astype(X.dtype)


def kmeans_min_distances(X, centers, closest=None, x_squared_norms=None):
    xp = dpnp()
    f = float_type(X)
    C = on_device(centers, X, f)
    xn = None if x_squared_norms is None else on_device(x_squared_norms, X, f)
    if X.shape[0] == 0:
        d = xp.zeros(0, dtype=f, sycl_queue=X.sycl_queue)
    else:
        d = xp.concatenate([_sq_distances(X[s], C, None if xn is None else xn[s]).min(axis=1)
                            for s in row_blocks(X.shape[0])])
    return d if closest is None else xp.minimum(on_device(closest, X, f), d)


def kmeans_plusplus_potentials(X, sample_weight, candidates, closest, x_squared_norms=None):
    n_cand = candidates.shape[0]
    if X.shape[0] == 0:
        return np.zeros(n_cand)
    xp = dpnp()
    f = float_type(X)
    C = on_device(candidates, X, f)
    xn = None if x_squared_norms is None else on_device(x_squared_norms, X, f)
    closest = on_device(closest, X, f)
    w = on_device(sample_weight, X, f)
    total = xp.zeros(n_cand, dtype=f, sycl_queue=X.sycl_queue)
    for s in row_blocks(X.shape[0]):
        to_c = xp.minimum(closest[s][:, None],
                          _sq_distances(X[s], C, None if xn is None else xn[s]))
        total += w[s] @ to_c
    return to_host(total).astype(np.float64)
