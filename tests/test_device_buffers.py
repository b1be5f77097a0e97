"""Whether device arrays go to the MPI library directly: the detection rules, one process.

The collective agreement and the transfers themselves are in tests/test_device_buffers_mpi.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from spmdlearn import comm as comm_module
from spmdlearn.comm import DEVICE_BUFFER_KINDS, array_kind, decide_device_buffers

INTEL = "Intel(R) MPI Library 2021.14 for Linux* OS\n"
MPICH = "MPICH Version:      4.2.0\nMPICH Release date: ...\n"
OPEN_MPI = "Open MPI v5.0.5, package: Open MPI ..., Sep 30, 2024\n"


def queries(**answers):
    """A stand-in for the library's ``MPIX_Query_*_support`` functions (None: absent)."""
    return lambda name: answers.get(name)


@pytest.mark.parametrize("offload,expected", [(None, False), ("0", False), ("1", True),
                                              ("2", True), ("yes", False), ("", False)])
def test_intel_mpi_takes_sycl_buffers_only_with_offload(offload, expected):
    env = {} if offload is None else {"I_MPI_OFFLOAD": offload}
    direct, why = decide_device_buffers("sycl", INTEL, env, queries())
    assert direct is expected
    assert "I_MPI_OFFLOAD" in why and why.startswith("Intel MPI with I_MPI_OFFLOAD=") == expected
    # Intel MPI's offload is Level Zero USM, never CUDA
    assert decide_device_buffers("cuda", INTEL, env, queries())[0] is False


def test_offload_of_another_library_is_not_intel_mpi():
    env = {"I_MPI_OFFLOAD": "1"}
    assert decide_device_buffers("sycl", MPICH, env, queries())[0] is False
    assert decide_device_buffers("sycl", OPEN_MPI, env, queries())[0] is False


@pytest.mark.parametrize("version", [MPICH, OPEN_MPI])
def test_the_library_query_decides_elsewhere(version):
    yes = queries(MPIX_Query_ze_support=1, MPIX_Query_cuda_support=1)
    no = queries(MPIX_Query_ze_support=0, MPIX_Query_cuda_support=0)
    for kind, query in (("sycl", "MPIX_Query_ze_support"), ("cuda", "MPIX_Query_cuda_support")):
        direct, why = decide_device_buffers(kind, version, {}, yes)
        assert direct and query in why
        direct, why = decide_device_buffers(kind, version, {}, no)
        assert not direct and f"{query}() = 0" in why
        direct, why = decide_device_buffers(kind, version, {}, queries())  # no such function
        assert not direct and f"no {query}" in why or "neither" in why
    # CUDA-aware is not Level Zero-aware
    assert decide_device_buffers("sycl", version, {}, queries(MPIX_Query_cuda_support=1))[0] \
        is False


@pytest.mark.parametrize("value,expected", [("0", False), ("off", False), ("1", True),
                                            ("on", True), ("auto", None), ("", None)])
def test_the_user_override_comes_first(value, expected):
    env = {"SPMDLEARN_DEVICE_BUFFERS": value, "I_MPI_OFFLOAD": "1"}
    for kind in DEVICE_BUFFER_KINDS:
        direct, why = decide_device_buffers(kind, INTEL, env, queries(MPIX_Query_cuda_support=1))
        if expected is None:  # auto: the library decides (Intel MPI with offload; CUDA query 1)
            assert direct is True and "SPMDLEARN_DEVICE_BUFFERS" not in why
        else:
            assert direct is expected and f"SPMDLEARN_DEVICE_BUFFERS={value}" in why


def test_a_bad_override_is_an_error():
    with pytest.raises(ValueError, match="SPMDLEARN_DEVICE_BUFFERS='maybe' is not one of"):
        decide_device_buffers("sycl", MPICH, {"SPMDLEARN_DEVICE_BUFFERS": "maybe"}, queries())


