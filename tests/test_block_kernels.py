"""Property tests of the fused per-block kernels against their plain definitions (one process).

Inputs are built to hit the cases that break fused kernels: equal distances (values on a grid,
duplicate rows and candidates), queries that are candidates, distances exactly ``eps``, empty
and one-row blocks.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from spmdlearn import reference as ref

pytestmark = pytest.mark.serial

_METRIC = st.sampled_from(["euclidean", "manhattan", "chebyshev", "minkowski", "cosine"])


def _plain_distances(X, Y, metric, p):
    if not len(X) or not len(Y):
        return np.zeros((len(X), len(Y)))
    diff = X[:, None, :] - Y[None]
    if metric == "euclidean":
        return np.sqrt((diff ** 2).sum(-1))
    if metric == "manhattan":
        return np.abs(diff).sum(-1)
    if metric == "chebyshev":
        return np.abs(diff).max(-1)
    if metric == "minkowski":
        return (np.abs(diff) ** p).sum(-1) ** (1 / p)
    norms = np.linalg.norm(X, axis=1)[:, None] * np.linalg.norm(Y, axis=1)[None]
    return 1 - (X @ Y.T) / norms


@st.composite
def block_pairs(draw):
    """Queries and candidates with duplicate rows and values on a grid (many equal distances)."""
    n_x = draw(st.sampled_from([0, 1, 2, 7, 12]))
    n_y = draw(st.sampled_from([0, 1, 3, 9, 15]))
    d = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    Y = np.round(rng.normal(size=(n_y, d)) * 2, 0) + 0.5
    X = rng.normal(size=(n_x, d)) * 2
    if draw(st.booleans()):
        X = np.round(X, 0) + 0.5
    if n_y and n_x and draw(st.booleans()):
        X[: n_x // 2 + 1] = Y[rng.integers(0, n_y, n_x // 2 + 1)]  # queries on candidates
    if n_y > 1:
        Y[-1] = Y[0]  # a duplicate candidate
    return X, Y, rng


@given(block_pairs(), _METRIC, st.integers(1, 6), st.booleans())
def test_knn_merge_keeps_the_k_smallest_pairs_ties_by_lower_index(data, metric, k, self_rows):
    X, Y, rng = data
    p = 3.0 if metric == "minkowski" else None
    n = len(X)
    y_index = rng.permutation(100)[: len(Y)].astype(np.int64)
    # a running best from an earlier block, sorted by (distance, index), unfilled slots last
    filled = int(rng.integers(0, k + 1))
    best_d = np.full((n, k), np.inf)
    best_i = np.full((n, k), -1, np.int64)
    best_d[:, :filled] = np.sort(np.round(rng.random((n, filled)) * 6, 0), axis=1)
    best_i[:, :filled] = 200 + np.arange(filled)
    x_index = y_index[rng.integers(0, len(Y), n)] if self_rows and len(Y) else None
    got_d, got_i = ref.knn_merge(X, Y, y_index, best_d, best_i, metric, p, x_index)
    assert got_d.shape == (n, k) and got_i.shape == (n, k) and got_i.dtype == np.int64
    name, kw = ref.scipy_metric(metric, p)
    dist = cdist(X, Y, name, **kw) if n and len(Y) else np.zeros((n, len(Y)))
    assert np.allclose(dist, _plain_distances(X, Y, metric, p), atol=1e-9)
    for r in range(n):
        pairs = [(best_d[r, c], best_i[r, c]) for c in range(k)]
        pairs += [(dist[r, c], y_index[c]) for c in range(len(Y))
                  if x_index is None or y_index[c] != x_index[r]]
        expected = sorted(pairs)[:k]
        assert [i for _, i in expected] == list(got_i[r])
        assert np.array_equal([d for d, _ in expected], got_d[r])


@given(st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_knn_merge_ties_go_to_the_lower_global_index(k, seed):
    rng = np.random.default_rng(seed)
    Y = np.zeros((8, 2))  # every candidate at the same distance
    y_index = rng.permutation(50)[:8].astype(np.int64)
    X = np.ones((3, 2))
    d, i = ref.knn_merge(X, Y, y_index, np.full((3, k), np.inf), np.full((3, k), -1, np.int64))
    assert np.array_equal(i, np.tile(np.sort(y_index)[:k], (3, 1)))
    assert np.allclose(d, np.sqrt(2))


@given(block_pairs(), _METRIC)
def test_knn_merge_over_blocks_in_any_order_equals_one_block(data, metric):
    X, Y, rng = data
    p = 3.0 if metric == "minkowski" else None
    k = 3
    y_index = np.arange(len(Y), dtype=np.int64)
    init = np.full((len(X), k), np.inf), np.full((len(X), k), -1, np.int64)
    whole = ref.knn_merge(X, Y, y_index, *init, metric, p)
    cut = int(rng.integers(0, len(Y) + 1))
    part = ref.knn_merge(X, Y[cut:], y_index[cut:], *init, metric, p)
    part = ref.knn_merge(X, Y[:cut], y_index[:cut], *part, metric, p)
    assert np.array_equal(whole[1], part[1]) and np.array_equal(whole[0], part[0])


@given(block_pairs(), st.floats(0.0, 3.0), _METRIC)
def test_radius_kernels_match_their_definitions(data, eps, metric):
    X, Y, rng = data
    if rng.integers(2):
        eps = float(np.round(eps, 0))  # grid data: many distances exactly eps
    p = 3.0 if metric == "minkowski" else None
    name, kw = ref.scipy_metric(metric, p)
    exact = cdist(X, Y, name, **kw) if len(X) and len(Y) else np.zeros((len(X), len(Y)))
    assert np.allclose(exact, _plain_distances(X, Y, metric, p), atol=1e-9)
    within = exact <= eps
    w = rng.normal(size=len(Y))
    counts = ref.radius_counts(X, Y, w, eps, metric, p)
    assert counts.shape == (len(X),) and np.allclose(counts, within @ w)
    labels = rng.integers(0, 20, len(Y)).astype(np.int64)
    current = rng.integers(0, 25, len(X)).astype(np.int64)
    expected = np.array([min([current[r]] + list(labels[within[r]])) for r in range(len(X))],
                        np.int64)
    got = ref.radius_min_label(X, Y, labels, current, eps, metric, p)
    assert got.dtype == np.int64 and np.array_equal(got, expected)
    y_index = 10 + np.arange(len(Y), dtype=np.int64)
    x_index = y_index[rng.integers(0, len(Y), len(X))] if len(Y) and rng.integers(2) else None
    indptr, ind, d = ref.radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index)
    assert indptr.shape == (len(X) + 1,) and indptr[0] == 0 and indptr[-1] == len(ind) == len(d)
    for r in range(len(X)):
        cols = [c for c in range(len(Y)) if within[r, c] and
                (x_index is None or y_index[c] != x_index[r])]
        assert list(ind[indptr[r]:indptr[r + 1]]) == list(y_index[cols])
        assert np.array_equal(d[indptr[r]:indptr[r + 1]], exact[r, cols])
