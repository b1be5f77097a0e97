"""KMeans under mpiexec: scikit-learn's answer on the gathered data, draws and all."""

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans
from sklearn.datasets import make_blobs

from spmdlearn.cluster import KMeans
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_identical_on_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    random_cuts,
)

pytestmark = pytest.mark.mpi


def _compare(comm, est, ref, cuts, what=""):
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_all_ranks(comm, np.array_equal(est.labels_, ref.labels_[lo:hi]), f"{what} labels_")
    assert_allclose_all_ranks(comm, est.cluster_centers_, ref.cluster_centers_, rtol=1e-6,
                              what=f"{what} cluster_centers_")
    assert_allclose_all_ranks(comm, est.inertia_, ref.inertia_, rtol=1e-6, what=f"{what} inertia_")
    assert_all_ranks(comm, est.n_iter_ == ref.n_iter_, f"{what} n_iter_ {est.n_iter_} != {ref.n_iter_}")
    assert_identical_on_all_ranks(comm, est.cluster_centers_, "centers")
    assert_identical_on_all_ranks(comm, est.inertia_, "inertia")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("init, n_clusters, n_init", [("k-means++", 5, "auto"),
                                                      ("random", 4, "auto"),
                                                      ("k-means++", 6, 3)])
@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_equals_sklearn(comm, seed, init, n_clusters, n_init, weighted):
    X, _ = make_blobs(n_samples=240, centers=5, n_features=3, random_state=seed, cluster_std=1.5)
    w = np.random.default_rng(seed).uniform(0.5, 2.0, 240) if weighted else None
    cuts = random_cuts(240, comm.size, seed)
    X_local, w_local = local_rows(cuts, comm.rank, X, w)
    est = KMeans(n_clusters, init=init, n_init=n_init, random_state=seed).fit(X_local,
                                                                            sample_weight=w_local)
    ref = SkKMeans(n_clusters, init=init, n_init=n_init, random_state=seed).fit(X, sample_weight=w)
    _compare(comm, est, ref, cuts)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_all_ranks(comm, np.array_equal(est.predict(X_local), ref.predict(X)[lo:hi]), "predict")
    assert_allclose_all_ranks(comm, est.transform(X_local), ref.transform(X)[lo:hi], rtol=1e-6,
                              what="transform")
    assert_allclose_all_ranks(comm, est.score(X_local), ref.score(X), rtol=1e-6, what="score")


def test_kmeans_tol_zero_runs_to_strict_convergence(comm):
    X, _ = make_blobs(n_samples=300, centers=6, n_features=4, random_state=1, cluster_std=3.0)
    cuts = random_cuts(300, comm.size, 5)
    est = KMeans(6, tol=0.0, random_state=2).fit(local_rows(cuts, comm.rank, X))
    ref = SkKMeans(6, tol=0.0, random_state=2).fit(X)
    _compare(comm, est, ref, cuts, "tol=0")


def test_kmeans_max_iter_stops_early_and_reruns_e_step(comm):
    X, _ = make_blobs(n_samples=300, centers=6, n_features=4, random_state=1, cluster_std=4.0)
    cuts = random_cuts(300, comm.size, 6)
    est = KMeans(6, max_iter=2, random_state=0).fit(local_rows(cuts, comm.rank, X))
    ref = SkKMeans(6, max_iter=2, random_state=0).fit(X)
    _compare(comm, est, ref, cuts, "max_iter=2")


def test_empty_cluster_relocated_to_globally_farthest_row(comm):
    """An initial center far from every row empties its cluster; scikit-learn moves it to the
    row farthest from its center, which may live on any rank."""
    X, _ = make_blobs(n_samples=120, centers=3, n_features=2, random_state=3)
    init = np.array([[0.0, 0.0], [1e3, 1e3], [5.0, 5.0], [-5.0, 0.0]])
    cuts = random_cuts(120, comm.size, 7)
    est = KMeans(4, init=init, n_init=1).fit(local_rows(cuts, comm.rank, X))
    ref = SkKMeans(4, init=init, n_init=1).fit(X)
    _compare(comm, est, ref, cuts, "relocation")


