"""LogisticRegression under mpiexec: scikit-learn's coefficients and n_iter_ on the gathered data."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from spmdlearn.linear_model import LogisticRegression
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_identical_on_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    random_cuts,
)

pytestmark = pytest.mark.mpi


def _reference(X, y, w, **params):
    penalty = params.pop("penalty", "l2")
    if penalty is None:
        params["C"] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SkLogisticRegression(**params).fit(X, y, sample_weight=w)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
@pytest.mark.parametrize("weights", [None, "sample", "balanced"])
@pytest.mark.parametrize("penalty", ["l2", None])
def test_logistic_equals_sklearn(comm, n_classes, solver, weights, penalty):
    X, y = make_classification(240, 5, n_informative=3, n_classes=n_classes, random_state=n_classes)
    w = np.random.default_rng(0).uniform(0.5, 2.0, 240) if weights == "sample" else None
    cw = "balanced" if weights == "balanced" else None
    cuts = random_cuts(240, comm.size, n_classes)
    X_local, y_local, w_local = local_rows(cuts, comm.rank, X, y, w)
    params = dict(tol=1e-10, solver=solver, class_weight=cw, max_iter=1000, C=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = LogisticRegression(penalty=penalty, **params).fit(X_local, y_local, sample_weight=w_local)
    ref = _reference(X, y, w, penalty=penalty, **params)
    assert_all_ranks(comm, np.max(np.abs(est.coef_ - ref.coef_)) <= 1e-6, "coef_ within 1e-6")
    assert_all_ranks(comm, np.max(np.abs(est.intercept_ - ref.intercept_)) <= 1e-6,
                     "intercept_ within 1e-6")
    assert_all_ranks(comm, est.n_iter_[0] == ref.n_iter_[0],
                     f"n_iter_ {est.n_iter_} vs {ref.n_iter_}")
    assert_identical_on_all_ranks(comm, est.coef_, "coef_")
    assert_all_ranks(comm, np.array_equal(est.classes_, ref.classes_), "classes_")
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_allclose_all_ranks(comm, est.predict_proba(X_local), ref.predict_proba(X)[lo:hi],
                              rtol=1e-6, what="predict_proba")
    assert_all_ranks(comm, np.array_equal(est.predict(X_local), ref.predict(X)[lo:hi]), "predict")
    assert_allclose_all_ranks(comm, est.score(X_local, y_local), ref.score(X, y), rtol=0,
                              what="score")


def test_ranks_missing_classes_and_empty_ranks(comm):
    """classes_ is the union over ranks: a rank may hold one class, or none, or no rows."""
    X, y = make_classification(120, 5, n_informative=3, n_classes=3, random_state=1)
    order = np.argsort(y, kind="stable")  # rows sorted by class: ranks see few classes
    X, y = X[order], y[order]
    cuts = random_cuts(120, comm.size, 3)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    est = LogisticRegression(tol=1e-10, max_iter=500).fit(X_local, y_local)
    ref = SkLogisticRegression(tol=1e-10, max_iter=500).fit(X, y)
    assert_all_ranks(comm, np.array_equal(est.classes_, [0, 1, 2]), "classes_ union")
    assert_all_ranks(comm, np.max(np.abs(est.coef_ - ref.coef_)) <= 1e-6, "coef_")


def test_string_labels(comm):
    X, y = make_classification(100, 3, n_informative=2, n_redundant=0, random_state=2)
    labels = np.array(["no", "yes"])[y]
    cuts = random_cuts(100, comm.size, 2)
    X_local, y_local = local_rows(cuts, comm.rank, X, labels)
    est = LogisticRegression().fit(X_local, y_local)
    ref = SkLogisticRegression().fit(X, labels)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_all_ranks(comm, np.array_equal(est.predict(X_local), ref.predict(X)[lo:hi]), "predict")


def test_warm_start_continues(comm):
    X, y = make_classification(150, 4, random_state=3)
    cuts = random_cuts(150, comm.size, 4)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    est = LogisticRegression(warm_start=True, tol=1e-10, max_iter=500).fit(X_local, y_local)
    again = est.fit(X_local, y_local)
    assert_all_ranks(comm, again.n_iter_[0] <= 2, "a warm restart from the optimum stops at once")


def test_logistic_errors_are_collective(comm):
    X, y = make_classification(10 * comm.size, 3, n_informative=2, n_redundant=0, random_state=0)
    X_local, y_local = X[10 * comm.rank: 10 * comm.rank + 10], y[10 * comm.rank: 10 * comm.rank + 10]
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: LogisticRegression().fit(X_local, np.zeros(len(y_local))),
                               match="at least 2 classes")
    assert_raises_on_all_ranks(comm, NotImplementedError,
                               lambda: LogisticRegression(solver="saga").fit(X_local, y_local),
                               match="not available in spmdlearn")
    if comm.size > 1:
        mixed = y_local.astype(str) if comm.rank == 0 else y_local
        assert_raises_on_all_ranks(comm, ValueError, lambda: LogisticRegression().fit(X_local, mixed),
                                   match="differs across ranks")
    bad = X_local.copy()
    if comm.rank == comm.size - 1:
        bad[0, 0] = np.nan
    assert_raises_on_all_ranks(comm, ValueError, lambda: LogisticRegression().fit(bad, y_local),
                               match="NaN")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("weights", [None, "sample", "balanced"])
def test_labels_of_another_array_type_are_encoded_in_place(comm, weights):
    """Labels and weights of a non-NumPy array type (array-api-strict here, a device array in
    use) are encoded in their own namespace: the model is the one from NumPy input, and no step
    of the fit takes them to the host (only the reference kernels' own host views remain)."""
    xp = pytest.importorskip("array_api_strict")
    from spmdlearn._array_api import fallbacks, reset_fallbacks

    X, y = make_classification(150, 5, n_informative=3, n_classes=3, random_state=1)
    y = y.astype(np.float64) * 3 - 2  # numeric labels that are not 0..K-1
    w = np.random.default_rng(1).uniform(0.5, 2.0, 150) if weights == "sample" else None
    cuts = random_cuts(150, comm.size, 3)
    X_l, y_l, w_l = local_rows(cuts, comm.rank, X, y, w)
    params = dict(tol=1e-10, class_weight="balanced" if weights == "balanced" else None)
    host = LogisticRegression(**params).fit(X_l, y_l, sample_weight=w_l)
    reset_fallbacks()
    strict = LogisticRegression(**params).fit(
        xp.asarray(X_l), xp.asarray(y_l), sample_weight=None if w_l is None else xp.asarray(w_l))
    steps = sorted(what for what, _ in fallbacks())
    assert_all_ranks(comm, not any(s.startswith("LogisticRegression") for s in steps),
                     f"no fit step on the host: {steps}")
    assert_all_ranks(comm, np.array_equal(strict.classes_, host.classes_), "classes_")
    assert_allclose_all_ranks(comm, strict.coef_, host.coef_, rtol=1e-10, what="coef_")
    assert_allclose_all_ranks(comm, strict.intercept_, host.intercept_, rtol=1e-10,
                              what="intercept_")
