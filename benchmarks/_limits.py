"""The machine's limits for one process on one core: DGEMM GFLOP/s and memory bandwidth."""

import json
import time

import numpy as np


def main():
    n = 1500
    a, b = np.random.rand(n, n), np.random.rand(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(3))
    gflops = 2 * n ** 3 / best / 1e9
    big = np.ones(50_000_000)  # 400 MB: far beyond the caches
    big.sum()
    best = min(_timed(big.sum) for _ in range(3))
    print("RESULT " + json.dumps({"dgemm_gflops_1core": gflops,
                                  "read_bandwidth_gbs_1proc": big.nbytes / best / 1e9}))


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
