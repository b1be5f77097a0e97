"""KMeans on one GPU beyond the benchmark harness's fixed init: the Lloyd step of float32 and float64
shards (near-ties included), the fit with scikit-learn's default k-means++ init and with random init,
and predict (wall time after a synchronize, median of 5-9 runs after a warm-up).

    python3 benchmarks/gpu_kmeans.py
"""
import time
import numpy as np, cupy as cp
from spmdlearn_cuda import _kmeans as K
from spmdlearn.reference import lloyd_local as ref_lloyd
from spmdlearn.cluster import KMeans

def wall(fn, repeat):
    fn(); cp.cuda.Device().synchronize()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); cp.cuda.Device().synchronize(); ts.append(time.perf_counter() - t)
    return float(np.median(ts)), float(min(ts))

rows, d, k = 2_000_000, 20, 10
for dt in (np.float32, np.float64):
    X = cp.random.default_rng(0).standard_normal((rows, d)).astype(dt)
    Xh = cp.asnumpy(X)
    centers = Xh[:k].astype(np.float64)
    w = np.ones(rows)
    for step, lo_h in (("first", np.full(rows, -1, np.int32)), ("later", np.zeros(rows, np.int32))):
        lo = cp.asarray(lo_h)
        run = K._launch(X, None, centers, lo, True, False)
        n_near = int(run.n_near.get()[0])
        t = wall(lambda: K.lloyd_local(X, None, centers, lo), 9)
        lab, part = K.lloyd_local(X, None, centers, lo)
        want_lab, want = ref_lloyd(Xh, w, centers, lo_h)
        rel = max(float(np.max(np.abs(np.ravel(g) - np.ravel(r)) / (np.abs(np.ravel(r)) + 1e-300)))
                  for g, r in zip(part, want) if np.size(r))
        print(f"{dt.__name__} {step} step: near-tie rows {n_near}; lloyd_local median/min "
              f"{t[0]*1e3:.2f}/{t[1]*1e3:.2f} ms; labels == reference: "
              f"{bool((cp.asnumpy(lab) == want_lab).all())}; partial max rel diff {rel:.1e}")
    for init in ("k-means++", "random"):
        km = KMeans(n_clusters=k, n_init=1, max_iter=10, tol=0, random_state=0, init=init)
        t = wall(lambda: km.fit(X), 5)
        print(f"KMeans(init={init!r}, n_init=1, max_iter=10, tol=0).fit {dt.__name__} 2M x 20: median {t[0]*1e3:.1f} ms")
    t = wall(lambda: km.predict(X), 5)
    print(f"KMeans.predict {dt.__name__}: median {t[0]*1e3:.2f} ms")
