"""One-process behaviour users rely on: scikit-learn compatibility, pickling, to_sklearn(),
configuration, backend selection and logging, ``python -m spmdlearn info``."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import spmdlearn
from spmdlearn import _backends
from spmdlearn.basic_statistics import BasicStatistics
from spmdlearn.covariance import EmpiricalCovariance
from spmdlearn.hookspec import hookimpl
from spmdlearn.linear_model import LinearRegression, Ridge
from spmdlearn_conformance import make_data

pytestmark = pytest.mark.serial

X, Y = make_data(0, 50, 4, 1)


def _fitted():
    return [LinearRegression().fit(X, Y), Ridge(alpha=2.0).fit(X, Y),
            EmpiricalCovariance().fit(X), BasicStatistics().fit(X)]


@pytest.mark.parametrize("est", _fitted(), ids=lambda e: type(e).__name__)
def test_pickle_roundtrip_keeps_model(est):
    again = pickle.loads(pickle.dumps(est))
    for name, value in vars(est).items():
        if name.endswith("_"):
            np.testing.assert_array_equal(getattr(again, name), value)


@pytest.mark.parametrize("est", _fitted(), ids=lambda e: type(e).__name__)
def test_clone_keeps_params_drops_model(est):
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert not any(name.endswith("_") for name in vars(copy))


@pytest.mark.parametrize("est", _fitted()[:3], ids=lambda e: type(e).__name__)
def test_to_sklearn_is_equivalent(est):
    sk = est.to_sklearn()
    assert type(sk).__module__.startswith("sklearn.")
    if hasattr(sk, "predict"):
        np.testing.assert_allclose(sk.predict(X), est.predict(X), rtol=1e-12)
        assert sk.score(X, Y) == pytest.approx(est.score(X, Y), rel=1e-12)
    else:
        np.testing.assert_allclose(sk.mahalanobis(X), est.mahalanobis(X), rtol=1e-9)
        assert sk.score(X) == pytest.approx(est.score(X), rel=1e-12)
    assert sk.get_params() == {k: v for k, v in est.get_params().items() if k in sk.get_params()}


def test_basic_statistics_to_sklearn_says_why():
    with pytest.raises(NotImplementedError, match="scikit-learn has no equivalent"):
        BasicStatistics().fit(X).to_sklearn()


def test_error_norm_matches_sklearn():
    est = EmpiricalCovariance().fit(X)
    other = np.cov(X.T)
    assert est.error_norm(other) == pytest.approx(est.to_sklearn().error_norm(other))


def test_pipeline_and_params():
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=0.1)).fit(X, Y)
    assert pipe.score(X, Y) > 0.9
    est = Ridge().set_params(alpha=3.0)
    assert est.get_params()["alpha"] == 3.0


def test_config_context_nests_and_restores():
    from mpi4py import MPI

    assert spmdlearn.get_config() == {"comm": None, "backend": None}
    with spmdlearn.config_context(backend="reference"):
        with spmdlearn.config_context(comm=MPI.COMM_SELF):
            assert spmdlearn.get_config() == {"comm": MPI.COMM_SELF, "backend": "reference"}
        assert spmdlearn.get_config()["comm"] is None
    assert spmdlearn.get_config() == {"comm": None, "backend": None}


def test_estimators_store_no_communicator():
    from mpi4py import MPI

    with spmdlearn.config_context(comm=MPI.COMM_SELF):
        est = LinearRegression().fit(X, Y)
    assert not any("comm" in name for name in vars(est))


def test_backend_selection(monkeypatch):
    assert _backends.installed_backends()[-1] == "reference"
    assert {"cpu", "sycl", "reference"} <= set(_backends.installed_backends())
    assert _backends.resolve_backend(X) == "cpu"  # auto: NumPy goes to cpu when installed
    monkeypatch.setenv("SPMDLEARN_BACKEND", "reference")
    assert _backends.resolve_backend(X) == "reference"
    with spmdlearn.config_context(backend="cpu"):  # the context overrides the environment
        assert _backends.resolve_backend(X) == "cpu"
    monkeypatch.setenv("SPMDLEARN_BACKEND", "/tmp/some_plugin.py")
    with pytest.raises(ValueError, match="not an installed backend; installed: auto, cpu"):
        _backends.resolve_backend(X)


class _Decliner:
    calls = 0

    @hookimpl
    def spmdlearn_comoments_local(self, X):
        type(self).calls += 1
        return None


class _Doubler:
    """Implements one kernel, taking only the argument it uses."""

    @hookimpl
    def spmdlearn_linear_predict(self, X, coef):
        return np.asarray(X) @ np.asarray(coef).T * 0 + 42.0


@pytest.fixture
def extra_plugins():
    pm = _backends.plugin_manager()
    pm.register(_Decliner(), name="decliner")
    pm.register(_Doubler(), name="doubler")
    yield
    pm.unregister(name="decliner")
    pm.unregister(name="doubler")


def test_declining_falls_back_to_reference_and_is_logged(extra_plugins, monkeypatch, capsys):
    monkeypatch.setenv("SPMDLEARN_VERBOSE", "1")
    with spmdlearn.config_context(backend="decliner"):
        model = LinearRegression().fit(X, Y)
    assert _Decliner.calls > 0
    np.testing.assert_allclose(model.coef_, LinearRegression().fit(X, Y).coef_, rtol=1e-12)
    err = capsys.readouterr().err
    assert "comoments_local: backend 'decliner' declined; falling back" in err
    assert "comoments_local: ran on backend 'reference'" in err
    with spmdlearn.config_context(backend="doubler"):
        assert np.all(model.predict(X) == 42.0)  # the selected backend's kernel ran
        model.fit(X, Y)  # doubler lacks comoments_local: the reference serves it
    assert "comoments_local: backend 'doubler' does not implement it" in capsys.readouterr().err


def test_quiet_without_verbose(monkeypatch, capsys):
    monkeypatch.delenv("SPMDLEARN_VERBOSE", raising=False)
    LinearRegression().fit(X, Y)
    assert "[spmdlearn]" not in capsys.readouterr().err


def test_info_command():
    out = subprocess.run([sys.executable, "-m", "spmdlearn", "info"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert "MPI: " in out and "ranks: 1" in out
    for name in ("cpu", "sycl", "reference"):
        assert f"  {name}" in out


def test_info_command_reports_a_bad_device_buffer_setting():
    """A bad SPMDLEARN_DEVICE_BUFFERS is reported in info's output, as a bad backend name is,
    not a traceback."""
    env = {**os.environ, "SPMDLEARN_DEVICE_BUFFERS": "maybe"}
    out = subprocess.run([sys.executable, "-m", "spmdlearn", "info"], capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert ("MPI and device arrays: error: SPMDLEARN_DEVICE_BUFFERS='maybe' is not one of 0, 1 "
            "or auto") in out.stdout, out.stdout
    assert "ranks: 1" in out.stdout


def test_runs_without_mpi4py():
    """Without mpi4py everything runs as one process."""
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import numpy as np\n"
            "from spmdlearn.linear_model import LinearRegression\n"
            "from spmdlearn.comm import get_comm, SelfComm\n"
            "X = np.arange(20.).reshape(10, 2); y = X @ [1., 2.] + 3\n"
            "m = LinearRegression().fit(X, y)\n"
            "assert isinstance(get_comm(), SelfComm)\n"
            "print(np.round(m.coef_, 6).tolist(), round(m.score(X, y), 6))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "SPMDLEARN_VERBOSE": ""})
    assert out.returncode == 0, out.stderr
    assert "1.0" in out.stdout


def test_ranks_share_the_node_cores():
    """Unless the user set a thread count, each rank limits BLAS threads to its share, and the
    cpu backend's compiled kernels run as many threads as BLAS (numba's own OpenMP runtime is
    loaded later and reports the node's cores, but numba runs its kernels on its set count)."""
    from run_all import mpiexec_command

    code = ("import os, numpy as np\n"
            "from threadpoolctl import threadpool_info\n"
            "from spmdlearn.linear_model import LinearRegression\n"
            "X = np.random.rand(50, 3); LinearRegression().fit(X, X.sum(1)).predict(X)  # numba: all_finite\n"
            "import numba\n"
            "n = max([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
            "        + [numba.get_num_threads()])  # BLAS, and numba's count for its kernels\n"
            "os.write(1, f'threads {n} {os.cpu_count()}\\n'.encode())  # one write: no interleaving\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                        "NUMBA_NUM_THREADS", "SPMDLEARN_NUM_THREADS")}
    out = subprocess.run(mpiexec_command(2) + [sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    import re

    cores = len(os.sched_getaffinity(0))
    # The two ranks' lines may interleave on the shared stdout: find every report.
    reported = [int(t) for t in re.findall(r"threads (\d+) \d+", out.stdout)]
    assert len(reported) == 2, out.stdout
    assert all(t <= max(1, cores // 2) for t in reported), out.stdout


@pytest.mark.parametrize("local_ranks, cores, expected", [("4", 2, True), ("2", 2, False),
                                                          ("1", 8, False), (None, 1, False)])
def test_oversubscribed_node_is_told_from_the_launcher(monkeypatch, local_ranks, cores, expected):
    """A waiting rank sleeps instead of spinning when the launcher put more ranks on the node
    than it has cores (the launcher's count, against the node's cores, not the rank's
    binding); without a launcher count the node is not taken as oversubscribed."""
    from spmdlearn import comm as spmd_comm

    for name in spmd_comm._LOCAL_SIZES:
        monkeypatch.delenv(name, raising=False)
    if local_ranks is not None:
        monkeypatch.setenv("MPI_LOCALNRANKS", local_ranks)
    monkeypatch.setattr(spmd_comm.os, "cpu_count", lambda: cores)
    spmd_comm._oversubscribed.cache_clear()
    try:
        assert spmd_comm._oversubscribed() is expected
    finally:
        spmd_comm._oversubscribed.cache_clear()
