"""The communicator layer under mpiexec, on COMM_WORLD, COMM_SELF and a split communicator."""

import numpy as np
import pytest

from spmdlearn.comm import CollectiveError
from spmdlearn.collective import allreduce
from spmdlearn.contract import simulate
from spmdlearn.reference import COMOMENTS, MOMENTS
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_identical_on_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    make_data,
    random_cuts,
)

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("seed", range(3))
def test_allreduce_is_bitwise_identical_and_equals_simulator(comm, seed):
    X, _ = make_data(seed, 77, 5, offset=1e6)
    cuts = random_cuts(77, comm.size, seed)
    # The reference's kernel on every rank, as in the simulator (auto may pick another backend).
    partial = allreduce(COMOMENTS, local_rows(cuts, comm.rank, X), None, None, comm=comm,
                        backend="reference")
    for field in partial:
        assert_identical_on_all_ranks(comm, field, "comoments field")
    # The MPI run folds in the simulator's order: the same bits.
    shards = [(X[lo:hi], None, None) for lo, hi in zip(cuts[:-1], cuts[1:])]
    expected = simulate(COMOMENTS, shards)
    ok = all(np.array_equal(a, b) for a, b in zip(partial, expected))
    assert_all_ranks(comm, ok, "allreduce differs from the simulator")


def test_allgather_rows_offsets_and_row_counts(comm):
    n_local = comm.rank + (comm.rank % 2)  # uneven, rank 0 empty
    local = np.full((n_local, 3), float(comm.rank))
    rows = comm.allgather_rows(local)
    counts = [r + (r % 2) for r in range(comm.size)]
    expected = np.concatenate([np.full((c, 3), float(r)) for r, c in enumerate(counts)])
    assert_allclose_all_ranks(comm, rows, expected, rtol=0, what="allgather_rows")
    start, total = comm.offsets(n_local)
    assert_all_ranks(comm, (start, total) == (sum(counts[:comm.rank]), sum(counts)), "offsets")
    got = comm.row_counts(n_local)
    assert_all_ranks(comm, got.dtype == np.int64 and got.tolist() == counts, "row_counts")


def test_sendrecv_ring(comm):
    block = np.array([comm.rank, comm.rank * 10.0])
    got = comm.sendrecv(block, dest=(comm.rank + 1) % comm.size, source=(comm.rank - 1) % comm.size)
    left = (comm.rank - 1) % comm.size
    assert_allclose_all_ranks(comm, got, [left, left * 10.0], rtol=0, what="ring")


def test_agree_names_every_failing_rank(comm):
    def check():
        if comm.rank % 2 == 1:
            raise ValueError(f"odd rank {comm.rank}")
        return comm.rank

    if comm.size == 1:
        assert_all_ranks(comm, comm.agree(check) == 0, "agree result")
        return
    odd = ", ".join(str(r) for r in range(1, comm.size, 2))
    assert_raises_on_all_ranks(comm, ValueError, lambda: comm.agree(check),
                               match=rf"failed on {len(range(1, comm.size, 2))} of {comm.size} "
                                     rf"ranks \({odd}\):\nrank 1: odd rank 1")


def test_non_input_error_becomes_collective_error(comm):
    def local(X, w):
        if comm.rank == 0:
            raise ZeroDivisionError("boom")
        return MOMENTS.local(X, w)

    X = np.ones((2, 2))
    assert_raises_on_all_ranks(comm, CollectiveError,
                               lambda: allreduce(MOMENTS, X, None, comm=comm, local=local),
                               match="rank 0: boom" if comm.size > 1 else "boom")


def test_library_comm_is_a_duplicate():
    from mpi4py import MPI

    from spmdlearn.comm import get_comm

    comm = get_comm()
    result = MPI.Comm.Compare(comm.mpi, MPI.COMM_WORLD)
    assert_all_ranks(comm, result == MPI.CONGRUENT, "library comm is a Dup of COMM_WORLD")


from spmdlearn.reference import LLOYD, TSQR  # noqa: E402

# Drawn once from a fixed seed, the same on every rank. (Hypothesis under mpiexec drew
# different examples on different ranks once other tests had run in the same processes, and
# the ranks then called different collectives.)
_PARTITION_CASES = [(int(n), int(d), int(seed), name)
                    for (n, d, seed), name in zip(
                        np.random.default_rng(20261130).integers([0, 1, 0], [61, 6, 2**31 - 1],
                                                                 size=(32, 3)),
                        ["moments", "comoments", "tsqr", "lloyd"] * 8)]
_PARTITION_CASES += [(0, 3, 1, "moments"), (1, 1, 2, "comoments"), (2, 5, 3, "tsqr"),
                     (3, 2, 4, "lloyd")]  # every rank empty, or one row in all


@pytest.mark.parametrize("n, d, seed, name", _PARTITION_CASES)
def test_partition_invariance_under_mpi(n, d, seed, name):
    """Every rank builds the same table, keeps its random slice (empty ones included), and the
    MPI result equals the one-shard result; the verdict is collective."""
    from spmdlearn.comm import get_comm

    comm = get_comm()
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + rng.choice([0.0, 1e6])
    cuts = random_cuts(n, comm.size, seed)
    Xl = local_rows(cuts, comm.rank, X)
    contract, args = {
        "moments": (MOMENTS, lambda A: (A, None)),
        "comoments": (COMOMENTS, lambda A: (A, None, None)),
        "tsqr": (TSQR, lambda A: (A, np.zeros(d))),
        "lloyd": (LLOYD, lambda A: (A, np.ones(len(A)), np.eye(2, d), np.full(len(A), -1, np.int32),
                                  np.full(A.shape[1], 0.5, A.dtype))),
    }[name]
    got = allreduce(contract, *args(Xl), comm=comm)
    whole = contract.local(*args(X))
    ok = all(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=1e-6)
             for a, b in zip(got, whole))
    assert_all_ranks(comm, ok, f"{name}: MPI result differs from one shard")
