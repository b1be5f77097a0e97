"""DBSCAN under mpiexec: scikit-learn's labels on the gathered rows, numbering included."""

import numpy as np
import pytest
from sklearn.cluster import DBSCAN as SkDBSCAN
from sklearn.datasets import make_blobs, make_moons

from spmdlearn.cluster import DBSCAN
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    random_cuts,
)

pytestmark = pytest.mark.mpi


def _check(comm, data, cuts, w=None, **params):
    X_local, w_local = local_rows(cuts, comm.rank, data, w)
    est = DBSCAN(**params).fit(X_local, sample_weight=w_local)
    ref = SkDBSCAN(**params).fit(data, sample_weight=w)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_all_ranks(comm, np.array_equal(est.labels_, ref.labels_[lo:hi]),
                     f"labels_ differ for {params}")
    core = ref.core_sample_indices_
    core = core[(core >= lo) & (core < hi)] - lo
    assert_all_ranks(comm, np.array_equal(est.core_sample_indices_, core), "core_sample_indices_")
    assert_all_ranks(comm, np.array_equal(est.components_, X_local[est.core_sample_indices_]),
                     "components_ are the local core rows")
    return est, ref


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("metric, eps, min_samples, p", [
    ("euclidean", 0.5, 5, None), ("manhattan", 0.8, 10, None), ("chebyshev", 0.45, 4, None),
    ("minkowski", 0.6, 6, 3),
])
@pytest.mark.parametrize("weighted", [False, True])
def test_dbscan_equals_sklearn(comm, seed, metric, eps, min_samples, p, weighted):
    X, _ = make_blobs(n_samples=300, centers=5, n_features=2, random_state=seed)
    rng = np.random.default_rng(seed)
    X = X[rng.permutation(len(X))]  # clusters spread over every rank
    w = rng.uniform(0.2, 2.0, len(X)) if weighted else None
    _check(comm, X, random_cuts(len(X), comm.size, seed), w, eps=eps, min_samples=min_samples,
           metric=metric, p=p)


