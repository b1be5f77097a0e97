"""The conformance suite has teeth: it certifies a correct foreign backend and rejects a subtly
wrong one. Both come from a real entry point: the test package in tests/plugins, installed by
the README's test command."""

import json
import subprocess
import sys

import pytest

from run_all import mpiexec_command
from spmdlearn._backends import available_backends, backend_kernels, installed_backends

pytestmark = pytest.mark.serial


def _certify(backend, tmp_path, n_ranks=2, *extra):
    out_json = tmp_path / f"{backend}.json"
    cmd = mpiexec_command(n_ranks) + [sys.executable, "-m", "spmdlearn_conformance",
                                      "--backend", backend, "--quick", "--json", str(out_json),
                                      *extra]
    # In a fresh environment the cpu backend's first run compiles its numba kernels on each
    # rank: minutes on 2 cores, once per machine (then cached).
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    return proc, json.loads(out_json.read_text())


def test_foreign_plugins_come_from_entry_points():
    assert {"goodgram", "naivesum", "lasttie", "widedtype"} <= set(installed_backends())


@pytest.mark.timeout(320)
def test_correct_foreign_backend_is_certified(tmp_path):
    proc, result = _certify("goodgram", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["passed"] and result["ranks"] == 2
    statuses = {(r["subject"], r["check"]): r["status"] for r in result["results"]}
    assert statuses[("kernel comoments_local", "vs reference")] == "pass"
    assert statuses[("kernel linear_predict", "vs reference")] == "pass"
    assert "conformance: " in proc.stdout and " 0 failed" in proc.stdout
    assert result["certified"] and result["served"] == ["comoments_local", "linear_predict"]
    assert result["dispatch"]["comoments_local"]["served"] > 0
    assert result["dispatch"]["comoments_local"]["declined"] == 0
    assert result["dispatch"]["moments_local"]["fallback"] > 0  # BasicStatistics: not its kernel
    assert ("CERTIFIED on numpy input: 2 kernels served (comoments_local, linear_predict); ran on "
            "the reference: ") in proc.stdout


@pytest.mark.timeout(320)
def test_naive_sum_of_squares_backend_is_rejected(tmp_path):
    proc, result = _certify("naivesum", tmp_path)
    assert proc.returncode != 0
    assert not result["passed"]
    failed = {(r["subject"], r["check"]) for r in result["results"] if r["status"] == "fail"}
    assert ("kernel comoments_local", "vs reference") in failed
    assert ("kernel moments_local", "vs reference") in failed
    assert ("LinearRegression", "agreement float64") in failed
    assert "FAIL  kernel comoments_local" in proc.stdout
    assert not result["certified"] and "NOT CERTIFIED: some checks failed" in proc.stdout


@pytest.mark.timeout(960)
def test_cpu_and_sycl_say_plainly_what_they_serve(tmp_path):
    """A backend with no kernel passes its checks (everything ran on the reference) and is
    reported "0 kernels served", not certified; an unavailable one is skipped, saying why."""
    proc, result = _certify("cpu", tmp_path, 2, "--estimators", "LinearRegression")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if backend_kernels("cpu"):
        assert result["certified"] and "CERTIFIED on numpy input" in proc.stdout
    else:
        assert not result["certified"]
        assert ("NOT CERTIFIED: 0 kernels served on numpy input (implements no kernel); every "
                "kernel ran on the reference") in proc.stdout
        assert result["dispatch"]["comoments_local"]["fallback"] > 0
    if "sycl" not in available_backends():
        proc, result = _certify("sycl", tmp_path, 2)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert result["skipped"] and not result["certified"] and result["results"] == []
        assert "NOT CERTIFIED: skipped: backend 'sycl' is installed but unavailable" in proc.stdout
    else:  # on the array type it claims (its full certification is a stage of run_all)
        proc, result = _certify("sycl", tmp_path, 2, "--array-type", "dpnp",
                                "--estimators", "LinearRegression")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert result["certified"] and "CERTIFIED on dpnp input" in proc.stdout
        assert result["not_served_on_type"] == []


def test_unknown_backend_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "spmdlearn_conformance", "--backend", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "not installed; installed:" in proc.stderr


@pytest.mark.timeout(120)
def test_a_check_past_its_time_limit_ends_the_job():
    """The suite never hangs: a check that overruns --timeout ends the process and the job."""
    cmd = mpiexec_command(2) + [sys.executable, "-m", "spmdlearn_conformance", "--backend",
                                "reference", "--quick", "--timeout", "0.001"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
    assert proc.returncode != 0
    assert "Timeout" in proc.stderr


@pytest.mark.timeout(320)
def test_backend_breaking_ties_otherwise_is_rejected(tmp_path):
    """Nearest centers right but the last among equals: only the fixed adversarial cases (a
    duplicated center, a row exactly between two centers) can tell, and they must."""
    proc, result = _certify("lasttie", tmp_path)
    assert proc.returncode != 0
    assert not result["passed"]
    failed = {(r["subject"], r["check"]): r.get("detail", "") for r in result["results"]
              if r["status"] == "fail"}
    assert ("kernel kmeans_assign", "vs reference") in failed, failed
    assert "integer results differ" in failed[("kernel kmeans_assign", "vs reference")]


@pytest.mark.timeout(320)
def test_backend_widening_float32_is_rejected(tmp_path):
    """float32 in, float64 out, with values within float32's tolerance: rejected by the output
    dtype check."""
    proc, result = _certify("widedtype", tmp_path)
    assert proc.returncode != 0
    assert not result["passed"]
    failed = {(r["subject"], r["check"]): r.get("detail", "") for r in result["results"]
              if r["status"] == "fail"}
    assert ("kernel linear_predict", "vs reference") in failed, failed
    assert "float64" in failed[("kernel linear_predict", "vs reference")]


def _bounded_impl(step):
    from types import SimpleNamespace

    names = ("X", "sample_weight", "centers", "centers_old", "labels_old", "lower_old",
             "X_offset", "upper_old", "sums_old")
    return SimpleNamespace(function=step, argnames=names)


@pytest.mark.parametrize("fault", ["loose bounds", "moves ignored", "loose upper bounds"])
def test_bounded_lloyd_step_with_a_wrong_bound_is_rejected(fault):
    """The bounded Lloyd step's check rejects bounds above a row's distance to another center,
    and a step that trusts bounds without moving them with the centers (it keeps labels that
    the plain step changes)."""
    from spmdlearn.reference import lloyd_bounded
    from spmdlearn_conformance._kernels import check_kernel

    def step(X, sample_weight, centers, centers_old, labels_old, lower_old, X_offset, upper_old,
             sums_old):
        if fault == "moves ignored" and centers_old is not None:
            centers_old = centers  # the bounds are taken as they stand
        labels, lower, partial, upper = lloyd_bounded(X, sample_weight, centers, centers_old,
                                                      labels_old, lower_old, X_offset)
        if fault == "loose upper bounds":
            upper = upper * 0.5 - 1.0
        return (labels, (lower * 1.5 + 1.0 if fault == "loose bounds" else lower), partial,
                upper)

    status, detail = check_kernel(_bounded_impl(step), "kmeans_lloyd_bounded", 30)
    assert status == "fail", detail
    assert ("lower bound" in detail) == (fault == "loose bounds"), detail
    assert ("upper bound" in detail) == (fault == "loose upper bounds"), detail
    status, detail = check_kernel(_bounded_impl(lloyd_bounded), "kmeans_lloyd_bounded", 30)
    assert status == "pass", detail
