"""Global scorers: scikit-learn's scoring names, computed over all ranks' rows."""

from __future__ import annotations

import numpy as np

from .. import metrics
from ..comm import get_comm

__all__ = ["get_scorer", "get_scorer_names", "check_scoring"]


class _GlobalScorer:
    """A scorer ``scorer(estimator, X, y, sample_weight=None)`` whose value is reduced over all
    ranks' rows: the estimator's response on this rank's rows, then a collective metric of
    :mod:`spmdlearn.metrics`. It mirrors scikit-learn's scorer of the same name (response
    method, sign, metric keywords)."""

    def __init__(self, name, score_func, sign, response_method, kwargs):
        self._name = name
        self._score_func = score_func
        self._sign = sign
        self._response_method = response_method
        self._kwargs = kwargs

    def __repr__(self):
        return f"spmdlearn.model_selection.get_scorer({self._name!r})"

    def _response(self, estimator, X):
        methods = self._response_method
        methods = (methods,) if isinstance(methods, str) else methods
        method = next((m for m in methods if hasattr(estimator, m)), None)
        if method is None:
            raise AttributeError(f"{type(estimator).__name__} has none of the following "
                                 f"attributes: {', '.join(methods)}.")
        y = getattr(estimator, method)(X)
        classes = getattr(estimator, "classes_", None)
        if method == "predict_proba" and classes is not None and len(classes) == 2:
            # scikit-learn's scorers score binary problems on the greater label's probability.
            y = np.asarray(y)[:, 1]
        return y

    def __call__(self, estimator, X, y_true, sample_weight=None, **kwargs):
        if kwargs:
            raise TypeError(f"scorer {self._name!r} got unexpected keyword arguments "
                            f"{sorted(kwargs)}; only sample_weight is routed to the metric")
        # A rank that fails after the response's own collectives (e.g. in a local reshape)
        # meets the others here, so that every rank raises instead of one waiting.
        y_pred = get_comm().agree(self._response, estimator, X)
        extra = {} if sample_weight is None else {"sample_weight": sample_weight}
        return self._sign * self._score_func(y_true, y_pred, **self._kwargs, **extra)


def _build():
    scorers = {
        "accuracy": (metrics.accuracy_score, 1, "predict", {}),
        "balanced_accuracy": (metrics.balanced_accuracy_score, 1, "predict", {}),
        "roc_auc": (metrics.roc_auc_score, 1, ("decision_function", "predict_proba"), {}),
        "roc_auc_ovr": (metrics.roc_auc_score, 1, "predict_proba", {"multi_class": "ovr"}),
        "roc_auc_ovo": (metrics.roc_auc_score, 1, "predict_proba", {"multi_class": "ovo"}),
        "roc_auc_ovr_weighted": (metrics.roc_auc_score, 1, "predict_proba",
                                 {"multi_class": "ovr", "average": "weighted"}),
        "roc_auc_ovo_weighted": (metrics.roc_auc_score, 1, "predict_proba",
                                 {"multi_class": "ovo", "average": "weighted"}),
        "neg_log_loss": (metrics.log_loss, -1, "predict_proba", {}),
        "r2": (metrics.r2_score, 1, "predict", {}),
        "neg_mean_squared_error": (metrics.mean_squared_error, -1, "predict", {}),
        "neg_root_mean_squared_error": (metrics.root_mean_squared_error, -1, "predict", {}),
        "neg_mean_absolute_error": (metrics.mean_absolute_error, -1, "predict", {}),
    }
    # As scikit-learn builds them: binary by default, and each average with pos_label=None.
    for name, func in (("precision", metrics.precision_score), ("recall", metrics.recall_score),
                       ("f1", metrics.f1_score)):
        scorers[name] = (func, 1, "predict", {"average": "binary"})
        for average in ("macro", "micro", "weighted"):
            scorers[f"{name}_{average}"] = (func, 1, "predict",
                                            {"pos_label": None, "average": average})
    return {name: _GlobalScorer(name, *spec) for name, spec in scorers.items()}


_SCORERS = _build()


def get_scorer_names():
    """The scoring names spmdlearn computes globally (a subset of scikit-learn's).

    Returns
    -------
    names : list of str
    """
    return sorted(_SCORERS)


