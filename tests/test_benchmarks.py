"""The benchmark harness keeps working: its quick mode runs every workload once (timings are
recorded, never asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_quick_benchmark_run(tmp_path):
    out = tmp_path / "quick.json"
    # Every workload at two ranks (one configuration per workload and implementation: each is
    # a job of its own, seconds of start-up); one rank is timed by the cpu/sycl test below.
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                           "--ranks", "2", "--repeat", "1", "--peers", "sklearn",
                           "--out", str(out)], capture_output=True, text=True, timeout=590)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = json.loads(out.read_text())
    assert {"dgemm_gflops_1core", "read_bandwidth_gbs_1proc"} <= set(run["limits"])
    errors = [r for r in run["results"] if "error" in r]
    assert not errors, errors[:3]
    timed = {(r["workload"], r["impl"], r.get("ranks")) for r in run["results"] if "methods" in r}
    from benchmarks.workloads import WORKLOADS  # noqa: F401 - the harness's own table

    for name in WORKLOADS:
        assert (name, "spmdlearn", 2) in timed, name
        assert any(t[:2] == (name, "sklearn") for t in timed), name
    table = out.with_suffix(".md").read_text()
    assert table.startswith("| workload | method | ranks |")


@pytest.mark.timeout(300)
def test_profile_mode_reports_time_in_kernels_and_peak_memory(tmp_path):
    out = tmp_path / "profile.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                           "--ranks", "2", "--repeat", "1", "--peers", "none", "--backends",
                           "reference", "--workloads", "kmeans", "--profile", "--out", str(out)],
                          capture_output=True, text=True, timeout=290)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (result,) = json.loads(out.read_text())["results"]
    for method in ("fit", "predict"):
        prof = result["methods"][method]["profile"]
        assert len(prof["share_in_kernels_per_rank"]) == 2
        assert all(0.0 < s <= 1.0 for s in prof["share_in_kernels_per_rank"])
        assert "kmeans_assign" in prof["kernels_rank0"] if method == "predict" else \
            "kmeans_lloyd_local" in prof["kernels_rank0"]
        assert len(prof["peak_rss_mb_per_rank"]) == 2 and len(prof["shard_mb_per_rank"]) == 2
    assert "| in hooks (min rank) |" in out.with_suffix(".md").read_text()


@pytest.mark.timeout(300)
def test_cpu_and_sycl_backends_in_one_run(tmp_path):
    """``--backends cpu,sycl``: the sycl backend timed on dpnp input next to the cpu backend
    (where a SYCL device is usable; the run sets OCL_ICD_FILENAMES to Intel's OpenCL CPU
    runtime of this environment when it is unset)."""
    import os

    from spmdlearn import _backends

    lib = Path(sys.prefix) / "lib" / "libintelocl.so"
    env = dict(os.environ)
    if lib.exists():
        env.setdefault("OCL_ICD_FILENAMES", str(lib))
    probe = subprocess.run([sys.executable, "-c", "from spmdlearn import _backends; "
                            "print('sycl' in _backends.available_backends())"],
                           capture_output=True, text=True, timeout=120, env=env)
    if probe.stdout.strip() != "True":
        pytest.skip(f"sycl backend unavailable here ({_backends._available('sycl')[1]})")
    out = tmp_path / "sycl.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                           "--ranks", "1", "--repeat", "1", "--peers", "none", "--backends",
                           "cpu,sycl", "--workloads", "statistics,kmeans", "--out", str(out)],
                          capture_output=True, text=True, timeout=290, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    results = json.loads(out.read_text())["results"]
    assert not [r for r in results if "error" in r], results
    timed = {(r["workload"], r["backend"]) for r in results if r.get("methods")}
    assert timed == {(w, b) for w in ("statistics", "kmeans") for b in ("cpu", "sycl")}
    assert "spmdlearn[sycl] s" in out.with_suffix(".md").read_text()


def test_median_times_in_turn_alternates_and_reduces():
    """The GPU benchmarks' in-turn timing: run i of every function before run i + 1 of any,
    each run's seconds through that function's reduce, one warm-up each, medians returned."""
    import sys

    sys.path.insert(0, str(ROOT))
    from benchmarks._gpu import median_time, median_times_in_turn

    calls, syncs, befores = [], [], []
    fns = [lambda: calls.append("a"), lambda: calls.append("b")]
    one, two = median_times_in_turn(fns, 3, sync=lambda: syncs.append(1),
                                    reduces=[lambda s: 1.0, lambda s: 2.0 + s * 0],
                                    before=lambda: befores.append(1))
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert (one, two) == (1.0, 2.0)
    assert len(befores) == 6 and len(syncs) == 1 + 6
    assert median_time(lambda: None, 5, reduce=lambda s: 0.5) == 0.5
