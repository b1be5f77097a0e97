"""Failing fast under mpiexec: parameters, methods and every later step are collective.

* Parameters that differ across ranks raise on every rank, naming the parameter and the ranks,
  for every estimator family (they used to hang, crash or give rank-dependent models).
* Ranks calling different estimators or methods raise on every rank, naming both.
* An exception in a kernel on one rank, at any step of any collective method (predict,
  kneighbors, transform, later steps of fit), becomes the same exception on every rank.
* Collectives of :class:`spmdlearn.comm.Comm` called differently on different ranks raise
  instead of crashing with "Message truncated".
"""

import functools
import re
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import spmdlearn
from spmdlearn import _backends
from spmdlearn.basic_statistics import BasicStatistics
from spmdlearn.cluster import DBSCAN, KMeans
from spmdlearn.comm import CollectiveError
from spmdlearn.covariance import EmpiricalCovariance
from spmdlearn.decomposition import PCA, IncrementalPCA
from spmdlearn.ensemble import RandomForestClassifier, RandomForestRegressor
from spmdlearn.linear_model import LinearRegression, LogisticRegression, Ridge
from spmdlearn.neighbors import KNeighborsClassifier, NearestNeighbors
from spmdlearn.preprocessing import StandardScaler
from _shards import uneven_data
from spmdlearn_conformance import assert_all_ranks, assert_raises_on_all_ranks

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(60)]


_data = functools.partial(uneven_data, target="classification")


def _needs_ranks(comm):
    if comm.size == 1:
        pytest.skip("needs two ranks")


# -- 1. parameters agree ---------------------------------------------------------------------
# (estimator factory taking the parameter value, parameter name, value elsewhere, value on the
#  last rank, how to call it)
PARAM_CASES = {
    "DBSCAN-eps": (lambda v: DBSCAN(eps=v), "eps", 0.5, 0.7, "fit"),
    "DBSCAN-min_samples": (lambda v: DBSCAN(min_samples=v), "min_samples", 5, 1000, "fit"),
    "KMeans-n_clusters": (lambda v: KMeans(v, n_init=1, random_state=0), "n_clusters", 3, 1000,
                          "fit"),
    "KMeans-random_state": (lambda v: KMeans(3, n_init=1, random_state=v), "random_state", 0, 1,
                            "fit"),
    "LinearRegression-fit_intercept": (lambda v: LinearRegression(fit_intercept=v),
                                       "fit_intercept", True, False, "fit_y"),
    "Ridge-alpha": (lambda v: Ridge(alpha=v), "alpha", 1.0, 2.0, "fit_y"),
    "LogisticRegression-C": (lambda v: LogisticRegression(C=v), "C", 1.0, 0.5, "fit_y"),
    "KNeighborsClassifier-n_neighbors": (lambda v: KNeighborsClassifier(v), "n_neighbors", 3,
                                         1000, "fit_y"),
    "PCA-n_components": (lambda v: PCA(v), "n_components", 2, 3, "fit"),
    "IncrementalPCA-n_components": (lambda v: IncrementalPCA(v), "n_components", 2, 3, "fit"),
    "RandomForestClassifier-random_state": (
        lambda v: RandomForestClassifier(n_estimators=3, max_depth=3, random_state=v),
        "random_state", 0, 1, "fit_y"),
    "RandomForestRegressor-max_depth": (
        lambda v: RandomForestRegressor(n_estimators=3, max_depth=v, random_state=0),
        "max_depth", 3, 4, "fit_y"),
    "StandardScaler-with_mean": (lambda v: StandardScaler(with_mean=v), "with_mean", True,
                                 False, "fit"),
    "EmpiricalCovariance-assume_centered": (lambda v: EmpiricalCovariance(assume_centered=v),
                                            "assume_centered", False, True, "fit"),
    "BasicStatistics-result_options": (lambda v: BasicStatistics(result_options=v),
                                       "result_options", "all", "mean", "fit"),
}


