"""A rank with zero rows, in every public method of every estimator.

The methods are read from each estimator class, so a method added later is tested too: every
public method must be classified below (per-row, collective fit-and-predict, score, fit, or
model-level), or the test fails. Each estimator is fitted on uneven shards in which one rank
holds no rows (with one rank, the per-row methods are called with zero rows instead), for
binary, multiclass and regression targets. Then, on every rank:

* a per-row method returns, for this rank's rows, the rows of its result on all rows (the same
  shape after the first axis, the same dtype and container type), and zero rows on the empty
  rank; and the result on all rows is the scikit-learn estimator's (``to_sklearn()``);
* ``score`` is scikit-learn's score on the gathered rows, identical on every rank;
* ``fit_predict`` / ``fit_transform`` return this rank's rows of ``fit`` then ``labels_`` /
  ``transform``;
* an incremental estimator fed by ``partial_fit`` (no call at all on the empty rank) and
  ``finalize_fit`` gives the model of ``fit``.
"""

from __future__ import annotations

import importlib
import inspect
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone, is_classifier, is_regressor

import spmdlearn
import spmdlearn.metrics

from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_raises_on_all_ranks,
)

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(90)]

MODULES = ("basic_statistics", "covariance", "linear_model", "decomposition", "cluster",
           "neighbors", "ensemble", "preprocessing")

#: Methods that return one result per input row.
PER_ROW = {"predict", "predict_proba", "predict_log_proba", "decision_function", "transform",
           "inverse_transform", "score_samples", "kneighbors", "radius_neighbors",
           "kneighbors_graph", "radius_neighbors_graph", "mahalanobis", "apply",
           "decision_path"}
#: Collective: fit, then this rank's per-row result.
FIT_PER_ROW = {"fit_predict", "fit_transform"}
#: Collective fits (checked through the model they give).
FITS = {"fit", "partial_fit", "finalize_fit"}
#: Methods with no per-row input or output: the fitted model, parameters, metadata.
MODEL_LEVEL = {"get_params", "set_params", "get_metadata_routing", "to_sklearn",
               "get_feature_names_out", "set_output", "get_precision", "get_covariance",
               "error_norm",
               # collective, with no per-row input or output: gathers the fitted rows
               # (tests/test_to_sklearn_mpi.py runs it with an empty rank)
               "gather_fit_data"}

PARAMS = {
    "KMeans": {"n_clusters": 3, "random_state": 0},
    "DBSCAN": {"eps": 1.2, "min_samples": 4},
    "PCA": {"n_components": 2},
    "IncrementalPCA": {"n_components": 2},
    "NearestNeighbors": {"n_neighbors": 4, "radius": 1.5},
    "KNeighborsClassifier": {"n_neighbors": 4},
    "KNeighborsRegressor": {"n_neighbors": 4},
    "RandomForestClassifier": {"n_estimators": 4, "max_depth": 4, "random_state": 0},
    "RandomForestRegressor": {"n_estimators": 4, "max_depth": 4, "random_state": 0},
    "LogisticRegression": {"max_iter": 200},
}


def _estimators():
    for module in MODULES:
        mod = importlib.import_module(f"spmdlearn.{module}")
        for name in mod.__all__:
            cls = getattr(mod, name)
            if inspect.isclass(cls) and hasattr(cls, "fit"):
                yield name, cls


def _targets(est):
    if is_classifier(est):
        return ("binary", "multiclass")
    if is_regressor(est):
        return ("regression", "multi-output")
    return ("none",)


CASES = [pytest.param(name, cls, target, id=f"{name}-{target}")
         for name, cls in _estimators() for target in _targets(cls(**PARAMS.get(name, {})))]


def _public_methods(cls):
    """Public methods, less scikit-learn's metadata-routing setters (``set_*_request``)."""
    return sorted(k for k in dir(cls) if not k.startswith("_") and callable(getattr(cls, k))
                  and not (k.startswith("set_") and k.endswith("_request")))


def _data(target):
    rng = np.random.default_rng(17)
    X = rng.normal(size=(70, 4)) + np.array([0.0, 1.0, -2.0, 0.5])
    score = X @ np.array([1.0, -2.0, 0.5, 1.5])
    y = {"binary": (score > np.median(score)).astype(np.int64),
         "multiclass": np.digitize(score, np.quantile(score, [0.3, 0.7])),
         "regression": score + 0.1 * rng.normal(size=70),
         "multi-output": np.column_stack([score, X[:, 0] - X[:, 1]]),
         "none": None}[target]
    return X, y


def _cuts(size, n):
    """Uneven shards; rank 1 holds no rows (with one rank: no empty rank, all rows)."""
    if size == 1:
        return np.array([0, n])
    weights = np.arange(1, size + 1, dtype=float)
    weights[1] = 0.0
    inner = np.round(np.cumsum(weights)[:-1] / weights.sum() * n).astype(int)
    return np.concatenate([[0], inner, [n]])


