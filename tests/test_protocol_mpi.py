"""The collective protocol of the one-pass fits and of KMeans.fit, with fewer synchronisations.

On more than one rank:

* a one-pass fit (BasicStatistics, EmpiricalCovariance, LinearRegression, Ridge) makes two
  status exchanges and no other MPI call: the validation summaries travel in the agreement's
  exchange, the partials in the reduction's, and the exit exchange is left out after the last
  collective agreed that every rank succeeded;
* KMeans' small collectives (k-means++ draws, sums, Lloyd partials) travel in their exchanges.

The failing-fast guarantees hold on every path: bad input or a failure on one rank, before,
inside or after the fused collectives, raises on every rank, naming the rank and the reason;
a warning on one rank before the last collective is still shown once, naming the rank.
"""

import contextlib
import functools
import sys
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from spmdlearn import _backends, comm as comm_module
from spmdlearn.basic_statistics import BasicStatistics
from spmdlearn.cluster import KMeans
from spmdlearn.comm import CollectiveError
from spmdlearn.covariance import EmpiricalCovariance
from spmdlearn.linear_model import LinearRegression, Ridge
from spmdlearn.linear_model import _linear
from _shards import uneven_data
from spmdlearn_conformance import assert_all_ranks, assert_raises_on_all_ranks

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(60)]


_data = functools.partial(uneven_data, target="regression")


def _needs_ranks(comm):
    if comm.size == 1:
        pytest.skip("needs two ranks")


def _bad_rank(comm):
    """A rank with rows (the last rank is empty when there are several)."""
    return 0 if comm.size < 3 else 1


FITS = {
    "BasicStatistics": lambda X, y: BasicStatistics().fit(X),
    "EmpiricalCovariance": lambda X, y: EmpiricalCovariance().fit(X),
    "LinearRegression": lambda X, y: LinearRegression().fit(X, y),
    "Ridge": lambda X, y: Ridge().fit(X, y),
    "KMeans": lambda X, y: KMeans(3, n_init=1, random_state=0, max_iter=20).fit(X),
}
ONE_PASS = ["BasicStatistics", "EmpiricalCovariance", "LinearRegression", "Ridge"]
#: The kernel of each fit's reduction (KMeans: its Lloyd step on the default cpu backend).
KERNELS = {"BasicStatistics": "moments_local", "EmpiricalCovariance": "comoments_local",
           "LinearRegression": "comoments_local", "Ridge": "comoments_local",
           "KMeans": "kmeans_lloyd_bounded"}


class _Counting:
    """The mpi4py communicator, counting the MPI calls made on it by name."""

    def __init__(self, inner):
        self._inner, self.calls = inner, []

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name[:1].isalpha() and name not in ("Get_rank", "Get_size", "Iprobe") and callable(attr):
            def call(*args, **kwargs):
                self.calls.append(name)
                return attr(*args, **kwargs)
            return call
        return attr

    def __eq__(self, other):
        return other is self or other is self._inner


@contextlib.contextmanager
def _counted(world, monkeypatch):
    counting = _Counting(world.mpi)
    monkeypatch.setattr(world, "mpi", counting)
    try:
        yield counting.calls
    finally:
        monkeypatch.setattr(world, "mpi", counting._inner)


def _same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc":
        return a.shape == b.shape and a.tobytes() == b.tobytes()
    return bool(np.all(a == b))


