"""Readers: each rank gets its rows (split evenly by count) without loading the whole file."""

import os
import tempfile

import numpy as np
import pytest

from spmdlearn.io import allgather_rows, gather, read_csv, read_npy, read_parquet, row_range, shard
from spmdlearn_conformance import assert_all_ranks, assert_raises_on_all_ranks

pytestmark = pytest.mark.mpi


@pytest.fixture
def shared_dir(comm):
    """One directory every rank sees (rank 0 names it)."""
    path = comm.bcast(tempfile.mkdtemp(prefix="spmdlearn-io-") if comm.rank == 0 else None)
    yield path
    comm.barrier()


def _expected(data, comm):
    lo, hi = row_range(len(data), comm.rank, comm.size)
    return data[lo:hi]


@pytest.mark.parametrize("n_rows", [0, 1, 3, 57])
def test_read_npy(comm, shared_dir, n_rows):
    data = np.arange(n_rows * 3, dtype=float).reshape(n_rows, 3)
    path = os.path.join(shared_dir, f"x{n_rows}.npy")
    if comm.rank == 0:
        np.save(path, data)
    comm.barrier()
    local = read_npy(path)
    assert_all_ranks(comm, np.array_equal(local, _expected(data, comm)), "read_npy rows")
    assert_all_ranks(comm, np.array_equal(allgather_rows(local), data), "allgather_rows")
    gathered = gather(local, root=0)
    assert_all_ranks(comm, (np.array_equal(gathered, data) if comm.rank == 0 else gathered is None),
                     "gather on root only")


@pytest.mark.parametrize("n_rows", [0, 2, 41])
@pytest.mark.parametrize("header", [False, True])
def test_read_csv(comm, shared_dir, n_rows, header):
    rng = np.random.default_rng(n_rows)
    data = np.round(rng.normal(size=(n_rows, 4)), 6)
    path = os.path.join(shared_dir, f"x{n_rows}{header}.csv")
    if comm.rank == 0:
        # Lines of different lengths, so byte ranges and row counts do not line up.
        with open(path, "w") as f:
            if header:
                f.write("a,b,c,d\n")
            for row in data:
                f.write(",".join(repr(float(v)) for v in row) + "\n")
    comm.barrier()
    local = read_csv(path, header=header)
    expected = _expected(data, comm)
    if n_rows == 0 and not header:
        expected = np.empty((0, 0))  # no row and no header: nothing tells the width
    assert_all_ranks(comm, local.shape[0] == expected.shape[0] and np.allclose(local, expected),
                     f"read_csv rows {local.shape} vs {expected.shape}")


def test_read_parquet(comm, shared_dir):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    data = np.arange(100, dtype=float).reshape(50, 2)
    path = os.path.join(shared_dir, "x.parquet")
    if comm.rank == 0:
        table = pa.table({"a": data[:, 0], "b": data[:, 1]})
        pq.write_table(table, path, row_group_size=7)
    comm.barrier()
    local = read_parquet(path)
    assert_all_ranks(comm, np.array_equal(local, _expected(data, comm)), "read_parquet rows")
    only_b = read_parquet(path, columns=["b"])
    assert_all_ranks(comm, np.array_equal(only_b, _expected(data, comm)[:, 1:]), "columns")


def test_missing_file_fails_on_every_rank(comm, shared_dir):
    path = os.path.join(shared_dir, "missing.npy")
    assert_raises_on_all_ranks(comm, (FileNotFoundError, Exception), lambda: read_npy(path),
                               match="missing.npy")


def test_shard_is_even_by_count(comm):
    X = np.arange(10)
    lo, hi = row_range(10, comm.rank, comm.size)
    assert_all_ranks(comm, np.array_equal(shard(X), X[lo:hi]), "shard")
