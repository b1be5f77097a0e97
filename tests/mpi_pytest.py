"""Run pytest on this rank; ranks other than 0 write their output to a log file.

Used as ``mpiexec -n N python tests/mpi_pytest.py [pytest arguments]``. Rank 0's report names
any failure on any rank (tests/conftest.py agrees on every test's outcome).
"""

import os
import sys
import tempfile

from mpi4py import MPI

rank = MPI.COMM_WORLD.Get_rank()
if rank != 0:
    log = os.path.join(tempfile.gettempdir(), f"spmdlearn-pytest-rank{rank}.log")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    args = [a for a in sys.argv[1:] if not a.startswith("--junitxml")]
else:
    args = sys.argv[1:]

import pytest  # noqa: E402

sys.exit(pytest.main(args))
