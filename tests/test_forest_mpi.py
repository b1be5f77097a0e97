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


def _tree_arrays(est):
    return [np.concatenate([np.asarray(a, np.float64).ravel() for a in tree[:7]])
            for tree in est.estimators_]


_TOGETHER_CASES = {
    # classification, float weights, class weights of each tree's bootstrap
    "weighted": (RandomForestClassifier, dict(n_estimators=7, max_depth=5, max_features=2,
                                              class_weight="balanced_subsample"), True),
    # a leaf budget and the thresholds that depend on each tree's root weight
    "budget": (RandomForestClassifier, dict(n_estimators=5, max_leaf_nodes=9, max_features=3,
                                            min_impurity_decrease=1e-3,
                                            min_weight_fraction_leaf=0.01, criterion="entropy"),
               False),
    "regression": (RandomForestRegressor, dict(n_estimators=6, max_depth=6, max_features=0.5),
                   True),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(_TOGETHER_CASES))
def test_trees_grown_together_equal_trees_grown_alone(comm, case, monkeypatch):
    """Trees grown in one group, one level's nodes of all of them per reduction, are the trees
    grown one at a time with one node per reduction (uneven shards, an empty rank at seed 3)."""
    from spmdlearn.ensemble import _forest

    cls, params, weighted = _TOGETHER_CASES[case]
    if cls is RandomForestClassifier:
        X, y = make_classification(500, 7, n_informative=4, n_classes=3, random_state=8)
    else:
        X, y = make_regression(500, 7, n_informative=4, noise=3.0, random_state=8)
    X[:, 5] = 1.0  # a constant feature: nodes that draw only it try the others
    w = np.random.default_rng(1).uniform(0.2, 3.0, len(y)) if weighted else None
    cuts = random_cuts(500, comm.size, 3)
    X_local, y_local, w_local = local_rows(cuts, comm.rank, X, y, w)
    together = cls(random_state=5, **params).fit(X_local, y_local, sample_weight=w_local)
    monkeypatch.setattr(_forest, "_STATE_BYTES", 1)  # one tree per group
    monkeypatch.setattr(_forest, "_HIST_BYTES", 1)  # one node per reduction
    alone = cls(random_state=5, **params).fit(X_local, y_local, sample_weight=w_local)
    same = all(np.array_equal(a, b, equal_nan=True)
               for a, b in zip(_tree_arrays(together), _tree_arrays(alone)))
    assert_all_ranks(comm, same and len(together.estimators_) == params["n_estimators"],
                     "the same trees")
    assert_all_ranks(comm, np.array_equal(together.feature_importances_,
                                          alone.feature_importances_), "the same importances")
    assert_all_ranks(comm, max(int((t.left >= 0).sum()) for t in together.estimators_) > 2,
                     "trees that split")


@pytest.mark.timeout(120)
def test_nodes_whose_drawn_features_cannot_split_try_the_others(comm):
    """With one feature drawn per node among mostly constant ones, a node that draws a constant
    feature tries the others in its order, as scikit-learn does: each tree grows until its
    leaves are pure (training rows all distinct), and only the varying features split."""
    rng = np.random.default_rng(4)
    X = np.ones((300, 6))
    X[:, 2] = rng.normal(size=300)
    X[:, 4] = rng.normal(size=300)
    y = (X[:, 2] + 0.5 * X[:, 4] > 0).astype(int)
    cuts = random_cuts(300, comm.size, 6)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    est = RandomForestClassifier(4, max_features=1, bootstrap=False, max_bins=1024,
                                 random_state=0).fit(X_local, y_local)
    split_features = np.concatenate([t.feature[t.left >= 0] for t in est.estimators_])
    assert_all_ranks(comm, set(split_features.tolist()) <= {2, 4}, f"{set(split_features)}")
    pure = all(np.count_nonzero(t.value[t.left < 0] > 0, axis=1).max() == 1
               for t in est.estimators_)
    assert_all_ranks(comm, pure, "pure leaves")


# -- max_samples as the installed scikit-learn's ------------------------------------------------
MAX_SAMPLES = [None, 1, 7, 50, 0.3, 0.5, 1.0, 1.5, 3.0, 0, 0.0, -1, -0.5, float("nan"),
               float("inf")]  # True: scikit-learn takes it for 1, then fails in randint


