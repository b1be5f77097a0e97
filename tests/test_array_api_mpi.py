"""Every estimator on array-api-strict input under mpiexec: the same model as from NumPy input,
per-row results of the input's array type.

array-api-strict is an array type that refuses NumPy-only shortcuts (no implicit conversion in
arithmetic with NumPy, no out-of-bounds slices, no methods beyond the standard), so a hidden
``np.asarray`` or a NumPy-only idiom on the data path shows up here.

Shards are uneven and rank 0 holds no rows (under more than one rank).
"""

import numpy as np
import pytest

import spmdlearn
import spmdlearn.io
import spmdlearn.metrics
from spmdlearn._array_api import fallbacks, is_foreign_array, reset_fallbacks
from spmdlearn._backends import backend_kernels, dispatch_counts, reset_dispatch_counts
from spmdlearn.basic_statistics import BasicStatistics, IncrementalBasicStatistics
from spmdlearn.cluster import DBSCAN, KMeans
from spmdlearn.comm import get_comm
from spmdlearn.covariance import EmpiricalCovariance, IncrementalEmpiricalCovariance
from spmdlearn.decomposition import PCA, IncrementalPCA
from spmdlearn.ensemble import RandomForestClassifier, RandomForestRegressor
from spmdlearn.linear_model import (IncrementalLinearRegression, LinearRegression,
                                    LogisticRegression, Ridge)
from spmdlearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors
from spmdlearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from spmdlearn_conformance import assert_all_ranks

xp = pytest.importorskip("array_api_strict")
array_api_compat = pytest.importorskip("array_api_compat")

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]

N_ROWS, N_FEATURES = 53, 4


def _cuts(n, size):
    """Rank 0 empty (with several ranks), the others uneven: weights 1, 2, 3, ..."""
    if size == 1:
        return np.array([0, n])
    weights = np.arange(size, dtype=float)
    return np.round(np.concatenate([[0], np.cumsum(weights) / weights.sum() * n])).astype(int)