# -- fewer synchronisations --------------------------------------------------------------------
@pytest.mark.parametrize("name", ONE_PASS)
def test_one_pass_fit_is_two_exchanges(world, monkeypatch, name):
    """Two status exchanges (validation, then the reduction with the partials) and no other
    MPI call; the model is the same as with the protocol's full exchanges."""
    _needs_ranks(world)
    X, y = _data(world)
    FITS[name](X, y)  # warm-up
    with _counted(world, monkeypatch) as calls:
        model = FITS[name](X, y)
    assert_all_ranks(world, calls == ["Iallgather", "Iallgather"], f"MPI calls: {calls}")
    # The same model when the partials take the long way (an exchange, then an Allgather, and
    # the exit exchange): the packed buffers are the same bits.
    monkeypatch.setattr(comm_module, "_BASE_WIDTH", 10)
    monkeypatch.setattr(comm_module, "_MAX_WIDTH", 0)
    with _counted(world, monkeypatch) as calls:
        long_way = FITS[name](X, y)
    assert_all_ranks(world, "Allgather" in calls and calls.count("Iallgather") == 3,
                     f"MPI calls without payload room: {calls}")
    fitted = [a for a in vars(model) if a.endswith("_") and not a.startswith("_")]
    same = all(_same_bits(getattr(model, a), getattr(long_way, a)) for a in fitted)
    assert_all_ranks(world, same, f"{name}: model differs between the two protocols")


@pytest.mark.parametrize("init", ["k-means++", "array"])
def test_kmeans_small_collectives_travel_in_their_exchanges(world, monkeypatch, init):
    """k-means++ draws, sums, rank 0's seed for random_state=None and every Lloyd step are
    one exchange each: besides the status exchanges, one fit makes one MPI call (the
    Allgatherv of the distinct labels)."""
    _needs_ranks(world)
    X, y = _data(world)
    if init == "array":
        centers = np.random.RandomState(1).randn(3, X.shape[1])
        fit = lambda: KMeans(3, init=centers, n_init=1, max_iter=20).fit(X)  # noqa: E731
    else:
        fit = lambda: FITS["KMeans"](X, y)  # noqa: E731
    fit()
    with _counted(world, monkeypatch) as calls:
        fit()
    others = [c for c in calls if c != "Iallgather"]
    assert_all_ranks(world, others == ["Allgatherv"], f"MPI calls besides exchanges: {others}")


# -- bad input and failures on one rank, on every path -----------------------------------------
@pytest.mark.parametrize("name", FITS)
def test_non_finite_input_on_one_rank(world, name):
    """Found in the fused reduction's local step (one-pass fits) or in the agreement (KMeans)."""
    X, y = _data(world)
    bad = _bad_rank(world)
    if world.rank == bad:
        X = X.copy()
        X[2, 1] = np.nan
    rank = rf"rank {bad}.*" if world.size > 1 else ""
    assert_raises_on_all_ranks(world, ValueError, lambda: FITS[name](X, y),
                               match=rf"{rank}Input X contains NaN")
    FITS[name](*_data(world))  # every rank continues, in step


@pytest.mark.parametrize("name", FITS)
def test_n_features_differ_on_one_rank(world, name):
    """The summaries' integers differ: the whole summaries follow, to name what differs."""
    _needs_ranks(world)
    X, y = _data(world)
    bad = _bad_rank(world)
    if world.rank == bad:
        X = X[:, :3]
    assert_raises_on_all_ranks(world, ValueError, lambda: FITS[name](X, y),
                               match=rf"n_features differs across ranks.*rank {bad}: 3")


def _inject_kernel_error(monkeypatch, comm, kernel, rank):
    original = _backends.call_kernel

    def call_kernel(name, backend=None, **kwargs):
        if name == kernel and comm.rank == rank:
            raise MemoryError(f"injected: {name}")
        return original(name, backend, **kwargs)

    _replace_call_kernel(monkeypatch, call_kernel)


def _replace_call_kernel(monkeypatch, replacement):
    """``call_kernel`` replaced in every spmdlearn module that calls it, wherever an estimator's
    kernel call lives (its own module or a shared helper)."""
    original = _backends.call_kernel
    for module in list(sys.modules.values()):
        if (getattr(module, "__name__", "").startswith("spmdlearn")
                and getattr(module, "call_kernel", None) is original):
            monkeypatch.setattr(module, "call_kernel", replacement)


