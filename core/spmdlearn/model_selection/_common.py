"""What the searches and cross-validation share: the collective preparation of folds and
scorers, and the refusal of process-based parallelism inside a rank."""

from __future__ import annotations

import numpy as np

from ..comm import get_comm
from ._scorer import check_scoring
from ._split import check_cv


def check_n_jobs(n_jobs):
    """Only one worker per rank: collective fits must run in the same order on every rank."""
    if n_jobs is not None and n_jobs != 1:
        raise ValueError(
            f"n_jobs={n_jobs!r}: spmdlearn.model_selection fits one candidate and fold after "
            "another, in the same order on every rank, because each fit and score is collective "
            "and cannot run in worker processes (they would start MPI again) or interleave in "
            "threads. Its parallelism is the MPI ranks: leave n_jobs=None (or 1) and launch more "
            "ranks; each estimator's own n_jobs still sets its threads")


def ordered_scoring(scoring):
    """Several scorings as a dict in the order of their names: each score is collective, so
    every rank must compute them in the same order, whether it listed them as a list, a tuple,
    a set or a dict, in any order (scikit-learn's multimetric dict ``{name: name}`` for
    names). Other values as given. Local."""
    if isinstance(scoring, (list, tuple, set, frozenset)) and scoring \
            and all(isinstance(name, str) for name in scoring):
        return {name: name for name in sorted(scoring)}
    if isinstance(scoring, dict):
        return dict(sorted(scoring.items(), key=lambda item: str(item[0])))
    return scoring


def prepare(estimator, X, y, groups, cv, scoring, n_jobs, classifier):
    """Collective: ``(layout, folds, scorers)``; every rank raises alike on bad arguments."""
    comm = get_comm()
    scoring = ordered_scoring(scoring)
    scorers = comm.agree(lambda: (check_n_jobs(n_jobs), check_scoring(estimator, scoring))[1])
    splitter = check_cv(cv, y, classifier=classifier)
    layout, folds = splitter._splits(X, y, groups)
    return layout, folds, scorers


def global_indices(layout, folds):
    """Collective: the global ``(train, test)`` row indices of each fold, in scikit-learn's order."""
    comm = layout.comm
    out = []
    for train, test, g_train, g_test in folds:
        if g_train is None:
            g_train = comm.allgather_rows(np.asarray(train, np.int64) + layout.start)
            g_test = comm.allgather_rows(np.asarray(test, np.int64) + layout.start)
        out.append((g_train, g_test))
    return out
