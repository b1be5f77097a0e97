"""Test configuration for one process and for mpiexec.

Under ``mpiexec -n N`` every rank runs the same tests in the same order. Two rules keep a
failure on one rank from hanging the others:

* tests assert collectively (``assert_all_ranks``), never rank-locally before a collective;
* every test's outcome is agreed after it ran (``pytest_runtest_call`` below): if any rank
  failed, every rank fails that test, and rank 0's report names the ranks and their errors.

A hang still fails: pytest-timeout (``timeout_method = "thread"``) ends the process, and
mpiexec then ends the job.
"""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import HealthCheck, settings

# Identical draws on every rank: derandomized, no example database.
settings.register_profile("spmd", derandomize=True, database=None, deadline=None,
                          max_examples=int(os.environ.get("SPMDLEARN_HYPOTHESIS_EXAMPLES", "40")),
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("spmd")

try:
    from mpi4py import MPI
except ImportError:  # pragma: no cover
    MPI = None

_WORLD = MPI.COMM_WORLD.Dup() if MPI is not None else None


def world_size() -> int:
    return 1 if _WORLD is None else _WORLD.Get_size()


def pytest_collection_modifyitems(config, items):
    """Under mpiexec with several ranks, run only the collective tests (marked ``mpi``)."""
    if world_size() > 1:
        skip = pytest.mark.skip(reason="one-process test: run without mpiexec")
        for item in items:
            if "mpi" not in item.keywords:
                item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Agree on each test's outcome over all ranks."""
    if world_size() == 1:
        return (yield)
    error = None
    try:
        result = yield
    except BaseException as exc:  # noqa: BLE001 - includes pytest's outcome exceptions
        error = exc
    outcomes = _WORLD.allgather(None if error is None else f"{type(error).__name__}: {error}")
    failed = [(rank, o) for rank, o in enumerate(outcomes) if o is not None]
    if error is not None:
        if isinstance(error, AssertionError) and len(failed) > 1:
            others = "\n".join(f"rank {r}: {o}" for r, o in failed)
            raise AssertionError(f"{error}\n-- every failing rank --\n{others}") from error
        raise error
    if failed:
        raise AssertionError("failed on other ranks:\n"
                             + "\n".join(f"rank {r}: {o}" for r, o in failed))
    return result


def _communicators():
    """The library's COMM_WORLD duplicate, COMM_SELF, and a split of the world in two."""
    comms = {"world": None}
    if MPI is not None:
        comms["self"] = MPI.COMM_SELF
        comms["split"] = "split"
    return comms


_split_cache = {}


@pytest.fixture(params=list(_communicators()))
def comm(request):
    """A spmdlearn Comm over which the test's body runs, set as the library's communicator."""
    import spmdlearn
    from spmdlearn.comm import get_comm

    kind = request.param
    if kind == "split":
        if "split" not in _split_cache:
            # Collective over the world, once: ranks 0, 2, ... and 1, 3, ...
            _split_cache["split"] = _WORLD.Split(_WORLD.Get_rank() % 2, _WORLD.Get_rank())
        raw = _split_cache["split"]
    else:
        raw = _communicators()[kind]
    with spmdlearn.config_context(comm=raw):
        yield get_comm()


@pytest.fixture
def world():
    """The library's default communicator (a duplicate of COMM_WORLD), set for the test."""
    import spmdlearn
    from spmdlearn.comm import get_comm

    comm = get_comm()
    with spmdlearn.config_context(comm=comm):
        yield comm


@functools.lru_cache(maxsize=None)
def sycl_dpnp():
    """The ``dpnp`` module where a SYCL queue opens here, else the exception that says why not
    (missing library, runtime or device)."""
    try:
        import dpctl
        import dpnp

        dpctl.SyclQueue()
    except Exception as exc:  # noqa: BLE001 - reported by the skip of every test that needs it
        return exc
    return dpnp


@pytest.fixture
def dpnp():
    """dpnp on a SYCL device; the test is skipped, saying why, where there is none."""
    module = sycl_dpnp()
    if isinstance(module, Exception):
        pytest.skip(f"no SYCL device here: {module!r}")
    return module