def _data(dtype=np.float64):
    rng = np.random.default_rng(7)
    centers = np.array([[0, 0, 0, 0], [4, 4, 0, 1], [-4, 3, 2, 0]], dtype=float)
    label = rng.integers(0, 3, N_ROWS)
    X = (centers[label] + rng.normal(scale=0.6, size=(N_ROWS, N_FEATURES))).astype(dtype)
    y_reg = (X @ np.array([1.0, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=N_ROWS)).astype(dtype)
    w = rng.uniform(0.5, 2.0, N_ROWS).astype(dtype)
    return X, label.astype(np.int64), y_reg, w


def _local(comm, *arrays):
    cuts = _cuts(N_ROWS, comm.size)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    return tuple(None if a is None else a[lo:hi] for a in arrays)


def _strict(a):
    return None if a is None else xp.asarray(a)


def _is_strict(value) -> bool:
    return is_foreign_array(value) and array_api_compat.is_array_api_strict_namespace(
        array_api_compat.array_namespace(value))


def _host(value):
    return np.from_dlpack(value) if is_foreign_array(value) else np.asarray(value)


# name -> (factory, target: None | "class" | "reg", weighted, per-row calls)
# A per-row call is (label, function(estimator, X_local) -> result).
def _transform_then_inverse(est, X):
    return est.inverse_transform(est.transform(X))


def _kneighbors_dist(est, X):
    return est.kneighbors(X)[0]


def _kneighbors_ind(est, X):
    return est.kneighbors(X)[1]


def _kneighbors_self(est, X):
    return est.kneighbors()[1]


PREDICT = ("predict", lambda est, X: est.predict(X))
TRANSFORM = ("transform", lambda est, X: est.transform(X))
INVERSE = ("inverse_transform", _transform_then_inverse)
KNN = [("kneighbors distances", _kneighbors_dist), ("kneighbors indices", _kneighbors_ind),
       ("kneighbors of the training rows", _kneighbors_self)]

ESTIMATORS = {
    "BasicStatistics": (BasicStatistics, None, True, []),
    "IncrementalBasicStatistics": (lambda: IncrementalBasicStatistics(batch_size=5), None, True,
                                   []),
    "EmpiricalCovariance": (EmpiricalCovariance, None, False,
                            [("mahalanobis", lambda est, X: est.mahalanobis(X))]),
    "IncrementalEmpiricalCovariance": (lambda: IncrementalEmpiricalCovariance(batch_size=5),
                                       None, False,
                                       [("mahalanobis", lambda est, X: est.mahalanobis(X))]),
    "LinearRegression": (LinearRegression, "reg", True, [PREDICT]),
    "IncrementalLinearRegression": (lambda: IncrementalLinearRegression(batch_size=5), "reg",
                                    False, [PREDICT]),
    "Ridge": (lambda: Ridge(alpha=0.5), "reg", True, [PREDICT]),
    "LogisticRegression": (LogisticRegression, "class", True, [
        PREDICT, ("predict_proba", lambda est, X: est.predict_proba(X)),
        ("predict_log_proba", lambda est, X: est.predict_log_proba(X)),
        ("decision_function", lambda est, X: est.decision_function(X))]),
    "PCA": (lambda: PCA(n_components=2, whiten=True), None, False, [
        TRANSFORM, INVERSE, ("score_samples", lambda est, X: est.score_samples(X)),
        ("fit_transform", lambda est, X: est.fit_transform(X))]),
    "PCA full": (lambda: PCA(n_components=3, svd_solver="full"), None, False,
                 [TRANSFORM, INVERSE]),
    "IncrementalPCA": (lambda: IncrementalPCA(n_components=2, batch_size=5), None, False,
                       [TRANSFORM, INVERSE]),
    "KMeans": (lambda: KMeans(n_clusters=3, random_state=0, n_init=2), None, True, [
        ("labels_", lambda est, X: est.labels_), PREDICT, TRANSFORM,
        ("fit_predict", lambda est, X: est.fit_predict(X))]),
    "DBSCAN": (lambda: DBSCAN(eps=1.2, min_samples=4), None, False, [
        ("labels_", lambda est, X: est.labels_),
        ("fit_predict", lambda est, X: est.fit_predict(X))]),
    "KNeighborsClassifier": (lambda: KNeighborsClassifier(n_neighbors=4), "class", False,
                             [PREDICT, ("predict_proba", lambda est, X: est.predict_proba(X))]
                             + KNN),
    "KNeighborsRegressor": (lambda: KNeighborsRegressor(n_neighbors=3, weights="distance"),
                            "reg", False, [PREDICT] + KNN),
    "NearestNeighbors": (lambda: NearestNeighbors(n_neighbors=3), None, False, KNN),
    "RandomForestClassifier": (lambda: RandomForestClassifier(n_estimators=4, max_depth=4,
                                                              random_state=0), "class", True,
                               [PREDICT, ("predict_proba", lambda est, X: est.predict_proba(X))]),
    "RandomForestRegressor": (lambda: RandomForestRegressor(n_estimators=4, max_depth=4,
                                                            random_state=0), "reg", True,
                              [PREDICT]),
    "StandardScaler": (StandardScaler, None, True, [TRANSFORM, INVERSE]),
    "MinMaxScaler": (lambda: MinMaxScaler(clip=True), None, False, [TRANSFORM, INVERSE]),
    "MaxAbsScaler": (MaxAbsScaler, None, False, [TRANSFORM, INVERSE]),
}

#: Per-row values computed with the same operations from both inputs, except where the
#: namespace path uses other (equally stable) formulas than SciPy's: logistic probabilities.
PER_ROW_RTOL = {"LogisticRegression": 1e-12}


def _fitted(est) -> dict:
    """The fitted model: public attributes ending in ``_`` (per-row ``labels_`` left out)."""
    return {k: v for k, v in vars(est).items()
            if k.endswith("_") and not k.startswith("_") and k != "labels_"}


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
            a, b, equal_nan=a.dtype.kind in "fc")
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (np.isnan(a) and np.isnan(b))
    return type(a) is type(b) and a == b


def _fit(est, X, y, w):
    kwargs = {} if w is None else {"sample_weight": w}
    return est.fit(X, **kwargs) if y is None else est.fit(X, y, **kwargs)


def _close(a, b, rtol) -> bool:
    """Equal, up to ``rtol`` of the largest magnitude for floating-point arrays and numbers."""
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(
            _close(u, v, rtol) for u, v in zip(a, b))
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.dtype.kind == "f" and b_arr.dtype.kind == "f":
        scale = float(np.max(np.abs(b_arr), initial=0.0, where=np.isfinite(b_arr)))
        return a_arr.dtype == b_arr.dtype and a_arr.shape == b_arr.shape and np.allclose(
            a_arr, b_arr, rtol=0.0, atol=rtol * max(scale, 1e-300), equal_nan=True)
    return _same(a, b)


