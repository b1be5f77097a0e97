"""Nearest neighbours under mpiexec: scikit-learn's brute force on the gathered data."""

import numpy as np
import pytest
from sklearn import neighbors as skn

from spmdlearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    random_cuts,
)

pytestmark = pytest.mark.mpi


def _data(seed=0, n=240, nq=60, d=4):
    rng = np.random.default_rng(seed)  # continuous data: no distance ties
    X = rng.normal(size=(n, d))
    return X, rng.integers(0, 3, n), X @ np.arange(1.0, d + 1), rng.normal(size=(nq, d))


@pytest.mark.parametrize("metric, p", [("minkowski", 2), ("manhattan", 2), ("chebyshev", 2),
                                       ("minkowski", 3), ("cosine", 2), ("euclidean", 2)])
@pytest.mark.parametrize("algorithm", ["auto", "kd_tree", "brute"])
def test_kneighbors_equal_brute_force(comm, metric, p, algorithm):
    X, _, _, Q = _data(1)
    cuts, qcuts = random_cuts(len(X), comm.size, 1), random_cuts(len(Q), comm.size, 2)
    X_local, Q_local = local_rows(cuts, comm.rank, X), local_rows(qcuts, comm.rank, Q)
    est = NearestNeighbors(n_neighbors=7, metric=metric, p=p, algorithm=algorithm).fit(X_local)
    ref = skn.NearestNeighbors(n_neighbors=7, metric=metric, p=p, algorithm="brute").fit(X)
    dist, ind = est.kneighbors(Q_local)
    rdist, rind = ref.kneighbors(Q)
    lo, hi = qcuts[comm.rank], qcuts[comm.rank + 1]
    assert_all_ranks(comm, np.array_equal(ind, rind[lo:hi]), "global indices")
    assert_all_ranks(comm, np.allclose(dist, rdist[lo:hi], rtol=0, atol=1e-10), "distances")
    # X=None: each training row's neighbours, itself excluded
    dist, ind = est.kneighbors()
    rdist, rind = ref.kneighbors()
    tlo, thi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_all_ranks(comm, np.array_equal(ind, rind[tlo:thi]), "X=None indices")
    graph = est.kneighbors_graph(Q_local, mode="distance")
    assert_all_ranks(comm, graph.shape == (hi - lo, len(X)) and
                     np.allclose(graph.toarray(), ref.kneighbors_graph(Q, mode="distance")
                                 .toarray()[lo:hi]), "kneighbors_graph")


@pytest.mark.parametrize("weights", ["uniform", "distance", lambda d: np.exp(-d)])
def test_classifier_and_regressor(comm, weights):
    X, y, yr, Q = _data(2)
    cuts, qcuts = random_cuts(len(X), comm.size, 3), random_cuts(len(Q), comm.size, 4)
    X_local, y_local, yr_local = local_rows(cuts, comm.rank, X, y, yr)
    Q_local = local_rows(qcuts, comm.rank, Q)
    lo, hi = qcuts[comm.rank], qcuts[comm.rank + 1]
    clf = KNeighborsClassifier(9, weights=weights).fit(X_local, y_local)
    ref = skn.KNeighborsClassifier(9, weights=weights, algorithm="brute").fit(X, y)
    assert_all_ranks(comm, np.array_equal(clf.classes_, ref.classes_), "classes_")
    assert_all_ranks(comm, np.array_equal(clf.predict(Q_local), ref.predict(Q)[lo:hi]), "predict")
    assert_allclose_all_ranks(comm, clf.predict_proba(Q_local), ref.predict_proba(Q)[lo:hi],
                              rtol=1e-12, what="predict_proba")
    assert_allclose_all_ranks(comm, clf.score(X_local, y_local), ref.score(X, y), rtol=0,
                              what="score")
    reg = KNeighborsRegressor(9, weights=weights).fit(X_local, yr_local)
    rref = skn.KNeighborsRegressor(9, weights=weights, algorithm="brute").fit(X, yr)
    assert_allclose_all_ranks(comm, reg.predict(Q_local), rref.predict(Q)[lo:hi], rtol=1e-12,
                              what="regressor predict")
    # R^2 = 1 - SS_res / SS_tot magnifies rounding of the predictions by SS_tot / SS_res.
    assert_allclose_all_ranks(comm, reg.score(X_local, yr_local), rref.score(X, yr), rtol=1e-9,
                              what="regressor score")