def _uneven(comm, n_per=12):
    """Uneven shards, the last rank empty when there are several."""
    sizes = [n_per + 3 * r for r in range(comm.size)]
    if comm.size > 1:
        sizes[-1] = 0
    cuts = np.concatenate([[0], np.cumsum(sizes)])
    return cuts, int(cuts[-1])


def _verdict(call):
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            call()
            error = None
        except Exception as exc:  # noqa: BLE001 - compared with scikit-learn's
            error = exc
    return error, sorted({str(w.message) for w in seen if "max_samples" in str(w.message)})


@pytest.mark.parametrize("bootstrap", [True, False])
@pytest.mark.parametrize("max_samples", MAX_SAMPLES, ids=repr)
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_max_samples_validated_as_sklearn(comm, kind, max_samples, bootstrap):
    """Accepted or refused (same type and message) as by scikit-learn's forest on the gathered
    rows, on every rank; the small-sample warning too."""
    cuts, n = _uneven(comm)
    X, y = make_classification(n, 4, random_state=0)
    if kind == "regressor":
        y = X @ np.arange(1.0, 5.0)
    ours = RandomForestClassifier if kind == "classifier" else RandomForestRegressor
    theirs = ske.RandomForestClassifier if kind == "classifier" else ske.RandomForestRegressor
    params = dict(n_estimators=2, max_depth=3, random_state=0, max_samples=max_samples,
                  bootstrap=bootstrap)
    expected, warned = _verdict(lambda: theirs(**params).fit(X, y))
    got, got_warned = _verdict(lambda: ours(**params).fit(*local_rows(cuts, comm.rank, X, y)))
    ok = (expected is None) == (got is None) and (
        expected is None or (isinstance(got, ValueError) and str(got) == str(expected)))
    assert_all_ranks(comm, ok, f"scikit-learn: {expected!r}, spmdlearn: {got!r}")
    assert_all_ranks(comm, got_warned == warned, f"warnings {got_warned} vs {warned}")


@pytest.mark.parametrize("weighted", ["none", "sample_weight", "class_weight"])
@pytest.mark.parametrize("max_samples", [None, 1, 9, 50, 0.3, 1.0, 2.5])
def test_max_samples_bootstrap_size_as_sklearn(comm, max_samples, weighted):
    """The expected bootstrap size (lam times the rows of all ranks) is scikit-learn's number of
    draws, a float taken relative to the total weight (class weights included)."""
    from sklearn.ensemble._bootstrap import _get_n_samples_bootstrap  # the oracle, in a test
    from sklearn.utils.class_weight import compute_sample_weight

    cuts, n = _uneven(comm)
    rng = np.random.RandomState(1)
    y = np.arange(n) % 3
    sw = rng.uniform(0.5, 3.0, n) if weighted == "sample_weight" else None
    cw = {0: 1.0, 1: 2.5, 2: 0.25} if weighted == "class_weight" else None
    full = sw if cw is None else compute_sample_weight(cw, y)
    n_boot = _get_n_samples_bootstrap(n, max_samples, full)
    est = RandomForestClassifier(max_samples=max_samples, class_weight=cw)
    w_local = np.ones(n) if full is None else full
    lam = est._bootstrap_lam(comm, n, local_rows(cuts, comm.rank, w_local), full is not None)
    assert_allclose_all_ranks(comm, lam * n, float(n_boot), rtol=1e-12,
                              what=f"bootstrap size for max_samples={max_samples!r}")


def test_max_samples_beyond_the_poisson_bootstrap_refused(comm):
    """More than 30 draws of each row on average: refused on every rank, not capped."""
    cuts, n = _uneven(comm)
    X, y = make_classification(n, 4, random_state=0)
    est = RandomForestClassifier(2, max_samples=40.0, random_state=0)
    assert_raises_on_all_ranks(comm, NotImplementedError,
                               lambda: est.fit(*local_rows(cuts, comm.rank, X, y)),
                               match=r"max_samples=40\.0 draws .* at most 30 times")
    est = RandomForestClassifier(2, max_samples=20 * n, random_state=0)
    est.fit(*local_rows(cuts, comm.rank, X, y))  # 20 draws of each row: within the bound
    assert_all_ranks(comm, len(est.estimators_) == 2, "a forest with max_samples=20 n")
