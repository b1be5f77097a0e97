"""to_sklearn() is local for every estimator: ``if rank == 0: model.to_sklearn()`` finishes.

Models whose state is spread over the ranks' rows (neighbours, DBSCAN) take one collective
``gather_fit_data()`` first; without it ``to_sklearn()`` raises on the calling rank alone.
Forests export to scikit-learn's own tree objects and predict what spmdlearn predicts.
"""

import pickle

import numpy as np
import pytest
import sklearn
from sklearn import cluster as skc
from sklearn.datasets import make_classification, make_regression

from spmdlearn.basic_statistics import BasicStatistics, IncrementalBasicStatistics
from spmdlearn.cluster import DBSCAN, KMeans
from spmdlearn.covariance import EmpiricalCovariance, IncrementalEmpiricalCovariance
from spmdlearn.decomposition import PCA, IncrementalPCA
from spmdlearn.ensemble import RandomForestClassifier, RandomForestRegressor
from spmdlearn.ensemble._export import SUPPORTED_SKLEARN, check_sklearn_tree_layout
from spmdlearn.linear_model import (
    IncrementalLinearRegression,
    LinearRegression,
    LogisticRegression,
    Ridge,
)
from spmdlearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors
from spmdlearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from spmdlearn_conformance import assert_all_ranks, assert_raises_on_all_ranks, local_rows, random_cuts

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(60)]

LOCAL = {  # estimator -> needs y
    BasicStatistics: False, IncrementalBasicStatistics: False, EmpiricalCovariance: False,
    IncrementalEmpiricalCovariance: False, LinearRegression: True,
    IncrementalLinearRegression: True, Ridge: True, LogisticRegression: True, PCA: False,
    IncrementalPCA: False, KMeans: False, RandomForestClassifier: True,
    RandomForestRegressor: True, StandardScaler: False, MinMaxScaler: False, MaxAbsScaler: False,
}
GATHERED = {DBSCAN: False, KNeighborsClassifier: True, KNeighborsRegressor: True,
            NearestNeighbors: False}
NO_TWIN = (BasicStatistics, IncrementalBasicStatistics)


def _make(cls):
    if cls is KMeans:
        return KMeans(3, n_init=1, random_state=0)
    if cls in (RandomForestClassifier, RandomForestRegressor):
        return cls(4, max_depth=4, random_state=0)
    return cls()


def _shard(comm, seed=3, n=80):
    X, y = make_classification(n, 5, n_informative=3, random_state=seed)
    cuts = random_cuts(n, comm.size, seed)  # seed 3: the first rank is empty
    return local_rows(cuts, comm.rank, X, y.astype(float))


def _serve_on_rank0(comm, est):
    """``if rank == 0: est.to_sklearn()``; the others go straight to the next collective."""
    outcome = None
    if comm.rank == 0:
        try:
            outcome = type(est.to_sklearn()).__module__
        except Exception as exc:  # noqa: BLE001 - reported below, collectively
            outcome = exc
    return outcome


@pytest.mark.parametrize("cls", list(LOCAL), ids=lambda c: c.__name__)
def test_to_sklearn_on_rank_zero_alone(comm, cls):
    X, y = _shard(comm)
    est = _make(cls)
    est.fit(X, y) if LOCAL[cls] else est.fit(X)
    outcome = _serve_on_rank0(comm, est)
    if comm.rank == 0 and cls in NO_TWIN:
        ok = isinstance(outcome, NotImplementedError) and "scikit-learn has no equivalent" in str(outcome)
    else:
        ok = comm.rank != 0 or (isinstance(outcome, str) and outcome.startswith("sklearn."))
    assert_all_ranks(comm, ok, f"rank 0's to_sklearn(): {outcome!r}")  # reached by every rank


@pytest.mark.parametrize("cls", list(GATHERED), ids=lambda c: c.__name__)
def test_gathered_models_need_gather_fit_data(comm, cls):
    X, y = _shard(comm)
    est = _make(cls)
    est.fit(X, y) if GATHERED[cls] else est.fit(X)
    # Without gather_fit_data: an error on the calling rank alone, unless it holds every row.
    outcome = _serve_on_rank0(comm, est)
    holds_all = comm.allgather(len(X))[0] == sum(comm.allgather(len(X)))
    if comm.rank == 0:
        ok = isinstance(outcome, str) if holds_all else \
            isinstance(outcome, RuntimeError) and "gather_fit_data() on every rank" in str(outcome)
    else:
        ok = True
    assert_all_ranks(comm, ok, f"without gather_fit_data: {outcome!r}")
    # gather_fit_data(root=0): rank 0 serves, the others are told where the data went.
    est.gather_fit_data(root=0)
    try:
        served = est.to_sklearn()
        ok = comm.rank == 0 and type(served).__module__.startswith("sklearn.")
    except RuntimeError as exc:
        ok = comm.rank != 0 and "rank 0 only" in str(exc)
    assert_all_ranks(comm, ok, "to_sklearn after gather_fit_data(root=0)")
    # A refit forgets the gathered data.
    est.fit(X, y) if GATHERED[cls] else est.fit(X)
    assert_all_ranks(comm, "_gathered_fit_data" not in est.__dict__, "refit keeps stale data")


