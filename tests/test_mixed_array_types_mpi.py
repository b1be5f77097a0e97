"""Ranks whose shards are of different array types (NumPy on some, array_api_strict on others).

Validation accepts that: each rank's input is its own, and per-row results come back in each
rank's type. The ring passes of the neighbour searches used to choose their path by the local
type (:meth:`spmdlearn.comm.Comm.ring_pieces`: NumPy blocks in pieces, device blocks whole),
so the ranks called different collectives: the status exchange refused, on every rank, with
"ranks call different collectives ... rank 0: ('row layout',); rank 1: ('allgather',)", a
message that names no cause the user can act on. The ranks now choose the path together:
results equal those of all-NumPy shards, in each rank's own type. Every test has a timeout
and its verdict is agreed over all ranks (a hang fails by timeout, never blocks).
"""

import numpy as np
import pytest

from spmdlearn._array_api import is_foreign_array, to_host
from spmdlearn.cluster import DBSCAN
from spmdlearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors
from spmdlearn_conformance import assert_all_ranks

xp = pytest.importorskip("array_api_strict")

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]


def _data(comm):
    rng = np.random.RandomState(11)
    sizes = [25 + 9 * r for r in range(comm.size)]
    X = rng.randn(sum(sizes), 3)
    y = (X[:, 0] > 0).astype(np.int64)
    lo = sum(sizes[:comm.rank])
    return X[lo:lo + sizes[comm.rank]], y[lo:lo + sizes[comm.rank]]


def _strict_on(comm):
    """Whether this rank's shards are array_api_strict: odd ranks' (rank 1 of 2 or 3)."""
    return comm.rank % 2 == 1


def _mixed(comm, a):
    return xp.asarray(a) if _strict_on(comm) else a


def _outcome(comm, fn):
    """``fn()`` on every rank; the errors of any rank raised on every rank (agreed verdict)."""
    error, result = None, None
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 -- the verdict must reach every rank
        error = f"rank {comm.rank}: {type(exc).__name__}: {exc}"
    errors = [e for e in comm.allgather(error) if e is not None]
    assert not errors, f"failed: {errors}"
    return result


def _type_ok(comm, value):
    return is_foreign_array(value) == _strict_on(comm)


CASES = ["training rows", "queries", "both"]


@pytest.mark.parametrize("case", CASES)
def test_kneighbors_with_mixed_array_types(world, case):
    X, _ = _data(world)
    train = _mixed(world, X) if case != "queries" else X
    query = _mixed(world, X) if case != "training rows" else X
    got = _outcome(world, lambda: NearestNeighbors(n_neighbors=4).fit(train).kneighbors(query))
    want = NearestNeighbors(n_neighbors=4).fit(X).kneighbors(X)
    assert_all_ranks(world, np.array_equal(to_host(got[1]), want[1])
                     and np.allclose(to_host(got[0]), want[0], rtol=1e-12),
                     f"{case}: kneighbors differs from all-NumPy shards")
    if case != "training rows":
        assert_all_ranks(world, _type_ok(world, got[1]), "the queries' array type")


@pytest.mark.parametrize("case", CASES)
def test_radius_neighbors_with_mixed_array_types(world, case):
    X, _ = _data(world)
    train = _mixed(world, X) if case != "queries" else X
    query = _mixed(world, X) if case != "training rows" else X
    dist, ind = _outcome(world, lambda: NearestNeighbors(radius=0.9).fit(train)
                         .radius_neighbors(query, sort_results=True))
    want_d, want_i = NearestNeighbors(radius=0.9).fit(X).radius_neighbors(X, sort_results=True)
    same = all(np.array_equal(to_host(a), b) for a, b in zip(ind, want_i)) and all(
        np.allclose(to_host(a), b, rtol=1e-12) for a, b in zip(dist, want_d))
    assert_all_ranks(world, same, f"{case}: radius_neighbors differs from all-NumPy shards")


@pytest.mark.parametrize("make, result", [
    (lambda: KNeighborsClassifier(3), lambda m, X: m.predict_proba(X)),
    (lambda: KNeighborsRegressor(3, weights="distance"), lambda m, X: m.predict(X)),
], ids=["classifier", "regressor"])
def test_kneighbors_estimators_with_mixed_array_types(world, make, result):
    X, y = _data(world)
    got = _outcome(world, lambda: result(make().fit(_mixed(world, X), _mixed(world, y)),
                                         _mixed(world, X)))
    want = result(make().fit(X, y), X)
    assert_all_ranks(world, np.allclose(to_host(got), want, rtol=1e-12),
                     "the predictions differ from all-NumPy shards")
    assert_all_ranks(world, _type_ok(world, got), "the queries' array type")


def test_dbscan_with_mixed_array_types(world):
    X, _ = _data(world)
    got = _outcome(world, lambda: DBSCAN(eps=0.7, min_samples=3).fit(_mixed(world, X)).labels_)
    want = DBSCAN(eps=0.7, min_samples=3).fit(X).labels_
    assert_all_ranks(world, np.array_equal(to_host(got), want),
                     "labels_ differ from all-NumPy shards")


def test_simulated_ring_pieces_chooses_together():
    """The simulator's twin: a NumPy rank among array_api_strict ranks gets whole blocks, as
    over MPI (it used to cut them in pieces: different steps on different ranks)."""
    from spmdlearn.patterns import simulate_collective

    blocks = [np.arange(12.0).reshape(6, 2), xp.asarray(np.arange(8.0).reshape(4, 2))]

    def run(comm, block):
        return [(owner, start, int(arrays[0].shape[0]))
                for owner, start, arrays in comm.ring_pieces((block,), 2)]

    got = simulate_collective(run, [(b,) for b in blocks])
    assert got == [[(0, 0, 6), (1, 0, 4)], [(1, 0, 4), (0, 0, 6)]], got


@pytest.mark.parametrize("mode", ["connectivity", "distance"])
def test_radius_neighbors_graph_with_mixed_array_types(world, mode):
    """The graph (host memory, SciPy) of array_api_strict queries: their per-query arrays have
    a shape, not a ``len()`` (it raised TypeError on those ranks, one process included)."""
    X, _ = _data(world)
    got = _outcome(world, lambda: NearestNeighbors(radius=0.9).fit(_mixed(world, X))
                   .radius_neighbors_graph(_mixed(world, X), mode=mode))
    want = NearestNeighbors(radius=0.9).fit(X).radius_neighbors_graph(X, mode=mode)
    assert_all_ranks(world, got.shape == want.shape and abs(got - want).max() <= 1e-12,
                     "the graph differs from all-NumPy shards")
