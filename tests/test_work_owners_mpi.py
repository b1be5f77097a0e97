"""Work is handed only to ranks that hold rows (of positive weight).

Where a rank owns work by its number (a tree in local_trees_mode, a relocated k-means center, a
k-means++ draw, the header of a file), a rank with no rows, or with zero weights only, must own
none of it: its trees would have empty leaves and pull the forest's average toward zero.
"""

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression

from spmdlearn.cluster import KMeans
from spmdlearn.ensemble import RandomForestClassifier, RandomForestRegressor
from spmdlearn_conformance import assert_all_ranks, assert_allclose_all_ranks, local_rows

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]


def _cuts_with_empty(comm, n, empty=(1,)):
    """Uneven shards; the listed ranks hold no rows (with one rank: all rows on rank 0)."""
    weights = np.arange(1, comm.size + 1, dtype=float)
    for r in empty:
        if r < comm.size and comm.size > 1:
            weights[r] = 0.0
    inner = np.round(np.cumsum(weights)[:-1] / weights.sum() * n).astype(int)
    return np.concatenate([[0], inner, [n]])


@pytest.mark.parametrize("zero_weight", [False, True])
def test_local_trees_only_on_ranks_with_rows(comm, zero_weight):
    """An empty rank (or, with zero_weight, a rank whose weights are all zero) owns no tree:
    every tree's leaves are class frequencies summing to 1, so predict_proba rows sum to 1."""
    X, y = make_classification(n_samples=120, n_features=5, n_informative=3, random_state=0)
    w = np.ones(len(X))
    if zero_weight:
        cuts = _cuts_with_empty(comm, len(X), empty=())
        if comm.size > 1:
            w[cuts[1]:cuts[2]] = 0.0  # rank 1 holds rows, all of weight zero
    else:
        cuts = _cuts_with_empty(comm, len(X))
    X_local, y_local, w_local = local_rows(cuts, comm.rank, X, y, w)
    est = RandomForestClassifier(n_estimators=7, max_depth=4, random_state=0,
                                 local_trees_mode=True).fit(X_local, y_local, sample_weight=w_local)
    proba = est.predict_proba(X)
    assert_allclose_all_ranks(comm, proba.sum(axis=1), np.ones(len(X)), rtol=1e-12,
                              what="predict_proba row sums")
    sums = np.array([tree.value.sum(axis=1).min() for tree in est.estimators_])
    assert_all_ranks(comm, np.all(sums > 0.999), f"trees with empty leaves: {sums}")
    assert_all_ranks(comm, est.score(X_local, y_local) > 0.8, "accuracy")


def test_local_trees_regressor_not_pulled_to_zero(comm):
    X, y = make_regression(n_samples=120, n_features=4, noise=1.0, random_state=1)
    y = y + 500.0  # an empty tree's zeros would show as predictions far below every target
    cuts = _cuts_with_empty(comm, len(X))
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    est = RandomForestRegressor(n_estimators=7, max_depth=5, random_state=0,
                                local_trees_mode=True).fit(X_local, y_local)
    pred = est.predict(X)
    assert_all_ranks(comm, pred.min() >= y.min() - 1e-9 and pred.max() <= y.max() + 1e-9,
                     f"predictions {pred.min():.1f}..{pred.max():.1f} outside the targets' range "
                     f"{y.min():.1f}..{y.max():.1f}")
    assert_all_ranks(comm, est.score(X_local, y_local) > 0.5, "R^2")


def test_kmeans_relocation_and_draws_with_empty_ranks(comm):
    """k-means++ draws and relocated rows come from the ranks that own those rows: ranks 0 and 1
    empty (the relocation decider and a would-be owner hold nothing), same model as on one rank."""
    from sklearn.cluster import KMeans as SkKMeans

    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(size=(30, 2)), rng.normal(size=(30, 2)) + 8.0])
    init = np.array([[0.0, 0.0], [8.0, 8.0], [100.0, 100.0], [-100.0, 50.0]])
    cuts = _cuts_with_empty(comm, len(X), empty=(0, 1))
    X_local = local_rows(cuts, comm.rank, X)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    for est, ref in ((KMeans(4, init=init, n_init=1), SkKMeans(4, init=init, n_init=1)),
                     (KMeans(4, random_state=5), SkKMeans(4, random_state=5))):
        est.fit(X_local)
        ref.fit(X)
        assert_allclose_all_ranks(comm, est.cluster_centers_, ref.cluster_centers_, rtol=1e-12,
                                  what="cluster_centers_")
        assert_all_ranks(comm, np.array_equal(est.labels_, ref.labels_[lo:hi]), "labels_")
