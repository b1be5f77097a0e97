"""Each rank reads its own rows from a file, never the whole file.

Rows are split evenly by count in rank order: rank ``r`` of ``p`` gets rows
``[r * n // p, (r + 1) * n // p)``; with fewer rows than ranks some ranks get none. Every
reader is collective: a failure on any rank (a missing file, a bad row) raises on every rank.
"""

from __future__ import annotations

import io
import os

import numpy as np

from .._array_api import like, to_host
from ..comm import get_comm

__all__ = ["read_npy", "read_csv", "read_parquet", "row_range", "gather", "allgather_rows"]


def row_range(n_rows: int, rank: int, size: int) -> tuple[int, int]:
    """The rows ``[lo, hi)`` of ``rank`` when ``n_rows`` are split evenly over ``size`` ranks."""
    return rank * n_rows // size, (rank + 1) * n_rows // size


def read_npy(path, comm=None) -> np.ndarray:
    """Collective: this rank's rows of a ``.npy`` file, through a memory map (the rest is not read).

    Parameters
    ----------
    path : str or path-like
        The same file on every rank (a shared file system).

    Returns
    -------
    X_local : ndarray of shape (n_local, ...)
        A copy of this rank's rows (the map is closed).
    """
    comm = get_comm(comm)

    def read():
        data = np.load(path, mmap_mode="r")
        if data.ndim == 0:
            raise ValueError(f"{path}: a 0-d array has no rows")
        lo, hi = row_range(data.shape[0], comm.rank, comm.size)
        out = np.array(data[lo:hi])
        del data
        return out

    return comm.agree(read)


def _line_starts(f, lo, hi):
    """Offsets of the lines that start in the byte range ``[lo, hi)`` of an open binary file."""
    starts = []
    f.seek(lo)
    if lo > 0:
        f.seek(lo - 1)
        if f.read(1) != b"\n":  # the line containing lo started before it: skip to the next
            f.readline()
    position = f.tell()
    while position < hi:
        line = f.readline()
        if not line:
            break
        if line.strip():
            starts.append(position)
        position = f.tell()
    return starts


def read_csv(path, *, delimiter=",", header=False, dtype=np.float64, usecols=None, comm=None):
    """Collective: this rank's rows of a CSV file of numbers; no rank reads the whole file.

    Each rank scans an equal byte range for line starts (ranges are aligned to line starts),
    the line counts are agreed, and each rank then parses only its own lines: rows split evenly
    by count, as every reader here.

    Parameters
    ----------
    path : str or path-like
    delimiter : str, default=","
    header : bool, default=False
        Whether the first line holds column names (skipped).
    dtype : dtype, default=float64
    usecols : sequence of int, default=None

    Returns
    -------
    X_local : ndarray of shape (n_local, n_columns)
    """
    comm = get_comm(comm)

    def scan():
        size = os.path.getsize(path)
        lo, hi = row_range(size, comm.rank, comm.size)
        names = None
        with open(path, "rb") as f:
            starts = _line_starts(f, lo, hi)
            if header and comm.rank == 0 and starts and starts[0] == 0:
                starts = starts[1:]
                f.seek(0)
                names = [n.strip() for n in f.readline().decode().strip().split(delimiter)]
        return np.asarray(starts, dtype=np.int64), size, names

    starts, size, header_names = comm.agree(scan)
    names = comm.bcast(header_names if comm.rank == 0 else None)
    n_names = None if names is None else (len(names) if usecols is None else len(usecols))
    all_starts = comm.allgather_rows(starts)  # one offset per row: 8 bytes a row
    n_rows = len(all_starts)
    lo, hi = row_range(n_rows, comm.rank, comm.size)

    def parse():
        if lo == hi:
            return None
        begin = int(all_starts[lo])
        end = int(all_starts[hi]) if hi < n_rows else size
        with open(path, "rb") as f:
            f.seek(begin)
            text = f.read(end - begin).decode()
        try:
            return np.loadtxt(io.StringIO(text), delimiter=delimiter, dtype=dtype,
                              usecols=usecols, ndmin=2)
        except ValueError as exc:
            raise ValueError(_csv_error(path, begin, text, delimiter, dtype, usecols, names,
                                        header, exc)) from exc

    rows, widths = comm.agree(parse, summarize=lambda r: None if r is None else r.shape[1])
    known = {w for w in widths if w is not None}
    if len(known) > 1:
        raise ValueError(f"{path}: rows have different numbers of columns across ranks: "
                         + ", ".join(f"rank {r}: {w}" for r, w in enumerate(widths)))
    if rows is None:
        width = known.pop() if known else (n_names or 0)
        return np.empty((0, width), dtype=dtype)
    return rows


