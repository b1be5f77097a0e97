"""Model selection over all ranks' rows: scikit-learn's folds, scores and choices on the
gathered rows, identical on every rank; scikit-learn's own model selection refused."""

import numpy as np
import pytest
from sklearn import linear_model as sklm
from sklearn import metrics as skm
from sklearn import model_selection as skms
from sklearn import preprocessing as skp
from sklearn.datasets import load_diabetes
from sklearn.pipeline import make_pipeline

from spmdlearn import metrics
from spmdlearn import model_selection as ms
from spmdlearn.linear_model import LinearRegression, LogisticRegression, Ridge
from spmdlearn.preprocessing import StandardScaler
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_identical_on_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    random_cuts,
)

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]


def _diabetes_cuts(n, size, seed):
    # The 274/155/13 split of 442 rows over 3 ranks; else random uneven cuts, empty ranks too.
    if size == 3 and n == 442 and seed == 0:
        return np.array([0, 274, 429, 442])
    return random_cuts(n, size, seed)


def _classification(seed, n=150, k=3, strings=False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, 4)) + y[:, None] * np.array([1.0, -0.5, 0.3, 0.0])
    if strings:
        y = np.array(["ant", "bee", "cat", "dog"])[y]
    return X, y


def _mine(cuts, rank, global_indices):
    lo, hi = cuts[rank], cuts[rank + 1]
    g = np.asarray(global_indices)
    return g[(g >= lo) & (g < hi)] - lo


def _assert_same_splits(comm, ours, reference, cuts, what):
    ours, reference = list(ours), list(reference)
    assert_all_ranks(comm, len(ours) == len(reference), f"{what}: number of splits")
    for i, ((tr, te), (rtr, rte)) in enumerate(zip(ours, reference)):
        ok = (np.array_equal(tr, _mine(cuts, comm.rank, rtr))
              and np.array_equal(te, _mine(cuts, comm.rank, rte)))
        assert_all_ranks(comm, ok, f"{what}: split {i} differs from scikit-learn's")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shuffle", [False, True])
def test_kfold_and_stratified_kfold_cut_sklearns_folds(comm, seed, shuffle):
    X, y = _classification(seed, n=97, strings=seed == 1)
    # Make a class rare and absent from some ranks.
    y = y.copy()
    y[:5] = y[-1]
    cuts = random_cuts(len(X), comm.size, seed)
    Xl, yl = local_rows(cuts, comm.rank, X, y)
    rs = seed if shuffle else None
    for ours, ref in ((ms.KFold(4, shuffle=shuffle, random_state=rs),
                       skms.KFold(4, shuffle=shuffle, random_state=rs)),
                      (ms.StratifiedKFold(4, shuffle=shuffle, random_state=rs),
                       skms.StratifiedKFold(4, shuffle=shuffle, random_state=rs))):
        name = type(ours).__name__
        _assert_same_splits(comm, ours.split(Xl, yl), ref.split(X, y), cuts, name)
        for (gtr, gte), (rtr, rte) in zip(ours.split_global(Xl, yl), ref.split(X, y)):
            assert_all_ranks(comm, np.array_equal(gtr, rtr) and np.array_equal(gte, rte),
                             f"{name}: split_global")


