"""The conformance suite's verdicts, run in one process on backends registered for the test:
a backend that serves only its own array type is certified on it; one that claims a type but
declines a kernel it implements, or returns another dtype than the reference, is not; one that
serves no kernel is reported "0 kernels served", not certified; an array type whose module is
not installed is skipped, saying why."""

import numpy as np
import pytest

from spmdlearn import _backends
from spmdlearn.comm import self_comm
from spmdlearn.hookspec import hookimpl
from spmdlearn.reference import comoments_local, linear_predict, moments_local
from spmdlearn_conformance.__main__ import report, run

pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]

xp = pytest.importorskip("array_api_strict")


def _strict(x):
    return type(x).__module__.split(".")[0] == "array_api_strict"


class StrictOnly:
    """Serves array-api-strict arrays only (its 'device' type); declines NumPy."""

    @hookimpl
    def spmdlearn_claims(self, X):
        return _strict(X)

    @hookimpl
    def spmdlearn_comoments_local(self, X, Y, sample_weight):
        if not _strict(X):
            return None
        host = [None if a is None else np.asarray(a) for a in (X, Y, sample_weight)]
        return comoments_local(*host)

    @hookimpl
    def spmdlearn_moments_local(self, X, sample_weight):
        if not _strict(X):
            return None
        return moments_local(np.asarray(X), None if sample_weight is None else np.asarray(sample_weight))


class ClaimsButDeclines(StrictOnly):
    """Claims array-api-strict arrays, yet declines float32 ones for one of its kernels."""

    @hookimpl
    def spmdlearn_moments_local(self, X, sample_weight):
        if not _strict(X) or "float32" in str(X.dtype):
            return None
        return moments_local(np.asarray(X), None if sample_weight is None else np.asarray(sample_weight))


class WidensFloat32:
    """Right values, wrong dtype: float32 rows in, float64 predictions out."""

    @hookimpl
    def spmdlearn_linear_predict(self, X, coef, intercept):
        return linear_predict(np.asarray(X, np.float64), coef, intercept)


class NoKernels:
    @hookimpl
    def spmdlearn_claims(self, X):
        return False


@pytest.fixture
def backend(request):
    pm = _backends.plugin_manager()
    name = request.param.__name__.lower()
    pm.register(request.param(), name=name)
    yield name
    pm.unregister(name=name)


def _run(name, array_type, estimators=()):
    rows, summary = run(name, list(estimators), True, 300.0, comm=self_comm(),
                        array_type=array_type)
    return {(r["subject"], r["check"]): r for r in rows}, summary


@pytest.mark.parametrize("backend", [StrictOnly], indirect=True)
def test_backend_serving_only_its_own_type_is_certified_on_it(backend):
    rows, summary = _run(backend, "array_api_strict")  # kernels and contract laws
    assert summary["claims"] and summary["certified"], report(list(rows.values()), summary, 1, True)
    assert summary["served"] == ["comoments_local", "moments_local"]
    assert summary["verdict"].startswith("CERTIFIED on array_api_strict input: 2 kernels served")
    assert rows[("kernel moments_local", "vs reference")]["status"] == "pass"
    assert rows[("contract moments", "laws")]["status"] == "pass"
    # On NumPy, which it does not claim, it serves nothing: no failure, and not certified.
    rows, summary = _run(backend, "numpy")
    assert not summary["claims"] and not summary["certified"]
    assert rows[("kernel moments_local", "vs reference")]["status"] == "n/a"
    assert "0 kernels served on numpy input (declines them all)" in summary["verdict"]
    assert not any(r["status"] == "fail" for r in rows.values())


@pytest.mark.parametrize("backend", [ClaimsButDeclines], indirect=True)
def test_claimed_type_must_be_served(backend):
    rows, summary = _run(backend, "array_api_strict")
    failing = rows[("kernel moments_local", "vs reference")]
    assert failing["status"] == "fail"
    assert "array_api_strict examples, an array type it claims" in failing["detail"]
    assert rows[("kernel comoments_local", "vs reference")]["status"] == "pass"
    assert not summary["certified"] and summary["verdict"].startswith("NOT CERTIFIED")


@pytest.mark.parametrize("backend", [WidensFloat32], indirect=True)
def test_kernel_output_dtype_must_be_the_references(backend):
    rows, summary = _run(backend, "numpy")
    failing = rows[("kernel linear_predict", "vs reference")]
    assert failing["status"] == "fail"
    assert "dtype float64, expected float32 (the reference's on the same input)" in failing["detail"]
    assert not summary["certified"]


@pytest.mark.parametrize("backend", [NoKernels], indirect=True)
def test_backend_without_kernels_is_not_certified(backend):
    rows, summary = _run(backend, "numpy", ["LinearRegression"])
    assert not any(r["status"] == "fail" for r in rows.values())
    assert rows[("kernels", "vs reference")]["status"] == "n/a"
    assert not summary["certified"]
    assert summary["verdict"] == ("NOT CERTIFIED: 0 kernels served on numpy input (implements no "
                                  "kernel); every kernel ran on the reference")
    counts = summary["dispatch"]["comoments_local"]
    # Every call ran on the reference, none served or declined (how many calls the estimator
    # checks make is theirs to decide).
    assert counts["served"] == counts["declined"] == 0
    assert counts["fallback"] == counts["unclaimed"] > 0
    text = report(list(rows.values()), summary, 1, True)
    assert "comoments_local" in text and text.endswith(summary["verdict"])


def test_array_type_not_installed_is_skipped_with_its_reason():
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
    except ImportError:
        rows, summary = _run("reference", "cupy")
        assert rows == {} and not summary["certified"]
        assert summary["skipped"].startswith("--array-type cupy: module 'cupy' is not installed")
        assert summary["verdict"].startswith("NOT CERTIFIED: skipped: --array-type cupy")
    else:
        pytest.skip("cupy is installed here")


def test_unavailable_backend_is_skipped_not_run():
    if "sycl" in _backends.available_backends():
        pytest.skip("sycl is available here")
    rows, summary = _run("sycl", "numpy", ["LinearRegression"])
    assert rows == {} and not summary["certified"]
    assert "backend 'sycl' is installed but unavailable" in summary["verdict"]