def _call(est, how, X, y):
    return (lambda: est.fit(X, y)) if how == "fit_y" else (lambda: est.fit(X))


@pytest.mark.parametrize("case", PARAM_CASES)
def test_parameter_differs_on_one_rank(world, case):
    _needs_ranks(world)
    make, name, value, other, how = PARAM_CASES[case]
    X, y = _data(world)
    bad = world.size - 1
    est = make(other if world.rank == bad else value)
    others = ", ".join(str(r) for r in range(bad))
    assert_raises_on_all_ranks(
        world, ValueError, _call(est, how, X, y),
        match=rf"parameters differ across ranks: {name} \(rank{'s' if bad > 1 else ''} "
              rf"{others}: {value!r}; rank {bad}: {other!r}\)")


# A method's own arguments steer its collectives as the parameters do: (method, argument name,
# value elsewhere, value on the last rank). radius=1e200 overflows the euclidean limit: on that
# rank alone it used to start the overflow check's gather, a CollectiveError naming no argument.
ARG_CASES = {
    "radius_neighbors-radius-overflow": ("radius_neighbors", "radius", 1.0, 1e200),
    "radius_neighbors-radius": ("radius_neighbors", "radius", 1.0, 1.5),
    "radius_neighbors-sort_results": ("radius_neighbors", "sort_results", False, True),
    "kneighbors-n_neighbors": ("kneighbors", "n_neighbors", 3, 1000),
    "kneighbors_graph-mode": ("kneighbors_graph", "mode", "connectivity", "distance"),
}


@pytest.mark.parametrize("case", ARG_CASES)
def test_method_argument_differs_on_one_rank(world, case):
    _needs_ranks(world)
    method, name, value, other = ARG_CASES[case]
    X, _ = _data(world)
    nn = NearestNeighbors().fit(X)
    bad = world.size - 1
    others = ", ".join(str(r) for r in range(bad))
    kwargs = {name: other if world.rank == bad else value}
    assert_raises_on_all_ranks(
        world, ValueError, lambda: getattr(nn, method)(X, **kwargs),
        match=rf"{type(nn).__name__}\.{method}: parameters differ across ranks: argument "
              rf"{name} \(rank{'s' if bad > 1 else ''} {others}: {re.escape(repr(value))}; "
              rf"rank {bad}: {re.escape(repr(other))}\)")
    # nothing is left half-done: the same call with agreed arguments works on every rank
    out = getattr(nn, method)(X, **{name: value})
    rows = out[-1].shape[0] if isinstance(out, tuple) else out.shape[0]
    assert_all_ranks(world, rows == X.shape[0], "the next call works")


# Collective functions too: (function, its other arguments, argument name, value elsewhere,
# value on the last rank). Each used to leave the ranks in different collectives (a
# CollectiveError naming none of them, or a hang in the next call).
FUNCTION_CASES = {
    "accuracy_score-normalize": ("metrics.accuracy_score", "normalize", True, False),
    "r2_score-multioutput": ("metrics.r2_score", "multioutput", "uniform_average",
                             "raw_values"),
    "roc_auc_score-max_fpr": ("metrics.roc_auc_score", "max_fpr", None, 0.5),
    "cross_val_score-cv": ("model_selection.cross_val_score", "cv", 3, 2),
    "cross_val_score-estimator": ("model_selection.cross_val_score", "estimator__C", 1.0, 0.5),
    "train_test_split-test_size": ("model_selection.train_test_split", "test_size", 0.25, 0.5),
    # array-valued arguments that are not rows: they used to pass as data, unchecked, and the
    # ranks returned different scores
    "r2_score-multioutput-weights": ("metrics.r2_score", "multioutput", [0.5, 0.5], [0.3, 0.7]),
    "confusion_matrix-labels": ("metrics.confusion_matrix", "labels", [0, 1], [1, 0]),
}