@pytest.mark.parametrize("seed", [0, 4])
def test_shuffle_split_and_check_cv(comm, seed):
    X, y = _classification(seed, n=61)
    cuts = random_cuts(len(X), comm.size, seed)
    Xl, yl = local_rows(cuts, comm.rank, X, y)
    _assert_same_splits(comm, ms.ShuffleSplit(3, test_size=0.3, random_state=seed).split(Xl),
                        skms.ShuffleSplit(3, test_size=0.3, random_state=seed).split(X), cuts,
                        "ShuffleSplit")
    # random_state=None: fresh draws, but the same on every rank.
    tr, te = ms.ShuffleSplit(1, test_size=0.3).split_global(Xl)[0]
    assert_identical_on_all_ranks(comm, np.concatenate([tr, te]), "ShuffleSplit(None)")
    # scikit-learn's splitters become their global twins; ints follow scikit-learn's choice.
    cv = ms.check_cv(skms.StratifiedKFold(3, shuffle=True, random_state=1), yl, classifier=True)
    _assert_same_splits(comm, cv.split(Xl, yl),
                        skms.StratifiedKFold(3, shuffle=True, random_state=1).split(X, y), cuts,
                        "converted StratifiedKFold")
    assert_all_ranks(comm, isinstance(ms.check_cv(3, yl, classifier=True), ms.StratifiedKFold),
                     "int cv for a classifier is stratified")
    assert_all_ranks(comm, isinstance(ms.check_cv(3, yl + 0.5, classifier=True), ms.KFold),
                     "int cv for a continuous target is not")
    pairs = [(np.arange(0, 40), np.arange(40, 61))]
    _assert_same_splits(comm, ms.check_cv(pairs).split(Xl), pairs, cuts, "global index pairs")
    assert_raises_on_all_ranks(comm, NotImplementedError,
                               lambda: ms.check_cv(skms.GroupKFold(3)), match="global row")
    # A continuous y cannot be stratified: scikit-learn's error, on every rank.
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: list(ms.StratifiedKFold(3).split(Xl, yl + 0.5)),
                               match="Supported target types")


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("stratify", [False, True])
def test_train_test_split(comm, seed, stratify):
    X, y = _classification(seed, n=83)
    ids = np.arange(len(X))
    cuts = random_cuts(len(X), comm.size, seed)
    Xl, yl, il = local_rows(cuts, comm.rank, X, y, ids)
    kwargs = {"test_size": 0.25, "random_state": seed}
    ours = ms.train_test_split(il, Xl, yl, stratify=yl if stratify else None, **kwargs)
    ref = skms.train_test_split(ids, X, y, stratify=y if stratify else None, **kwargs)
    lo = cuts[comm.rank]
    ok = (np.array_equal(ours[0], _mine(cuts, comm.rank, ref[0]) + lo)
          and np.array_equal(ours[1], _mine(cuts, comm.rank, ref[1]) + lo)
          and np.array_equal(ours[2], X[ours[0]]) and np.array_equal(ours[5], y[ours[1]]))
    assert_all_ranks(comm, ok, "train_test_split rows differ from scikit-learn's")
    unshuffled = ms.train_test_split(il, test_size=0.25, shuffle=False)
    ok = np.array_equal(unshuffled[0], _mine(cuts, comm.rank, np.arange(62)) + lo)
    assert_all_ranks(comm, ok, "shuffle=False keeps the first rows for training")


def test_issue_example_gridsearch_and_cross_val_score_on_diabetes(comm):
    X, y = load_diabetes(return_X_y=True)
    cuts = _diabetes_cuts(len(X), comm.size, 0)
    Xl, yl = local_rows(cuts, comm.rank, X, y)
    grid = {"alpha": np.logspace(-3, 1, 7)}
    ours = ms.GridSearchCV(Ridge(), grid, cv=3, scoring="neg_mean_squared_error",
                           return_train_score=True).fit(Xl, yl)
    ref = skms.GridSearchCV(sklm.Ridge(), grid, cv=3, scoring="neg_mean_squared_error",
                            return_train_score=True).fit(X, y)
    assert_all_ranks(comm, set(ours.cv_results_) == set(ref.cv_results_), "cv_results_ keys")
    for key, value in ref.cv_results_.items():
        if key.endswith(("_time")) or key == "params":
            continue
        if key.startswith("param_") or key.startswith("rank_"):
            ok = np.array_equal(np.asarray(ours.cv_results_[key]), np.asarray(value))
            assert_all_ranks(comm, ok, key)
        else:
            assert_allclose_all_ranks(comm, ours.cv_results_[key], value, rtol=1e-10, what=key)
        assert_identical_on_all_ranks(comm, np.asarray(ours.cv_results_[key], dtype=float), key)
    assert_all_ranks(comm, ours.best_params_ == ref.best_params_
                     and ours.best_index_ == ref.best_index_, "best_params_")
    assert_allclose_all_ranks(comm, ours.best_score_, ref.best_score_, rtol=1e-12,
                              what="best_score_")
    assert_allclose_all_ranks(comm, ours.best_estimator_.coef_, ref.best_estimator_.coef_,
                              rtol=1e-9, what="best_estimator_.coef_")
    assert_identical_on_all_ranks(comm, ours.best_estimator_.coef_, "best_estimator_")
    # The fitted search delegates: predict is this rank's rows, score is global.
    assert_allclose_all_ranks(comm, ours.predict(Xl), ref.predict(X)[cuts[comm.rank]:
                                                                     cuts[comm.rank + 1]],
                              rtol=1e-9, what="predict")
    assert_allclose_all_ranks(comm, ours.score(Xl, yl), ref.score(X, y), rtol=1e-10,
                              what="score")
    scores = ms.cross_val_score(Ridge(), Xl, yl, cv=3)
    assert_allclose_all_ranks(comm, scores, skms.cross_val_score(sklm.Ridge(), X, y, cv=3),
                              rtol=1e-12, what="cross_val_score")
    assert_identical_on_all_ranks(comm, scores, "cross_val_score")


