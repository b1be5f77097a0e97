"""Rank-deficient and ill-conditioned systems: the same answer at every rank count and split.

The rank of a design is decided once, from one decomposition, with scikit-learn's cutoff
(``LinearRegression(tol)`` is ``scipy.linalg.lstsq``'s ``cond``), far above the rounding that
differs between splits of the rows; the solution is then scikit-learn's minimum-norm one.
"""

import warnings

import numpy as np
import pytest
import sklearn.covariance as skcov
import sklearn.linear_model as sklin
from sklearn.decomposition import PCA as SkPCA

from spmdlearn.covariance import EmpiricalCovariance
from spmdlearn.decomposition import PCA
from spmdlearn.linear_model import IncrementalLinearRegression, LinearRegression, Ridge
from spmdlearn_conformance import assert_all_ranks, assert_allclose_all_ranks, local_rows, random_cuts

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]

SPLITS = range(6)


def _collinear(n=40, seed=0):
    """``x2 = x0 + x1`` exactly, with an intercept in ``y``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    X = np.column_stack([X, X[:, 0] + X[:, 1]])
    y = X[:, 0] - 2.0 * X[:, 1] + 3.0 + 0.1 * rng.normal(size=n)
    return X, y


@pytest.mark.parametrize("split", SPLITS)
def test_linear_regression_collinear_min_norm(comm, split):
    X, y = _collinear()
    ref = sklin.LinearRegression().fit(X, y)
    cuts = random_cuts(len(X), comm.size, split)
    est = LinearRegression().fit(*local_rows(cuts, comm.rank, X, y))
    assert_allclose_all_ranks(comm, est.rank_, ref.rank_, rtol=0, what="rank_")
    assert_allclose_all_ranks(comm, est.coef_, ref.coef_, rtol=1e-9, what="coef_")
    assert_allclose_all_ranks(comm, np.linalg.norm(est.coef_), np.linalg.norm(ref.coef_),
                              rtol=1e-9, what="norm of coef_")
    assert_allclose_all_ranks(comm, est.intercept_, ref.intercept_, rtol=1e-9, what="intercept_")


@pytest.mark.parametrize("split", SPLITS)
def test_incremental_linear_regression_collinear_min_norm(comm, split):
    X, y = _collinear()
    ref = sklin.LinearRegression().fit(X, y)
    cuts = random_cuts(len(X), comm.size, split)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    est = IncrementalLinearRegression()
    for lo in range(0, len(X_local), 7):  # several batches; an empty rank makes no call
        est.partial_fit(X_local[lo:lo + 7], y_local[lo:lo + 7])
    est.finalize_fit()
    assert_allclose_all_ranks(comm, est.rank_, ref.rank_, rtol=0, what="rank_")
    assert_allclose_all_ranks(comm, est.coef_, ref.coef_, rtol=1e-9, what="coef_")


@pytest.mark.parametrize("tol", [1e-6, 1e-2])
def test_linear_regression_tol_is_the_rank_cutoff(comm, tol):
    """A column that is nearly collinear (relative 1e-4): full rank at tol=1e-6, rank-deficient
    at tol=1e-2, as scikit-learn's lstsq(cond=tol) decides."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 2))
    X = np.column_stack([X, X[:, 0] + X[:, 1] + 1e-4 * rng.normal(size=50)])
    y = X @ np.array([1.0, 2.0, -1.0]) + rng.normal(size=50)
    ref = sklin.LinearRegression(tol=tol).fit(X, y)
    cuts = random_cuts(50, comm.size, 4)
    est = LinearRegression(tol=tol).fit(*local_rows(cuts, comm.rank, X, y))
    assert_allclose_all_ranks(comm, est.rank_, ref.rank_, rtol=0, what="rank_")
    assert_allclose_all_ranks(comm, est.coef_, ref.coef_, rtol=1e-6, what="coef_")


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("alpha", [1e-2, 1e-5, 1e-8, 0.0])
def test_ridge_alpha_to_zero_on_collinear_columns(comm, split, alpha):
    """Ridge tends to the minimum-norm least squares as alpha -> 0, for every split."""
    X, y = _collinear()
    cuts = random_cuts(len(X), comm.size, split)
    est = Ridge(alpha=alpha).fit(*local_rows(cuts, comm.rank, X, y))
    if alpha > 0:
        expected = sklin.Ridge(alpha=alpha, solver="svd").fit(X, y).coef_
    else:
        expected = sklin.LinearRegression().fit(X, y).coef_
    # The error along the null direction is rounding / alpha: 1e-14 / alpha at most.
    rtol = max(1e-9, 1e-13 / alpha) if alpha else 1e-9
    assert_allclose_all_ranks(comm, est.coef_, expected, rtol=rtol, what=f"alpha={alpha}")