def get_scorer(scoring):
    """The global scorer of a scikit-learn scoring name.

    Parameters
    ----------
    scoring : str
        One of :func:`get_scorer_names`.

    Returns
    -------
    scorer : callable ``scorer(estimator, X, y, sample_weight=None)``
        Collective: every rank calls it with its own rows; the value is identical on every rank
        and equals scikit-learn's scorer on the gathered rows.

    Raises
    ------
    ValueError
        For a name spmdlearn does not compute, listing the supported ones.
    """
    if isinstance(scoring, str) and scoring in _SCORERS:
        return _SCORERS[scoring]
    raise ValueError(f"scoring={scoring!r} is not a scoring spmdlearn computes over all ranks' "
                     f"rows; supported: {', '.join(get_scorer_names())}; or pass a callable "
                     "scorer(estimator, X, y) that reduces over all ranks (for example with "
                     "spmdlearn.metrics)")


class _EstimatorScore:
    """The estimator's own ``score`` (scikit-learn's default scoring); spmdlearn estimators
    reduce it over all ranks' rows."""

    def __repr__(self):
        return "passthrough scorer (estimator.score)"

    def __call__(self, estimator, X, y=None, sample_weight=None, **kwargs):
        if sample_weight is not None:
            kwargs["sample_weight"] = sample_weight
        return estimator.score(X, y, **kwargs) if y is not None else estimator.score(X, **kwargs)


class _Agreed:
    """Calls a scorer on every rank and checks that every rank got the same value: a scorer that
    scores only the local rows (scikit-learn's metric functions) is refused, never averaged."""

    def __init__(self, scorer, name):
        self.scorer = scorer
        self.name = name

    def __repr__(self):
        return repr(self.scorer)

    def __call__(self, estimator, X, y=None, **kwargs):
        comm = get_comm()
        value = self.scorer(estimator, X, y, **kwargs)
        values = value if isinstance(value, dict) else {None: value}
        bits = {k: np.asarray(v, dtype=np.float64).tobytes() for k, v in values.items()}
        gathered = comm.allgather(bits)
        if any(g != gathered[0] for g in gathered):
            shown = ", ".join(
                f"rank {r}: " + " ".join(f"{np.frombuffer(b, dtype=np.float64)}" for b in g.values())
                for r, g in enumerate(gathered))
            raise ValueError(f"scoring {self.name} gave different values on different ranks "
                             f"({shown}): a scorer must reduce over all ranks' rows; use a "
                             "scoring name, or a callable built on spmdlearn.metrics")
        return value


def check_scoring(estimator, scoring=None):
    """The global scorer(s) for ``scoring``, as scikit-learn's ``check_scoring`` resolves it.

    Parameters
    ----------
    estimator : estimator
    scoring : None, str, callable, list/tuple/set of str, or dict of str to str or callable
        None: the estimator's ``score`` (spmdlearn estimators reduce it over all ranks).
        A string: :func:`get_scorer`. A callable ``scorer(estimator, X, y)``: used as is; it
        must be collective and reduce over all ranks' rows. Several: a dict name -> scorer.

    Returns
    -------
    scorer : callable, or dict of str to callable
        Each checks, after scoring, that every rank got the same value, and raises ValueError
        on every rank if not.
    """
    if scoring is None:
        if not hasattr(estimator, "score"):
            raise TypeError(f"If no scoring is specified, the estimator passed should have a "
                            f"'score' method. The estimator {estimator!r} does not.")
        return _Agreed(_EstimatorScore(), "None (estimator.score)")
    if isinstance(scoring, str):
        return _Agreed(get_scorer(scoring), repr(scoring))
    if callable(scoring):
        return _Agreed(scoring, repr(scoring))
    if isinstance(scoring, (list, tuple, set)):
        names = list(scoring)
        if not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
            raise ValueError(f"scoring={scoring!r}: a list, tuple or set of scoring names should "
                             "be non-empty, of unique strings")
        return {n: _Agreed(get_scorer(n), repr(n)) for n in names}
    if isinstance(scoring, dict):
        if not scoring:
            raise ValueError("scoring={}: an empty dict was passed")
        return {k: _Agreed(get_scorer(v) if isinstance(v, str) else v, f"{k}={v!r}")
                for k, v in scoring.items()}
    raise ValueError(f"scoring={scoring!r} should be None, a str, a callable, a list/tuple/set "
                     "of str, or a dict")
