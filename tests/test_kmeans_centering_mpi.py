"""k-means centers the rows as scikit-learn does, bit for bit, for every split of the rows.

scikit-learn runs k-means on ``X - X.mean(axis=0)``; the last bits of the centered rows decide
ties: which of several equally far rows an empty cluster is relocated to, and which of two
coinciding centers (a relocated row and the mean of its copies) a row joins. The global mean
must therefore be NumPy's ``X.mean(axis=0)`` of the gathered rows, not a merge of per-rank
means, whose rounding changes with the number of ranks and where the shards are cut.
"""

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans

import spmdlearn
from spmdlearn.cluster import KMeans
from spmdlearn.cluster import _kmeans as kmeans_module
from spmdlearn_conformance import assert_all_ranks, local_rows

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(180)]


def _cuts(comm, n, seed, empty=1):
    """Uneven shards with rank ``empty`` holding no rows (with one rank, all rows)."""
    weights = np.random.default_rng(seed).uniform(0.3, 1.7, comm.size)
    if comm.size > 1:
        weights[empty] = 0.0
    inner = np.round(np.cumsum(weights)[:-1] / weights.sum() * n).astype(int)
    return np.concatenate([[0], inner, [n]])


def _bits(a):
    return np.asarray(a).tobytes().hex()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_features", [1, 2, 7])
def test_global_mean_is_numpys_for_any_split(comm, monkeypatch, dtype, n_features):
    """The mean is ``np.mean(X, axis=0)`` of the gathered rows bit for bit (rows after rows;
    one column: NumPy's pairwise sum of the gathered column), with blocks of a few rows."""
    monkeypatch.setattr(kmeans_module, "_CENTERED_BLOCK_BYTES", 64)
    rng = np.random.default_rng(n_features)
    X = (rng.normal(size=(1001, n_features)) * 1e3 + rng.normal(size=n_features) * 1e5)
    X = X.astype(dtype)
    for seed, empty in [(0, 1), (1, 1), (2, 0)]:  # rank 0 empty too: rank 1 opens the sum
        X_local = local_rows(_cuts(comm, len(X), seed, empty), comm.rank, X)
        mean = kmeans_module._global_mean(comm, X_local, len(X))
        assert_all_ranks(comm, mean.dtype == dtype and _bits(mean) == _bits(X.mean(axis=0)),
                         f"split {seed}: mean {mean!r} != NumPy's {X.mean(axis=0)!r}")


def test_one_column_beyond_the_gather_bound_adds_in_row_order(comm, monkeypatch):
    """Beyond the gathered rows' bound, a single column is summed in row order over the ranks:
    the same bits for every split (those of ``np.cumsum`` of the gathered column)."""
    monkeypatch.setattr(kmeans_module, "_MEAN_GATHER_ROWS", 0)
    monkeypatch.setattr(kmeans_module, "_CENTERED_BLOCK_BYTES", 64)
    X = np.random.default_rng(5).normal(size=(999, 1)) * 1e3 + 1e6
    expected = np.cumsum(X[:, 0])[-1:] / len(X)
    for seed in range(3):
        X_local = local_rows(_cuts(comm, len(X), seed), comm.rank, X)
        mean = kmeans_module._global_mean(comm, X_local, len(X))
        assert_all_ranks(comm, _bits(mean) == _bits(expected), f"split {seed}: {mean!r}")


def test_array_api_rows_center_as_numpy_does(comm):
    """Rows of another namespace (array-api-strict, NumPy underneath) are summed in row order
    by that namespace: NumPy's bits, for any split."""
    xps = pytest.importorskip("array_api_strict")
    X = np.random.default_rng(6).normal(size=(500, 3)) * 1e2 + 1e4
    for seed in range(2):
        X_local = xps.asarray(local_rows(_cuts(comm, len(X), seed), comm.rank, X))
        mean = kmeans_module._global_mean(comm, X_local, len(X))
        assert_all_ranks(comm, _bits(mean) == _bits(X.mean(axis=0)), f"split {seed}: {mean!r}")


