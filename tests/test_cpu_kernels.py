"""The cpu backend's kernels against the reference, one process, on adversarial shards.

Each kernel of ``spmdlearn_cpu`` is called directly and compared with its reference definition:
float32 and float64, empty and one-row shards, shards larger than one block (so that the
blocked merges run), columns far from the origin, constant columns, Fortran and strided
layouts, zero and uneven weights, ties in k-means assignments and values on tree thresholds.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spmdlearn import reference as ref

pytest.importorskip("numba")
from spmdlearn_cpu import _covariance, _forest, _kmeans, _linear, _logistic, _moments, _pca  # noqa: E402
from spmdlearn_cpu import _splits  # noqa: E402
from spmdlearn_cpu._blocks import BLAS_BYTES, block_rows  # noqa: E402

pytestmark = pytest.mark.serial

#: Relative tolerance per dtype, on the scale of each field (the conformance suite's).
RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}


def _close(actual, expected, rtol, what="", floor=0.0):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    finite = np.isfinite(expected)
    assert np.array_equal(finite, np.isfinite(actual)), what
    assert np.array_equal(actual[~finite], expected[~finite], equal_nan=True), what
    scale = max(float(np.max(np.abs(expected[finite]), initial=0.0)), floor) or 1.0
    err = float(np.max(np.abs(actual[finite] - expected[finite]), initial=0.0))
    assert err <= rtol * scale, f"{what}: {err:.3g} > {rtol:g} x {scale:.3g}"


def _same_partial(a, b, rtol, floor=0.0):
    assert type(a) is type(b)
    for name, x, y in zip(a._fields, a, b):
        _close(x, y, rtol, name, floor)


def _noise_floor(X):
    """The rounding noise of any exact centered sum of squares of ``X``: ``n eps max|X|^2``.
    A naive sum of squares errs by far more far from the origin, so this floor hides no fault
    (it only spares the reference's own noise on constant columns)."""
    return len(X) * np.finfo(np.float64).eps * float(np.max(np.abs(X), initial=0.0)) ** 2


@st.composite
def shards(draw, max_features=6):
    """A shard that breaks kernels: any size up to several blocks, far offsets, constant
    columns, layouts, dtypes, weights with zeros."""
    dtype = np.dtype(draw(st.sampled_from([np.float64, np.float32])))
    d = draw(st.integers(1, max_features))
    n = draw(st.sampled_from([0, 1, 2, 17, block_rows(d) + 3, 3 * block_rows(d) + 1]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    offset = draw(st.sampled_from([0.0, 1e3, 1e8] if dtype == np.float64 else [0.0, 1e2]))
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, d) + offset
    if n and draw(st.booleans()):
        X[:, rng.integers(d)] = X[0, 0]  # a constant column
    if n > 3 and draw(st.booleans()):
        X[n // 2:] = X[: n - n // 2]  # duplicate rows: ties everywhere
    X = X.astype(dtype)
    layout = draw(st.sampled_from(["C", "F", "view"]))
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "view":
        wide = np.zeros((n, 2 * d), dtype=dtype)
        wide[:, 1::2] = X
        X = wide[:, 1::2]
    w = None
    if draw(st.booleans()):
        w = rng.uniform(0, 2, n)
        w[rng.random(n) < 0.2] = 0.0
        w = w.astype(draw(st.sampled_from([np.float64, np.float32])))
    return X, w, rng


@given(shards())
def test_moments_and_column_stats(shard):
    X, w, _ = shard
    rtol = RTOL[X.dtype]
    floor = _noise_floor(X) * (1 if w is None else 4)
    _same_partial(_moments.moments_local(X, w), ref.moments_local(X, w), rtol, floor)
    _same_partial(_moments.column_stats_local(X, w), ref.column_stats_local(X, w), rtol, floor)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [1, 7, 20, 50, 65])
def test_flat_moments_equal_the_row_loop(monkeypatch, dtype, d):
    """C-ordered unweighted shards take the flat, vectorised kernel (chunks of a multiple of
    ``d`` values, an odd or even count of them, rows after the last whole chunk), which gives
    the row loop's moments up to rounding, equal extremes (NaN passed over as the row loop
    passes over it; a signed zero may differ in sign, as NumPy's may), and whose non-finite
    sums stay non-finite."""
    rng = np.random.default_rng(d)
    block = block_rows(d)
    lanes = _moments._lanes(d)
    assert lanes % d == 0 and lanes % 8 == 0
    for n in (1, 3, lanes // d + 1, 2 * lanes // d + 1, block - 1, 2 * block + 5):
        X = (rng.normal(size=(n, d)) * rng.uniform(0.1, 10, d) + 50.0).astype(dtype)
        if n > 2:
            X[n // 2, 0] = np.nan
            X[n - 1, d - 1] = np.inf
        if n > block:  # the second block's first row far out: that block takes a second pass
            X[block, d // 2] = 1e6
        expected = _moments._column_moments(X, np.zeros(0), _moments._UNWEIGHTED, block)
        got = _moments._column_moments_flat(X, block, lanes)
        for name, a, b in zip(["weight", "mean", "m2", "min", "max"], got, expected):
            if name in ("min", "max"):
                assert np.array_equal(a, b), (n, name)
            else:
                _close(a, b, 1e-12, f"{n} {name}", _noise_floor(X[np.isfinite(X).all(axis=1)]))
    # one pass about the first row where that cancels little (constant columns exactly 0),
    # a second pass about the mean where it would cancel more than SHIFT_RATIO allows
    far = np.full((block, d), 7.0, dtype=dtype)
    far[:, 0] = rng.normal(size=block)
    for first, one_pass in ((0.5, True), (100.0, False)):
        far[0, 0] = first
        center, residual, *got, served = _moments._flat_block(
            far.reshape(-1), d, lanes, np.empty(lanes), np.empty(lanes), np.empty(lanes),
            np.empty((2, lanes)), np.empty((2, lanes)))
        assert served == one_pass, first
        got = [center + residual] + got
        expected = ref.moments_local(far)
        _close(got[0], expected.mean, RTOL[np.dtype(dtype)], f"mean, first row {first}")
        _close(got[1], expected.m2, RTOL[np.dtype(dtype)], f"m2, first row {first}")
        assert np.all(got[1][1:] == 0.0)
    # the partial's entry point takes the flat kernel for these shards, the row loop otherwise
    calls = []
    monkeypatch.setattr(_moments, "_column_moments", lambda *a: calls.append(a) or 1 / 0)
    _moments.moments_local(np.ascontiguousarray(X), None)
    _moments.column_stats_local(np.ascontiguousarray(X), None)
    assert calls == []
    with pytest.raises(ZeroDivisionError):
        _moments.moments_local(np.asfortranarray(X) if d > 1 else X[::2], None)


@pytest.mark.parametrize("layout", ["C (flat kernel)", "F (row loop)", "frequency weights",
                                    "scaled rows"])
def test_moments_of_many_short_blocks_far_from_the_origin_keep_their_digits(layout):
    """Hundreds of columns make blocks of a few dozen rows; with columns 1e8 from the origin,
    each block's mean as an absolute value holds about 1e-8 of error, which the merge's squared
    differences of means turn into a relative error of the variance above the 1e-9 that
    BasicStatistics documents. Blocks' means are kept about the first block's, so the variance
    keeps the digits of a long double two-pass computation."""
    rng = np.random.default_rng(5)
    d = 300
    n = 20 * block_rows(d) + 17
    X = 1e8 + rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d)
    w = None
    if layout == "F (row loop)":
        X = np.asfortranarray(X)
    elif layout != "C (flat kernel)":
        w = rng.integers(0, 3, n).astype(np.float64)
    L = X.astype(np.longdouble)
    if layout == "scaled rows":  # the moments of the rows times their weights
        L = L * w[:, None]
        p = _moments.moments_local(X, w)
        mean, m2 = p.mean, p.m2
    elif layout == "frequency weights":
        p = _moments.column_stats_local(X, w)
        mean, m2 = p.mean, p.m2
    else:
        p = _moments.moments_local(X, None)
        mean, m2 = p.mean, p.m2
    lw = np.ones(n, np.longdouble) if layout != "frequency weights" else w.astype(np.longdouble)
    exact_mean = (L * lw[:, None]).sum(0) / lw.sum()
    exact_m2 = (lw[:, None] * (L - exact_mean) ** 2).sum(0)
    _close(mean, exact_mean.astype(np.float64), 1e-15, f"{layout} mean")
    _close(m2, exact_m2.astype(np.float64), 1e-12, f"{layout} m2")


def _first_block_light(kind):
    """300 columns 1e8 from the origin (blocks of a few dozen rows) whose first block's
    frequency weights are 0 or negligible, or with a NaN or infinity in one column of a later
    block: the kernels' origin (the first block's mean) then lay at 0, or 1e12 away from the
    values that count, or the later block dropped its residuals in every column."""
    rng = np.random.default_rng(7)
    d = 300
    b = block_rows(d)
    n = 20 * b + 17
    X = 1e8 + rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d)
    w = rng.integers(1, 3, n).astype(np.float64)
    if kind == "first block of zero weights":
        w[:b] = 0.0
    elif kind == "first block of negligible weights, 1e12 away":
        X = rng.standard_normal((n, d)) + np.linspace(0.0, 10.0, n)[:, None]
        X[:b] = 1e12
        w[:b] = 1e-30
    elif kind.startswith("NaN"):
        X[5 * b + 3, 7] = np.nan
        X = np.asfortranarray(X)
        w = None
    else:
        X[5 * b + 3, 7] = np.inf
        X = np.asfortranarray(X)
        w = None
    return X, w


@pytest.mark.parametrize("kind", ["first block of zero weights",
                                  "first block of negligible weights, 1e12 away",
                                  "NaN in one column of a later block (row loop)",
                                  "infinity in one column of a later block (row loop)"])
def test_moments_far_from_the_origin_whatever_the_first_block(kind):
    """The blocks' means are kept about an origin near the values that count, whatever the
    first block holds: the variance keeps the digits of a long double two-pass computation
    (before: relative errors of 4e-9 and 2e-4 with light first blocks, 1.3e-9 in every column
    of a block where one column held a NaN or an infinity)."""
    X, w = _first_block_light(kind)
    ok = np.isfinite(X).all(axis=0)
    L = X[:, ok].astype(np.longdouble)
    lw = np.ones(len(X), np.longdouble) if w is None else w.astype(np.longdouble)
    exact_mean = (L * lw[:, None]).sum(0) / lw.sum()
    exact_m2 = (lw[:, None] * (L - exact_mean) ** 2).sum(0)
    got = _moments.column_stats_local(X, w)
    expected = ref.column_stats_local(X, w)
    for name in ("mean", "m2"):
        bad = ~ok
        assert np.array_equal(getattr(got, name)[bad], getattr(expected, name)[bad],
                              equal_nan=True), name
    # the reference's one weighted sum for the mean errs by a few ulps; the kernels' blocks not
    for mean, m2, rtol in ((got.mean, got.m2, 1e-15), (expected.mean, expected.m2, 1e-13)):
        assert np.all(np.abs(mean[ok] - exact_mean) <= rtol * np.abs(exact_mean)), kind
        assert np.all(np.abs(m2[ok] - exact_m2) <= 1e-12 * exact_m2), kind


@pytest.mark.parametrize("scale", [1e200, 1e-200])
@pytest.mark.parametrize("layout", ["C", "F"])
def test_column_stats_of_huge_and_tiny_frequency_weights(scale, layout):
    """The blocks' merge weighs their squared difference of means by ``Wa Wb / W``: as the
    product ``Wa Wb`` it overflowed for weights of 1e200 (m2 inf, the reference's 2e202) and
    underflowed for 1e-200 (m2 relative error 0.1)."""
    rng = np.random.default_rng(8)
    d = 4
    n = 3 * block_rows(d) + 5
    X = rng.standard_normal((n, d)) + np.linspace(0.0, 3.0, n)[:, None]
    X = np.asfortranarray(X) if layout == "F" else X
    w = rng.uniform(0.5, 2.0, n) * scale
    _same_partial(_moments.column_stats_local(X, w), ref.column_stats_local(X, w), 1e-12)


def _overflowing_squares():
    r = np.sqrt(np.finfo(np.float64).max)
    return np.array([[0.0], [0.51 * r], [0.51 * r], [-0.704 * r]])


def _far_first_rows():
    X = np.random.default_rng(1).standard_normal((1000, 1))
    X[0], X[1] = 1e8, -1e8
    return X


#: Blocks whose sums about their first row lose the mean or overflow: the flat kernel must
#: give the reference's moments there (found by trying to break it).
FLAT_EDGE_CASES = {
    "first rows far out, mean near 0": _far_first_rows,
    "first row overflows against the second": lambda: np.array([[1e308], [-1e308]]),
    "three rows, one overflowing pair": lambda: np.array([[1e308, 1.0], [-1e308, 2.0],
                                                          [5.0, 3.0]]),
    "infinite first row": lambda: np.array([[np.inf], [1.0], [2.0]]),
    "negative infinite first row": lambda: np.array([[-np.inf], [1.0], [2.0]]),
    "squares overflow about the first row only": _overflowing_squares,
    "constant column whose sum overflows": lambda: np.full((3, 1), 1.7e308),
    "no columns": lambda: np.zeros((5, 0)),
}


@pytest.mark.parametrize("case", FLAT_EDGE_CASES)
def test_moments_edge_cases_are_the_references(case):
    X = FLAT_EDGE_CASES[case]()
    with np.errstate(all="ignore"):
        expected = ref.moments_local(X)
        _same_partial(_moments.moments_local(X, None), expected, 1e-9)
        got = _moments.column_stats_local(X, None)
    _close(got.mean, expected.mean, 1e-9, "column_stats mean")
    _close(got.m2, expected.m2, 1e-9, "column_stats m2")
    if X.shape[1]:  # the co-moments, shifted by their blocks' first rows, alike
        for w in (None, np.ones(len(X)), np.arange(1.0, len(X) + 1)):
            with np.errstate(all="ignore"):
                _same_partial(_moments.comoments_local(X, None, w), ref.comoments_local(X, None, w),
                              1e-9)


@given(shards(), st.sampled_from([None, 1, 2]))
def test_comoments(shard, n_targets):
    X, w, rng = shard
    Y = None
    if n_targets:
        Y = (X[:, :1] * 3 + rng.normal(size=(len(X), n_targets))).astype(X.dtype)
        Y = Y[:, 0] if n_targets == 1 else Y
    _same_partial(_moments.comoments_local(X, Y, w), ref.comoments_local(X, Y, w), RTOL[X.dtype],
                  _noise_floor(X) * (1 + 9 * (Y is not None)))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_comoments_over_many_blocks_drifting_far_from_the_origin(weighted, dtype):
    """Co-moments merged over several BLAS-sized blocks whose means differ (a drift far from the
    origin): each block's shift and the blocks' merge must keep the digits of the centered sums."""
    d = 2
    n = 3 * block_rows(d + 1, BLAS_BYTES) + 7
    rng = np.random.default_rng(3)
    offset = 1e8 if dtype == np.float64 else 1e2
    drift = np.linspace(0.0, 50.0, n)[:, None]
    X = (offset + drift + rng.normal(size=(n, d))).astype(dtype)
    Y = (X[:, 0] * 2 + rng.normal(size=n)).astype(dtype)
    w = rng.uniform(0, 2, n) if weighted else None
    _same_partial(_moments.comoments_local(X, Y, w), ref.comoments_local(X, Y, w), RTOL[X.dtype],
                  _noise_floor(X) * 10)


@pytest.mark.parametrize("n_targets", [0, 1, 2])
def test_comoments_mixing_unshifted_and_shifted_blocks(n_targets):
    """float64 blocks near the origin are multiplied as they are (``_raw_block``), blocks that
    drift far from it are shifted: the merge of both kinds keeps the digits of the centered
    co-moments, and the unshifted path is really taken for the first blocks."""
    d = 3 + n_targets
    block = block_rows(d, _moments.RAW_BYTES)
    n = 4 * block + 11
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, 3)) * [1.0, 3.0, 0.5]
    X[2 * block:] += 1e7 * np.arange(1, 4)  # the last blocks lie far from the origin
    Y = None
    if n_targets:
        Y = X[:, :1] * 2 + rng.normal(size=(n, n_targets))
        Y = Y[:, 0] if n_targets == 1 else Y
    Y2 = np.zeros((n, 0)) if Y is None else Y.reshape(n, -1)
    taken = [_moments._raw_block(X[lo:lo + block], Y2[lo:lo + block]) is not None
             for lo in range(0, n, block)]
    assert taken == [True, True, False, False, False]
    _same_partial(_moments.comoments_local(X, Y, None), ref.comoments_local(X, Y, None),
                  RTOL[X.dtype], _noise_floor(X - X.mean(0)) * 10)


@pytest.mark.parametrize("case", ["far", "constant", "nan", "inf", "huge"])
def test_unshifted_blocks_refuse_what_would_cancel(case):
    """The unshifted path declines every block whose mean subtraction would lose digits or
    whose values are not finite; the shifted path then gives the reference's partial."""
    rng = np.random.default_rng(6)
    X = rng.normal(size=(500, 4))
    assert _moments._raw_block(X, np.zeros((500, 0))) is not None
    if case == "far":
        X[:, 2] += 5.0  # sum of squares 26 times the centered one
    elif case == "constant":
        X[:, 1] = 0.25
    elif case == "nan":
        X[7, 3] = np.nan
    elif case == "inf":
        X[9, 0] = -np.inf
    else:
        X[3, 0] = 1e200  # its square overflows
    assert _moments._raw_block(X, np.zeros((500, 0))) is None
    got, expected = _moments.comoments_local(X, None, None), ref.comoments_local(X, None, None)
    if case == "huge":  # an overflowed partial: the caller rescales (spmdlearn._scaling)
        assert not np.isfinite(got.comoment).all() and not np.isfinite(expected.comoment).all()
    else:
        _same_partial(got, expected, RTOL[X.dtype], _noise_floor(X[np.isfinite(X).all(1)]) * 10)


def test_comoments_of_constant_columns_far_from_the_origin_are_exactly_zero():
    X = np.full((3 * block_rows(3, BLAS_BYTES) + 5, 3), 1e8 + 0.1)
    p = _moments.comoments_local(X, None, None)
    assert np.all(p.comoment == 0) and np.all(p.mean == X[0])


def test_all_zero_weights_give_the_identity_moments():
    X = np.random.default_rng(0).normal(size=(50, 3))
    w = np.zeros(50)
    _same_partial(_moments.comoments_local(X, None, w), ref.comoments_local(X, None, w), 0.0)
    _same_partial(_moments.column_stats_local(X, w), ref.column_stats_local(X, w), 0.0)


@given(shards())
def test_linear_predict_mahalanobis_tsqr(shard):
    X, _, rng = shard
    n, d = X.shape
    rtol = RTOL[X.dtype]
    for coef, intercept in ((rng.normal(size=d), 0.5),
                            (rng.normal(size=(2, d)), rng.normal(size=2))):
        got = _linear.linear_predict(X, coef, intercept)
        assert got.dtype == X.dtype
        _close(got, ref.linear_predict(X, coef, intercept), rtol)
    A = rng.normal(size=(d, d))
    loc = np.asarray(X.mean(0) if n else np.zeros(d), np.float64)
    _close(_covariance.mahalanobis(X, loc, A @ A.T + np.eye(d)),
           ref.mahalanobis(X, loc, A @ A.T + np.eye(d)), rtol)
    mean = rng.normal(size=d) + (loc if n else 0)
    R = _pca.tsqr_local(X, mean).r
    expected = ref.tsqr_local(X, mean).r
    # R is unique up to rank deficiency: compare the Gram matrices, and R itself when full rank
    _close(R.T @ R, expected.T @ expected, rtol)
    if n > d and np.linalg.matrix_rank(np.asarray(X, np.float64) - mean) == d:
        _close(R, expected, 1e-6 if X.dtype == np.float64 else 1e-3)


@given(shards(), st.integers(1, 5), st.booleans())
def test_lloyd_and_inertia(shard, k, duplicate_centers):
    X, w, rng = shard
    n, d = X.shape
    X = X - (X.mean(0).astype(X.dtype) if n else 0)  # the estimator centers, as scikit-learn
    w = np.ones(n) if w is None else w
    centers = X[rng.integers(0, n, k)].astype(np.float64) if n else rng.normal(size=(k, d))
    if duplicate_centers and k > 1:
        centers[-1] = centers[0]  # equal scores: the lower index must win
    labels_old = rng.integers(-1, k, n).astype(np.int32)
    labels, partial = _kmeans.lloyd_local(X, w, centers, labels_old)
    labels_ref, partial_ref = ref.lloyd_local(X, w, centers, labels_old)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, labels_ref)
    rtol = RTOL[X.dtype] * (10 if X.dtype == np.float32 else 1)
    _close(partial.sums, partial_ref.sums, rtol)
    _close(partial.weights, partial_ref.weights, rtol)
    _close(partial.inertia, partial_ref.inertia, rtol * 10)
    assert partial.n_changed == partial_ref.n_changed
    _close(_kmeans.kmeans_inertia(X, w, centers, labels), ref.kmeans_inertia(X, w, centers, labels),
           RTOL[X.dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("unit_weights", [False, True])
def test_lloyd_offset_rows_equal_the_centered_copy(monkeypatch, dtype, unit_weights):
    """``X_offset``: the step on ``X - X_offset`` without the copy: the same labels and the same
    bits as on the centered copy, over several blocks and threaded tasks (rows far from the
    origin, where centering decides the labels); unit weights as a broadcast view (stride 0)
    give the bits of an array of ones."""
    monkeypatch.setattr(_kmeans, "_TASK_ROWS", 2 * _kmeans._ASSIGN_ROWS)
    monkeypatch.setattr(_kmeans, "kernel_threads", lambda: 2)
    rng = np.random.default_rng(5)
    n, d, k = 5 * _kmeans._ASSIGN_ROWS + 33, 7, 6
    X = (rng.normal(size=(n, d)) + 1e4).astype(dtype)
    offset = X.mean(0).astype(dtype)
    centered = X - offset
    w = np.broadcast_to(np.ones(1), (n,)) if unit_weights else rng.uniform(0.5, 2, n)
    centers = centered[rng.integers(0, n, k)].astype(np.float64)
    labels_old = rng.integers(-1, k, n).astype(np.int32)
    labels, partial = _kmeans.lloyd_local(X, w, centers, labels_old, offset)
    want_labels, want = _kmeans.lloyd_local(centered, np.array(w), centers, labels_old)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_array_equal(partial.sums, want.sums)
    np.testing.assert_array_equal(partial.weights, want.weights)
    assert partial.inertia == want.inertia and partial.n_changed == want.n_changed
    ref_labels, ref_partial = ref.lloyd_local(X, np.array(w), centers, labels_old, offset)
    np.testing.assert_array_equal(labels, ref_labels)
    _close(partial.sums, ref_partial.sums, RTOL[X.dtype] * 10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lloyd_in_threaded_tasks(monkeypatch, dtype):
    """Rows split into tasks on several threads: the reference's labels, its partials within
    rounding, and the same bits for any number of threads."""
    monkeypatch.setattr(_kmeans, "_TASK_ROWS", _kmeans._ASSIGN_ROWS)
    rng = np.random.default_rng(3)
    n, d, k = 3 * _kmeans._ASSIGN_ROWS + 17, 5, 4
    X = rng.normal(size=(n, d)).astype(dtype)
    w = rng.uniform(0.5, 2, n)
    centers = X[:k].astype(np.float64)
    labels_old = rng.integers(-1, k, n).astype(np.int32)
    labels_ref, partial_ref = ref.lloyd_local(X, w, centers, labels_old)
    assign_ref = ref.kmeans_assign(X, centers)
    runs = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(_kmeans, "kernel_threads", lambda t=threads: t)
        labels, partial = _kmeans.lloyd_local(X, w, centers, labels_old)
        np.testing.assert_array_equal(labels, labels_ref)
        _close(partial.sums, partial_ref.sums, RTOL[X.dtype] * 10)
        _close(partial.inertia, partial_ref.inertia, RTOL[X.dtype] * 100)
        assert partial.n_changed == partial_ref.n_changed
        assigned, sq = _kmeans.kmeans_assign(X, centers)
        np.testing.assert_array_equal(assigned, assign_ref[0])
        _close(sq, assign_ref[1], RTOL[X.dtype])
        runs.append((partial.sums.tobytes(), partial.weights.tobytes(), partial.inertia))
    assert runs[0] == runs[1] == runs[2]


def _valid_bounds(X, offset, centers, labels, lower):
    """Each row's bound is at most its float64 distance to every center but its label."""
    Xc = np.asarray(X if offset is None else X - offset, np.float64)
    dist = np.sqrt(((Xc[:, None, :] - np.asarray(centers)[None]) ** 2).sum(axis=2))
    dist[np.arange(len(Xc)), labels] = np.inf
    other = dist.min(axis=1, initial=np.inf)
    return bool(np.all(lower <= other + 1e-12 * (other + 1.0)))


def _valid_upper(X, offset, centers, labels, upper):
    """Each row's upper bound is at least its float64 distance to its label's center."""
    Xc = np.asarray(X if offset is None else X - offset, np.float64)
    own = np.sqrt(((Xc - np.asarray(centers)[labels]) ** 2).sum(axis=1))
    return bool(np.all(upper >= own * (1 - 1e-12)))


def _bounded_and_plain_steps(X, w, centers, offset, rng, steps=6):
    """Lloyd's steps from ``centers``, the cpu's plain and bounded steps side by side, and the
    reference's bounded step: the bounded steps' labels and partials must be the plain step's
    (the cpu's bit for bit, the same blocks and order), and their bounds bounds. Beside them,
    the cpu's bounded step given its upper bounds and previous partial (``sums_old``), whose
    state is its own: the plain step's labels, its sums and weights up to rounding (a cluster
    without rows exactly zero), NaN or the plain inertia. The next centers are the plain
    step's means; an empty cluster jumps to a row, as a relocation does."""
    n, d = X.shape
    labels, lower, centers_old = np.full(n, -1, np.int32), np.zeros(n), None
    inc_labels, inc_lower, inc_upper, inc_partial = labels, lower, None, None
    n_incremental = 0
    for _ in range(steps):
        plain_labels, plain = _kmeans.lloyd_local(X, w, centers, labels, offset)
        got_labels, got_lower, got, got_upper = _kmeans.lloyd_bounded(
            X, w, centers, centers_old, labels, lower, offset)
        ref_labels, ref_lower, ref_partial, ref_upper = ref.lloyd_bounded(
            X, w, centers, centers_old, labels, lower, offset)
        np.testing.assert_array_equal(got_labels, plain_labels)
        assert got_labels.dtype == np.int32 and got_lower.dtype == np.float64
        for name in plain._fields:
            np.testing.assert_array_equal(getattr(got, name), getattr(plain, name), err_msg=name)
        np.testing.assert_array_equal(ref_labels, plain_labels)
        _same_partial(ref_partial, ref.lloyd_local(X, w, centers, labels, offset)[1], 1e-12)
        assert _valid_bounds(X, offset, centers, got_labels, got_lower)
        assert _valid_bounds(X, offset, centers, ref_labels, ref_lower)
        assert _valid_upper(X, offset, centers, got_labels, got_upper)
        assert _valid_upper(X, offset, centers, ref_labels, ref_upper)
        # the incremental chain (its own labels, bounds and partial from step to step)
        inc_labels_new, inc_lower, inc, inc_upper = _kmeans.lloyd_bounded(
            X, w, centers, centers_old, inc_labels, inc_lower, offset, inc_upper, inc_partial)
        np.testing.assert_array_equal(inc_labels_new, plain_labels)
        assert _valid_bounds(X, offset, centers, inc_labels_new, inc_lower)
        assert _valid_upper(X, offset, centers, inc_labels_new, inc_upper)
        scale = max(1.0, float(np.abs(plain.sums).max(initial=0.0)))
        np.testing.assert_allclose(inc.sums, plain.sums, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(inc.weights, plain.weights, rtol=1e-12)
        np.testing.assert_array_equal(inc.weights == 0, plain.weights == 0)
        np.testing.assert_array_equal(inc.sums[plain.weights == 0], 0.0)
        assert inc.n_changed == np.count_nonzero(inc_labels_new != inc_labels)
        assert inc.incremental == 1 or (inc.inertia == plain.inertia and inc.incremental == 0)
        inc_labels, inc_partial = inc_labels_new, inc
        n_incremental += int(inc.incremental)
        new = plain.sums / np.where(plain.weights > 0, plain.weights, 1.0)[:, None]
        for j in np.flatnonzero(plain.weights == 0):
            new[j] = (X[rng.integers(n)] - (0 if offset is None else offset)) if n else 0.0
        centers_old, centers, labels, lower = centers, new, got_labels, got_lower
    return n_incremental


@given(shards(), st.integers(1, 5), st.booleans())
def test_lloyd_bounded_is_the_plain_step(shard, k, with_offset):
    """Over several steps on drawn shards (duplicates, constant columns, far offsets, zero
    weights, layouts, float32): the bounded step is the plain step."""
    X, w, rng = shard
    n, d = X.shape
    offset = X.mean(0).astype(X.dtype) if (n and with_offset) else None
    if offset is None and n:
        X = X - X.mean(0).astype(X.dtype)  # the estimator's rows are centered, one way or other
    w = np.ones(n) if w is None else w
    centered = X if offset is None else X - offset
    centers = (centered[rng.integers(0, n, k)].astype(np.float64) if n else
               rng.normal(size=(k, d)))
    _bounded_and_plain_steps(X, w, centers, offset, rng)


@pytest.mark.parametrize("data", ["blobs", "uniform", "grid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lloyd_bounded_in_blocks_tasks_and_threads(monkeypatch, data, dtype):
    """Several blocks and threaded tasks; few rows assigned from all their distances per block
    (the rest scored by the BLAS product, summed in a second pass): the plain step's bits, for
    any thread count."""
    monkeypatch.setattr(_kmeans, "_TASK_ROWS", 2 * _kmeans._ASSIGN_ROWS)
    monkeypatch.setattr(_kmeans, "_INLINE_ROWS", 5)
    rng = np.random.default_rng(11)
    n, d, k = 5 * _kmeans._ASSIGN_ROWS + 101, 6, 7
    if data == "blobs":
        X = rng.normal(scale=5, size=(k, d))[rng.integers(0, k, n)] + rng.normal(size=(n, d))
    elif data == "uniform":
        X = rng.uniform(size=(n, d))
    else:  # duplicated rows on a grid: exact ties between centers
        X = rng.integers(0, 3, size=(n, d)).astype(np.float64)
    X = (X + 1e3).astype(dtype)
    offset = X.mean(0).astype(dtype)
    w = rng.uniform(0.5, 2, n)
    centers = (X[rng.integers(0, n, k)] - offset).astype(np.float64)
    runs = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(_kmeans, "kernel_threads", lambda t=threads: t)
        n_incremental = _bounded_and_plain_steps(X, w, centers, offset,
                                                 np.random.default_rng(0), steps=6)
        # (uniform rows and grids: more rows fail their bounds than the share that reads few)
        assert n_incremental > 0 or data != "blobs", "the sums were never updated incrementally"
        labels, lower, partial, _ = _kmeans.lloyd_bounded(X, w, centers, centers + 0.01,
                                                          np.zeros(n, np.int32), np.zeros(n),
                                                          offset)
        runs.append((labels.tobytes(), lower.tobytes(), partial.sums.tobytes(), partial.inertia))
    assert runs[0] == runs[1] == runs[2]


@given(shards(), st.sampled_from([2, 3]), st.booleans())
def test_logistic_loss_gradient_and_hessian_products(shard, n_classes, with_hessian):
    X, w, rng = shard
    n, d = X.shape
    X = X - (X.mean(0).astype(X.dtype) if n else 0)
    w = np.ones(n) if w is None else np.asarray(w, np.float64)
    if n_classes == 2:
        coef, intercept = rng.normal(size=d) * 3, float(rng.normal())  # saturating predictors
        target = rng.integers(0, 2, n).astype(np.float64)
        v, v0 = rng.normal(size=d), 0.3
    else:
        coef, intercept = rng.normal(size=(3, d)) * 3, rng.normal(size=3)
        target = rng.integers(0, 3, n)
        v, v0 = rng.normal(size=(3, d)), rng.normal(size=3)
    got = _logistic.logistic_loss_grad(X, target, w, coef, intercept, n_classes, with_hessian)
    expected = ref.logistic_loss_grad(X, target, w, coef, intercept, n_classes, with_hessian)
    for a, b in zip(got, expected):
        if b is None:
            assert a is None
        else:
            _close(a, b, 1e-9)
    hess = ref.logistic_loss_grad(X, target, w, coef, intercept, n_classes, True)[3]
    for a, b in zip(_logistic.logistic_hessp(X, hess, v, v0, n_classes),
                    ref.logistic_hessp(X, hess, v, v0, n_classes)):
        _close(a, b, 1e-9)


@given(st.integers(0, 300), st.integers(1, 5), st.integers(1, 4), st.integers(2, 9),
       st.integers(0, 2**31 - 1))
def test_tree_histograms(n, d, n_nodes, n_bins, seed):
    rng = np.random.default_rng(seed)
    binned = rng.integers(0, n_bins, size=(n, d)).astype(np.uint16)
    node_pos = rng.integers(-1, n_nodes, n)
    stats = np.column_stack([rng.random((n, 2)), np.ones(n)])
    _close(_forest.node_histograms(binned, node_pos, stats, n_nodes, n_bins),
           ref.node_histograms(binned, node_pos, stats, n_nodes, n_bins), 1e-12)


def test_tree_histograms_decline_out_of_range_bins():
    binned = np.array([[0], [5]], dtype=np.uint16)
    assert _forest.node_histograms(binned, np.array([0, 0]), np.ones((2, 1)), 1, 4) is None


@given(shards(max_features=3))
def test_tree_apply_values_on_thresholds_go_left(shard):
    X, _, rng = shard
    n, d = X.shape
    # thresholds taken from the rows themselves: rows exactly on a threshold go left
    t0 = float(X[rng.integers(n), 0]) if n else 0.0
    t1 = float(X[rng.integers(n), d - 1]) if n else 0.0
    feature = np.array([0, d - 1, 0, -1, -1, -1, -1])
    threshold = np.array([t0, t1, np.nextafter(t0, np.inf), np.nan, np.nan, np.nan, np.nan])
    left = np.array([1, 3, 5, -1, -1, -1, -1])
    right = np.array([2, 4, 6, -1, -1, -1, -1])
    np.testing.assert_array_equal(_forest.tree_apply(X, feature, threshold, left, right),
                                  ref.tree_apply(X, feature, threshold, left, right))


def test_kernel_threads_follow_blas():
    from threadpoolctl import threadpool_limits

    from spmdlearn_cpu._threads import kernel_threads

    with threadpool_limits(limits=1, user_api="blas"):
        assert kernel_threads() == 1


_COORDINATE_METRICS = st.sampled_from(["euclidean", "manhattan", "chebyshev", "minkowski"])


@st.composite
def neighbour_blocks(draw):
    """Query and candidate blocks with values on a grid, duplicate candidates and queries that
    are candidates (equal distances and distances exactly ``eps`` everywhere)."""
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    n_x = draw(st.sampled_from([0, 1, 2, 7, 30, 100]))  # 100 x 1100: radius queries use a grid
    n_y = draw(st.sampled_from([0, 1, 3, 9, 40, 1100]))  # 1100: more than one screening tile
    d = draw(st.one_of(st.integers(1, 6), st.integers(33, 36)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    Y = np.round(rng.normal(size=(n_y, d)) * 2, 0) + 0.5
    X = np.round(rng.normal(size=(n_x, d)) * 2, 0) + 0.5
    if n_y and n_x:
        X[: n_x // 2 + 1] = Y[rng.integers(0, n_y, n_x // 2 + 1)]
    if n_y > 1:
        Y[-1] = Y[0]
    return X.astype(dtype), Y.astype(dtype), rng


@given(neighbour_blocks(), _COORDINATE_METRICS, st.integers(1, 6), st.booleans(),
       st.sampled_from([1.0, 2.0, 2.5]))
def test_neighbour_kernels(blocks, metric, k, self_rows, eps):
    from spmdlearn_cpu import _neighbors

    X, Y, rng = blocks
    p = 3.0 if metric == "minkowski" else None
    y_index = rng.permutation(2000)[: len(Y)].astype(np.int64)
    x_index = y_index[rng.integers(0, len(Y), len(X))] if self_rows and len(Y) else None
    # a running best with real entries, ties with the block, and unfilled slots
    best_d = np.sort(np.round(rng.random((len(X), k)) * 4, 0), axis=1)
    best_d[:, k // 2:] = np.inf
    best_i = np.where(np.isinf(best_d), -1, rng.integers(2000, 2100, (len(X), k)))
    order = np.lexsort((best_i, best_d), axis=-1)  # the contract: lexicographic order
    best_d, best_i = np.take_along_axis(best_d, order, 1), np.take_along_axis(best_i, order, 1)
    got = _neighbors.knn_merge(X, Y, y_index, best_d, best_i, metric, p, x_index)
    expected = ref.knn_merge(X, Y, y_index, best_d, best_i, metric, p, x_index)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
    w = rng.normal(size=len(Y))
    np.testing.assert_allclose(_neighbors.radius_counts(X, Y, w, eps, metric, p),
                               ref.radius_counts(X, Y, w, eps, metric, p), rtol=1e-12, atol=1e-12)
    labels = rng.integers(0, 10, len(Y))
    current = rng.integers(3, 20, len(X))
    np.testing.assert_array_equal(
        _neighbors.radius_min_label(X, Y, labels, current, eps, metric, p),
                                  ref.radius_min_label(X, Y, labels, current, eps, metric, p))
    for a, b in zip(_neighbors.radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index),
                    ref.radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index)):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-12)
    _assert_same_union(X, Y, eps, metric, p, rng)


def _knn_blocks(dtype, offset, rng):
    """Queries and candidates for the screened euclidean merge: values on a grid (many equal
    distances), duplicate candidates that fall in different tiles, queries that are
    candidates, rows ``offset`` away from the origin, and in float64 a row whose squared norm
    overflows (its distances are inf, its norms no use to the screen)."""
    Y = (np.round(rng.normal(size=(61, 3)) * 2, 0) + 0.5) + offset
    Y[[20, 40, 60]] = Y[5]  # ties across tile boundaries, resolved by the lower index
    X = np.vstack([Y[rng.integers(0, len(Y), 12)], np.round(rng.normal(size=(11, 3)), 1) + offset])
    if dtype == np.float64 and offset == 0:
        Y[33] = 1e200
        X[7] = 1e200
    return X.astype(dtype), Y.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", [0.0, 1e4 / 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_knn_merge_screened_tiles_equal_the_reference(monkeypatch, dtype, offset, threads):
    """The euclidean merge by GEMM tiles equals the reference's, neighbours and order bit for
    bit: tiles of 5 queries x 7 candidates (partial last tiles, k up to above a tile's
    candidates, several rounds of screening), one and two threads, a running best from earlier
    blocks, and self-exclusion; far from the origin the screen's margin passes most candidates
    to the exact distances."""
    from threadpoolctl import threadpool_limits

    from spmdlearn_cpu import _neighbors

    monkeypatch.setattr(_neighbors, "_TILE_QUERIES", 5)
    monkeypatch.setattr(_neighbors, "_MIN_TILE_QUERIES", 1)
    monkeypatch.setattr(_neighbors, "_TILE_CANDIDATES", 7)
    rng = np.random.default_rng(11)
    X, Y = _knn_blocks(dtype, offset, rng)
    y_index = rng.permutation(500)[: len(Y)].astype(np.int64)
    with threadpool_limits(limits=threads, user_api="blas"):
        for k in (1, 4, 12):
            for x_index in (None, y_index[rng.integers(0, len(Y), len(X))]):
                best = np.full((len(X), k), np.inf), np.full((len(X), k), -1, np.int64)
                got, expected = best, best
                for lo, hi in ((0, 25), (25, 61)):  # two visiting blocks: a running best
                    got = _neighbors.knn_merge(X, Y[lo:hi], y_index[lo:hi], *got, "euclidean",
                                               None, x_index)
                    expected = ref.knn_merge(X, Y[lo:hi], y_index[lo:hi], *expected,
                                             "euclidean", None, x_index)
                np.testing.assert_array_equal(got[1], expected[1])
                np.testing.assert_array_equal(got[0], expected[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_knn_merge_many_features_takes_thinner_tiles(monkeypatch, dtype):
    """With many features the tiles are cut by bytes (here 3 rows of 300 features): the
    merge still equals the reference's, ties and order included."""
    from spmdlearn_cpu import _neighbors

    monkeypatch.setattr(_neighbors, "_TILE_ROW_BYTES", 8 * 300 * 3)
    rng = np.random.default_rng(5)
    Y = np.round(rng.normal(size=(20, 300)), 0)
    Y[[4, 11, 17]] = Y[2]
    X = np.vstack([Y[[2, 9]], np.round(rng.normal(size=(5, 300)), 0)]).astype(dtype)
    Y = Y.astype(dtype)
    y_index = rng.permutation(40)[:20].astype(np.int64)
    best = np.full((len(X), 6), np.inf), np.full((len(X), 6), -1, np.int64)
    got = _neighbors.knn_merge(X, Y, y_index, *best)
    expected = ref.knn_merge(X, Y, y_index, *best)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[0], expected[0])


def _assert_self_counts(Y, w, eps, metric, p):
    """A block against itself (each pair visited once on one thread) counts as the reference."""
    import numba

    from spmdlearn_cpu import _neighbors

    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        assert _neighbors._same_rows(Y, Y) and not _neighbors._same_rows(Y, Y.copy())
        np.testing.assert_allclose(_neighbors.radius_counts(Y, Y, w, eps, metric, p),
                                   ref.radius_counts(Y, Y, w, eps, metric, p), rtol=1e-12)
    finally:
        numba.set_num_threads(threads)


def _assert_same_union(X, Y, eps, metric, p, rng):
    """The label classes of the cpu union-find equal the reference's, for few labels (rows
    already joined, labels shared by both blocks), one label per row, and a block with itself."""
    from spmdlearn_cpu import _neighbors

    cases = [(X, rng.integers(0, 4, len(X)), Y, rng.integers(0, 4, len(Y))),
             (X, rng.permutation(len(X) + len(Y))[:len(X)], Y,
              rng.permutation(len(X) + len(Y))[:len(Y)] + len(X) + len(Y)),
             (Y, np.arange(len(Y)), Y, np.arange(len(Y)))]
    for A, a_labels, B, b_labels in cases:
        got = _neighbors.radius_label_union(A, a_labels, B, b_labels, eps, metric, p)
        expected = ref.radius_label_union(A, a_labels, B, b_labels, eps, metric, p)
        for g, e in zip(got, expected):
            assert g.dtype == e.dtype == np.int64
            np.testing.assert_array_equal(g, e)


def test_cosine_is_declined():
    from spmdlearn_cpu import _plugin

    X = np.ones((2, 2))
    assert _plugin.spmdlearn_radius_counts(X=X, Y=X, sample_weight=np.ones(2), eps=1.0,
                                           metric="cosine", p=None) is None


@pytest.mark.parametrize("metric", ["euclidean", "chebyshev"])
def test_grid_of_sparse_blocks_hashes_cells(metric):
    """Rows spread over a box of far more cells than rows: cells share hash buckets, and every
    radius kernel still finds exactly the reference's pairs (no cell visited twice, none
    missed)."""
    from spmdlearn_cpu import _neighbors

    rng = np.random.default_rng(3)
    eps = 1.0
    Y = np.vstack([rng.uniform(0, 300, size=(500, 3)),
                   np.round(rng.uniform(0, 20, size=(400, 3)), 1)])  # a dense corner too
    X = np.vstack([Y[:200] + rng.normal(scale=0.4, size=(200, 3)), rng.uniform(0, 300, (100, 3))])
    Ys, g = _neighbors._use_grid(X, Y, eps)
    assert g[3] < np.prod(g[2].astype(float))  # buckets shared by several cells
    w = rng.uniform(0, 2, len(Y))
    np.testing.assert_allclose(_neighbors.radius_counts(X, Y, w, eps, metric),
                               ref.radius_counts(X, Y, w, eps, metric), rtol=1e-12)
    labels = rng.integers(0, 50, len(Y))
    current = rng.integers(10, 60, len(X))
    np.testing.assert_array_equal(_neighbors.radius_min_label(X, Y, labels, current, eps, metric),
                                  ref.radius_min_label(X, Y, labels, current, eps, metric))
    y_index = np.arange(len(Y), dtype=np.int64)
    for a, b in zip(_neighbors.radius_neighbors_csr(X, Y, y_index, eps, metric),
                    ref.radius_neighbors_csr(X, Y, y_index, eps, metric)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    _assert_same_union(X, Y, eps, metric, None, rng)
    _assert_self_counts(Y, w, eps, metric, None)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "chebyshev", "minkowski"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_grid_radius_queries_on_cell_boundaries(metric, dtype):
    """Blocks large enough for the grid, values on a grid of step eps/2: many distances are
    exactly eps and many candidates sit on cell boundaries."""
    from spmdlearn_cpu import _neighbors

    rng = np.random.default_rng(7)
    eps, p = 1.0, (3.0 if metric == "minkowski" else None)
    Y = (rng.integers(-6, 6, size=(700, 3)) * 0.5).astype(dtype)
    X = np.vstack([Y[:150], (rng.normal(size=(150, 3)) * 2)]).astype(dtype)
    assert _neighbors._use_grid(X, Y, eps) is not None
    w = rng.uniform(0, 2, len(Y))
    np.testing.assert_allclose(_neighbors.radius_counts(X, Y, w, eps, metric, p),
                               ref.radius_counts(X, Y, w, eps, metric, p), rtol=1e-12)
    labels = rng.integers(0, 50, len(Y))
    current = rng.integers(10, 60, len(X))
    np.testing.assert_array_equal(
        _neighbors.radius_min_label(X, Y, labels, current, eps, metric, p),
        ref.radius_min_label(X, Y, labels, current, eps, metric, p))
    y_index = rng.permutation(5000)[: len(Y)].astype(np.int64)
    x_index = y_index[rng.integers(0, len(Y), len(X))]
    for xi in (None, x_index):  # CSR pairs in candidate order within each query
        for a, b in zip(_neighbors.radius_neighbors_csr(X, Y, y_index, eps, metric, p, xi),
                        ref.radius_neighbors_csr(X, Y, y_index, eps, metric, p, xi)):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=1e-12)
    _assert_same_union(X, Y, eps, metric, p, rng)
    _assert_self_counts(Y, w, eps, metric, p)


@pytest.mark.parametrize("metric, p, big, eps", [
    # a box whose side overflows float64 (rows near +-1e308): a small and a large radius
    ("euclidean", None, 1e308, 1.0), ("manhattan", None, 1e308, 1e300),
    ("chebyshev", None, 1e308, 1.0), ("minkowski", 3.0, 1e308, 1e300),
    # squared distances that overflow where the radius's square does too (1e200 ** 2)
    ("euclidean", None, 1e160, 1e200), ("minkowski", 3.0, 1e104, 1e150)])
def test_radius_kernels_of_overflowing_distances(metric, p, big, eps):
    """Rows whose distances overflow float64, in blocks large enough for the grid: every
    radius kernel decides each pair as the reference does (an overflowed distance is never
    within a finite radius), and none fails on a grid over a box wider than float64."""
    from spmdlearn_cpu import _neighbors

    rng = np.random.default_rng(11)
    Y = np.vstack([rng.uniform(-1, 1, (150, 1)) * big, rng.uniform(-1, 1, (150, 1)) * eps,
                   rng.uniform(-1, 1, (100, 1))])
    X = np.vstack([Y[::3], rng.uniform(-1, 1, (100, 1)) * big])
    assert X.shape[0] * Y.shape[0] >= _neighbors._GRID_MIN_PAIRS
    w = rng.uniform(0, 2, len(Y))
    with np.errstate(over="ignore", invalid="ignore"):
        expected = ref.radius_counts(X, Y, w, eps, metric, p)
        assert 0 < np.count_nonzero(ref.block_distances(X, Y, metric, p) == np.inf)
    np.testing.assert_allclose(_neighbors.radius_counts(X, Y, w, eps, metric, p), expected,
                               rtol=1e-12)
    labels = rng.integers(0, 50, len(Y))
    current = rng.integers(10, 60, len(X))
    np.testing.assert_array_equal(
        _neighbors.radius_min_label(X, Y, labels, current, eps, metric, p),
        ref.radius_min_label(X, Y, labels, current, eps, metric, p))
    y_index = np.arange(len(Y), dtype=np.int64)
    for a, b in zip(_neighbors.radius_neighbors_csr(X, Y, y_index, eps, metric, p),
                    ref.radius_neighbors_csr(X, Y, y_index, eps, metric, p)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    _assert_same_union(X, Y, eps, metric, p, rng)
    _assert_self_counts(Y, w, eps, metric, p)


@given(shards(), st.integers(1, 4))
def test_kmeans_assign_transform_and_plusplus(shard, k):
    X, w, rng = shard
    n, d = X.shape
    X = X - (X.mean(0).astype(X.dtype) if n else 0)
    centers = X[rng.integers(0, n, k)].astype(np.float64) if n else rng.normal(size=(k, d))
    if k > 1:
        centers[-1] = centers[0]  # equal scores: the lower index must win
    labels, sq = _kmeans.kmeans_assign(X, centers)
    labels_ref, sq_ref = ref.kmeans_assign(X, centers)
    np.testing.assert_array_equal(labels, labels_ref)
    assert labels.dtype == np.int32 and sq.dtype == np.float64
    _close(sq, sq_ref, 1e-9)
    got, expected = _kmeans.kmeans_transform(X, centers), ref.kmeans_transform(X, centers)
    assert got.dtype == expected.dtype == X.dtype
    _close(got, expected, RTOL[X.dtype])
    C = centers.astype(X.dtype)
    norms = np.einsum("ij,ij->i", X, X) if rng.integers(2) else None
    closest = rng.random(n) * 10 if rng.integers(2) else None
    _close(_kmeans.kmeans_min_distances(X, C[:1], closest, norms),
           ref.kmeans_min_distances(X, C[:1], closest, norms), RTOL[X.dtype])
    weights = np.ones(n) if w is None else np.asarray(w, np.float64)
    closest = rng.random(n) * 10
    _close(_kmeans.kmeans_plusplus_potentials(X, weights, C, closest, norms),
           ref.kmeans_plusplus_potentials(X, weights, C, closest, norms), RTOL[X.dtype])


@given(shards(max_features=4), st.integers(0, 2**31 - 1))
def test_binning_bootstrap_histograms_and_routing_bit_for_bit(shard, seed):
    X, w, rng = shard
    n, d = X.shape
    X = np.round(np.asarray(X, np.float64) - (X.mean(0) if n else 0), 1)  # values on cut points
    edges = [np.unique(np.round(rng.normal(size=rng.integers(0, 7)), 1)) for _ in range(d)]
    binned = _forest.apply_bins(X, edges)
    np.testing.assert_array_equal(binned, ref.apply_bins(X, edges))
    assert binned.dtype == np.uint16
    row_index = rng.permutation(10**6)[:n].astype(np.int64)
    for lam in (1.0, 0.632):
        np.testing.assert_array_equal(_forest.bootstrap_counts(row_index, seed, lam),
                                      ref.bootstrap_counts(row_index, seed, lam))
    n_bins = 8
    binned = rng.integers(0, n_bins, (n, d)).astype(np.uint16)
    node_pos = rng.integers(-1, 3, n)
    counts = rng.integers(0, 3, n)
    weights = rng.random(n)
    for n_classes, class_weight in ((0, None), (3, None), (3, np.array([1.0, 2.0, 0.5]))):
        y = rng.integers(0, 3, n) if n_classes else rng.normal(size=n)
        np.testing.assert_array_equal(  # the same sums in the same order: bit for bit
            _forest.tree_histograms(binned, node_pos, y, weights, counts, 3, n_bins, n_classes,
                                    class_weight),
            ref.tree_histograms(binned, node_pos, y, weights, counts, 3, n_bins, n_classes,
                                class_weight))
    node_of_row = rng.integers(-1, 3, n)
    split_feature = np.array([rng.integers(0, d), -1, rng.integers(0, d)])
    split_bin = np.array([3, 0, 5])
    left, right = np.array([3, -1, 5]), np.array([4, -1, 6])
    np.testing.assert_array_equal(
        _forest.tree_route(binned, node_of_row, split_feature, split_bin, left, right),
        ref.tree_route(binned, node_of_row, split_feature, split_bin, left, right))


@given(shards())
def test_affine_transform_rounds_like_the_reference(shard):
    from spmdlearn_cpu._transform import affine_transform

    X, _, rng = shard
    d = X.shape[1]
    shift, scale = rng.normal(size=d).astype(X.dtype), rng.normal(size=d).astype(X.dtype)
    got = affine_transform(X, shift, scale)
    assert got.dtype == X.dtype
    np.testing.assert_array_equal(got, ref.affine_transform(X, shift, scale))


def test_float32_near_ties_fall_as_in_the_reference():
    """Rows almost equidistant from two centers, in float32 far from the origin: the scores must
    be rounded in float32 as the reference rounds them (a float64 score breaks near-ties
    differently)."""
    rng = np.random.default_rng(3)
    c = rng.normal(size=(1, 4)) * 5
    centers = np.vstack([c, -c, c + 1e-3]) + 100.0
    mid = (centers[0] + centers[1]) / 2
    normal = (centers[0] - centers[1]) / np.linalg.norm(centers[0] - centers[1])
    tangent = rng.normal(size=(20000, 4))
    tangent -= (tangent @ normal)[:, None] * normal  # on the bisecting hyperplane
    X = (mid + tangent * 3 + rng.normal(size=(20000, 1)) * 1e-6 * normal).astype(np.float32)
    w = np.ones(len(X))
    labels, _ = _kmeans.lloyd_local(X, w, centers, np.full(len(X), -1, np.int32))
    np.testing.assert_array_equal(labels, ref.lloyd_local(X, w, centers, np.full(len(X), -1))[0])
    np.testing.assert_array_equal(_kmeans.kmeans_assign(X, centers)[0],
                                  ref.kmeans_assign(X, centers)[0])


@pytest.mark.parametrize("move, exact_bounds", [(0.0, False), (1e-5, False), (1e-2, False),
                                                (0.0, True)])
def test_float32_near_ties_of_the_bounded_step_fall_as_in_the_plain_step(move, exact_bounds):
    """Rows almost equidistant from two centers, in float32 far from the origin, whose bounds
    come from centers that moved a little or not at all (or are the exact float64 distances,
    the tightest valid bounds): the rows the bounded step keeps or assigns from float64
    distances are only those whose float32 scores cannot decide otherwise, so its labels are
    the plain step's."""
    rng = np.random.default_rng(3)
    c = rng.normal(size=(1, 4)) * 5
    centers = np.vstack([c, -c, c + 1e-3]) + 100.0
    mid = (centers[0] + centers[1]) / 2
    normal = (centers[0] - centers[1]) / np.linalg.norm(centers[0] - centers[1])
    tangent = rng.normal(size=(20000, 4))
    tangent -= (tangent @ normal)[:, None] * normal  # on the bisecting hyperplane
    X = (mid + tangent * 3 + rng.normal(size=(20000, 1)) * 1e-6 * normal).astype(np.float32)
    w = np.ones(len(X))
    centers_old = centers + move * rng.normal(size=centers.shape)
    first = np.full(len(X), -1, np.int32)
    labels_old, lower_old, _, _ = _kmeans.lloyd_bounded(X, w, centers_old, None, first,
                                                        np.zeros(len(X)), None)
    np.testing.assert_array_equal(labels_old, _kmeans.lloyd_local(X, w, centers_old, first)[0])
    if exact_bounds:
        dist = np.sqrt(((X.astype(np.float64)[:, None] - centers_old[None]) ** 2).sum(axis=2))
        labels_old = np.argmin(dist, axis=1).astype(np.int32)
        dist[np.arange(len(X)), labels_old] = np.inf
        lower_old = dist.min(axis=1)
    labels, lower, partial, _ = _kmeans.lloyd_bounded(X, w, centers, centers_old, labels_old,
                                                      lower_old, None)
    plain_labels, plain = _kmeans.lloyd_local(X, w, centers, labels_old)
    np.testing.assert_array_equal(labels, plain_labels)
    assert partial.inertia == plain.inertia and partial.n_changed == plain.n_changed
    np.testing.assert_array_equal(ref.lloyd_bounded(X, w, centers, centers_old, labels_old,
                                                    lower_old)[0], plain_labels)


def _level_histogram(rng, n_nodes, d, n_bins, criterion, n_classes):
    """A level's histogram with integer counts on few bins: many equal decreases, so the order
    of features and the lowest bin decide, as in the conformance suite's fixed cases."""
    if criterion == "squared_error":
        wt = rng.integers(0, 3, (n_nodes, d, n_bins)).astype(np.float64)
        yv = np.round(rng.normal(size=(n_nodes, d, n_bins)), int(rng.integers(0, 3)))
        stats = np.stack([wt, wt * yv, wt * yv * yv], -1)
    else:
        stats = rng.integers(0, 3, (n_nodes, d, n_bins, n_classes)).astype(np.float64)
        if rng.integers(2):  # class weights: shares that are not small fractions
            stats = stats * rng.uniform(0.5, 2, n_classes)
    rows = (stats[..., 0] > 0) + rng.integers(0, 2, (n_nodes, d, n_bins))
    return np.concatenate([stats, rows[..., None].astype(np.float64)], -1)


@pytest.mark.parametrize("criterion,n_classes", [("gini", 2), ("gini", 9), ("gini", 20),
                                                 ("entropy", 3), ("entropy", 20),
                                                 ("log_loss", 2), ("squared_error", 0)])
@given(seed=st.integers(0, 2**32 - 1))
def test_best_splits_are_the_references_bit_for_bit(criterion, n_classes, seed):
    """Every decision, tie and decrease equals the reference's: classes past 8 and 128 take
    NumPy's pairwise summation, entropy takes NumPy's logarithm."""
    rng = np.random.default_rng(seed)
    n_nodes, d, n_bins = int(rng.integers(0, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 9))
    hist = _level_histogram(rng, n_nodes, d, n_bins, criterion, n_classes)
    args = (hist, np.argsort(rng.random((n_nodes, d)), axis=1), int(rng.integers(1, d + 1)),
            criterion != "squared_error", criterion, int(rng.integers(1, 3)),
            float(rng.choice([0.0, 0.05])), float(rng.choice([1.0, 10.0])),
            float(rng.choice([0.0, 1.0])))
    expected = ref.best_splits(*args)
    got = _splits.best_splits(*args)
    for name, a, b in zip(("feature", "bin", "decrease"), got, expected):
        assert a.dtype == b.dtype and np.array_equal(a, b), (name, a, b)


def test_best_splits_of_many_classes_sum_pairwise():
    """129 classes: the pairwise summation splits the classes in halves, as NumPy does."""
    rng = np.random.default_rng(7)
    for criterion in ("gini", "entropy"):
        hist = _level_histogram(rng, 3, 4, 6, criterion, 129)
        args = (hist, np.argsort(rng.random((3, 4)), axis=1), 2, True, criterion, 1, 0.0,
                50.0, 0.0)
        for a, b in zip(_splits.best_splits(*args), ref.best_splits(*args)):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int64])
@pytest.mark.parametrize("layout", ["C", "F", "strided", "1d"])
def test_all_finite(dtype, layout):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 7)).astype(dtype)
    for bad in (None, np.nan, np.inf, -np.inf):
        Y = X.copy()
        if bad is not None and np.dtype(dtype).kind in "fc":
            Y[rng.integers(300), rng.integers(7)] = bad
        Y = {"C": Y, "F": np.asfortranarray(Y), "strided": Y[::2, ::3], "1d": Y[:, 2]}[layout]
        assert _splits.all_finite(Y) is ref.all_finite(Y) is bool(np.isfinite(Y).all())
    assert _splits.all_finite(X[:0]) is True


@pytest.mark.parametrize("n_classes", [0, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_tree_histograms_the_reference_on_one_thread_and_more(n_classes, threads):
    """The one-thread pass over the rows and the one-thread-per-feature kernel both give the
    reference's histograms, bit for bit (uniform weights, class weights, bootstrap counts)."""
    import numba

    rng = np.random.default_rng(threads + n_classes)
    n, d, n_bins, n_nodes = 500, 4, 7, 5
    binned = rng.integers(0, n_bins, (n, d)).astype(np.uint16)
    node_pos = rng.integers(-1, n_nodes, n)
    y = rng.integers(0, 3, n) if n_classes else rng.normal(size=n)
    w, counts = rng.uniform(0.5, 2, n), rng.integers(0, 3, n)
    cw = rng.uniform(0.5, 2, 3) if n_classes else None
    expected = ref.tree_histograms(binned, node_pos, y, w, counts, n_nodes, n_bins, n_classes, cw)
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("numba has one thread here")
    kernel = _forest.get_num_threads
    try:
        _forest.get_num_threads = lambda: threads  # the path the kernel takes
        got = _forest.tree_histograms(binned, node_pos, y, w, counts, n_nodes, n_bins,
                                      n_classes, cw)
    finally:
        _forest.get_num_threads = kernel
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("n_classes", [0, 3])
@pytest.mark.parametrize("with_class_weight", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_forest_histograms_the_reference_bit_for_bit(n_classes, with_class_weight, threads):
    """Several trees' nodes, each with its own features, from every row: the reference's
    histograms (each tree's gathered rows through ``tree_histograms``), bit for bit, whether
    the trees run on one thread or several; trees with no node in the histogram are skipped."""
    import numba

    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("numba has one thread here")
    rng = np.random.default_rng(7 * threads + n_classes + with_class_weight)
    n, d, n_bins, T, width, k = 700, 6, 9, 4, 6, 3
    binned = rng.integers(0, n_bins, (n, d)).astype(np.uint16)
    node_of_row = rng.integers(-1, width + 2, (T, n))
    counts = rng.integers(0, 3, (T, n))
    position = np.where(rng.random((T, width)) < 0.5, 0, -1)
    position[2] = -1  # a tree with no node here
    placed = position >= 0
    position[placed] = rng.permutation(int(placed.sum()))
    columns = np.array([rng.permutation(d)[:k] for _ in range(int(placed.sum()))])
    y = rng.integers(0, 3, n) if n_classes else rng.normal(size=n) * 1e3
    w = rng.uniform(0.5, 2, n)
    cw = rng.uniform(0.5, 2, (T, 3)) if n_classes and with_class_weight else None
    expected = ref.forest_histograms(binned, node_of_row, counts, position, columns, y, w,
                                     n_bins, n_classes, cw)
    before, setter = numba.get_num_threads(), _forest.use_kernel_threads
    try:  # the kernel's threads: ``threads`` (one tree per thread)
        _forest.use_kernel_threads = lambda: numba.set_num_threads(threads)
        got = _forest.forest_histograms(binned, node_of_row, counts, position, columns, y, w,
                                        n_bins, n_classes, cw)
    finally:
        _forest.use_kernel_threads = setter
        numba.set_num_threads(before)
    assert got.shape == expected.shape and np.array_equal(got, expected)


def test_forest_histograms_decline_out_of_range_bins_and_classes():
    binned = np.array([[0], [5]], dtype=np.uint16)
    args = (np.zeros((1, 2), np.int64), np.ones((1, 2), np.int64), np.zeros((1, 1), np.int64),
            np.zeros((1, 1), np.int64))
    assert _forest.forest_histograms(binned, *args, np.array([0, 1]), np.ones(2), 4, 2) is None
    assert _forest.forest_histograms(binned, *args, np.array([0, 2]), np.ones(2), 6, 2) is None
    assert _forest.forest_histograms(binned, *args, np.array([0, 1]), np.ones(2), 6,
                                     2) is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", ["unit", "drawn", "zeros"])
def test_incremental_step_on_ties_blocks_and_threads(monkeypatch, dtype, weights):
    """The step given ``sums_old`` on rows of a grid (rows exactly between centers, scored by the
    BLAS product) whose centers barely move, in several blocks and threaded tasks: the plain
    step's labels, its sums up to rounding, empty clusters exactly empty, the same bits for any
    thread count, and rows not read (``incremental``)."""
    monkeypatch.setattr(_kmeans, "_TASK_ROWS", 2 * _kmeans._ASSIGN_ROWS)
    rng = np.random.default_rng(5)
    n, d = 5 * _kmeans._ASSIGN_ROWS + 77, 3
    X = (rng.integers(0, 6, size=(n, d)) * 1.0 + 1e3).astype(dtype)
    X[: n // 2] += rng.normal(scale=0.01, size=(n // 2, d)).astype(dtype)  # and some off it
    offset = X.mean(0).astype(dtype)
    w = {"unit": np.broadcast_to(1.0, n), "drawn": rng.uniform(0.5, 2, n),
         "zeros": np.where(rng.uniform(size=n) < 0.3, 0.0, rng.uniform(0.5, 2, n))}[weights]
    grid = np.array([[0, 0, 0], [5, 5, 5], [0, 5, 0], [5, 0, 5], [2, 2, 2], [40, 40, 40]])
    centers_old = (grid + 1e3 - offset).astype(np.float64)
    first = np.full(n, -1, np.int32)
    labels_old, lower_old, partial_old, upper_old = _kmeans.lloyd_bounded(
        X, w, centers_old, None, first, np.zeros(n), offset)
    assert partial_old.weights[5] == 0  # the far center is empty
    centers = centers_old + 1e-9 * rng.normal(size=centers_old.shape)
    runs = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(_kmeans, "kernel_threads", lambda t=threads: t)
        labels, lower, inc, upper = _kmeans.lloyd_bounded(
            X, w, centers, centers_old, labels_old, lower_old, offset, upper_old, partial_old)
        plain_labels, plain = _kmeans.lloyd_local(X, w, centers, labels_old, offset)
        assert inc.incremental == 1
        np.testing.assert_array_equal(labels, plain_labels)
        np.testing.assert_allclose(inc.sums, plain.sums, rtol=0,
                                   atol=1e-12 * np.abs(plain.sums).max())
        np.testing.assert_allclose(inc.weights, plain.weights, rtol=1e-12)
        assert np.array_equal(inc.weights == 0, plain.weights == 0) and inc.sums[5].tolist() \
            == [0.0] * d
        assert inc.n_changed == plain.n_changed
        assert _valid_bounds(X, offset, centers, labels, lower)
        assert _valid_upper(X, offset, centers, labels, upper)
        runs.append((labels.tobytes(), lower.tobytes(), upper.tobytes(), inc.sums.tobytes(),
                     inc.weights.tobytes()))
    assert runs[0] == runs[1] == runs[2]


def test_layouts_and_read_only_shards_share_compiled_specializations():
    """Fortran-ordered, strided and read-only shards are served by the specializations of the
    C-ordered and strided ones (one compilation per dtype and C-or-other layout, not one per
    layout and writability): the kernel is never compiled for a writable or an 'F' shard, and
    every variant gives the same bits."""
    from spmdlearn_cpu import _transform

    rng = np.random.default_rng(5)
    X = rng.normal(size=(40, 3))
    read_only = X.copy()
    read_only.flags.writeable = False
    fortran_read_only = np.asfortranarray(X)
    fortran_read_only.flags.writeable = False
    variants = [X, np.asfortranarray(X), np.hstack([X, X])[:, ::2], read_only,
                fortran_read_only, X.astype(np.float32), np.asfortranarray(X, np.float32)]
    shift, scale = rng.normal(size=3), rng.normal(size=3)
    for V in variants:
        got = _transform.affine_transform(V, shift.astype(V.dtype), scale.astype(V.dtype))
        np.testing.assert_array_equal(got, ref.affine_transform(V, shift.astype(V.dtype),
                                                                scale.astype(V.dtype)))
    shards = {sig[0] for sig in _transform._affine.__wrapped__.signatures}
    assert all(not t.mutable and t.layout in "CA" for t in shards), shards
    assert len(shards) <= 4, shards  # {float32, float64} x {C, A}
