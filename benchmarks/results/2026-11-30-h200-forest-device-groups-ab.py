"""The cuda forest's fit time against the per-row state budget of the trees grown together
(1M x 20 CuPy rows, 50 trees of depth 10; run on the parent of the commit that added
_DEVICE_STATE_BYTES, where _STATE_BYTES applied to device rows too; both are set here)."""
import time
import numpy as np, cupy as cp
import spmdlearn
from spmdlearn.ensemble import RandomForestClassifier
from spmdlearn.ensemble import _forest as F
rng = np.random.default_rng(0)
X = rng.standard_normal((1_000_000, 20)); y = ((X @ rng.standard_normal(20) + rng.standard_normal(1_000_000)) > 0).astype(np.int64)
Xd, yd = cp.asarray(X), cp.asarray(y)
sync = cp.cuda.Device().synchronize
ref = None
with spmdlearn.config_context(backend="cuda"):
    for state, hist in [(32 << 20, 16 << 20), (256 << 20, 16 << 20), (1 << 30, 16 << 20), (1 << 30, 128 << 20), (32 << 20, 16 << 20)]:
        F._STATE_BYTES, F._HIST_BYTES = state, hist
        F._DEVICE_STATE_BYTES = state
        ts = []
        for r in range(4):
            sync(); t = time.perf_counter()
            m = RandomForestClassifier(50, max_depth=10, random_state=0).fit(Xd, yd); sync()
            ts.append(time.perf_counter() - t)
        p = cp.asnumpy(m.predict_proba(Xd[:100000]))
        same = None if ref is None else bool(np.array_equal(p, ref))
        ref = p if ref is None else ref
        print(f"state {state>>20} MB hist {hist>>20} MB: fit {np.median(ts[1:]):.3f} s (runs {', '.join(f'{t:.3f}' for t in ts)}), proba equal to first: {same}")
