"""Hyper-parameter searches over all ranks' rows: scikit-learn's GridSearchCV and
RandomizedSearchCV with global folds and global scorers."""

from __future__ import annotations

import copy
import functools
import hashlib
import sys

from sklearn import model_selection as _skms
from sklearn.base import is_classifier

from .._base import _canonical, _Short, collective_entry, estimator_params, nested_params
from .._guard import global_model_selection
from ..comm import get_comm
from ._common import prepare
from ._split import _agreed_random_state, _model_selection_meaning

__all__ = ["GridSearchCV", "RandomizedSearchCV"]

_NOTES = """
    Notes
    -----
    **Distributed semantics.** ``fit`` is collective: every rank calls it with its own rows.
    The ranks agree on the search's parameters on entry, by what they mean (``cv=None`` and
    ``cv=5``, ``n_jobs=None`` and ``n_jobs=1``, ``scoring=["r2", "max_error"]`` and
    ``scoring={"max_error": "max_error", "r2": "r2"}`` agree; ``pre_dispatch`` and the
    ``verbose`` of ranks other than 0 are unused); a parameter that differs raises on every
    rank, naming it and the ranks, before any fold is cut.
    The folds are cut on global row indices (``cv``: an int, spmdlearn's or scikit-learn's
    ``KFold``/``StratifiedKFold``/``ShuffleSplit``, or global index pairs); each candidate is
    fitted on the fold's rows of all ranks and scored over them (``scoring``: the names of
    :func:`spmdlearn.model_selection.get_scorer_names`, or collective callables; each score is
    checked to be the same on every rank). scikit-learn's own search loop then runs unchanged,
    in the same order on every rank, so ``cv_results_`` (except fit and score times, which are
    this rank's), ``best_index_``, ``best_params_``, ``best_score_`` and the refitted
    ``best_estimator_`` equal scikit-learn's on the gathered rows and are identical on every
    rank. ``n_jobs`` other than None or 1 raises ValueError on every rank (the ranks are the
    parallelism). ``predict``, ``score`` and the other delegated methods are those of
    ``best_estimator_``: collective as its own are. ``verbose`` prints on rank 0 only.
"""


def _entry_params(search):
    """``{name: (comparable value, text)}`` of a search's parameters by what they mean
    (:func:`~spmdlearn.model_selection._split._model_selection_meaning`: ``cv=None`` and
    ``cv=5`` agree), its estimator's and its splitter's parameters by name. Local."""
    own = estimator_params(search, deep=False)
    meant = _model_selection_meaning(dict(own))
    out = {}
    for name, value in meant.items():
        out[name] = (_canonical(value), _Short(own[name]))
        out.update(nested_params(name, value))
    return out


def _collective_fit(fit):
    """Wrap a search's ``fit`` in a collective session: on entry the ranks agree on the search
    and its parameters by meaning (:func:`_entry_params`), before any fold is cut or any
    candidate fitted; an exception on any rank is raised on every rank."""
    @functools.wraps(fit)
    def wrapper(self, X, y=None, **params):
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno, __file__)
        with collective_entry(f"{type(self).__name__}.fit", lambda: _entry_params(self),
                              caller):
            return fit(self, X, y, **params)

    wrapper.__spmdlearn_collective__ = True
    return wrapper


def _fit(search, sk_class, X, y, params, extra=None):
    comm = get_comm()
    layout, folds, scorers = prepare(search.estimator, X, y, params.get("groups"), search.cv,
                                     search.scoring, search.n_jobs,
                                     is_classifier(search.estimator))
    inner = search.get_params(deep=False)
    inner.update(cv=[(train, test) for train, test, _, _ in folds], scoring=scorers,
                 n_jobs=None, verbose=search.verbose if comm.rank == 0 else 0, **(extra or {}))
    inner = sk_class(**inner)
    with global_model_selection():
        inner.fit(X, y, **params)
    for name, value in vars(inner).items():
        if name.endswith("_") and not name.startswith("_"):
            setattr(search, name, value)
    return search


class GridSearchCV(_skms.GridSearchCV):
    __doc__ = (_skms.GridSearchCV.__doc__.split("\n")[0].rstrip(".")
               + " over all ranks' rows.\n\n    Parameters and attributes are scikit-learn's "
               "(:class:`sklearn.model_selection.GridSearchCV`).\n" + _NOTES)

    @_collective_fit
    def fit(self, X, y=None, **params):
        """Collective: run the search on all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (may be empty).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs), default=None
            This rank's targets.
        **params : dict
            Passed to the estimator's ``fit`` (rows sliced like ``X``).

        Returns
        -------
        self : GridSearchCV
        """
        return _fit(self, _skms.GridSearchCV, X, y, params)


class RandomizedSearchCV(_skms.RandomizedSearchCV):
    __doc__ = (_skms.RandomizedSearchCV.__doc__.split("\n")[0].rstrip(".")
               + " over all ranks' rows.\n\n    Parameters and attributes are scikit-learn's "
               "(:class:`sklearn.model_selection.RandomizedSearchCV`); ``random_state=None`` "
               "draws one seed on rank 0 and shares it, so every rank samples the same "
               "candidates (a RandomState instance must be in the same state on every rank: "
               "checked).\n" + _NOTES)

    @_collective_fit
    def fit(self, X, y=None, **params):
        """Collective: run the search on all ranks' rows (see :meth:`GridSearchCV.fit`).

        Returns
        -------
        self : RandomizedSearchCV
        """
        comm = get_comm()
        random_state = _agreed_random_state(comm, self.random_state)

        def candidates():
            sampler = _skms.ParameterSampler(self.param_distributions, self.n_iter,
                                             random_state=copy.deepcopy(random_state))
            return hashlib.sha256(repr(list(sampler)).encode()).hexdigest()

        digests = comm.allgather(comm.agree(candidates))
        if len(set(digests)) > 1:
            raise ValueError("RandomizedSearchCV sampled different candidates on different "
                             "ranks: pass the same int random_state on every rank (a "
                             "RandomState instance must be in the same state everywhere)")
        return _fit(self, _skms.RandomizedSearchCV, X, y, params,
                    extra={"random_state": random_state})