# "reference": NumPy and array-api-strict input are served by the same NumPy kernels, so the
# models are the same bits. "auto": NumPy input may go to an installed accelerator (the cpu
# backend) while no installed backend claims array-api-strict, so the two agree to rounding.
@pytest.mark.parametrize("backend", ["reference", "auto"])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_same_model_and_per_row_results_in_the_input_type(name, backend):
    comm = get_comm()
    factory, target, weighted, calls = ESTIMATORS[name]
    X, labels, y_reg, w = _data()
    y = {"class": labels, "reg": y_reg, None: None}[target]
    X_l, y_l, w_l = _local(comm, X, y, w if weighted else None)
    exact = backend == "reference"

    with spmdlearn.config_context(backend=backend):
        reference = _fit(factory(), X_l, y_l, w_l)
        est = _fit(factory(), _strict(X_l), _strict(y_l), _strict(w_l))

        expected, got = _fitted(reference), _fitted(est)
        assert_all_ranks(comm, sorted(expected) == sorted(got), f"{name}: fitted attribute names")
        for attr in expected:
            assert_all_ranks(comm, not is_foreign_array(got[attr]), f"{name}.{attr} is NumPy")
            same = _same(expected[attr], got[attr]) if exact else \
                _close(got[attr], expected[attr], 1e-9)
            assert_all_ranks(comm, same, f"{name}.{attr}: same model as from NumPy input")

        for label, call in calls:
            out_np, out = call(reference, X_l), call(est, _strict(X_l))
            assert_all_ranks(comm, _is_strict(out),
                             f"{name}.{label} returned {type(out).__name__}, not the input's type")
            host = _host(out)
            rtol = PER_ROW_RTOL.get(name, 0.0) if exact else 1e-9
            ok = host.shape == np.shape(out_np) and _close(host, np.asarray(out_np), rtol) if \
                rtol else host.shape == np.shape(out_np) and _same(host, np.asarray(out_np))
            assert_all_ranks(comm, ok, f"{name}.{label}: same values as from NumPy input")


@pytest.mark.parametrize("name", ["LinearRegression", "PCA", "StandardScaler", "KMeans"])
def test_float32_stays_float32_and_integers_become_float64(name):
    comm = get_comm()
    factory, target, _, calls = ESTIMATORS[name]
    X, labels, y_reg, _ = _data()
    y = {"class": labels, "reg": y_reg, None: None}[target]
    X_l, y_l = _local(comm, X, y)
    for source, dtype in ((X_l.astype(np.float32), np.float32),
                          (np.round(X_l * 10).astype(np.int64), np.float64)):
        with spmdlearn.config_context(backend="reference"):
            reference = _fit(factory(), source, y_l, None)
            est = _fit(factory(), _strict(source), _strict(y_l), None)
        for attr, value in _fitted(reference).items():
            assert_all_ranks(comm, _same(value, _fitted(est)[attr]), f"{name}.{attr} ({dtype})")
        label, call = calls[-1]
        out = call(est, _strict(source))
        assert_all_ranks(comm, _is_strict(out), f"{name}.{label} type")
        if np.asarray(call(reference, source)).dtype.kind == "f":
            assert_all_ranks(comm, out.dtype == getattr(xp, np.dtype(dtype).name),
                             f"{name}.{label} dtype {out.dtype}, expected {dtype}")


#: KMeans paths on array-api-strict rows beyond ESTIMATORS' k-means++ fit: random seeding
#: (rows already drawn masked out of later draws), float32 rows, and an empty cluster
#: relocated to the farthest row (an explicit init with a center far from every row).
KMEANS_PATHS = {
    "k-means++": (dict(n_clusters=3, init="k-means++", n_init=2), np.float64, True),
    "random": (dict(n_clusters=4, init="random", n_init=3), np.float64, True),
    "random float32": (dict(n_clusters=4, init="random", n_init=2), np.float32, False),
    "relocation": (dict(n_clusters=4, n_init=1, init=np.array(
        [[0.0, 0.0, 0.0, 0.0], [4.0, 4.0, 0.0, 1.0], [-4.0, 3.0, 2.0, 0.0], [1e3, 1e3, 1e3, 1e3]])),
        np.float64, True),
}


