"""Values near the float64 limit on one rank: spmdlearn does what scikit-learn does on the
gathered rows (the same fitted values, inf and nan included, or the same exception type), on
every rank, and its messages name the overflow and the rank whose rows cause it.

Co-moments (sums of products) of values above ~1.3e154 overflow, where scikit-learn's
decompositions of the rows (SVD, least squares) do not: spmdlearn then takes them again on
columns scaled by powers of two, and unscales its results exactly."""

import warnings

import numpy as np
import pytest
import sklearn.covariance
import sklearn.decomposition
import sklearn.linear_model
import sklearn.preprocessing

from spmdlearn.basic_statistics import BasicStatistics, IncrementalBasicStatistics
from spmdlearn.cluster import KMeans

from spmdlearn.covariance import EmpiricalCovariance, IncrementalEmpiricalCovariance
from spmdlearn.decomposition import PCA, IncrementalPCA
from spmdlearn.ensemble import RandomForestClassifier
from spmdlearn.linear_model import IncrementalLinearRegression, LinearRegression, Ridge
from spmdlearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from spmdlearn_conformance import assert_all_ranks

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(60)]

# 1e308: squares overflow, sums do not; 1e154: squares do not, but a sum of two of them
# does, and the co-moments span 1e308 to 1 (a graded covariance). The y tests take -1e200.
BIG = (1e308, 1e154)


def _shard(comm, big=1e308, where="X", count=1):
    """Uneven shards, the last rank empty when there are several; ``count`` rows of ``big`` in
    the first column of X (or in y, ``where="y"``) on ``bad`` (a rank with rows)."""
    rng = np.random.RandomState(0)
    sizes = [30 + 11 * r for r in range(comm.size)]
    if comm.size > 1:
        sizes[-1] = 0
    X = rng.randn(sum(sizes), 3)
    y = X @ np.array([1.0, 2.0, -1.0]) + 0.1 * rng.randn(sum(sizes))
    bad = 0 if comm.size < 3 else 1
    lo = sum(sizes[:bad])
    for row in range(lo + 2, lo + 2 + count):
        if where == "X":
            X[row, 0] = big
        else:
            y[row] = big
    lo = sum(sizes[:comm.rank])
    sl = slice(lo, lo + sizes[comm.rank])
    return X[sl], y[sl], X, y, bad


def _basic_reference(X):
    with np.errstate(all="ignore"):
        mean = X.mean(axis=0)
        return {"min_": X.min(axis=0), "max_": X.max(axis=0), "sum_": X.sum(axis=0),
                "mean_": mean, "sum_squares_": (X ** 2).sum(axis=0),
                "variance_": X.var(axis=0, ddof=1)}


BASIC = ("min_", "max_", "sum_", "mean_", "sum_squares_", "variance_")
IPCA_ATTRIBUTES = ("mean_", "var_", "components_", "explained_variance_",
                   "explained_variance_ratio_", "singular_values_", "noise_variance_")

