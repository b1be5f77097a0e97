"""The examples run under mpiexec and check themselves against scikit-learn."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from run_all import mpiexec_command

pytestmark = pytest.mark.serial

EXAMPLES = sorted(p.name for p in (Path(__file__).parent.parent / "examples").glob("*.py")
                  if not p.name.startswith("_"))


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