@pytest.mark.parametrize("path", list(KMEANS_PATHS))
def test_kmeans_fit_keeps_the_rows_in_their_namespace(path):
    """KMeans.fit on array-api-strict rows (reference backend): the same bits as from NumPy rows,
    labels_ of the input's type, and no host copy of the shard by KMeans itself: the only host
    views are the reference kernels' own (counted under the kernel's name); the empty-cluster
    relocation takes one per-row vector of distances to the host, counted under its own name."""
    comm = get_comm()
    params, dtype, weighted = KMEANS_PATHS[path]
    X, _, _, w = _data(dtype)
    X_l, w_l = _local(comm, X, w if weighted else None)
    with spmdlearn.config_context(backend="reference"):
        reference = KMeans(random_state=0, **params).fit(X_l, sample_weight=w_l)
        reset_fallbacks()
        est = KMeans(random_state=0, **params).fit(_strict(X_l), sample_weight=_strict(w_l))
        steps = {what for what, _ in fallbacks()}
    for attr, value in _fitted(reference).items():
        assert_all_ranks(comm, _same(value, _fitted(est)[attr]), f"{path}: {attr}")
    assert_all_ranks(comm, _is_strict(est.labels_) and _same(_host(est.labels_),
                                                              reference.labels_),
                     f"{path}: labels_ {type(est.labels_).__name__}")
    relocation = "KMeans empty-cluster relocation"  # also where random seeding empties one
    kernels = set(backend_kernels("reference"))
    assert_all_ranks(comm, steps - kernels <= {relocation},
                     f"{path}: host copies other than the reference kernels' own: {steps}")
    assert_all_ranks(comm, path != "relocation" or not len(X_l) or relocation in steps,
                     f"{path}: the relocation's distances are counted: {steps}")
    assert_all_ranks(comm, "KMeans.fit" not in steps, f"{path}: {steps}")
    # The kernels did see the strict rows (their host views are counted), so the check above
    # is not vacuous.
    expected = {"kmeans_lloyd_local"} | ({"kmeans_min_distances", "kmeans_plusplus_potentials"}
                                         if path == "k-means++" else set())
    assert_all_ranks(comm, expected <= steps, f"{path}: kernels on strict rows: {steps}")
    reset_fallbacks()


@pytest.mark.parametrize("bad", ["nan", "inf", "1-D", "complex"])
def test_bad_array_api_input_fails_on_every_rank_with_scikit_learns_message(bad):
    comm = get_comm()
    X, _, y_reg, _ = _data()
    X_l, y_l = _local(comm, X, y_reg)
    last = comm.size - 1  # a rank that holds rows
    if comm.rank == last:
        if bad == "nan":
            X_l = X_l.copy()
            X_l[0, 1] = np.nan
        elif bad == "inf":
            X_l = X_l.copy()
            X_l[-1, 0] = -np.inf
        elif bad == "1-D":
            X_l = X_l[:, 0]
        else:
            X_l = X_l.astype(np.complex128)
    expected = {"nan": "Input X contains NaN.\nLinearRegression does not accept missing values",
                "inf": "Input X contains infinity or a value too large for dtype('float64').",
                "1-D": "Expected 2D array, got 1D array instead",
                "complex": "Complex data not supported"}[bad]
    with pytest.raises(ValueError) as info:
        LinearRegression().fit(_strict(X_l), _strict(y_l))
    message = str(info.value)
    assert_all_ranks(comm, f"rank {last}: {expected}" in message or
                     (comm.size == 1 and message.startswith(expected)), message)


