"""Random forests under mpiexec: the same forest for any split of the rows and any number of
ranks; held-out scores within 1 point / 0.01 of scikit-learn's forests."""

import numpy as np
import pytest
import spmdlearn
from mpi4py import MPI
from sklearn import ensemble as ske
from sklearn.datasets import make_classification, make_regression

from spmdlearn.ensemble import RandomForestClassifier, RandomForestRegressor
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_identical_on_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    random_cuts,
)

pytestmark = pytest.mark.mpi


def _split(X, y, n_train):
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def _alone(est, X, y):
    with spmdlearn.config_context(comm=MPI.COMM_SELF):
        return est.fit(X, y)


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_classifier_same_forest_for_any_split(comm, criterion):
    X, y = make_classification(900, 10, n_informative=5, n_classes=3, random_state=0)
    X, y, Xt, yt = _split(X, y, 600)
    cuts = random_cuts(600, comm.size, 1)
    params = dict(n_estimators=8, max_depth=6, random_state=3, criterion=criterion)
    est = RandomForestClassifier(**params).fit(*local_rows(cuts, comm.rank, X, y))
    one = _alone(RandomForestClassifier(**params), X, y)  # one rank, all rows
    qcuts = random_cuts(len(Xt), comm.size, 2)
    Xt_local = local_rows(qcuts, comm.rank, Xt)
    with spmdlearn.config_context(comm=MPI.COMM_SELF):
        expected = one.predict_proba(Xt_local)
    assert_all_ranks(comm, np.array_equal(est.predict_proba(Xt_local), expected),
                     "identical predictions for any split and rank count")
    assert_identical_on_all_ranks(comm, est.feature_importances_, "feature_importances_")
    assert_allclose_all_ranks(comm, est.feature_importances_.sum(), 1.0, rtol=1e-12,
                              what="importances sum to 1")


def test_classifier_accuracy_close_to_sklearn(comm):
    X, y = make_classification(1500, 12, n_informative=6, random_state=1)
    X, y, Xt, yt = _split(X, y, 1000)
    cuts, qcuts = random_cuts(1000, comm.size, 3), random_cuts(500, comm.size, 4)
    est = RandomForestClassifier(20, max_depth=8, random_state=0).fit(
        *local_rows(cuts, comm.rank, X, y))
    ours = est.score(*local_rows(qcuts, comm.rank, Xt, yt))
    ref = ske.RandomForestClassifier(20, max_depth=8, random_state=0).fit(X, y).score(Xt, yt)
    assert_all_ranks(comm, abs(ours - ref) <= 0.01 + 1e-12, f"accuracy {ours} vs {ref}")


def test_regressor_same_forest_and_r2_close_to_sklearn(comm):
    X, y = make_regression(1200, 8, n_informative=5, noise=5.0, random_state=2)
    X, y, Xt, yt = _split(X, y, 800)
    cuts, qcuts = random_cuts(800, comm.size, 5), random_cuts(400, comm.size, 6)
    params = dict(n_estimators=15, max_depth=8, random_state=1)
    est = RandomForestRegressor(**params).fit(*local_rows(cuts, comm.rank, X, y))
    Xt_local, yt_local = local_rows(qcuts, comm.rank, Xt, yt)
    one = _alone(RandomForestRegressor(**params), X, y)
    with spmdlearn.config_context(comm=MPI.COMM_SELF):
        expected = one.predict(Xt_local)
    # Regression histograms sum floats: the same forest up to the rounding of those sums.
    assert_allclose_all_ranks(comm, est.predict(Xt_local), expected, rtol=1e-9,
                              what="predictions for any split")
    ours = est.score(Xt_local, yt_local)
    ref = ske.RandomForestRegressor(**params).fit(X, y).score(Xt, yt)
    assert_all_ranks(comm, abs(ours - ref) <= 0.01, f"R^2 {ours} vs {ref}")


def test_local_trees_mode_is_a_union(comm):
    X, y = make_classification(400, 6, random_state=3)
    cuts = np.linspace(0, 400, comm.size + 1).astype(int)
    est = RandomForestClassifier(6, max_depth=4, random_state=0, local_trees_mode=True).fit(
        *local_rows(cuts, comm.rank, X, y))
    assert_all_ranks(comm, len(est.estimators_) == 6, "all trees on every rank")
    assert_identical_on_all_ranks(comm, np.concatenate([t.threshold for t in est.estimators_]),
                                  "trees")
    assert_all_ranks(comm, est.score(*local_rows(cuts, comm.rank, X, y)) > 0.8, "useful forest")


def test_forest_options(comm):
    X, y = make_classification(300, 6, random_state=4)
    cuts = random_cuts(300, comm.size, 7)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    est = RandomForestClassifier(4, max_leaf_nodes=5, max_features=None, bootstrap=False,
                                 class_weight="balanced", random_state=0).fit(X_local, y_local)
    leaves = [int((t.left < 0).sum()) for t in est.estimators_]
    assert_all_ranks(comm, max(leaves) <= 5, f"max_leaf_nodes: {leaves}")
    est = RandomForestClassifier(3, min_samples_leaf=20, max_samples=0.5, random_state=0,
                                 class_weight="balanced_subsample").fit(X_local, y_local)
    assert_all_ranks(comm, est.n_classes_ == 2, "n_classes_")


def test_forest_errors_are_collective(comm):
    X, y = make_classification(10 * comm.size, 4, random_state=5)
    X_local, y_local = X[10 * comm.rank: 10 * comm.rank + 10], y[10 * comm.rank: 10 * comm.rank + 10]
    bad = X_local.copy()
    if comm.rank == comm.size - 1:
        bad[0, 0] = np.nan
    assert_raises_on_all_ranks(comm, ValueError, lambda: RandomForestClassifier(2).fit(bad, y_local),
                               match="NaN")
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: RandomForestClassifier(2, criterion="mse").fit(X_local, y_local),
                               match="'criterion' parameter")
    if comm.size > 1:
        mixed = y_local.astype(str) if comm.rank == 0 else y_local
        assert_raises_on_all_ranks(comm, ValueError,
                                   lambda: RandomForestClassifier(2).fit(X_local, mixed),
                                   match="differs across ranks")
