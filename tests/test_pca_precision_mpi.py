"""PCA and IncrementalPCA keep small directions beside large ones, as scikit-learn does, under
mpiexec.

A co-moment (covariance) matrix squares the condition of the rows: with one value of 1e10 among
values of size 1, its small eigenvalues (about 1) sit below the float64 rounding of the large one
(2.5e18) and vanish. scikit-learn's IncrementalPCA and PCA(svd_solver="full") decompose the rows
(SVDs), which keep them; so do spmdlearn's (R factors of the centered rows, merged by QR).
scikit-learn's own covariance_eigh squares the condition too: there spmdlearn matches it to the
rounding of the covariance, no closer.
"""

import numpy as np
import pytest
import sklearn.decomposition

from spmdlearn.decomposition import PCA, IncrementalPCA
from spmdlearn_conformance import assert_all_ranks, assert_identical_on_all_ranks, local_rows, \
    random_cuts

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]

N = 60


def _rows(kind):
    rng = np.random.RandomState(0)
    if kind == "one-huge-value":  # the testers' example
        X = rng.rand(N, 3) + 0.5
        X[5, 1] = 1e10
    elif kind == "graded-columns":  # column scales 1e8, 1, 1e-5: variances span 1e26
        X = rng.randn(N, 3) * np.array([1e8, 1.0, 1e-5])
    elif kind == "huge-row":  # one row far out, the others a small cloud
        X = rng.randn(N, 4)
        X[17] = [3e9, -1e9, 2e9, 5e8]
    else:  # a mean far from the origin and a wide spectrum
        X = 1e9 + rng.randn(N, 3) * np.array([1e4, 1.0, 1e-3])
    return X


KINDS = ("one-huge-value", "graded-columns", "huge-row", "offset")


def _close(ours, theirs, rtol):
    """Every value, small ones included, to ``rtol`` of itself."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return ours.shape == theirs.shape and np.allclose(ours, theirs, rtol=rtol, atol=0)


def _components_close(ours, theirs, atol=1e-4):
    return ours.shape == theirs.shape and np.allclose(ours, theirs, rtol=0, atol=atol)


def _check(comm, est, ref, what, rtol=1e-4):
    for name in ("explained_variance_", "singular_values_"):
        assert_all_ranks(comm, _close(getattr(est, name), getattr(ref, name), rtol),
                         f"{what}.{name}: {getattr(est, name)} vs scikit-learn's "
                         f"{getattr(ref, name)}")
        assert_identical_on_all_ranks(comm, getattr(est, name), name)
    assert_all_ranks(comm, _components_close(est.components_, ref.components_),
                     f"{what}.components_: {est.components_} vs {ref.components_}")
    assert_all_ranks(comm, np.allclose(est.mean_, ref.mean_, rtol=1e-12, atol=0),
                     f"{what}.mean_")
    assert_all_ranks(comm, np.allclose(est.explained_variance_ratio_,
                                       ref.explained_variance_ratio_, rtol=rtol, atol=1e-300),
                     f"{what}.explained_variance_ratio_: {est.explained_variance_ratio_} vs "
                     f"{ref.explained_variance_ratio_}")


@pytest.mark.parametrize("seed", [0, 1, 3])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_size", [None, 7])
def test_incremental_pca_keeps_small_directions(comm, kind, batch_size, seed):
    X = _rows(kind)
    X_local = local_rows(random_cuts(N, comm.size, seed), comm.rank, X)
    est = IncrementalPCA(batch_size=batch_size).fit(X_local)
    # scikit-learn's SVD of all rows in one batch (no truncation between batches)
    ref = sklearn.decomposition.IncrementalPCA(batch_size=N).fit(X)
    _check(comm, est, ref, f"IncrementalPCA(batch_size={batch_size}) on {kind}")
    # var_ rounds as its centered values do (eps * 1e9 beside deviations of 1e-3 for "offset")
    assert_all_ranks(comm, np.allclose(est.var_, ref.var_, rtol=1e-3, atol=0),
                     f"var_ on {kind}: {est.var_} vs {ref.var_}")


@pytest.mark.parametrize("kind", KINDS)
def test_incremental_pca_partial_fit_keeps_small_directions(comm, kind):
    """Several partial_fit calls per rank (a rank with none), then finalize_fit."""
    X = _rows(kind)
    X_local = local_rows(random_cuts(N, comm.size, 3), comm.rank, X)
    est = IncrementalPCA()
    for lo in range(0, len(X_local), 4):
        est.partial_fit(X_local[lo:lo + 4])
    est.finalize_fit()
    ref = sklearn.decomposition.IncrementalPCA(batch_size=N).fit(X)
    _check(comm, est, ref, f"IncrementalPCA.partial_fit on {kind}")
    # scikit-learn's own batch-by-batch merges (no truncation: all components kept)
    ref_batches = sklearn.decomposition.IncrementalPCA(batch_size=4).fit(X)
    _check(comm, est, ref_batches, f"IncrementalPCA.partial_fit on {kind} (batches)")


@pytest.mark.parametrize("kind", KINDS)
def test_pca_full_keeps_small_directions(comm, kind):
    X = _rows(kind)
    X_local = local_rows(random_cuts(N, comm.size, 1), comm.rank, X)
    est = PCA(svd_solver="full").fit(X_local)
    ref = sklearn.decomposition.PCA(svd_solver="full").fit(X)
    _check(comm, est, ref, f"PCA(svd_solver='full') on {kind}")


@pytest.mark.parametrize("solver", ["covariance_eigh", "auto"])
@pytest.mark.parametrize("kind", KINDS)
def test_pca_covariance_solvers_are_sklearns_to_its_rounding(comm, kind, solver):
    """scikit-learn's covariance_eigh (and "auto", which picks it for these shapes) squares the
    condition too: its small variances are rounding of the largest (or of the raw second
    moments); ours (from centered co-moments) agree to that rounding, the large ones closely."""
    X = _rows(kind)
    X_local = local_rows(random_cuts(N, comm.size, 1), comm.rank, X)
    est = PCA(svd_solver=solver).fit(X_local)
    ref = sklearn.decomposition.PCA(svd_solver=solver).fit(X)
    ours, theirs = est.explained_variance_, ref.explained_variance_
    # scikit-learn forms the raw X^T X, then subtracts n mean mean^T: its rounding is that of
    # the raw second moments (far from the origin, much larger than the variances)
    raw = max(theirs.max(), (X ** 2).sum(axis=0).max() / (N - 1))
    rounding = N * np.finfo(np.float64).eps * raw * 10
    assert_all_ranks(comm, ours.shape == theirs.shape and np.allclose(
        ours, theirs, rtol=1e-6, atol=rounding), f"{solver} on {kind}: {ours} vs {theirs}")
    assert_all_ranks(comm, np.allclose(est.components_[0], ref.components_[0], atol=1e-4),
                     f"{solver} on {kind}: first component")
