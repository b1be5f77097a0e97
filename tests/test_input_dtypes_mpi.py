"""Input dtypes: every estimator accepts exactly the X and y dtypes that its scikit-learn
counterpart accepts, on every rank.

scikit-learn validates with one of two rules: ``dtype="numeric"`` (LinearRegression, the
neighbours, DBSCAN, EmpiricalCovariance, and the predictions of every linear model: arrays of
strings or bytes are refused) or ``dtype=[float64, float32]`` (KMeans, PCA, the scalers, the
forests, Ridge's and LogisticRegression's fit: strings that parse as numbers are converted). spmdlearn used the second rule everywhere, so it fitted string arrays
that scikit-learn refuses. The verdict expected here is scikit-learn's own, on the gathered
rows; spmdlearn must give it on every rank (uneven shards, the last rank empty), also when only
one rank's rows have the dtype that scikit-learn refuses.
"""

import re
import warnings

import numpy as np
import pytest
from sklearn import cluster as skc
from sklearn import covariance as skcov
from sklearn import decomposition as skd
from sklearn import ensemble as ske
from sklearn import linear_model as skl
from sklearn import neighbors as skn
from sklearn import preprocessing as skp

from spmdlearn import cluster, covariance, decomposition, ensemble, linear_model, neighbors, \
    preprocessing

from spmdlearn_conformance import assert_all_ranks, assert_raises_on_all_ranks

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(300)]

#: name: (spmdlearn factory, scikit-learn factory, targets: None, "reg" or "clf", a predict-time
#: method that validates X)
ESTIMATORS = {
    "LinearRegression": (linear_model.LinearRegression, skl.LinearRegression, "reg", "predict"),
    "IncrementalLinearRegression": (linear_model.IncrementalLinearRegression,
                                    skl.LinearRegression, "reg", "predict"),
    "Ridge": (linear_model.Ridge, skl.Ridge, "reg", "predict"),
    "LogisticRegression": (linear_model.LogisticRegression, skl.LogisticRegression, "clf",
                           "predict_proba"),
    "PCA": (lambda: decomposition.PCA(1), lambda: skd.PCA(1), None, "transform"),
    "IncrementalPCA": (lambda: decomposition.IncrementalPCA(1), lambda: skd.IncrementalPCA(1),
                       None, "transform"),
    "KMeans": (lambda: cluster.KMeans(2, n_init=1, random_state=0),
               lambda: skc.KMeans(2, n_init=1, random_state=0), None, "predict"),
    "DBSCAN": (cluster.DBSCAN, skc.DBSCAN, None, None),
    "NearestNeighbors": (lambda: neighbors.NearestNeighbors(n_neighbors=2),
                         lambda: skn.NearestNeighbors(n_neighbors=2), None, "kneighbors"),
    "KNeighborsClassifier": (lambda: neighbors.KNeighborsClassifier(2),
                             lambda: skn.KNeighborsClassifier(2), "clf", "predict"),
    "KNeighborsRegressor": (lambda: neighbors.KNeighborsRegressor(2),
                            lambda: skn.KNeighborsRegressor(2), "reg", "predict"),
    "RandomForestClassifier": (lambda: ensemble.RandomForestClassifier(3, random_state=0),
                               lambda: ske.RandomForestClassifier(3, random_state=0), "clf",
                               "predict"),
    "RandomForestRegressor": (lambda: ensemble.RandomForestRegressor(3, random_state=0),
                              lambda: ske.RandomForestRegressor(3, random_state=0), "reg",
                              "predict"),
    "StandardScaler": (preprocessing.StandardScaler, skp.StandardScaler, None, "transform"),
    "MinMaxScaler": (preprocessing.MinMaxScaler, skp.MinMaxScaler, None, "transform"),
    "MaxAbsScaler": (preprocessing.MaxAbsScaler, skp.MaxAbsScaler, None, "transform"),
    "EmpiricalCovariance": (covariance.EmpiricalCovariance, skcov.EmpiricalCovariance, None,
                            "mahalanobis"),
    "IncrementalEmpiricalCovariance": (covariance.IncrementalEmpiricalCovariance,
                                       skcov.EmpiricalCovariance, None, "mahalanobis"),
}

#: X of another dtype, from the float rows (small integers, so that every string parses)
X_KINDS = {
    "str": lambda X: X.astype(str),
    "bytes": lambda X: X.astype(bytes),
    "object": lambda X: X.astype(object),
    "object-str": lambda X: X.astype(str).astype(object),
    "bool": lambda X: X > 2,
    "complex": lambda X: X + 0j,
    "text": lambda X: np.full(X.shape, "a"),
}
Y_KINDS = {
    "str": lambda y: y.astype(str),
    "object": lambda y: y.astype(object),
    "bool": lambda y: y > 0,
    "complex": lambda y: y + 0j,
}