def _mirrored_pairs(seed, n_centers=6, d=3):
    """Rows in mirrored pairs ``c + e, c - e`` around a few centers ``c`` (equally far from
    ``c`` in exact arithmetic; which is farther is decided by the centered rows' last bits), the
    longest offsets shared by all centers, and an init of the centers ``c`` plus one far away
    (empty at the first step: it is relocated to the farthest row)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(n_centers, d)) * 1e3  # the centering rounds the rows
    e = rng.normal(size=(4, d))
    e[0] *= 2.0  # the longest offset, of every center: 2 * n_centers rows tie as farthest
    X = np.concatenate([np.concatenate([ci + e, ci - e]) for ci in c])
    return X, np.r_[c, [c[0] + 1e4]]


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_relocation_among_equally_far_rows_is_scikit_learns_for_any_split(comm, backend):
    """Which of the rows equally far from their centers (in exact arithmetic) receives the
    empty cluster: scikit-learn's pick (``argpartition`` on the distances of its centered rows)
    for every number of ranks and split of the rows, seen in the labels (the relocated row
    leaves its mirror) and the centers."""
    if backend == "cpu":
        pytest.importorskip("numba")
    bad = []
    for seed in range(12):
        X, init = _mirrored_pairs(seed)
        params = dict(n_clusters=len(init), init=init, n_init=1, max_iter=1)
        ref = SkKMeans(**params).fit(X)
        cuts = _cuts(comm, len(X), seed)
        lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
        with spmdlearn.config_context(backend=backend), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = KMeans(**params).fit(X[lo:hi])
        if not (np.array_equal(est.labels_, ref.labels_[lo:hi])
                and np.allclose(est.cluster_centers_, ref.cluster_centers_, rtol=1e-12)
                and np.isclose(est.inertia_, ref.inertia_, rtol=1e-12)
                and est.n_iter_ == ref.n_iter_):
            bad.append(seed)
    assert_all_ranks(comm, not bad, f"seeds whose model differs from scikit-learn's: {bad}")


@pytest.mark.parametrize("init", ["k-means++", "random", "array"])
def test_negative_weights_refused_on_every_rank_for_every_init(comm, init):
    """A negative weight on one rank: a ValueError on every rank that names that rank and says
    why, for every init (scikit-learn's k-means++ and random init fail on them in NumPy's
    ``choice``; its array init runs on with them)."""
    X = np.random.default_rng(8).normal(size=(40, 2))
    w = np.ones(len(X))
    cuts = _cuts(comm, len(X), 8)
    bad_rank = int(np.flatnonzero(np.diff(cuts))[-1])  # the last rank with rows
    w[cuts[bad_rank]] = -0.5
    X_local, w_local = local_rows(cuts, comm.rank, X, w)
    params = dict(n_clusters=3, n_init=1, random_state=0,
                  init=X[:3] if init == "array" else init)
    with pytest.raises(ValueError) as info:
        KMeans(**params).fit(X_local, sample_weight=w_local)
    message = str(info.value)
    assert_all_ranks(comm, "Negative values in data passed to sample_weight" in message
                     and "non-negative" in message
                     and (comm.size == 1 or f"rank {bad_rank}" in message), message)
    if init != "array":  # scikit-learn refuses them too
        with pytest.raises(ValueError, match="non-negative"):
            SkKMeans(**params).fit(X, sample_weight=w)


def test_fold_in_rank_order(comm):
    """The fold runs on rank 0, then rank 1, ...: each rank sees the value of the ranks before
    it; an error in one rank's step reaches every rank instead of leaving them waiting."""
    seen = comm.fold_in_rank_order(lambda v: np.r_[v[1:], comm.rank], np.full(comm.size, -1))
    assert_all_ranks(comm, np.array_equal(seen, np.arange(comm.size)), f"fold: {seen}")
    last = comm.size - 1

    def step(v):
        if comm.rank == last:
            raise ValueError("a step that fails")
        return v

    with pytest.raises(ValueError, match="a step that fails"):
        with comm.session("fold_in_rank_order test"):
            comm.fold_in_rank_order(step, np.zeros(2))


def test_beyond_the_bound_the_merged_mean_centers(comm, monkeypatch):
    """Beyond ``_ORDERED_MEAN_ELEMENTS`` the centering mean is the merged moments' (no pass
    that runs rank after rank), and the model is still scikit-learn's where no tie is at
    stake."""
    calls, ordered_mean = [], kmeans_module._global_mean
    monkeypatch.setattr(kmeans_module, "_ORDERED_MEAN_ELEMENTS", 0)
    monkeypatch.setattr(kmeans_module, "_global_mean",
                        lambda *a, **k: calls.append(1) or ordered_mean(*a, **k))
    rng = np.random.default_rng(9)
    X = np.concatenate([rng.normal(size=(60, 3)) + 10 * i for i in range(3)])
    cuts = _cuts(comm, len(X), 9)
    params = dict(n_clusters=3, init=X[[0, 60, 120]], n_init=1)
    est = KMeans(**params).fit(local_rows(cuts, comm.rank, X))
    ref = SkKMeans(**params).fit(X)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    ok = (not calls and np.array_equal(est.labels_, ref.labels_[lo:hi])
          and np.allclose(est.cluster_centers_, ref.cluster_centers_, rtol=1e-12))
    assert_all_ranks(comm, ok, f"ordered mean called {len(calls)} times, or the model differs")