def test_callable_init_must_agree(comm):
    X, _ = make_blobs(n_samples=60, centers=3, n_features=2, random_state=0)
    cuts = random_cuts(60, comm.size, 0)
    X_local = local_rows(cuts, comm.rank, X)
    fixed = X[:3] - X.mean(0)
    est = KMeans(3, init=lambda X, k, random_state: fixed, n_init=1).fit(X_local)
    ref = SkKMeans(3, init=lambda X, k, random_state: fixed, n_init=1).fit(X)
    _compare(comm, est, ref, cuts, "callable init")
    if comm.size > 1:
        bad = lambda X, k, random_state: fixed + comm.rank  # noqa: E731
        assert_raises_on_all_ranks(comm, ValueError, lambda: KMeans(3, init=bad, n_init=1).fit(X_local),
                                   match="different centers on different ranks")


def test_kmeans_verbose_prints_on_rank_zero_only(comm, capsys):
    X, _ = make_blobs(n_samples=60, centers=3, n_features=2, random_state=0)
    cuts = random_cuts(60, comm.size, 0)
    KMeans(3, random_state=0, verbose=1).fit(local_rows(cuts, comm.rank, X))
    out = capsys.readouterr().out
    expected = comm.rank == 0
    assert_all_ranks(comm, ("Iteration 0, inertia" in out and "center shift" in out) == expected,
                     "verbose output on rank 0 only")


def test_kmeans_errors_are_collective(comm):
    X, _ = make_blobs(n_samples=2 * comm.size, centers=2, n_features=2, random_state=0)
    X_local = X[2 * comm.rank: 2 * comm.rank + 2]
    assert_raises_on_all_ranks(comm, ValueError, lambda: KMeans(2 * comm.size + 1).fit(X_local),
                               match=rf"n_samples={2 * comm.size} should be >= n_clusters="
                                     rf"{2 * comm.size + 1} \(summed over {comm.size} ranks\)")
    bad = X_local.copy()
    if comm.rank == comm.size - 1:
        bad[0, 0] = np.nan
    assert_raises_on_all_ranks(comm, ValueError, lambda: KMeans(2).fit(bad), match="NaN")
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: KMeans(2, init=np.zeros((3, 2))).fit(X_local),
                               match="shape of the initial centers")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("init", ["array", "k-means++"])
def test_kmeans_memory_is_a_fraction_of_the_shard(comm, init):
    """No shard-sized temporary on the cpu backend: the centering is applied a block at a time
    (no centered copy), unit weights are not materialised, an empty cluster's relocation works
    on blocks, and predict keeps no per-row distances. The traced peak of fit (an empty cluster
    is relocated in the first step) and of predict stays within a quarter of the shard, plus
    a few blocks."""
    import tracemalloc

    import spmdlearn

    rng = np.random.default_rng(comm.rank)
    n = 120_000 if comm.rank != 1 else 0  # uneven, rank 1 empty
    X = rng.normal(size=(n, 20)) + 100.0
    centers = np.random.default_rng(99).normal(size=(8, 20)) + 100.0
    centers[-1] += 1e3  # far from every row: its cluster empties
    shard = 120_000 * 20 * 8
    limit = 0.25 * shard + 8 * 2**20
    with spmdlearn.config_context(backend="cpu"):
        est = KMeans(8, init=centers if init == "array" else init, n_init=1, max_iter=4,
                     random_state=0)
        est.fit(X[:2000])  # compiled kernels loaded
        tracemalloc.start()
        try:
            est.fit(X)
            fit_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            est.predict(X)
            predict_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert_all_ranks(comm, fit_peak <= limit,
                     f"fit traced {fit_peak / 2**20:.1f} MB > {limit / 2**20:.1f} MB")
    assert_all_ranks(comm, predict_peak <= limit,
                     f"predict traced {predict_peak / 2**20:.1f} MB > {limit / 2**20:.1f} MB")
