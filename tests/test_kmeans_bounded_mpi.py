"""KMeans with the bounded Lloyd step: the plain step's model, and the bounded step is taken.

On a backend that implements ``kmeans_lloyd_bounded`` (cpu), each Lloyd step skips the rows
whose label cannot change. The fitted model must be the one of the plain step
(``kmeans_lloyd_local``) on every kind of data: labels, centers, inertia and iteration count,
for weights, float32, uneven shards with an empty rank, ties and duplicated rows, empty clusters
(relocation), strict and tolerance convergence and the final E-step of ``max_iter``.
"""

import numpy as np
import pytest

import spmdlearn
from spmdlearn._backends import dispatch_counts, reset_dispatch_counts
from spmdlearn.cluster import KMeans
from spmdlearn.cluster import _kmeans as kmeans_module
from spmdlearn_conformance import assert_all_ranks, assert_identical_on_all_ranks, local_rows

pytest.importorskip("numba")
pytestmark = [pytest.mark.mpi, pytest.mark.timeout(240)]


def _cuts(comm, n, seed):
    """Uneven shards with rank 1 empty (with one rank, all rows)."""
    weights = np.random.default_rng(seed).uniform(0.3, 1.7, comm.size)
    if comm.size > 1:
        weights[1] = 0.0
    inner = np.round(np.cumsum(weights)[:-1] / weights.sum() * n).astype(int)
    return np.concatenate([[0], inner, [n]])


def _data(kind, seed):
    rng = np.random.default_rng(seed)
    n, d = 3000, 5
    if kind == "blobs":
        X = rng.normal(scale=6, size=(6, d))[rng.integers(0, 6, n)] + rng.normal(size=(n, d))
    elif kind == "uniform":
        X = rng.uniform(size=(n, d))
    elif kind == "duplicates":  # few distinct rows, each many times: ties everywhere
        X = rng.normal(size=(40, d))[rng.integers(0, 40, n)]
    elif kind == "grid":  # integer grid: rows exactly between centers
        X = rng.integers(0, 4, size=(n, d)).astype(np.float64)
    else:  # far from the origin, where the centering decides
        X = rng.normal(size=(n, d)) + 1e6
    return X


def _fit_both(monkeypatch, X_local, w_local, **params):
    """The model with the bounded step (and the dispatch counts of that fit), then with the
    plain step, on the cpu backend."""
    with spmdlearn.config_context(backend="cpu"):
        reset_dispatch_counts()
        bounded = KMeans(**params).fit(X_local, sample_weight=w_local)
        counts = dispatch_counts()
        with monkeypatch.context() as m:
            m.setattr(kmeans_module, "_serves_bounded_step", lambda backend: False)
            plain = KMeans(**params).fit(X_local, sample_weight=w_local)
    return bounded, plain, counts


def _assert_same_model(comm, bounded, plain, what):
    assert_all_ranks(comm, np.array_equal(bounded.labels_, plain.labels_), f"{what}: labels_")
    assert_all_ranks(comm, np.array_equal(bounded.cluster_centers_, plain.cluster_centers_),
                     f"{what}: cluster_centers_ differ from the plain step's")
    assert_all_ranks(comm, bounded.inertia_ == plain.inertia_,
                     f"{what}: inertia_ {bounded.inertia_!r} != {plain.inertia_!r}")
    assert_all_ranks(comm, bounded.n_iter_ == plain.n_iter_,
                     f"{what}: n_iter_ {bounded.n_iter_} != {plain.n_iter_}")
    assert_identical_on_all_ranks(comm, bounded.cluster_centers_, "centers")


