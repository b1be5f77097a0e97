"""The fixed cost of the collective protocol per fit, on shards so small that it dominates.

    mpiexec -n 1 python benchmarks/protocol_cost.py --rows 1000 --repeat 500
    mpiexec -n 2 python benchmarks/protocol_cost.py --rows 1000 --repeat 500

For each fit (BasicStatistics, EmpiricalCovariance, LinearRegression, KMeans with 10 Lloyd
steps), rank 0 prints the slowest rank's fit time (median, 10th percentile and minimum over the
repeats, each repeat started after a barrier), the status exchanges per fit and the MPI calls
per fit on the library's communicator (each a synchronisation of the ranks). The difference
between the times at ``-n 2`` and ``-n 1`` is what the protocol costs on more than one rank: on a
loaded machine the low percentiles show it best. ``PYTHONPATH=<other checkout>/core`` runs the
same on another version of the library, for a before/after comparison.
"""

import argparse
import time

import numpy as np
from mpi4py import MPI

from spmdlearn import comm as spmd_comm
from spmdlearn.basic_statistics import BasicStatistics
from spmdlearn.cluster import KMeans
from spmdlearn.covariance import EmpiricalCovariance
from spmdlearn.linear_model import LinearRegression


class _Counting:
    """The mpi4py communicator, counting the calls made on it (each a synchronisation)."""

    def __init__(self, inner):
        self._inner, self.n = inner, 0

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name[:1].isalpha() and name not in ("Get_rank", "Get_size", "Iprobe") and callable(attr):
            def call(*args, **kwargs):
                self.n += 1
                return attr(*args, **kwargs)
            return call
        return attr

    def __eq__(self, other):
        return other is self or other is self._inner

    __hash__ = object.__hash__


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000, help="rows per rank")
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    exchanges = {"n": 0}
    original = spmd_comm.Comm._exchange

    def counted(self, *a, **k):
        exchanges["n"] += 1
        return original(self, *a, **k)

    spmd_comm.Comm._exchange = counted
    comm = spmd_comm.get_comm()
    counting = _Counting(comm.mpi)
    comm.mpi = counting
    rng = np.random.default_rng(world.rank)
    X = rng.normal(size=(args.rows, args.features))
    y = X @ np.arange(1.0, args.features + 1) + rng.normal(size=args.rows)
    init = np.random.default_rng(0).normal(size=(4, args.features))
    fits = {
        "BasicStatistics": (lambda: BasicStatistics().fit(X), 1),
        "EmpiricalCovariance": (lambda: EmpiricalCovariance().fit(X), 1),
        "LinearRegression": (lambda: LinearRegression().fit(X, y), 1),
        "KMeans(k=4, 10 steps)": (lambda: KMeans(4, init=init, n_init=1, max_iter=10,
                                                 tol=0.0).fit(X), 5),
    }
    if world.rank == 0:
        print(f"ranks={world.size} rows/rank={args.rows} features={args.features}", flush=True)
    for name, (fit, slower) in fits.items():
        repeat = max(20, args.repeat // slower)
        for _ in range(20):
            fit()
        times = []
        exchanges["n"], counting.n = 0, 0
        for _ in range(repeat):
            world.Barrier()
            start = time.perf_counter()
            fit()
            times.append(world.allreduce(time.perf_counter() - start, op=MPI.MAX))
        if world.rank == 0:
            ms = np.array(times) * 1e3
            print(f"{name:<22} median={np.median(ms):7.3f} ms p10={np.percentile(ms, 10):7.3f} "
                  f"min={ms.min():7.3f}  exchanges/fit={exchanges['n'] / repeat:.1f} "
                  f"MPI calls/fit={counting.n / repeat:.1f}", flush=True)


if __name__ == "__main__":
    main()
