"""scikit-learn's Pipeline, with a check that every fitted step fits on all ranks' rows.

Under mpiexec, a scikit-learn transformer that learns from its input (``StandardScaler``,
``PCA``, ``SimpleImputer``, ...) placed in a pipeline fits on the rows of its own rank: each
rank then scales (or imputes, or projects) its rows by its own statistics, and the spmdlearn
estimator after it fits on data that means something different on every rank, without any
error. :class:`Pipeline` finds such steps when it is fitted on more than one rank and refuses
them, naming the spmdlearn estimator to use instead.
"""

from __future__ import annotations

import warnings

from sklearn.pipeline import Pipeline as _SkPipeline
from sklearn.pipeline import make_pipeline as _sk_make_pipeline
from sklearn.utils import get_tags

from ..comm import get_comm

__all__ = ["Pipeline", "make_pipeline", "LocalStatisticsError", "ALTERNATIVES"]

#: scikit-learn estimators with an spmdlearn twin that fits on all ranks' rows.
ALTERNATIVES = {
    "StandardScaler": "spmdlearn.preprocessing.StandardScaler",
    "MinMaxScaler": "spmdlearn.preprocessing.MinMaxScaler",
    "MaxAbsScaler": "spmdlearn.preprocessing.MaxAbsScaler",
    "PCA": "spmdlearn.decomposition.PCA",
    "IncrementalPCA": "spmdlearn.decomposition.IncrementalPCA",
    "KMeans": "spmdlearn.cluster.KMeans",
    "EmpiricalCovariance": "spmdlearn.covariance.EmpiricalCovariance",
    "LinearRegression": "spmdlearn.linear_model.LinearRegression",
    "Ridge": "spmdlearn.linear_model.Ridge",
    "LogisticRegression": "spmdlearn.linear_model.LogisticRegression",
    "KNeighborsClassifier": "spmdlearn.neighbors.KNeighborsClassifier",
    "KNeighborsRegressor": "spmdlearn.neighbors.KNeighborsRegressor",
    "NearestNeighbors": "spmdlearn.neighbors.NearestNeighbors",
    "RandomForestClassifier": "spmdlearn.ensemble.RandomForestClassifier",
    "RandomForestRegressor": "spmdlearn.ensemble.RandomForestRegressor",
    "DBSCAN": "spmdlearn.cluster.DBSCAN",
}

#: scikit-learn transformers whose fit learns only the shape of the input (the same on every
#: rank, as the number of features is agreed), not statistics of the rows.
_SHAPE_ONLY = {"PolynomialFeatures"}


class LocalStatisticsError(ValueError):
    """A pipeline step would fit on this rank's rows only (raised on every rank)."""


def _local_steps(estimator, path):
    """(path, estimator) of every scikit-learn estimator in ``estimator`` that learns from the
    rows it is fitted on; containers (pipelines, column transformers, unions) are searched."""
    if estimator is None or isinstance(estimator, str):  # "passthrough", "drop"
        return []
    found = []
    for attribute in ("steps", "transformers", "transformer_list"):
        parts = getattr(estimator, attribute, None)
        if isinstance(parts, list):
            for part in parts:
                name, inner = part[0], part[1]
                found += _local_steps(inner, f"{path}{name}" if not path else f"{path} > {name}")
            return found
    module = type(estimator).__module__
    if not module.startswith("sklearn."):
        return []
    name = type(estimator).__name__
    if name in _SHAPE_ONLY or not get_tags(estimator).requires_fit:
        return []
    return [(path or name, estimator)]


def _describe(found, n_ranks) -> str:
    lines = []
    for path, est in found:
        name = type(est).__name__
        alternative = ALTERNATIVES.get(name)
        hint = (f"use {alternative}, which fits on all ranks' rows" if alternative else
                "spmdlearn has no twin of it: fit it on data every rank holds in full, or "
                "apply it before sharding the rows")
        lines.append(f"step {path!r} is scikit-learn's {name}: it would fit on each rank's own "
                     f"rows, so each of the {n_ranks} ranks would use different statistics; "
                     f"{hint}")
    return "\n".join(lines)