@pytest.mark.parametrize("kind", ["blobs", "uniform", "duplicates", "grid", "far"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_bounded_step_gives_the_plain_steps_model(comm, monkeypatch, kind, dtype, weighted):
    X = _data(kind, 7).astype(dtype)
    w = np.random.default_rng(8).uniform(0.2, 3.0, len(X)) if weighted else None
    cuts = _cuts(comm, len(X), 9)
    X_local, w_local = local_rows(cuts, comm.rank, X, w)
    bounded, plain, counts = _fit_both(monkeypatch, X_local, w_local, n_clusters=8,
                                       random_state=3, tol=0.0, max_iter=60)
    _assert_same_model(comm, bounded, plain, f"{kind} {np.dtype(dtype).name}")
    # the bounded step ran, on the cpu backend itself, and the plain step did not
    steps = counts.get(("cpu", "kmeans_lloyd_bounded"), {})
    assert_all_ranks(comm, steps.get("served", 0) >= bounded.n_iter_
                     and steps.get("declined", 0) == 0 and steps.get("fallback", 0) == 0,
                     f"bounded step dispatch counts {steps}")
    assert_all_ranks(comm, ("cpu", "kmeans_lloyd_local") not in counts,
                     "the plain step ran beside the bounded one")


@pytest.mark.parametrize("params", [
    {"n_clusters": 5, "init": "random", "n_init": 3, "tol": 1e-4},  # tolerance convergence
    {"n_clusters": 6, "max_iter": 3, "tol": 0.0},  # stopped by max_iter: the final E-step
    {"n_clusters": 12, "init": "random", "n_init": 2, "max_iter": 50},  # empty clusters
], ids=["tol", "max_iter", "relocation"])
def test_bounded_step_convergence_and_relocation(comm, monkeypatch, params):
    X = _data("duplicates" if params["n_clusters"] == 12 else "blobs", 4)
    cuts = _cuts(comm, len(X), 5)
    bounded, plain, _ = _fit_both(monkeypatch, local_rows(cuts, comm.rank, X), None,
                                  random_state=1, **params)
    _assert_same_model(comm, bounded, plain, str(params))


def test_reference_backend_runs_the_plain_step(comm):
    """The reference defines the bounded step (the conformance oracle) but fits with the plain
    step: the bounded hook is optional, taken only on a backend implementing it."""
    X = _data("blobs", 2)
    cuts = _cuts(comm, len(X), 3)
    with spmdlearn.config_context(backend="reference"):
        reset_dispatch_counts()
        KMeans(4, random_state=0).fit(local_rows(cuts, comm.rank, X))
        counts = dispatch_counts()
    assert_all_ranks(comm, ("reference", "kmeans_lloyd_bounded") not in counts
                     and counts[("reference", "kmeans_lloyd_local")]["served"] > 0,
                     f"dispatch counts {counts}")


def _spy_steps(monkeypatch):
    """Every bounded step of the fits that follow, checked against the plain step on the same
    rows, centers and previous labels: ``(labels equal, incremental)`` per call."""
    import spmdlearn_cpu._kmeans as cpu_kmeans

    seen = []
    real = cpu_kmeans.lloyd_bounded

    def spy(X, sample_weight, centers, centers_old, labels_old, lower_old, X_offset=None,
            upper_old=None, sums_old=None, in_place=False):
        # in place: the old bounds are rewritten; the plain step below needs only the labels
        out = real(X, sample_weight, centers, centers_old, labels_old, lower_old, X_offset,
                   upper_old, sums_old, in_place)
        plain_labels, plain = cpu_kmeans.lloyd_local(X, sample_weight, centers, labels_old,
                                                     X_offset)
        scale = max(1.0, float(np.abs(plain.sums).max(initial=0.0)))
        seen.append((np.array_equal(out[0], plain_labels)
                     and np.allclose(out[2].sums, plain.sums, rtol=0, atol=1e-9 * scale)
                     and np.array_equal(out[2].weights == 0, plain.weights == 0)
                     and out[2].n_changed == plain.n_changed,
                     out[2].incremental))
        return out

    monkeypatch.setattr(cpu_kmeans, "lloyd_bounded", spy)
    return seen


@pytest.mark.parametrize("kind", ["blobs", "uniform", "duplicates", "grid", "far"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_incremental_sums_keep_the_plain_steps_labels(comm, monkeypatch, kind, dtype, weighted):
    """Sums updated from the changed rows (on every rank's rows, however few: the bound
    lowered to 0), uneven shards with an empty rank: at every step the labels are the plain
    step's for the same centers and the sums its sums up to rounding (empty clusters exactly
    empty); where no row sits at a tie, the fitted model is the plain step's, bit for bit (the
    sums are recomputed from every row where the model is decided)."""
    X = _data(kind, 7).astype(dtype)
    w = np.random.default_rng(8).uniform(0.2, 3.0, len(X)) if weighted else None
    cuts = _cuts(comm, len(X), 9)
    X_local, w_local = local_rows(cuts, comm.rank, X, w)
    monkeypatch.setattr(kmeans_module, "_INCREMENTAL_ROWS", 0)
    seen = _spy_steps(monkeypatch)
    bounded, plain, _ = _fit_both(monkeypatch, X_local, w_local, n_clusters=8, random_state=3,
                                  tol=0.0, max_iter=60)
    assert_all_ranks(comm, all(ok for ok, _ in seen),
                     f"{kind}: steps whose labels or sums are not the plain step's: "
                     f"{[i for i, (ok, _) in enumerate(seen) if not ok]}")
    took = sum(comm.allgather(sum(inc for _, inc in seen)))
    # (on ties, more rows than the kernel's share fail their bounds at each step: it reads all)
    assert_all_ranks(comm, took > 0 or kind in ("duplicates", "grid"),
                     f"{kind}: no step updated its sums from the changed rows")
    if kind in ("blobs", "uniform", "far"):
        _assert_same_model(comm, bounded, plain, f"{kind} {np.dtype(dtype).name} incremental")
    else:  # ties may fall otherwise with sums rounded otherwise: a fixed point all the same
        assert_all_ranks(comm, bounded.n_iter_ < 60, f"{kind}: n_iter_ {bounded.n_iter_}")


@pytest.mark.parametrize("params", [
    {"n_clusters": 5, "init": "random", "n_init": 3, "tol": 1e-4},  # tolerance convergence
    {"n_clusters": 6, "max_iter": 4, "tol": 0.0},  # stopped by max_iter: the final E-step
    {"n_clusters": 12, "init": "random", "n_init": 2, "max_iter": 50},  # empty clusters
], ids=["tol", "max_iter", "relocation"])
def test_incremental_sums_convergence_and_relocation(comm, monkeypatch, params):
    """With the sums updated from the changed rows: the plain step's model at tolerance and
    strict convergence, at ``max_iter`` and through relocations of empty clusters."""
    X = _data("duplicates" if params["n_clusters"] == 12 else "blobs", 4)
    if params["n_clusters"] == 12:
        X = X + np.random.default_rng(0).normal(scale=1e-3, size=X.shape)  # no exact ties
    cuts = _cuts(comm, len(X), 5)
    monkeypatch.setattr(kmeans_module, "_INCREMENTAL_ROWS", 0)
    seen = _spy_steps(monkeypatch)
    bounded, plain, _ = _fit_both(monkeypatch, local_rows(cuts, comm.rank, X), None,
                                  random_state=1, **params)
    _assert_same_model(comm, bounded, plain, str(params))
    assert_all_ranks(comm, all(ok for ok, _ in seen), f"{params}: a step differs")