@pytest.mark.parametrize("case", FUNCTION_CASES)
def test_function_argument_differs_on_one_rank(world, case):
    import importlib

    _needs_ranks(world)
    path, name, value, other = FUNCTION_CASES[case]
    module, function = path.split(".")
    fn = getattr(importlib.import_module(f"spmdlearn.{module}"), function)
    X, y = _data(world)
    mine = other if world.rank == world.size - 1 else value

    def call(v):
        if function == "cross_val_score":
            C, cv = (v, 3) if name == "estimator__C" else (1.0, v)
            return fn(LogisticRegression(C=C), X, y, cv=cv)
        if function == "train_test_split":
            return fn(X, y, test_size=v, random_state=0)
        if function == "r2_score":
            return fn(X[:, :2], X[:, :2] + 0.1, multioutput=v)
        return fn(y, X[:, 0] if function == "roc_auc_score" else y, **{name: v})

    bad = world.size - 1
    others = ", ".join(str(r) for r in range(bad))
    assert_raises_on_all_ranks(
        world, ValueError, lambda: call(mine),
        match=rf"spmdlearn\.{path}: parameters differ across ranks: argument {name} "
              rf"\(rank{'s' if bad > 1 else ''} {others}: {re.escape(repr(value))}; "
              rf"rank {bad}: {re.escape(repr(other))}\)")
    call(value)  # the same call with agreed arguments works on every rank
    assert_all_ranks(world, True, "the next call works")


def test_routed_data_in_params_is_not_compared(world):
    """``cross_validate(params={"sample_weight": w})`` routes this rank's rows, which differ
    across ranks by design: they used to be compared by value and refused ("parameters differ
    across ranks: argument params")."""
    from sklearn.model_selection import cross_validate as sk_cross_validate

    from spmdlearn.model_selection import KFold, cross_val_score, cross_validate

    X, y = _data(world)
    w = np.random.default_rng(world.rank).uniform(0.5, 2.0, size=X.shape[0])
    scores = cross_validate(LogisticRegression(), X, y, cv=KFold(3), params={"sample_weight": w})
    also = cross_val_score(LogisticRegression(), X, y, cv=KFold(3), params={"sample_weight": w})
    Xa, ya, wa = (np.concatenate(world.mpi.allgather(a)) for a in (X, y, w))
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression
    from sklearn.model_selection import KFold as SkKFold
    expected = sk_cross_validate(SkLogisticRegression(), Xa, ya, cv=SkKFold(3),
                                 params={"sample_weight": wa})["test_score"]
    assert_all_ranks(world, np.allclose(scores["test_score"], expected)
                     and np.allclose(also, expected),
                     f"scores {scores['test_score']}, {also} equal scikit-learn's {expected}")


def test_radius_overflow_on_every_rank_names_radius(world):
    """The same overflowing radius on every rank: every rank raises, naming the radius."""
    X, _ = _data(world)
    X = X.copy()
    if X.shape[0]:
        X[0, 0] = 1e160 * (world.rank + 1)  # distances of about 1e160 overflow float64
    nn = NearestNeighbors().fit(X)
    assert_raises_on_all_ranks(world, ValueError, lambda: nn.radius_neighbors(X, radius=1e200),
                               match=r"overflow float64.*radius=1e\+200")
    out = nn.radius_neighbors(X, radius=1.0, return_distance=False)
    assert_all_ranks(world, out.shape == (X.shape[0],), "a radius search after the error")


def test_parameters_agree_then_fit(world):
    """The agreement does not refuse what is the same: a fit after a mismatch works."""
    X, y = _data(world)
    model = LogisticRegression(C=0.5).fit(X, y)
    coef = world.allgather_array(model.coef_)
    assert_all_ranks(world, bool((coef == coef[0]).all()), "coef_ identical")


def test_random_state_instances_compare_by_state(world):
    """Rule: a RandomState compares by its state on entry; seeded alike, the ranks agree."""
    X, _ = _data(world)
    KMeans(3, n_init=1, random_state=np.random.RandomState(7)).fit(X)
    if world.size == 1:
        return
    state = np.random.RandomState(7 + (world.rank == world.size - 1))
    assert_raises_on_all_ranks(world, ValueError,
                               lambda: KMeans(3, n_init=1, random_state=state).fit(X),
                               match=r"random_state .*RandomState")


