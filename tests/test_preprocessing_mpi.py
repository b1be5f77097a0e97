"""Scalers: scikit-learn's statistics of all ranks' rows; usable in a Pipeline under mpiexec."""

import numpy as np
import pytest
from sklearn import preprocessing as skp
from sklearn.pipeline import make_pipeline

from spmdlearn.linear_model import Ridge
from spmdlearn.metrics import r2_score
from spmdlearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    make_data,
    random_cuts,
)

pytestmark = pytest.mark.mpi

SCALERS = [
    (lambda: StandardScaler(), lambda: skp.StandardScaler(), True),
    (lambda: StandardScaler(with_mean=False), lambda: skp.StandardScaler(with_mean=False), True),
    (lambda: StandardScaler(with_std=False), lambda: skp.StandardScaler(with_std=False), True),
    (lambda: MinMaxScaler((-1, 2), clip=True), lambda: skp.MinMaxScaler((-1, 2), clip=True), False),
    (lambda: MaxAbsScaler(), lambda: skp.MaxAbsScaler(), False),
]


@pytest.mark.parametrize("index, weighted", [(i, w) for i, s in enumerate(SCALERS)
                                              for w in ([False, True] if s[2] else [False])])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scalers_agree_with_sklearn(comm, index, weighted, dtype):
    ours, theirs, _ = SCALERS[index]
    X, _ = make_data(8, 80, 4, dtype=dtype, offset=100.0)
    X[:, 1] = 3.0  # a constant column
    w = np.random.default_rng(8).uniform(0.1, 2.0, 80) if weighted else None
    cuts = random_cuts(80, comm.size, 8)
    X_local, w_local = local_rows(cuts, comm.rank, X, w)
    est = ours().fit(X_local, sample_weight=w_local) if weighted else ours().fit(X_local)
    ref = theirs().fit(X, sample_weight=w) if weighted else theirs().fit(X)
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    for name in est._model_attributes:
        mine, expected = getattr(est, name), getattr(ref, name)
        if expected is None:
            assert_all_ranks(comm, mine is None, f"{name} is None")
            continue
        assert_allclose_all_ranks(comm, np.asarray(mine, float), np.asarray(expected, float),
                                  rtol=rtol, what=name)
    lo, hi = cuts[comm.rank], cuts[comm.rank + 1]
    Z = est.transform(X_local)
    assert_allclose_all_ranks(comm, Z, ref.transform(X)[lo:hi], rtol=rtol * 10, what="transform")
    assert_all_ranks(comm, Z.dtype == dtype, "transform keeps the dtype")
    assert_allclose_all_ranks(comm, est.inverse_transform(Z), X_local, rtol=rtol * 10,
                              what="inverse_transform")


def test_partial_fit_then_finalize(comm):
    X, _ = make_data(9, 60, 3)
    cuts = random_cuts(60, comm.size, 9)
    X_local = local_rows(cuts, comm.rank, X)
    est = StandardScaler()
    for lo in range(0, len(X_local), 4):
        est.partial_fit(X_local[lo:lo + 4])
    est.finalize_fit()
    ref = skp.StandardScaler().fit(X)
    assert_allclose_all_ranks(comm, est.scale_, ref.scale_, rtol=1e-9, what="scale_")
    assert_all_ranks(comm, est.n_samples_seen_ == 60, "n_samples_seen_ counts all ranks")


def test_pipeline_under_mpiexec(comm):
    X, y = make_data(10, 120, 5, 1, offset=50.0)
    cuts = random_cuts(120, comm.size, 10)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=3.0)).fit(X_local, y_local)
    ref = make_pipeline(skp.StandardScaler(), __import__("sklearn.linear_model", fromlist=["Ridge"])
                        .Ridge(alpha=3.0)).fit(X, y)
    assert_allclose_all_ranks(comm, pipe[-1].coef_, ref[-1].coef_, rtol=1e-7, what="coef_")
    score = r2_score(y_local, pipe.predict(X_local))
    assert_allclose_all_ranks(comm, score, ref.score(X, y), rtol=1e-9, what="pipeline score")


def test_min_max_bad_range_is_collective(comm):
    X, _ = make_data(11, 8 * comm.size, 2)
    X_local = X[8 * comm.rank: 8 * (comm.rank + 1)]
    assert_raises_on_all_ranks(comm, ValueError, lambda: MinMaxScaler((1, 0)).fit(X_local),
                               match="Minimum of desired feature range must be smaller")
