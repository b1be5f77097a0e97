"""Kernel dispatch: backends claim array types, kernels run through pluggy's relay, every call
is counted; the oracle is pure and every MPI call lives in comm.py; contracts own their kernels."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import spmdlearn
from spmdlearn import _backends
from spmdlearn.hookspec import hookimpl
from spmdlearn.linear_model import LinearRegression

pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parent.parent
X = np.random.default_rng(0).normal(size=(30, 3))
Y = X @ [1.0, 2.0, 3.0] + 0.5


# -- a pure oracle, one MPI module --------------------------------------------------------------

@pytest.mark.parametrize("module", ["spmdlearn.reference", "spmdlearn.contract"])
def test_oracle_imports_no_mpi(module):
    code = (f"import sys, {module}\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'\n"
            "assert 'spmdlearn.comm' not in sys.modules, 'spmdlearn.comm imported'\n"
            "from spmdlearn.reference import COMOMENTS, simulate\n"
            "import numpy as np\n"
            "X = np.arange(12.).reshape(6, 2)\n"
            "p = simulate(COMOMENTS, [(X[:2], None, None), (X[2:], None, None)])\n"
            "assert np.allclose(p.mean, X.mean(0))\n"
            "assert 'mpi4py' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def _python_sources():
    for top in ["core", "conformance"] + sorted(p.name for p in ROOT.glob("accel_*")):
        yield from sorted((ROOT / top).rglob("*.py"))


def _mpi_imports(path):
    """(line, what) of every import of mpi4py, or of ``MPI`` from spmdlearn.comm, in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "mpi4py"]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] == "mpi4py":
                found.append((node.lineno, module))
            elif module.split(".")[-1] == "comm" and any(a.name == "MPI" for a in node.names):
                found.append((node.lineno, f"MPI from {module}"))
    return found


def test_only_comm_calls_mpi():
    sources = list(_python_sources())
    assert len(sources) > 40 and any(p.name == "comm.py" for p in sources)
    comm = ROOT / "core" / "spmdlearn" / "comm.py"
    assert _mpi_imports(comm), "the scan must see comm.py's own import"
    stray = {str(p.relative_to(ROOT)): found for p in sources if p != comm
             for found in [_mpi_imports(p)] if found}
    assert not stray, f"MPI used outside comm.py: {stray}"


def test_no_estimator_passes_a_kernel_to_allreduce():
    """Contracts own their kernels: estimators never hand allreduce a ``local=`` function."""
    offenders = []
    for path in (ROOT / "core" / "spmdlearn").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "allreduce"
                    and any(k.arg == "local" for k in node.keywords)):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders


# -- claims and selection -----------------------------------------------------------------------

class _Claims:
    """Claims NumPy arrays of float32 only, ahead of every other backend; serves one kernel."""

    def __init__(self):
        self.calls = 0

    @hookimpl(tryfirst=True)
    def spmdlearn_claims(self, X):
        return isinstance(X, np.ndarray) and X.dtype == np.float32

    @hookimpl
    def spmdlearn_comoments_local(self, X, Y, sample_weight):
        self.calls += 1
        from spmdlearn.reference import comoments_local

        return comoments_local(np.asarray(X), Y, sample_weight)


class _Unavailable:
    @hookimpl
    def spmdlearn_backend_info(self):
        return {"name": "gone", "available": False, "devices": [], "note": "libgone missing"}

    @hookimpl(tryfirst=True)
    def spmdlearn_claims(self, X):
        return True


class _Wrapped:
    """Declines comoments_local; a pluggy wrapper around the same hook sees each call."""

    seen = []

    @hookimpl
    def spmdlearn_comoments_local(self, X):
        return None

    @hookimpl(wrapper=True)
    def spmdlearn_linear_predict(self, X):
        result = yield
        type(self).seen.append(result.shape)
        return result


@pytest.fixture
def plugins():
    pm = _backends.plugin_manager()
    added = {"claimsf32": _Claims(), "gone": _Unavailable(), "wrapped": _Wrapped()}
    for name, plugin in added.items():
        pm.register(plugin, name=name)
    _backends.reset_dispatch_counts()
    yield added
    for name in added:
        pm.unregister(name=name)
    _backends._availability.clear()


