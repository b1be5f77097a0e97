"""Feature names under mpiexec: scikit-learn's behaviour for every estimator, agreed across ranks.

Every rank passes its shard as a DataFrame (an empty rank's DataFrame still carries the
columns). ``feature_names_in_`` is then scikit-learn's on the gathered DataFrame, on every
rank; predict/transform check the names as scikit-learn does; ``get_feature_names_out`` and
``set_output(transform="pandas")`` name the columns as scikit-learn does; ``to_sklearn()`` keeps
the names. Columns that disagree across ranks (permuted, present on some ranks only, renamed)
raise the same error on every rank, naming the ranks.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import cluster as skc
from sklearn import covariance as skcov
from sklearn import decomposition as skd
from sklearn import ensemble as ske
from sklearn import linear_model as sklm
from sklearn import neighbors as skn
from sklearn import preprocessing as skp

from spmdlearn.basic_statistics import BasicStatistics, IncrementalBasicStatistics
from spmdlearn.cluster import DBSCAN, KMeans
from spmdlearn.covariance import EmpiricalCovariance, IncrementalEmpiricalCovariance
from spmdlearn.decomposition import PCA, IncrementalPCA
from spmdlearn.ensemble import RandomForestClassifier, RandomForestRegressor
from spmdlearn.linear_model import (
    IncrementalLinearRegression,
    LinearRegression,
    LogisticRegression,
    Ridge,
)
from spmdlearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors
from spmdlearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from spmdlearn_conformance import assert_all_ranks, assert_raises_on_all_ranks, local_rows, random_cuts

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]

COLUMNS = ["height", "weight", "age", "income"]

# name: (spmdlearn factory, scikit-learn factory or None, target kind, method for new rows)
ESTIMATORS = {
    "BasicStatistics": (BasicStatistics, None, None, None),
    "IncrementalBasicStatistics": (IncrementalBasicStatistics, None, None, None),
    "EmpiricalCovariance": (EmpiricalCovariance, skcov.EmpiricalCovariance, None, "mahalanobis"),
    "IncrementalEmpiricalCovariance": (IncrementalEmpiricalCovariance, skcov.EmpiricalCovariance,
                                       None, "mahalanobis"),
    "LinearRegression": (LinearRegression, sklm.LinearRegression, "real", "predict"),
    "IncrementalLinearRegression": (IncrementalLinearRegression, sklm.LinearRegression, "real",
                                    "predict"),
    "Ridge": (Ridge, sklm.Ridge, "real", "predict"),
    "LogisticRegression": (LogisticRegression, sklm.LogisticRegression, "class", "predict"),
    "PCA": (lambda: PCA(n_components=2), lambda: skd.PCA(n_components=2), None, "transform"),
    "IncrementalPCA": (lambda: IncrementalPCA(n_components=2),
                       lambda: skd.IncrementalPCA(n_components=2), None, "transform"),
    "KMeans": (lambda: KMeans(3, n_init=1, random_state=0),
               lambda: skc.KMeans(3, n_init=1, random_state=0), None, "transform"),
    "DBSCAN": (lambda: DBSCAN(eps=1.0, min_samples=3), lambda: skc.DBSCAN(eps=1.0, min_samples=3),
               None, None),
    "KNeighborsClassifier": (lambda: KNeighborsClassifier(3),
                             lambda: skn.KNeighborsClassifier(3), "class", "predict"),
    "KNeighborsRegressor": (lambda: KNeighborsRegressor(3), lambda: skn.KNeighborsRegressor(3),
                            "real", "predict"),
    "NearestNeighbors": (lambda: NearestNeighbors(n_neighbors=3),
                         lambda: skn.NearestNeighbors(n_neighbors=3), None, "kneighbors"),
    "RandomForestClassifier": (lambda: RandomForestClassifier(3, max_depth=3, random_state=0),
                               lambda: ske.RandomForestClassifier(3, max_depth=3), "class",
                               "predict"),
    "RandomForestRegressor": (lambda: RandomForestRegressor(3, max_depth=3, random_state=0),
                              lambda: ske.RandomForestRegressor(3, max_depth=3), "real", "predict"),
    "StandardScaler": (StandardScaler, skp.StandardScaler, None, "transform"),
    "MinMaxScaler": (MinMaxScaler, skp.MinMaxScaler, None, "transform"),
    "MaxAbsScaler": (MaxAbsScaler, skp.MaxAbsScaler, None, "transform"),
}
SERVED_AFTER_GATHER = {"DBSCAN", "KNeighborsClassifier", "KNeighborsRegressor", "NearestNeighbors"}


def _data(seed=0, n=60):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, len(COLUMNS))), columns=COLUMNS)
    targets = {"real": X.to_numpy() @ np.arange(1.0, 5.0) + rng.normal(size=n),
               "class": (X["height"] > 0).astype(int).to_numpy() + (X["age"] > 0.5)}
    return X, targets


def _fit(est, X, y):
    return est.fit(X) if y is None else est.fit(X, y)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_feature_names_as_sklearn(comm, name):
    ours_factory, sk_factory, target, method = ESTIMATORS[name]
    X, targets = _data(1)
    y = None if target is None else targets[target]
    cuts = random_cuts(len(X), comm.size, 3)  # seed 3: the first rank is empty
    X_local = X.iloc[cuts[comm.rank]:cuts[comm.rank + 1]]
    y_local = None if y is None else local_rows(cuts, comm.rank, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = _fit(ours_factory(), X_local, y_local)
    name_warnings = [w for w in caught if "feature names" in str(w.message)]
    assert_all_ranks(comm, not name_warnings, f"fit warned: {[str(w.message) for w in name_warnings]}")
    assert_all_ranks(comm, list(getattr(est, "feature_names_in_", [])) == COLUMNS,
                     f"feature_names_in_ = {getattr(est, 'feature_names_in_', None)}")
    sk = None if sk_factory is None else _fit(sk_factory(), X, y)

    if method is not None:
        # Matching DataFrame: silent. NumPy array: scikit-learn's warning. Renamed: its error.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            getattr(est, method)(X_local)
        assert_all_ranks(comm, not [w for w in caught if "feature names" in str(w.message)],
                         "a matching DataFrame warned")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            getattr(est, method)(X_local.to_numpy())
        assert_all_ranks(comm, any("does not have valid feature names" in str(w.message)
                                   for w in caught), "no warning for an array without names")
        renamed = X_local.rename(columns={"age": "years"})
        assert_raises_on_all_ranks(comm, ValueError, lambda: getattr(est, method)(renamed),
                                   match="feature names should match")

    has_out = hasattr(type(est), "get_feature_names_out")
    if sk is not None:
        assert_all_ranks(comm, has_out == hasattr(type(sk), "get_feature_names_out"),
                         "get_feature_names_out where scikit-learn has it")
        if has_out:
            assert_all_ranks(comm, list(est.get_feature_names_out()) == list(sk.get_feature_names_out()),
                             f"{est.get_feature_names_out()} vs {sk.get_feature_names_out()}")
        if name in SERVED_AFTER_GATHER:
            est.gather_fit_data()
        served = est.to_sklearn()
        assert_all_ranks(comm, list(served.feature_names_in_) == COLUMNS, "to_sklearn keeps names")
        if method is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                getattr(served, method)(X.iloc[:5])
            assert_all_ranks(comm, not [w for w in caught if "feature names" in str(w.message)],
                             "the served model warned on the matching DataFrame")


@pytest.mark.parametrize("name", ["StandardScaler", "MinMaxScaler", "MaxAbsScaler", "PCA",
                                  "IncrementalPCA", "KMeans"])
def test_set_output_pandas_names_columns(comm, name):
    ours_factory, sk_factory, _, _ = ESTIMATORS[name]
    X, _ = _data(2)
    cuts = random_cuts(len(X), comm.size, 6)
    X_local = X.iloc[cuts[comm.rank]:cuts[comm.rank + 1]]
    out = ours_factory().set_output(transform="pandas").fit(X_local).transform(X_local)
    ref = sk_factory().set_output(transform="pandas").fit(X).transform(X.iloc[:3])
    assert_all_ranks(comm, isinstance(out, pd.DataFrame) and list(out.columns) == list(ref.columns),
                     f"columns {getattr(out, 'columns', None)} vs {list(ref.columns)}")
    assert_all_ranks(comm, list(out.index) == list(X_local.index), "index kept")
    fitted = ours_factory().set_output(transform="pandas").fit_transform(X_local)
    assert_all_ranks(comm, list(fitted.columns) == list(ref.columns), "fit_transform's columns")


@pytest.mark.parametrize("name", ["IncrementalPCA", "StandardScaler", "IncrementalLinearRegression",
                                  "IncrementalBasicStatistics"])
def test_partial_fit_batches_keep_names(comm, name):
    ours_factory, _, target, _ = ESTIMATORS[name]
    X, targets = _data(3)
    y = None if target is None else targets[target]
    est = ours_factory()
    # Rank 0 folds two DataFrame batches, the last rank none at all (when there are two or more).
    if comm.rank == 0 or comm.rank < comm.size - 1:
        for lo, hi in ((0, 20), (20, 35)):
            batch = X.iloc[lo:hi]
            if y is None:
                est.partial_fit(batch)
            else:
                est.partial_fit(batch, y[lo:hi])
    est.finalize_fit()
    assert_all_ranks(comm, list(est.feature_names_in_) == COLUMNS,
                     f"feature_names_in_ = {getattr(est, 'feature_names_in_', None)}")
    if name != "IncrementalBasicStatistics":
        assert_all_ranks(comm, list(est.to_sklearn().feature_names_in_) == COLUMNS, "to_sklearn")
    # A later batch with other names is refused, on this rank, as scikit-learn does.
    if comm.rank == 0:
        with pytest.raises(ValueError, match="feature names should match"):
            renamed = X.iloc[:5].rename(columns={"age": "years"})
            est.partial_fit(renamed) if y is None else est.partial_fit(renamed, y[:5])


def _mismatch_cases(comm, X):
    last = comm.size - 1
    permuted = X[COLUMNS[::-1]] if comm.rank == last else X
    partial = X if comm.rank == 0 else X.to_numpy()
    renamed = X.rename(columns={"age": "years"}) if comm.rank == last else X
    return [(permuted, "different order", f"rank {last}: \\['income', 'age'"),
            (partial, "some ranks and not on others", "no column names"),
            (renamed, "differ across ranks", "years")]


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_columns_disagreeing_across_ranks_raise_everywhere(comm, name):
    if comm.size == 1:
        return  # one rank cannot disagree with itself (a split communicator may have one rank)
    ours_factory, _, target, _ = ESTIMATORS[name]
    X, targets = _data(4)
    y = None if target is None else targets[target]
    cuts = random_cuts(len(X), comm.size, 9)  # uneven, the first rank empty
    X_local = X.iloc[cuts[comm.rank]:cuts[comm.rank + 1]]
    y_local = None if y is None else local_rows(cuts, comm.rank, y)
    for X_bad, what, detail in _mismatch_cases(comm, X_local):
        assert_raises_on_all_ranks(comm, ValueError, lambda: _fit(ours_factory(), X_bad, y_local),
                                   match=f"feature names must agree across ranks: .*{what}.*{detail}")


def test_finalize_fit_names_the_ranks_that_disagree(comm):
    if comm.size < 3:
        return  # needs a rank without batches and two that disagree
    X, _ = _data(5)
    est = IncrementalPCA(n_components=2)
    if comm.rank == comm.size - 1:
        est.partial_fit(X.iloc[:10][COLUMNS[::-1]])  # the last rank's columns are permuted
    elif comm.rank > 0:  # rank 0 folds no batch: it takes no part in the names
        est.partial_fit(X.iloc[:10])
    last = comm.size - 1
    assert_raises_on_all_ranks(comm, ValueError, est.finalize_fit,
                               match=rf"different order .*rank {last}: \['income'")
    assert_raises_on_all_ranks(comm, ValueError, est.finalize_fit, match=r"^(?!.*rank 0)")
