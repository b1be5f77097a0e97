"""Model selection on sharded rows: global folds and scorers; checked against scikit-learn.

    mpiexec -n 3 python examples/model_selection_spmd.py [--device numpy|cpu|gpu]

The diabetes rows are split unevenly (274/155/13 rows on 3 ranks). A grid search and a
cross-validation cut scikit-learn's folds of all rows and score over all ranks' rows, so every
rank picks the same parameters as scikit-learn does on the gathered rows.
"""

import numpy as np
from sklearn import linear_model as sklm
from sklearn import model_selection as skms
from sklearn import preprocessing as skp
from sklearn.datasets import load_diabetes, load_wine
from sklearn.pipeline import make_pipeline

from _check import device_arrays, report
from spmdlearn.comm import get_comm
from spmdlearn.io import allgather_rows
from spmdlearn.linear_model import LogisticRegression, Ridge
from spmdlearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_score,
    train_test_split,
)
from spmdlearn.preprocessing import StandardScaler

comm = get_comm()
to_device, to_host = device_arrays(comm)  # --device numpy|cpu|gpu


def uneven(n):
    """Rows of this rank: the first rank holds most, the last few (diabetes on 3 ranks: the
    274/155/13 split)."""
    if comm.size == 3 and n == 442:
        return slice(*[(0, 274), (274, 429), (429, 442)][comm.rank])
    weights = 0.62 ** np.arange(comm.size)
    cuts = np.concatenate([[0], np.round(np.cumsum(weights) / weights.sum() * n)]).astype(int)
    return slice(cuts[comm.rank], cuts[comm.rank + 1])


# Regression: the grid search over Ridge's alpha, scored by global mean squared error.
X, y = load_diabetes(return_X_y=True)
rows = uneven(len(X))
grid = {"alpha": np.logspace(-3, 1, 7)}
X_local, y_local = to_device(X[rows]), to_device(y[rows])
search = GridSearchCV(Ridge(), grid, cv=3, scoring="neg_mean_squared_error").fit(X_local, y_local)
scores = cross_val_score(Ridge(), X_local, y_local, cv=3)
ref = skms.GridSearchCV(sklm.Ridge(), grid, cv=3, scoring="neg_mean_squared_error").fit(X, y)
ref_scores = skms.cross_val_score(sklm.Ridge(), X, y, cv=3)

# Classification: a held-out split, then a pipeline tuned by multiclass ROC AUC on stratified
# shuffled folds.
Xw, yw = load_wine(return_X_y=True)
rows_w = uneven(len(Xw))
ids = np.arange(len(Xw))[rows_w]  # global row numbers, to compare the split with scikit-learn's
Xw_local, yw_local = to_device(Xw[rows_w]), to_device(yw[rows_w])
ids_train, ids_test, X_train, X_test, y_train, y_test = train_test_split(
    ids, Xw_local, yw_local, test_size=0.3, stratify=yw_local, random_state=0)
pipe_grid = {"logisticregression__C": [0.01, 0.1, 1.0]}
cv = StratifiedKFold(4, shuffle=True, random_state=0)
clf = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression()), pipe_grid, cv=cv,
                   scoring="roc_auc_ovr").fit(X_train, y_train)
# train_test_split keeps scikit-learn's rows (each rank keeps its own, in scikit-learn's order),
# so the folds of the training rows are scikit-learn's on the training rows gathered in rank
# order: that is the reference.
Xw_train, yw_train = to_host(allgather_rows(X_train)), to_host(allgather_rows(y_train))
Xw_test, yw_test = to_host(allgather_rows(X_test)), to_host(allgather_rows(y_test))
sk_train, sk_test = skms.train_test_split(np.arange(len(Xw)), test_size=0.3, stratify=yw,
                                          random_state=0)
ref_clf = skms.GridSearchCV(make_pipeline(skp.StandardScaler(), sklm.LogisticRegression()),
                            pipe_grid, cv=skms.StratifiedKFold(4, shuffle=True, random_state=0),
                            scoring="roc_auc_ovr").fit(Xw_train, yw_train)
held_out = clf.score(X_test, y_test)  # the refit pipeline's ROC AUC over all ranks' test rows

if comm.rank == 0:
    print(f"diabetes: {len(X)} rows over {comm.size} ranks (this rank: {len(X[rows])}); "
          f"best alpha {search.best_params_['alpha']:.4g} (scikit-learn "
          f"{ref.best_params_['alpha']:.4g})")
    print(f"wine: best C {clf.best_params_['logisticregression__C']} (scikit-learn "
          f"{ref_clf.best_params_['logisticregression__C']}); held-out ROC AUC {held_out:.4f}")
same_choice = (search.best_index_ == ref.best_index_ and clf.best_index_ == ref_clf.best_index_)
report(comm, [
    ("Ridge mean_test_score", search.cv_results_["mean_test_score"],
     ref.cv_results_["mean_test_score"]),
    ("Ridge best_score_", search.best_score_, ref.best_score_),
    ("Ridge best_index_", search.best_index_, ref.best_index_),
    ("cross_val_score", scores, ref_scores),
    ("LogReg mean_test_score", clf.cv_results_["mean_test_score"],
     ref_clf.cv_results_["mean_test_score"]),
    ("LogReg best_index_", clf.best_index_, ref_clf.best_index_),
    ("held-out ROC AUC", held_out, ref_clf.score(Xw_test, yw_test)),
    ("train_test_split rows", np.sort(to_host(allgather_rows(ids_train))), np.sort(sk_train)),
    ("  held-out rows", np.sort(to_host(allgather_rows(ids_test))), np.sort(sk_test)),
    ("same choices", same_choice, True),
], rtol=1e-6)