def test_auto_picks_the_first_available_claimer(plugins, monkeypatch):
    monkeypatch.delenv("SPMDLEARN_BACKEND", raising=False)
    assert _backends.resolve_backend(X.astype(np.float32)) == "claimsf32"  # tryfirst
    assert _backends.resolve_backend(X) == "cpu"  # float64: cpu claims NumPy
    assert _backends.claims("reference", X) and _backends.claims("reference", [[1.0]])
    assert not _backends.claims("sycl", X)
    # "gone" claims everything but is unavailable: never picked by auto
    assert "gone" not in _backends.available_backends()
    LinearRegression().fit(X.astype(np.float32), Y.astype(np.float32))
    assert plugins["claimsf32"].calls == 1
    counts = _backends.dispatch_counts()
    assert counts[("claimsf32", "comoments_local")] == {"served": 1, "declined": 0, "fallback": 0}


def test_host_steps_run_on_the_backend_auto_picks_for_numpy(plugins, monkeypatch, capsys):
    """A backend that does not claim NumPy hands its host steps (the forests' split search on
    the summed histogram) to the backend ``auto`` picks for NumPy, logged; one that claims
    NumPy keeps them. The unavailable "gone" claims everything and is skipped."""
    monkeypatch.setenv("SPMDLEARN_VERBOSE", "1")
    assert not _backends.claims("sycl", np.zeros(0))
    assert _backends.host_backend("sycl") == "cpu"
    assert _backends.host_backend("claimsf32") == "cpu"  # it claims float32 only
    assert "'sycl' does not claim NumPy; its host steps run on 'cpu'" in capsys.readouterr().err
    assert _backends.host_backend("cpu") == "cpu"
    assert _backends.host_backend("reference") == "reference"


def test_unclaimed_array_type_runs_on_the_reference(monkeypatch, capsys):
    xp = pytest.importorskip("array_api_strict")
    monkeypatch.delenv("SPMDLEARN_BACKEND", raising=False)
    monkeypatch.setenv("SPMDLEARN_VERBOSE", "1")
    A = xp.asarray(X)
    assert not _backends.claims("cpu", A) and not _backends.claims("reference", A)
    assert _backends.resolve_backend(A) == "reference"
    assert "no installed backend claims array_api_strict" in capsys.readouterr().err


def test_unavailable_backend_named_explicitly_is_an_error(plugins, monkeypatch):
    with spmdlearn.config_context(backend="gone"):
        with pytest.raises(ValueError, match=r"'gone' is installed but unavailable \(libgone "
                                             r"missing\); available: auto, claimsf32, cpu"):
            LinearRegression().fit(X, Y)
    monkeypatch.setenv("SPMDLEARN_BACKEND", "sycl")
    if "sycl" not in _backends.available_backends():
        with pytest.raises(ValueError, match="'sycl' is installed but unavailable.*available: "
                                             "auto, .*reference"):
            LinearRegression().fit(X, Y)