# -- 7. mismatched calls --------------------------------------------------------------------
def test_different_estimators_on_different_ranks(world):
    _needs_ranks(world)
    X, _ = _data(world)
    bad = world.size - 1
    est = PCA(2) if world.rank == bad else KMeans(3, n_init=1, random_state=0)
    assert_raises_on_all_ranks(world, CollectiveError, lambda: est.fit(X),
                               match=rf"different collective methods: .*KMeans\.fit; "
                                     rf"rank {bad}: PCA\.fit")


def test_different_methods_on_different_ranks(world):
    _needs_ranks(world)
    X, _ = _data(world)
    km = KMeans(3, n_init=1, random_state=0).fit(X)
    bad = world.size - 1
    call = (lambda: km.transform(X)) if world.rank == bad else (lambda: km.predict(X))
    assert_raises_on_all_ranks(world, CollectiveError, call,
                               match=rf"KMeans\.predict; rank {bad}: KMeans\.transform")
    # Nothing is left half-done: the next collective call works on every rank.
    labels = km.predict(X)
    assert_all_ranks(world, labels.shape == (X.shape[0],), "predict after a mismatch")


def test_comm_collectives_called_differently(world):
    """Different collectives, or arrays of different shapes, raise instead of crashing."""
    _needs_ranks(world)
    bad = world.size - 1
    if world.rank == bad:
        call = lambda: world.offsets(3)  # noqa: E731
    else:
        call = lambda: world.sum_identical(np.ones(2))  # noqa: E731
    assert_raises_on_all_ranks(world, CollectiveError, call, match="different collectives")
    shape = 3 if world.rank == bad else 2
    assert_raises_on_all_ranks(world, CollectiveError,
                               lambda: world.allgather_array(np.ones(shape)),
                               match=rf"rank {bad}: \('allgather_array', \('<f8', \(3,\)\)\)")


# -- 2. errors are collective at every step ---------------------------------------------------
class _Injected:
    """Make kernel ``name`` raise MemoryError on one rank at its ``nth`` call."""

    def __init__(self, monkeypatch, name, rank, nth, comm):
        self.name, self.rank, self.nth, self.calls = name, rank, nth, 0
        self.comm = comm
        original = _backends.call_kernel

        def call_kernel(kernel, backend=None, **kwargs):
            if kernel == self.name:
                self.calls += 1
                if self.comm.rank == self.rank and self.calls == self.nth:
                    raise MemoryError(f"injected: {kernel} call {self.calls}")
            return original(kernel, backend, **kwargs)

        for module in list(sys.modules.values()):
            if (getattr(module, "__name__", "").startswith("spmdlearn")
                    and getattr(module, "call_kernel", None) is original):
                monkeypatch.setattr(module, "call_kernel", call_kernel)


def _kmeans(X, y):
    return KMeans(3, n_init=1, random_state=0, tol=0, max_iter=20).fit(X)


def _kmeans_plain_step(X, y):
    """On the reference backend, whose Lloyd step is the plain one (the default cpu backend
    takes the bounded step, ``kmeans_lloyd_bounded``)."""
    with spmdlearn.config_context(backend="reference"):
        return _kmeans(X, y)


def _forest(X, y):
    return RandomForestClassifier(n_estimators=2, max_depth=4, random_state=0).fit(X, y)


def _forest_gathered(X, y):
    """On the reference backend, whose level histograms come from each tree's gathered rows
    (``tree_histograms``; the default cpu backend serves ``forest_histograms``)."""
    with spmdlearn.config_context(backend="reference"):
        return _forest(X, y)