@pytest.mark.parametrize("seed", [0, 1])
def test_cross_validate_regression_pipeline(comm, seed):
    X, y = load_diabetes(return_X_y=True)
    X = X * np.array([1, 10, 100, 1, 1, 5, 1, 1, 1, 2]) + 3
    cuts = random_cuts(len(X), comm.size, seed)
    Xl, yl = local_rows(cuts, comm.rank, X, y)
    scoring = ["r2", "neg_mean_squared_error", "neg_root_mean_squared_error",
               "neg_mean_absolute_error"]
    cv = ms.KFold(4, shuffle=True, random_state=seed)
    ours = ms.cross_validate(make_pipeline(StandardScaler(), LinearRegression()), Xl, yl,
                             cv=cv, scoring=scoring, return_train_score=True,
                             return_estimator=True, return_indices=True)
    ref = skms.cross_validate(make_pipeline(skp.StandardScaler(), sklm.LinearRegression()), X, y,
                              cv=skms.KFold(4, shuffle=True, random_state=seed), scoring=scoring,
                              return_train_score=True, return_estimator=True,
                              return_indices=True)
    assert_all_ranks(comm, set(ours) == set(ref), "cross_validate keys")
    for key in ref:
        if key.startswith(("test_", "train_")):
            assert_allclose_all_ranks(comm, ours[key], ref[key], rtol=1e-10, what=key)
            assert_identical_on_all_ranks(comm, ours[key], key)
    for part in ("train", "test"):
        ok = all(np.array_equal(a, b) for a, b in zip(ours["indices"][part],
                                                     ref["indices"][part]))
        assert_all_ranks(comm, ok, f"global {part} indices")
    for a, b in zip(ours["estimator"], ref["estimator"]):
        assert_allclose_all_ranks(comm, a[-1].coef_, b[-1].coef_, rtol=1e-8, what="estimator")


@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize("strings", [False, True])
def test_cross_val_score_classification_scorers(comm, seed, strings):
    X, y = _classification(seed, n=140, strings=strings)
    cuts = random_cuts(len(X), comm.size, seed)
    Xl, yl = local_rows(cuts, comm.rank, X, y)
    names = ["accuracy", "balanced_accuracy", "f1_macro", "f1_weighted", "precision_micro",
             "recall_macro", "roc_auc_ovr", "roc_auc_ovo", "roc_auc_ovr_weighted",
             "roc_auc_ovo_weighted", "neg_log_loss"]
    ours = ms.cross_validate(LogisticRegression(), Xl, yl, cv=4, scoring=names)
    ref = skms.cross_validate(sklm.LogisticRegression(), X, y, cv=4, scoring=names)
    for name in names:
        key = f"test_{name}"
        assert_allclose_all_ranks(comm, ours[key], ref[key], rtol=1e-6, what=key)
        assert_identical_on_all_ranks(comm, ours[key], key)
    # Binary problem: f1/precision/recall/roc_auc as scikit-learn's binary scorers.
    binary = np.isin(y, np.unique(y)[:2])
    Xb, yb = X[binary], (y[binary] == np.unique(y)[1]).astype(int)
    cuts = random_cuts(len(Xb), comm.size, seed + 1)
    Xbl, ybl = local_rows(cuts, comm.rank, Xb, yb)
    for name in ("f1", "precision", "recall", "roc_auc", "neg_log_loss"):
        ours = ms.cross_val_score(LogisticRegression(), Xbl, ybl, cv=3, scoring=name)
        ref = skms.cross_val_score(sklm.LogisticRegression(), Xb, yb, cv=3, scoring=name)
        assert_allclose_all_ranks(comm, ours, ref, rtol=1e-6, what=name)


