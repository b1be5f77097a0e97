"""Cost of failing fast (status exchanges, method sessions, watchdog) on the benchmark workloads.

    mpiexec -n 2 python benchmarks/collective_overhead.py --scale 0.1 --repeat 3

For each workload's ``fit``, rank 0 prints one line: the fit time (median over repeats of the
slowest rank), the number of status exchanges per fit, the cost of one exchange on ranks that
arrive together (measured here), and their product as a share of the fit time: the overhead
that the agreement adds even when no rank waits for another. Run the same command with
``PYTHONPATH=<checkout without failing fast>/core`` for a before/after comparison of fit times
(exchanges are then reported as 0).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

from workloads import WORKLOADS, make_data, spmdlearn_calls  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", default="statistics,covariance,linear_regression,ridge,"
                        "pca,kmeans,logistic_regression,knn,dbscan,random_forest")
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    from spmdlearn import comm as spmd_comm

    counter = {"n": 0}
    original = getattr(spmd_comm.Comm, "_exchange", None)
    if original is not None:
        def counted(self, *a, **k):
            counter["n"] += 1
            return original(self, *a, **k)
        spmd_comm.Comm._exchange = counted
    comm = spmd_comm.get_comm()
    per_exchange = 0.0
    if original is not None:
        for _ in range(100):
            comm._enter("warm-up")
        world.Barrier()
        start = time.perf_counter()
        for _ in range(2000):
            comm._enter("probe")
        per_exchange = world.allreduce(time.perf_counter() - start, op=MPI.MAX) / 2000
    if world.rank == 0:
        print(f"ranks={world.size} scale={args.scale} exchange={per_exchange * 1e6:.1f} us",
              flush=True)
    for name in args.workloads.split(","):
        workload = WORKLOADS[name]
        rows = max(1, int(workload.rows * args.scale))
        X, y = make_data(workload, rows, world.rank)
        fit = spmdlearn_calls(workload, X, y)["fit"]
        fit()  # warm-up
        times, counts = [], []
        for _ in range(args.repeat):
            world.Barrier()
            counter["n"] = 0
            start = time.perf_counter()
            fit()
            times.append(world.allreduce(time.perf_counter() - start, op=MPI.MAX))
            counts.append(counter["n"])
        t = float(np.median(times))
        n = max(counts)
        if world.rank == 0:
            print(f"{name:<20} rows/rank={rows:>8} fit={t:8.4f} s exchanges={n:>6} "
                  f"exchange cost={n * per_exchange * 1e3:8.3f} ms "
                  f"({100 * n * per_exchange / t:.3f}% of fit)", flush=True)


if __name__ == "__main__":
    main()