def test_radius_neighbors(comm):
    X, _, _, Q = _data(3)
    cuts, qcuts = random_cuts(len(X), comm.size, 5), random_cuts(len(Q), comm.size, 6)
    est = NearestNeighbors(radius=1.1).fit(local_rows(cuts, comm.rank, X))
    ref = skn.NearestNeighbors(radius=1.1, algorithm="brute").fit(X)
    dist, ind = est.radius_neighbors(local_rows(qcuts, comm.rank, Q), sort_results=True)
    rdist, rind = ref.radius_neighbors(Q, sort_results=True)
    lo, hi = qcuts[comm.rank], qcuts[comm.rank + 1]
    ok = all(np.array_equal(a, b) and np.allclose(c, e, atol=1e-10)
             for a, b, c, e in zip(ind, rind[lo:hi], dist, rdist[lo:hi]))
    assert_all_ranks(comm, ok and len(ind) == hi - lo, "radius_neighbors")


def test_neighbors_errors_are_collective(comm):
    X, y, _, _ = _data(4, n=3 * comm.size)
    X_local, y_local = X[3 * comm.rank: 3 * comm.rank + 3], y[3 * comm.rank: 3 * comm.rank + 3]
    est = KNeighborsClassifier(n_neighbors=3 * comm.size + 1).fit(X_local, y_local)
    assert_raises_on_all_ranks(comm, ValueError, lambda: est.predict(X_local),
                               match=rf"n_neighbors = {3 * comm.size + 1}, n_samples_fit = "
                                     rf"{3 * comm.size}")
    bad = X_local.copy()
    if comm.rank == comm.size - 1:
        bad[0, 0] = np.nan
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: KNeighborsClassifier(2).fit(bad, y_local), match="NaN")
    if comm.size > 1:
        mixed = y_local.astype(str) if comm.rank == 0 else y_local
        assert_raises_on_all_ranks(comm, ValueError,
                                   lambda: KNeighborsClassifier(2).fit(X_local, mixed),
                                   match="differs across ranks")
    assert_raises_on_all_ranks(comm, NotImplementedError,
                               lambda: NearestNeighbors(metric="haversine").fit(X_local),
                               match="not available")


def test_to_sklearn_after_gather_fit_data(comm):
    X, y, yr, Q = _data(5)
    cuts = random_cuts(len(X), comm.size, 8)
    X_local, y_local, yr_local = local_rows(cuts, comm.rank, X, y, yr)
    clf = KNeighborsClassifier(5).fit(X_local, y_local).gather_fit_data().to_sklearn()
    reg = KNeighborsRegressor(5).fit(X_local, yr_local).gather_fit_data().to_sklearn()
    nn = NearestNeighbors(n_neighbors=3).fit(X_local).gather_fit_data().to_sklearn()
    assert_all_ranks(comm, type(clf).__module__.startswith("sklearn."), "a scikit-learn estimator")
    ref = skn.KNeighborsClassifier(5).fit(X, y)
    assert_all_ranks(comm, np.array_equal(clf.predict(Q), ref.predict(Q)), "classifier")
    assert_allclose_all_ranks(comm, reg.predict(Q), skn.KNeighborsRegressor(5).fit(X, yr).predict(Q),
                              rtol=1e-12, what="regressor")
    assert_all_ranks(comm, np.array_equal(nn.kneighbors(Q)[1],
                                          skn.NearestNeighbors(n_neighbors=3).fit(X).kneighbors(Q)[1]),
                     "nearest neighbours")


def test_overflowing_distances_raise_on_every_rank(comm):
    """Finite rows whose distances overflow float64 (about 1e160 apart) leave no neighbour to
    name: a clear error on every rank, never an index of -1 (NumPy's last row)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6 * comm.size, 2)) * 1e160
    X_local = local_rows(random_cuts(X.shape[0], comm.size, seed=3), comm.rank, X)
    y_local = np.arange(X_local.shape[0], dtype=np.float64)
    Q = X[:2] * 1.001
    for call in (lambda: NearestNeighbors(n_neighbors=2).fit(X_local).kneighbors(Q),
                 lambda: KNeighborsRegressor(2).fit(X_local, y_local).predict(Q),
                 lambda: NearestNeighbors(n_neighbors=2).fit(X_local).kneighbors()):
        assert_raises_on_all_ranks(comm, ValueError, call, match="overflow float64")
    # far from the limit the same rows are fine
    d, i = NearestNeighbors(n_neighbors=2).fit(X_local / 1e150).kneighbors(Q / 1e150)
    assert_all_ranks(comm, bool((np.asarray(i) >= 0).all() and np.isfinite(d).all()),
                     "neighbours of scaled rows")
