"""``class_weight`` spelled with NumPy scalars or array-API 0-d arrays, under mpiexec.

scikit-learn's ``compute_class_weight`` takes a dict whose keys are NumPy scalars
(``np.int64(1)``, ``np.str_("b")``) and whose values are NumPy scalars or 0-d arrays of any
array type (``np.float32(2)``, ``array_api_strict.asarray(2.0)``): ``{np.int64(1): 2}`` is
``{1: 2.0}``. spmdlearn compares parameters across ranks; it used to compare the dict's keys by
their ``repr`` and a 0-d array-API value by its bytes, so ranks that spelled the same weights
differently were refused as "parameters differ across ranks: class_weight". Results are
checked against scikit-learn on the gathered data; different weights are still refused on
every rank, naming the ranks.
"""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from spmdlearn.ensemble import RandomForestClassifier
from spmdlearn.linear_model import LogisticRegression
from spmdlearn_conformance import assert_all_ranks, assert_raises_on_all_ranks

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]

xp = pytest.importorskip("array_api_strict")


def _data(comm, labels=None):
    """(X, y) of all ranks and this rank's rows (the last rank holds none when there are
    several)."""
    rng = np.random.RandomState(3)
    sizes = [40 + 13 * r for r in range(comm.size)]
    if comm.size > 1:
        sizes[-1] = 0
    X = rng.randn(sum(sizes), 3)
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.randn(len(X)) > 0.4).astype(np.int64)
    if labels is not None:
        y = np.asarray(labels)[y]
    lo = sum(sizes[:comm.rank])
    return X, y, X[lo:lo + sizes[comm.rank]], y[lo:lo + sizes[comm.rank]]


# spellings of the weights {0: 1.0, 1: 3.0}, one per rank (cycling)
INT_SPELLINGS = [
    {0: 1.0, 1: 3.0},
    {np.int64(1): np.float32(3.0), np.int64(0): np.int64(1)},
    {np.int32(0): np.float64(1), 1: 3},
    {np.uint8(1): np.array(3.0), np.int16(0): np.array(1, dtype=np.int32)},
]
STR_SPELLINGS = [
    {"no": 1.0, "yes": 3.0},
    {np.str_("yes"): np.float32(3.0), np.str_("no"): 1},
]
XP_SPELLINGS = [
    {0: 1.0, 1: 3.0},
    {0: xp.asarray(1.0), 1: xp.asarray(3.0, dtype=xp.float32)},
    {np.int64(0): xp.asarray(1), 1: xp.asarray(3.0)},
]


def _fit_each(comm, make, spellings, X_local, y_local):
    """Fit with this rank's spelling; the verdict (refused or not) is agreed over all ranks."""
    mine = spellings[comm.rank % len(spellings)]
    error, est = None, None
    try:
        est = make(mine).fit(X_local, y_local)
    except Exception as exc:  # noqa: BLE001 -- the verdict must reach every rank
        error = f"rank {comm.rank}: {type(exc).__name__}: {exc}"
    errors = [e for e in comm.allgather(error) if e is not None]
    assert not errors, f"refused: {errors}"
    return est


@pytest.mark.parametrize("spellings, labels", [(INT_SPELLINGS, None),
                                               (STR_SPELLINGS, ["no", "yes"])],
                         ids=["int labels", "str labels"])
def test_logistic_class_weight_spellings(comm, spellings, labels):
    X, y, X_local, y_local = _data(comm, labels)
    est = _fit_each(comm, lambda cw: LogisticRegression(class_weight=cw, tol=1e-10,
                                                        max_iter=500), spellings, X_local, y_local)
    for cw in spellings:  # each spelling means the same weights to scikit-learn
        ref = SkLogisticRegression(class_weight=cw, tol=1e-10, max_iter=500).fit(X, y)
        assert_all_ranks(comm, np.max(np.abs(est.coef_ - ref.coef_)) <= 1e-6
                         and np.max(np.abs(est.intercept_ - ref.intercept_)) <= 1e-6,
                         f"coef_ against scikit-learn with {cw}")
    unweighted = SkLogisticRegression(tol=1e-10, max_iter=500).fit(X, y)
    assert_all_ranks(comm, np.max(np.abs(est.coef_ - unweighted.coef_)) > 1e-3,
                     "the weights were applied")


def test_logistic_class_weight_array_api_values(comm):
    """0-d array_api_strict weights with array_api_strict rows, as scikit-learn reads them."""
    X, y, X_local, y_local = _data(comm)
    est = _fit_each(comm, lambda cw: LogisticRegression(class_weight=cw, tol=1e-10,
                                                        max_iter=500),
                    XP_SPELLINGS, xp.asarray(X_local), xp.asarray(y_local))
    ref = SkLogisticRegression(class_weight=XP_SPELLINGS[1], tol=1e-10, max_iter=500).fit(X, y)
    assert_all_ranks(comm, np.max(np.abs(est.coef_ - ref.coef_)) <= 1e-6,
                     "coef_ against scikit-learn")


@pytest.mark.parametrize("spellings, labels", [(INT_SPELLINGS, None),
                                               (STR_SPELLINGS, ["no", "yes"]),
                                               (XP_SPELLINGS, None)],
                         ids=["int labels", "str labels", "array-api values"])
def test_forest_class_weight_spellings(comm, spellings, labels):
    """The forest of each rank's spelling is the forest of plain Python weights."""
    X, y, X_local, y_local = _data(comm, labels)

    def make(cw):
        return RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0,
                                      class_weight=cw)

    est = _fit_each(comm, make, spellings, X_local, y_local)
    plain = make({k if isinstance(k, str) else int(k): float(v)
                  for k, v in spellings[0].items()}).fit(X_local, y_local)
    unweighted = make(None).fit(X_local, y_local)
    got, want = est.predict_proba(X), plain.predict_proba(X)
    assert_all_ranks(comm, np.array_equal(got, want), "the forest differs from plain weights")
    assert_all_ranks(comm, not np.array_equal(got, unweighted.predict_proba(X)),
                     "the weights were applied")


@pytest.mark.parametrize("make", [
    lambda cw: LogisticRegression(class_weight=cw),
    lambda cw: RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0,
                                      class_weight=cw)], ids=["logistic", "forest"])
def test_different_class_weights_are_still_refused(world, make):
    if world.size == 1:
        pytest.skip("needs two ranks")
    X, y, X_local, y_local = _data(world)
    bad = world.size - 1
    mine = {np.int64(0): 1.0, np.int64(1): np.float32(3.5 if world.rank == bad else 3.0)}
    assert_raises_on_all_ranks(
        world, ValueError, lambda: make(mine).fit(X_local, y_local),
        match=rf"parameters differ across ranks: class_weight \(.*rank {bad}: ")
