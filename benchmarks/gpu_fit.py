"""Whole-``fit`` timings on one GPU: spmdlearn's cuda backend on CuPy input, spmdlearn's cpu
backend on the machine's cores (NumPy input), and naive CuPy (one library call per step).

Each timing is the median of ``--repeat`` runs after a warm-up, ended by a device synchronize;
the fit includes validation and the (one-rank) MPI reduction.

    python benchmarks/gpu_fit.py [--rows 2000000] [--features 20] [--repeat 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def _median_time(fn, repeat, sync=lambda: None):
    fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import cupy as cp

    import spmdlearn
    from spmdlearn.basic_statistics import BasicStatistics
    from spmdlearn.covariance import EmpiricalCovariance
    from spmdlearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.features))
    y = X @ rng.standard_normal(args.features) + rng.standard_normal(args.rows)
    Xd, yd = cp.asarray(X), cp.asarray(y)
    sync = cp.cuda.Device().synchronize
    workloads = {
        "statistics": (lambda A, b: BasicStatistics().fit(A),
                       lambda: (Xd.mean(0), Xd.var(0, ddof=1), Xd.min(0), Xd.max(0), Xd.sum(0))),
        "covariance": (lambda A, b: EmpiricalCovariance().fit(A),
                       lambda: cp.cov(Xd, rowvar=False, bias=True)),
        "linear_regression": (lambda A, b: LinearRegression().fit(A, b),
                              lambda: cp.linalg.lstsq(cp.hstack([Xd, cp.ones((args.rows, 1))]),
                                                      yd, rcond=None)),
    }
    rows = {}
    for name, (fit, naive) in workloads.items():
        with spmdlearn.config_context(backend="cuda"):
            t_cuda = _median_time(lambda: fit(Xd, yd), args.repeat, sync)
        with spmdlearn.config_context(backend="cpu"):
            t_cpu = _median_time(lambda: fit(X, y), args.repeat)
        t_naive = _median_time(naive, args.repeat, sync)
        rows[name] = {"cuda_fit_s": t_cuda, "cpu_fit_s": t_cpu, "naive_cupy_s": t_naive,
                      "cpu_over_cuda": t_cpu / t_cuda, "naive_over_cuda": t_naive / t_cuda}
        print(f"{name:18s} cuda fit {t_cuda * 1e3:8.2f} ms | cpu backend ({os.cpu_count()} cores) "
              f"{t_cpu * 1e3:8.2f} ms ({t_cpu / t_cuda:5.1f}x) | naive CuPy {t_naive * 1e3:8.2f} ms "
              f"({t_naive / t_cuda:5.1f}x)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "features": args.features, "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
