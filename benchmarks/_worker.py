"""One timed configuration, run on every rank under mpiexec; rank 0 prints one JSON line.

    mpiexec -n N python benchmarks/_worker.py --impl spmdlearn --workload W --rows R --repeat K

Each call is timed on every rank between barriers; a repeat's time is the slowest rank's; the
result is the median over repeats after one warm-up. Peak RSS is the largest over ranks.

``--profile`` (spmdlearn only) adds, per method, one more call timed with the kernel hooks
instrumented (:func:`spmdlearn._profiling.kernel_timer`; the timed repeats run without it): the
share of the call's time spent inside kernel hooks on each rank, the seconds per kernel, and each
rank's peak resident memory during that call (Linux: ``VmHWM`` after resetting it through
``/proc/self/clear_refs``), next to the memory before the data was made and the shard's size.
"""

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

from workloads import WORKLOADS, kmeans_init, make_data, spmdlearn_calls  # noqa: E402


def daal4py_calls(workload, X, y):
    """daal4py's distributed mode for the workloads it has (None for the others)."""
    import daal4py as d4p

    base = workload.name.split("_f32")[0]
    fptype = "float" if workload.dtype == "float32" else "double"
    if base == "statistics":
        return {"fit": lambda: d4p.low_order_moments(fptype=fptype, distributed=True).compute(X)}
    if base == "covariance":
        return {"fit": lambda: d4p.covariance(fptype=fptype, distributed=True).compute(X)}
    if base in ("linear_regression", "ridge"):
        algo = d4p.linear_regression_training if base == "linear_regression" else \
            d4p.ridge_regression_training
        return {"fit": lambda: algo(fptype=fptype, distributed=True, interceptFlag=True)
                .compute(X, y.reshape(-1, 1))}
    if base == "pca":
        return {"fit": lambda: d4p.pca(fptype=fptype, distributed=True, nComponents=10)
                .compute(X)}
    if base == "kmeans":
        init = kmeans_init(workload).astype(X.dtype)
        return {"fit": lambda: d4p.kmeans(10, 20, fptype=fptype, accuracyThreshold=0.0,
                                          distributed=True).compute(X, init)}
    if base == "dbscan":
        return {"fit": lambda: d4p.dbscan(epsilon=1.0, minObservations=10, fptype=fptype,
                                          distributed=True).compute(X)}
    return None


def _status_mb(field: str):
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in MiB (None where there is none)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _reset_peak_rss():
    """Reset the peak RSS (Linux: ``echo 5 > /proc/self/clear_refs``); return the RSS now."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_mb("VmRSS")


def _peak_rss():
    """Peak RSS since :func:`_reset_peak_rss` (MiB), or the process's if it cannot be reset."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _profile_call(comm, call):
    """One instrumented call: each rank's profile, gathered on rank 0."""
    from spmdlearn._profiling import kernel_timer

    comm.Barrier()
    before = _reset_peak_rss()
    with kernel_timer() as times:
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
    return comm.gather({"seconds": elapsed, "in_kernels_s": times.total,
                        "share": times.total / elapsed if elapsed > 0 else 0.0,
                        "kernels": times.as_dict(), "rss_before_mb": before,
                        "peak_rss_mb": _peak_rss()}, root=0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["spmdlearn", "daal4py"], default="spmdlearn")
    parser.add_argument("--workload", required=True)
    parser.add_argument("--rows", type=int, required=True, help="rows per rank")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--array-type", choices=["numpy", "dpnp"], default="numpy",
                        help="the shards' array type (dpnp: on the default SYCL device)")
    parser.add_argument("--profile", action="store_true",
                        help="also report the share of time inside kernel hooks and peak memory")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    workload = WORKLOADS[args.workload]
    if args.profile:
        import spmdlearn.cluster, spmdlearn.ensemble, spmdlearn.neighbors  # noqa: F401, E401
        import spmdlearn.decomposition, spmdlearn.linear_model  # noqa: F401, E401
    base_rss = _status_mb("VmRSS")  # after the imports, before the data
    X, y = make_data(workload, args.rows, comm.rank)
    shard_mb = (X.nbytes + (0 if y is None else y.nbytes)) / 2**20
    if args.array_type == "dpnp":
        import dpnp

        X, y = dpnp.asarray(X), None if y is None else dpnp.asarray(y)
    rss_before = _reset_peak_rss()
    added, call_peak = 0.0, 0.0
    if args.impl == "daal4py":
        import daal4py as d4p

        # oneDAL threads through TBB, which OMP_NUM_THREADS does not reach: give it the thread
        # count the harness gives every rank (ranks x threads = cores), else all cores
        threads = os.environ.get("OMP_NUM_THREADS")
        d4p.daalinit(int(threads)) if threads else d4p.daalinit()
        calls = daal4py_calls(workload, X, y)
    else:
        calls = spmdlearn_calls(workload, X, y)
    result = {"impl": args.impl, "workload": args.workload, "ranks": comm.size,
              "rows_per_rank": args.rows, "methods": {}}
    bases = comm.gather(base_rss, root=0)
    shards = comm.gather(shard_mb, root=0)
    if calls is None:
        result["skipped"] = "no distributed version"
    else:
        for method, call in calls.items():
            comm.Barrier()
            call()  # warm-up (it also loads the libraries and compiled kernels the call needs)
            before = _reset_peak_rss()
            times = []
            for _ in range(args.repeat):
                comm.Barrier()
                start = time.perf_counter()
                call()
                elapsed = time.perf_counter() - start
                times.append(comm.allreduce(elapsed, op=MPI.MAX))
            peak = _peak_rss()
            result["methods"][method] = {"median_s": float(np.median(times)), "times": times,
                                         "rss_before_mb": before, "peak_rss_mb": peak}
            if before is not None and peak is not None:
                added = max(added, peak - before)
                call_peak = max(call_peak, peak)
            if args.profile and args.impl == "spmdlearn":
                ranks = _profile_call(comm, call)
                if comm.rank == 0:
                    shares = [r["share"] for r in ranks]
                    peaks = [r["peak_rss_mb"] for r in ranks]
                    result["methods"][method]["profile"] = {
                        "seconds": max(r["seconds"] for r in ranks),
                        "share_in_kernels_min": min(shares),
                        "share_in_kernels_per_rank": shares,
                        "kernels_rank0": ranks[0]["kernels"],
                        "peak_rss_mb_per_rank": peaks,
                        "rss_before_call_mb_per_rank": [r["rss_before_mb"] for r in ranks],
                        "base_rss_mb_per_rank": bases,
                        "shard_mb_per_rank": shards,
                        # the memory target: the peak over the process's memory before its data
                        # (interpreter and libraries) within the shard + 25% + 100 MB
                        "peak_over_base_mb_per_rank": [
                            None if p is None or b is None else p - b
                            for p, b in zip(peaks, bases)],
                        "memory_limit_mb_per_rank": [1.25 * m + 100.0 for m in shards],
                    }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result["peak_rss_mb_per_rank"] = comm.gather(rss, root=0)
    # The memory the calls add per rank: the peak RSS of the timed calls less the RSS before
    # them (interpreter, libraries, compiled kernels and the shard), next to the shard's size.
    result["shard_mb_per_rank"] = comm.gather(shard_mb, root=0)
    result["rss_after_data_mb_per_rank"] = comm.gather(rss_before, root=0)
    result["call_peak_rss_mb_per_rank"] = comm.gather(call_peak, root=0)
    result["call_added_mb_per_rank"] = comm.gather(added, root=0)
    if args.impl == "daal4py":
        import daal4py as d4p

        d4p.daalfini()
    if comm.rank == 0:
        print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
