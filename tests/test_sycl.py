"""The sycl backend's exactness where the reference's decisions hang on the last bit, its
dispatch accounting and output placement, on dpnp arrays.

Skipped, with the reason, where dpnp, dpctl or a SYCL device is missing (the OpenCL CPU device
of ``intel-opencl-rt`` will do, with ``OCL_ICD_FILENAMES`` pointing at its ``libintelocl.so``:
tests/run_all.py sets it).
"""

from __future__ import annotations

import numpy as np
import pytest

from spmdlearn import reference as ref

pytestmark = pytest.mark.serial



def test_sqrt_is_correctly_rounded(dpnp):
    from spmdlearn_sycl._exact import sqrt_rn

    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 1e17, 200_000), np.exp(rng.uniform(-744, 709, 200_000)),
                        rng.uniform(0.5, 2.0, 200_000),
                        [0.0, 5e-324, 2.2e-308, 0.25, 0.5, 1.0, 2.0, 4.0, 1.7976931348623157e308,
                         np.inf]])
    np.testing.assert_array_equal(dpnp.asnumpy(sqrt_rn(dpnp.asarray(a))), np.sqrt(a))
    assert np.isnan(dpnp.asnumpy(sqrt_rn(dpnp.asarray([np.nan])))[0])


def _far_blocks(dtype, seed=0):
    """Queries and candidates far from the origin, with a duplicated candidate: distances that
    tie after rounding, and differ by an ulp where a square root is not correctly rounded."""
    rng = np.random.default_rng(seed)
    X = (1e8 + rng.normal(size=(300, 4))).astype(dtype)
    Y = np.concatenate([X[:150], X[:1]])
    return X[100:], Y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("metric,p", [("euclidean", None), ("minkowski", 2.0),
                                      ("minkowski", 3.0), ("minkowski", np.inf),
                                      ("manhattan", None), ("chebyshev", None)])
def test_knn_merge_far_from_origin_is_the_reference(dpnp, dtype, metric, p):
    from spmdlearn_sycl._neighbors import knn_merge

    X, Y = _far_blocks(dtype)
    y_index = np.arange(len(Y), dtype=np.int64)
    k = 4
    init = (np.full((len(X), k), np.inf), np.full((len(X), k), -1, np.int64))
    want = ref.knn_merge(X, Y, y_index, *init, metric, p)
    got = knn_merge(dpnp.asarray(X), dpnp.asarray(Y), y_index, *init, metric, p)
    np.testing.assert_array_equal(dpnp.asnumpy(got[1]), want[1])
    np.testing.assert_array_equal(dpnp.asnumpy(got[0]), want[0])


