"""Forest fit time on CuPy rows, one process per rank (GPU r mod n): 50 trees of depth 10 on
ROWS x 20 per rank (argv[1], default 1,000,000); the median of 3 fits after a warm-up.

`mpirun -n R python3 benchmarks/gpu_forest.py [ROWS] [LABEL]`
"""
import sys, time, numpy as np, cupy as cp
from mpi4py import MPI
import spmdlearn
from spmdlearn.ensemble import RandomForestClassifier
from spmdlearn_cuda import device_for_rank
comm = MPI.COMM_WORLD
cp.cuda.Device(device_for_rank()).use()
rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
rng = np.random.default_rng(comm.rank)
X = rng.standard_normal((rows, 20)); y = (X[:, 0] + X[:, 1] * X[:, 2] + 0.3 * rng.standard_normal(rows) > 0).astype(np.int64)
Xd, yd = cp.asarray(X), cp.asarray(y)
with spmdlearn.config_context(backend="cuda"):
    RandomForestClassifier(5, max_depth=10, random_state=0).fit(Xd, yd)
    ts = []
    for _ in range(3):
        cp.cuda.Device().synchronize(); comm.Barrier(); t = time.perf_counter()
        m = RandomForestClassifier(50, max_depth=10, random_state=0).fit(Xd, yd)
        cp.cuda.Device().synchronize(); ts.append(time.perf_counter() - t)
    acc = float((cp.asnumpy(m.predict(Xd[:100000])) == y[:100000]).mean())
if comm.rank == 0:
    print(f"{sys.argv[2] if len(sys.argv) > 2 else ''} ranks {comm.size}: forest fit median {np.median(ts):.3f} s {['%.3f' % t for t in ts]}, train acc {acc:.4f}", flush=True)
