"""Weak scaling of whole fits on GPUs, one rank per GPU: each rank holds ``--rows`` rows on
device ``spmdlearn_cuda.device_for_rank()`` and every rank times the same collective call.

    mpirun -n N python benchmarks/gpu_weak.py [--rows 2000000] [--features 20]
        [--knn-rows 1000000] [--queries 100000] [--self-baseline] [--json PATH]
    python benchmarks/gpu_weak.py --plot PREFIX RESULT.json [RESULT.json ...]

Partials travel through the host (the MPI library need not be CUDA-aware). Each timing is the
slowest rank's, median of ``--repeat`` after a warm-up; the shares of one more run (rank 0's:
inside GPU kernels, inside MPI calls, elsewhere) say what carried the time.

``--self-baseline`` times, in the same processes and in turn with the fit on all ranks, each
rank's fit on ``MPI.COMM_SELF`` (the one-GPU fit): the host's speed varies between runs on a
shared machine, so two separate jobs compare less well than two fits taken in turn.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._gpu import median_time, median_times_in_turn, time_shares  # noqa: E402


def plot(prefix, paths):
    """One PNG per workload from result JSONs of runs at several GPU counts: each run's time
    (ms) and the weak-scaling efficiency against the mean one-GPU time (kNN's work-normalised,
    since every rank's queries search every rank's rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [json.load(open(path)) for path in paths]
    names = sorted({name for run in runs for name in run["results"]})
    written = []
    for name in names:
        points = [(run["ranks"], run["results"][name]["seconds"]) for run in runs
                  if name in run["results"]]
        ones = [t for n, t in points if n == 1]
        if not ones:
            continue
        base = float(np.mean(ones))
        work = (lambda n: n) if name == "knn" else (lambda n: 1)
        fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(9, 3.5))
        ax_t.plot([n for n, _ in points], [t * 1e3 for _, t in points], "o")
        ax_t.set(xlabel="GPUs (one rank each)", ylabel="ms (slowest rank)", title=name)
        ax_e.plot([n for n, _ in points], [work(n) * base / t for n, t in points], "o")
        ax_e.axhline(0.8 if name == "knn" else 0.9, linestyle="--", color="gray")
        ax_e.set(xlabel="GPUs (one rank each)", ylim=(0, 1.2),
                 ylabel="work-normalised efficiency" if name == "knn" else "efficiency")
        for ax in (ax_t, ax_e):
            ax.set_xticks(sorted({n for n, _ in points}))
        fig.tight_layout()
        out = f"{prefix}-{name}.png"
        fig.savefig(out, dpi=100)
        plt.close(fig)
        written.append(out)
    print("wrote " + ", ".join(written))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--plot":
        return plot(argv[1], argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--knn-rows", type=int, default=1_000_000)
    parser.add_argument("--knn-features", type=int, default=16)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workloads", default="statistics,linear_regression,kmeans,knn")
    parser.add_argument("--json", default=None)
    parser.add_argument("--self-baseline", action="store_true",
                        help="also time each fit on MPI.COMM_SELF (one GPU, no collective) in "
                             "the same processes, alternating with the fit on all ranks")
    args = parser.parse_args(argv)

    import cupy as cp
    from mpi4py import MPI

    from spmdlearn.basic_statistics import BasicStatistics
    from spmdlearn.cluster import KMeans
    from spmdlearn.linear_model import LinearRegression
    from spmdlearn.neighbors import NearestNeighbors
    from spmdlearn_cuda import device_for_rank

    comm = MPI.COMM_WORLD
    cp.cuda.Device(device_for_rank()).use()
    gen = cp.random.default_rng(comm.rank)
    X = gen.standard_normal((args.rows, args.features))
    y = X @ cp.arange(args.features, dtype=X.dtype) + gen.standard_normal(args.rows)
    Xk = gen.standard_normal((args.knn_rows, args.knn_features))
    Qk = gen.standard_normal((args.queries, args.knn_features))
    init = cp.asnumpy(cp.random.default_rng(99).standard_normal((10, args.features)))
    calls = {"statistics": lambda: BasicStatistics().fit(X),
             "linear_regression": lambda: LinearRegression().fit(X, y),
             "kmeans": lambda: KMeans(10, init=init, n_init=1, max_iter=10, tol=0.0).fit(X),
             "knn": lambda: NearestNeighbors(n_neighbors=10).fit(Xk).kneighbors(Qk)}
    sync = cp.cuda.Device().synchronize

    def slowest(seconds):
        return comm.allreduce(seconds, op=MPI.MAX)

    def alternating(call):
        """Median seconds of the fit on one rank alone (COMM_SELF; the mean over ranks, which
        all run their own at once) and on all ranks (the slowest rank), taken in turn."""
        import spmdlearn

        def alone():
            with spmdlearn.config_context(comm=MPI.COMM_SELF):
                call()

        def mean(seconds):
            return comm.allreduce(seconds, op=MPI.SUM) / comm.size

        one, all_ = median_times_in_turn([alone, call], args.repeat, sync, [mean, slowest],
                                         before=comm.Barrier)
        return one, all_

    out = {}
    for name in args.workloads.split(","):
        seconds = median_time(calls[name], args.repeat, sync, reduce=slowest, before=comm.Barrier)
        comm.Barrier()
        shares = time_shares(calls[name], sync)
        out[name] = {"seconds": seconds, "shares_rank0": shares}
        if args.self_baseline:
            one, all_ = alternating(calls[name])
            out[name]["alternating"] = {"one_rank_s": one, "all_ranks_s": all_,
                                        "efficiency": one / all_}
            if comm.rank == 0:
                print(f"{comm.size} GPU(s): {name:18s} in turn: alone {one * 1e3:.2f} ms, all "
                      f"ranks {all_ * 1e3:.2f} ms, efficiency {one / all_:.2f}", flush=True)
        if comm.rank == 0:
            print(f"{comm.size} GPU(s): {name:18s} {seconds * 1e3:10.2f} ms | rank 0: kernels "
                  f"{shares['kernels']:.0%}, MPI (host staging) {shares['mpi']:.0%}, outside "
                  f"{shares['outside']:.0%}", flush=True)
    if comm.rank == 0 and args.json:
        with open(args.json, "w") as f:
            json.dump({"ranks": comm.size, "rows_per_rank": args.rows, "features": args.features,
                       "knn_rows_per_rank": args.knn_rows, "queries_per_rank": args.queries,
                       "knn_features": args.knn_features, "results": out}, f, indent=1)


if __name__ == "__main__":
    main()
