"""Numeric parameters are accepted and refused as scikit-learn's: NaN is in no interval, and an
open unbounded side refuses infinity (``Interval(Real, 0, None, "left")`` is ``[0, inf)``)."""

import math
import numbers

import numpy as np
import pytest
from sklearn import cluster, decomposition, ensemble, linear_model, neighbors
from sklearn.utils._param_validation import Interval as SkInterval

from spmdlearn._validation import Interval, validate_params
from spmdlearn.cluster import DBSCAN, KMeans
from spmdlearn.decomposition import PCA
from spmdlearn.ensemble import RandomForestClassifier, RandomForestRegressor
from spmdlearn.linear_model import LinearRegression, LogisticRegression, Ridge
from spmdlearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors

pytestmark = pytest.mark.serial

VALUES = [math.nan, -math.inf, -1.0, 0.0, 0.5, 1.0, 2.0, math.inf]


@pytest.mark.parametrize("closed", ["both", "left", "right", "neither"])
@pytest.mark.parametrize("left,right", [(0.0, None), (None, 1.0), (0.0, 1.0), (None, None)])
def test_interval_accepts_as_scikit_learn(left, right, closed):
    ours = Interval(numbers.Real, left, right, closed)
    theirs = SkInterval(numbers.Real, left, right, closed=closed)
    for value in VALUES:
        assert ours.accepts(value) == (value in theirs), (value, str(ours))


PAIRS = [(KMeans, cluster.KMeans), (DBSCAN, cluster.DBSCAN), (PCA, decomposition.PCA),
         (RandomForestClassifier, ensemble.RandomForestClassifier),
         (RandomForestRegressor, ensemble.RandomForestRegressor),
         (LinearRegression, linear_model.LinearRegression), (Ridge, linear_model.Ridge),
         (LogisticRegression, linear_model.LogisticRegression),
         (NearestNeighbors, neighbors.NearestNeighbors),
         (KNeighborsClassifier, neighbors.KNeighborsClassifier),
         (KNeighborsRegressor, neighbors.KNeighborsRegressor)]


def _real_params(cls):
    return [name for name, constraints in cls._parameter_constraints.items()
            if any(isinstance(c, Interval) and issubclass(c.kind, numbers.Real)
                   and not issubclass(c.kind, numbers.Integral) for c in constraints)]


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=lambda c: c.__module__ + c.__name__)
def test_real_parameters_refused_as_scikit_learn(ours, theirs):
    names = _real_params(ours)
    assert names, "no real-valued parameter to check"
    for name in names:
        if name not in theirs().get_params():
            continue
        for value in VALUES:
            try:
                theirs(**{name: value})._validate_params()
                expected = True
            except ValueError:
                expected = False
            try:
                validate_params(ours(**{name: value}))
                got = True
            except ValueError:
                got = False
            assert got == expected, (ours.__name__, name, value, expected)


def test_dbscan_nan_eps_and_radius_inf():
    X = np.random.default_rng(0).standard_normal((8, 2))
    with pytest.raises(ValueError, match="eps"):
        DBSCAN(eps=math.nan).fit(X)
    with pytest.raises(ValueError, match="eps"):
        DBSCAN(eps=math.inf).fit(X)
    dist, ind = NearestNeighbors(radius=math.inf).fit(X).radius_neighbors(X)
    assert all(len(i) == len(X) for i in ind)


@pytest.mark.mpi
@pytest.mark.timeout(60)
@pytest.mark.parametrize("make,fit_y", [
    (lambda v: Ridge(alpha=v), True),          # NaN: silently coef_ = 0 before
    (lambda v: DBSCAN(eps=v), False),          # NaN: silently every row noise before
    (lambda v: KMeans(3, tol=v, n_init=1, random_state=0), False),
    (lambda v: RandomForestClassifier(3, max_features=v, random_state=0), True),
], ids=["Ridge-alpha", "DBSCAN-eps", "KMeans-tol", "RandomForestClassifier-max_features"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_nan_or_inf_parameter_refused_on_every_rank(make, fit_y, value):
    """Uneven shards, the last rank empty (with more than one rank): every rank refuses."""
    from spmdlearn.comm import get_comm
    from spmdlearn_conformance import assert_raises_on_all_ranks

    comm = get_comm()
    X = np.random.default_rng(0).standard_normal((30, 3))
    y = (X[:, 0] > 0).astype(int)
    counts = [30] if comm.size == 1 else [20, 10] + [0] * (comm.size - 2)
    lo = sum(counts[:comm.rank])
    Xl, yl = X[lo:lo + counts[comm.rank]], y[lo:lo + counts[comm.rank]]
    est = make(value)
    assert_raises_on_all_ranks(comm, ValueError,
                               (lambda: est.fit(Xl, yl)) if fit_y else (lambda: est.fit(Xl)),
                               match="parameter")
