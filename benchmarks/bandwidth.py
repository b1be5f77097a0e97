"""The machine's aggregate read bandwidth with every rank streaming its own array at once.

    mpiexec -n 16 python benchmarks/bandwidth.py [--mbytes 400] [--repeat 5]

Each rank sums a float64 array far larger than the caches; the ranks start together (a
barrier) and the aggregate bandwidth is all ranks' bytes over the slowest rank's time (best of
``--repeat``). This is the bound a one-pass reduction can reach at that many ranks: a weak-scaling
efficiency is judged against how this aggregate grows with the ranks, not against perfect scaling.
"""

import argparse
import json
import time

import numpy as np
from mpi4py import MPI


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mbytes", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    data = np.ones(args.mbytes * (1 << 20) // 8)
    data.sum()
    best = np.inf
    for _ in range(args.repeat):
        world.Barrier()
        start = time.perf_counter()
        data.sum()
        slowest = world.allreduce(time.perf_counter() - start, op=MPI.MAX)
        best = min(best, slowest)
    if world.rank == 0:
        total = world.size * data.nbytes
        print("RESULT " + json.dumps({"ranks": world.size, "aggregate_gbs": total / best / 1e9,
                                      "per_rank_gbs": data.nbytes / best / 1e9}), flush=True)


if __name__ == "__main__":
    main()
