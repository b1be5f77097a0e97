"""A/B on the GPU machine: the Lloyd kernel with its per-block outputs added by a second kernel (new,
this commit) against the parent commit's (old: the last block to finish adds them serially).
Run with the parent's accel_cuda/spmdlearn_cuda/_kmeans.py copied beside the new one as
_kmeans_old.py (git show HEAD~1:...): correctness on 480 cases (labels equal; partials equal
up to the order of the sums), then CUDA-event medians of 9 launches per round."""
import sys, itertools
import numpy as np, cupy as cp
from spmdlearn_cuda import _kmeans as new, _kmeans_old as old
from benchmarks._gpu import event_median_time

def cases():
    rng = np.random.default_rng(0)
    for dt, k, d, w, off, fortran in itertools.product(
            [np.float32, np.float64], [1, 2, 7, 10, 17, 40], [2, 5, 20, 33, 40], [False, True],
            [False, True], [False, True]):
        n = int(rng.integers(1, 3000))
        X = rng.standard_normal((n, d)).astype(dt) * 3 + 1
        C = X[rng.integers(0, n, k)].astype(np.float64) + 0.01 * rng.standard_normal((k, d))
        if k > 1 and fortran:
            C[-1] = C[0]
        yield dt, k, d, w, off, fortran, n, X, C, rng

bad = count = 0; maxrel = 0.0
for dt, k, d, w, off, fortran, n, X, C, rng in cases():
    Xd = cp.asarray(np.asfortranarray(X) if fortran else X)
    sw = cp.asarray(rng.uniform(0.5, 2, n)) if w else None
    offset = X.mean(0).astype(dt) if off else None
    lo = cp.asarray(rng.integers(0, k, n).astype(np.int32))
    l1, p1 = new.lloyd_local(Xd, sw, C, lo, offset)
    l2, p2 = old.lloyd_local(Xd, sw, C, lo, offset)
    a1, a2 = [np.concatenate([np.ravel(v) for v in p]) for p in (p1, p2)]
    rel = float(np.max(np.abs(a1 - a2) / (np.abs(a2) + 1e-12 * np.abs(a2).max() + 1e-300)))
    la, sa = new.kmeans_assign(Xd, C); lb, sb = old.kmeans_assign(Xd, C)
    ok = bool((l1 == l2).all()) and bool((la == lb).all()) and bool((sa == sb).all())
    count += 1; maxrel = max(maxrel, rel)
    if not ok or rel > 1e-12:
        bad += 1
        if bad < 10: print("MISMATCH", dt.__name__, k, d, w, off, fortran, n, ok, rel)
print(f"correctness: {count} cases, {bad} mismatches, max rel diff {maxrel:.2e}")

rows, feats = 2_000_000, 20
X = cp.random.default_rng(0).standard_normal((rows, feats))
centers = cp.asnumpy(X[:10])
lo = cp.zeros(rows, cp.int32)
big = cp.empty(2 * X.nbytes // 8)
R = int(sys.argv[1]) if len(sys.argv) > 1 else 7
Xo = X.copy(); offs = np.asarray(cp.asnumpy(X[:100].mean(0)))
fns = {
  "copy bound": lambda: big[: X.size].__setitem__(slice(None), big[X.size:2 * X.size]),
  "old kernel": lambda: old._launch(X, None, centers, lo, True, False),
  "new kernels": lambda: new._launch(X, None, centers, lo, True, False),
  "old lloyd_local": lambda: old.lloyd_local(X, None, centers, lo),
  "new lloyd_local": lambda: new.lloyd_local(X, None, centers, lo),
  "old lloyd_local offset": lambda: old.lloyd_local(Xo, None, centers, lo, offs),
  "new lloyd_local offset": lambda: new.lloyd_local(Xo, None, centers, lo, offs),
}
res = {n: [] for n in fns}
for r in range(R):
    for n, f in fns.items():
        res[n].append(event_median_time(cp, f, 9))
bound = np.array(res["copy bound"]) / 2
for n, ts in res.items():
    ts = np.array(ts)
    print(f"{n:26s} {np.median(ts)*1e3:8.3f} ms  ratio {np.median(ts / bound):5.2f}x  rounds " + " ".join(f"{t/b:.2f}" for t, b in zip(ts, bound)))
