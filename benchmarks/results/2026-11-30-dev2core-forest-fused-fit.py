"""Fit the random_forest workload (benchmarks/workloads.py) REPS times after a small warm-up fit;
rank 0 prints the wall and CPU seconds of each fit and a hash of every tree's arrays.

Usage: mpiexec -n 2 python THIS [REPS] [prof]   (prof: cProfile of the last fit on rank 0,
written to forest-fit.prof)
"""
import sys, time, hashlib, os
sys.path.insert(0, os.path.join(os.getcwd(), "benchmarks"))
import numpy as np
from mpi4py import MPI
from workloads import WORKLOADS, make_data
from spmdlearn.ensemble import RandomForestClassifier
comm = MPI.COMM_WORLD
wl = WORKLOADS["random_forest"]
X, y = make_data(wl, wl.rows, comm.rank)
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 2
prof = len(sys.argv) > 2 and sys.argv[2] == "prof"
RandomForestClassifier(2, max_depth=3, random_state=0).fit(X[:1000], y[:1000])  # warm numba
times = []; cpu = []
for r in range(reps):
    comm.Barrier()
    if prof and r == reps - 1 and comm.rank == 0:
        import cProfile; pr = cProfile.Profile(); pr.enable()
    t = time.perf_counter(); c = time.process_time()
    m = RandomForestClassifier(50, max_depth=10, random_state=0).fit(X, y)
    times.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
    if prof and r == reps - 1 and comm.rank == 0:
        pr.disable(); pr.dump_stats("forest-fit.prof")
h = hashlib.sha256()
for t in m.estimators_:
    for a in t:
        h.update(np.ascontiguousarray(a).tobytes())
if comm.rank == 0:
    print("fit s", " ".join(f"{t:.2f}" for t in times), "cpu s", " ".join(f"{t:.2f}" for t in cpu), "hash", h.hexdigest()[:16], "load", os.getloadavg()[0], flush=True)
