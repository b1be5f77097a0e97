"""Cross-validation over all ranks' rows: global folds, global scores."""

from __future__ import annotations

import numpy as np
from sklearn import model_selection as _skms
from sklearn.base import is_classifier

from .._guard import global_model_selection
from .._base import collective_function
from ..comm import get_comm
from ._common import global_indices, prepare
from ._split import _model_selection_meaning

__all__ = ["cross_validate", "cross_val_score"]


@collective_function(resolve=_model_selection_meaning)
def cross_validate(estimator, X, y=None, *, groups=None, scoring=None, cv=None, n_jobs=None,
                   verbose=0, params=None, pre_dispatch="2*n_jobs", return_train_score=False,
                   return_estimator=False, return_indices=False, error_score=np.nan):
    """Collective: scikit-learn's ``cross_validate`` of all ranks' rows.

    Parameters are scikit-learn's; the differences are what "all ranks' rows" means:

    Parameters
    ----------
    estimator : estimator
        An spmdlearn estimator, or a Pipeline of them (its ``fit`` and scoring are collective).
    X : array-like of shape (n_samples, n_features)
        This rank's rows (may be empty).
    y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
        This rank's targets.
    groups : array-like, default=None
        Ignored, as by the splitters spmdlearn provides.
    scoring : str, callable, list, tuple, set or dict, default=None
        Scoring names are computed over all ranks' rows (see
        :func:`spmdlearn.model_selection.get_scorer_names`); a callable must be collective.
        Every score is checked to be the same on every rank.
    cv : int, splitter or iterable, default=None
        See :func:`spmdlearn.model_selection.check_cv`: folds of global row indices.
    n_jobs : None or 1
        Other values raise ValueError on every rank: fits are collective and run one after
        another; the ranks are the parallelism.
    verbose : int, default=0
        Progress printed on rank 0 only.
    params : dict, default=None
        Passed to the estimator's ``fit``, rows sliced like ``X`` (e.g. ``sample_weight``).
    pre_dispatch : str or int, default="2*n_jobs"
        As in scikit-learn, without effect with one job.
    return_train_score, return_estimator, error_score
        scikit-learn's.
    return_indices : bool, default=False
        Return the folds' global row indices (identical on every rank).

    Returns
    -------
    scores : dict
        scikit-learn's keys (``test_<name>``, ``train_<name>``, ``fit_time``, ``score_time``,
        ``estimator``, ``indices``); scores identical on every rank and equal to
        scikit-learn's on the gathered rows. Times are this rank's.

    Notes
    -----
    **Distributed semantics.** Collective. The folds are cut on global row indices
    (:class:`KFold`, or :class:`StratifiedKFold` for classifiers, as scikit-learn chooses);
    each rank passes its rows of each fold to scikit-learn's own ``cross_validate`` loop, so
    every fit sees the fold's rows of all ranks and every score reduces over them.
    """
    comm = get_comm()
    layout, folds, scorers = prepare(estimator, X, y, groups, cv, scoring, n_jobs,
                                     is_classifier(estimator))
    with global_model_selection():
        result = _skms.cross_validate(
            estimator, X, y, groups=groups, scoring=scorers,
            cv=[(train, test) for train, test, _, _ in folds], n_jobs=None,
            verbose=verbose if comm.rank == 0 else 0, params=params, pre_dispatch=pre_dispatch,
            return_train_score=return_train_score, return_estimator=return_estimator,
            return_indices=False, error_score=error_score)
    if return_indices:
        indices = global_indices(layout, folds)
        result["indices"] = {"train": [tr for tr, _ in indices],
                             "test": [te for _, te in indices]}
    return result


@collective_function(resolve=_model_selection_meaning)
def cross_val_score(estimator, X, y=None, *, groups=None, scoring=None, cv=None, n_jobs=None,
                    verbose=0, params=None, pre_dispatch="2*n_jobs", error_score=np.nan):
    """Collective: scikit-learn's ``cross_val_score`` of all ranks' rows.

    Parameters
    ----------
    estimator, X, y, groups, cv, n_jobs, verbose, params, pre_dispatch, error_score
        As :func:`cross_validate`.
    scoring : str or callable, default=None
        One scoring (a name of :func:`get_scorer_names` or a collective callable).

    Returns
    -------
    scores : ndarray of shape (n_splits,)
        Identical on every rank; scikit-learn's on the gathered rows.
    """
    if scoring is not None and not isinstance(scoring, str) and not callable(scoring):
        raise ValueError(f"scoring={scoring!r}: cross_val_score takes one scoring; for "
                         "several, use spmdlearn.model_selection.cross_validate")
    result = cross_validate(estimator, X, y, groups=groups, scoring=scoring, cv=cv,
                            n_jobs=n_jobs, verbose=verbose, params=params,
                            pre_dispatch=pre_dispatch, error_score=error_score)
    return result["test_score"]