@pytest.mark.parametrize("metric,p", [("euclidean", None), ("minkowski", 3.0)])
def test_radius_boundary_far_from_origin_is_the_reference(dpnp, metric, p):
    from spmdlearn_sycl import _neighbors

    X, Y = _far_blocks(np.float64, seed=1)
    d = ref.block_distances(X[:20], Y[:20], metric, p)
    for eps in np.unique(d)[:40]:  # radii exactly at distances
        got = _neighbors.radius_neighbors_csr(dpnp.asarray(X), dpnp.asarray(Y),
                                              np.arange(len(Y), dtype=np.int64), float(eps),
                                              metric, p, None)
        want = ref.radius_neighbors_csr(X, Y, np.arange(len(Y), dtype=np.int64), float(eps),
                                        metric, p, None)
        np.testing.assert_array_equal(dpnp.asnumpy(got[1]), want[1])
        np.testing.assert_array_equal(dpnp.asnumpy(got[2]), want[2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel", ["kmeans_assign", "kmeans_lloyd_local"])
def test_kmeans_ties_are_the_reference(dpnp, dtype, kernel):
    """Duplicated centers and rows exactly between two centers: the reference's BLAS rounds
    these scores apart in the last bit, and the device must decide as it does."""
    from spmdlearn_sycl import _kmeans

    for seed in range(20):
        rng = np.random.default_rng(seed)
        X = (1e8 + rng.normal(size=(300, 3))).astype(dtype)
        Xc = X - X.mean(0).astype(dtype)
        centers = Xc[rng.integers(0, 300, 3)].astype(np.float64)
        centers[1] = centers[0]
        centers[2] = 2 * np.asarray(Xc[0], np.float64) - centers[0]
        if kernel == "kmeans_assign":
            want = ref.kmeans_assign(Xc, centers)[0]
            got = _kmeans.kmeans_assign(dpnp.asarray(Xc), centers)[0]
        else:
            w, old = np.ones(len(Xc)), np.full(len(Xc), -1, np.int32)
            want = ref.lloyd_local(Xc, w, centers, old)[0]
            got = _kmeans.lloyd_local(dpnp.asarray(Xc), w, centers, old)[0]
        np.testing.assert_array_equal(dpnp.asnumpy(got), want, err_msg=f"seed {seed}")


def test_placement_check_sees_another_queue(dpnp):
    import dpctl

    from spmdlearn_conformance._arrays import same_place

    q1, q2 = dpctl.SyclQueue(), dpctl.SyclQueue()
    a = dpnp.zeros(3, sycl_queue=q1)
    assert same_place(dpnp.ones(3, sycl_queue=q1), a) is None
    assert "not the input's" in same_place(dpnp.ones(3, sycl_queue=q2), a)


def test_declines_on_host_copies_are_counted_apart(dpnp):
    """With the sycl backend selected, a kernel called on NumPy rows (an algorithm step that
    took the input to the host) is declined, and counted as unclaimed; a kernel on dpnp rows is
    served."""
    import spmdlearn
    from spmdlearn import _backends

    X = np.random.default_rng(0).normal(size=(20, 3))
    _backends.reset_dispatch_counts()
    with spmdlearn.config_context(backend="sycl"):
        _backends.call_kernel("moments_local", X=X, sample_weight=None)
        _backends.call_kernel("moments_local", X=dpnp.asarray(X), sample_weight=None)
    assert _backends.dispatch_counts()[("sycl", "moments_local")] == {
        "served": 1, "declined": 1, "fallback": 0}
    assert _backends.unclaimed_counts() == {("sycl", "moments_local"): 1}


@pytest.mark.timeout(120)
def test_info_lists_each_ranks_sycl_devices(dpnp):
    import os
    import subprocess
    import sys

    from run_all import mpiexec_command

    out = subprocess.run(mpiexec_command(2) + [sys.executable, "-m", "spmdlearn", "info"],
                         capture_output=True, text=True, timeout=110,
                         env={**os.environ, "SPMDLEARN_VERBOSE": ""})
    assert out.returncode == 0, out.stdout + out.stderr
    import dpctl

    default = dpctl.select_default_device()
    name = f"{default.backend.name}:{default.device_type.name} {default.name}"
    section = out.stdout.split("  sycl ", 1)[1].split("\n  ")[:6]
    for rank in (0, 1):
        assert any(line.strip().startswith(f"rank {rank}: sees") and
                   line.rstrip().endswith(f"would use: {name}") for line in section), out.stdout


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 0/0 where a split is invalid
def test_split_search_arithmetic_is_the_references():
    """The device split search's expressions (sycl and cuda share them), run in NumPy: the reference's decisions and
    decreases bit for bit (NumPy's summation orders made explicit). Needs no device."""
    from spmdlearn.reference._splits_in_namespace import best_splits_in
    from test_device_kernels import _split_problems

    for hist, order, args in _split_problems(0, 300):
        want = ref.best_splits(hist, order, *args)
        got = best_splits_in(np, hist, order, *args)
        for a, b in zip(want, got):
            np.testing.assert_array_equal(b, a)


def test_ci_stage_requires_every_kernel_served_on_dpnp(tmp_path, monkeypatch):
    """The CI stage of the sycl backend fails on a kernel that declined or fell back on dpnp
    input, and on a skipped run where the test extra installs the SYCL runtime."""
    import json

    import run_all

    report = tmp_path / "report.json"

    def verdict(**summary):
        report.write_text(json.dumps({"array_type": "dpnp", "skipped": None,
                                      "not_served_on_type": [], **summary}))
        return run_all._device_requirement(report)

    assert verdict() is None
    assert "best_splits" in verdict(not_served_on_type=["best_splits"])
    monkeypatch.setattr(run_all.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(run_all.sys, "platform", "linux")
    assert "skipped: no dpnp" in verdict(skipped="no dpnp")
    monkeypatch.setattr(run_all.platform, "machine", lambda: "aarch64")
    assert verdict(skipped="no dpnp") is None


def _served_on_the_device(kernels):
    """Each of ``kernels`` served by the sycl backend, never declined nor fallen back, and no
    step of any estimator taken to the host."""
    from spmdlearn import _array_api, _backends

    counts = _backends.dispatch_counts()
    for kernel in kernels:
        c = counts[("sycl", kernel)]
        assert c["served"] >= 1 and c["declined"] == c["fallback"] == 0, (kernel, c)
    assert all(outcome["declined"] == outcome["fallback"] == 0
               for outcome in counts.values()), counts
    assert _array_api.fallbacks() == {}, _array_api.fallbacks()


def _reset_counts():
    from spmdlearn import _array_api, _backends

    _backends.reset_dispatch_counts()
    _array_api.reset_fallbacks()


def test_neighbour_search_runs_on_the_device(dpnp):
    """kneighbors and predict on dpnp rows: the knn_merge kernel served on the device for every
    block, the search, the target lookup and the (weighted) mean on the device; results on the
    queries' queue, scikit-learn's neighbours and predictions; nothing taken to the host."""
    import dpctl
    from sklearn.neighbors import KNeighborsRegressor as SkKNN

    import spmdlearn
    from spmdlearn.neighbors import KNeighborsRegressor

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 3)), rng.normal(size=200)
    # Queries that are not training rows: at a distance of zero, scikit-learn's own expansion
    # rounds to about 1e-8 or not depending on its BLAS, and weights="distance" follows it.
    Q = rng.normal(size=(50, 3))
    q = dpctl.SyclQueue()
    Xd, yd = dpnp.asarray(X, sycl_queue=q), dpnp.asarray(y, sycl_queue=q)
    Qd = dpnp.asarray(Q, sycl_queue=q)
    for weights in ("uniform", "distance"):
        _reset_counts()
        with spmdlearn.config_context(backend="sycl"):
            model = KNeighborsRegressor(5, weights=weights).fit(Xd, yd)
            dist, ind = model.kneighbors(Qd)
            pred = model.predict(Qd)
        assert dist.sycl_queue == q and ind.sycl_queue == q and pred.sycl_queue == q
        ref = SkKNN(5, algorithm="brute", weights=weights).fit(X, y)
        ref_dist, ref_ind = ref.kneighbors(Q)
        np.testing.assert_array_equal(dpnp.asnumpy(ind), ref_ind)
        np.testing.assert_allclose(dpnp.asnumpy(dist), ref_dist, rtol=1e-12)
        np.testing.assert_allclose(dpnp.asnumpy(pred), ref.predict(Q), rtol=1e-12)
        assert _backends_count("knn_merge") >= 2
        _served_on_the_device(["knn_merge", "all_finite"])


def _backends_count(kernel):
    from spmdlearn import _backends

    return _backends.dispatch_counts()[("sycl", kernel)]["served"]


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_neighbour_vote_runs_on_the_device(dpnp, weights):
    """KNeighborsClassifier on dpnp rows and dpnp labels: labels encoded on the device, the
    vote (weighted class counts, scikit-learn's first-class tie rule) on the device; predict and
    predict_proba are scikit-learn's, on the queries' queue; nothing taken to the host. Labels
    drawn from few values on a coarse grid make tied votes."""
    import dpctl
    from sklearn.neighbors import KNeighborsClassifier as SkKNN

    import spmdlearn
    from spmdlearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 2))
    y = rng.integers(0, 4, 150) * 10 - 5  # classes -5, 5, 15, 25
    Q = rng.normal(size=(60, 2))
    q = dpctl.SyclQueue()
    _reset_counts()
    with spmdlearn.config_context(backend="sycl"):
        model = KNeighborsClassifier(4, weights=weights).fit(dpnp.asarray(X, sycl_queue=q),
                                                            dpnp.asarray(y, sycl_queue=q))
        Qd = dpnp.asarray(Q, sycl_queue=q)
        pred, proba = model.predict(Qd), model.predict_proba(Qd)
    assert pred.sycl_queue == q and proba.sycl_queue == q
    ref = SkKNN(4, algorithm="brute", weights=weights).fit(X, y)
    np.testing.assert_array_equal(model.classes_, ref.classes_)
    np.testing.assert_array_equal(dpnp.asnumpy(pred), ref.predict(Q))
    # the device's division and sums may round otherwise in the last bits
    np.testing.assert_allclose(dpnp.asnumpy(proba), ref.predict_proba(Q), rtol=1e-10)
    _served_on_the_device(["knn_merge", "all_finite"])


