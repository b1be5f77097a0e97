"""Long fits report progress with verbose, on rank 0 only (every rank holds the same state)."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs, make_classification

from spmdlearn.cluster import KMeans
from spmdlearn.ensemble import RandomForestClassifier
from spmdlearn.linear_model import LogisticRegression
from spmdlearn_conformance import assert_all_ranks, local_rows, random_cuts

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(60)]


@pytest.mark.parametrize("case", ["lbfgs", "newton-cg", "kmeans", "forest"])
def test_verbose_progress_on_rank_zero_only(comm, capsys, case):
    if case == "kmeans":
        X, _ = make_blobs(300, 3, centers=4, random_state=0)
        y, est, marker = None, KMeans(4, n_init=1, random_state=0, verbose=1), "Iteration 1,"
    else:
        X, y = make_classification(300, 5, random_state=0)
        if case == "forest":
            est, marker = RandomForestClassifier(3, max_depth=3, random_state=0, verbose=1), \
                "building tree 3 of 3"
        else:
            est = LogisticRegression(solver=case, verbose=1)
            marker = "L-BFGS-B iter = 1," if case == "lbfgs" else "Newton-CG iter = 1,"
    cuts = random_cuts(len(X), comm.size, 3)
    if y is None:
        est.fit(local_rows(cuts, comm.rank, X))
    else:
        est.fit(*local_rows(cuts, comm.rank, X, y))
    out = capsys.readouterr().out
    if comm.rank == 0:
        assert_all_ranks(comm, marker in out, f"rank 0 printed {out[:200]!r}")
    else:
        assert_all_ranks(comm, out == "", f"rank {comm.rank} printed {out[:200]!r}")
    quiet = type(est)(**{**est.get_params(), "verbose": 0})
    quiet.fit(local_rows(cuts, comm.rank, X)) if y is None else \
        quiet.fit(*local_rows(cuts, comm.rank, X, y))
    assert_all_ranks(comm, capsys.readouterr().out == "", "verbose=0 prints nothing")
