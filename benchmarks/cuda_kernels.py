"""Kernel-level GPU timings: the cuda backend's one-pass kernels against naive CuPy and the
HBM read-bandwidth limit (CUDA events, median of repeats after a warm-up).

    python benchmarks/cuda_kernels.py [--rows 2000000] [--features 20] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def _time(cp, fn, repeat):
    fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
    return float(np.median(times))


def main(argv=None):
    import cupy as cp

    from spmdlearn_cuda import _moments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    X = cp.random.default_rng(0).standard_normal((args.rows, args.features))
    y = cp.random.default_rng(1).standard_normal(args.rows)
    big = cp.empty(2 * X.nbytes // 8)
    copy_s = _time(cp, lambda: big[: X.size].__setitem__(slice(None), big[X.size:2 * X.size]), args.repeat)
    bandwidth = 2 * X.nbytes / copy_s  # bytes read + written per second
    bound = X.nbytes / bandwidth
    rows = {
        "hbm_bound_read_X": bound,
        "comoments_local (cuda)": _time(cp, lambda: _moments._gram(X, y, None), args.repeat),
        "moments_local (cuda)": _time(cp, lambda: _moments._columns(X, None, mul_w=False, freq_w=False), args.repeat),
        "naive cupy X.T @ X": _time(cp, lambda: X.T @ X, args.repeat),
        "naive cupy centered (X-m).T@(X-m)": _time(cp, lambda: (lambda C: C.T @ C)(X - X.mean(0)), args.repeat),
    }
    print(f"{args.rows} x {args.features} float64, copy bandwidth {bandwidth / 1e12:.2f} TB/s")
    for name, t in rows.items():
        print(f"{name:40s} {t * 1e3:9.3f} ms  ({t / bound:6.1f}x the read bound)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": args.rows, "features": args.features, "bandwidth": bandwidth,
                       "seconds": rows}, f, indent=1)


if __name__ == "__main__":
    main()