def _csv_error(path, begin, text, delimiter, dtype, usecols, names, header, exc) -> str:
    """Say where a CSV value failed: the file, its line number (1-based, counting every line
    of the file), the column (1-based, and its name from the header) and the value."""
    with open(path, "rb") as f:
        line_no = f.read(begin).count(b"\n") + 1  # the error path only: reads the prefix
    converter = np.dtype(dtype).type
    for offset, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        fields = line.split(delimiter)
        wanted = range(len(fields)) if usecols is None else usecols
        for j in wanted:
            if j >= len(fields):
                return (f"{path}, line {line_no + offset}: {len(fields)} columns, but column "
                        f"{j + 1} was asked for ({exc})")
            try:
                converter(fields[j])
            except ValueError:
                name = f" ({names[j]!r})" if names is not None and j < len(names) else ""
                message = (f"{path}, line {line_no + offset}, column {j + 1}{name}: could not "
                           f"convert {fields[j].strip()!r} to {np.dtype(dtype).name}")
                if line_no + offset == 1 and not header:
                    message += (". The first line looks like a header row of column names: "
                                "pass header=True to skip it")
                return message
    return f"{path}, lines {line_no} to {line_no + text.count(chr(10))}: {exc}"


def read_parquet(path, columns=None, *, split="rows", comm=None) -> np.ndarray:
    """Collective: this rank's rows of a Parquet file, reading only the row groups that hold them.

    Needs pyarrow (``pip install 'spmdlearn[parquet]'``).

    Parameters
    ----------
    path : str or path-like
    columns : list of str, default=None
        Columns to read (all if None), stacked in this order as float64.
    split : {"rows", "row_groups"}, default="rows"
        "rows": rows split evenly by count in rank order, as every reader here (a row group
        that straddles two ranks is read by both, each keeping its rows). "row_groups": whole
        row groups, contiguous in rank order and balanced by rows, so that each rank reads only
        its own row groups and no group is read twice (the shards are as even as the groups).

    Returns
    -------
    X_local : ndarray of shape (n_local, n_columns)

    Raises
    ------
    ValueError
        On every rank, if a value is not a number (the message names the file, the row in the
        file, 0-based, and the column) or ``split`` is unknown.
    """
    comm = get_comm(comm)

    def read():
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ImportError("read_parquet needs pyarrow: pip install 'spmdlearn[parquet]'") from exc
        f = pq.ParquetFile(path)
        meta = f.metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        total = sum(sizes)
        bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        if split == "rows":
            lo, hi = row_range(total, comm.rank, comm.size)
            groups = [g for g in range(len(sizes)) if bounds[g] < hi and bounds[g + 1] > lo]
        elif split == "row_groups":
            # Each group goes to the rank whose even share holds its middle row.
            owner = [min(comm.size - 1, (2 * bounds[g] + sizes[g]) * comm.size // (2 * max(total, 1)))
                     for g in range(len(sizes))]
            groups = [g for g in range(len(sizes)) if owner[g] == comm.rank and sizes[g]]
            lo = bounds[groups[0]] if groups else 0
            hi = bounds[groups[-1] + 1] if groups else 0
        else:
            raise ValueError(f"split={split!r} should be 'rows' or 'row_groups'")
        names = columns or f.schema_arrow.names
        if not groups:
            return np.empty((0, len(names)))
        table = f.read_row_groups(groups, columns=names)
        offset = lo - bounds[groups[0]]
        table = table.slice(offset, hi - lo)
        return np.column_stack([_parquet_column(path, table, c, lo) for c in names])

    return comm.agree(read)


def gather(local: np.ndarray, root: int = 0, comm=None):
    """Collective: every rank's rows, in rank order, on ``root`` (None elsewhere).

    Memory: ``root`` holds all ranks' rows; use it only for what fits one process (a result to
    save, a small sample to plot).

    An array-API array (array-api-strict, CuPy, ...) travels through host memory (MPI sends
    host buffers: a counted fallback, :func:`spmdlearn._array_api.fallbacks`) and the result
    is of its type and on its device.
    """
    rows = get_comm(comm).gather_rows(np.asarray(to_host(local, "gather")), root=root)
    return like(rows, local)


def allgather_rows(local: np.ndarray, comm=None) -> np.ndarray:
    """Collective: every rank's rows, in rank order, on every rank (``Allgatherv``).

    Memory: every rank holds all ranks' rows. Array-API arrays as in :func:`gather`.
    """
    return like(get_comm(comm).allgather_rows(np.asarray(to_host(local, "allgather_rows"))),
                local)


def _parquet_column(path, table, name, first_row):
    """One column as float64; a value that is not a number names the file, row and column."""
    values = table.column(name).to_numpy(zero_copy_only=False)
    try:
        return values.astype(np.float64)
    except (ValueError, TypeError) as exc:
        for i, value in enumerate(values):
            try:
                np.float64(value)
            except (ValueError, TypeError):
                raise ValueError(f"{path}, row {first_row + i} (0-based, in the file), column "
                                 f"{name!r}: could not convert {value!r} to float64") from exc
        raise ValueError(f"{path}, column {name!r}: {exc}") from exc
