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


def _close(comm, actual, desired, *, rtol, atol, what):
    """Collective: ``|actual - desired| <= atol + rtol * |desired|`` elementwise, on every rank."""
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    ok = actual.shape == desired.shape and bool(np.allclose(actual, desired, rtol=rtol, atol=atol))
    error = np.max(np.abs(actual - desired), initial=0.0) if actual.shape == desired.shape else None
    assert_all_ranks(comm, ok, f"{what}: {actual!r} vs scikit-learn's {desired!r} "
                     f"(max abs error {error})")


# -- PCA, EmpiricalCovariance and precision matrices on singular data --------------------------

def _low_rank(n=60, d=6, rank=3, scale=1.0, seed=0):
    """Rows of exact rank ``rank`` (plus the mean), every column non-constant."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d))
    return scale * X + 5.0 * scale


@pytest.mark.parametrize("split", [0, 4])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
@pytest.mark.parametrize("solver", ["full", "covariance_eigh"])
def test_pca_on_singular_data_decides_rank_like_sklearn(comm, split, scale, solver):
    """The spectrum, its numerical rank and every choice made from it (``n_components='mle'``,
    a variance fraction, ``noise_variance_``) are scikit-learn's (exact SVD of the rows) at
    every rank count, whichever solver forms the spectrum."""
    X = _low_rank(scale=scale)
    ref = SkPCA(svd_solver="full").fit(X)
    top = ref.explained_variance_[0]
    cuts = random_cuts(len(X), comm.size, split)
    X_local = local_rows(cuts, comm.rank, X)
    est = PCA(svd_solver=solver).fit(X_local)
    _close(comm, est.explained_variance_, ref.explained_variance_,
           rtol=1e-9, atol=1e-12 * top, what="explained_variance_")
    _close(comm, est.components_[:3], ref.components_[:3], rtol=1e-7,
           atol=1e-9, what="components_ of the non-null directions")
    for n_components in ("mle", 0.999999, 3, 5):
        ref_k = SkPCA(n_components, svd_solver="full").fit(X)
        got = PCA(n_components, svd_solver=solver).fit(X_local)
        _close(comm, got.n_components_, ref_k.n_components_, rtol=0, atol=0,
               what=f"n_components_ for n_components={n_components!r}")
        _close(comm, got.noise_variance_, ref_k.noise_variance_, rtol=1e-9,
               atol=1e-12 * top, what=f"noise_variance_ ({n_components!r})")
    # Below the rank, the generative model is well-defined: its precision is scikit-learn's.
    ref2 = SkPCA(2, svd_solver="full").fit(X)
    got2 = PCA(2, svd_solver=solver).fit(X_local)
    _close(comm, got2.get_precision(), ref2.get_precision(), rtol=1e-7,
           atol=1e-9 / scale ** 2, what="get_precision below the rank")
    _close(comm, got2.score_samples(X_local), local_rows(cuts, comm.rank, ref2.score_samples(X)),
           rtol=1e-7, atol=1e-7, what="score_samples below the rank")


@pytest.mark.parametrize("split", [0, 1, 4])
@pytest.mark.parametrize("case", ["collinear", "low_rank", "constant_column"])
def test_empirical_covariance_precision_on_singular_data(comm, split, case):
    """``precision_`` is the pseudo-inverse with ``pinvh``'s cutoff (scikit-learn's), so the
    null directions are dropped at every rank count; Mahalanobis distances follow."""
    if case == "collinear":
        X = _collinear()[0]
    elif case == "low_rank":
        X = _low_rank()
    else:
        X = np.column_stack([_low_rank(d=3, rank=3), np.full(60, 7.0)])
    ref = skcov.EmpiricalCovariance().fit(X)
    cuts = random_cuts(len(X), comm.size, split)
    X_local = local_rows(cuts, comm.rank, X)
    est = EmpiricalCovariance().fit(X_local)
    scale = np.abs(ref.precision_).max()
    _close(comm, est.covariance_, ref.covariance_, rtol=1e-10, atol=1e-13,
           what="covariance_")
    _close(comm, est.precision_, ref.precision_, rtol=1e-7,
           atol=1e-9 * scale, what="precision_ (pseudo-inverse)")
    _close(comm, est.mahalanobis(X_local), local_rows(cuts, comm.rank, ref.mahalanobis(X)),
           rtol=1e-7, atol=1e-7, what="mahalanobis")


@pytest.mark.parametrize("split", [0, 4])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_incremental_pca_on_singular_data(comm, split, scale):
    """IncrementalPCA forms its spectrum from co-moments: null directions are exactly 0, as
    scikit-learn's (SVD of the rows) are to rounding, at every rank count and batch size."""
    from sklearn.decomposition import IncrementalPCA as SkIncrementalPCA

    from spmdlearn.decomposition import IncrementalPCA

    X = _low_rank(scale=scale)
    ref = SkIncrementalPCA(5, batch_size=len(X)).fit(X)
    top = ref.explained_variance_[0]
    cuts = random_cuts(len(X), comm.size, split)
    est = IncrementalPCA(5, batch_size=7).fit(local_rows(cuts, comm.rank, X))
    _close(comm, est.explained_variance_, ref.explained_variance_, rtol=1e-9,
           atol=1e-12 * top, what="explained_variance_")
    _close(comm, est.noise_variance_, ref.noise_variance_, rtol=1e-9, atol=1e-12 * top,
           what="noise_variance_")
    _close(comm, est.components_[:3], ref.components_[:3], rtol=1e-7, atol=1e-9,
           what="components_ of the non-null directions")


@pytest.mark.parametrize("split", [0, 4])
@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
@pytest.mark.parametrize("penalty", [{"penalty": None}, {"C": 1e6}, {"C": 1.0}])
def test_logistic_steps_on_collinear_columns(comm, split, solver, penalty):
    """With ``x2 = x0 + x1`` and no or a vanishing penalty, the Hessian is singular: the
    quasi-Newton and Newton-CG steps stay in the row space (as scikit-learn's do), so the
    coefficients are scikit-learn's at every rank count instead of drifting along the null
    direction."""
    X = _collinear(n=80, seed=1)[0]
    y = (X[:, 0] - X[:, 1] + 0.5 * np.random.default_rng(1).normal(size=80) > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = sklin.LogisticRegression(solver=solver, max_iter=1000, **penalty).fit(X, y)
        from spmdlearn.linear_model import LogisticRegression

        cuts = random_cuts(len(X), comm.size, split)
        X_local, y_local = local_rows(cuts, comm.rank, X, y)
        est = LogisticRegression(solver=solver, max_iter=1000, **penalty).fit(X_local, y_local)
    # scikit-learn's own tolerance (tol=1e-4 on the gradient) bounds how far two runs may end
    _close(comm, est.coef_, ref.coef_, rtol=1e-4, atol=1e-4, what="coef_")
    _close(comm, est.coef_ @ np.array([1.0, 1.0, -1.0]), 0.0 * ref.coef_[:, 0]
           + ref.coef_ @ np.array([1.0, 1.0, -1.0]), rtol=0, atol=1e-6,
           what="coef_ along the null direction (x0 + x1 - x2)")
    _close(comm, est.predict_proba(X_local), local_rows(cuts, comm.rank, ref.predict_proba(X)), rtol=0, atol=1e-5,
           what="predict_proba")