def test_dbscan_runs_on_the_device(dpnp):
    """DBSCAN.fit on dpnp rows (weighted and not): neighbour counts, the pairs that join
    components and the border labels on the device; scikit-learn's labels, on the input's
    queue, and its core samples; no kernel served on the host."""
    import dpctl
    from sklearn.cluster import DBSCAN as SkDBSCAN

    import spmdlearn
    from spmdlearn.cluster import DBSCAN

    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(scale=0.4, size=(80, 2)) + c
                        for c in ([0, 0], [3, 0], [0, 3])] + [rng.uniform(-2, 5, (30, 2))])
    w = rng.uniform(0.5, 2.0, X.shape[0])
    q = dpctl.SyclQueue()
    for sample_weight in (None, w):
        _reset_counts()
        kwargs = {} if sample_weight is None else {
            "sample_weight": dpnp.asarray(sample_weight, sycl_queue=q)}
        with spmdlearn.config_context(backend="sycl"):
            model = DBSCAN(eps=0.35, min_samples=5).fit(dpnp.asarray(X, sycl_queue=q), **kwargs)
        ref = SkDBSCAN(eps=0.35, min_samples=5, algorithm="brute").fit(
            X, sample_weight=sample_weight)
        assert model.labels_.sycl_queue == q
        np.testing.assert_array_equal(dpnp.asnumpy(model.labels_), ref.labels_)
        assert len(set(ref.labels_)) > 3
        np.testing.assert_array_equal(model.core_sample_indices_, ref.core_sample_indices_)
        np.testing.assert_array_equal(model.components_, ref.components_)
        _served_on_the_device(["radius_counts", "radius_label_union", "radius_min_label",
                               "all_finite"])