class Pipeline(_SkPipeline):
    """scikit-learn's Pipeline that refuses steps which would fit on one rank's rows only.

    Parameters
    ----------
    steps : list of (str, estimator) tuples
        As scikit-learn's.
    transform_input : list of str, default=None
        As scikit-learn's.
    memory : str or object with the joblib.Memory interface, default=None
        As scikit-learn's.
    verbose : bool, default=False
        As scikit-learn's.
    local_statistics : {"error", "warn", "allow"}, default="error"
        What to do, on more than one rank, with a scikit-learn estimator among the steps that
        learns from its input (a scaler, an imputer, PCA, a model; containers are searched):
        "error" raises :class:`LocalStatisticsError` on every rank, naming the step and the
        spmdlearn estimator to use instead; "warn" warns (``UserWarning``) and fits; "allow"
        fits without a word (each rank then fits that step on its own rows). Stateless
        scikit-learn steps (``FunctionTransformer``, ``Normalizer``, ...) are always accepted.

    Notes
    -----
    **Distributed semantics.** ``fit``, ``fit_transform`` and ``fit_predict`` check the steps
    (an agreement over the ranks), then fit the steps in order as scikit-learn's Pipeline does;
    every spmdlearn step is collective, so every rank must fit the pipeline. On one rank the
    check is skipped: every step then sees all rows.
    """

    def __init__(self, steps, *, transform_input=None, memory=None, verbose=False,
                 local_statistics="error"):
        super().__init__(steps, transform_input=transform_input, memory=memory, verbose=verbose)
        self.local_statistics = local_statistics

    def _check_local_statistics(self):
        comm = get_comm()

        def check():
            if self.local_statistics not in ("error", "warn", "allow"):
                raise ValueError(f"local_statistics={self.local_statistics!r} should be one of "
                                 "'error', 'warn', 'allow'")
            if comm.size == 1 or self.local_statistics == "allow":
                return None
            found = _local_steps(self, "")
            return _describe(found, comm.size) if found else None

        problem = comm.agree(check)
        if problem is None:
            return
        message = ("this Pipeline runs on several ranks, and some steps would not fit on all "
                   "ranks' rows:\n" + problem + "\n(local_statistics='allow' accepts them)")
        if self.local_statistics == "error":
            raise LocalStatisticsError(message)
        warnings.warn(message, UserWarning, stacklevel=3)

    def fit(self, X, y=None, **params):
        """Collective: check the steps, then scikit-learn's ``Pipeline.fit``."""
        self._check_local_statistics()
        return super().fit(X, y, **params)

    def fit_transform(self, X, y=None, **params):
        """Collective: check the steps, then scikit-learn's ``Pipeline.fit_transform``."""
        self._check_local_statistics()
        return super().fit_transform(X, y, **params)

    def fit_predict(self, X, y=None, **params):
        """Collective: check the steps, then scikit-learn's ``Pipeline.fit_predict``."""
        self._check_local_statistics()
        return super().fit_predict(X, y, **params)


def make_pipeline(*steps, memory=None, transform_input=None, verbose=False,
                  local_statistics="error"):
    """A :class:`Pipeline` from estimators, named as scikit-learn's ``make_pipeline`` names them.

    Parameters
    ----------
    *steps : list of estimators
    memory, transform_input, verbose
        As scikit-learn's.
    local_statistics : {"error", "warn", "allow"}, default="error"
        See :class:`Pipeline`.

    Returns
    -------
    pipeline : Pipeline
    """
    named = _sk_make_pipeline(*steps).steps
    return Pipeline(named, transform_input=transform_input, memory=memory, verbose=verbose,
                    local_statistics=local_statistics)
