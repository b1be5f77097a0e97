"""The device backends' kernels (cuda on CuPy, sycl on dpnp) against the NumPy reference.

Each test runs once per device backend whose array library and device are present here, and is
skipped with the reason otherwise: on a machine with an NVIDIA GPU and CuPy for ``cuda``; with
dpnp, dpctl and a SYCL device (the OpenCL CPU device of ``intel-opencl-rt`` will do, with
``OCL_ICD_FILENAMES`` pointing at its ``libintelocl.so``) for ``sycl``.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from spmdlearn import reference as ref

pytestmark = pytest.mark.serial


class Device:
    """One device backend: its array library, a queue or device, and its kernel modules."""

    def __init__(self, name):
        self.name = name
        if name == "cuda":
            self.xp = importlib.import_module("cupy")
            if self.xp.cuda.runtime.getDeviceCount() == 0:
                raise RuntimeError("no CUDA device visible")
            self._kw = {}
        else:
            dpctl = importlib.import_module("dpctl")
            self.xp = importlib.import_module("dpnp")
            self._kw = {"sycl_queue": dpctl.SyclQueue()}
        self.package = f"spmdlearn_{name}"

    def asarray(self, a):
        return self.xp.asarray(a, **self._kw)

    def asnumpy(self, a):
        return self.xp.asnumpy(a)

    def is_array(self, a):
        return isinstance(a, self.xp.ndarray)

    def module(self, name):
        return importlib.import_module(f"{self.package}.{name}")


def _device(name):
    try:
        return Device(name)
    except Exception as exc:  # noqa: BLE001 - missing library, driver or device: skip, saying why
        return exc


_DEVICES = {name: _device(name) for name in ("cuda", "sycl")}


@pytest.fixture(params=list(_DEVICES))
def dev(request):
    device = _DEVICES[request.param]
    if isinstance(device, Exception):
        pytest.skip(f"{request.param} backend not runnable here: {device!r}")
    return device


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
def test_moment_kernels_match_reference(dev, dtype, weighted):
    rng = np.random.default_rng(1)
    for name, X in _shards(dtype):
        w = rng.uniform(0, 3, X.shape[0]).astype(dtype) if weighted else None
        y = rng.normal(size=X.shape[0]).astype(dtype)
        Xd = dev.asarray(X if X.flags.c_contiguous or X.flags.f_contiguous
                         else np.ascontiguousarray(X))
        if name == "strided view":  # keep it a non-contiguous view on the device too
            Xd = dev.asarray(np.ascontiguousarray(X.base if X.base is not None else X))[::3, ::2]
            assert not Xd.flags.c_contiguous
        wd = None if w is None else dev.asarray(w)
        _check_partial(dev.module("_moments").moments_local(Xd, wd), ref.moments_local(X, w), dtype)
        _check_partial(dev.module("_moments").column_stats_local(Xd, wd), ref.column_stats_local(X, w), dtype)
        _check_partial(dev.module("_moments").comoments_local(Xd, None, wd), ref.comoments_local(X, None, w), dtype)
        _check_partial(dev.module("_moments").comoments_local(Xd, dev.asarray(y), wd),
                       ref.comoments_local(X, y, w), dtype)


def test_zero_weights(dev):
    X = np.arange(12.0).reshape(6, 2)
    w = np.zeros(6)
    kernels = dev.module("_moments")
    _check_partial(kernels.column_stats_local(dev.asarray(X), dev.asarray(w)),
                   ref.column_stats_local(X, w), np.float64)
    _check_partial(kernels.comoments_local(dev.asarray(X), None, dev.asarray(w)),
                   ref.comoments_local(X, None, w), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_per_row_kernels(dev, dtype):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 6)).astype(dtype)
    coef, intercept = rng.normal(size=(2, 6)), rng.normal(size=2)
    got = dev.module("_linear").linear_predict(dev.asarray(X), coef, intercept)
    assert dev.is_array(got) and got.dtype == dtype
    _close(dev.asnumpy(got), ref.linear_predict(X, coef, intercept), dtype, "linear_predict")
    A = rng.normal(size=(6, 6))
    precision = A @ A.T
    loc = rng.normal(size=6)
    got = dev.module("_linear").mahalanobis(dev.asarray(X), loc, precision)
    assert dev.is_array(got)
    _close(dev.asnumpy(got), ref.mahalanobis(X, loc, precision), dtype, "mahalanobis")


def _neighbor_blocks(dtype):
    rng = np.random.default_rng(3)
    X = rng.integers(0, 4, size=(60, 3)).astype(dtype)  # a small grid: many exact ties
    Y = np.vstack([X[:20], rng.integers(0, 4, size=(50, 3))]).astype(dtype)  # duplicates of queries
    return X, Y


METRIC_CASES = [("euclidean", None), ("manhattan", None), ("chebyshev", None), ("minkowski", 3.0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric,p", METRIC_CASES)
@pytest.mark.parametrize("k", [1, 7, 40])  # the fused kernel, and the sort (k > 32)
@pytest.mark.parametrize("offset", [0.0, 1e7])
def test_knn_merge_matches_reference_with_ties(dev, dtype, metric, p, k, offset):
    from spmdlearn.reference import knn_merge as ref_merge

    knn_merge = dev.module("_neighbors").knn_merge

    X, Y = _neighbor_blocks(dtype)
    if offset:  # far from the origin: the differences stay exact, so do the ties
        X, Y = X + dtype(offset), Y + dtype(offset)
    y_index = np.arange(100, 100 + Y.shape[0], dtype=np.int64)[::-1].copy()  # lower index last
    best_d, best_i = np.full((len(X), k), np.inf), np.full((len(X), k), -1, np.int64)
    want = (best_d, best_i)
    got = (dev.asarray(best_d), dev.asarray(best_i))
    for lo, hi in ((0, 30), (30, 31), (31, 70), (70, 70)):  # blocks, one of one row, one empty
        x_index = np.arange(len(X), dtype=np.int64) + 100 if lo == 0 else None
        want = ref_merge(X, Y[lo:hi], y_index[lo:hi], *want, metric, p, x_index)
        got = knn_merge(dev.asarray(X), dev.asarray(Y[lo:hi]), y_index[lo:hi], *got, metric, p, x_index)
        assert dev.is_array(got[0])
        np.testing.assert_array_equal(dev.asnumpy(got[1]), want[1])
        # Distances are the reference's bit for bit (minkowski's pow() on the host).
        np.testing.assert_array_equal(dev.asnumpy(got[0]), want[0])


def test_knn_merge_takes_a_host_candidate_block(dev):
    """Device queries against a NumPy candidate block (another rank's rows, staged through the
    host for MPI): the hook serves it on the queries' device, the reference's neighbours."""
    from spmdlearn.reference import knn_merge as ref_merge

    hook = dev.module("_plugin").spmdlearn_knn_merge
    X, Y = _neighbor_blocks(np.float64)
    y_index = np.arange(Y.shape[0], dtype=np.int64)
    best = (np.full((len(X), 3), np.inf), np.full((len(X), 3), -1, np.int64))
    got = hook(X=dev.asarray(X), Y=Y, y_index=y_index, best_distances=best[0],
               best_indices=best[1], metric="euclidean", p=None, x_index=None)
    assert got is not None and dev.is_array(got[0]) and dev.is_array(got[1])
    want = ref_merge(X, Y, y_index, *best, "euclidean", None, None)
    np.testing.assert_array_equal(dev.asnumpy(got[1]), want[1])
    np.testing.assert_array_equal(dev.asnumpy(got[0]), want[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric,p", METRIC_CASES)
def test_radius_kernels_match_reference_on_the_boundary(dev, dtype, metric, p):
    from spmdlearn import reference as r

    g = dev.module("_neighbors")

    X, Y = _neighbor_blocks(dtype)
    eps = 1.0  # integer grid: many distances exactly on the boundary
    w = np.linspace(-1, 2, len(Y))
    Xd, Yd = dev.asarray(X), dev.asarray(Y)
    # Who is within eps is exact; the weighted sums differ from BLAS's only in summation order.
    np.testing.assert_allclose(dev.asnumpy(g.radius_counts(Xd, Yd, w, eps, metric, p)),
                               r.radius_counts(X, Y, w, eps, metric, p), rtol=1e-13, atol=1e-13)
    labels = np.arange(len(Y), dtype=np.int64)[::-1].copy()
    current = np.full(len(X), 10**9, np.int64)
    np.testing.assert_array_equal(
        dev.asnumpy(g.radius_min_label(Xd, Yd, labels, current, eps, metric, p)),
        r.radius_min_label(X, Y, labels, current, eps, metric, p))
    y_index = np.arange(len(Y), dtype=np.int64)
    x_index = np.arange(len(X), dtype=np.int64)
    got = g.radius_neighbors_csr(Xd, Yd, y_index, eps, metric, p, x_index)
    want = r.radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index)
    np.testing.assert_array_equal(dev.asnumpy(got[0]), want[0])
    np.testing.assert_array_equal(dev.asnumpy(got[1]), want[1])
    np.testing.assert_allclose(dev.asnumpy(got[2]), want[2], rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric,p", METRIC_CASES)
def test_radius_label_union_matches_reference(dev, dtype, metric, p):
    """The classes of labels joined on the device are the reference's: pairs on the boundary
    (an integer grid), labels shared by many rows, labels found on one side only, a block
    against itself, and an empty block."""
    from spmdlearn import reference as r

    g = dev.module("_neighbors")
    X, Y = _neighbor_blocks(dtype)
    rng = np.random.default_rng(5)
    for x_labels, y_labels in ((np.arange(len(X), dtype=np.int64) * 3,
                                np.arange(len(Y), dtype=np.int64) * 3 + 1),
                               (rng.integers(0, 6, len(X)), rng.integers(4, 12, len(Y)))):
        x_labels, y_labels = x_labels.astype(np.int64), y_labels.astype(np.int64)
        for eps in (0.5, 1.0, 2.0):
            want = r.radius_label_union(X, x_labels, Y, y_labels, eps, metric, p)
            got = g.radius_label_union(dev.asarray(X), x_labels, dev.asarray(Y), y_labels, eps,
                                       metric, p)
            assert all(isinstance(a, np.ndarray) and a.dtype == np.int64 for a in got)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
        assert (want[1] != want[0]).any()  # the cases join classes
        np.testing.assert_array_equal(
            g.radius_label_union(dev.asarray(X), x_labels, dev.asarray(X), x_labels, 1.0, metric,
                                 p)[1],
            r.radius_label_union(X, x_labels, X, x_labels, 1.0, metric, p)[1])
        empty = g.radius_label_union(dev.asarray(X[:0]), x_labels[:0], dev.asarray(Y), y_labels,
                                     1.0, metric, p)
        np.testing.assert_array_equal(empty[0], np.unique(y_labels))
        np.testing.assert_array_equal(empty[1], np.unique(y_labels))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_kernels(dev, dtype, n_classes):
    g = dev.module("_logistic")

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
        got = g.logistic_loss_grad(dev.asarray(X), dev.asarray(target), dev.asarray(w), coef,
                                   intercept, n_classes, True)
        for a, b in zip(got[:3], want[:3]):
            _close(a, b, np.float64, "loss/grad")
        _close(dev.asnumpy(got[3]), want[3], np.float64, "hess_weights")
        _close_all = [(a, b) for a, b in zip(g.logistic_hessp(dev.asarray(X), got[3], v, vi, n_classes),
                                              ref.logistic_hessp(X, want[3], v, vi, n_classes))]
        for a, b in _close_all:
            _close(a, b, np.float64, "hessp")


@pytest.mark.parametrize("dtype", DTYPES)
def test_tsqr_local(dev, dtype):
    tsqr_local = dev.module("_pca").tsqr_local

    rng = np.random.default_rng(5)
    for X in (np.zeros((0, 4)), rng.normal(size=(1, 4)), rng.normal(size=(3, 4)),
              1e6 + rng.normal(size=(500, 4))):
        X = X.astype(dtype)
        mean = X.astype(np.float64).mean(axis=0) if len(X) else np.zeros(4)
        _check_partial(tsqr_local(dev.asarray(X), mean), ref.tsqr_local(X, mean), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_clusters", [5, 128, 300])  # fused kernel (the largest), cuBLAS path
def test_kmeans_kernels(dev, dtype, n_clusters):
    g = dev.module("_kmeans")

    rng = np.random.default_rng(6)
    X = rng.integers(0, 5, size=(2000, 6)).astype(dtype)  # a grid: exact ties between centers
    centers = X[rng.choice(len(X), n_clusters)].astype(np.float64)
    centers[1] = centers[0]  # a duplicated center: the lower index must win
    w = rng.uniform(0.5, 2.0, len(X))
    old = rng.integers(-1, n_clusters, len(X)).astype(np.int32)
    for rows in (slice(0, 0), slice(0, 1), slice(0, 2000)):
        Xs, Xd = X[rows], dev.asarray(X[rows])
        labels, partial = g.lloyd_local(Xd, dev.asarray(w[rows]), centers, old[rows])
        want_labels, want = ref.lloyd_local(Xs, w[rows], centers, old[rows])
        np.testing.assert_array_equal(dev.asnumpy(labels), want_labels)
        _check_partial(partial, want, np.float64)
        labels, sq = g.kmeans_assign(Xd, centers)
        want_labels, want_sq = ref.kmeans_assign(Xs, centers)
        np.testing.assert_array_equal(dev.asnumpy(labels), want_labels)
        _close(dev.asnumpy(sq), want_sq, np.float64, "sq_distances")
        _close(g.kmeans_inertia(Xd, w[rows], centers, want_labels),
               ref.kmeans_inertia(Xs, w[rows], centers, want_labels), np.float64, "inertia")
        got = g.kmeans_transform(Xd, centers)
        assert got.dtype == dtype
        _close(dev.asnumpy(got), ref.kmeans_transform(Xs, centers), dtype, "transform")
        closest = g.kmeans_min_distances(Xd, centers[:2].astype(dtype), None, None)
        want_closest = ref.kmeans_min_distances(Xs, centers[:2].astype(dtype), None, None)
        _close(dev.asnumpy(closest), want_closest, dtype, "min_distances")
        _close(g.kmeans_plusplus_potentials(Xd, w[rows], centers[2:5].astype(dtype),
                                            want_closest, None),
               ref.kmeans_plusplus_potentials(Xs, w[rows], centers[2:5].astype(dtype),
                                              want_closest, None), dtype, "potentials")


@pytest.mark.parametrize("n_clusters", [3, 300])  # fused kernel, cuBLAS path
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype, n_rows", [(np.float64, 200), (np.float64, 3 * 4096 + 123),
                                           (np.float32, 3 * 4096 + 123)])
def test_kmeans_labels_far_from_the_origin(dev, n_clusters, order, dtype, n_rows):
    """Rows far from the origin (1e8 in float64, 1e3 in float32): ``||c||^2 - 2 x.c`` keeps
    few or no digits of the distances, so the device's product and the host BLAS round apart
    on many rows; the labels are still the reference's (near-ties decided by its scores), also
    where the near-ties lie in several row blocks of a shard, the last one short."""
    rng = np.random.default_rng(10)
    far = 1e8 if dtype == np.float64 else 1e3
    X = np.asarray(rng.normal(size=(n_rows, 3)) + far, dtype=dtype, order=order)
    centers = X[rng.choice(len(X), n_clusters)].astype(np.float64)
    g = dev.module("_kmeans")
    w = np.ones(len(X))
    old = np.full(len(X), -1, np.int32)
    labels, partial = g.lloyd_local(dev.asarray(X), dev.asarray(w), centers, old)
    want_labels, want = ref.lloyd_local(X, w, centers, old)
    np.testing.assert_array_equal(dev.asnumpy(labels), want_labels)
    _check_partial(partial, want, dtype)
    labels, _ = g.kmeans_assign(dev.asarray(X), centers)
    np.testing.assert_array_equal(dev.asnumpy(labels), ref.kmeans_assign(X, centers)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_transform(dev, dtype):
    spmdlearn_affine_transform = dev.module("_plugin").spmdlearn_affine_transform

    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 4)).astype(dtype)
    shift, scale = rng.normal(size=4).astype(dtype), rng.uniform(1, 2, 4).astype(dtype)
    got = spmdlearn_affine_transform(dev.asarray(X), shift, scale)
    assert dev.is_array(got) and got.dtype == dtype
    np.testing.assert_array_equal(dev.asnumpy(got), ref.affine_transform(X, shift, scale))
    assert spmdlearn_affine_transform(X, shift, scale) is None  # NumPy: declined


@pytest.mark.parametrize("dtype", DTYPES)
def test_forest_kernels(dev, dtype):
    g = dev.module("_forest")

    rng = np.random.default_rng(8)
    n, d = 3000, 5
    X = rng.integers(0, 6, size=(n, d)).astype(dtype)  # values on the cut points
    edges = ref.pad_edges([np.arange(0.0, 5.0, 1.0 + j % 2) for j in range(d)])
    binned = ref.apply_bins(X, edges)
    got = g.apply_bins(dev.asarray(X), edges)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(dev.asnumpy(got), binned)
    rows = np.arange(10**6, 10**6 + n, dtype=np.int64)
    for lam in (1.0, 0.37):
        np.testing.assert_array_equal(dev.asnumpy(g.bootstrap_counts(dev.asarray(rows), 42, lam)),
                                      ref.bootstrap_counts(rows, 42, lam))
    counts = ref.bootstrap_counts(rows, 7, 1.0)
    node_pos = rng.integers(-1, 3, n)
    w = rng.integers(1, 3, n).astype(np.float64)
    n_bins = int(binned.max()) + 1
    for n_classes, y in ((3, rng.integers(0, 3, n)), (0, rng.normal(size=n))):
        cw = np.array([1.0, 2.0, 0.5]) if n_classes else None
        hist = g.tree_histograms(dev.asarray(binned), node_pos, y, w, counts, 3, n_bins,
                                 n_classes, cw)
        # NumPy, or on the device (the hookspec allows either)
        _close(dev.asnumpy(hist) if dev.is_array(hist) else hist,
               ref.tree_histograms(binned, node_pos, y, w, counts, 3, n_bins, n_classes, cw),
               np.float64, "histograms")

    args = (np.array([2, -1, 0]), np.array([1, 0, 3]), np.array([3, -1, 5]), np.array([4, -1, 6]))
    np.testing.assert_array_equal(
        dev.asnumpy(g.tree_route(dev.asarray(binned), node_pos, *args)),
        ref.tree_route(binned, node_pos, *args))
    feature = np.array([1, 0, -2, 3, -2, -2, -2])
    threshold = np.array([2.0, 3.0, 0, 1.0, 0, 0, 0])
    left = np.array([1, 3, -1, 5, -1, -1, -1])
    right = np.array([2, 4, -1, 6, -1, -1, -1])
    np.testing.assert_array_equal(
        dev.asnumpy(g.tree_apply(dev.asarray(X), feature, threshold, left, right)),
        ref.tree_apply(X, feature, threshold, left, right))


def _split_problems(seed, n_trials):
    """Histograms of a level with many equal decreases (integer counts, few bins), weighted and
    unweighted, class counts below and above NumPy's 8-way pairwise summation, far offsets."""
    rng = np.random.default_rng(seed)
    for _ in range(n_trials):
        n_nodes, d = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        n_bins = int(rng.integers(2, 12))
        K = int(rng.choice([0, 2, 3, 9, 12]))
        criterion = str(rng.choice(["gini", "entropy"])) if K else "squared_error"
        if K:
            stats = rng.integers(0, 3, (n_nodes, d, n_bins, K)).astype(np.float64)
            if rng.integers(2):
                stats = stats * rng.uniform(0.3, 2.0, stats.shape)
        else:
            wt = rng.integers(0, 3, (n_nodes, d, n_bins)).astype(np.float64)
            yv = np.round(rng.normal(size=(n_nodes, d, n_bins)), int(rng.integers(0, 3)))
            yv = yv + (1e6 if rng.integers(2) else 0.0)
            stats = np.stack([wt, wt * yv, wt * yv * yv], -1)
        rows = (stats[..., 0] > 0) + rng.integers(0, 2, (n_nodes, d, n_bins))
        hist = np.concatenate([stats, rows[..., None].astype(np.float64)], -1)
        order = np.argsort(rng.random((n_nodes, d)), axis=1)
        yield hist, order, (int(rng.integers(1, d + 1)), bool(K), criterion,
                            int(rng.integers(1, 3)), float(rng.choice([0.0, 0.05])), 10.0,
                            float(rng.choice([0.0, 1.0])))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 0/0 where a split is invalid
