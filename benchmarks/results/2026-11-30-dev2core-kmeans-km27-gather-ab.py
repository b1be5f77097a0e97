# mpiexec -n 2 python ab.py TAG [REPS]: per-rank CPU time (process_time) and wall of KMeans.fit on the benchmark data (first fit not counted); base = main via PYTHONPATH of a `git archive main` copy
import sys, time, json, hashlib
sys.path.insert(0, "/work/wt/km25/benchmarks")
import numpy as np
from mpi4py import MPI
from workloads import WORKLOADS, kmeans_init, make_data
from spmdlearn.cluster import KMeans
import spmdlearn_cpu
comm = MPI.COMM_WORLD
w = WORKLOADS["kmeans"]
X, _ = make_data(w, 1_000_000, comm.rank)
init = kmeans_init(w)
cpu, wall = [], []
R = int(sys.argv[2]) if len(sys.argv) > 2 else 4
for r in range(R):
    comm.Barrier(); t0 = time.process_time(); w0 = time.perf_counter()
    m = KMeans(10, init=init, n_init=1, max_iter=20, tol=0.0).fit(X)
    c = time.process_time() - t0; wl = time.perf_counter() - w0
    if r: cpu.append(c); wall.append(wl)
res = comm.gather((cpu, wall), root=0)
h = hashlib.sha256(m.cluster_centers_.tobytes() + np.float64(m.inertia_).tobytes() + np.int64(m.n_iter_).tobytes()).hexdigest()[:12]
lh = comm.gather(hashlib.sha256(np.asarray(m.labels_).tobytes()).hexdigest()[:12], root=0)
if comm.rank == 0:
    print("RESULT", sys.argv[1], spmdlearn_cpu.__file__.split("/")[2:4], json.dumps({"cpu_per_rank": [[round(x, 3) for x in r[0]] for r in res],
          "wall": [round(x, 3) for x in res[0][1]], "model": h, "labels": lh, "n_iter": m.n_iter_, "inertia": m.inertia_}))