# (what to run, on fitted what, kernel, which call of it fails)
KERNEL_CASES = {
    "KMeans.fit Lloyd step": (None, lambda m, X, y: _kmeans_plain_step(X, y),
                              "kmeans_lloyd_local", 3),
    "KMeans.fit bounded Lloyd step": (None, lambda m, X, y: _kmeans(X, y),
                                      "kmeans_lloyd_bounded", 3),
    "KMeans.fit k-means++": (None, lambda m, X, y: _kmeans(X, y), "kmeans_min_distances", 2),
    "KMeans.predict": (_kmeans, lambda m, X, y: m.predict(X), "kmeans_assign", 1),
    "KMeans.transform": (_kmeans, lambda m, X, y: m.transform(X), "kmeans_transform", 1),
    "RandomForest.fit histograms": (None, lambda m, X, y: _forest(X, y), "forest_histograms",
                                    3),
    "RandomForest.fit gathered histograms": (None, lambda m, X, y: _forest_gathered(X, y),
                                             "tree_histograms", 3),
    "RandomForest.predict": (_forest, lambda m, X, y: m.predict(X), "tree_apply", 1),
    "RandomForest.fit routing": (None, lambda m, X, y: _forest(X, y), "tree_route", 2),
    "DBSCAN.fit core pairs": (None, lambda m, X, y: DBSCAN(eps=1.5).fit(X),
                              "radius_label_union", 1),
    "DBSCAN.fit pairs across ranks": (None, lambda m, X, y: DBSCAN(eps=1.5).fit(X),
                                      "radius_label_union", 2),
    "DBSCAN.fit border pass": (None, lambda m, X, y: DBSCAN(eps=1.5, min_samples=5).fit(X),
                               "radius_min_label", 1),
    "DBSCAN.fit radius pass": (None, lambda m, X, y: DBSCAN(eps=0.9).fit(X),
                               "radius_counts", "ring"),
    "LogisticRegression.fit gradient": (None, lambda m, X, y: LogisticRegression().fit(X, y),
                                        "logistic_loss_grad", 3),
    "LogisticRegression.predict": (lambda X, y: LogisticRegression().fit(X, y),
                                   lambda m, X, y: m.predict(X), "linear_predict", 1),
    "NearestNeighbors.kneighbors": (lambda X, y: NearestNeighbors(n_neighbors=3).fit(X),
                                    lambda m, X, y: m.kneighbors(X), "knn_merge", "ring"),
    "PCA.transform": (lambda X, y: PCA(2).fit(X), lambda m, X, y: m.transform(X),
                      "linear_predict", 1),
    "StandardScaler.fit": (None, lambda m, X, y: StandardScaler().fit(X), "column_stats_local",
                           1),
}


@pytest.mark.parametrize("case", KERNEL_CASES)
def test_kernel_error_on_one_rank_at_a_later_step(world, monkeypatch, case):
    prepare, run, kernel, nth = KERNEL_CASES[case]
    if case == "DBSCAN.fit pairs across ranks" and world.size < 3:
        pytest.skip("needs two ranks with rows (the last rank is empty)")
    if nth == "ring":  # the second visiting block where there is one (the last rank is empty)
        nth = 2 if world.size > 2 else 1
    X, y = _data(world)
    bad = 1 if world.size > 2 else 0  # a rank with rows
    model = prepare(X, y) if prepare is not None else None
    injected = _Injected(monkeypatch, kernel, bad, nth, world)
    # One process raises the kernel's own error (or CollectiveError from a reduction).
    expected = CollectiveError if world.size > 1 else (MemoryError, CollectiveError)
    assert_raises_on_all_ranks(world, expected, lambda: run(model, X, y),
                               match=rf"rank {bad}: injected: {kernel}" if world.size > 1
                               else "injected")
    # The kernel ran far enough on the failing rank to be inside the method's later steps.
    reached = world.allgather(injected.calls)
    assert_all_ranks(world, reached[bad] >= nth, f"{kernel} called {reached} times")
    monkeypatch.undo()
    run(model, X, y)  # every rank continues, in step