def test_split_search_on_the_device_is_the_references(dev):
    """The forests' split search on a device histogram: the reference's decisions and decreases
    bit for bit (ties between features and bins included), returned as NumPy arrays."""
    best_splits = dev.module("_splits").best_splits
    for hist, order, args in _split_problems(1, 25):
        want = ref.best_splits(hist, order, *args)
        got = best_splits(dev.asarray(hist), order, *args)
        for a, b in zip(want, got):
            assert isinstance(b, np.ndarray) and b.dtype == a.dtype
            np.testing.assert_array_equal(b, a)


def test_all_finite(dev):
    all_finite = dev.module("_plugin").spmdlearn_all_finite
    X = np.ones((50, 3))
    assert all_finite(dev.asarray(X)) is True
    assert all_finite(dev.asarray(X[:0])) is True
    for bad in (np.nan, np.inf, -np.inf):
        Y = X.copy()
        Y[17, 2] = bad
        assert all_finite(dev.asarray(Y)) is False
        assert all_finite(dev.asarray(Y.astype(np.float32))) is False
    assert all_finite(X) is None  # NumPy: declined


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int64])
def test_all_finite_reads_every_element(dev, layout, dtype):
    """The one-pass check against the reference on large, non-contiguous and non-float input:
    one bad element anywhere (first, last, in a column a stride skips over) decides."""
    X = np.random.default_rng(0).normal(size=(300_001, 5)).astype(dtype)
    views = {"C": lambda a, xp: a, "F": lambda a, xp: xp.asfortranarray(a),
             "strided": lambda a, xp: a[::3, ::2]}

    def view(a, xp=np):
        return views[layout](a, xp)

    all_finite = dev.module("_plugin").spmdlearn_all_finite
    assert all_finite(view(dev.asarray(X), dev.xp)) is True
    if dtype == np.int64:
        return
    for at in ((0, 0), (-1, -1), (1, 1), (150_000, 3)):
        Y = X.copy()
        Y[at] = np.nan if at[0] % 2 == 0 else np.inf
        want = ref.all_finite(view(Y))
        assert all_finite(view(dev.asarray(Y), dev.xp)) is want, (at, want)


