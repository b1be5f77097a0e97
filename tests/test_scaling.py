"""The scaled co-moments contract (values near the float64 limit) in one process: its laws
(identity, commutativity, partition invariance) and that its unscaled results are those of
the rows, as an oracle computes them on rows scaled by hand."""

import numpy as np
import pytest

from spmdlearn._scaling import (SCALED_COMOMENTS, scaled_comoments_combine, scaled_identity,
                                unscale_matrix, unscale_vector)
from spmdlearn.contract import pack_partial, simulate


def _rows(big, seed=0, n=60, d=3):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    Y = X @ np.arange(1.0, d + 1) + rng.randn(n)
    X[7, 0] = big
    X[11, 2] = -big / 3
    return X, Y


def _splits(n, seed):
    rng = np.random.RandomState(seed)
    cuts = np.sort(rng.choice(np.arange(n + 1), size=3))
    return [slice(a, b) for a, b in zip([0, *cuts], [*cuts, n])]  # empty shards included


def _unscaled(p):
    return (unscale_vector(p.partial.mean, p.exponent),
            unscale_matrix(p.partial.comoment, p.exponent, p.exponent))


@pytest.mark.parametrize("big", [1.0, 1e150, 1e200, 1e308])
def test_partition_invariance(big):
    X, Y = _rows(big)
    whole = simulate(SCALED_COMOMENTS, [(X, Y, None)])
    mean, comoment = _unscaled(whole)
    for seed in range(4):
        parts = simulate(SCALED_COMOMENTS, [(X[s], Y[s], None) for s in _splits(len(X), seed)])
        m, c = _unscaled(parts)
        assert parts.partial.n_rows == len(X)
        np.testing.assert_allclose(m, mean, rtol=1e-12)
        finite = np.isfinite(comoment)
        assert np.array_equal(np.isfinite(c), finite)
        np.testing.assert_allclose(c[finite], comoment[finite], rtol=1e-9,
                                   atol=1e-12 * np.abs(comoment[finite]).max())


@pytest.mark.parametrize("big", [1e200, 1e308])
def test_matches_rows_scaled_by_hand(big):
    """The oracle divides the two big columns by 2**1024 before taking plain co-moments."""
    X, Y = _rows(big)
    p = simulate(SCALED_COMOMENTS, [(X[s], Y[s], None) for s in _splits(len(X), 1)])
    e = np.array([1024, 0, 1024, 0])
    Z = np.ldexp(np.column_stack([X, Y]), -e)
    mean, C = Z.mean(axis=0), (Z - Z.mean(axis=0)).T @ (Z - Z.mean(axis=0))
    np.testing.assert_allclose(np.ldexp(p.partial.mean, (p.exponent - e).astype(int)), mean,
                               rtol=1e-12, atol=1e-300)
    got = np.ldexp(p.partial.comoment, (p.exponent - e).astype(int)[:, None]
                   + (p.exponent - e).astype(int)[None, :])
    np.testing.assert_allclose(got, C, rtol=1e-9, atol=1e-12 * np.abs(C).max())


@pytest.mark.parametrize("big", [1.0, 1e308])
def test_identity_and_commutativity(big):
    X, Y = _rows(big)
    a = SCALED_COMOMENTS.local(X[:20], Y[:20])
    b = SCALED_COMOMENTS.local(X[20:], Y[20:])
    identity = scaled_identity(3, 1)
    assert np.array_equal(pack_partial(scaled_comoments_combine(identity, a)), pack_partial(a))
    assert np.array_equal(pack_partial(scaled_comoments_combine(a, identity)), pack_partial(a))
    assert np.array_equal(pack_partial(scaled_comoments_combine(a, b)),
                          pack_partial(scaled_comoments_combine(b, a)))


def test_normal_rows_are_not_scaled():
    X, Y = _rows(1.0)
    p = simulate(SCALED_COMOMENTS, [(X[s], Y[s], None) for s in _splits(len(X), 2)])
    assert not p.exponent.any()


def test_merges_that_overflow_are_rescaled():
    """Each shard's co-moments are moderate and unscaled; only their merge passes the limit
    the solvers need (2**600), so the merge is taken at a common scale."""
    a = SCALED_COMOMENTS.local(np.full((2, 1), 1.5e90))
    b = SCALED_COMOMENTS.local(np.full((2, 1), -1.5e90))
    assert not a.exponent.any() and not b.exponent.any()
    merged = scaled_comoments_combine(a, b)
    assert merged.exponent.any() and merged.partial.comoment[0, 0] <= 4
    _, C = _unscaled(merged)
    X = np.array([1.5e90, 1.5e90, -1.5e90, -1.5e90])
    np.testing.assert_allclose(C[0, 0], ((X - X.mean()) ** 2).sum(), rtol=1e-14)