def test_same_error_on_every_rank_keeps_its_message(world):
    """An error computed from agreed values is raised as it is, with its traceback."""
    X, _ = _data(world)
    n = world.exact_sum(X.shape[0])
    assert_raises_on_all_ranks(world, ValueError, lambda: KMeans(n + 1).fit(X),
                               match=rf"^n_samples={n} should be >= n_clusters={n + 1}")


# -- 12.4: warnings are recorded on every rank (shown once: see test_failfast.py) ---------------
def test_warnings_reach_every_rank_that_records_them(world):
    X, y = _data(world)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        LogisticRegression(max_iter=1).fit(X, y)
    ok = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert_all_ranks(world, ok, f"ConvergenceWarning recorded: {[str(w.message) for w in caught]}")


# -- 5. overflow: a row near the float64 limit on one rank ---------------------------------------
OVERFLOW_CASES = {
    "StandardScaler": lambda X, y: StandardScaler().fit(X),
    "IncrementalPCA": lambda X, y: IncrementalPCA(2).fit(X),
    "PCA covariance_eigh": lambda X, y: PCA(2, svd_solver="covariance_eigh").fit(X),
    "PCA full (TSQR)": lambda X, y: PCA(2, svd_solver="full").fit(X),
    "EmpiricalCovariance": lambda X, y: EmpiricalCovariance().fit(X),
    "BasicStatistics": lambda X, y: BasicStatistics().fit(X),
}
# LinearRegression solves such rows as scikit-learn does, without overflow and so without a
# warning (tests/test_overflow_mpi.py); it warns and raises once a column's sum overflows.


@pytest.mark.parametrize("case", OVERFLOW_CASES)
def test_overflow_on_one_rank_is_reported_on_every_rank(world, case):
    """scikit-learn gives inf/nan with numpy's "overflow encountered" warnings; spmdlearn warns
    on every rank, naming the reduction and the rank whose rows overflow it (some estimators
    then raise, from a solver given inf: on every rank alike)."""
    X, y = _data(world)
    bad = 0 if world.size < 3 else 1  # a rank with rows
    if world.rank == bad:
        X = X.copy()
        X[0] = 1e308
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="ignore"):
            try:
                OVERFLOW_CASES[case](X, y.astype(np.float64))
                raised = None
            except Exception as exc:  # noqa: BLE001 - compared across ranks below
                raised = type(exc).__name__
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)
                and str(w.message).startswith("overflow in ")]
    ok = any(f"rank {bad} overflow" in m or f"ranks {bad}," in m or "combination" in m
             for m in messages)
    assert_all_ranks(world, ok, f"overflow warnings: {messages}")
    outcomes = world.allgather(raised)
    assert_all_ranks(world, len(set(outcomes)) == 1, f"the same outcome on every rank: {outcomes}")


def test_numpy_scalars_agree_with_the_python_numbers_they_hold(world):
    """A NumPy scalar means the Python number it holds: ``radius=np.float64(1.0)`` on one
    rank and ``1.0`` on the others (or ``n_clusters=np.int64(3)`` and ``3``) agree, and the
    results are those of the plain numbers; a different value is still refused."""
    X, _ = _data(world)
    last = world.rank == world.size - 1
    nn = NearestNeighbors().fit(X)
    dist, _ = nn.radius_neighbors(X, radius=np.float64(1.0) if last else 1.0)
    plain, _ = nn.radius_neighbors(X, radius=1.0)
    same = all(np.array_equal(a, b) for a, b in zip(dist, plain))
    km = KMeans(np.int64(3) if last else 3, n_init=1, random_state=0).fit(X)
    ref = KMeans(3, n_init=1, random_state=0).fit(X)
    assert_all_ranks(world, same and np.array_equal(km.cluster_centers_, ref.cluster_centers_),
                     "NumPy scalars agree with Python numbers")
    if world.size > 1:
        assert_raises_on_all_ranks(
            world, ValueError,
            lambda: nn.radius_neighbors(X, radius=np.float64(2.0) if last else 1.0),
            match=r"argument radius")
