"""Device arrays over MPI: one verdict for all ranks, and the same results whether the ring
passes SYCL blocks to MPI directly or stages them through host memory.

Direct passing is forced on with ``SPMDLEARN_DEVICE_BUFFERS=1`` for USM that the host can
address (``shared`` and ``host`` on the OpenCL CPU device), which any MPI library can read.
Skipped, with the reason, where dpnp or a SYCL device is missing.
"""

from __future__ import annotations

import numpy as np
import pytest

import spmdlearn
from spmdlearn import comm as comm_module
from spmdlearn.comm import Comm, device_buffer_transfers, reset_device_buffer_transfers
from spmdlearn_conformance import assert_all_ranks, local_rows, make_data, random_cuts

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]



def _fresh(comm) -> Comm:
    """A new Comm over the same communicator: it asks for the verdict again."""
    return Comm(comm.mpi)


def test_one_verdict_for_all_ranks(comm, monkeypatch):
    """A rank whose library says no makes the verdict no on every rank, naming it; all yes
    is yes; a bad setting on any rank raises on every rank."""
    def only_rank_0(kind):
        return (comm.rank == 0, f"rank-local answer {comm.rank == 0}")

    monkeypatch.setattr(comm_module, "device_buffer_support", only_rank_0)
    verdicts = _fresh(comm).device_buffers()
    every = comm.allgather(verdicts)
    assert_all_ranks(comm, all(v == every[0] for v in every), "the verdict differs by rank")
    direct, why = verdicts["sycl"]
    assert_all_ranks(comm, direct is (comm.size == 1), f"verdict {verdicts}")
    if comm.size > 1:
        assert_all_ranks(comm, "rank 1: rank-local answer False" in why, why)
    monkeypatch.setattr(comm_module, "device_buffer_support", lambda kind: (True, "yes"))
    assert_all_ranks(comm, _fresh(comm).device_buffers()["sycl"] == (True, "yes"), "all yes")

    def bad_on_last(kind):
        if comm.rank == comm.size - 1:
            raise ValueError("SPMDLEARN_DEVICE_BUFFERS='maybe' is not one of 0, 1 or auto")
        return True, "yes"

    monkeypatch.setattr(comm_module, "device_buffer_support", bad_on_last)
    with pytest.raises(ValueError, match="maybe"):
        _fresh(comm).device_buffers()


def _ring(comm, dpnp, usm_type, dtype):
    n_local = [5, 0, 3, 7][comm.rank % 4]  # uneven, rank 1 empty
    X = (np.arange(n_local * 3).reshape(n_local, 3) + 100.0 * comm.rank).astype(dtype)
    ids = np.arange(n_local, dtype=np.int64) + 1000 * comm.rank
    seen = {}
    for owner, (Y, G) in comm.ring((dpnp.asarray(X, usm_type=usm_type),
                                    dpnp.asarray(ids, usm_type=usm_type))):
        ok = isinstance(Y, dpnp.ndarray) and isinstance(G, dpnp.ndarray) and Y.dtype == dtype
        seen[owner] = (ok, dpnp.asnumpy(Y), dpnp.asnumpy(G))
    return seen


@pytest.mark.parametrize("usm_type", ["shared", "host"])
def test_ring_direct_and_staged_give_the_same_blocks(comm, dpnp, monkeypatch, usm_type):
    results = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("SPMDLEARN_DEVICE_BUFFERS", setting)
        reset_device_buffer_transfers()
        results[setting] = _ring(_fresh(comm), dpnp, usm_type, np.float32)
        counts = device_buffer_transfers()
        sends = 2 * (comm.size - 1)  # two blocks per step
        want = ({("sycl", "direct"): sends} if setting == "1" else {("sycl", "staged"): sends}) \
            if comm.size > 1 else {}
        assert_all_ranks(comm, counts == want, f"SPMDLEARN_DEVICE_BUFFERS={setting}: {counts}")
    for setting, seen in results.items():
        assert_all_ranks(comm, sorted(seen) == list(range(comm.size)), f"owners {sorted(seen)}")
        for owner, (ok, Y, G) in seen.items():
            n = [5, 0, 3, 7][owner % 4]
            want = (np.arange(n * 3).reshape(n, 3) + 100.0 * owner).astype(np.float32)
            good = ok and np.array_equal(Y, want) and np.array_equal(
                G, np.arange(n, dtype=np.int64) + 1000 * owner)
            assert_all_ranks(comm, good, f"setting {setting}: block of rank {owner}")


def test_estimators_are_the_same_direct_and_staged(dpnp, monkeypatch):
    """kNN (the ring top-k) and DBSCAN (the ring counts and label propagation) on dpnp rows
    in shared USM: identical with device buffers passed directly, staged, and on NumPy (over
    the world only: the first calls of the device kernels take seconds)."""
    from spmdlearn.cluster import DBSCAN
    from spmdlearn.comm import get_comm
    from spmdlearn.neighbors import KNeighborsClassifier

    comm = get_comm()
    if comm.size == 1:
        pytest.skip("one rank sends nothing: the ring tests cover the verdict there")

    X, y = make_data(3, 60, 3, 1)
    y = (y > np.median(y)).astype(np.int64)
    cuts = random_cuts(60, comm.size, 3)
    Xl, yl = local_rows(cuts, comm.rank, X), local_rows(cuts, comm.rank, y)

    def run(to):
        knn = KNeighborsClassifier(n_neighbors=4).fit(to(Xl), to(yl))
        dist, ind = knn.kneighbors(to(Xl))
        labels = DBSCAN(eps=1.5, min_samples=4).fit(to(Xl)).labels_
        return [np.asarray(dpnp.asnumpy(a) if isinstance(a, dpnp.ndarray) else a)
                for a in (dist, ind, knn.predict(to(Xl)), labels)]

    expected = run(lambda a: a)
    for setting in ("1", "0"):
        monkeypatch.setenv("SPMDLEARN_DEVICE_BUFFERS", setting)
        reset_device_buffer_transfers()
        with spmdlearn.config_context(comm=_fresh(comm)):
            got = run(lambda a: dpnp.asarray(a, usm_type="shared"))
        counts = device_buffer_transfers()
        how = "direct" if setting == "1" else "staged"
        used = counts.get(("sycl", how), 0) > 0 and set(counts) == {("sycl", how)}
        assert_all_ranks(comm, used or comm.size == 1, f"{setting}: transfers {counts}")
        same = all(np.array_equal(a, b) for a, b in zip(got, expected))
        assert_all_ranks(comm, same, f"SPMDLEARN_DEVICE_BUFFERS={setting}: differs from NumPy")