@pytest.mark.parametrize("name", FITS)
def test_kernel_error_in_the_fused_reduction(world, monkeypatch, name):
    """A rank whose reduction kernel fails sends its verdict in the reduction's own exchange."""
    X, y = _data(world)
    bad = _bad_rank(world)
    _inject_kernel_error(monkeypatch, world, KERNELS[name], bad)
    expected = CollectiveError if world.size > 1 else (MemoryError, CollectiveError)
    assert_raises_on_all_ranks(world, expected, lambda: FITS[name](X, y),
                               match=rf"rank {bad}: injected" if world.size > 1 else "injected")
    monkeypatch.undo()
    FITS[name](X, y)


def test_failure_between_the_agreement_and_the_reduction(world, monkeypatch):
    """The failing rank leaves through its exit exchange while the others are in the fused
    reduction: both carry the method's reserved payload, so they meet and every rank raises."""
    X, y = _data(world)
    bad = _bad_rank(world)

    def thread_limit(n_jobs):
        if world.rank == bad:
            raise MemoryError("injected before the reduction")
        return contextlib.nullcontext()

    monkeypatch.setattr(_linear, "thread_limit", thread_limit)
    expected = CollectiveError if world.size > 1 else MemoryError
    assert_raises_on_all_ranks(world, expected, lambda: LinearRegression().fit(X, y),
                               match=(rf"rank {bad}: " if world.size > 1 else "")
                               + "injected before the reduction")
    monkeypatch.undo()
    LinearRegression().fit(X, y)


@pytest.mark.parametrize("name", ["BasicStatistics", "LinearRegression"])
def test_failure_on_one_rank_after_the_last_collective(world, monkeypatch, name):
    """Without an exit exchange, a rank that fails alone after the last collective raises its
    own error; the ranks' next collective raises on every rank, naming it and the method."""
    _needs_ranks(world)
    X, y = _data(world)
    bad = _bad_rank(world)
    cls = {"BasicStatistics": BasicStatistics, "LinearRegression": LinearRegression}[name]
    original = cls._set_model

    def set_model(self, *args, **kwargs):
        if world.rank == bad:
            raise MemoryError("injected after the last collective")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "_set_model", set_model)
    raised = None
    try:
        FITS[name](X, y)
    except MemoryError as exc:
        raised = exc
    monkeypatch.undo()
    assert_raises_on_all_ranks(
        world, CollectiveError, lambda: world.exact_sum(1),
        match=rf"after its last collective.*rank {bad}: {name}.fit: MemoryError: injected")
    assert_all_ranks(world, (raised is not None) == (world.rank == bad),
                     f"raised {raised!r} on rank {world.rank}")
    FITS[name](X, y)  # every rank continues, in step
    assert_all_ranks(world, world.exact_sum(1) == world.size, "in step")


def test_same_failure_after_the_last_collective_on_every_rank(world, monkeypatch):
    """An error computed from the agreed partial raises alike on every rank, and the ranks
    continue in step (the next collective finds them all alike)."""
    X, y = _data(world)

    def set_model(self, *args, **kwargs):
        raise ValueError("computed from agreed values")

    monkeypatch.setattr(BasicStatistics, "_set_model", set_model)
    assert_raises_on_all_ranks(world, ValueError, lambda: BasicStatistics().fit(X),
                               match="^computed from agreed values$")
    monkeypatch.undo()
    assert_all_ranks(world, world.exact_sum(1) == world.size, "in step")


