"""Model selection over all ranks' rows: scikit-learn's searches, cross-validation and
splitters, with folds cut on global row indices and scorers reduced over all ranks.

Rank ``r``'s rows are numbered after all rows of ranks ``0..r-1``. Folds, scores,
``cv_results_`` and ``best_params_`` equal scikit-learn's on the gathered rows for the same
``random_state``, and are identical on every rank. Every function and ``fit`` here is
collective.
"""

from ._scorer import check_scoring, get_scorer, get_scorer_names
from ._search import GridSearchCV, RandomizedSearchCV
from ._split import KFold, ShuffleSplit, StratifiedKFold, check_cv, train_test_split
from ._validation import cross_val_score, cross_validate

__all__ = ["GridSearchCV", "KFold", "RandomizedSearchCV", "ShuffleSplit", "StratifiedKFold",
           "check_cv", "check_scoring", "cross_val_score", "cross_validate", "get_scorer",
           "get_scorer_names", "train_test_split"]