@pytest.mark.parametrize("seed", range(2))
def test_negative_weights_elsewhere_undo_a_local_core(comm, seed):
    """A row whose own rank's neighbours already reach min_samples is not core when negative
    weights on other ranks take its count below: every rank's weights count."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 2)) * 0.3
    w = np.where(np.arange(80) % 2 == 0, 1.0, -0.5)  # sums exact in any order
    order = np.argsort(np.arange(80) % max(comm.size, 1), kind="stable")  # alternate ranks
    X, w = X[order], w[order]
    cuts = np.linspace(0, 80, comm.size + 1).astype(int)
    est, ref = _check(comm, X, cuts, w, eps=0.4, min_samples=4)
    assert_all_ranks(comm, 0 < len(ref.core_sample_indices_) < 80, "some rows core, some not")


def test_dbscan_moons_and_noise(comm):
    X, _ = make_moons(250, noise=0.1, random_state=0)
    _check(comm, X, random_cuts(250, comm.size, 1), eps=0.12, min_samples=5)


def test_chain_crossing_ranks_many_times(comm):
    """A chain whose consecutive points sit on different ranks: labels must cross ranks
    repeatedly before they settle (several propagation rounds)."""
    t = np.arange(60, dtype=float)
    X = np.column_stack([t * 0.5, np.zeros(60)])
    order = np.argsort(np.arange(60) % max(comm.size, 1), kind="stable")  # round-robin to ranks
    X = X[order]
    cuts = np.linspace(0, 60, comm.size + 1).astype(int)
    est, ref = _check(comm, X, cuts, eps=0.6, min_samples=2)
    assert_all_ranks(comm, set(np.unique(ref.labels_)) == {0}, "one cluster")


def test_border_point_joins_lowest_numbered_cluster(comm):
    """A border point between two clusters joins the one whose lowest core index is lower."""
    left = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0]])
    right = np.array([[1.0, 0.0], [1.1, 0.0], [1.2, 0.0]])
    border = np.array([[0.6, 0.0]])
    X = np.vstack([right, border, left])  # the right cluster has the lower indices
    _check(comm, X, random_cuts(len(X), comm.size, 2), eps=0.41, min_samples=3)


def test_empty_and_all_noise(comm):
    X = np.random.default_rng(0).uniform(0, 100, (40, 2))
    est, _ = _check(comm, X, random_cuts(40, comm.size, 0), eps=0.01, min_samples=2)
    assert_all_ranks(comm, est.components_.shape[1] == 2, "components_ shape when no core")


def test_dbscan_errors_are_collective(comm):
    X = np.random.default_rng(0).normal(size=(5 * comm.size, 2))
    X_local = X[5 * comm.rank: 5 * (comm.rank + 1)]
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: DBSCAN(min_samples=5 * comm.size + 1).fit(X_local),
                               match=rf"min_samples={5 * comm.size + 1} should be <= "
                                     rf"n_samples={5 * comm.size}")
    assert_raises_on_all_ranks(comm, ValueError, lambda: DBSCAN(eps=0.0).fit(X_local),
                               match="'eps' parameter")
    assert_raises_on_all_ranks(comm, NotImplementedError,
                               lambda: DBSCAN(metric="precomputed").fit(X_local),
                               match="not available in spmdlearn")
    bad = X_local.copy()
    if comm.rank == comm.size - 1:
        bad[0, 0] = np.inf
    assert_raises_on_all_ranks(comm, ValueError, lambda: DBSCAN().fit(bad), match="infinity")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("metric, p, apart, spread", [("euclidean", None, 1e160, 1e150),
                                                      ("minkowski", 3, 1e104, 1e100)])
def test_overflowing_distances(comm, metric, p, apart, spread):
    """Clusters whose distances to each other overflow float64: below the metric's limit
    (max ** (1 / p)), scikit-learn's labels (its trees'; its brute force loses these distances
    to cancellation); an eps above it cannot tell which pairs lie within it, and every rank
    raises (scikit-learn's trees join every pair)."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, 60)[:, None] * apart + rng.uniform(0, 1, (60, 2)) * spread
    X[:3] += 100 * apart  # a few rows alone: noise
    cuts = random_cuts(len(X), comm.size, 3)
    est, ref = _check(comm, X, cuts, eps=0.3 * spread, min_samples=4, metric=metric, p=p,
                      algorithm="kd_tree")
    assert_all_ranks(comm, len(set(ref.labels_)) > 2 and -1 in ref.labels_,
                     "clusters and noise")
    X_local = local_rows(cuts, comm.rank, X)
    limit = np.finfo(np.float64).max ** (1 / (p or 2))
    for eps in (1e300, 2 * limit):
        assert_raises_on_all_ranks(
            comm, ValueError, lambda: DBSCAN(eps=eps, metric=metric, p=p).fit(X_local),
            match="overflow float64")
    # the same rows brought closer: any eps, scikit-learn's
    _check(comm, X / apart, cuts, eps=1e300, min_samples=4, metric=metric, p=p,
           algorithm="kd_tree")


@pytest.mark.timeout(60)
def test_cosine_of_rows_whose_norms_overflow_raises_on_every_rank(comm):
    X, _ = make_blobs(n_samples=40, centers=3, n_features=3, random_state=1)
    X[-1] *= 1e160  # on the last non-empty rank: its cosine distances are NaN
    X_local = local_rows(random_cuts(len(X), comm.size, 6), comm.rank, X)
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: DBSCAN(eps=0.1, min_samples=3, metric="cosine").fit(X_local),
                               match="cosine distances .* overflow")


@pytest.mark.timeout(120)
def test_cosine_with_rows_of_zeros(comm):
    # scikit-learn's cosine distance of a row of zeros to any row is 1 (SciPy's is NaN): with
    # eps >= 1 a zero row is every row's neighbour, below it no row's
    rng = np.random.default_rng(5)
    X = rng.normal(size=(80, 3))
    X[[3, 41, 42]] = 0.0
    for eps, min_samples in ((1.0, 70), (0.3, 5), (1.2, 30)):
        _check(comm, X, random_cuts(len(X), comm.size, 7), eps=eps, min_samples=min_samples,
               metric="cosine")