def test_fallbacks_are_counted_and_logged(capfd, monkeypatch):
    comm = get_comm()
    X, _, _, _ = _data()
    (X_l,) = _local(comm, X)
    key = ("reference", "column_stats_local")
    with spmdlearn.config_context(backend="reference"):
        reset_fallbacks()
        reset_dispatch_counts()
        StandardScaler().fit(X_l)
        assert_all_ranks(comm, fallbacks() == {}, "NumPy input: no fallback")
        assert_all_ranks(comm, dispatch_counts()[key] == {"served": 1, "declined": 0,
                                                         "fallback": 0}, "NumPy input served")
        reset_dispatch_counts()
        monkeypatch.setenv("SPMDLEARN_VERBOSE", "1")
        StandardScaler().fit(_strict(X_l))
    counted, dispatched = fallbacks(), dispatch_counts()
    assert_all_ranks(comm, counted.get(("column_stats_local", "array_api_strict.Array"), 0) >= 1,
                     f"counted: {counted}")
    assert_all_ranks(comm, dispatched[key]["served"] == 0 and dispatched[key]["fallback"] >= 1,
                     f"the reference's host copy is a fallback in the dispatch counts: "
                     f"{dispatched}")
    err = capfd.readouterr().err
    assert_all_ranks(comm, comm.rank != 0 or "column_stats_local: array_api_strict.Array input "
                     "served on the host" in err, err)
    reset_fallbacks()


def test_shard_and_metrics_keep_and_accept_array_api_arrays():
    comm = get_comm()
    X, labels, y_reg, w = _data()
    X_l = spmdlearn.io.shard(_strict(X))
    lo, hi = comm.rank * N_ROWS // comm.size, (comm.rank + 1) * N_ROWS // comm.size
    assert_all_ranks(comm, _is_strict(X_l) and np.array_equal(_host(X_l), X[lo:hi]), "shard")
    everything = spmdlearn.io.allgather_rows(X_l)
    assert_all_ranks(comm, _is_strict(everything) and np.array_equal(_host(everything), X),
                     "allgather_rows")
    on_root = spmdlearn.io.gather(X_l)
    assert_all_ranks(comm, on_root is None if comm.rank else
                     (_is_strict(on_root) and np.array_equal(_host(on_root), X)), "gather")
    y_l, w_l, lab_l = (a[lo:hi] for a in (y_reg, w, labels))
    pred = y_l * 0.9 + 0.1
    for metric in (spmdlearn.metrics.r2_score, spmdlearn.metrics.mean_squared_error,
                   spmdlearn.metrics.mean_absolute_error):
        expected = metric(y_l, pred, sample_weight=w_l)
        got = metric(_strict(y_l), _strict(pred), sample_weight=_strict(w_l))
        assert_all_ranks(comm, got == expected, f"{metric.__name__}: {got} != {expected}")
    flipped = np.where(np.arange(hi - lo) % 4 == 0, (lab_l + 1) % 3, lab_l)
    for metric in (spmdlearn.metrics.accuracy_score, spmdlearn.metrics.confusion_matrix):
        expected = metric(lab_l, flipped)
        got = metric(_strict(lab_l), _strict(flipped))
        assert_all_ranks(comm, np.array_equal(got, expected), metric.__name__)


def test_numpy_input_is_not_copied_by_validation():
    from spmdlearn._validation import check_X

    X, _, _, _ = _data()
    for source in (X, np.asfortranarray(X), X.astype(np.float32)):
        est = StandardScaler()
        assert check_X(est, source, reset=True) is source
    view = X[::2]
    assert np.shares_memory(check_X(StandardScaler(), view, reset=True), X)


def test_all_finite_reference_against_its_definition():
    from spmdlearn.reference import all_finite

    rng = np.random.default_rng(3)
    big = np.finfo(np.float64).max
    cases = [np.zeros((0, 3)), rng.normal(size=(40, 3)), np.arange(12).reshape(4, 3),
             np.full((5, 2), big),  # finite values whose sum overflows
             rng.normal(size=(7, 3)).astype(np.float32)]
    for base in list(cases[1:]):
        for bad in (np.nan, np.inf, -np.inf):
            if base.dtype.kind == "f":
                broken = base.copy()
                broken[-1, -1] = bad
                cases.append(broken)
    cases.append(np.asfortranarray(cases[1])[::2])
    for X in cases:
        assert all_finite(X) == bool(np.isfinite(X).all()), X
        assert all_finite(xp.asarray(X)) == bool(np.isfinite(X).all())


#: What a forest's fit and predict may still take to the host on array-api-strict input, which
#: no installed backend claims: the arguments of the reference kernels (each a counted kernel
#: fallback). The forest's own steps between kernels (labels, weights, binning input, node
#: positions, the traversal's leaf values and means) never appear.
FOREST_KERNEL_FALLBACKS = {"all_finite", "apply_bins", "bootstrap_counts", "tree_histograms",
                           "tree_route", "tree_apply"}


