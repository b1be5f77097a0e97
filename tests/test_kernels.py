"""Property tests: every reference kernel against its plain definition, on generated inputs.

The conformance suite compares a backend's kernels with these reference kernels; these tests
pin the reference kernels themselves to what they are documented to compute.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit, logsumexp

from spmdlearn import reference as ref

pytestmark = pytest.mark.serial


@st.composite
def matrices(draw, min_rows=0, max_rows=30, max_cols=5):
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(1, max_cols))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 5, d)
    return X, rng


@given(matrices())
def test_lloyd_local_is_nearest_center_and_cluster_sums(data):
    X, rng = data
    C = rng.normal(size=(4, X.shape[1]))
    w = rng.uniform(0.5, 2, len(X))
    labels, p = ref.lloyd_local(X, w, C, np.full(len(X), -1, np.int32))
    d = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    assert np.all(d[np.arange(len(X)), labels] <= d.min(axis=1) + 1e-9)
    for k in range(4):
        assert np.allclose(p.sums[k], (X[labels == k] * w[labels == k, None]).sum(0))
        assert np.isclose(p.weights[k], w[labels == k].sum())
    assert np.isclose(p.inertia, (w * d[np.arange(len(X)), labels]).sum(), atol=1e-8)
    assert p.n_changed == len(X)
    assert np.isclose(ref.kmeans_inertia(X, w, C, labels), p.inertia, atol=1e-8)


@given(matrices(min_rows=0), st.integers(2, 4), st.booleans())
def test_logistic_gradient_matches_finite_differences(data, n_classes, with_hessian):
    X, rng = data
    d = X.shape[1]
    w = rng.uniform(0.5, 2, len(X))
    if n_classes == 2:
        target = rng.integers(0, 2, len(X)).astype(float)
        coef, intercept = rng.normal(size=d), float(rng.normal())
        raw = X @ coef + intercept
        loss = (w * (np.logaddexp(0, raw) - target * raw)).sum()
    else:
        target = rng.integers(0, n_classes, len(X))
        coef, intercept = rng.normal(size=(n_classes, d)), rng.normal(size=n_classes)
        raw = X @ coef.T + intercept
        loss = (w * (logsumexp(raw, axis=1) - raw[np.arange(len(X)), target])).sum() \
            if len(X) else 0.0
    got_loss, g_coef, g_int, hess = ref.logistic_loss_grad(X, target, w, coef, intercept,
                                                           n_classes, with_hessian)
    assert np.isclose(got_loss, loss)
    h = 1e-6
    flat = np.ravel(coef)
    for i in range(min(flat.size, 4)):  # central differences on a few coordinates
        e = np.zeros_like(flat)
        e[i] = h
        up = ref.logistic_loss_grad(X, target, w, (flat + e).reshape(coef.shape), intercept,
                                    n_classes)[0]
        down = ref.logistic_loss_grad(X, target, w, (flat - e).reshape(coef.shape), intercept,
                                      n_classes)[0]
        assert np.isclose((up - down) / (2 * h), np.ravel(g_coef)[i], rtol=1e-4, atol=1e-5)
    if with_hessian and n_classes == 2:
        p = expit(X @ coef + intercept)
        assert np.allclose(hess, w * p * (1 - p))
    if with_hessian:
        v = np.ones_like(coef)
        h_coef, _ = ref.logistic_hessp(X, hess, v, np.zeros_like(np.atleast_1d(intercept))
                                       if n_classes > 2 else 0.0, n_classes)
        up = ref.logistic_loss_grad(X, target, w, coef + h * v, intercept, n_classes)[1]
        down = ref.logistic_loss_grad(X, target, w, coef - h * v, intercept, n_classes)[1]
        assert np.allclose((up - down) / (2 * h), h_coef, rtol=1e-4, atol=1e-5)


@given(matrices(min_rows=0), st.integers(2, 6))
def test_tree_histograms_are_sums_per_node_feature_bin(data, n_bins):
    X, rng = data
    n, d = X.shape
    binned = rng.integers(0, n_bins, size=(n, d)).astype(np.uint16)
    node_pos = rng.integers(-1, 3, n)
    stats = rng.random((n, 2))
    hist = ref.node_histograms(binned, node_pos, stats, 3, n_bins)
    expected = np.zeros_like(hist)
    for i in range(n):
        if node_pos[i] >= 0:
            for f in range(d):
                expected[node_pos[i], f, binned[i, f]] += stats[i]
    assert np.allclose(hist, expected)


@given(matrices(min_rows=1))
def test_tree_apply_follows_thresholds(data):
    X, _ = data
    feature = np.array([0, X.shape[1] - 1, -1, -1, -1])
    threshold = np.array([0.0, 0.5, np.nan, np.nan, np.nan])
    left, right = np.array([1, 3, -1, -1, -1]), np.array([2, 4, -1, -1, -1])
    leaves = ref.tree_apply(X, feature, threshold, left, right)
    expected = np.where(X[:, 0] <= 0, np.where(X[:, -1] <= 0.5, 3, 4), 2)
    assert np.array_equal(leaves, expected)


@given(st.integers(0, 2**31 - 1), st.floats(0.2, 2.0))
def test_counter_draws_depend_on_the_key_only(seed, lam):
    rows = np.arange(500)
    whole = ref.counter_uniform(seed, 2, rows)
    parts = np.concatenate([ref.counter_uniform(seed, 2, rows[:123]),
                            ref.counter_uniform(seed, 2, rows[123:])])
    assert np.array_equal(whole, parts)  # the same draw wherever a row lives
    assert np.all((whole >= 0) & (whole < 1))
    counts = ref.poisson_counts(ref.counter_uniform(seed, 3, np.arange(20000)), lam)
    assert abs(counts.mean() - lam) < 0.05 and abs(counts.var() - lam) < 0.1


@given(matrices(min_rows=1))
def test_mahalanobis_and_linear_predict(data):
    X, rng = data
    d = X.shape[1]
    A = rng.normal(size=(d, d))
    P = A @ A.T + np.eye(d)
    loc = rng.normal(size=d)
    expected = np.array([(x - loc) @ P @ (x - loc) for x in X])
    assert np.allclose(ref.mahalanobis(X, loc, P), expected)
    coef, intercept = rng.normal(size=(2, d)), rng.normal(size=2)
    assert np.allclose(ref.linear_predict(X, coef, intercept), X @ coef.T + intercept)
