"""spmdlearn.pipeline refuses scikit-learn steps that would fit on one rank's rows only."""

import warnings

import numpy as np
import pytest
from sklearn import linear_model as sklm
from sklearn import pipeline as skpipe
from sklearn import preprocessing as skp
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer

from spmdlearn.linear_model import LogisticRegression
from spmdlearn.pipeline import LocalStatisticsError, Pipeline, make_pipeline
from spmdlearn.preprocessing import StandardScaler
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    random_cuts,
)

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(60)]


def _shard(comm):
    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:300, :6], y[:300]
    cuts = random_cuts(len(X), comm.size, 3)
    return X, y, *local_rows(cuts, comm.rank, X, y)


@pytest.mark.parametrize("case", ["scaler", "nested-imputer", "sklearn-model"])
def test_sklearn_steps_that_fit_statistics_are_refused(comm, case):
    X, y, X_local, y_local = _shard(comm)
    if case == "scaler":
        pipe = make_pipeline(skp.StandardScaler(), LogisticRegression())
        expect = "'standardscaler' is scikit-learn's StandardScaler.*spmdlearn.preprocessing.StandardScaler"
    elif case == "nested-imputer":
        inner = ColumnTransformer([("impute", SimpleImputer(), [0, 1]),
                                   ("keep", "passthrough", [2, 3, 4, 5])])
        pipe = make_pipeline(inner, StandardScaler(), LogisticRegression())
        expect = "'columntransformer > impute' is scikit-learn's SimpleImputer.*no twin"
    else:
        pipe = make_pipeline(StandardScaler(), sklm.LogisticRegression())
        expect = "LogisticRegression.*spmdlearn.linear_model.LogisticRegression"
    if comm.size == 1:  # one rank: every step sees every row, nothing to refuse
        pipe.fit(X_local, y_local)
        assert_all_ranks(comm, hasattr(pipe, "classes_"), "fitted on one rank")
        return
    assert_raises_on_all_ranks(comm, LocalStatisticsError, lambda: pipe.fit(X_local, y_local),
                               match=expect)
    assert_raises_on_all_ranks(comm, LocalStatisticsError,
                               lambda: clone(pipe).fit_predict(X_local, y_local)
                               if hasattr(pipe, "fit_predict") else clone(pipe).fit(X_local, y_local),
                               match="local_statistics='allow'")
    # A scikit-learn step fits on each rank's rows, so no rank may be empty from here on.
    X_local, y_local = np.array_split(X, comm.size)[comm.rank], np.array_split(y, comm.size)[comm.rank]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe.set_params(local_statistics="warn").fit(X_local, y_local)
    assert_all_ranks(comm, any(isinstance(w.message, UserWarning) and "would fit on each rank's own rows"
                               in str(w.message) for w in caught), "warned")
    pipe.set_params(local_statistics="allow").fit(X_local, y_local)  # fits, as asked


def test_stateless_sklearn_steps_and_spmdlearn_steps_fit_globally(comm):
    X, y, _, _ = _shard(comm)
    # scikit-learn's own steps refuse zero rows, so every rank holds some here.
    X_local, y_local = np.array_split(X, comm.size)[comm.rank], np.array_split(y, comm.size)[comm.rank]
    pipe = make_pipeline(skp.FunctionTransformer(np.log1p), skp.Normalizer(),
                         StandardScaler(), LogisticRegression(tol=1e-10)).fit(X_local, y_local)
    ref = skpipe.make_pipeline(skp.FunctionTransformer(np.log1p), skp.Normalizer(),
                               skp.StandardScaler(), sklm.LogisticRegression(tol=1e-10)).fit(X, y)
    assert_allclose_all_ranks(comm, pipe[-1].coef_, ref[-1].coef_, rtol=1e-6, what="coef_")
    assert_allclose_all_ranks(comm, pipe[-2].mean_, ref[-2].mean_, rtol=1e-12, what="scaler mean_")


def test_pipeline_params_and_bad_option(comm):
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())])
    assert_all_ranks(comm, clone(pipe).get_params()["local_statistics"] == "error", "default")
    _, _, X_local, y_local = _shard(comm)
    assert_raises_on_all_ranks(comm, ValueError,
                               lambda: pipe.set_params(local_statistics="ignore").fit(X_local, y_local),
                               match="local_statistics='ignore'")
