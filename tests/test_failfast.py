"""Failing fast, seen from outside the job: each case runs a small script under ``mpiexec`` as
a subprocess and checks that the job ends within seconds, with the right message, once.

* the watchdog: a collective method called on some ranks only (``if rank == 0:
  model.predict(X)``) ends the job after ``SPMDLEARN_COLLECTIVE_TIMEOUT``, naming the method,
  the user's file and line, and the ranks that never arrived;
* an uncaught exception on one rank ends the job at once, its traceback printed once; with the
  opt-out, the watchdog ends it instead;
* a collective error prints one traceback, the other ranks one line each;
* warnings show once, on rank 0, and a rank's own warning is not lost;
* set-up is local: half the ranks work on a sub-communicator while the others do other things;
* a launcher that started several ranks that cannot talk to each other is an error.
"""

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from run_all import mpiexec_command

pytestmark = [pytest.mark.serial, pytest.mark.timeout(60)]

ROOT = Path(__file__).parent.parent
PRELUDE = """
import sys, time
import numpy as np
from mpi4py import MPI
from spmdlearn.cluster import KMeans
rank, size = MPI.COMM_WORLD.Get_rank(), MPI.COMM_WORLD.Get_size()
X = np.random.RandomState(rank).randn(20 + 7 * rank, 3)
"""


def _run(tmp_path, body, n=3, timeout="3", extra_env=None, limit=30):
    script = tmp_path / "job.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SPMDLEARN_COLLECTIVE_TIMEOUT": timeout,
           "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    start = time.monotonic()
    out = subprocess.run(mpiexec_command(n) + [sys.executable, str(script)], capture_output=True,
                         text=True, timeout=limit, cwd=tmp_path, env=env)
    return out, time.monotonic() - start, script


def _line_of(script, text):
    return next(i for i, line in enumerate(script.read_text().splitlines(), 1) if text in line)


def test_method_called_on_one_rank_only_ends_the_job(tmp_path):
    out, took, script = _run(tmp_path, """
        model = KMeans(2, n_init=1, random_state=0).fit(X)
        if rank == 0:
            model.predict(X)  # the others never come
        time.sleep(60)
    """)
    err = out.stderr
    assert out.returncode != 0, err
    assert took < 25, f"took {took:.0f} s"
    line = _line_of(script, "model.predict(X)")
    assert "rank 0: watchdog: waited" in err, err
    assert "KMeans.predict" in err and f"{script}:{line}" in err, err
    assert "ranks 1, 2 never arrived" in err, err


def test_uncaught_user_error_on_one_rank_ends_the_job_at_once(tmp_path):
    out, took, _ = _run(tmp_path, """
        if rank == 1:
            raise ValueError("bad input on rank one")
        KMeans(2, n_init=1, random_state=0).fit(X)
    """, timeout="600")
    err = out.stderr
    assert out.returncode != 0, err
    assert took < 25, f"took {took:.0f} s"
    assert err.count("Traceback (most recent call last)") == 1, err
    assert "ValueError: bad input on rank one" in err, err
    assert "rank 1: uncaught exception; aborting the job" in err, err


def test_without_abort_hook_the_watchdog_ends_the_job(tmp_path):
    out, took, script = _run(tmp_path, """
        if rank == 1:
            raise ValueError("bad input on rank one")
        KMeans(2, n_init=1, random_state=0).fit(X)
    """, extra_env={"SPMDLEARN_ABORT_ON_ERROR": "0"})
    err = out.stderr
    assert out.returncode != 0, err
    assert took < 25, f"took {took:.0f} s"
    assert "ValueError: bad input on rank one" in err, err
    assert "watchdog" in err and "rank 1 never arrived" in err, err
    line = _line_of(script, "KMeans(2, n_init=1, random_state=0).fit(X)")
    assert f"{script}:{line}" in err, err


def test_collective_error_prints_one_traceback(tmp_path):
    out, took, _ = _run(tmp_path, """
        KMeans(2 if rank != 2 else 3, n_init=1, random_state=0).fit(X)
    """, timeout="600")
    err = out.stderr
    assert out.returncode != 0, err
    assert took < 25, f"took {took:.0f} s"
    assert err.count("Traceback (most recent call last)") == 1, err
    assert "parameters differ across ranks: n_clusters (ranks 0, 1: 2; rank 2: 3)" in err, err
    assert err.count("(traceback printed by rank 0 of the communicator)") == 2, err