def test_radius_neighbors_runs_on_the_device(dpnp):
    """radius_neighbors on dpnp rows (queries given, and the training rows themselves): the CSR
    pairs found and ordered on the device; per-query arrays on the queries' queue with
    scikit-learn's neighbours and distances; nothing taken to the host."""
    import dpctl
    from sklearn.neighbors import NearestNeighbors as SkNN

    import spmdlearn
    from spmdlearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(3)
    X, Q = rng.normal(size=(120, 3)), rng.normal(size=(40, 3))
    q = dpctl.SyclQueue()
    ref = SkNN(radius=0.9, algorithm="brute").fit(X)
    _reset_counts()
    with spmdlearn.config_context(backend="sycl"):
        model = NearestNeighbors(radius=0.9).fit(dpnp.asarray(X, sycl_queue=q))
        got = [model.radius_neighbors(dpnp.asarray(Q, sycl_queue=q), sort_results=True),
               model.radius_neighbors()]
    expected = [ref.radius_neighbors(Q, sort_results=True), ref.radius_neighbors()]
    for (dist, ind), (ref_dist, ref_ind) in zip(got, expected):
        assert len(ind) == len(ref_ind) and any(len(i) for i in ind)
        for d, i, rd, ri in zip(dist, ind, ref_dist, ref_ind):
            assert d.sycl_queue == q and i.sycl_queue == q
            order = np.argsort(ri, kind="stable")  # brute force lists by index
            np.testing.assert_array_equal(np.sort(dpnp.asnumpy(i)), ri[order])
            np.testing.assert_allclose(np.sort(dpnp.asnumpy(d)), np.sort(rd), rtol=1e-12)
    _served_on_the_device(["radius_neighbors_csr", "all_finite"])


@pytest.mark.parametrize("init, n_init, weighted", [("k-means++", 1, False),
                                                     ("random", 3, True)])
