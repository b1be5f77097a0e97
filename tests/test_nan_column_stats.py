"""The NaN-aware column statistics (NAN_COLUMN_STATS): the contract's laws, in one process."""

import numpy as np
import pytest

from spmdlearn.contract import simulate
from spmdlearn.reference import (NAN_COLUMN_STATS, column_stats_local, nan_column_stats_combine,
                                 nan_column_stats_identity, nan_column_stats_local, with_missing)

pytestmark = pytest.mark.serial


def _data(seed, n=40, d=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * 3 + 100
    X[rng.random(X.shape) < 0.3] = np.nan
    X[:, -1] = np.nan
    return X, rng.uniform(0.1, 2.0, n)


def _same(a, b, rtol=1e-12):
    for name, x, y in zip(a._fields, a, b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("weighted", [False, True])
def test_partition_invariance_with_empty_shards(seed, weighted):
    X, w = _data(seed)
    w = w if weighted else None
    whole = nan_column_stats_local(X, w)
    cuts = [0, 0, 7, 7, 25, 40]
    shards = [(X[a:b], None if w is None else w[a:b]) for a, b in zip(cuts, cuts[1:])]
    _same(simulate(NAN_COLUMN_STATS, shards), whole)
    # the statistics are those of each column's non-NaN values
    for j in range(X.shape[1] - 1):
        keep = ~np.isnan(X[:, j])
        wj = np.ones(keep.sum()) if w is None else w[keep]
        mean = np.average(X[keep, j], weights=wj)
        np.testing.assert_allclose(whole.mean[j], mean, rtol=1e-12)
        np.testing.assert_allclose(whole.m2[j], wj @ (X[keep, j] - mean) ** 2, rtol=1e-9)
        assert whole.min[j] == X[keep, j].min() and whole.max[j] == X[keep, j].max()
    assert whole.count[-1] == 0 and whole.weight[-1] == 0
    assert np.isfinite(np.concatenate(whole[1:])).all()  # nothing NaN or infinite in the partial


def test_identity_and_commutativity():
    X, w = _data(9)
    a, b = nan_column_stats_local(X[:15], w[:15]), nan_column_stats_local(X[15:], w[15:])
    e = nan_column_stats_identity(X.shape[1])
    _same(nan_column_stats_combine(a, e), a, 0)
    _same(nan_column_stats_combine(e, a), a, 0)
    _same(nan_column_stats_combine(a, b), nan_column_stats_combine(b, a), 0)


def test_shards_without_nan_merge_as_column_stats():
    # with_missing of the kernel's partial is exact, and merges to the same bits as before
    rng = np.random.default_rng(3)
    X, w = rng.normal(size=(30, 3)) + 5, rng.uniform(0.5, 1.5, 30)
    a, b = column_stats_local(X[:11], w[:11]), column_stats_local(X[11:], w[11:])
    from spmdlearn.reference import column_stats_combine

    plain = column_stats_combine(a, b)
    merged = nan_column_stats_combine(with_missing(a), with_missing(b))
    for name in ("mean", "m2", "min", "max"):
        assert np.array_equal(getattr(merged, name), getattr(plain, name)), name
    assert np.array_equal(merged.weight, np.full(3, plain.weight))
    _same(nan_column_stats_local(X, w), merged, 1e-12)
