"""Kernel-level GPU timings: the cuda backend's one-pass kernels against naive CuPy and the
HBM read-bandwidth limit (CUDA events, median of repeats after a warm-up).

    python benchmarks/cuda_kernels.py [--rows 2000000] [--features 20] [--repeat 7] [--rounds 3]

The GPU's speed drifts from second to second (the same kernel has taken 0.39 ms and 0.57 ms
a minute apart in one process), so every quantity, the copy that sets the read bound
included, is measured once per round, in turn; each round prints its ratios to its own bound,
and the summary gives each row's median ratio over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks._gpu import event_median_time  # noqa: E402


def main(argv=None):
    import cupy as cp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None)
    parser.add_argument("--knn", action="store_true", help="also time the k-nearest merge")
    args = parser.parse_args(argv)
    X = cp.random.default_rng(0).standard_normal((args.rows, args.features))
    y = cp.random.default_rng(1).standard_normal(args.rows)
    rounds = []
    for r in range(args.rounds):
        bandwidth, bound, rows = _one_round(cp, args, X, y)
        rounds.append({"bandwidth": bandwidth, "seconds": rows})
        print(f"round {r}: {args.rows} x {args.features} float64, copy bandwidth "
              f"{bandwidth / 1e12:.2f} TB/s")
        for name, t in rows.items():
            print(f"  {name:40s} {t * 1e3:9.3f} ms  ({t / bound:6.1f}x the read bound)")
    print(f"median over {args.rounds} rounds:")
    for name in rounds[0]["seconds"]:
        ratios = [rd["seconds"][name] / rd["seconds"]["hbm_bound_read_X"] for rd in rounds]
        times = [rd["seconds"][name] for rd in rounds]
        print(f"  {name:40s} {np.median(times) * 1e3:9.3f} ms  ({np.median(ratios):6.1f}x the "
              f"read bound; rounds {', '.join(f'{q:.2f}' for q in ratios)})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "features": args.features, "rounds": rounds}, f,
                      indent=1)


def _one_round(cp, args, X, y):
    """``(bandwidth, bound, {name: seconds})`` measured now, in this order."""
    from spmdlearn_cuda import _kmeans, _moments

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
    return bandwidth, bound, rows


if __name__ == "__main__":
    main()