def test_kmeans_fit_runs_on_the_device(dpnp, monkeypatch, init, n_init, weighted):
    """KMeans.fit on dpnp rows: every k-means kernel gets the rows, weights, running distances
    and labels on the input's queue (none copied to the host between kernels), labels_ come
    back on that queue, no KMeans step is a host fallback, and the model is scikit-learn's."""
    import dpctl
    from sklearn.cluster import KMeans as SkKMeans
    from sklearn.datasets import make_blobs

    import spmdlearn
    import spmdlearn_sycl._kmeans as kernels
    from spmdlearn import _array_api, _backends
    from spmdlearn.cluster import KMeans

    q = dpctl.SyclQueue()
    seen = []

    def spy(name, *device_args):
        original = getattr(kernels, name)

        def kernel(X, *args):
            # the per-row arguments (the first call of min_distances has no closest yet)
            rows = [args[i] for i in device_args if args[i] is not None]
            seen.append((name, all(isinstance(a, dpnp.ndarray) and a.sycl_queue == q
                                   for a in [X, *rows])))
            return original(X, *args)

        monkeypatch.setattr(kernels, name, kernel)

    spy("lloyd_local", 0, 2)  # sample_weight, labels_old
    spy("kmeans_inertia", 0, 2)  # sample_weight, labels
    spy("kmeans_min_distances", 1, 2)  # closest, x_squared_norms
    spy("kmeans_plusplus_potentials", 0, 2, 3)  # sample_weight, closest, x_squared_norms
    X, _ = make_blobs(n_samples=300, centers=4, n_features=3, random_state=0, cluster_std=1.5)
    w = np.random.default_rng(0).uniform(0.5, 2.0, 300) if weighted else None
    _backends.reset_dispatch_counts()
    _array_api.reset_fallbacks()
    with spmdlearn.config_context(backend="sycl"):
        model = KMeans(4, init=init, n_init=n_init, random_state=0).fit(
            dpnp.asarray(X, sycl_queue=q),
            sample_weight=None if w is None else dpnp.asarray(w, sycl_queue=q))
    ref = SkKMeans(4, init=init, n_init=n_init, random_state=0).fit(X, sample_weight=w)
    assert isinstance(model.labels_, dpnp.ndarray) and model.labels_.sycl_queue == q
    np.testing.assert_array_equal(dpnp.asnumpy(model.labels_), ref.labels_)
    np.testing.assert_allclose(model.cluster_centers_, ref.cluster_centers_, rtol=1e-12)
    np.testing.assert_allclose(model.inertia_, ref.inertia_, rtol=1e-12)
    assert model.n_iter_ == ref.n_iter_
    called = {name for name, _ in seen}
    assert {"lloyd_local"} | ({"kmeans_min_distances", "kmeans_plusplus_potentials"}
                             if init == "k-means++" else set()) <= called, called
    assert all(on_queue for _, on_queue in seen), [s for s in seen if not s[1]]
    steps = {what for what, _ in _array_api.fallbacks()}
    assert not any(s.startswith("KMeans") for s in steps), steps
    counts = _backends.dispatch_counts()[("sycl", "kmeans_lloyd_local")]
    assert counts["served"] >= 2 and counts["declined"] == counts["fallback"] == 0, counts


def test_logistic_targets_and_weights_stay_on_the_device(dpnp, monkeypatch):
    """Every gradient of LogisticRegression on dpnp rows gets its encoded targets and weights
    on X's queue (encoded there: nothing goes to the host), and the model is scikit-learn's."""
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    import spmdlearn
    import spmdlearn_sycl._logistic as kernels
    from spmdlearn.linear_model import LogisticRegression

    seen = []
    original = kernels.logistic_loss_grad

    def spy(X, target, sample_weight, *args):
        seen.append((type(target).__module__.split(".")[0], type(sample_weight).__module__,
                     target.sycl_queue == X.sycl_queue))
        return original(X, target, sample_weight, *args)

    monkeypatch.setattr(kernels, "logistic_loss_grad", spy)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(np.int64)
    w = rng.uniform(0.5, 2.0, 120)
    from spmdlearn import _array_api

    _array_api.reset_fallbacks()
    with spmdlearn.config_context(backend="sycl"):
        model = LogisticRegression(tol=1e-10).fit(dpnp.asarray(X), dpnp.asarray(y),
                                                  sample_weight=dpnp.asarray(w))
    assert seen and all(s == ("dpnp", "dpnp.dpnp_array", True) for s in seen), seen[:3]
    assert not _array_api.fallbacks(), _array_api.fallbacks()  # labels encoded on the device
    ref = SkLogisticRegression(tol=1e-10).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-6)


#: The forest kernels that run on the rows' device. The split search reads the global histogram,
#: which is on the host after the reduction, so it runs there, on the backend that serves NumPy.
FOREST_KERNELS = ("apply_bins", "bootstrap_counts", "tree_histograms", "tree_route",
                  "tree_apply")


