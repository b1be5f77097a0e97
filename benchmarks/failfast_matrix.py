"""The failing-fast matrix: each kind of misuse on each estimator, under ``mpiexec -n 3``.

    python benchmarks/failfast_matrix.py [--ranks 3] [--limit 40] [--kinds ...] [--json out]

Each cell runs one small job as a subprocess with a time limit and is marked:

* ``OK``: the job ended as promised: the same exception on every rank (for the watchdog and
  abort kinds: the job ended within the limit with spmdlearn's message);
* ``hang``: the limit passed;
* ``crash``: the job died without the promised error on every rank (MPI errors, aborts);
* ``rank-dependent``: every rank returned, with different models;
* ``wrong``: every rank returned the same model without a word, for input that must be refused.

Kinds: ``param`` (a parameter differs on rank 1), ``kernel`` (MemoryError on rank 1 at the third
kernel call of ``fit``, or its last where ``fit`` makes fewer), ``predict-kernel`` (MemoryError
on rank 1 in ``predict``/``transform``), ``subset`` (``if rank == 0: model.predict(X)``),
``user-error`` (a ValueError in user code on rank 1 before ``fit``), ``mismatch`` (rank 1 fits
another estimator).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

ESTIMATORS = {
    # name: (constructor with {v} for the parameter that differs, its value elsewhere, its
    #        value on rank 1, supervised, a collective method of the fitted model)
    "KMeans": ("spmdlearn.cluster.KMeans(n_clusters={v}, n_init=1, random_state=0)", "3",
               "1000", False, "predict"),
    "DBSCAN": ("spmdlearn.cluster.DBSCAN(eps={v})", "0.9", "0.5", False, None),
    "PCA": ("spmdlearn.decomposition.PCA(2, whiten={v})", "False", "True", False, "transform"),
    "IncrementalPCA": ("spmdlearn.decomposition.IncrementalPCA(2, batch_size={v})", "None",
                       "7", False, "transform"),
    "LinearRegression": ("spmdlearn.linear_model.LinearRegression(fit_intercept={v})", "True",
                         "False", True, "predict"),
    "LogisticRegression": ("spmdlearn.linear_model.LogisticRegression(C={v})", "1.0", "0.5",
                           True, "predict"),
    "KNeighborsClassifier": ("spmdlearn.neighbors.KNeighborsClassifier(n_neighbors={v})", "3",
                             "1000", True, "predict"),
    "RandomForestClassifier": ("spmdlearn.ensemble.RandomForestClassifier(3, max_depth=3, "
                               "random_state={v})", "0", "1", True, "predict"),
    "StandardScaler": ("spmdlearn.preprocessing.StandardScaler(with_mean={v})", "True", "False",
                       False, "transform"),
    "EmpiricalCovariance": ("spmdlearn.covariance.EmpiricalCovariance(assume_centered={v})",
                            "False", "True", False, "mahalanobis"),
}

CHILD = r'''
import hashlib, json, sys, time
import numpy as np
from mpi4py import MPI
import spmdlearn.cluster, spmdlearn.decomposition, spmdlearn.linear_model
import spmdlearn.neighbors, spmdlearn.ensemble, spmdlearn.preprocessing, spmdlearn.covariance
from spmdlearn import _backends
rank = MPI.COMM_WORLD.Get_rank()
KIND, CTOR, CTOR_BAD, SUPERVISED, METHOD = {args}
rng = np.random.RandomState(rank)
X = rng.randn([40, 25, 0][rank % 3] if MPI.COMM_WORLD.Get_size() == 3 else 30, 4)
y = (X[:, 0] > 0).astype(np.int64)

ORIGINAL = _backends.call_kernel

def patch_kernels(nth):
    """Make rank 1's ``nth`` kernel call raise MemoryError (0: only count the calls)."""
    import sys as _sys
    calls = [0]
    def failing(kernel, backend=None, **kw):
        calls[0] += 1
        if rank == 1 and calls[0] == nth:
            raise MemoryError("injected")
        return ORIGINAL(kernel, backend, **kw)
    for m in list(_sys.modules.values()):
        if getattr(m, "__name__", "").startswith("spmdlearn") and \
                getattr(m, "call_kernel", None) in (ORIGINAL,) + tuple(PATCHED):
            m.call_kernel = failing
    PATCHED[:] = [failing]
    return calls

PATCHED = []

def fit(est):
    return est.fit(X, y) if SUPERVISED else est.fit(X)

