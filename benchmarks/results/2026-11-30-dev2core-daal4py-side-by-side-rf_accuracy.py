"""Held-out accuracy of the benchmark's random forest: spmdlearn (under mpiexec, SPMDLEARN_BACKEND)
next to scikit-learn's and sklearnex's forests fitted on the gathered training rows.

    mpiexec -n 2 python benchmarks/results/<this file>   (training rows: the benchmark's random_forest shards)
"""
import json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import numpy as np
from mpi4py import MPI
from workloads import WORKLOADS, make_data

comm = MPI.COMM_WORLD
w = WORKLOADS["random_forest"]
rows = int(os.environ.get("RF_ROWS", w.rows))
X, y = make_data(w, rows, comm.rank)                      # the benchmark's shard
Xt, yt = make_data(w, rows // 4, 1000 + comm.rank)        # held-out rows, same distribution
from spmdlearn.ensemble import RandomForestClassifier
t = time.perf_counter()
m = RandomForestClassifier(50, max_depth=10, random_state=0).fit(X, y)
fit_s = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
acc = m.score(Xt, yt)
out = {"backend": os.environ.get("SPMDLEARN_BACKEND"), "ranks": comm.size, "rows_per_rank": rows,
       "spmdlearn_acc": float(acc), "spmdlearn_fit_s": fit_s}
if comm.rank == 0:
    parts = [make_data(w, rows, r) for r in range(comm.size)]
    tests = [make_data(w, rows // 4, 1000 + r) for r in range(comm.size)]
    XA, yA = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    XT, yT = np.concatenate([p[0] for p in tests]), np.concatenate([p[1] for p in tests])
    from sklearn.ensemble import RandomForestClassifier as SK
    out["sklearn_acc"] = float(SK(50, max_depth=10, random_state=0).fit(XA, yA).score(XT, yT))
    from sklearnex.ensemble import RandomForestClassifier as SKX
    out["sklearnex_acc"] = float(SKX(50, max_depth=10, random_state=0).fit(XA, yA).score(XT, yT))
    print("RESULT " + json.dumps(out), flush=True)