def test_sycl_unavailable_from_the_environment_fails_on_every_rank():
    """Without dpctl, or with no SYCL device (here: the SYCL runtime told to see only Level Zero
    GPUs, of which this test machine has none), SPMDLEARN_BACKEND=sycl fails on every rank."""
    from run_all import mpiexec_command

    env = {**os.environ, "SPMDLEARN_BACKEND": "sycl", "ONEAPI_DEVICE_SELECTOR": "level_zero:gpu"}
    probe = subprocess.run([sys.executable, "-c", "from spmdlearn import _backends; "
                            "print('sycl' in _backends.available_backends())"],
                           capture_output=True, text=True, timeout=120, env=env)
    if probe.stdout.strip() != "False":
        pytest.skip("sycl is available here even without devices other than Level Zero GPUs")
    code = ("import numpy as np\nfrom spmdlearn.linear_model import LinearRegression\n"
            "LinearRegression().fit(np.ones((3, 2)), np.ones(3))\n")
    out = subprocess.run(mpiexec_command(2) + [sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode != 0
    assert out.stderr.count("'sycl' is installed but unavailable") >= 2, out.stderr


def test_relay_is_pluggys_and_counts_each_outcome(plugins, monkeypatch, capsys):
    monkeypatch.setenv("SPMDLEARN_VERBOSE", "1")
    _Wrapped.seen.clear()
    with spmdlearn.config_context(backend="wrapped"):
        model = LinearRegression().fit(X, Y)  # comoments_local declined
        model.predict(X)  # linear_predict: only a wrapper, the reference computes
    with spmdlearn.config_context(backend="reference"):
        model.predict(X)
    assert _Wrapped.seen == [(30,)]  # pluggy ran the wrapper around the relay's call
    counts = _backends.dispatch_counts()
    assert counts[("wrapped", "comoments_local")] == {"served": 0, "declined": 1, "fallback": 0}
    # a wrapper computes nothing: the reference served a kernel the backend lacks
    assert counts[("wrapped", "linear_predict")] == {"served": 0, "declined": 0, "fallback": 1}
    assert counts[("reference", "linear_predict")] == {"served": 1, "declined": 0, "fallback": 0}
    err = capsys.readouterr().err
    assert "comoments_local: backend 'wrapped' declined; falling back" in err
    np.testing.assert_allclose(model.coef_, [1.0, 2.0, 3.0], rtol=1e-10)
    _backends.reset_dispatch_counts()
    assert _backends.dispatch_counts() == {}


def test_cpu_and_sycl_claim_their_types():
    assert _backends.claims("cpu", X) and not _backends.claims("cpu", [[1.0]])
    assert not _backends.claims("sycl", X)
    _backends.reset_dispatch_counts()
    with spmdlearn.config_context(backend="cpu"):
        LinearRegression().fit(X, Y)
    outcome = "served" if "comoments_local" in _backends.backend_kernels("cpu") else "fallback"
    assert _backends.dispatch_counts()[("cpu", "comoments_local")][outcome] == 1


def test_core_names_no_backend():
    """Only the plugins name their array modules and themselves."""
    source = (ROOT / "core" / "spmdlearn" / "_backends.py").read_text()
    for word in ("dpnp", "dpctl", "cupy", '"cpu"', '"sycl"', "'cpu'", "'sycl'"):
        assert word not in source, word


# -- contracts own their kernels ----------------------------------------------------------------

def test_every_contract_kernel_is_a_hook_taking_its_arguments():
    import inspect

    from spmdlearn.reference import CONTRACTS, KERNELS

    named = {name: c for name, c in CONTRACTS.items() if c.kernel is not None}
    assert {"moments", "comoments", "column_stats", "tsqr", "lloyd"} <= set(named)
    for name, contract in named.items():
        argnames = _backends.kernel_argnames(contract.kernel)
        assert len(inspect.signature(contract.local).parameters) == len(argnames), name
        assert contract.kernel in KERNELS, name


def test_allreduce_dispatches_the_contract_kernel(plugins):
    from spmdlearn.collective import allreduce
    from spmdlearn.comm import self_comm
    from spmdlearn.reference import COMOMENTS, LLOYD, lloyd_local

    Xf = X.astype(np.float32)
    p = allreduce(COMOMENTS, Xf, None, None, comm=self_comm())  # auto: claimsf32 claims float32
    assert plugins["claimsf32"].calls == 1
    np.testing.assert_allclose(p.mean, Xf.mean(0), rtol=1e-6)
    centers = X[:3].copy()
    labels, partial = allreduce(LLOYD, X, np.ones(30), centers, np.full(30, -1, np.int32),
                                None, comm=self_comm(), backend="reference", with_rows=True)
    want_labels, want = lloyd_local(X, np.ones(30), centers, np.full(30, -1, np.int32))
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_allclose(partial.sums, want.sums)
    with pytest.raises(ValueError, match="no per-row result"):
        allreduce(COMOMENTS, X, None, None, comm=self_comm(), with_rows=True)


def test_backend_with_an_unknown_hook_is_unavailable_not_fatal(monkeypatch):
    """A backend built for another spmdlearn (a hook this one does not define) is reported
    unavailable with pluggy's reason; the other backends keep working."""
    import pluggy

    from spmdlearn import hookspec

    class FromTheFuture:
        @hookimpl
        def spmdlearn_kernel_of_tomorrow(self, X):
            return X

    pm = pluggy.PluginManager(hookspec.PROJECT)
    pm.add_hookspecs(hookspec)
    pm.register(_backends._marker_plugin(), name=_backends._MARKER)
    from spmdlearn.reference import _plugin

    pm.register(_plugin, name="reference")
    pm.register(FromTheFuture(), name="future")
    monkeypatch.setattr(_backends, "_pm", pm)
    monkeypatch.setattr(_backends, "_broken", {})
    monkeypatch.setattr(_backends, "_availability", {})
    monkeypatch.setattr(_backends, "_relays", {})
    _backends._check_pending(pm)
    assert _backends.installed_backends() == ["future", "reference"]
    assert _backends.available_backends() == ["reference"]
    with spmdlearn.config_context(backend="future"):
        with pytest.raises(ValueError, match="'future' is installed but unavailable \\(not loaded: "
                                             "unknown hook 'spmdlearn_kernel_of_tomorrow'"):
            LinearRegression().fit(X, Y)
    with spmdlearn.config_context(backend="reference"):
        LinearRegression().fit(X, Y)


class _Nesting:
    """Serves linear_predict by calling another kernel, which it does not implement."""

    @hookimpl
    def spmdlearn_linear_predict(self, X, coef, intercept):
        _backends.call_kernel("moments_local", "nesting", X=X, sample_weight=None)
        return np.asarray(X) @ np.asarray(coef).T + intercept


def test_a_kernel_calling_a_kernel_is_counted_right():
    pm = _backends.plugin_manager()
    pm.register(_Nesting(), name="nesting")
    try:
        _backends.reset_dispatch_counts()
        _backends.call_kernel("linear_predict", "nesting", X=X, coef=np.ones(3), intercept=0.0)
        counts = _backends.dispatch_counts()
    finally:
        pm.unregister(name="nesting")
    assert counts[("nesting", "moments_local")] == {"served": 0, "declined": 0, "fallback": 1}
    assert counts[("nesting", "linear_predict")] == {"served": 1, "declined": 0, "fallback": 0}


def test_a_backend_sizes_its_kernel_blocks(plugins, monkeypatch):
    """A backend that declares ``KERNEL_BLOCK_ROWS`` gets calls of that many queries and
    candidates on the input it claims (a fused device kernel wants large calls); other input,
    and the reference, keep the caller's blocks."""
    from spmdlearn.patterns import RING_TOPK, row_block

    monkeypatch.delenv("SPMDLEARN_BACKEND", raising=False)
    claimer = plugins["claimsf32"]
    monkeypatch.setattr(claimer, "KERNEL_BLOCK_ROWS", {"knn_merge": (7, 11)}, raising=False)
    import spmdlearn.patterns as patterns
    from spmdlearn.reference import knn_merge

    shapes = []
    real = patterns.call_kernel

    def spy(kernel, backend, **kwargs):
        shapes.append((kwargs["X"].shape[0], kwargs["Y"].shape[0]))
        return real(kernel, backend, **kwargs)

    monkeypatch.setattr(patterns, "call_kernel", spy)
    rng = np.random.default_rng(0)
    Q, Y = rng.normal(size=(20, 3)), rng.normal(size=(30, 3))
    best = (np.full((20, 2), np.inf), np.full((20, 2), -1, np.int64))
    for data, backend in ((np.float32, "claimsf32"), (np.float64, "reference")):
        shapes.clear()
        d, i = RING_TOPK.local(Q.astype(data), None, Y.astype(data), np.arange(30),
                               *(b.copy() for b in best), metric="euclidean", p=None,
                               backend=backend)
        want = knn_merge(Q.astype(data), Y.astype(data), np.arange(30), *best)
        assert np.array_equal(i, want[1])
        if backend == "claimsf32":
            assert max(q for q, _ in shapes) == 7 and max(c for _, c in shapes) == 11
            assert len(shapes) == 3 * 3  # ceil(20 / 7) query blocks x ceil(30 / 11)
        else:
            assert shapes == [(20, 30)]  # the caller's blocks: all of this small input
            assert row_block(RING_TOPK.candidate_block + 2) >= 20