def test_gather_fit_data_before_fit_raises_everywhere(comm):
    assert_raises_on_all_ranks(comm, Exception, lambda: KNeighborsClassifier().gather_fit_data(),
                               match="not fitted")
    X, y = _shard(comm)
    est = KNeighborsClassifier(3).fit(X, y)
    assert_raises_on_all_ranks(comm, ValueError, lambda: est.gather_fit_data(root=comm.size),
                               match="root=")


def test_dbscan_to_sklearn_is_sklearn_on_gathered_rows(comm):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.3, size=(40, 2)) for c in (0, 3, 6)])
    X = X[rng.permutation(len(X))]
    cuts = random_cuts(len(X), comm.size, 6)
    est = DBSCAN(eps=0.5, min_samples=4).fit(local_rows(cuts, comm.rank, X))
    served = est.gather_fit_data().to_sklearn()
    ref = skc.DBSCAN(eps=0.5, min_samples=4).fit(X)
    assert_all_ranks(comm, np.array_equal(served.labels_, ref.labels_), "labels_")
    assert_all_ranks(comm, np.array_equal(served.core_sample_indices_, ref.core_sample_indices_),
                     "core_sample_indices_ (global)")
    assert_all_ranks(comm, np.array_equal(served.components_, ref.components_), "components_")
    assert_all_ranks(comm, served.get_params() == ref.get_params(), "parameters")


@pytest.mark.parametrize("kind", ["classifier", "regressor", "classifier-local-trees"])
def test_forest_exports_to_sklearn_trees(comm, kind):
    if kind.startswith("classifier"):
        X, y = make_classification(900, 8, n_informative=5, n_classes=3, random_state=1)
        est = RandomForestClassifier(8, max_depth=6, random_state=0,
                                     local_trees_mode=kind.endswith("local-trees"))
    else:
        X, y = make_regression(900, 6, noise=3.0, random_state=1)
        est = RandomForestRegressor(8, max_depth=6, random_state=0)
    X_train, y_train, X_test = X[:600], y[:600], X[600:]
    cuts = random_cuts(600, comm.size, 9)
    est.fit(*local_rows(cuts, comm.rank, X_train, y_train))
    served = pickle.loads(pickle.dumps(est.to_sklearn()))  # local, then through pickle
    qcuts = random_cuts(300, comm.size, 4)
    ours = est.predict(local_rows(qcuts, comm.rank, X_test))  # collective
    lo, hi = qcuts[comm.rank], qcuts[comm.rank + 1]
    assert_all_ranks(comm, type(served).__module__.startswith("sklearn.ensemble"), "a sklearn forest")
    assert_all_ranks(comm, len(served.estimators_) == 8, "every tree")
    assert_all_ranks(comm, np.array_equal(served.predict(X_test[lo:hi]), ours),
                     "held-out predictions equal")
    if kind.startswith("classifier"):
        ours_p = est.predict_proba(local_rows(qcuts, comm.rank, X_test))
        assert_all_ranks(comm, np.allclose(served.predict_proba(X_test[lo:hi]), ours_p,
                                           rtol=0, atol=1e-12), "probabilities equal")
        assert_all_ranks(comm, np.array_equal(served.classes_, est.classes_), "classes_")
    assert_all_ranks(comm, np.allclose(served.feature_importances_, est.feature_importances_,
                                       atol=1e-12), "feature importances")


def test_forest_export_checks_the_sklearn_version(comm):
    installed = tuple(int(p) for p in sklearn.__version__.split(".")[:2])
    # The installed version is a supported one (CI tests the export against it) ...
    assert_all_ranks(comm, installed in SUPPORTED_SKLEARN,
                     f"installed scikit-learn {sklearn.__version__} not in {SUPPORTED_SKLEARN}")
    check_sklearn_tree_layout()
    # ... and an unknown one is refused with its version named.
    for version in ("2.0.0", "1.3.2", "1.10.0.dev0"):
        with pytest.raises(NotImplementedError, match=f"scikit-learn {version} is not one of them"):
            check_sklearn_tree_layout(version)


def test_forest_export_refuses_unknown_sklearn(comm, monkeypatch):
    X, y = _shard(comm)
    est = RandomForestClassifier(2, max_depth=2, random_state=0).fit(X, y)
    monkeypatch.setattr(sklearn, "__version__", "9.1.0")
    outcome = None
    if comm.rank == 0:  # local: rank 0 alone gets the error
        try:
            est.to_sklearn()
        except NotImplementedError as exc:
            outcome = str(exc)
    assert_all_ranks(comm, comm.rank != 0 or (outcome and "scikit-learn 9.1.0" in outcome),
                     f"error naming the version: {outcome}")
