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


def _write(comm, path, text):
    if comm.rank == 0:
        with open(path, "w") as f:
            f.write(text)
    comm.barrier()


def test_read_csv_header_read_as_data_hints_header_true(comm, shared_dir):
    path = os.path.join(shared_dir, "with_header.csv")
    _write(comm, path, "f0,f1,f2\n" + "".join(f"{i},{i + 1},{i + 2}\n" for i in range(20)))
    assert_raises_on_all_ranks(
        comm, ValueError, lambda: read_csv(path),
        match=r"with_header.csv, line 1, column 1: could not convert 'f0' .*header=True")
    assert_all_ranks(comm, sum(comm.allgather(len(read_csv(path, header=True)))) == 20, "header=True")


@pytest.mark.parametrize("header", [False, True])
def test_read_csv_bad_value_names_file_line_and_column(comm, shared_dir, header):
    lines = [f"{i}.5,{i},{-i}" for i in range(30)]
    lines[23] = "23.5,oops,-23"  # file line 24 (25 with the header), column 2
    lines.insert(10, "")  # a blank line still counts as a line of the file
    text = ("a,b,c\n" if header else "") + "\n".join(lines) + "\n"
    path = os.path.join(shared_dir, f"bad{header}.csv")
    _write(comm, path, text)
    line = 25 + int(header)
    name = r" \('b'\)" if header else ""
    assert_raises_on_all_ranks(
        comm, ValueError, lambda: read_csv(path, header=header),
        match=rf"bad{header}.csv, line {line}, column 2{name}: could not convert 'oops'")
    # The hint about a header is only for the first line.
    assert_raises_on_all_ranks(comm, ValueError, lambda: read_csv(path, header=header),
                               match=r"^(?!.*header=True)")


def test_read_parquet_bad_value_names_file_row_and_column(comm, shared_dir):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = os.path.join(shared_dir, "bad.parquet")
    if comm.rank == 0:
        b = [str(i) for i in range(40)]
        b[31] = "n/a"
        pq.write_table(pa.table({"a": np.arange(40.0), "b": b}), path, row_group_size=6)
    comm.barrier()
    assert_raises_on_all_ranks(comm, ValueError, lambda: read_parquet(path),
                               match=r"bad.parquet, row 31 \(0-based, in the file\), column 'b': "
                                     r"could not convert 'n/a'")
    assert_all_ranks(comm, read_parquet(path, columns=["a"]).shape[1] == 1, "good column reads")


def test_read_parquet_by_row_groups(comm, shared_dir):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    data = np.arange(106, dtype=float).reshape(53, 2)
    path = os.path.join(shared_dir, "groups.parquet")
    if comm.rank == 0:
        pq.write_table(pa.table({"a": data[:, 0], "b": data[:, 1]}), path, row_group_size=5)
    comm.barrier()
    local = read_parquet(path, split="row_groups")
    assert_all_ranks(comm, np.array_equal(allgather_rows(local), data), "every row once, in order")
    # Whole groups: every rank's first row starts a group (or it has none).
    assert_all_ranks(comm, len(local) == 0 or local[0, 0] % 10 == 0, "starts on a group boundary")
    assert_raises_on_all_ranks(comm, ValueError, lambda: read_parquet(path, split="bytes"),
                               match="split='bytes'")
