"""The cuda backend's kernels against the NumPy reference, on a GPU (skipped without one).

Run on a machine with an NVIDIA GPU and CuPy: ``python -m pytest tests/test_cuda_kernels.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from spmdlearn import reference as ref

cp = pytest.importorskip("cupy", reason="the cuda backend needs CuPy and an NVIDIA GPU")
try:
    _N_GPUS = cp.cuda.runtime.getDeviceCount()
except Exception:  # noqa: BLE001 - no driver
    _N_GPUS = 0
pytestmark = [pytest.mark.serial,
              pytest.mark.skipif(_N_GPUS == 0, reason="no CUDA device visible")]

from spmdlearn_cuda import _linear, _moments  # noqa: E402

DTYPES = [np.float64, np.float32]


def _shards(dtype):
    rng = np.random.default_rng(0)
    yield "empty", np.zeros((0, 5), dtype)
    yield "one row", rng.normal(size=(1, 5)).astype(dtype)
    yield "tall", rng.normal(size=(5000, 7)).astype(dtype)
    yield "far from origin", (1e8 + rng.normal(size=(3000, 4))).astype(dtype)
    yield "constant column", np.column_stack([np.full(300, 3.0), rng.normal(size=300)]).astype(dtype)
    yield "outlier first", np.vstack([[1e6] * 3, rng.normal(size=(999, 3))]).astype(dtype)
    yield "fortran", np.asfortranarray(rng.normal(size=(700, 6))).astype(dtype)
    yield "strided view", rng.normal(size=(900, 12)).astype(dtype)[::3, ::2]
    yield "wide", rng.normal(size=(400, 70)).astype(dtype)


def _close(got, want, dtype, field):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(np.max(np.abs(want), initial=0.0), 1.0)
    tol = 1e-9 if dtype == np.float64 else 1e-5
    assert got.shape == want.shape, field
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=field)


def _check_partial(got, want, dtype):
    assert type(got) is type(want)
    for field, g, w in zip(want._fields, got, want):
        _close(g, w, dtype, field)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_moment_kernels_match_reference(dtype, weighted):
    rng = np.random.default_rng(1)
    for name, X in _shards(dtype):
        w = rng.uniform(0, 3, X.shape[0]).astype(dtype) if weighted else None
        y = rng.normal(size=X.shape[0]).astype(dtype)
        Xd = cp.asarray(X) if X.flags.c_contiguous or X.flags.f_contiguous else cp.asarray(
            np.ascontiguousarray(X))
        if name == "strided view":  # keep it a non-contiguous view on the device too
            Xd = cp.asarray(np.ascontiguousarray(X.base if X.base is not None else X))[::3, ::2]
            assert not Xd.flags.c_contiguous
        wd = None if w is None else cp.asarray(w)
        _check_partial(_moments.moments_local(Xd, wd), ref.moments_local(X, w), dtype)
        _check_partial(_moments.column_stats_local(Xd, wd), ref.column_stats_local(X, w), dtype)
        _check_partial(_moments.comoments_local(Xd, None, wd), ref.comoments_local(X, None, w), dtype)
        _check_partial(_moments.comoments_local(Xd, cp.asarray(y), wd),
                       ref.comoments_local(X, y, w), dtype)


def test_zero_weights():
    X = np.arange(12.0).reshape(6, 2)
    w = np.zeros(6)
    for kernel, dev in ((ref.column_stats_local, _moments.column_stats_local),
                        (ref.comoments_local, _moments.comoments_local)):
        _check_partial(dev(cp.asarray(X), None if kernel is ref.comoments_local else cp.asarray(w))
                       if kernel is not ref.comoments_local else dev(cp.asarray(X), None, cp.asarray(w)),
                       kernel(X, w) if kernel is not ref.comoments_local else kernel(X, None, w),
                       np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_row_kernels(dtype):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 6)).astype(dtype)
    coef, intercept = rng.normal(size=(2, 6)), rng.normal(size=2)
    got = _linear.linear_predict(cp.asarray(X), coef, intercept)
    assert isinstance(got, cp.ndarray) and got.dtype == dtype
    _close(cp.asnumpy(got), ref.linear_predict(X, coef, intercept), dtype, "linear_predict")
    A = rng.normal(size=(6, 6))
    precision = A @ A.T
    loc = rng.normal(size=6)
    got = _linear.mahalanobis(cp.asarray(X), loc, precision)
    assert isinstance(got, cp.ndarray)
    _close(cp.asnumpy(got), ref.mahalanobis(X, loc, precision), dtype, "mahalanobis")


def _neighbor_blocks(dtype):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 4, size=(60, 3)).astype(dtype)  # a small grid: many exact ties
    Y = np.vstack([X[:20], rng.integers(0, 4, size=(50, 3))]).astype(dtype)  # duplicates of queries
    return X, Y


METRIC_CASES = [("euclidean", None), ("manhattan", None), ("chebyshev", None), ("minkowski", 3.0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric,p", METRIC_CASES)
@pytest.mark.parametrize("k", [1, 7, 40])  # the fused kernel, and the sort (k > 32)
def test_knn_merge_matches_reference_with_ties(dtype, metric, p, k):
    from spmdlearn.reference import knn_merge as ref_merge

    from spmdlearn_cuda._neighbors import knn_merge

    X, Y = _neighbor_blocks(dtype)
    y_index = np.arange(100, 100 + Y.shape[0], dtype=np.int64)[::-1].copy()  # lower index last
    best_d, best_i = np.full((len(X), k), np.inf), np.full((len(X), k), -1, np.int64)
    want = (best_d, best_i)
    got = (cp.asarray(best_d), cp.asarray(best_i))
    for lo, hi in ((0, 30), (30, 31), (31, 70), (70, 70)):  # blocks, one of one row, one empty
        x_index = np.arange(len(X), dtype=np.int64) + 100 if lo == 0 else None
        want = ref_merge(X, Y[lo:hi], y_index[lo:hi], *want, metric, p, x_index)
        got = knn_merge(cp.asarray(X), cp.asarray(Y[lo:hi]), y_index[lo:hi], *got, metric, p, x_index)
        assert isinstance(got[0], cp.ndarray)
        np.testing.assert_array_equal(cp.asnumpy(got[1]), want[1])
        # Distances are the reference's bit for bit, except through pow() (minkowski): an ulp.
        np.testing.assert_allclose(cp.asnumpy(got[0]), want[0], rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric,p", METRIC_CASES)
def test_radius_kernels_match_reference_on_the_boundary(dtype, metric, p):
    from spmdlearn import reference as r

    from spmdlearn_cuda import _neighbors as g

    X, Y = _neighbor_blocks(dtype)
    eps = 1.0  # integer grid: many distances exactly on the boundary
    w = np.linspace(-1, 2, len(Y))
    Xd, Yd = cp.asarray(X), cp.asarray(Y)
    # Who is within eps is exact; the weighted sums differ from BLAS's only in summation order.
    np.testing.assert_allclose(cp.asnumpy(g.radius_counts(Xd, Yd, w, eps, metric, p)),
                               r.radius_counts(X, Y, w, eps, metric, p), rtol=1e-13, atol=1e-13)
    labels = np.arange(len(Y), dtype=np.int64)[::-1].copy()
    current = np.full(len(X), 10**9, np.int64)
    np.testing.assert_array_equal(
        cp.asnumpy(g.radius_min_label(Xd, Yd, labels, current, eps, metric, p)),
        r.radius_min_label(X, Y, labels, current, eps, metric, p))
    y_index = np.arange(len(Y), dtype=np.int64)
    x_index = np.arange(len(X), dtype=np.int64)
    got = g.radius_neighbors_csr(Xd, Yd, y_index, eps, metric, p, x_index)
    want = r.radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index)
    np.testing.assert_array_equal(cp.asnumpy(got[0]), want[0])
    np.testing.assert_array_equal(cp.asnumpy(got[1]), want[1])
    np.testing.assert_allclose(cp.asnumpy(got[2]), want[2], rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_kernels(dtype, n_classes):
    from spmdlearn_cuda import _logistic as g

    rng = np.random.default_rng(4)
    for n in (0, 1, 300):
        X = rng.normal(size=(n, 5)).astype(dtype)
        target = rng.integers(0, n_classes, n)
        w = rng.uniform(0.5, 2, n)
        if n_classes == 2:
            coef, intercept, v, vi = rng.normal(size=5), 0.3, rng.normal(size=5), -0.2
        else:
            coef, intercept = rng.normal(size=(3, 5)), rng.normal(size=3)
            v, vi = rng.normal(size=(3, 5)), rng.normal(size=3)
        want = ref.logistic_loss_grad(X, target, w, coef, intercept, n_classes, True)
        got = g.logistic_loss_grad(cp.asarray(X), cp.asarray(target), cp.asarray(w), coef,
                                   intercept, n_classes, True)
        for a, b in zip(got[:3], want[:3]):
            _close(a, b, np.float64, "loss/grad")
        _close(cp.asnumpy(got[3]), want[3], np.float64, "hess_weights")
        _close_all = [(a, b) for a, b in zip(g.logistic_hessp(cp.asarray(X), got[3], v, vi, n_classes),
                                              ref.logistic_hessp(X, want[3], v, vi, n_classes))]
        for a, b in _close_all:
            _close(a, b, np.float64, "hessp")


@pytest.mark.parametrize("dtype", DTYPES)
def test_tsqr_local(dtype):
    from spmdlearn_cuda._pca import tsqr_local

    rng = np.random.default_rng(5)
    for X in (np.zeros((0, 4)), rng.normal(size=(1, 4)), rng.normal(size=(3, 4)),
              1e6 + rng.normal(size=(500, 4))):
        X = X.astype(dtype)
        mean = X.astype(np.float64).mean(axis=0) if len(X) else np.zeros(4)
        _check_partial(tsqr_local(cp.asarray(X), mean), ref.tsqr_local(X, mean), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_clusters", [5, 128, 300])  # fused kernel (the largest), cuBLAS path
def test_kmeans_kernels(dtype, n_clusters):
    from spmdlearn_cuda import _kmeans as g

    rng = np.random.default_rng(6)
    X = rng.integers(0, 5, size=(2000, 6)).astype(dtype)  # a grid: exact ties between centers
    centers = X[rng.choice(len(X), n_clusters)].astype(np.float64)
    centers[1] = centers[0]  # a duplicated center: the lower index must win
    w = rng.uniform(0.5, 2.0, len(X))
    old = rng.integers(-1, n_clusters, len(X)).astype(np.int32)
    for rows in (slice(0, 0), slice(0, 1), slice(0, 2000)):
        Xs, Xd = X[rows], cp.asarray(X[rows])
        labels, partial = g.lloyd_local(Xd, cp.asarray(w[rows]), centers, old[rows])
        want_labels, want = ref.lloyd_local(Xs, w[rows], centers, old[rows])
        np.testing.assert_array_equal(cp.asnumpy(labels), want_labels)
        _check_partial(partial, want, np.float64)
        labels, sq = g.kmeans_assign(Xd, centers)
        want_labels, want_sq = ref.kmeans_assign(Xs, centers)
        np.testing.assert_array_equal(cp.asnumpy(labels), want_labels)
        _close(cp.asnumpy(sq), want_sq, np.float64, "sq_distances")
        _close(g.kmeans_inertia(Xd, w[rows], centers, want_labels),
               ref.kmeans_inertia(Xs, w[rows], centers, want_labels), np.float64, "inertia")
        got = g.kmeans_transform(Xd, centers)
        assert got.dtype == dtype
        _close(cp.asnumpy(got), ref.kmeans_transform(Xs, centers), dtype, "transform")
        closest = g.kmeans_min_distances(Xd, centers[:2].astype(dtype), None, None)
        want_closest = ref.kmeans_min_distances(Xs, centers[:2].astype(dtype), None, None)
        _close(cp.asnumpy(closest), want_closest, dtype, "min_distances")
        _close(g.kmeans_plusplus_potentials(Xd, w[rows], centers[2:5].astype(dtype),
                                            want_closest, None),
               ref.kmeans_plusplus_potentials(Xs, w[rows], centers[2:5].astype(dtype),
                                              want_closest, None), dtype, "potentials")


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_transform(dtype):
    from spmdlearn_cuda._plugin import spmdlearn_affine_transform

    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 4)).astype(dtype)
    shift, scale = rng.normal(size=4).astype(dtype), rng.uniform(1, 2, 4).astype(dtype)
    got = spmdlearn_affine_transform(cp.asarray(X), shift, scale)
    assert isinstance(got, cp.ndarray) and got.dtype == dtype
    np.testing.assert_array_equal(cp.asnumpy(got), ref.affine_transform(X, shift, scale))
    assert spmdlearn_affine_transform(X, shift, scale) is None  # NumPy: declined


@pytest.mark.parametrize("dtype", DTYPES)
def test_forest_kernels(dtype):
    from spmdlearn_cuda import _forest as g

    rng = np.random.default_rng(8)
    n, d = 3000, 5
    X = rng.integers(0, 6, size=(n, d)).astype(dtype)  # values on the cut points
    edges = ref.pad_edges([np.arange(0.0, 5.0, 1.0 + j % 2) for j in range(d)])
    binned = ref.apply_bins(X, edges)
    got = g.apply_bins(cp.asarray(X), edges)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(cp.asnumpy(got), binned)
    rows = np.arange(10**6, 10**6 + n, dtype=np.int64)
    for lam in (1.0, 0.37):
        np.testing.assert_array_equal(cp.asnumpy(g.bootstrap_counts(cp.asarray(rows), 42, lam)),
                                      ref.bootstrap_counts(rows, 42, lam))
    counts = ref.bootstrap_counts(rows, 7, 1.0)
    node_pos = rng.integers(-1, 3, n)
    w = rng.integers(1, 3, n).astype(np.float64)
    n_bins = int(binned.max()) + 1
    for n_classes, y in ((3, rng.integers(0, 3, n)), (0, rng.normal(size=n))):
        cw = np.array([1.0, 2.0, 0.5]) if n_classes else None
        _close(g.tree_histograms(cp.asarray(binned), node_pos, y, w, counts, 3, n_bins,
                                 n_classes, cw),
               ref.tree_histograms(binned, node_pos, y, w, counts, 3, n_bins, n_classes, cw),
               np.float64, "histograms")

    args = (np.array([2, -1, 0]), np.array([1, 0, 3]), np.array([3, -1, 5]), np.array([4, -1, 6]))
    np.testing.assert_array_equal(
        cp.asnumpy(g.tree_route(cp.asarray(binned), node_pos, *args)),
        ref.tree_route(binned, node_pos, *args))
    feature = np.array([1, 0, -2, 3, -2, -2, -2])
    threshold = np.array([2.0, 3.0, 0, 1.0, 0, 0, 0])
    left = np.array([1, 3, -1, 5, -1, -1, -1])
    right = np.array([2, 4, -1, 6, -1, -1, -1])
    np.testing.assert_array_equal(
        cp.asnumpy(g.tree_apply(cp.asarray(X), feature, threshold, left, right)),
        ref.tree_apply(X, feature, threshold, left, right))