def _forests(X, labels, y, w, bootstrap):
    """A classifier and a regressor fitted on (X, labels | y, w), and their predictions."""
    clf = RandomForestClassifier(n_estimators=3, max_depth=4, random_state=0, bootstrap=bootstrap,
                                 class_weight="balanced_subsample").fit(X, labels, sample_weight=w)
    reg = RandomForestRegressor(n_estimators=3, max_depth=4, random_state=0,
                                bootstrap=bootstrap).fit(X, y, sample_weight=w)
    return clf, reg, (clf.predict_proba(X), clf.predict(X), reg.predict(X))


@pytest.mark.parametrize("bootstrap", [True, False])
def test_forest_steps_stay_in_the_input_namespace(bootstrap):
    comm = get_comm()
    X, labels, y_reg, w = _data()
    X_l, lab_l, y_l, w_l = _local(comm, X, labels, y_reg, w)
    # the reference backend serves both inputs: the same kernels, hence the same trees
    with spmdlearn.config_context(backend="reference"):
        reset_fallbacks()
        clf, reg, outputs = _forests(*map(_strict, (X_l, lab_l, y_l, w_l)), bootstrap)
        counted = fallbacks()
        reset_fallbacks()
        clf_np, reg_np, outputs_np = _forests(X_l, lab_l, y_l, w_l, bootstrap)
    names = {what for what, _ in counted}
    expected = FOREST_KERNEL_FALLBACKS - (set() if bootstrap else {"bootstrap_counts"})
    assert_all_ranks(comm, names == expected,
                     f"host copies outside the reference kernels: {sorted(counted)}")
    assert_all_ranks(comm, {kind for _, kind in counted} == {"array_api_strict.Array"},
                     f"array types: {sorted(counted)}")
    assert_all_ranks(comm, all(map(_is_strict, outputs)), "per-row types")
    same_trees = all(np.array_equal(a.feature, b.feature) and
                     np.array_equal(a.threshold, b.threshold, equal_nan=True) and
                     np.array_equal(a.value, b.value)
                     for a, b in zip(clf_np.estimators_ + reg_np.estimators_,
                                     clf.estimators_ + reg.estimators_))
    assert_all_ranks(comm, same_trees, "same trees as from NumPy input")
    assert_all_ranks(comm, all(_same(_host(a), np.asarray(b))
                               for a, b in zip(outputs, outputs_np)),
                     "same predictions as from NumPy input")


def _radius_neighbors(est, X):
    dist, ind = est.radius_neighbors(X, radius=1.5)
    return ind


# name -> (fit and per-row calls, the reference kernels they run); on array-api-strict input the
# only host steps are those kernels' host views: no step of an estimator
NEIGHBOUR_STEPS = {
    "DBSCAN": (lambda X, y: DBSCAN(eps=1.2, min_samples=4).fit(X).labels_,
               {"all_finite", "radius_counts", "radius_label_union", "radius_min_label"}),
    "KNeighborsClassifier": (
        lambda X, y: [KNeighborsClassifier(n_neighbors=4, weights=w).fit(X, y).predict_proba(X)
                      for w in ("uniform", "distance")],
        {"all_finite", "knn_merge"}),
    "KNeighborsRegressor": (
        lambda X, y: [KNeighborsRegressor(n_neighbors=3, weights=w).fit(X, y).predict(X)
                      for w in ("uniform", "distance")],
        {"all_finite", "knn_merge"}),
    "NearestNeighbors": (
        lambda X, y: [NearestNeighbors(n_neighbors=3, radius=1.5).fit(X).radius_neighbors(X),
                      NearestNeighbors(radius=1.5).fit(X).radius_neighbors(),
                      NearestNeighbors(n_neighbors=3).fit(X).kneighbors()],
        {"all_finite", "radius_neighbors_csr", "knn_merge"}),
}


