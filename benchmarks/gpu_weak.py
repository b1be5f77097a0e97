"""Weak scaling of whole fits on GPUs, one rank per GPU: each rank holds ``--rows`` rows on
device ``spmdlearn_cuda.device_for_rank()`` and every rank times the same collective fit.

    mpirun -n N python benchmarks/gpu_weak.py [--rows 2000000] [--features 20] [--json PATH]

Partials travel through the host (the MPI library need not be CUDA-aware); each timing is the
slowest rank's, median of ``--repeat`` after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import cupy as cp
    from mpi4py import MPI

    from spmdlearn.basic_statistics import BasicStatistics
    from spmdlearn.cluster import KMeans
    from spmdlearn.linear_model import LinearRegression
    from spmdlearn_cuda import device_for_rank

    comm = MPI.COMM_WORLD
    cp.cuda.Device(device_for_rank()).use()
    gen = cp.random.default_rng(comm.rank)
    X = gen.standard_normal((args.rows, args.features))
    y = X @ cp.arange(args.features, dtype=X.dtype) + gen.standard_normal(args.rows)
    fits = {"statistics": lambda: BasicStatistics().fit(X),
            "linear_regression": lambda: LinearRegression().fit(X, y),
            "kmeans (10 Lloyd steps)": lambda: KMeans(10, init="random", n_init=1, max_iter=10,
                                                      tol=0.0, random_state=0).fit(X)}
    out = {}
    for name, fit in fits.items():
        fit()
        times = []
        for _ in range(args.repeat):
            comm.Barrier()
            start = time.perf_counter()
            fit()
            cp.cuda.Device().synchronize()
            times.append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
        out[name] = float(np.median(times))
        if comm.rank == 0:
            print(f"{comm.size} GPU(s), {args.rows} x {args.features} per rank: {name:24s} "
                  f"{out[name] * 1e3:9.2f} ms", flush=True)
    if comm.rank == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump({"ranks": comm.size, "rows_per_rank": args.rows, "features": args.features,
                       "seconds": out}, f, indent=1)


if __name__ == "__main__":
    main()