# name: (spmdlearn factory, scikit-learn factory (given the number of rows), attributes,
# uses y). scikit-learn's IncrementalPCA is fed all rows in one batch: that is its exact SVD,
# the decomposition it approximates batch by batch (with values near 1e308, merging batches of
# the mean-corrected rows loses its small directions, so its result depends on batch_size).
CASES = {
    "StandardScaler": (StandardScaler, lambda n: sklearn.preprocessing.StandardScaler(),
                       ("mean_", "var_", "scale_"), False),
    "MinMaxScaler": (MinMaxScaler, lambda n: sklearn.preprocessing.MinMaxScaler(),
                     ("data_min_", "data_max_", "data_range_", "scale_", "min_"), False),
    "MaxAbsScaler": (MaxAbsScaler, lambda n: sklearn.preprocessing.MaxAbsScaler(),
                     ("max_abs_", "scale_"), False),
    "IncrementalPCA": (lambda: IncrementalPCA(2),
                       lambda n: sklearn.decomposition.IncrementalPCA(2, batch_size=n),
                       IPCA_ATTRIBUTES, False),
    "IncrementalPCA batches": (lambda: IncrementalPCA(2, batch_size=7),
                               lambda n: sklearn.decomposition.IncrementalPCA(2, batch_size=n),
                               IPCA_ATTRIBUTES, False),
    "PCA": (lambda: PCA(2), lambda n: sklearn.decomposition.PCA(2),
            ("mean_", "explained_variance_", "singular_values_"), False),
    "PCA full": (lambda: PCA(2, svd_solver="full"),
                 lambda n: sklearn.decomposition.PCA(2, svd_solver="full"),
                 ("mean_", "components_", "explained_variance_", "singular_values_",
                  "noise_variance_"), False),
    "EmpiricalCovariance": (EmpiricalCovariance, lambda n: sklearn.covariance.EmpiricalCovariance(),
                            ("location_", "covariance_"), False),
    "EmpiricalCovariance assume_centered": (
        lambda: EmpiricalCovariance(assume_centered=True),
        lambda n: sklearn.covariance.EmpiricalCovariance(assume_centered=True),
        ("location_", "covariance_"), False),
    "IncrementalEmpiricalCovariance": (
        lambda: IncrementalEmpiricalCovariance(batch_size=7),
        lambda n: sklearn.covariance.EmpiricalCovariance(), ("location_", "covariance_"), False),
    "BasicStatistics": (BasicStatistics, None, BASIC, False),
    "IncrementalBasicStatistics": (lambda: IncrementalBasicStatistics(batch_size=7), None,
                                   BASIC, False),
    "LinearRegression": (LinearRegression, lambda n: sklearn.linear_model.LinearRegression(),
                         ("coef_", "intercept_", "rank_"), True),
    "LinearRegression no intercept": (
        lambda: LinearRegression(fit_intercept=False),
        lambda n: sklearn.linear_model.LinearRegression(fit_intercept=False),
        ("coef_", "intercept_", "rank_"), True),
    "IncrementalLinearRegression": (
        lambda: IncrementalLinearRegression(batch_size=7),
        lambda n: sklearn.linear_model.LinearRegression(), ("coef_", "intercept_"), True),
    "Ridge": (Ridge, lambda n: sklearn.linear_model.Ridge(), ("coef_", "intercept_"), True),
}


# Built on co-moments, which are taken again on scaled columns when they overflow: finite
# results come without a warning.
SCALED = {"IncrementalPCA", "IncrementalPCA batches", "PCA", "EmpiricalCovariance",
          "EmpiricalCovariance assume_centered", "IncrementalEmpiricalCovariance",
          "LinearRegression", "LinearRegression no intercept", "IncrementalLinearRegression",
          "Ridge"}


