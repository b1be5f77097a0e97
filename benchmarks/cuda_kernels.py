"""Kernel-level GPU timings: the cuda backend's one-pass kernels against naive CuPy and the
HBM read-bandwidth limit (CUDA events, median of repeats after a warm-up).

    python benchmarks/cuda_kernels.py [--rows 2000000] [--features 20] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._gpu import event_median_time  # noqa: E402


def main(argv=None):
    import cupy as cp

    from spmdlearn_cuda import _kmeans, _moments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", default=None)
    parser.add_argument("--knn", action="store_true", help="also time the k-nearest merge")
    args = parser.parse_args(argv)
    X = cp.random.default_rng(0).standard_normal((args.rows, args.features))
    y = cp.random.default_rng(1).standard_normal(args.rows)
    big = cp.empty(2 * X.nbytes // 8)
    copy_s = event_median_time(cp, lambda: big[: X.size].__setitem__(slice(None), big[X.size:2 * X.size]), args.repeat)
    bandwidth = 2 * X.nbytes / copy_s  # bytes read + written per second
    bound = X.nbytes / bandwidth
    centers = cp.asnumpy(X[:10])
    old = cp.zeros(args.rows, cp.int32)

    def naive_lloyd():
        import cupyx

        C = cp.asarray(centers)
        labels = cp.argmin((C * C).sum(1)[None, :] - 2 * X @ C.T, axis=1)
        sums = cp.zeros_like(C)
        cupyx.scatter_add(sums, labels, X)
        return labels, sums

    rows = {
        "hbm_bound_read_X": bound,
        "comoments_local (cuda)": event_median_time(cp, lambda: _moments._gram(X, y, None), args.repeat),
        "moments_local (cuda)": event_median_time(cp, lambda: _moments._columns(X, None, mul_w=False, freq_w=False), args.repeat),
        "kmeans Lloyd kernel k=10 (cuda, fused)": event_median_time(
            cp, lambda: _kmeans._run(X, None, centers, old, True, with_sqdist=False), args.repeat),
        "kmeans Lloyd step k=10 (cuda, lloyd_local)": event_median_time(
            cp, lambda: _kmeans.lloyd_local(X, None, centers, old), args.repeat),
        "kmeans Lloyd step k=10 (naive cupy)": event_median_time(cp, naive_lloyd, args.repeat),
        "naive cupy X.T @ X": event_median_time(cp, lambda: X.T @ X, args.repeat),
        "naive cupy centered (X-m).T@(X-m)": event_median_time(cp, lambda: (lambda C: C.T @ C)(X - X.mean(0)), args.repeat),
    }
    if args.knn:
        from spmdlearn_cuda import _neighbors

        gen = cp.random.default_rng(2)
        train = gen.standard_normal((1_000_000, 16))
        queries = gen.standard_normal((100_000, 16))
        index = cp.arange(train.shape[0], dtype=cp.int64)
        best_d = cp.full((queries.shape[0], 10), cp.inf)
        best_i = cp.full((queries.shape[0], 10), -1, dtype=cp.int64)
        rows["knn_merge 100k queries x 1M rows x 16, k=10 (cuda)"] = event_median_time(
            cp, lambda: _neighbors.knn_merge(queries, train, index, best_d, best_i), 3)
    print(f"{args.rows} x {args.features} float64, copy bandwidth {bandwidth / 1e12:.2f} TB/s")
    for name, t in rows.items():
        print(f"{name:40s} {t * 1e3:9.3f} ms  ({t / bound:6.1f}x the read bound)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "features": args.features, "bandwidth": bandwidth,
                       "seconds": rows}, f, indent=1)


if __name__ == "__main__":
    main()