def test_warnings_show_once_and_rank_specific_ones_are_kept(tmp_path):
    out, took, _ = _run(tmp_path, """
        import warnings
        from spmdlearn import _backends
        from spmdlearn.linear_model import LogisticRegression
        import spmdlearn.linear_model._logistic as logistic
        original = logistic.call_kernel
        def noisy(kernel, backend=None, **kw):
            if rank == 1 and kernel == "linear_predict":
                warnings.warn("only rank one sees this", RuntimeWarning)
            return original(kernel, backend, **kw)
        logistic.call_kernel = noisy
        y = (X[:, 0] > 0).astype(int)
        model = LogisticRegression(max_iter=1).fit(X, y)
        model.predict(X)
        print(f"rank {rank} done", flush=True)
    """, timeout="60")
    err = out.stderr
    assert out.returncode == 0, err
    assert err.count("ConvergenceWarning") == 1, err
    assert err.count("only rank one sees this [on rank 1 of 3]") == 1, err


def test_half_the_ranks_on_a_sub_communicator(tmp_path):
    """Set-up is local: ranks 0 and 1 fit on their communicator while 2 and 3 do other work."""
    out, took, _ = _run(tmp_path, """
        import spmdlearn
        half = MPI.COMM_WORLD.Split(rank // 2, rank)
        if rank < 2:
            with spmdlearn.config_context(comm=half):
                model = KMeans(2, n_init=1, random_state=0).fit(X)
                print(f"rank {rank} sub fit {model.inertia_:.6f}", flush=True)
        else:
            time.sleep(1.0)
            print(f"rank {rank} other work {float(np.linalg.norm(X)):.3f}", flush=True)
        model = KMeans(2, n_init=1, random_state=0).fit(X)  # then all ranks together
        print(f"rank {rank} world fit {model.inertia_:.6f}", flush=True)
    """, n=4, timeout="20")
    assert out.returncode == 0, out.stderr
    assert took < 25, f"took {took:.0f} s"
    # mpiexec may join two ranks' lines into one, so the records are matched, not split on lines
    sub = dict(re.findall(r"rank (\d) sub fit (\S+?)(?=rank|\s|$)", out.stdout))
    world = dict(re.findall(r"rank (\d) world fit (\S+?)(?=rank|\s|$)", out.stdout))
    assert sorted(sub) == ["0", "1"] and len(set(sub.values())) == 1, out.stdout
    assert sorted(world) == ["0", "1", "2", "3"] and len(set(world.values())) == 1, out.stdout


@pytest.mark.parametrize("variables", [
    {"PMI_SIZE": "3", "PMI_RANK": "1"},
    {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "0"},
    {"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1"},
])
@pytest.mark.parametrize("mpi4py", ["absent", "another MPI"])
def test_launcher_without_a_matching_mpi4py_is_an_error(tmp_path, variables, mpi4py):
    """N silent one-process jobs are refused: without mpi4py, or when mpi4py's MPI sees one rank
    while the launcher announced several (the Open MPI and Slurm variables mean nothing to the
    MPICH that the test environment's mpi4py uses, hence a world of one)."""
    if mpi4py == "another MPI" and "PMI_SIZE" in variables:
        pytest.skip("MPICH itself reads PMI_* variables")
    block = "import sys; sys.modules['mpi4py'] = None\n" if mpi4py == "absent" else ""
    script = tmp_path / "job.py"
    script.write_text(block + textwrap.dedent("""
        import numpy as np
        from spmdlearn.linear_model import LinearRegression
        LinearRegression().fit(np.ones((3, 1)), np.ones(3))
    """))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "OMPI_", "SLURM_", "PMIX_", "MPI_LOCAL"))}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=30, env={**env, **variables})
    assert out.returncode != 0
    size_name = next(k for k in variables if k.endswith(("SIZE", "NUM_TASKS")))
    assert f"started {variables[size_name]} ranks ({size_name}=" in out.stderr, out.stderr
    assert "SPMDLEARN_IGNORE_LAUNCHER=1" in out.stderr
    # The opt-out runs the process on its own.
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=30, env={**env, **variables, "SPMDLEARN_IGNORE_LAUNCHER": "1"})
    assert out.returncode == 0, out.stderr