def _fit(factory, X, y, uses_y):
    """(exception type name or None, fitted estimator or None, messages of warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est = factory().fit(X, y) if uses_y else factory().fit(X)
            return None, est, [str(w.message) for w in caught]
        except Exception as exc:  # noqa: BLE001 - compared with scikit-learn's below
            return type(exc).__name__, exc, [str(w.message) for w in caught]


def _same_values(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    if not (np.array_equal(np.isnan(a), np.isnan(b))
            and np.array_equal(np.isposinf(a), np.isposinf(b))
            and np.array_equal(np.isneginf(a), np.isneginf(b))):
        return False
    fin = np.isfinite(a)
    return np.allclose(a[fin], b[fin], rtol=1e-6, atol=1e-9 * (np.abs(b[fin]).max(initial=1)))


def _check_against_sklearn(world, case, ours, theirs, attributes, uses_y, X, y, X_all, y_all,
                           bad):
    raised, est, messages = _fit(ours, X, y, uses_y)
    if theirs is None:
        ref_raised, ref = None, _basic_reference(X_all)
    else:
        ref_raised, ref, _ = _fit(lambda: theirs(X_all.shape[0]), X_all, y_all, uses_y)
        ref = None if ref_raised else {a: getattr(ref, a) for a in attributes}
    assert_all_ranks(world, raised == ref_raised,
                     f"{case}: spmdlearn raised {raised}, scikit-learn {ref_raised}: {est}")
    if raised is None:
        for a in attributes:
            assert_all_ranks(world, _same_values(getattr(est, a), ref[a]),
                             f"{case}.{a}: {getattr(est, a)} vs scikit-learn {ref[a]}")
        # identical on every rank, inf and nan included
        for a in attributes:
            got = world.allgather(np.asarray(getattr(est, a)).tobytes())
            assert_all_ranks(world, len(set(got)) == 1, f"{case}.{a} differs across ranks")
        text = " | ".join(messages)
        if not all(np.isfinite(np.asarray(getattr(est, a), dtype=float)).all()
                   for a in attributes):
            assert_all_ranks(world, "overflow" in text and f"rank {bad}" in text,
                             f"{case}: non-finite result without a warning naming the "
                             f"overflow and rank {bad}: {text!r}")
        elif case in SCALED:
            assert_all_ranks(world, "overflow" not in text,
                             f"{case}: finite results, yet a warning of overflow: {text!r}")
    elif world.size > 1:  # one process: no rank to name
        text = str(est)
        assert_all_ranks(world, "overflow" in text and f"rank {bad}" in text,
                         f"{case}: error does not name the overflow and rank {bad}: {text!r}")


@pytest.mark.parametrize("big", BIG)
@pytest.mark.parametrize("case", CASES)
def test_overflow_matches_sklearn_on_gathered_rows(world, case, big):
    X, y, X_all, y_all, bad = _shard(world, big)
    _check_against_sklearn(world, case, *CASES[case], X, y, X_all, y_all, bad)


LINEAR = ("LinearRegression", "LinearRegression no intercept", "IncrementalLinearRegression",
          "Ridge")


@pytest.mark.parametrize("big", (1e308, -1e200))
@pytest.mark.parametrize("case", LINEAR)
def test_overflow_in_y_matches_sklearn(world, case, big):
    X, y, X_all, y_all, bad = _shard(world, big, where="y")
    _check_against_sklearn(world, case, *CASES[case], X, y, X_all, y_all, bad)


# Two values of 1e308 in one column: its sum overflows, so scikit-learn's mean is inf.
SUMS = ("LinearRegression", "LinearRegression no intercept", "EmpiricalCovariance",
        "EmpiricalCovariance assume_centered", "PCA", "BasicStatistics", "StandardScaler")


@pytest.mark.parametrize("case", SUMS)
def test_overflowing_sum_matches_sklearn(world, case):
    X, y, X_all, y_all, bad = _shard(world, 1e308, count=2)
    _check_against_sklearn(world, case, *CASES[case], X, y, X_all, y_all, bad)


@pytest.mark.parametrize("solver", ("covariance_eigh", "full"))
def test_pca_of_a_graded_covariance_is_the_svd_of_the_rows(world, solver):
    """1e154 in one column: X^T X is finite but spans 1e308 to 1, and the eigh of such a
    covariance (scikit-learn's covariance_eigh) loses its small directions; spmdlearn gives the
    decomposition that scikit-learn's SVD of the rows gives ("full")."""
    X, y, X_all, y_all, bad = _shard(world, 1e154)
    ours = PCA(2, svd_solver=solver).fit(X)
    ref = sklearn.decomposition.PCA(2, svd_solver="full").fit(X_all)
    for a in ("mean_", "components_", "explained_variance_", "singular_values_",
              "noise_variance_"):
        assert_all_ranks(world, _same_values(getattr(ours, a), getattr(ref, a)),
                         f"PCA({solver}).{a}: {getattr(ours, a)} vs {getattr(ref, a)}")


def test_ridge_svd_solves_without_the_normal_equations(world):
    """scikit-learn's solver="cholesky" refuses the overflowed normal equations; "svd" solves
    the same problem, which spmdlearn does exactly: it equals scikit-learn's cholesky on the
    rows with the big column divided by 2**1024 and its coefficient unscaled."""
    X, y, X_all, y_all, bad = _shard(world, 1e308)
    ours = Ridge(alpha=1e-300, solver="svd").fit(X, y)
    Z = X_all.copy()
    Z[:, 0] = np.ldexp(Z[:, 0], -1024)
    # alpha on the scaled column is alpha * 2**-2048: zero, as 1e-300 is beside 1e308**2.
    ref = sklearn.linear_model.Ridge(alpha=1e-300, solver="cholesky").fit(Z, y_all)
    coef = ref.coef_.copy()
    coef[0] = np.ldexp(coef[0], -1024)
    assert_all_ranks(world, np.allclose(ours.coef_, coef, rtol=1e-8, atol=0)
                     and np.isclose(ours.intercept_, ref.intercept_, rtol=1e-8),
                     f"Ridge(svd) {ours.coef_}, {ours.intercept_} vs {coef}, {ref.intercept_}")


def test_normal_input_is_not_scaled(world):
    """Without values near the limit the co-moments are the contract's, bitwise."""
    from spmdlearn.collective import allreduce
    from spmdlearn.reference import COMOMENTS

    X, y, *_ = _shard(world, big=0.0)
    est = LinearRegression().fit(X, y)
    p = allreduce(COMOMENTS, X, y, None, comm=world)
    from spmdlearn.reference._linear import linear_solve
    coef, intercept, _, _ = linear_solve(p, 3)
    assert_all_ranks(world, np.array_equal(est.coef_, coef[0])
                     and est.intercept_ == intercept[0], "normal input: a different model")


def test_linear_regression_overflow_error_names_rank_and_overflow(world):
    if world.size == 1:
        pytest.skip("needs two ranks")
    X, y, X_all, y_all, bad = _shard(world, count=2)
    raised, exc, _ = _fit(LinearRegression, X, y, True)
    assert_all_ranks(world, raised == "ValueError",
                     f"LinearRegression on a column whose sum overflows raised {raised}")
    text = str(exc)
    assert_all_ranks(world, "overflow" in text and f"rank {bad}" in text,
                     f"LinearRegression error does not name the overflow and rank {bad}: {text!r}")


def test_kmeans_on_rows_near_the_float64_limit_is_sklearns(world):
    """scikit-learn's KMeans fits such rows (with numpy's overflow warnings): spmdlearn's does
    the same on every rank, with the same centers, and names the rank whose rows overflow."""
    from sklearn.cluster import KMeans as SkKMeans

    X, y, X_all, y_all, bad = _shard(world)
    raised, est, messages = _fit(lambda: KMeans(3, n_init=1, random_state=0), X, y, False)
    sk_raised, sk, _ = _fit(lambda: SkKMeans(3, n_init=1, random_state=0), X_all, y_all, False)
    assert_all_ranks(world, raised == sk_raised,
                     f"KMeans raised {raised!r}, scikit-learn {sk_raised!r}")
    if raised is None:
        assert_all_ranks(world, _same_values(est.cluster_centers_, sk.cluster_centers_),
                         "KMeans centers differ from scikit-learn's on the gathered rows")
    named = any("overflow" in m and (f"rank {bad}" in m or f"ranks {bad}," in m)
                for m in messages + ([] if raised is None else [str(est)]))
    assert_all_ranks(world, named, f"no message names the overflow and rank {bad}: {messages}")


# random_state=None: rank 0 draws one seed from its global generator and every rank uses it.
UNSEEDED = {
    "KMeans k-means++": lambda rs: KMeans(3, n_init=1, max_iter=1, random_state=rs),
    "KMeans random": lambda rs: KMeans(3, n_init=2, init="random", max_iter=1, random_state=rs),
    "RandomForestClassifier": lambda rs: RandomForestClassifier(3, max_depth=3, random_state=rs),
}


@pytest.mark.parametrize("case", UNSEEDED)
def test_unseeded_model_is_rank_zeros_seed_on_every_rank(world, case):
    X, y, *_ = _shard(world, big=0.0)
    y = (y > 0).astype(np.int64)
    np.random.seed(1000 + 17 * world.rank)  # each rank seeds NumPy differently
    unseeded = UNSEEDED[case](None).fit(X, y)
    seed = np.random.RandomState(1000).randint(np.iinfo(np.int32).max)  # rank 0's draw
    seeded = UNSEEDED[case](int(seed)).fit(X, y)
    attr = "cluster_centers_" if case.startswith("KMeans") else "feature_importances_"
    got = np.asarray(getattr(unseeded, attr))
    assert_all_ranks(world, np.array_equal(got, getattr(seeded, attr)),
                     f"{case} with random_state=None is not the model of rank 0's seed {seed}")
    same = world.allgather(got.tobytes())
    assert_all_ranks(world, len(set(same)) == 1, f"{case}.{attr} differs across ranks")
