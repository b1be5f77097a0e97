"""k-means under ties: scikit-learn's choices on the gathered rows, for any split of the rows.

Ties come from duplicated rows and from rows on integer grids: several rows equally far from
their centers when an empty cluster is relocated, more clusters than distinct rows, and rows
equally near two centers. scikit-learn's rules (``_k_means_common.pyx``/``_k_means_lloyd.pyx``):
relocation to ``np.argpartition(distances, -n_empty)[:-n_empty-1:-1]`` unless every row sits on
its center; an empty cluster then takes the heaviest cluster's center; strict convergence when
no label changed; the lowest center index among equally near centers.
"""

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans

from spmdlearn.cluster import KMeans
from spmdlearn_conformance import assert_all_ranks, assert_allclose_all_ranks, local_rows

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]


def _cuts(comm, n, seed):
    """Uneven shards with rank 1 empty (with one rank, all rows)."""
    weights = np.random.default_rng(seed).uniform(0.3, 1.7, comm.size)
    if comm.size > 1:
        weights[1] = 0.0
    inner = np.round(np.cumsum(weights)[:-1] / weights.sum() * n).astype(int)
    return np.concatenate([[0], inner, [n]])


def _compare(comm, est, ref, cuts, what):
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_all_ranks(comm, np.array_equal(est.labels_, ref.labels_[lo:hi]), f"{what}: labels_")
    assert_allclose_all_ranks(comm, est.cluster_centers_, ref.cluster_centers_, rtol=1e-12,
                              what=f"{what}: cluster_centers_")
    assert_allclose_all_ranks(comm, est.inertia_, ref.inertia_, rtol=1e-12, what=f"{what}: inertia_")
    assert_all_ranks(comm, est.n_iter_ == ref.n_iter_,
                     f"{what}: n_iter_ {est.n_iter_} != scikit-learn's {ref.n_iter_}")


def test_relocation_among_equally_far_rows(comm):
    """Two empty clusters, three rows tie as farthest: scikit-learn's pick, inertia 0.5."""
    X = np.array([0.0, 1.0, 4.0, 6.0, 18.0, 20.0])[:, None]
    init = np.array([2.0, 6.0, 10.0, 14.0, 18.0])[:, None]
    cuts = _cuts(comm, len(X), 1)
    est = KMeans(5, init=init, n_init=1).fit(local_rows(cuts, comm.rank, X))
    ref = SkKMeans(5, init=init, n_init=1).fit(X)
    _compare(comm, est, ref, cuts, "six points")
    assert_allclose_all_ranks(comm, est.inertia_, 0.5, rtol=1e-12, what="inertia_")
    # Rows equally near two centers take the lower center index, in predict too.
    grid = np.arange(-2.0, 23.0, 0.5)[:, None]
    grid_cuts = _cuts(comm, len(grid), 2)
    lo, hi = grid_cuts[comm.rank], grid_cuts[comm.rank + 1]
    assert_all_ranks(comm, np.array_equal(est.predict(grid[lo:hi]), ref.predict(grid)[lo:hi]),
                     "predict on rows equally near two centers")


@pytest.mark.parametrize("seed", range(6))
def test_relocation_of_many_empty_clusters_on_a_grid(comm, seed):
    """Up to seven empty clusters at once, many rows at equal distances (integer rows)."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 6, size=(40, 2)).astype(np.float64)
    init = np.vstack([X[:3], rng.integers(20, 30, size=(7, 2)).astype(np.float64)])
    cuts = _cuts(comm, len(X), seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = KMeans(10, init=init, n_init=1).fit(local_rows(cuts, comm.rank, X))
        ref = SkKMeans(10, init=init, n_init=1).fit(X)
    _compare(comm, est, ref, cuts, f"grid seed {seed}")


def _few_distinct_rows():
    """17 rows of which 9 are distinct, on an integer grid."""
    rng = np.random.default_rng(0)
    distinct = rng.integers(0, 10, size=(9, 2)).astype(np.float64)
    assert len(np.unique(distinct, axis=0)) == 9
    return distinct[np.r_[np.arange(9), rng.integers(0, 9, 8)]]


def test_fewer_distinct_rows_than_clusters(comm):
    X = _few_distinct_rows()
    cuts = _cuts(comm, len(X), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = KMeans(12, random_state=3).fit(local_rows(cuts, comm.rank, X))
        ref = SkKMeans(12, random_state=3).fit(X)
    _compare(comm, est, ref, cuts, "17 rows, 9 distinct, k=12")


def test_fewer_distinct_rows_sweep_never_hits_max_iter(comm):
    """k = 10..14 with 8 seeds each: scikit-learn's n_iter_ and centers, max_iter never reached."""
    X = _few_distinct_rows()
    cuts = _cuts(comm, len(X), 4)
    X_local = local_rows(cuts, comm.rank, X)
    bad = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(10, 15):
            for seed in range(8):
                est = KMeans(k, random_state=seed).fit(X_local)
                ref = SkKMeans(k, random_state=seed).fit(X)
                lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
                if (est.n_iter_ >= est.max_iter or est.n_iter_ != ref.n_iter_
                        or not np.allclose(est.cluster_centers_, ref.cluster_centers_, rtol=0,
                                           atol=1e-12)
                        or not np.array_equal(est.labels_, ref.labels_[lo:hi])):
                    bad.append((k, seed, est.n_iter_, ref.n_iter_))
    assert_all_ranks(comm, not bad, f"(k, seed, n_iter_, scikit-learn's) differing: {bad}")


