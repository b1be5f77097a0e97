"""The four foundation estimators under mpiexec: agreement with scikit-learn on the gathered
data, partition invariance, numerics, and identical models on every rank.

Each test runs on the library's COMM_WORLD duplicate, on COMM_SELF (each rank alone with all
rows) and on a split of the world in two (the ``comm`` fixture).
"""

import numpy as np
import pytest
import sklearn.covariance as skcov
import sklearn.linear_model as sklin

from spmdlearn.basic_statistics import BasicStatistics
from spmdlearn.covariance import EmpiricalCovariance
from spmdlearn.linear_model import LinearRegression, Ridge
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_identical_on_all_ranks,
    local_rows,
    make_data,
    random_cuts,
    tolerance,
)

pytestmark = pytest.mark.mpi

DTYPES = [np.float64, np.float32]
STAT_OPTIONS = ("min", "max", "sum", "mean", "variance", "variation", "sum_squares",
                "sum_squares_centered", "standard_deviation", "second_order_raw_moment")


def _numpy_statistics(Z):
    mean = Z.mean(0)
    std = Z.std(0, ddof=1)
    return {
        "min": Z.min(0), "max": Z.max(0), "sum": Z.sum(0), "mean": mean,
        "variance": Z.var(0, ddof=1), "variation": std / mean,
        "sum_squares": (Z ** 2).sum(0), "sum_squares_centered": ((Z - mean) ** 2).sum(0),
        "standard_deviation": std, "second_order_raw_moment": (Z ** 2).mean(0),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_basic_statistics_agree_with_numpy(comm, dtype, weighted, seed):
    X, _ = make_data(seed, 97, 6, dtype=dtype)
    w = np.random.default_rng(seed).uniform(-0.5, 1.5, 97).astype(dtype) if weighted else None
    cuts = random_cuts(len(X), comm.size, seed)
    X_local, w_local = local_rows(cuts, comm.rank, X, w)
    est = BasicStatistics().fit(X_local, sample_weight=w_local)
    Z = X.astype(np.float64) * (1 if w is None else w.astype(np.float64)[:, None])
    expected = _numpy_statistics(Z)
    rtol = tolerance("BasicStatistics", dtype)
    for name in STAT_OPTIONS:
        value = getattr(est, name + "_")
        assert_allclose_all_ranks(comm, value, expected[name], rtol=rtol, what=name)
        assert_identical_on_all_ranks(comm, value, name)
        assert_all_ranks(comm, value.dtype == dtype, f"{name} dtype")
    assert_allclose_all_ranks(comm, est.n_samples_, 97, rtol=0, what="n_samples_")


def test_basic_statistics_result_options_subset(comm):
    X, _ = make_data(3, 40, 3)
    X_local = local_rows(random_cuts(40, comm.size, 3), comm.rank, X)
    est = BasicStatistics(result_options=["mean", "max"]).fit(X_local)
    assert_allclose_all_ranks(comm, est.mean_, X.mean(0), rtol=1e-12, what="mean")
    assert_all_ranks(comm, not hasattr(est, "variance_"), "no variance_")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("assume_centered", [False, True])
@pytest.mark.parametrize("seed", [0, 4])
def test_empirical_covariance_agrees_with_sklearn(comm, dtype, assume_centered, seed):
    X, _ = make_data(seed, 83, 5, dtype=dtype)
    X_test, _ = make_data(seed + 100, 31, 5, dtype=dtype)
    cuts = random_cuts(len(X), comm.size, seed)
    test_cuts = random_cuts(len(X_test), comm.size, seed + 1)
    est = EmpiricalCovariance(assume_centered=assume_centered).fit(local_rows(cuts, comm.rank, X))
    ref = skcov.EmpiricalCovariance(assume_centered=assume_centered).fit(X.astype(np.float64))
    rtol = tolerance("EmpiricalCovariance", dtype)
    for name in ("covariance_", "location_", "precision_"):
        assert_allclose_all_ranks(comm, getattr(est, name), getattr(ref, name), rtol=rtol, what=name)
        assert_identical_on_all_ranks(comm, getattr(est, name), name)
    local_test = local_rows(test_cuts, comm.rank, X_test)
    score = est.score(local_test)
    assert_allclose_all_ranks(comm, score, ref.score(X_test.astype(np.float64)), rtol=rtol * 10,
                              what="score")
    assert_identical_on_all_ranks(comm, score, "score")
    lo, hi = test_cuts[comm.rank], test_cuts[comm.rank + 1]
    expected = ref.mahalanobis(X_test.astype(np.float64))[lo:hi]
    assert_allclose_all_ranks(comm, est.mahalanobis(local_test), expected, rtol=rtol * 10,
                              what="mahalanobis")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("n_targets", [1, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_linear_regression_agrees_with_sklearn(comm, dtype, fit_intercept, n_targets, weighted):
    seed = 7 + n_targets
    X, y = make_data(seed, 120, 8, n_targets, dtype=dtype)
    w = np.random.default_rng(seed).uniform(0, 3, 120).astype(dtype) if weighted else None
    cuts = random_cuts(len(X), comm.size, seed)
    X_local, y_local, w_local = local_rows(cuts, comm.rank, X, y, w)
    est = LinearRegression(fit_intercept=fit_intercept).fit(X_local, y_local, sample_weight=w_local)
    ref = sklin.LinearRegression(fit_intercept=fit_intercept).fit(
        X.astype(np.float64), y.astype(np.float64), sample_weight=w)
    rtol = tolerance("LinearRegression", dtype)
    for name in ("coef_", "intercept_", "singular_"):
        assert_allclose_all_ranks(comm, getattr(est, name), getattr(ref, name), rtol=rtol, what=name)
        assert_identical_on_all_ranks(comm, getattr(est, name), name)
    assert_allclose_all_ranks(comm, est.rank_, ref.rank_, rtol=0, what="rank_")
    assert_all_ranks(comm, np.asarray(est.coef_).dtype == dtype, "dtype")
    pred = est.predict(X_local)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_allclose_all_ranks(comm, pred, ref.predict(X.astype(np.float64))[lo:hi], rtol=rtol,
                              what="predict")
    score = est.score(X_local, y_local, sample_weight=w_local)
    assert_allclose_all_ranks(comm, score, ref.score(X.astype(np.float64), y, sample_weight=w),
                              rtol=rtol, what="score")
    assert_identical_on_all_ranks(comm, score, "score")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [0.5, "per-target"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_agrees_with_sklearn(comm, dtype, alpha, fit_intercept):
    X, y = make_data(11, 90, 6, 2, dtype=dtype)
    alpha = np.array([0.3, 30.0]) if alpha == "per-target" else alpha
    w = np.random.default_rng(11).uniform(0.1, 2, 90).astype(dtype)
    cuts = random_cuts(len(X), comm.size, 11)
    X_local, y_local, w_local = local_rows(cuts, comm.rank, X, y, w)
    est = Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X_local, y_local, sample_weight=w_local)
    ref = sklin.Ridge(alpha=alpha, fit_intercept=fit_intercept, solver="cholesky").fit(
        X.astype(np.float64), y.astype(np.float64), sample_weight=w.astype(np.float64))
    rtol = tolerance("Ridge", dtype)
    for name in ("coef_", "intercept_"):
        assert_allclose_all_ranks(comm, getattr(est, name), getattr(ref, name), rtol=rtol, what=name)
        assert_identical_on_all_ranks(comm, getattr(est, name), name)


def test_linear_regression_rank_deficient_min_norm(comm):
    """Collinear columns and fewer rows per rank than features: scikit-learn's minimum-norm fit."""
    rng = np.random.default_rng(5)
    base = rng.normal(size=(30, 4))
    X = np.hstack([base, base[:, :2] * 2.0, base[:, :1] - base[:, 1:2]])  # rank 4 of 7
    y = base @ rng.normal(size=4) + 0.01 * rng.normal(size=30)
    cuts = np.linspace(0, 30, comm.size + 1).astype(int)  # 30 / 4 ranks < 7 features each
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    est = LinearRegression().fit(X_local, y_local)
    ref = sklin.LinearRegression().fit(X, y)
    assert_allclose_all_ranks(comm, est.rank_, ref.rank_, rtol=0, what="rank_")
    assert_allclose_all_ranks(comm, est.coef_, ref.coef_, rtol=1e-6, what="min-norm coef_")
    assert_allclose_all_ranks(comm, est.intercept_, ref.intercept_, rtol=1e-6, what="intercept_")


def test_linear_regression_positive(comm):
    X, y = make_data(12, 80, 5, 1)
    cuts = random_cuts(80, comm.size, 12)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    est = LinearRegression(positive=True).fit(X_local, y_local)
    ref = sklin.LinearRegression(positive=True).fit(X, y)
    assert_allclose_all_ranks(comm, est.coef_, ref.coef_, rtol=1e-7, what="coef_")
    assert_all_ranks(comm, np.all(est.coef_ >= 0), "non-negative")


@pytest.mark.parametrize("seed", range(4))
def test_partition_invariance(comm, seed):
    """Any split of the rows (empty ranks included) gives the same models, up to rounding."""
    X, y = make_data(20 + seed, 60, 4, 1)
    cuts_a = random_cuts(60, comm.size, seed)
    cuts_b = random_cuts(60, comm.size, seed + 50)
    fits = []
    for cuts in (cuts_a, cuts_b):
        X_local, y_local = local_rows(cuts, comm.rank, X, y)
        fits.append((LinearRegression().fit(X_local, y_local).coef_,
                     EmpiricalCovariance().fit(X_local).covariance_,
                     BasicStatistics().fit(X_local).variance_,
                     Ridge(alpha=2.0).fit(X_local, y_local).coef_))
    for name, a, b in zip(("linreg", "cov", "stats", "ridge"), *fits):
        assert_allclose_all_ranks(comm, a, b, rtol=1e-12, what=name)


def test_large_offset_numerics(comm):
    """Mean 1e8, spread 1: variance and covariance within 1e-6 (a naive sum of squares fails)."""
    rng = np.random.default_rng(9)
    X = 1e8 + rng.normal(size=(400, 3))
    cuts = random_cuts(400, comm.size, 9)
    X_local = local_rows(cuts, comm.rank, X)
    centered = X - X.mean(0)
    exact_var = (centered ** 2).sum(0) / 399
    exact_cov = centered.T @ centered / 400
    stats = BasicStatistics(result_options=["variance"]).fit(X_local)
    cov = EmpiricalCovariance().fit(X_local)
    assert_allclose_all_ranks(comm, stats.variance_, exact_var, rtol=1e-6, what="variance")
    assert_allclose_all_ranks(comm, cov.covariance_, exact_cov, rtol=1e-6, what="covariance")
    # The naive formula loses every digit here: the check has teeth.
    naive = ((X ** 2).sum(0) - 400 * X.mean(0) ** 2) / 399
    assert np.max(np.abs(naive - exact_var) / exact_var) > 1e-6


def test_predict_on_empty_rank(comm):
    X, y = make_data(13, 40, 3, 1)
    cuts = np.array([0] * comm.size + [40])  # every rows on the last rank
    model = LinearRegression().fit(*local_rows(cuts, comm.rank, X, y))
    empty = model.predict(X[:0])
    assert_all_ranks(comm, empty.shape == (0,), "empty predict")
