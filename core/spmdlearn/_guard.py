"""Refusing scikit-learn's own model selection on sharded data, where it would cut each rank's
rows on their own or score them with a rank-local metric.

Under several ranks, scikit-learn's ``cross_validate``/``GridSearchCV``/... split each rank's
shard separately (folds that are unions of per-rank folds, not scikit-learn's folds of the
gathered rows), and a scorer built on a scikit-learn metric scores only this rank's rows, so the
ranks pick different ``best_params_``. :func:`refuse_sklearn_model_selection` runs inside every
spmdlearn ``fit``/``predict``/``transform`` validation and raises there; the collective
validation then raises the same error on every rank. :mod:`spmdlearn.model_selection` marks its
own calls with :func:`global_model_selection`.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

__all__ = ["global_model_selection", "refuse_sklearn_model_selection"]

_state = threading.local()

# Modules of scikit-learn that fit estimators on the folds they cut (cross_validate,
# cross_val_score, cross_val_predict, learning_curve, validation_curve, permutation_test_score,
# and through them GridSearchCV, RandomizedSearchCV, the halving searches; and
# TunedThresholdClassifierCV).
_SKLEARN_CV_MODULES = ("sklearn.model_selection._validation",
                       "sklearn.model_selection._classification_threshold")
_SKLEARN_SCORER_MODULE = "sklearn.metrics._scorer"


@contextmanager
def global_model_selection():
    """Mark this thread as running spmdlearn's model selection (global folds and scorers)."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def refuse_sklearn_model_selection(comm) -> None:
    """Raise ValueError if this call comes, under several ranks, from scikit-learn's model
    selection or from a scikit-learn scorer whose metric is not one of spmdlearn's.

    Not collective: every rank runs the same program, so every rank reaches the same verdict;
    callers run it inside a collective agreement all the same.
    """
    if comm.size == 1 or getattr(_state, "depth", 0):
        return
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module in _SKLEARN_CV_MODULES:
            raise ValueError(
                f"scikit-learn's model selection ({module}) was given an spmdlearn estimator "
                f"under {comm.size} ranks: it cuts each rank's rows into folds on their own, so "
                "its folds and scores are not scikit-learn's on the gathered rows. Use "
                "spmdlearn.model_selection (GridSearchCV, RandomizedSearchCV, cross_validate, "
                "cross_val_score, KFold, StratifiedKFold, ShuffleSplit, train_test_split): the "
                "same API, with folds of global row indices and scorers reduced over all ranks")
        if module == _SKLEARN_SCORER_MODULE:
            func = getattr(frame.f_locals.get("self"), "_score_func", None)
            if func is not None and not getattr(func, "__module__", "").startswith("spmdlearn."):
                raise ValueError(
                    f"a scikit-learn scorer ({getattr(func, '__name__', func)}) was applied to "
                    f"an spmdlearn estimator under {comm.size} ranks: it would score only this "
                    "rank's rows, giving a different value on each rank. Use "
                    "spmdlearn.model_selection.get_scorer(name), "
                    "sklearn.metrics.make_scorer(<a spmdlearn.metrics function>), or "
                    "spmdlearn.model_selection's searches and cross-validation")
        frame = frame.f_back
