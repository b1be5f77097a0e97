"""Collective errors: bad input on some ranks raises the same exception type on every rank,
naming the failing ranks and the reason, and never hangs the job."""

import numpy as np
import pytest

import spmdlearn
from spmdlearn.basic_statistics import BasicStatistics
from spmdlearn.comm import CollectiveError
from spmdlearn.covariance import EmpiricalCovariance
from spmdlearn.decomposition import PCA
from spmdlearn.linear_model import LinearRegression, Ridge
from spmdlearn_conformance import assert_all_ranks, assert_raises_on_all_ranks, make_data

pytestmark = pytest.mark.mpi

ESTIMATORS = {
    "BasicStatistics": (BasicStatistics, False),
    "EmpiricalCovariance": (EmpiricalCovariance, False),
    "LinearRegression": (LinearRegression, True),
    "Ridge": (Ridge, True),
    # the covariance solver (co-moments) and a TSQR solver (moments, then R)
    "PCA-covariance_eigh": (lambda: PCA(svd_solver="covariance_eigh"), False),
    "PCA-full": (lambda: PCA(svd_solver="full"), False),
}


def _shard(comm, n_per_rank=6, n_features=3, seed=0):
    X, y = make_data(seed, n_per_rank * comm.size, n_features, 1)
    lo, hi = comm.rank * n_per_rank, (comm.rank + 1) * n_per_rank
    return X[lo:hi].copy(), y[lo:hi].copy()


def _fit(name, X, y):
    cls, supervised = ESTIMATORS[name]
    return (lambda: cls().fit(X, y)) if supervised else (lambda: cls().fit(X))


