"""Benchmark workloads: data made on each rank, the estimator calls to time, and the work a
one-pass workload must do at least (for the lower bound printed next to the measured time).

Sizes are per rank (weak scaling); ``scale`` shrinks them (``--quick``) or ``total`` fixes the
rows over all ranks (strong scaling).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    rows: int  #: rows per rank at full size
    features: int
    dtype: str = "float64"
    kind: str = "regression"  #: data generator: regression, classification, blobs
    one_pass: bool = False  #: reads its data once: a bandwidth/flop lower bound applies

    def flops_bytes(self, n_rows: int) -> tuple[float, float]:
        """Least work of a one-pass workload on ``n_rows`` rows: (flops, bytes read)."""
        d, size = self.features, np.dtype(self.dtype).itemsize
        base = self.name.split("_f32")[0]
        if base == "statistics":
            return 4.0 * n_rows * d, float(n_rows * d * size)
        if base in ("covariance", "pca"):
            return 1.0 * n_rows * d * d, float(n_rows * d * size)  # a symmetric rank-k update
        if base in ("linear_regression", "ridge"):
            return 1.0 * n_rows * (d + 1) ** 2, float(n_rows * (d + 1) * size)
        return 0.0, 0.0


WORKLOADS = {w.name: w for w in [
    Workload("statistics", 2_000_000, 20, one_pass=True),
    Workload("covariance", 2_000_000, 20, one_pass=True),
    Workload("linear_regression", 2_000_000, 20, one_pass=True),
    Workload("ridge", 2_000_000, 20, one_pass=True),
    Workload("pca", 1_000_000, 50, one_pass=True),
    Workload("kmeans", 1_000_000, 20, kind="blobs"),
    Workload("logistic_regression", 500_000, 20, kind="classification"),
    Workload("knn", 200_000, 16, kind="classification"),
    Workload("dbscan", 20_000, 3, kind="blobs"),
    Workload("random_forest", 100_000, 20, kind="classification"),
    Workload("statistics_f32", 2_000_000, 20, dtype="float32", one_pass=True),
    Workload("covariance_f32", 2_000_000, 20, dtype="float32", one_pass=True),
    Workload("linear_regression_f32", 2_000_000, 20, dtype="float32", one_pass=True),
    Workload("ridge_f32", 2_000_000, 20, dtype="float32", one_pass=True),
]}


def make_data(workload: Workload, n_rows: int, rank: int, seed: int = 0):
    """This rank's rows: a deterministic function of (workload, rank), generated locally."""
    rng = np.random.default_rng([seed, rank])
    d = workload.features
    # Rows are drawn a chunk at a time straight into the shard (the same values as one draw of
    # the whole shard), so that making the data never holds more than the shard plus a chunk:
    # the peak RSS then measures the library, not the data generator.
    X = np.empty((n_rows, d), dtype=workload.dtype)
    chunk = max(1, (1 << 21) // d)
    if workload.kind == "blobs":
        centers = np.random.default_rng(seed).normal(scale=10.0, size=(10, d))
        which = rng.integers(0, 10, n_rows)
        for lo in range(0, n_rows, chunk):
            hi = min(n_rows, lo + chunk)
            X[lo:hi] = centers[which[lo:hi]] + rng.normal(size=(hi - lo, d))
        y = None
    else:
        coef = np.random.default_rng(seed).normal(size=d)
        raw = np.empty(n_rows)
        for lo in range(0, n_rows, chunk):
            hi = min(n_rows, lo + chunk)
            block = rng.normal(size=(hi - lo, d))
            X[lo:hi] = block
            raw[lo:hi] = block @ coef
        raw += rng.normal(size=n_rows)
        y = (raw > 0).astype(np.int64) if workload.kind == "classification" else raw
    return X, (None if y is None else y.astype(
        workload.dtype if workload.kind == "regression" else np.int64, copy=False))


def kmeans_init(workload: Workload, seed: int = 0):
    return np.random.default_rng(seed + 1).normal(scale=10.0, size=(10, workload.features))


def spmdlearn_calls(workload: Workload, X, y) -> dict[str, Callable[[], object]]:
    """What to time for spmdlearn: ``fit`` (and ``predict``/``transform`` where there is one)."""
    from spmdlearn.basic_statistics import BasicStatistics
    from spmdlearn.cluster import DBSCAN, KMeans
    from spmdlearn.covariance import EmpiricalCovariance
    from spmdlearn.decomposition import PCA
    from spmdlearn.ensemble import RandomForestClassifier
    from spmdlearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from spmdlearn.neighbors import KNeighborsClassifier

    base = workload.name.split("_f32")[0]
    state = {}
    if base == "statistics":
        return {"fit": lambda: BasicStatistics().fit(X)}
    if base == "covariance":
        return {"fit": lambda: EmpiricalCovariance().fit(X)}
    if base in ("linear_regression", "ridge"):
        cls = LinearRegression if base == "linear_regression" else Ridge

        def fit():
            state["m"] = cls().fit(X, y)
        return {"fit": fit, "predict": lambda: state["m"].predict(X)}
    if base == "pca":
        def fit():
            state["m"] = PCA(n_components=10, svd_solver="covariance_eigh").fit(X)
        return {"fit": fit, "transform": lambda: state["m"].transform(X)}
    if base == "kmeans":
        init = kmeans_init(workload)

        def fit():
            state["m"] = KMeans(10, init=init, n_init=1, max_iter=20, tol=0.0).fit(X)
        return {"fit": fit, "predict": lambda: state["m"].predict(X)}
    if base == "logistic_regression":
        def fit():
            state["m"] = LogisticRegression(max_iter=100).fit(X, y)
        return {"fit": fit, "predict": lambda: state["m"].predict(X)}
    if base == "knn":
        queries = X[: max(1, len(X) // 10)]

        def fit():
            state["m"] = KNeighborsClassifier(10).fit(X, y)
        return {"fit": fit, "predict": lambda: state["m"].predict(queries)}
    if base == "dbscan":
        return {"fit": lambda: DBSCAN(eps=1.0, min_samples=10).fit(X)}
    if base == "random_forest":
        def fit():
            state["m"] = RandomForestClassifier(50, max_depth=10, random_state=0).fit(X, y)
        return {"fit": fit, "predict": lambda: state["m"].predict(X)}
    raise KeyError(workload.name)


def sklearn_calls(workload: Workload, X, y, module: str = "sklearn") -> dict:
    """The same calls for scikit-learn (or sklearnex's batch estimators) on one process."""
    import importlib

    base = workload.name.split("_f32")[0]
    def get(path):
        # sklearnex keeps some batch estimators (EmpiricalCovariance in 2025-2026 releases) under
        # sklearnex.preview until they graduate: take the estimator from where it is
        mod, name = path.rsplit(".", 1)
        places = [f"{module}.{mod}"] + ([f"{module}.preview.{mod}"] if module == "sklearnex" else [])
        for place in places:
            try:
                found = getattr(importlib.import_module(place), name, None)
            except ImportError:
                found = None
            if found is not None:
                return found
        raise AttributeError(f"{name} is in none of {', '.join(places)}")

    state = {}
    if base == "statistics":
        if module == "sklearn":
            return {"fit": lambda: (X.min(0), X.max(0), X.sum(0), X.mean(0), X.var(0, ddof=1))}
        return {"fit": lambda: get("basic_statistics.BasicStatistics")().fit(X)}
    table = {
        "covariance": ("covariance.EmpiricalCovariance", {}, None),
        "linear_regression": ("linear_model.LinearRegression", {}, "predict"),
        "ridge": ("linear_model.Ridge", {}, "predict"),
        "pca": ("decomposition.PCA", {"n_components": 10, "svd_solver": "covariance_eigh"},
                "transform"),
        "kmeans": ("cluster.KMeans", {"n_clusters": 10, "init": kmeans_init(workload),
                                      "n_init": 1, "max_iter": 20, "tol": 0.0}, "predict"),
        "logistic_regression": ("linear_model.LogisticRegression", {"max_iter": 100}, "predict"),
        "knn": ("neighbors.KNeighborsClassifier", {"n_neighbors": 10}, "predict"),
        "dbscan": ("cluster.DBSCAN", {"eps": 1.0, "min_samples": 10}, None),
        "random_forest": ("ensemble.RandomForestClassifier",
                          {"n_estimators": 50, "max_depth": 10, "random_state": 0, "n_jobs": -1},
                          "predict"),
    }
    path, params, method = table[base]
    cls = get(path)

    def fit():
        state["m"] = cls(**params).fit(X, y) if y is not None else cls(**params).fit(X)
    calls = {"fit": fit}
    if method:
        data = X[: max(1, len(X) // 10)] if base == "knn" else X
        calls[method] = lambda: getattr(state["m"], method)(data)
    return calls
