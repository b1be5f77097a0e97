"""Host time that a multi-rank fit adds over a one-rank fit, on shards so small that it dominates.

    mpiexec -n 2 python benchmarks/world_overhead.py --rows 1000 --repeat 400

Every rank fits the same estimator on its shard twice: alone (``config_context(comm=COMM_SELF)``,
what one rank costs) and on the library's communicator (all ranks). For each estimator rank 0
prints, alone and on the world: the fit time (median over repeats of the slowest rank, each
repeat started after a barrier), the CPU time of the process per fit (median over repeats, the
largest over ranks: unlike the wall time, it does not count waiting for the other rank while it
is descheduled on a loaded machine; the time spent waiting in a status exchange, spinning or
sleeping, is left out), the busy time per fit (wall time less the time in the exchanges' wait
loop; 10th percentile over repeats, the largest over ranks: the host work of the fit on a loaded
machine) and the Python function calls per fit (cProfile, rank 0; the calls of
the wait loop, ``time.monotonic`` and ``time.sleep``, left out: they count the time waited, not
work). The difference is what the world adds. KMeans is reported per Lloyd step: the difference
between fits of 20 and 10 steps, divided by 10. ``PYTHONPATH=<other checkout>/core`` runs the same
on another version of the library, for a before/after comparison.
"""

import argparse
import cProfile
import pstats
import time

import numpy as np
from mpi4py import MPI

import spmdlearn
from spmdlearn import comm as spmd_comm
from spmdlearn.basic_statistics import BasicStatistics
from spmdlearn.cluster import KMeans
from spmdlearn.covariance import EmpiricalCovariance
from spmdlearn.linear_model import LinearRegression


_WAITED = [0.0, 0.0]


def _count_waiting():
    """CPU and wall time spent in the status exchanges' wait loop, to leave out."""
    original = spmd_comm.Comm._wait

    def waiting(self, *args, **kwargs):
        start, wall = time.process_time(), time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            _WAITED[0] += time.process_time() - start
            _WAITED[1] += time.perf_counter() - wall

    spmd_comm.Comm._wait = waiting


def _timed(world, fit, repeat):
    walls, cpus, busy = [], [], []
    for _ in range(repeat):
        world.Barrier()
        _WAITED[0] = _WAITED[1] = 0.0
        start, cpu = time.perf_counter(), time.process_time()
        fit()
        cpus.append(time.process_time() - cpu - _WAITED[0])
        walls.append(time.perf_counter() - start)
        busy.append(walls[-1] - _WAITED[1])
    wall = np.array(world.allreduce(walls, op=MPI.SUM)).reshape(world.size, repeat).max(axis=0)
    cpu = max(world.allgather(float(np.median(cpus))))
    busy = max(world.allgather(float(np.percentile(busy, 10))))
    return float(np.median(wall)) * 1e3, cpu * 1e3, busy * 1e3


def calls_per_fit(fit, n=20):
    """Python function calls per call of ``fit`` (cProfile), leaving out the clock reads and
    sleeps of the wait loop, whose number depends on how long the other ranks take."""
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n):
        fit()
    profile.disable()
    stats = pstats.Stats(profile)
    waiting = sum(value[1] for key, value in stats.stats.items()
                  if key[2] in ("<built-in method time.monotonic>", "<built-in method time.sleep>"))
    return (stats.total_calls - waiting) / n


def estimator_fits(X, y, init):
    """``{name: [fit, ...]}``: the fits both scripts time. One fit: its own cost; two (KMeans
    with 20 and 10 Lloyd steps): the difference, divided by 10, is the cost of one step."""

    def kmeans(steps):
        return lambda: KMeans(len(init), init=init, n_init=1, max_iter=steps, tol=0.0).fit(X)

    return {
        "BasicStatistics": [lambda: BasicStatistics().fit(X)],
        "EmpiricalCovariance": [lambda: EmpiricalCovariance().fit(X)],
        "LinearRegression": [lambda: LinearRegression().fit(X, y)],
        "KMeans per step": [kmeans(20), kmeans(10)],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000, help="rows per rank")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=400)
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--fits", default="BasicStatistics,EmpiricalCovariance,LinearRegression,"
                        "KMeans", help="comma-separated estimators to time")
    args = parser.parse_args()
    world = MPI.COMM_WORLD
    rng = np.random.default_rng(world.rank)
    X = rng.normal(size=(args.rows, args.features))
    y = X @ np.arange(1.0, args.features + 1) + rng.normal(size=args.rows)
    init = np.random.default_rng(0).normal(size=(4, args.features))

    fits = estimator_fits(X, y, init)
    _count_waiting()
    with spmdlearn.config_context(backend=args.backend):
        BasicStatistics().fit(X)  # the ranks' thread limit, set by the first collective call
    if world.rank == 0:
        print(f"ranks={world.size} rows/rank={args.rows} features={args.features} "
              f"backend={args.backend} repeat={args.repeat}", flush=True)
    for name, calls in fits.items():
        if name.split()[0] not in args.fits.split(","):
            continue
        results = {}
        for where, comm in (("alone", MPI.COMM_SELF), ("world", None)):
            values = []
            for fit in calls:
                with spmdlearn.config_context(comm=comm, backend=args.backend):
                    for _ in range(20):
                        fit()
                    wall, cpu, busy = _timed(world, fit, args.repeat)
                    n = calls_per_fit(fit)
                values.append(np.array([wall, cpu, busy, n]))
            value = values[0] if len(values) == 1 else (values[0] - values[1]) / 10
            results[where] = value
        if world.rank == 0:
            (wa, ca, ba, na), (ww, cw, bw, nw) = results["alone"], results["world"]
            print(f"{name:<20} alone: wall {wa:6.3f} cpu {ca:6.3f} busy {ba:6.3f} ms calls "
                  f"{na:5.0f} | world: wall {ww:6.3f} cpu {cw:6.3f} busy {bw:6.3f} ms calls "
                  f"{nw:5.0f} | added: wall {ww - wa:6.3f} cpu {cw - ca:6.3f} busy {bw - ba:6.3f} "
                  f"ms calls {nw - na:4.0f}", flush=True)


if __name__ == "__main__":
    main()
