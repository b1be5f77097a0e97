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
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                           "--ranks", "1,2", "--repeat", "1", "--peers", "sklearn",
                           "--out", str(out)], capture_output=True, text=True, timeout=590)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    run = json.loads(out.read_text())
    assert {"dgemm_gflops_1core", "read_bandwidth_gbs_1proc"} <= set(run["limits"])
    errors = [r for r in run["results"] if "error" in r]
    assert not errors, errors[:3]
    timed = {(r["workload"], r["impl"], r.get("ranks")) for r in run["results"] if "methods" in r}
    from benchmarks.workloads import WORKLOADS  # noqa: F401 - the harness's own table

    for name in WORKLOADS:
        assert (name, "spmdlearn", 1) in timed and (name, "spmdlearn", 2) in timed, name
        assert (name, "sklearn", 1) in timed or any(t[:2] == (name, "sklearn") for t in timed)
    table = out.with_suffix(".md").read_text()
    assert table.startswith("| workload | method | ranks |")