def test_large_host_copies_keep_values(dev):
    """``to_host`` of a device array from ``HOST_COPY_MIN_BYTES`` on goes through the backend's
    ``spmdlearn_host_copy`` where it makes one (cuda: page-locked memory): the same values,
    shape and dtype as the copy of a small array, C or F order."""
    from spmdlearn._array_api import HOST_COPY_MIN_BYTES, to_host
    from spmdlearn._backends import host_copy

    rng = np.random.default_rng(3)
    n = HOST_COPY_MIN_BYTES // 8 // 16 + 7
    for a in (rng.normal(size=(n, 16)), np.asfortranarray(rng.normal(size=(n, 16))),
              rng.integers(0, 9, size=(2, n, 8)), rng.normal(size=(3, 4))):
        d = dev.asarray(a)
        got = to_host(d)
        assert isinstance(got, np.ndarray) and got.dtype == a.dtype and got.shape == a.shape
        np.testing.assert_array_equal(got, a)
    made = host_copy(dev.asarray(rng.normal(size=(n, 16))))
    assert (made is not None) == (dev.name == "cuda")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_cluster_sums_are_fixed_order(dev, dtype):
    """The cuda KMeans paths off the fused kernel (many or wide centers, near-ties) sum each
    cluster's rows in an order fixed by the labels: NumPy's sums within rounding, the same bits
    on every call, any layout, empty clusters zero."""
    if dev.name != "cuda":
        pytest.skip("the fixed-order cluster sums are the cuda backend's")
    km = dev.module("_kmeans")
    rng = np.random.default_rng(11)
    n, d, k = 50_000, 7, 12
    labels = rng.integers(0, k - 2, n).astype(np.int32)  # the last two clusters stay empty
    w = rng.uniform(0.1, 3.0, n)
    for X in (rng.normal(size=(n, d)).astype(dtype),
              np.asfortranarray(rng.normal(size=(n, d)).astype(dtype))):
        want_s, want_w = np.zeros((k, d)), np.zeros(k)
        np.add.at(want_s, labels, X.astype(np.float64) * w[:, None])
        np.add.at(want_w, labels, w)
        runs = [km._cluster_sums(dev.asarray(X), dev.asarray(w), dev.asarray(labels), k)
                for _ in range(3)]
        got_s, got_w = (dev.asnumpy(a) for a in runs[0])
        np.testing.assert_allclose(got_s, want_s, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got_w, want_w, rtol=1e-12)
        assert not got_s[-2:].any() and not got_w[-2:].any()
        for s, ww in runs[1:]:
            assert np.array_equal(dev.asnumpy(s), got_s) and np.array_equal(dev.asnumpy(ww), got_w)
