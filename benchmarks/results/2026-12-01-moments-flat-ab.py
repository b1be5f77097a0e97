"""A/B of the cpu moments kernels in one process per rank: the row loop (``_column_moments``,
the kernel before 2026-12-01) against the flat kernel (``_column_moments_flat``), on
2,000,000 x 20 float64 rows per rank, timed in turn (the slowest rank's time of each call).

    OMP_NUM_THREADS=1 mpiexec -n N python benchmarks/results/2026-12-01-moments-flat-ab.py
"""
import time

import numpy as np
from mpi4py import MPI

from spmdlearn_cpu._blocks import block_rows
from spmdlearn_cpu._moments import _UNWEIGHTED, _column_moments, _column_moments_flat, _lanes
from spmdlearn_cpu._threads import use_kernel_threads

comm = MPI.COMM_WORLD
use_kernel_threads()  # the rank's share of the node's cores, as the plugin's entry points set
X = np.random.default_rng(comm.rank).standard_normal((2_000_000, 20))
d = X.shape[1]
calls = {"row loop": lambda: _column_moments(X, np.zeros(0), _UNWEIGHTED, block_rows(d)),
         "flat": lambda: _column_moments_flat(X, block_rows(d), _lanes(d))}
times = {name: [] for name in calls}
for fn in calls.values():
    fn()
for _ in range(9):
    for name, fn in calls.items():
        comm.Barrier()
        start = time.perf_counter()
        fn()
        times[name].append(comm.allreduce(time.perf_counter() - start, op=MPI.MAX))
if comm.rank == 0:
    med = {name: float(np.median(t)) for name, t in times.items()}
    print(f"{comm.size} rank(s), 2M x 20 float64 per rank, median of 9 (slowest rank): " +
          ", ".join(f"{name} {s * 1e3:.1f} ms" for name, s in med.items()) +
          f"; flat / row loop {med['flat'] / med['row loop']:.2f}", flush=True)