@pytest.mark.parametrize("name", list(NEIGHBOUR_STEPS))
def test_neighbour_estimators_take_no_step_to_the_host(name):
    """DBSCAN and the neighbour estimators compute between kernels in the input's namespace:
    on array-api-strict input (which no accelerator claims, so the NumPy reference serves the
    kernels through host views), the counted fallbacks are exactly those kernels', never an
    estimator's step (a search, a vote, a propagation)."""
    comm = get_comm()
    X, labels, y_reg, _ = _data()
    y = {"KNeighborsClassifier": labels, "KNeighborsRegressor": y_reg}.get(name)
    X_l, y_l = _local(comm, X, y)
    run, kernels = NEIGHBOUR_STEPS[name]
    with spmdlearn.config_context(backend="reference"):
        reset_fallbacks()
        run(_strict(X_l), _strict(y_l))
        counted = fallbacks()
        reset_fallbacks()
    names = {what for what, _ in counted}
    types = {kind for _, kind in counted}
    # a rank without rows calls no per-block kernel; one with rows calls each
    expected = kernels if X_l.shape[0] else {"all_finite"}
    assert_all_ranks(comm, names == expected and types == {"array_api_strict.Array"},
                     f"{name}: fallbacks {counted}, expected the kernels {sorted(expected)}")


def test_radius_neighbors_in_the_input_type():
    """radius_neighbors on array-api-strict input: NumPy object arrays (as scikit-learn's) of
    per-query arrays of the input's type, the same as from NumPy input (sorted or not)."""
    comm = get_comm()
    X, _, _, _ = _data()
    (X_l,) = _local(comm, X)
    with spmdlearn.config_context(backend="reference"):
        ref = NearestNeighbors(radius=1.5).fit(X_l)
        est = NearestNeighbors(radius=1.5).fit(_strict(X_l))
        for kwargs in ({}, {"sort_results": True}):
            for queries in ((X_l, _strict(X_l)), (None, None)):
                dist_np, ind_np = ref.radius_neighbors(queries[0], **kwargs)
                dist, ind = est.radius_neighbors(queries[1], **kwargs)
                ok = isinstance(ind, np.ndarray) and ind.dtype == object and \
                    len(ind) == len(ind_np) == X_l.shape[0]
                ok = ok and all(_is_strict(d) and _is_strict(i) and
                                _same(_host(i), np.asarray(i_np)) and
                                _same(_host(d), np.asarray(d_np))
                                for d, i, d_np, i_np in zip(dist, ind, dist_np, ind_np))
                assert_all_ranks(comm, ok, f"radius_neighbors({kwargs}, X given: "
                                 f"{queries[0] is not None}): type and values")


def test_ring_keeps_the_blocks_array_type():
    """comm.ring over array-api-strict blocks (rows, integer labels, a mask): every visiting
    block arrives in the type of this rank's own block, with the owner's values; this rank's
    own blocks are yielded as given (no copy); an empty rank takes part."""
    comm = get_comm()
    X, labels, _, _ = _data()
    X_l, lab_l = _local(comm, X, labels)
    cuts = _cuts(N_ROWS, comm.size)
    own = (_strict(X_l), _strict(lab_l), _strict(lab_l % 2 == 0))
    ok = True
    for step, (owner, blocks) in enumerate(comm.ring(own)):
        lo, hi = cuts[owner], cuts[owner + 1]
        ok &= all(_is_strict(b) for b in blocks)
        ok &= _same(_host(blocks[0]), X[lo:hi]) and _same(_host(blocks[1]), labels[lo:hi])
        ok &= _same(_host(blocks[2]), labels[lo:hi] % 2 == 0)
        if step == 0:
            ok &= all(b is o for b, o in zip(blocks, own))
    assert_all_ranks(comm, ok, "ring blocks: type and values")


@pytest.mark.parametrize("make", [BasicStatistics, EmpiricalCovariance],
                         ids=["BasicStatistics", "EmpiricalCovariance"])
def test_non_finite_array_api_rows_fail_on_every_rank(make):
    """These fits find NaN in their one pass (the check validation deferred runs in the local
    step): the error reaches every rank, and the failing rank's template is made on the host."""
    comm = get_comm()
    X, _, _, _ = _data()
    X_l, _ = _local(comm, X, X[:, 0])
    last = comm.size - 1
    if comm.rank == last:
        X_l = X_l.copy()
        X_l[0, 2] = np.nan
    with pytest.raises(ValueError) as info:
        make().fit(_strict(X_l))
    message = str(info.value)
    expected = f"Input X contains NaN.\n{make.__name__} does not accept missing values"
    assert_all_ranks(comm, f"rank {last}: {expected}" in message or
                     (comm.size == 1 and message.startswith(expected)), message)