def _count_gathers(comm, monkeypatch):
    """Calls of ``gather_rows`` (the per-row gather of the relocation) on this rank."""
    calls = []
    real = type(comm).gather_rows

    def spy(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(comm), "gather_rows", spy)
    return calls


@pytest.mark.parametrize("n_far", [1, 2])
def test_relocation_from_the_farthest_rows_alone(comm, monkeypatch, n_far):
    """Beyond the bound on gathered rows, one or two empty clusters at distinct distances:
    the farthest rows of each rank determine scikit-learn's choice, and no per-row vector is
    gathered."""
    from sklearn.datasets import make_blobs

    from spmdlearn.cluster import _kmeans

    monkeypatch.setattr(_kmeans, "_RELOCATION_GATHER_ROWS", 0)
    gathers = _count_gathers(comm, monkeypatch)
    X, _ = make_blobs(n_samples=150, centers=3, n_features=2, random_state=4)
    init = np.vstack([X[:3], 1e3 + np.arange(2 * n_far, dtype=np.float64).reshape(n_far, 2)])
    cuts = _cuts(comm, len(X), 5)
    est = KMeans(3 + n_far, init=init, n_init=1).fit(local_rows(cuts, comm.rank, X))
    ref = SkKMeans(3 + n_far, init=init, n_init=1).fit(X)
    _compare(comm, est, ref, cuts, f"{n_far} empty")
    assert_all_ranks(comm, not gathers, f"{len(gathers)} per-row gathers")


def test_relocation_beyond_the_gather_bound_breaks_ties_by_global_index(comm, monkeypatch):
    """Beyond the bound, rows tied as farthest: the documented rule, the lowest global index
    (rows -3 and 3 are both 3 from center 0; -3, row 0, goes to the empty cluster)."""
    from spmdlearn.cluster import _kmeans

    monkeypatch.setattr(_kmeans, "_RELOCATION_GATHER_ROWS", 0)
    monkeypatch.setattr(_kmeans, "_MEAN_GATHER_ROWS", 0)  # nor the one column's mean
    gathers = _count_gathers(comm, monkeypatch)
    X = np.array([-3.0, 3.0, 10.0, 10.5])[:, None]
    init = np.array([[0.0], [10.25], [100.0]])
    cuts = _cuts(comm, len(X), 6)
    est = KMeans(3, init=init, n_init=1).fit(local_rows(cuts, comm.rank, X))
    assert_allclose_all_ranks(comm, est.cluster_centers_, [[3.0], [10.25], [-3.0]], rtol=1e-12,
                              what="cluster_centers_")
    assert_allclose_all_ranks(comm, est.inertia_, 0.125, rtol=1e-12, what="inertia_")
    assert_all_ranks(comm, not gathers, f"{len(gathers)} per-row gathers")
    # Within the bound, the same data takes scikit-learn's own pick among the tied rows.
    monkeypatch.undo()
    est = KMeans(3, init=init, n_init=1).fit(local_rows(cuts, comm.rank, X))
    _compare(comm, est, SkKMeans(3, init=init, n_init=1).fit(X), cuts, "ties within the bound")
