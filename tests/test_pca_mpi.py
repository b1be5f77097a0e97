"""PCA under mpiexec: scikit-learn's answer on the gathered data, for both exact solvers."""

import numpy as np
import pytest
from sklearn.decomposition import PCA as SkPCA

from spmdlearn.decomposition import PCA
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_identical_on_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    random_cuts,
)

pytestmark = pytest.mark.mpi

ATTRIBUTES = ("components_", "explained_variance_", "explained_variance_ratio_",
              "singular_values_", "mean_", "noise_variance_")


def _data(n, d, seed=0, dtype=np.float64, offset=5.0):
    rng = np.random.default_rng(seed)
    # A spectrum with distinct values, so that every component is well defined.
    return (rng.normal(size=(n, d)) * np.linspace(3.0, 0.3, d) + offset).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("solver", ["full", "covariance_eigh"])
@pytest.mark.parametrize("n_components", [None, 3, 0.85, "mle"])
@pytest.mark.parametrize("whiten", [False, True])
def test_pca_agrees_with_sklearn(comm, dtype, solver, n_components, whiten):
    X = _data(150, 7, dtype=dtype)
    cuts = random_cuts(len(X), comm.size, 2)
    X_local = local_rows(cuts, comm.rank, X)
    est = PCA(n_components=n_components, svd_solver=solver, whiten=whiten).fit(X_local)
    ref = SkPCA(n_components=n_components, svd_solver=solver, whiten=whiten).fit(
        X.astype(np.float64))
    rtol = 1e-7 if dtype == np.float64 else 1e-4
    assert_all_ranks(comm, est.n_components_ == ref.n_components_, "n_components_")
    assert_all_ranks(comm, est.n_samples_ == 150, "n_samples_ is global")
    for name in ATTRIBUTES:
        assert_allclose_all_ranks(comm, getattr(est, name), getattr(ref, name), rtol=rtol, what=name)
        assert_identical_on_all_ranks(comm, getattr(est, name), name)
    assert_all_ranks(comm, est.components_.dtype == dtype, "dtype preserved")
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    Xf = X.astype(np.float64)
    assert_allclose_all_ranks(comm, est.transform(X_local), ref.transform(Xf)[lo:hi],
                              rtol=rtol * 10, what="transform")
    assert_allclose_all_ranks(comm, est.inverse_transform(est.transform(X_local)),
                              ref.inverse_transform(ref.transform(Xf))[lo:hi], rtol=rtol * 10,
                              what="inverse_transform")
    assert_allclose_all_ranks(comm, est.score_samples(X_local), ref.score_samples(Xf)[lo:hi],
                              rtol=rtol * 10, what="score_samples")
    assert_allclose_all_ranks(comm, est.score(X_local), ref.score(Xf), rtol=rtol * 10, what="score")
    assert_allclose_all_ranks(comm, est.get_covariance(), ref.get_covariance(), rtol=rtol * 10,
                              what="get_covariance")


def test_auto_solver_decides_from_global_shape(comm):
    """Few rows per rank, many in total: 'auto' must pick covariance_eigh from the global shape."""
    X = _data(60, 5)
    cuts = np.linspace(0, 60, comm.size + 1).astype(int)
    est = PCA().fit(local_rows(cuts, comm.rank, X))
    assert_all_ranks(comm, est._fit_svd_solver == "covariance_eigh", "auto solver")
    X_wide = _data(12, 5)
    est = PCA(n_components=2).fit(local_rows(random_cuts(12, comm.size, 1), comm.rank, X_wide))
    assert_all_ranks(comm, est._fit_svd_solver == "full", "auto solver (wide)")


def test_full_solver_keeps_small_components_of_ill_conditioned_data(comm):
    """TSQR keeps singular values that the covariance squares below rounding."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 4)) * np.array([1.0, 1e-3, 1e-6, 1e-9]) + 1.0
    cuts = random_cuts(200, comm.size, 3)
    est = PCA(svd_solver="full").fit(local_rows(cuts, comm.rank, X))
    ref = SkPCA(svd_solver="full").fit(X)
    assert_allclose_all_ranks(comm, est.singular_values_[-1], ref.singular_values_[-1], rtol=1e-6,
                              what="smallest singular value")


def test_wide_data_and_fewer_rows_per_rank_than_features(comm):
    X = _data(9, 20, seed=4)
    cuts = random_cuts(9, comm.size, 4)
    est = PCA(n_components=3, svd_solver="full").fit(local_rows(cuts, comm.rank, X))
    ref = SkPCA(n_components=3, svd_solver="full").fit(X)
    for name in ("components_", "singular_values_", "explained_variance_ratio_"):
        assert_allclose_all_ranks(comm, getattr(est, name), getattr(ref, name), rtol=1e-7, what=name)


def test_pca_errors_are_collective(comm):
    X = _data(8 * comm.size, 4)
    X_local = X[8 * comm.rank: 8 * (comm.rank + 1)]
    assert_raises_on_all_ranks(comm, ValueError, lambda: PCA(n_components=5).fit(X_local),
                               match=r"n_components=5 must be between 0 and min\(n_samples, "
                                     r"n_features\)=4")
    assert_raises_on_all_ranks(comm, NotImplementedError,
                               lambda: PCA(svd_solver="randomized").fit(X_local),
                               match="not available in spmdlearn")
    small = X_local[:1] if comm.rank == 0 else X_local[:0]
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: PCA(n_components="mle").fit(small),
                               match="only supported if n_samples >= n_features")
    bad = X_local.copy()
    if comm.rank == comm.size - 1:
        bad[0, 0] = np.nan
    assert_raises_on_all_ranks(comm, ValueError, lambda: PCA().fit(bad), match="NaN")