def digest(est):
    """The model: its parameters and its attributes that must be identical on every rank."""
    h = hashlib.sha1(repr(sorted(est.get_params().items())).encode())
    for k, v in sorted(vars(est).items()):
        if not k.endswith("_") or k.startswith("_") or k in PER_RANK:
            continue
        if isinstance(v, np.ndarray) and v.dtype != object:
            h.update(k.encode() + np.ascontiguousarray(v).tobytes())
        elif isinstance(v, (int, float, np.number)):
            h.update(f"{k}={v!r}".encode())
    return h.hexdigest()[:12]

PER_RANK = {"labels_", "core_sample_indices_", "components_"} if "DBSCAN" in CTOR else {"labels_"}

outcome = None
try:
    if KIND == "param":
        model = fit(eval(CTOR_BAD if rank == 1 else CTOR))
    elif KIND == "kernel":
        # the third kernel call of fit on rank 1, or its last where fit makes fewer
        calls = patch_kernels(0)
        fit(eval(CTOR))
        patch_kernels(min(3, calls[0]))
        model = fit(eval(CTOR))
    elif KIND == "predict-kernel":
        model = fit(eval(CTOR))
        patch_kernels(1)
        getattr(model, METHOD)(X)
    elif KIND == "subset":
        model = fit(eval(CTOR))
        if rank == 0:
            getattr(model, METHOD)(X)
        MPI.COMM_WORLD.Barrier()
    elif KIND == "user-error":
        if rank == 1:
            raise ValueError("user error on rank 1")
        model = fit(eval(CTOR))
    elif KIND == "mismatch":
        other = "spmdlearn.decomposition.PCA(2)" if "PCA" not in CTOR else \
            "spmdlearn.cluster.KMeans(2, n_init=1, random_state=0)"
        model = eval(other).fit(X) if rank == 1 else fit(eval(CTOR))
    outcome = ("returned", digest(model))
except Exception as exc:
    if KIND == "user-error" and str(exc) == "user error on rank 1":
        raise
    outcome = ("raised", type(exc).__name__)
print("RESULT " + json.dumps([rank, outcome]), flush=True)
'''


def run_cell(kind, name, ranks, limit, env):
    ctor, good, bad, supervised, method = ESTIMATORS[name]
    good_ctor, bad_ctor = ctor.format(v=good), ctor.format(v=bad)
    if kind in ("predict-kernel", "subset") and method is None:
        return "n/a"
    args = repr((kind, good_ctor, bad_ctor, supervised, method))
    from run_all import mpiexec_command

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "cell.py"
        script.write_text(textwrap.dedent(CHILD.replace("{args}", args)))
        start = time.monotonic()
        try:
            out = subprocess.run(mpiexec_command(ranks) + [sys.executable, str(script)],
                                 capture_output=True, text=True, timeout=limit, env=env)
        except subprocess.TimeoutExpired:
            return "hang"
        took = time.monotonic() - start
    results = {}
    # Ranks' lines may interleave: find each result wherever it is.
    for found in re.findall(r"RESULT (\[\d+, \[[^\]]*\]\])", out.stdout):
        rank, outcome = json.loads(found)
        results[rank] = tuple(outcome)
    if kind in ("subset", "user-error"):
        ended = out.returncode != 0 and took < limit
        said = "watchdog" in out.stderr or "uncaught exception; aborting" in out.stderr
        if ended and said:
            return "OK"
        return "hang" if not ended else "crash"
    if len(results) < ranks:
        return "crash"
    kinds = {r[0] for r in results.values()}
    if kinds == {"raised"} and len({r[1] for r in results.values()}) == 1:
        return "OK"
    if kinds == {"returned"}:
        return "wrong" if len({r[1] for r in results.values()}) == 1 else "rank-dependent"
    return "crash"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=3)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--kinds", default="param,kernel,predict-kernel,subset,user-error,mismatch")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SPMDLEARN_COLLECTIVE_TIMEOUT": "5"}
    table, totals = {}, {}
    for kind in args.kinds.split(","):
        for name in args.estimators.split(","):
            cell = run_cell(kind, name, args.ranks, args.limit, env)
            table[f"{kind}/{name}"] = cell
            totals[cell] = totals.get(cell, 0) + 1
            print(f"{kind:<15} {name:<24} {cell}", flush=True)
    print("totals: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"cells": table, "totals": totals}, indent=1))


if __name__ == "__main__":
    main()