def test_grid_search_classification_pipeline_multimetric(comm):
    X, y = _classification(5, n=160)
    cuts = random_cuts(len(X), comm.size, 6)
    Xl, yl = local_rows(cuts, comm.rank, X, y)
    grid = {"logisticregression__C": [0.01, 0.1, 1.0]}
    scoring = {"acc": "accuracy", "auc": "roc_auc_ovr", "f1": "f1_macro"}
    ours = ms.GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression()), grid,
                           scoring=scoring, refit="auc", cv=3).fit(Xl, yl)
    ref = skms.GridSearchCV(make_pipeline(skp.StandardScaler(), sklm.LogisticRegression()), grid,
                            scoring=scoring, refit="auc", cv=3).fit(X, y)
    assert_all_ranks(comm, set(ours.cv_results_) == set(ref.cv_results_), "keys")
    for name in scoring:
        assert_allclose_all_ranks(comm, ours.cv_results_[f"mean_test_{name}"],
                                  ref.cv_results_[f"mean_test_{name}"], rtol=1e-6, what=name)
        assert_identical_on_all_ranks(comm, ours.cv_results_[f"mean_test_{name}"], name)
    assert_all_ranks(comm, ours.best_params_ == ref.best_params_, "best_params_")
    assert_all_ranks(comm, np.array_equal(ours.classes_, ref.classes_), "classes_")
    assert_allclose_all_ranks(comm, ours.score(Xl, yl), ref.score(X, y), rtol=1e-6,
                              what="refit scorer")
    assert_identical_on_all_ranks(comm, ours.best_estimator_[-1].coef_, "refitted coef_")


@pytest.mark.parametrize("random_state", [3, None])
def test_randomized_search(comm, random_state):
    from scipy.stats import loguniform

    X, y = load_diabetes(return_X_y=True)
    cuts = random_cuts(len(X), comm.size, 3)
    Xl, yl = local_rows(cuts, comm.rank, X, y)
    dist = {"alpha": loguniform(1e-4, 1e1)}
    ours = ms.RandomizedSearchCV(Ridge(), dist, n_iter=4, cv=3, scoring="r2",
                                 random_state=random_state).fit(Xl, yl)
    alphas = np.array([p["alpha"] for p in ours.cv_results_["params"]])
    assert_identical_on_all_ranks(comm, alphas, "sampled candidates")
    assert_identical_on_all_ranks(comm, ours.cv_results_["mean_test_score"], "scores")
    if random_state is not None:
        ref = skms.RandomizedSearchCV(sklm.Ridge(), dist, n_iter=4, cv=3, scoring="r2",
                                      random_state=random_state).fit(X, y)
        assert_allclose_all_ranks(comm, ours.cv_results_["mean_test_score"],
                                  ref.cv_results_["mean_test_score"], rtol=1e-10, what="r2")
        assert_all_ranks(comm, ours.best_params_ == ref.best_params_, "best_params_")


def test_refusals_are_collective(comm):
    X, y = load_diabetes(return_X_y=True)
    cuts = random_cuts(len(X), comm.size, 0)
    Xl, yl = local_rows(cuts, comm.rank, X, y)
    grid = {"alpha": [0.1, 1.0]}
    for make in (lambda: ms.GridSearchCV(Ridge(), grid, n_jobs=2).fit(Xl, yl),
                 lambda: ms.cross_val_score(Ridge(), Xl, yl, n_jobs=-1),
                 lambda: ms.RandomizedSearchCV(Ridge(), grid, n_iter=2, n_jobs=2).fit(Xl, yl)):
        assert_raises_on_all_ranks(comm, ValueError, make, match="n_jobs=.*MPI ranks")
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: ms.cross_val_score(Ridge(), Xl, yl, scoring="max_error"),
                               match="supported: .*neg_mean_squared_error")
    # A callable scorer that scores only this rank's rows is caught, never averaged.
    local_r2 = lambda est, X_, y_: float(len(y_))  # noqa: E731 - differs across uneven ranks
    sizes = comm.allgather(len(yl))
    if len(set(sizes)) > 1:
        assert_raises_on_all_ranks(comm, ValueError,
                                   lambda: ms.cross_val_score(Ridge(), Xl, yl, cv=2,
                                                              scoring=local_r2,
                                                              error_score="raise"),
                                   match="different values on different ranks")