def test_the_real_library_is_asked(monkeypatch):
    """This process's library: MPICH >= 4 and Open MPI >= 4 have ``MPIX_Query_cuda_support``,
    and the verdict follows its answer (never assumed)."""
    if comm_module.MPI is None:
        pytest.skip("mpi4py not installed")
    monkeypatch.delenv("SPMDLEARN_DEVICE_BUFFERS", raising=False)
    monkeypatch.delenv("I_MPI_OFFLOAD", raising=False)
    version = comm_module.MPI.Get_library_version()
    answer = comm_module._mpi_query("MPIX_Query_cuda_support")
    if "MPICH Version" in version or "Open MPI" in version:
        assert isinstance(answer, int), f"MPIX_Query_cuda_support not found in {version!r}"
    assert comm_module.device_buffer_support("cuda")[0] is bool(answer)
    assert comm_module._mpi_query("MPIX_no_such_query") is None


def test_the_override_reaches_the_real_decision(monkeypatch):
    monkeypatch.setenv("SPMDLEARN_DEVICE_BUFFERS", "1")
    assert comm_module.device_buffer_support("sycl")[0] is True
    monkeypatch.setenv("SPMDLEARN_DEVICE_BUFFERS", "0")
    assert comm_module.device_buffer_support("sycl")[0] is False


class _FakeUSM:
    """The attributes of a dpnp array that decide whether its memory may go to MPI."""

    __module__ = "dpnp.dpnp_array"

    def __init__(self, usm_type, backend):
        self.usm_type = usm_type
        self.sycl_device = type("Device", (), {"backend": type("B", (), {"name": backend})()})()


@pytest.mark.parametrize("usm_type,backend,expected", [
    ("shared", "opencl", True), ("host", "opencl", True), ("device", "opencl", False),
    ("device", "level_zero", True)])
def test_which_sycl_memory_a_detected_library_may_take(usm_type, backend, expected):
    """A detected library (Intel MPI's offload, MPICH's Level Zero support) takes what the host
    can address and Level Zero device memory; the user's word takes any."""
    a = _FakeUSM(usm_type, backend)
    assert array_kind(a) == "sycl"
    assert comm_module._usable_directly(a, "sycl", (True, "Intel MPI with I_MPI_OFFLOAD=1")) \
        is expected
    assert comm_module._usable_directly(a, "sycl", (True, "SPMDLEARN_DEVICE_BUFFERS=1: ..."))
    assert not comm_module._usable_directly(a, "sycl", (False, "SPMDLEARN_DEVICE_BUFFERS=0"))


def test_array_kinds():
    assert array_kind(np.zeros(3)) is None and array_kind(None) is None

    class CAI:
        __cuda_array_interface__ = {"shape": (1,), "typestr": "<f8", "data": (0, False),
                                    "version": 3}

    assert array_kind(CAI()) == "cuda"


def test_the_verdict_is_logged_and_kept(monkeypatch, capsys):
    """``SPMDLEARN_VERBOSE=1`` logs the verdict once per communicator; it is asked once."""
    from spmdlearn.comm import self_comm

    monkeypatch.setenv("SPMDLEARN_VERBOSE", "1")
    monkeypatch.setenv("SPMDLEARN_DEVICE_BUFFERS", "0")
    comm = self_comm()
    assert comm.device_buffers()["sycl"] == (False, "SPMDLEARN_DEVICE_BUFFERS=0")
    err = capsys.readouterr().err
    assert "[spmdlearn] MPI and sycl device arrays: staged through host memory " \
           "(SPMDLEARN_DEVICE_BUFFERS=0)" in err
    monkeypatch.setenv("SPMDLEARN_DEVICE_BUFFERS", "1")  # kept: not asked again
    assert comm.device_buffers()["sycl"][0] is False and capsys.readouterr().err == ""
    assert self_comm().device_buffers()["sycl"][0] is True
    assert "device buffers passed to MPI directly" in capsys.readouterr().err