def test_warning_on_one_rank_before_the_last_collective(world, monkeypatch):
    """It keeps the exit exchange: rank 0 shows it, naming the rank it came from."""
    _needs_ranks(world)
    X, y = _data(world)
    bad = _bad_rank(world)
    original = _backends.call_kernel

    def call_kernel(name, backend=None, **kwargs):
        if name == "moments_local" and world.rank == bad:
            warnings.warn("injected kernel warning", RuntimeWarning)
        return original(name, backend, **kwargs)

    _replace_call_kernel(monkeypatch, call_kernel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        BasicStatistics().fit(X)
    messages = [str(w.message) for w in caught]
    shown = any(f"injected kernel warning [on rank {bad} of {world.size}]" in m for m in messages)
    assert_all_ranks(world, shown or world.rank != 0, f"rank 0 recorded {messages}")


def test_warning_after_the_last_collective(world):
    """Warnings after the last collective (computed from agreed values) reach every rank."""
    X, _ = _data(world)
    X = np.zeros_like(X)  # one distinct point: fewer distinct clusters than n_clusters
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        KMeans(3, n_init=1, random_state=0).fit(X)
    ok = any(issubclass(w.category, ConvergenceWarning) and "distinct clusters" in str(w.message)
             for w in caught)
    assert_all_ranks(world, ok, f"recorded {[str(w.message) for w in caught]}")


def test_rank_dependent_collective_after_the_last_one(world, monkeypatch):
    """A rank that makes one more collective after the last one (a rank-dependent branch)
    meets the other ranks' next collective with rows of its size: every rank raises."""
    _needs_ranks(world)
    X, _ = _data(world)
    bad = _bad_rank(world)
    original = BasicStatistics._set_model

    def set_model(self, *args, **kwargs):
        if world.rank == bad:
            world.exact_sum(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BasicStatistics, "_set_model", set_model)

    def run():
        BasicStatistics().fit(X)
        world.exact_sum(1)  # only the other ranks get here

    assert_raises_on_all_ranks(world, CollectiveError, run, match="different collectives")
    monkeypatch.undo()
    assert_all_ranks(world, world.exact_sum(1) == world.size, "in step")


# -- small data in the status exchange: exact for every dtype and size -------------------------
@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.bool_, np.complex128, np.int64])
@pytest.mark.parametrize("size", [0, 3, 40])
def test_allgather_array_in_the_exchange_or_after_it(world, dtype, size):
    """Small arrays ride in the exchange (any byte count), larger ones follow it: same values."""
    def values(rank):
        return ((np.arange(size) * 3 + 7 * rank) % 5).astype(dtype)

    got = world.allgather_array(values(world.rank))
    expected = np.stack([values(r) for r in range(world.size)])
    assert_all_ranks(world, got.dtype == expected.dtype and got.shape == expected.shape
                     and np.array_equal(got, expected), f"{got!r}")


@pytest.mark.parametrize("trailing, dtype", [((3,), np.float32), ((1,) * 8, np.float64),
                                             ((2, 1, 1, 1, 1, 1, 1), np.int32)])
def test_row_layouts_in_the_exchange_or_pickled(world, trailing, dtype):
    """Layouts travel as integers; a trailing shape of more than 7 axes sends them pickled. An
    empty rank takes the others' layout either way."""
    comm = world
    n_local = 0 if comm.rank == comm.size - 1 and comm.size > 1 else comm.rank + 2
    width = int(np.prod(trailing))
    counts = [0 if r == comm.size - 1 and comm.size > 1 else r + 2 for r in range(comm.size)]
    start = sum(counts[:comm.rank])
    rows = (np.arange(n_local * width) + width * start).astype(np.int64).astype(dtype)
    local = rows.reshape((n_local,) + trailing) if n_local else np.zeros((0, 1))
    expected = np.arange(sum(counts) * width).astype(np.int64).astype(dtype).reshape(
        (sum(counts),) + trailing)
    out = comm.allgather_rows(local)
    assert_all_ranks(comm, out.dtype == expected.dtype and np.array_equal(out, expected),
                     f"{out.dtype} {out.shape}")


@pytest.mark.parametrize("n_ids", [2, 7])
def test_fetch_rows_in_the_exchange_or_after_it(world, n_ids):
    """Outside a method the payload holds 10 values: two rows of 4 features and their flags
    travel in the exchange, seven follow it. Either way, each row from its owner, in order."""
    X, _ = _data(world)
    start, total = world.offsets(X.shape[0])
    ids = np.random.RandomState(5).randint(0, total, size=n_ids)
    everything = world.allgather_rows(X)
    got = world.fetch_rows(X.astype(np.float32), ids, start)
    assert_all_ranks(world, got.dtype == np.float32
                     and np.array_equal(got, everything[ids].astype(np.float32)), f"{got}")
