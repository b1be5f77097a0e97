"""scikit-learn (or sklearnex's batch estimators) on one process with all rows; one JSON line.

    python benchmarks/_single.py --module sklearn --workload W --ranks N --rows R --repeat K

The rows are those the N ranks would hold (rank by rank), so both sides fit the same data.
"""

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from workloads import WORKLOADS, make_data, sklearn_calls  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--module", choices=["sklearn", "sklearnex"], default="sklearn")
    parser.add_argument("--workload", required=True)
    parser.add_argument("--ranks", type=int, required=True)
    parser.add_argument("--rows", type=int, required=True, help="rows per rank")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    workload = WORKLOADS[args.workload]
    parts = [make_data(workload, args.rows, r) for r in range(args.ranks)]
    X = np.concatenate([p[0] for p in parts])
    y = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
    calls = sklearn_calls(workload, X, y, module=args.module)
    result = {"impl": args.module, "workload": args.workload, "ranks": 1,
              "total_rows": len(X), "methods": {}}
    for method, call in calls.items():
        call()
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        result["methods"][method] = {"median_s": float(np.median(times)), "times": times}
    result["peak_rss_mb_per_rank"] = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0]
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