def _bad_rank_pattern(comm):
    """The last rank is the bad one; with one rank, rank 0."""
    bad = comm.size - 1
    return bad, (rf"rank {bad}" if comm.size > 1 else "")


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("value, reason", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_non_finite_on_one_rank(world, name, value, reason):
    X, y = _shard(world)
    bad, rank_text = _bad_rank_pattern(world)
    if world.rank == bad:
        X[1, 2] = value
    assert_raises_on_all_ranks(world, ValueError, _fit(name, X, y), match=rf"{rank_text}.*{reason}")


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("where", ["X", "y", "X and y", "zero-weight row", "huge column"])
@pytest.mark.parametrize("value, reason", [(np.nan, "NaN"), (-np.inf, "infinity")])
def test_deferred_finite_check_matches_sklearn(world, backend, name, where, value, reason):
    """These fits check finiteness in their one pass over the data (only when its partial is not
    finite): every kind of non-finite input still raises scikit-learn's error on every rank,
    X's before y's, whatever the weights and the other columns' size."""
    cls, supervised = ESTIMATORS[name]
    if "y" in where and not supervised:
        pytest.skip("no y")
    X, y = _shard(world)
    w = np.ones(len(X))
    bad, rank_text = _bad_rank_pattern(world)
    if world.rank == bad:
        if "X" in where or where in ("zero-weight row", "huge column"):
            X[2, 1] = value
        if "y" in where:
            y[3] = value
        if where == "zero-weight row":
            w[2] = 0.0
        if where == "huge column":
            X[:, 0] *= 1e300  # co-moments that overflow even for finite rows
    first = "y" if where == "y" else "X"
    with spmdlearn.config_context(backend=backend):
        fit = (lambda: cls().fit(X, y, sample_weight=w)) if supervised else (
            (lambda: cls().fit(X, sample_weight=w)) if name == "BasicStatistics" else
            (lambda: cls().fit(X)))
        assert_raises_on_all_ranks(world, ValueError, fit,
                                   match=rf"{rank_text}.*Input {first} contains {reason}")


@pytest.mark.parametrize("name", ["EmpiricalCovariance", "LinearRegression",
                                  "PCA-covariance_eigh", "PCA-full"])
def test_deferred_finite_check_message_is_sklearns(world, name):
    """One process: the very message scikit-learn gives for the same rows."""
    from sklearn.covariance import EmpiricalCovariance as SkCov
    from sklearn.decomposition import PCA as SkPCA
    from sklearn.linear_model import LinearRegression as SkLR

    if world.size > 1:
        pytest.skip("one process")
    X, y = _shard(world)
    X[1, 1] = np.nan
    sk = {"EmpiricalCovariance": SkCov, "LinearRegression": SkLR, "PCA-covariance_eigh": SkPCA,
          "PCA-full": SkPCA}[name]
    with pytest.raises(ValueError) as ours:
        _fit(name, X, y)()
    with pytest.raises(ValueError) as theirs:
        (sk().fit(X, y) if name == "LinearRegression" else sk().fit(X))
    assert str(theirs.value) in str(ours.value)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_n_features_differ_across_ranks(world, name):
    if world.size == 1:
        pytest.skip("needs two ranks")
    X, y = _shard(world)
    if world.rank == world.size - 1:
        X = X[:, :2]
    assert_raises_on_all_ranks(world, ValueError, _fit(name, X, y),
                               match=rf"n_features differs across ranks.*rank {world.size - 1}: 2")


@pytest.mark.parametrize("name", ESTIMATORS)
def test_dtype_differs_across_ranks(world, name):
    if world.size == 1:
        pytest.skip("needs two ranks")
    X, y = _shard(world)
    if world.rank == 0:
        X = X.astype(np.float32)
    assert_raises_on_all_ranks(world, ValueError, _fit(name, X, y), match="dtype differs across ranks")


@pytest.mark.parametrize("name", ["LinearRegression", "Ridge"])
def test_y_length_wrong_on_one_rank(world, name):
    X, y = _shard(world)
    bad, rank_text = _bad_rank_pattern(world)
    if world.rank == bad:
        y = y[:-1]
    assert_raises_on_all_ranks(world, ValueError, _fit(name, X, y),
                               match=rf"{rank_text}.*inconsistent numbers of samples")


@pytest.mark.parametrize("name", ["LinearRegression", "Ridge"])
def test_y_missing_on_one_rank(world, name):
    X, y = _shard(world)
    bad, rank_text = _bad_rank_pattern(world)
    if world.rank == bad:
        y = None
    assert_raises_on_all_ranks(world, ValueError, _fit(name, X, y),
                               match=rf"{rank_text}.*requires y to be passed")


@pytest.mark.parametrize("name", ESTIMATORS)
def test_one_dimensional_X(world, name):
    X, y = _shard(world)
    bad, rank_text = _bad_rank_pattern(world)
    if world.rank == bad:
        X = X[:, 0]
    assert_raises_on_all_ranks(world, ValueError, _fit(name, X, y),
                               match=rf"{rank_text}.*Expected 2D array")


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_rank_empty(world, name):
    X, y = _shard(world)
    assert_raises_on_all_ranks(world, ValueError, _fit(name, X[:0], y[:0]),
                               match=rf"n_samples=0 should be >= 1 \(summed over {world.size} rank")


@pytest.mark.parametrize("make", [
    lambda: BasicStatistics(result_options="median"),
    lambda: BasicStatistics(result_options=["mean", "mode"]),
    lambda: EmpiricalCovariance(store_precision="yes"),
    lambda: LinearRegression(fit_intercept=None),
    lambda: Ridge(alpha=-1.0),
    lambda: Ridge(solver="qr"),
])
def test_unknown_parameter_value(world, make):
    X, y = _shard(world)
    est = make()
    fit = (lambda: est.fit(X, y)) if isinstance(est, (LinearRegression, Ridge)) else (lambda: est.fit(X))
    assert_raises_on_all_ranks(world, ValueError, fit)


def test_unsupported_solver_refused_on_every_rank(world):
    X, y = _shard(world)
    assert_raises_on_all_ranks(world, NotImplementedError, lambda: Ridge(solver="sag").fit(X, y),
                               match="solver='sag' is not available")


def test_predict_errors_are_collective(world):
    X, y = _shard(world)
    model = LinearRegression().fit(X, y)
    bad, rank_text = _bad_rank_pattern(world)
    X_bad = X[:, :2] if world.rank == bad else X
    assert_raises_on_all_ranks(world, ValueError, lambda: model.predict(X_bad),
                               match=rf"{rank_text}.*X has 2 features, but LinearRegression is "
                                     "expecting 3 features")


def test_unknown_backend_is_collective_error_listing_installed(world):
    X, y = _shard(world)
    with spmdlearn.config_context(backend="no-such-backend"):
        assert_raises_on_all_ranks(world, ValueError, lambda: LinearRegression().fit(X, y),
                                   match="'no-such-backend' is not an installed backend.*reference")


def test_kernel_failure_on_one_rank_reaches_every_rank(world, monkeypatch):
    """A non-input failure inside a kernel on one rank becomes CollectiveError everywhere."""
    from spmdlearn.reference import _plugin

    original = _plugin.comoments_local
    bad = world.size - 1

    def flaky(X, Y, sample_weight):
        if world.rank == bad:
            raise MemoryError("simulated allocation failure")
        return original(X, Y, sample_weight)

    monkeypatch.setattr(_plugin, "comoments_local", flaky)
    X, y = _shard(world)

    def fit():
        # the patched kernel is the reference's: select it (auto would pick the cpu backend)
        with spmdlearn.config_context(backend="reference"):
            LinearRegression().fit(X, y)

    assert_raises_on_all_ranks(world, (CollectiveError, MemoryError), fit,
                               match="simulated allocation failure")
    # The communicator is still usable afterwards: nothing was left in flight.
    monkeypatch.setattr(_plugin, "comoments_local", original)
    model = LinearRegression().fit(X, y)
    assert_all_ranks(world, model.coef_.shape == (3,), "refit after failure")