def _data(comm, kind):
    """All rows (every rank the same) and this rank's bounds: uneven shards, the last rank
    empty when there are several."""
    rng = np.random.RandomState(0)
    sizes = [12 + 5 * r for r in range(comm.size)]
    if comm.size > 1:
        sizes[-1] = 0
    n = sum(sizes)
    X = rng.randint(0, 5, (n, 2)).astype(np.float64)
    y = {"reg": rng.randn(n), "clf": np.arange(n) % 2, None: None}[kind]
    lo = sum(sizes[:comm.rank])
    return X, y, slice(lo, lo + sizes[comm.rank])


def _fit(est, X, y):
    return est.fit(X) if y is None else est.fit(X, y)


def _verdict(call):
    """None if ``call()`` returns, else the exception."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - the verdict is compared, not the cause
            return exc
    return None


def _expect(world, sk_call, spmd_call, what):
    """spmdlearn's verdict on every rank is scikit-learn's: both accept, or both raise the
    same exception type (with scikit-learn's message for the string refusal)."""
    expected = _verdict(sk_call)
    if expected is None:
        got = _verdict(spmd_call)
        assert_all_ranks(world, got is None, f"{what}: scikit-learn accepts, spmdlearn raised "
                                             f"{got!r}")
        return
    match = re.escape("dtype='numeric' is not compatible with arrays of bytes/strings") \
        if "bytes/strings" in str(expected) else None
    assert_raises_on_all_ranks(world, type(expected), spmd_call, match=match)


FIT_CASES = [(name, "X", kind) for name in ESTIMATORS for kind in X_KINDS] + [
    (name, "y", kind) for name, e in ESTIMATORS.items() if e[2] is not None for kind in Y_KINDS]


@pytest.mark.parametrize("name,which,kind", FIT_CASES)
def test_fit_dtype_as_sklearn(world, name, which, kind):
    """X (or y) of another dtype in ``fit``."""
    make, sk_make, targets, _ = ESTIMATORS[name]
    X, y, mine = _data(world, targets)
    if which == "X":
        X = X_KINDS[kind](X)
    else:
        y = Y_KINDS[kind](y)
    ys = None if y is None else y[mine]
    _expect(world, lambda: _fit(sk_make(), X, y), lambda: _fit(make(), X[mine], ys),
            f"{name}.fit on {which} of {kind}")


@pytest.mark.parametrize("kind", X_KINDS)
@pytest.mark.parametrize("name", [n for n, e in ESTIMATORS.items() if e[3] is not None])
def test_predict_X_dtype_as_sklearn(world, name, kind):
    make, sk_make, targets, method = ESTIMATORS[name]
    X, y, mine = _data(world, targets)
    sk, est = _fit(sk_make(), X, y), _fit(make(), X[mine], None if y is None else y[mine])
    Xk = X_KINDS[kind](X)
    _expect(world, lambda: getattr(sk, method)(Xk), lambda: getattr(est, method)(Xk[mine]),
            f"{name}.{method} on X of {kind}")


@pytest.mark.parametrize("name", [n for n, e in ESTIMATORS.items()
                                  if "fit" in getattr(e[0](), "_numeric_X", ())])
def test_strings_on_one_rank_refused_on_every_rank(world, name):
    """Strings on one rank only (the others float): every rank raises, naming that rank; the
    next fit works."""
    if world.size == 1:
        pytest.skip("needs two ranks")
    make, _, targets, _ = ESTIMATORS[name]
    X, y, mine = _data(world, targets)
    bad = 0  # a rank with rows (the last one is empty)
    Xl = X[mine].astype(str) if world.rank == bad else X[mine]
    ys = None if y is None else y[mine]
    assert_raises_on_all_ranks(world, ValueError, lambda: _fit(make(), Xl, ys),
                               match=rf"rank {bad}.*dtype='numeric' is not compatible")
    est = _fit(make(), X[mine], ys)
    assert_all_ranks(world, est.n_features_in_ == 2, "a fit after the refusal")


def test_linear_regression_string_array_refused():
    """The reported case, in one process: scikit-learn refuses it, and so does spmdlearn."""
    X = np.array([["1", "2"], ["3", "4"]])
    with pytest.raises(ValueError, match="dtype='numeric' is not compatible"):
        skl.LinearRegression().fit(X, [1.0, 2.0])
    with pytest.raises(ValueError, match="dtype='numeric' is not compatible"):
        linear_model.LinearRegression().fit(X, [1.0, 2.0])
    with pytest.raises(ValueError, match="dtype='numeric' is not compatible"):
        covariance.EmpiricalCovariance().fit(X)