def _split_search_on_the_host(counts):
    from spmdlearn._backends import host_backend

    host = counts[(host_backend("sycl"), "best_splits")]
    return (("sycl", "best_splits") not in counts and host["served"] >= 1
            and host["declined"] == host["fallback"] == 0)


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # 0/0 where a split is invalid
def test_forest_runs_on_the_device(dpnp):
    """Random forests on dpnp rows: every per-row forest kernel served on the device, the
    split search on the host histogram, nothing else taken to the host, per-row results on the
    input's queue, the NumPy input's model."""
    import dpctl

    import spmdlearn
    from spmdlearn import _array_api, _backends
    from spmdlearn.ensemble import RandomForestClassifier, RandomForestRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    labels = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.8)
    target = 2 * X[:, 0] - X[:, 3] + 0.1 * rng.normal(size=200)
    w = rng.uniform(0.5, 2.0, 200)
    q = dpctl.SyclQueue()
    Xd, labels_d, target_d, wd = (dpnp.asarray(a, sycl_queue=q) for a in (X, labels, target, w))
    params = dict(n_estimators=5, max_depth=4, random_state=0)
    _backends.reset_dispatch_counts()
    _array_api.reset_fallbacks()
    with spmdlearn.config_context(backend="sycl"):
        clf = RandomForestClassifier(class_weight="balanced", **params).fit(
            Xd, labels_d, sample_weight=wd)
        reg = RandomForestRegressor(**params).fit(Xd, target_d, sample_weight=wd)
        proba, pred, reg_pred = clf.predict_proba(Xd), clf.predict(Xd), reg.predict(Xd)
    counted = _array_api.fallbacks()
    assert counted == {}, f"host copies outside the kernels: {counted}"
    counts = _backends.dispatch_counts()
    for kernel in FOREST_KERNELS:
        c = counts[("sycl", kernel)]
        assert c["served"] >= 1 and c["declined"] == c["fallback"] == 0, (kernel, c)
    assert _split_search_on_the_host(counts), counts
    for out in (proba, pred, reg_pred):
        assert isinstance(out, dpnp.ndarray) and out.sycl_queue == q
    with spmdlearn.config_context(backend="reference"):
        clf_np = RandomForestClassifier(class_weight="balanced", **params).fit(
            X, labels, sample_weight=w)
        reg_np = RandomForestRegressor(**params).fit(X, target, sample_weight=w)
    for a, b in zip(clf_np.estimators_ + reg_np.estimators_, clf.estimators_ + reg.estimators_):
        np.testing.assert_array_equal(b.feature, a.feature)
        np.testing.assert_array_equal(b.threshold, a.threshold)
        np.testing.assert_allclose(b.value, a.value, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_, clf_np.classes_)
    np.testing.assert_allclose(clf.feature_importances_, clf_np.feature_importances_,
                               rtol=1e-9)
    np.testing.assert_array_equal(dpnp.asnumpy(pred), clf_np.predict(X))
    np.testing.assert_allclose(dpnp.asnumpy(proba), clf_np.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(dpnp.asnumpy(reg_pred), reg_np.predict(X), rtol=0, atol=1e-9)


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_forest_string_labels_with_device_rows(dpnp):
    """String labels stay NumPy (their class indices go to the rows' queue); the kernels are
    still served on the device and predict gives NumPy strings."""
    import spmdlearn
    from spmdlearn import _array_api, _backends
    from spmdlearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4))
    names = np.array(["low", "mid", "high"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1)]
    _backends.reset_dispatch_counts()
    _array_api.reset_fallbacks()
    with spmdlearn.config_context(backend="sycl"):
        model = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(
            dpnp.asarray(X), names)
        pred = model.predict(dpnp.asarray(X))
    assert _array_api.fallbacks() == {}
    for kernel in FOREST_KERNELS:
        c = _backends.dispatch_counts()[("sycl", kernel)]
        assert c["served"] >= 1 and c["declined"] == c["fallback"] == 0, (kernel, c)
    assert _split_search_on_the_host(_backends.dispatch_counts())
    with spmdlearn.config_context(backend="reference"):
        expected = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(
            X, names).predict(X)
    assert isinstance(pred, np.ndarray) and pred.dtype.kind == "U"
    np.testing.assert_array_equal(pred, expected)