def test_cv_splits_that_differ_only_at_the_train_test_boundary_are_refused(comm):
    # rank 0 trains on rows 0..29 and tests 30..59, the others train on 0..30 and test
    # 31..59: the concatenated indices are the same, the splits are not
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:60], y[:60]
    cuts = random_cuts(len(X), comm.size, 0)
    Xl, yl = local_rows(cuts, comm.rank, X, y)
    cut = 30 if comm.rank == 0 else 31
    cv = [(np.arange(cut), np.arange(cut, 60))]
    if comm.size > 1:
        assert_raises_on_all_ranks(comm, ValueError,
                                   lambda: ms.cross_val_score(Ridge(), Xl, yl, cv=cv),
                                   match="cut different rows on different ranks")
    # the same splits pass and give scikit-learn's score
    cv = [(np.arange(30), np.arange(30, 60))]
    ours = ms.cross_val_score(Ridge(), Xl, yl, cv=cv)
    assert_allclose_all_ranks(comm, ours, skms.cross_val_score(sklm.Ridge(), X, y, cv=cv),
                              rtol=1e-10)


def test_sklearn_model_selection_with_spmdlearn_estimators_is_refused(comm):
    X, y = load_diabetes(return_X_y=True)
    # Uneven, but every rank holds enough rows for scikit-learn's own per-rank checks (with
    # fewer rows than folds, scikit-learn raises its own error on that rank before any fit).
    cuts = (np.array([0, 274, 429, 442]) if comm.size == 3
            else np.linspace(0, 442, comm.size + 1).astype(int) + np.r_[0, [7] * (comm.size - 1), 0])
    Xl, yl = local_rows(cuts, comm.rank, X, y)
    grid = {"alpha": [0.01, 1.0]}
    calls = {
        "GridSearchCV scoring": lambda: skms.GridSearchCV(
            Ridge(), grid, cv=3, scoring="neg_mean_squared_error").fit(Xl, yl),
        "cross_val_score": lambda: skms.cross_val_score(Ridge(), Xl, yl, cv=3),
        "pipeline": lambda: skms.cross_val_score(make_pipeline(StandardScaler(), Ridge()), Xl,
                                                 yl, cv=3, scoring="r2"),
        "cross_val_predict": lambda: skms.cross_val_predict(Ridge(), Xl, yl, cv=3),
    }
    fitted = Ridge().fit(Xl, yl)
    if comm.size > 1:
        for name, call in calls.items():
            assert_raises_on_all_ranks(comm, ValueError, call, match="spmdlearn.model_selection")
        assert_raises_on_all_ranks(comm, ValueError,
                                   lambda: skm.get_scorer("r2")(fitted, Xl, yl),
                                   match="scikit-learn scorer")
    else:
        # One rank: an spmdlearn estimator is an ordinary scikit-learn estimator.
        for name, call in calls.items():
            call()
    # A scikit-learn scorer over a spmdlearn metric is global, hence allowed.
    value = skm.make_scorer(metrics.r2_score)(fitted, Xl, yl)
    assert_allclose_all_ranks(comm, value, fitted.score(Xl, yl), rtol=0, what="make_scorer")


@pytest.mark.parametrize("k", [2, 3])
def test_logistic_scores_on_an_empty_rank(comm, k):
    # Scorers call decision_function/predict_proba on every rank, some of which hold no rows.
    X, y = _classification(7, n=60, k=k)
    est = LogisticRegression().fit(*local_rows(random_cuts(60, comm.size, 7), comm.rank, X, y))
    empty = X[:0] if comm.rank == 0 else X[:5]
    d, p = est.decision_function(empty), est.predict_proba(empty)
    n = len(empty)
    assert_all_ranks(comm, d.shape == ((n,) if k == 2 else (n, k)) and p.shape == (n, k),
                     f"shapes {d.shape} {p.shape}")


def test_sklearn_n_jobs_workers_raise_instead_of_crashing(comm, request):
    # joblib's worker processes inherit the launcher's environment; MPI_Init there would abort
    # them. spmdlearn refuses to start MPI in them and says why; scikit-learn reports it.
    import os

    from spmdlearn.comm import _RANK_VARIABLES

    if "world" not in request.node.name or not any(v in os.environ for v in _RANK_VARIABLES):
        pytest.skip("needs a launcher's environment (mpiexec); run once per job")
    X, y = load_diabetes(return_X_y=True)
    Xl, yl = X[comm.rank::comm.size], y[comm.rank::comm.size]
    assert_raises_on_all_ranks(
        comm, ValueError,
        lambda: skms.GridSearchCV(Ridge(), {"alpha": [0.1, 1.0]}, cv=2, n_jobs=2).fit(Xl, yl),
        match="worker process that an MPI rank started")
