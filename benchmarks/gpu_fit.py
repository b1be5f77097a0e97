"""Whole-estimator timings on one GPU: spmdlearn's cuda backend on CuPy input, spmdlearn's cpu
backend on the machine's cores (NumPy input), naive CuPy (one library call per step), and where
the cuda backend's time goes.

Each timing is the median of ``--repeat`` runs after a warm-up, ended by a device synchronize;
a fit includes validation and the (one-rank) MPI reduction. The shares (inside GPU kernels, in
MPI, elsewhere) come from one more run with every kernel hook synchronized at its end
(:func:`benchmarks._gpu.time_shares`).

    python benchmarks/gpu_fit.py [--rows 2000000] [--features 20] [--repeat 5]
        [--workloads statistics,covariance,linear_regression,kmeans,knn,random_forest]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._gpu import median_time, time_shares  # noqa: E402

WORKLOADS = ("statistics", "covariance", "linear_regression", "kmeans", "knn", "random_forest")


def _workloads(args, cp):
    """name -> (spmdlearn call on (X, y, Q), naive CuPy call or None, data maker)."""
    from spmdlearn.basic_statistics import BasicStatistics
    from spmdlearn.cluster import KMeans
    from spmdlearn.covariance import EmpiricalCovariance
    from spmdlearn.ensemble import RandomForestClassifier
    from spmdlearn.linear_model import LinearRegression
    from spmdlearn.neighbors import NearestNeighbors

    def kmeans(X, y, Q):
        # 10 Lloyd steps from fixed centers (the first 10 rows): a whole fit of fixed work
        init = X[:10].get() if hasattr(X, "get") else X[:10]  # the init array is NumPy
        return KMeans(10, init=init, n_init=1, max_iter=10, tol=0.0).fit(X)

    def naive_kmeans(X):
        c = X[:10]
        for _ in range(10):
            d = ((X * X).sum(1)[:, None] - 2 * X @ c.T + (c * c).sum(1)[None, :])
            lab = d.argmin(1)
            c = cp.stack([X[lab == j].mean(0) for j in range(10)])
        return c

    return {
        "statistics": (lambda X, y, Q: BasicStatistics().fit(X),
                       lambda X, y: (X.mean(0), X.var(0, ddof=1), X.min(0), X.max(0), X.sum(0))),
        "covariance": (lambda X, y, Q: EmpiricalCovariance().fit(X),
                       lambda X, y: cp.cov(X, rowvar=False, bias=True)),
        "linear_regression": (lambda X, y, Q: LinearRegression().fit(X, y),
                              lambda X, y: cp.linalg.lstsq(
                                  cp.hstack([X, cp.ones((X.shape[0], 1))]), y, rcond=None)),
        "kmeans": (kmeans, lambda X, y: naive_kmeans(X)),
        # fit (stores the rows) and the search of --queries rows, k=10
        "knn": (lambda X, y, Q: NearestNeighbors(n_neighbors=10).fit(X).kneighbors(Q), None),
        # Q: the number of trees (the cpu backend fits a share of them)
        "random_forest": (lambda X, y, Q: RandomForestClassifier(
            Q, max_depth=10, random_state=0).fit(X, y), None),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--knn-rows", type=int, default=1_000_000)
    parser.add_argument("--knn-features", type=int, default=16)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cpu-repeat", type=int, default=3)
    parser.add_argument("--cpu-query-fraction", type=float, default=0.05,
                        help="kNN on the cpu backend searches this share of the queries, and its "
                             "time is scaled up by its inverse (the search is linear in queries)")
    parser.add_argument("--forest-rows", type=int, default=1_000_000)
    parser.add_argument("--trees", type=int, default=50)
    parser.add_argument("--cpu-tree-fraction", type=float, default=0.1,
                        help="the forest on the cpu backend grows this share of the trees, and "
                             "its time is scaled up by its inverse (trees are grown one by one)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import cupy as cp

    import spmdlearn

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, args.features))
    y = X @ rng.standard_normal(args.features) + rng.standard_normal(args.rows)
    Xk = rng.standard_normal((args.knn_rows, args.knn_features))
    Qk = rng.standard_normal((args.queries, args.knn_features))
    sync = cp.cuda.Device().synchronize
    rows = {}
    for name, (call, naive) in _workloads(args, cp).items():
        if name not in args.workloads.split(","):
            continue
        host = (Xk, None, Qk) if name == "knn" else (X, y, None)
        if name == "random_forest":  # binary labels; the third argument: the number of trees
            host = (X[:args.forest_rows], (y[:args.forest_rows] > 0).astype(np.int64), args.trees)
        dev = tuple(a if a is None or np.isscalar(a) else cp.asarray(a) for a in host)
        with spmdlearn.config_context(backend="cuda"):
            t_cuda = median_time(lambda: call(*dev), args.repeat, sync)
            shares = time_shares(lambda: call(*dev), sync)
        scale = 1.0
        if name == "knn":  # the cpu search of every query would take minutes: a share of them
            n_q = max(1, int(args.queries * args.cpu_query_fraction))
            host, scale = (Xk, None, Qk[:n_q]), args.queries / n_q
        if name == "random_forest":
            n_t = max(1, int(args.trees * args.cpu_tree_fraction))
            host, scale = host[:2] + (n_t,), args.trees / n_t
        with spmdlearn.config_context(backend="cpu"):
            t_cpu = median_time(lambda: call(*host), args.cpu_repeat) * scale
        t_naive = median_time(lambda: naive(*dev[:2]), args.repeat, sync) if naive else None
        rows[name] = {"cuda_s": t_cuda, "cpu_s": t_cpu, "cpu_work_fraction": 1 / scale,
                      "naive_cupy_s": t_naive, "cpu_over_cuda": t_cpu / t_cuda,
                      "naive_over_cuda": t_naive / t_cuda if naive else None, "shares": shares}
        naive_text = (f" | naive CuPy {t_naive * 1e3:9.2f} ms ({t_naive / t_cuda:6.1f}x)"
                      if naive else "")
        print(f"{name:18s} cuda {t_cuda * 1e3:9.2f} ms | cpu backend ({os.cpu_count()} cores) "
              f"{t_cpu * 1e3:9.2f} ms ({t_cpu / t_cuda:6.1f}x){naive_text} | shares: kernels "
              f"{shares['kernels']:.0%}, MPI {shares['mpi']:.0%}, outside "
              f"{shares['outside']:.0%}", flush=True)
        top = list(shares["hooks"].items())[:4]
        print("    hooks: " + ", ".join(f"{h} {v['seconds'] * 1e3:.2f} ms x{v['calls']}"
                                        for h, v in top), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "features": args.features, "knn_rows": args.knn_rows,
                       "forest_rows": args.forest_rows, "trees": args.trees,
                       "knn_features": args.knn_features, "queries": args.queries,
                       "cores": os.cpu_count(), "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