def _rows(result, lo, hi):
    """Rows lo:hi of a per-row result (array, sparse matrix, tuple of those)."""
    if isinstance(result, tuple):
        return tuple(_rows(r, lo, hi) for r in result)
    return result[lo:hi]


def _describe(result):
    if isinstance(result, tuple):
        return tuple(_describe(r) for r in result)
    return (type(result).__name__, result.shape[1:], str(result.dtype))


def _flat(result):
    """A per-row result as one float array, for comparing values."""
    if isinstance(result, tuple):
        return np.concatenate([_flat(r).ravel() for r in result]) if result else np.zeros(0)
    if sp.issparse(result):
        return result.toarray().astype(np.float64)
    if result.dtype == object:  # radius_neighbors: one array per row
        return np.concatenate([np.sort(np.asarray(r, np.float64)) for r in result]) \
            if len(result) else np.zeros(0)
    return np.asarray(result, np.float64)


def _fit(est, X, y):
    return est.fit(X) if y is None else est.fit(X, y)


def _method_args(est, method, X_part):
    if method == "inverse_transform":
        return (est.transform(X_part),)
    return (X_part,)


def test_every_public_method_is_classified():
    """A new public method must be classified here before it can escape the empty-rank test."""
    known = PER_ROW | FIT_PER_ROW | FITS | MODEL_LEVEL | {"score"}
    unknown = {f"{name}.{m}" for name, cls in _estimators() for m in _public_methods(cls)
               if m not in known}
    assert not unknown, f"unclassified public methods: {sorted(unknown)}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, cls, target", CASES)
def test_empty_rank_in_every_method(world, name, cls, target, dtype):
    comm = world
    warnings.simplefilter("ignore")
    X, y = _data(target)
    X = X.astype(dtype)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    cuts = _cuts(comm.size, len(X))
    lo, hi = int(cuts[comm.rank]), int(cuts[comm.rank + 1])
    X_local = X[lo:hi]
    y_local = None if y is None else y[lo:hi]
    proto = cls(**PARAMS.get(name, {}))
    try:
        est = _fit(clone(proto), X_local, y_local)
    except ValueError as exc:  # every rank raises the same error (an unsupported target)
        assert_all_ranks(comm, target == "multi-output", f"fit raised {exc}")
        pytest.skip(f"{name} does not take a {target} target: {exc}")
    if hasattr(est, "gather_fit_data"):  # neighbours, DBSCAN: the collective step first
        est.gather_fit_data()
    try:
        sk = est.to_sklearn()
    except NotImplementedError:  # no scikit-learn equivalent (BasicStatistics)
        sk = None
    methods = _public_methods(cls)

    for method in sorted(set(methods) & PER_ROW):
        if method == "radius_neighbors_graph" and not hasattr(est, "radius"):
            continue
        full = getattr(est, method)(*_method_args(est, method, X))
        local = getattr(est, method)(*_method_args(est, method, X_local))
        expected = _rows(full, lo, hi)
        assert_all_ranks(comm, _describe(local) == _describe(expected),
                         f"{name}.{method}: {_describe(local)} on {hi - lo} rows, expected "
                         f"{_describe(expected)}")
        assert_allclose_all_ranks(comm, _flat(local), _flat(expected), rtol=rtol,
                                  what=f"{name}.{method} rows")
        # Zero rows on every rank (with one rank: the empty call the shards above lack).
        none = getattr(est, method)(*_method_args(est, method, X[:0]))
        assert_all_ranks(comm, _describe(none) == _describe(_rows(full, 0, 0)),
                         f"{name}.{method} on zero rows: {_describe(none)}")
        if sk is not None and hasattr(sk, method):
            reference = getattr(sk, method)(*_method_args(sk, method, X))
            assert_allclose_all_ranks(comm, _flat(full), _flat(reference), rtol=max(rtol, 1e-6),
                                      what=f"{name}.{method} vs scikit-learn")

    if "score" in methods and hasattr(sk, "score"):
        score = est.score(X_local) if y is None else est.score(X_local, y_local)
        expected = sk.score(X) if y is None else sk.score(X, y)
        assert_allclose_all_ranks(comm, score, expected, rtol=rtol, what=f"{name}.score")
        assert_all_ranks(comm, len(set(comm.allgather(float(score)))) == 1,
                         f"{name}.score differs across ranks")

    for method in sorted(set(methods) & FIT_PER_ROW):
        other = _fit(clone(proto), X_local, y_local)
        out = getattr(clone(proto), method)(X_local) if y is None else \
            getattr(clone(proto), method)(X_local, y_local)
        expected = other.labels_ if method == "fit_predict" else other.transform(X_local)
        assert_all_ranks(comm, _describe(out) == _describe(expected) and len(out) == hi - lo,
                         f"{name}.{method}: {_describe(out)} on {hi - lo} rows")
        assert_allclose_all_ranks(comm, _flat(out), _flat(expected), rtol=rtol,
                                  what=f"{name}.{method}")

    if "partial_fit" in methods:
        inc = clone(proto)
        if hi > lo:  # the empty rank makes no partial_fit call at all
            inc.partial_fit(X_local) if y is None else inc.partial_fit(X_local, y_local)
        inc.finalize_fit()
        for attr in ("mean_", "coef_", "components_", "covariance_", "scale_", "max_abs_",
                     "data_min_", "variance_"):
            if hasattr(est, attr):
                assert_allclose_all_ranks(comm, getattr(inc, attr), getattr(est, attr),
                                          rtol=1e-7, what=f"{name}.{attr} by partial_fit")


