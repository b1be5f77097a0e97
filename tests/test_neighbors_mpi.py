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


def _far_clusters(seed, n=36, d=2, apart=1e160, spread=1e150):
    """Rows in three clusters ``apart`` from each other (their distances overflow float64 for
    apart >= ~1.3e154 in euclidean) and ``spread`` wide (finite distances), shuffled."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, n)[:, None] * apart + rng.uniform(0, 1, (n, d)) * spread
    return X[rng.permutation(n)]


# (metric, p, cluster distance, spread): the distances between clusters overflow float64, those
# within do not; a radius above the metric's limit (max ** (1 / p)) cannot tell them apart
_OVERFLOWING = [("euclidean", 2, 1e160, 1e150), ("minkowski", 2, 1e160, 1e150),
                ("minkowski", 3, 1e104, 1e100), ("minkowski", 1.5, 1e206, 1e200)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("metric, p, apart, spread", _OVERFLOWING)
def test_radius_neighbors_of_overflowing_distances(comm, metric, p, apart, spread):
    """Below the metric's limit, a radius search among rows whose distances overflow is
    scikit-learn's (its trees'; its brute force loses these distances to cancellation): the
    overflowed pairs are rightly farther than the radius. Above the limit, every rank raises
    (scikit-learn's trees call every pair a neighbour, its brute force some)."""
    X = _far_clusters(0, apart=apart, spread=spread)
    Q = _far_clusters(1, n=12, apart=apart, spread=spread)
    cuts, qcuts = random_cuts(len(X), comm.size, 3), random_cuts(len(Q), comm.size, 4)
    X_local, Q_local = local_rows(cuts, comm.rank, X), local_rows(qcuts, comm.rank, Q)
    radius = 0.6 * spread
    est = NearestNeighbors(radius=radius, metric=metric, p=p).fit(X_local)
    ref = skn.NearestNeighbors(radius=radius, metric=metric, p=p, algorithm="kd_tree").fit(X)
    dist, ind = est.radius_neighbors(Q_local, sort_results=True)
    rdist, rind = ref.radius_neighbors(Q, sort_results=True)
    lo, hi = qcuts[comm.rank], qcuts[comm.rank + 1]
    ok = all(np.array_equal(a, b) and np.allclose(c, e, rtol=1e-12, atol=0)
             for a, b, c, e in zip(ind, rind[lo:hi], dist, rdist[lo:hi]))
    found = sum(len(a) for a in rind)
    assert_all_ranks(comm, ok and len(ind) == hi - lo and 0 < found < len(X) * len(Q),
                     "neighbours within the radius, none across the clusters")
    limit = np.finfo(np.float64).max ** (1 / p)
    for big in (1e300, 2 * limit):
        for call in (lambda: est.radius_neighbors(Q_local, radius=big),
                     lambda: est.radius_neighbors(radius=big, return_distance=False)):
            assert_raises_on_all_ranks(comm, ValueError, call, match="overflow float64")
    # an infinite radius holds every pair, those whose distance overflows too (scikit-learn's)
    ind = est.radius_neighbors(Q_local, radius=np.inf, return_distance=False)
    assert_all_ranks(comm, len(ind) == hi - lo and all(
        np.array_equal(np.sort(a), np.arange(len(X))) for a in ind), "an infinite radius")
    # rows whose distances do not overflow: any radius, scikit-learn's answer
    near = X / apart
    est = NearestNeighbors(radius=1e300, metric=metric, p=p).fit(local_rows(cuts, comm.rank, near))
    ind = est.radius_neighbors(return_distance=False)
    tlo, thi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_all_ranks(comm, all(np.array_equal(a, np.delete(np.arange(len(X)), tlo + r))
                               for r, a in enumerate(ind)) and len(ind) == thi - tlo,
                     "every other row within a huge radius")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("metric, p, big", [("manhattan", 1, 1e308), ("chebyshev", 1, 1e308),
                                            ("minkowski", 3, 1e104), ("euclidean", 2, 1e160)])
def test_kneighbors_of_overflowing_distances_in_every_metric(comm, metric, p, big):
    """Candidates whose distance overflows rank after every finite one (rightly: they are
    farther than the limit): scikit-learn's neighbours; a query left with fewer than k finite
    ones raises on every rank; ``radius_neighbors`` of any radius is scikit-learn's for
    metrics whose distances only overflow beyond the float64 limit (manhattan, chebyshev)."""
    rng = np.random.default_rng(2)
    labels = rng.permutation(np.arange(30) % 3) - 1
    # three clusters at -big, 0 and big: the outer two are 2 big apart (manhattan and
    # chebyshev: the difference of the coordinates itself overflows for big=1e308)
    X = labels[:, None] * big + rng.uniform(0, 1, (30, 1)) * (big / 1e10)
    cuts = random_cuts(len(X), comm.size, 6)
    X_local = local_rows(cuts, comm.rank, X)
    smallest = min(np.bincount(labels + 1))
    est = NearestNeighbors(n_neighbors=smallest - 1, metric=metric, p=p).fit(X_local)
    # scikit-learn's trees (its euclidean brute force loses these distances to cancellation)
    ref = skn.NearestNeighbors(n_neighbors=smallest - 1, metric=metric, p=p,
                               algorithm="kd_tree").fit(X)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    ind = est.kneighbors(return_distance=False)
    assert_all_ranks(comm, np.array_equal(ind, ref.kneighbors(return_distance=False)[lo:hi]),
                     "neighbours within each cluster")
    # every other row: an outer row's candidates in the other outer cluster overflow
    wide = NearestNeighbors(n_neighbors=len(X) - 1, metric=metric, p=p).fit(X_local)
    assert_raises_on_all_ranks(comm, ValueError, lambda: wide.kneighbors(),
                               match="no finite distance")
    if metric in ("manhattan", "chebyshev"):
        rn = NearestNeighbors(radius=1.5e308, metric=metric).fit(X_local)
        rref = skn.NearestNeighbors(radius=1.5e308, metric=metric, algorithm="kd_tree").fit(X)
        got = rn.radius_neighbors(return_distance=False)
        expected = rref.radius_neighbors(return_distance=False)[lo:hi]
        assert_all_ranks(comm, len(got) == hi - lo and all(
            np.array_equal(a, np.sort(b)) for a, b in zip(got, expected)),
            "radius neighbours up to the float64 limit")


@pytest.mark.timeout(60)
def test_cosine_of_rows_whose_norms_overflow_raises_on_every_rank(comm):
    """Cosine distances divide by the rows' norms: a row of norm above ~1.3e154 (on one rank)
    makes its distances NaN, which would leave it out of every neighbourhood silently
    (scikit-learn's brute force normalizes it to a zero row). Every rank raises, for kNN,
    radius searches and the estimators built on them; rows below the limit are
    scikit-learn's."""
    X, y, yr, Q = _data(6, n=40, nq=10)
    huge = X.copy()
    huge[-1] *= 1e160  # on the last non-empty rank
    cuts = random_cuts(len(X), comm.size, 9)
    X_local, H_local, y_local, yr_local = local_rows(cuts, comm.rank, X, huge, y, yr)
    Q_local = local_rows(random_cuts(len(Q), comm.size, 10), comm.rank, Q)
    for call in (lambda: NearestNeighbors(n_neighbors=3, metric="cosine").fit(H_local)
                 .kneighbors(Q_local),
                 lambda: NearestNeighbors(metric="cosine", radius=0.2).fit(H_local)
                 .radius_neighbors(),
                 lambda: KNeighborsClassifier(3, metric="cosine").fit(H_local, y_local)
                 .predict(Q_local),
                 lambda: KNeighborsRegressor(3, metric="cosine").fit(X_local, yr_local)
                 .predict(Q_local * 1e160)):
        assert_raises_on_all_ranks(comm, ValueError, call, match="cosine distances .* overflow")
    large = X.copy()
    large[-1] *= 1e150  # a norm below the limit: the same cosine distances as X's
    est = NearestNeighbors(n_neighbors=3, metric="cosine").fit(local_rows(cuts, comm.rank,
                                                                          large))
    ref = skn.NearestNeighbors(n_neighbors=3, metric="cosine", algorithm="brute").fit(X)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_all_ranks(comm, np.array_equal(est.kneighbors(return_distance=False),
                                          ref.kneighbors(return_distance=False)[lo:hi]),
                     "cosine neighbours of a large row")


@pytest.mark.timeout(120)
def test_small_ring_pieces_give_the_same_neighbours(comm, monkeypatch):
    """The other ranks' rows visit in pieces (``PIECE_BYTES``): pieces of a few rows give
    scikit-learn's neighbours, votes, means and radius neighbours, as whole blocks do."""
    import spmdlearn.patterns

    monkeypatch.setattr(spmdlearn.patterns, "PIECE_BYTES", 7 * 40)  # 7 rows of 4 features
    X, y, yr, Q = _data(5)
    cuts, qcuts = random_cuts(len(X), comm.size, 6), random_cuts(len(Q), comm.size, 7)
    X_local, y_local, yr_local = local_rows(cuts, comm.rank, X, y, yr)
    Q_local = local_rows(qcuts, comm.rank, Q)
    lo, hi = qcuts[comm.rank], qcuts[comm.rank + 1]
    tlo, thi = cuts[comm.rank], cuts[comm.rank + 1]
    clf = KNeighborsClassifier(6).fit(X_local, y_local)
    ref = skn.KNeighborsClassifier(6, algorithm="brute").fit(X, y)
    assert_all_ranks(comm, np.array_equal(clf.predict(Q_local), ref.predict(Q)[lo:hi]), "predict")
    _, ind = clf.kneighbors()
    assert_all_ranks(comm, np.array_equal(ind, ref.kneighbors()[1][tlo:thi]), "X=None")
    reg = KNeighborsRegressor(6, weights="distance").fit(X_local, yr_local)
    rreg = skn.KNeighborsRegressor(6, weights="distance", algorithm="brute").fit(X, yr)
    assert_allclose_all_ranks(comm, reg.predict(Q_local), rreg.predict(Q)[lo:hi], rtol=1e-12)
    est = NearestNeighbors(radius=1.1).fit(X_local)
    dist, rind = est.radius_neighbors(Q_local, sort_results=True)
    rdist, rrind = skn.NearestNeighbors(radius=1.1, algorithm="brute").fit(X).radius_neighbors(
        Q, sort_results=True)
    ok = all(np.array_equal(a, b) and np.allclose(c, e, atol=1e-10)
             for a, b, c, e in zip(rind, rrind[lo:hi], dist, rdist[lo:hi]))
    assert_all_ranks(comm, ok and len(rind) == hi - lo, "radius_neighbors")


@pytest.mark.timeout(60)
def test_ring_pieces_bring_every_row_once(world):
    """``ring_pieces``: this rank's rows whole first, then each other rank's rows in order, in
    pieces of at most ``rows`` rows, over uneven shards with an empty rank."""
    comm = world
    sizes = [0 if r == 1 else 3 * r + 4 for r in range(comm.size)]
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
    mine = np.arange(starts[comm.rank], starts[comm.rank + 1], dtype=np.int64)
    rows = np.stack([mine, -mine], axis=1).astype(np.float32)
    pieces = list(comm.ring_pieces((rows, mine), 3))
    ok = pieces[0][0] == comm.rank and pieces[0][1] == 0 and np.array_equal(pieces[0][2][1], mine)
    seen = {}
    for owner, start, (R, G) in pieces[1:]:
        ok &= owner != comm.rank and len(G) <= 3 and R.dtype == np.float32
        ok &= np.array_equal(G, np.arange(starts[owner] + start, starts[owner] + start + len(G)))
        ok &= np.array_equal(R[:, 1], -G.astype(np.float32))
        seen.setdefault(owner, []).append(start)
    expected = {r: list(range(0, sizes[r], 3)) for r in range(comm.size)
                if r != comm.rank and sizes[r]}
    assert_all_ranks(comm, ok and seen == expected, f"pieces {seen} != {expected}")


@pytest.mark.timeout(120)
def test_predict_holds_one_visiting_piece_not_a_block(world, monkeypatch):
    """Memory: during ``predict`` a rank holds one visiting piece of another rank's rows, not
    its whole block. Traced allocations (NumPy's, through tracemalloc) during the call stay
    below half of one rank's training block; a whole visiting block would exceed it."""
    import tracemalloc

    import spmdlearn.patterns

    comm = world
    n, d = 20_000, 8  # 1.28 MB of training rows per rank
    monkeypatch.setattr(spmdlearn.patterns, "PIECE_BYTES", 64 << 10)
    rng = np.random.default_rng(comm.rank)
    X = rng.normal(size=(n, d))
    clf = KNeighborsClassifier(5).fit(X, rng.integers(0, 3, n))
    Q = X[:50]
    clf.predict(Q)  # loads the kernels outside the traced call
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        clf.predict(Q)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    added = peak - before
    assert_all_ranks(comm, added < X.nbytes / 2,
                     f"predict traced {added} bytes over {before}; block {X.nbytes}")


@pytest.mark.timeout(120)
def test_cosine_of_rows_of_zeros_is_one_as_in_sklearn(comm):
    """scikit-learn's cosine distance is 1 between a row of zeros and any row (it normalizes
    the rows, leaving a zero row zero); SciPy's is 0/0. A zero row among the training rows (on
    one rank) or the queries was left out as NaN, and a zero query had no neighbour at all
    ("no finite distance ... overflow")."""
    X, y, yr, Q = _data(11, n=60, nq=12)
    X[37] = 0.0  # a training row of zeros, on one rank
    Q[[2, 9]] = 0.0  # queries of zeros
    cuts, qcuts = random_cuts(len(X), comm.size, 12), random_cuts(len(Q), comm.size, 13)
    X_local, y_local, yr_local = local_rows(cuts, comm.rank, X, y, yr)
    Q_local = local_rows(qcuts, comm.rank, Q)
    lo, hi = qcuts[comm.rank], qcuts[comm.rank + 1]
    zero = np.zeros(len(Q), bool)
    zero[[2, 9]] = True
    zero = zero[lo:hi]
    est = NearestNeighbors(n_neighbors=5, metric="cosine").fit(X_local)
    ref = skn.NearestNeighbors(n_neighbors=5, metric="cosine", algorithm="brute").fit(X)
    dist, ind = est.kneighbors(Q_local)
    rdist, rind = ref.kneighbors(Q)
    rdist, rind = rdist[lo:hi], rind[lo:hi]
    assert_all_ranks(comm, np.allclose(dist, rdist, rtol=0, atol=1e-12), "cosine distances")
    # a zero query is at distance 1 from every row: ties, broken by the lower global index
    assert_all_ranks(comm, np.array_equal(ind[~zero], rind[~zero])
                     and (ind[zero] == np.arange(5)).all(), "neighbours")
    rdist_r, rind_r = ref.radius_neighbors(Q, radius=1.0, sort_results=True)
    dist_r, ind_r = est.radius_neighbors(Q_local, radius=1.0, sort_results=True)
    ok = all(np.array_equal(np.sort(a), np.sort(b)) and np.allclose(np.sort(c), np.sort(e),
                                                                     atol=1e-12)
             for a, b, c, e in zip(ind_r, rind_r[lo:hi], dist_r, rdist_r[lo:hi]))
    assert_all_ranks(comm, ok, "radius_neighbors at radius 1: a zero row is at distance 1")
    for ours, theirs, target, target_local in (
            (KNeighborsClassifier, skn.KNeighborsClassifier, y, y_local),
            (KNeighborsRegressor, skn.KNeighborsRegressor, yr, yr_local)):
        fitted = ours(n_neighbors=4, metric="cosine").fit(X_local, target_local)
        expected = theirs(n_neighbors=4, metric="cosine", algorithm="brute").fit(X, target)
        mine, theirs_ = fitted.predict(Q_local)[~zero], expected.predict(Q)[lo:hi][~zero]
        assert_all_ranks(comm, np.allclose(mine, theirs_), f"{ours.__name__}.predict")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("metric", ["euclidean", "l2", "manhattan", "chebyshev", "cosine"])
def test_p_belongs_to_minkowski_only(comm, metric):
    """``p`` means something to the Minkowski distance only, as in scikit-learn: the
    constructor's ``p`` is disregarded by other metrics, whatever its value (``p=0.5`` was
    refused as "should be >= 1 for the Minkowski distance"), and ``metric_params={"p": ...}``
    with another metric raises TypeError on every rank, as scikit-learn's metrics refuse the
    argument (it was accepted and ignored)."""
    from sklearn.cluster import DBSCAN as SkDBSCAN

    from spmdlearn.cluster import DBSCAN

    X, y, _, Q = _data(14, n=50, nq=6)
    cuts = random_cuts(len(X), comm.size, 15)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    est = NearestNeighbors(n_neighbors=3, metric=metric, p=0.5).fit(X_local)
    ref = skn.NearestNeighbors(n_neighbors=3, metric=metric, algorithm="brute").fit(X)
    assert_all_ranks(comm, np.array_equal(est.kneighbors(Q)[1], ref.kneighbors(Q)[1]),
                     f"neighbours with metric={metric!r}, p=0.5")
    labels = DBSCAN(eps=0.9, min_samples=3, metric=metric, p=0.5).fit(X_local).labels_
    expected = SkDBSCAN(eps=0.9, min_samples=3, metric=metric).fit(X).labels_
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    assert_all_ranks(comm, np.array_equal(labels, expected[lo:hi]), "DBSCAN labels")
    for make in (lambda: NearestNeighbors(metric=metric, metric_params={"p": 3}).fit(X_local),
                 lambda: KNeighborsClassifier(metric=metric, metric_params={"p": 1})
                 .fit(X_local, y_local),
                 lambda: DBSCAN(metric=metric, metric_params={"p": 3}).fit(X_local)):
        assert_raises_on_all_ranks(comm, TypeError, make, match="metric_params")