@pytest.mark.parametrize("pattern", ["allgather_rows", "gather_rows", "ring"])
def test_row_collectives_take_the_layout_of_ranks_with_rows(world, pattern):
    """An empty rank whose empty array has another dtype or width reads the others' rows right."""
    comm = world
    n_local = 0 if comm.rank == 1 else comm.rank + 2
    start = sum(0 if r == 1 else r + 2 for r in range(comm.rank))
    rows = (np.arange(n_local * 3, dtype=np.float32).reshape(n_local, 3) + 3 * start)
    local = np.zeros((0, 1)) if n_local == 0 else rows  # float64, one column: another layout
    total = sum(0 if r == 1 else r + 2 for r in range(comm.size))
    expected = np.arange(total * 3, dtype=np.float32).reshape(total, 3)
    if pattern == "allgather_rows":
        out = comm.allgather_rows(local)
    elif pattern == "gather_rows":
        out = comm.gather_rows(local, root=comm.size - 1)
        out = expected if comm.rank != comm.size - 1 else out
    else:
        seen = {owner: block for owner, (block,) in comm.ring((local,))}
        out = np.concatenate([seen[r] for r in range(comm.size)])
    assert_all_ranks(comm, out.dtype == np.float32 and out.shape == expected.shape
                     and np.array_equal(out, expected), f"{pattern}: {out.dtype} {out.shape}")


def test_row_collectives_refuse_disagreeing_ranks(world):
    comm = world
    if comm.size == 1:
        pytest.skip("needs two ranks with rows")
    local = np.ones((2, 3), dtype=np.float32 if comm.rank == 0 else np.float64)
    assert_raises_on_all_ranks(comm, ValueError, lambda: comm.allgather_rows(local),
                               match="different dtypes")


def _metric_inputs(name, kind):
    rng = np.random.default_rng(3)
    n = 50
    if name in ("r2_score", "mean_squared_error", "mean_absolute_error"):
        y = rng.normal(size=(n, 2)) if kind == "multi-output" else rng.normal(size=n)
        return y, y + 0.3 * rng.normal(size=y.shape)
    n_classes = 2 if kind == "binary" else 3
    y = rng.integers(0, n_classes, n)
    if name == "log_loss" or (name == "roc_auc_score" and n_classes > 2):
        p = rng.uniform(0.1, 1, size=(n, n_classes))
        return y, p / p.sum(axis=1, keepdims=True)
    if name == "roc_auc_score":
        return y, y + rng.normal(size=n)
    return y, np.where(rng.uniform(size=n) < 0.7, y, rng.integers(0, n_classes, n))


METRIC_CASES = [pytest.param(name, kind, id=f"{name}-{kind}")
                for name in spmdlearn.metrics.__all__
                for kind in (("regression", "multi-output")
                             if name in ("r2_score", "mean_squared_error", "mean_absolute_error")
                             else ("binary", "multiclass"))]


@pytest.mark.parametrize("name, kind", METRIC_CASES)
def test_empty_rank_in_every_metric(world, name, kind):
    """Every global metric with one rank holding no rows: scikit-learn's value on all rows."""
    import sklearn.metrics

    comm = world
    y_true, y_pred = _metric_inputs(name, kind)
    kwargs = {"average": "macro"} if name in ("precision_score", "recall_score", "f1_score") \
        and kind == "multiclass" else {}
    cuts = _cuts(comm.size, len(y_true))
    lo, hi = int(cuts[comm.rank]), int(cuts[comm.rank + 1])
    if name == "roc_auc_score" and kind == "multiclass":
        kwargs = {"multi_class": "ovr"}
    got = getattr(spmdlearn.metrics, name)(y_true[lo:hi], y_pred[lo:hi], **kwargs)
    expected = getattr(sklearn.metrics, name)(y_true, y_pred, **kwargs)
    got = np.asarray([np.asarray(g, np.float64) for g in got]) if isinstance(got, tuple) \
        else np.asarray(got, np.float64)
    expected = np.asarray([np.asarray(e, np.float64) for e in expected]) \
        if isinstance(expected, tuple) else np.asarray(expected, np.float64)
    assert_allclose_all_ranks(comm, got, expected, rtol=1e-9, what=name)
