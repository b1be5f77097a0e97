"""Checks 3 to 6 for each estimator: agreement with scikit-learn, rank-count invariance, the
collective-error matrix, and output placement. All of them are collective."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._arrays import same_place, to_type, type_name
from ._assert import assert_raises_on_all_ranks
from ._data import local_rows, make_data, random_cuts
from ._tolerances import tolerance


@dataclass(frozen=True)
class EstimatorSpec:
    """How the suite drives one estimator."""

    name: str
    make: Callable  #: () -> spmdlearn estimator
    expected: Callable  #: (X, y, w) -> {attribute: value} from scikit-learn/NumPy on all rows
    supervised: bool
    weighted: bool  #: accepts sample_weight
    per_row: Callable | None = None  #: (fitted, X_local) -> per-row result, for placement
    bad_param: Callable | None = None  #: () -> estimator with an out-of-range parameter
    data: Callable | None = None  #: (seed, dtype, n, d) -> (X, y, w); default: _data's
    per_row_attributes: tuple = ()  #: attributes holding this rank's rows (e.g. labels_)
    keeps_dtype: bool = True  #: float32 in gives float32 attributes (scikit-learn's rule)
    #: attributes that are float64 whatever the input, as scikit-learn's are
    #: (EmpiricalCovariance's ``covariance_`` and ``precision_``, from ``np.cov``)
    float64_attributes: tuple = ()

    def fit(self, est, X, y, w):
        kwargs = {"sample_weight": w} if self.weighted and w is not None else {}
        return est.fit(X, y, **kwargs) if self.supervised else est.fit(X, **kwargs)


def _basic_statistics_expected(X, y, w):
    Z = X * (1 if w is None else w[:, None])
    mean = Z.mean(0)
    std = Z.std(0, ddof=1)
    return {"mean_": mean, "variance_": Z.var(0, ddof=1), "min_": Z.min(0), "max_": Z.max(0),
            "sum_": Z.sum(0), "standard_deviation_": std, "variation_": std / mean,
            "sum_squares_": (Z ** 2).sum(0), "sum_squares_centered_": ((Z - mean) ** 2).sum(0),
            "second_order_raw_moment_": (Z ** 2).mean(0)}


def _covariance_expected(X, y, w):
    from sklearn.covariance import EmpiricalCovariance

    ref = EmpiricalCovariance().fit(X)
    return {"covariance_": ref.covariance_, "location_": ref.location_,
            "precision_": ref.precision_}


def _linear_expected(cls_name, **params):
    def expected(X, y, w):
        from sklearn import linear_model

        ref = getattr(linear_model, cls_name)(**params).fit(X, y, sample_weight=w)
        return {"coef_": ref.coef_, "intercept_": ref.intercept_}
    return expected


def _pca_expected(solver):
    def expected(X, y, w):
        from sklearn.decomposition import PCA

        ref = PCA(n_components=3, svd_solver=solver).fit(X)
        return {name: getattr(ref, name) for name in (
            "components_", "explained_variance_", "explained_variance_ratio_",
            "singular_values_", "mean_", "noise_variance_")}
    return expected


def _kmeans_expected(X, y, w):
    from sklearn.cluster import KMeans

    ref = KMeans(4, random_state=0).fit(X, sample_weight=w)
    return {"cluster_centers_": ref.cluster_centers_, "inertia_": ref.inertia_,
            "n_iter_": ref.n_iter_}


def _dbscan_expected(X, y, w):
    from sklearn.cluster import DBSCAN

    ref = DBSCAN(eps=1.0, min_samples=4).fit(X, sample_weight=w)
    return {"labels_": ref.labels_}


def _scaler_expected(name, *attrs):
    def expected(X, y, w):
        from sklearn import preprocessing

        ref = getattr(preprocessing, name)().fit(X, sample_weight=w) if w is not None else \
            getattr(preprocessing, name)().fit(X)
        return {a: getattr(ref, a) for a in attrs}
    return expected


def _classes(seed, dtype, n, d):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=d, n_informative=3, n_classes=3,
                               random_state=seed)
    # No offset: far from the origin the logistic problem is ill-conditioned for any solver.
    w = np.random.default_rng(seed).uniform(0.5, 2.0, n).astype(dtype)
    return X.astype(dtype), y, w


def _logistic_expected(X, y, w):
    from sklearn.linear_model import LogisticRegression

    ref = LogisticRegression(tol=1e-10, max_iter=1000).fit(X, y, sample_weight=w)
    return {"coef_": ref.coef_, "intercept_": ref.intercept_, "n_iter_": ref.n_iter_}


def _near_origin(seed, dtype, n, d):
    # scikit-learn's brute force expands ||x - y||^2, which loses digits far from the origin;
    # spmdlearn subtracts coordinates. Compare where both are exact.
    X, y = make_data(seed, n, d, 1, dtype=dtype)
    return X, y, None


def _knn_expected(X, y, w):
    from sklearn.neighbors import KNeighborsRegressor

    ref = KNeighborsRegressor(5, algorithm="brute").fit(X, y)
    return {"_prediction": ref.predict(X)}


def _forest_expected(X, y, w):
    """The reference backend's forest on one rank with all rows: a backend, any split and any
    number of ranks must grow the same one (histogram trees have no scikit-learn twin)."""
    import spmdlearn
    from spmdlearn.comm import self_comm
    from spmdlearn.ensemble import RandomForestClassifier

    with spmdlearn.config_context(comm=self_comm(), backend="reference"):
        est = RandomForestClassifier(5, max_depth=4, random_state=0).fit(X, y, sample_weight=w)
        proba = est.predict_proba(X)
    return {"feature_importances_": est.feature_importances_, "_proba": proba}


def _specs():
    from spmdlearn.basic_statistics import BasicStatistics, IncrementalBasicStatistics
    from spmdlearn.cluster import DBSCAN, KMeans
    from spmdlearn.covariance import EmpiricalCovariance, IncrementalEmpiricalCovariance
    from spmdlearn.decomposition import PCA, IncrementalPCA
    from spmdlearn.linear_model import (
        IncrementalLinearRegression,
        LinearRegression,
        LogisticRegression,
        Ridge,
    )
    from spmdlearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    return {
        "BasicStatistics": EstimatorSpec(
            "BasicStatistics", BasicStatistics, _basic_statistics_expected, False, True,
            bad_param=lambda: BasicStatistics(result_options="median")),
        "EmpiricalCovariance": EstimatorSpec(
            "EmpiricalCovariance", EmpiricalCovariance, _covariance_expected, False, False,
            per_row=lambda est, X: est.mahalanobis(X),
            bad_param=lambda: EmpiricalCovariance(store_precision="yes"),
            float64_attributes=("covariance_", "precision_")),
        "LinearRegression": EstimatorSpec(
            "LinearRegression", LinearRegression, _linear_expected("LinearRegression"), True, True,
            per_row=lambda est, X: est.predict(X),
            bad_param=lambda: LinearRegression(fit_intercept="no")),
        "Ridge": EstimatorSpec(
            "Ridge", lambda: Ridge(alpha=1.5), _linear_expected("Ridge", alpha=1.5, solver="cholesky"),
            True, True, per_row=lambda est, X: est.predict(X),
            bad_param=lambda: Ridge(alpha=-1.0)),
        "PCA": EstimatorSpec(
            "PCA", lambda: PCA(n_components=3, svd_solver="full"), _pca_expected("full"), False,
            False, per_row=lambda est, X: est.transform(X),
            bad_param=lambda: PCA(n_components=-1)),
        # Compared with scikit-learn's full SVD: its own covariance_eigh forms X^T X - n m m^T,
        # which cancels far from the origin, where spmdlearn's merged co-moments do not.
        "PCA(covariance_eigh)": EstimatorSpec(
            "PCA", lambda: PCA(n_components=3, svd_solver="covariance_eigh"),
            _pca_expected("full"), False, False,
            per_row=lambda est, X: est.transform(X), bad_param=lambda: PCA(svd_solver="lu")),
        "KMeans": EstimatorSpec(
            "KMeans", lambda: KMeans(4, random_state=0), _kmeans_expected, False, True,
            per_row=lambda est, X: est.predict(X), bad_param=lambda: KMeans(0), data=_blobs),
        "DBSCAN": EstimatorSpec(
            "DBSCAN", lambda: DBSCAN(eps=1.0, min_samples=4), _dbscan_expected, False, True,
            per_row=lambda est, X: est.fit_predict(X), bad_param=lambda: DBSCAN(eps=-1.0),
            data=_blobs, per_row_attributes=("labels_",)),
        "LogisticRegression": EstimatorSpec(
            "LogisticRegression", lambda: LogisticRegression(tol=1e-10, max_iter=1000),
            _logistic_expected, True, True, per_row=lambda est, X: est.predict_proba(X),
            bad_param=lambda: LogisticRegression(C=-1.0), data=_classes),
        "KNeighborsRegressor": EstimatorSpec(
            "KNeighborsRegressor", lambda: _PredictingKNN(5), _knn_expected,
            True, False, per_row=lambda est, X: est.predict(X),
            bad_param=lambda: _PredictingKNN(weights="nearest"),
            per_row_attributes=("_prediction",), data=_near_origin),
        "RandomForestClassifier": EstimatorSpec(
            "RandomForestClassifier", lambda: _ProbaForest(5, max_depth=4, random_state=0),
            _forest_expected, True, True, per_row=lambda est, X: est.predict(X),
            bad_param=lambda: _ProbaForest(max_depth=0), data=_classes,
            per_row_attributes=("_proba",), keeps_dtype=False),
        # Incremental estimators: fit = batches of 5 rows per rank + finalize_fit.
        "IncrementalBasicStatistics": EstimatorSpec(
            "BasicStatistics", lambda: IncrementalBasicStatistics(batch_size=5),
            _basic_statistics_expected, False, True,
            bad_param=lambda: IncrementalBasicStatistics(batch_size=0)),
        "IncrementalEmpiricalCovariance": EstimatorSpec(
            "EmpiricalCovariance", lambda: IncrementalEmpiricalCovariance(
                store_precision=True, batch_size=5), _covariance_expected, False, False,
            per_row=lambda est, X: est.mahalanobis(X),
            bad_param=lambda: IncrementalEmpiricalCovariance(batch_size=-2),
            float64_attributes=("covariance_", "precision_")),
        "IncrementalLinearRegression": EstimatorSpec(
            "LinearRegression", lambda: IncrementalLinearRegression(batch_size=5),
            _linear_expected("LinearRegression"), True, True,
            per_row=lambda est, X: est.predict(X),
            bad_param=lambda: IncrementalLinearRegression(batch_size=0)),
        "IncrementalPCA": EstimatorSpec(
            "PCA", lambda: IncrementalPCA(n_components=3, batch_size=5), _pca_expected("full"),
            False, False, per_row=lambda est, X: est.transform(X),
            bad_param=lambda: IncrementalPCA(n_components=0),
            # scikit-learn's IncrementalPCA keeps its statistics in float64 (its running mean
            # and variance; the SVD of float64 stacks after the first batch)
            float64_attributes=("components_", "explained_variance_",
                                "explained_variance_ratio_", "singular_values_", "mean_")),
        "StandardScaler": EstimatorSpec(
            "StandardScaler", StandardScaler, _scaler_expected("StandardScaler", "mean_", "var_",
                                                               "scale_"), False, True,
            per_row=lambda est, X: est.transform(X),
            bad_param=lambda: StandardScaler(with_mean="yes"),
            keeps_dtype=False),  # as scikit-learn's: statistics in float64 whatever the input
        "MinMaxScaler": EstimatorSpec(
            "MinMaxScaler", MinMaxScaler, _scaler_expected("MinMaxScaler", "data_min_",
                                                           "data_max_", "scale_", "min_"),
            False, False, per_row=lambda est, X: est.transform(X),
            bad_param=lambda: MinMaxScaler(feature_range=(2, 1))),
        "MaxAbsScaler": EstimatorSpec(
            "MaxAbsScaler", MaxAbsScaler, _scaler_expected("MaxAbsScaler", "max_abs_", "scale_"),
            False, False, per_row=lambda est, X: est.transform(X),
            bad_param=lambda: MaxAbsScaler(copy="no")),
    }



def _blobs(seed, dtype, n, d):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=n, centers=4, n_features=d, random_state=seed)
    offset = (1e6 if dtype == np.float64 else 1e2) if seed % 2 else 0.0
    return (X + offset).astype(dtype), None, None


def _data(spec, seed, dtype, n=96, d=5):
    if spec.data is not None:
        return spec.data(seed, dtype, n, d)
    # Odd seeds put the columns far from the origin, where naive sums of squares cancel.
    offset = (1e6 if dtype == np.float64 else 1e2) if seed % 2 else 0.0
    X, y = make_data(seed, n, d, 1 if spec.supervised else 0, dtype=dtype, offset=offset)
    w = (np.random.default_rng(seed).uniform(0.2, 2.0, n).astype(dtype) if spec.weighted else None)
    return X, y, w


def _attributes(est, names):
    from ._arrays import to_numpy

    return {name: np.asarray(to_numpy(getattr(est, name)), dtype=np.float64) for name in names}


def _worst(actual: dict, expected: dict) -> tuple[str, float]:
    worst_name, worst = "", 0.0
    for name, ref in expected.items():
        ref = np.asarray(ref, np.float64)
        got = actual[name]
        if got.shape != ref.shape:
            return name, np.inf
        finite = np.isfinite(ref)
        if not np.array_equal(finite, np.isfinite(got)):
            return name, np.inf
        scale = float(np.max(np.abs(ref[finite]), initial=0.0)) or 1.0
        err = float(np.max(np.abs(got[finite] - ref[finite]), initial=0.0)) / scale
        if err > worst:
            worst_name, worst = name, err
    return worst_name, worst


def _fed(arrays, array_type):
    return [to_type(a, array_type) for a in arrays]


def check_agreement(spec: EstimatorSpec, comm, dtype, seeds=(0, 1),
                    array_type: str = "numpy") -> tuple[str, str]:
    """Agreement with scikit-learn on the gathered data, random uneven splits (empties included),
    near and far from the origin; the shards are fed as ``array_type`` arrays."""
    rtol = tolerance(spec.name, dtype)
    worst_all = (None, 0.0)
    for seed in seeds:
        X, y, w = _data(spec, seed, dtype)
        cuts = random_cuts(len(X), comm.size, seed)
        est = spec.fit(spec.make(), *_fed(local_rows(cuts, comm.rank, X, y, w), array_type))
        expected = spec.expected(X.astype(np.float64), None if y is None else y.astype(np.float64),
                                 None if w is None else w.astype(np.float64))
        for name in spec.per_row_attributes:  # this rank's rows of the gathered result
            expected[name] = np.asarray(expected[name])[cuts[comm.rank]:cuts[comm.rank + 1]]
        actual = _attributes(est, expected)
        name, err = _worst(actual, expected)
        if err > worst_all[1]:
            worst_all = (name, err)
        digests = comm.allgather(b"".join(a.tobytes() for k, a in actual.items()
                                          if k not in spec.per_row_attributes))
        if len(set(digests)) > 1:
            return "fail", f"fitted attributes differ across ranks (seed {seed})"
        # Fitted attributes (NumPy) keep the input's float dtype; per-row ones are checked by
        # output placement.
        if spec.keeps_dtype and not all(getattr(est, n).dtype == (
                np.float64 if n in spec.float64_attributes else dtype) for n in expected
                                        if n not in spec.per_row_attributes
                                        if isinstance(getattr(est, n), np.ndarray)
                                        if getattr(est, n).dtype.kind == "f"):
            return "fail", f"output dtype is not {np.dtype(dtype).name}"
    name, err = worst_all
    if err > rtol:
        return "fail", f"{name}: relative error {err:.2g} > {rtol:g}"
    return "pass", f"worst relative error {err:.1e} (tolerance {rtol:g})"


def check_rank_count_invariance(spec: EstimatorSpec, comm,
                                array_type: str = "numpy") -> tuple[str, str]:
    """The same model from all ranks, from half of them, and from one rank, on the same rows."""
    X, y, w = _data(spec, 7, np.float64)
    groups = {"all": comm}
    if comm.size > 1:
        groups["half"] = comm.split(comm.rank % 2, comm.rank)
    from spmdlearn.comm import self_comm

    groups["one"] = self_comm()
    import spmdlearn

    models = {}
    sizes = {}
    for label, group in groups.items():
        cuts = random_cuts(len(X), group.size, 3)
        with spmdlearn.config_context(comm=group):
            est = spec.fit(spec.make(), *_fed(local_rows(cuts, group.rank, X, y, w), array_type))
        models[label] = _attributes(est, spec.expected(X, y, w))
        for name in spec.per_row_attributes:  # compare the rows of all ranks of the group
            models[label][name] = group.allgather_rows(models[label][name])
        sizes[label] = group.size
    counts = sorted({s for group_sizes in comm.allgather(tuple(sizes.values())) for s in group_sizes})
    worst = max(_worst(models[label], models["all"])[1] for label in models)
    ok = worst <= 1e-9
    return ("pass" if ok else "fail"), (f"rank counts {counts}: worst relative difference "
                                        f"{worst:.1e} (tolerance 1e-9)")


def error_matrix(spec: EstimatorSpec, comm) -> list[tuple[str, Callable, type, str]]:
    """Bad inputs, each expected to raise the same exception on every rank.

    Entries: (name, fit-thunk, expected exception type, regex the message must match).
    """
    X, y, _ = _data(spec, 11, np.float64, n=8 * comm.size)
    per = 8
    lo, hi = comm.rank * per, (comm.rank + 1) * per
    Xl, yl = X[lo:hi].copy(), None if y is None else y[lo:hi].copy()
    bad = comm.size - 1
    here = comm.rank == bad
    tag = rf"rank {bad}" if comm.size > 1 else ""

    def fit(X_, y_=yl, make=spec.make):
        return lambda: spec.fit(make(), X_, y_, None)

    def with_value(value):
        Xb = Xl.copy()
        if here:
            Xb[0, 0] = value
        return Xb

    from sklearn.utils import get_tags

    # Estimators that take NaN as missing data (the scalers, tag allow_nan) still refuse infinity.
    nan_refused = [] if get_tags(spec.make()).input_tags.allow_nan else [
        ("NaN on one rank", fit(with_value(np.nan)), ValueError, rf"{tag}.*NaN")]
    entries = nan_refused + [
        ("inf on one rank", fit(with_value(np.inf)), ValueError, rf"{tag}.*infinity"),
        ("1-D X on one rank", fit(Xl[:, 0] if here else Xl), ValueError, rf"{tag}.*2D array"),
        ("empty on every rank", fit(Xl[:0], None if yl is None else yl[:0]), ValueError,
         r"n_samples=0 should be >= 1"),
        ("parameter out of range", fit(Xl, make=spec.bad_param), ValueError,
         r"parameter|should be|must be"),
    ]
    if comm.size > 1:
        entries += [
            ("n_features differ across ranks", fit(Xl[:, :-1] if here else Xl), ValueError,
             r"n_features differs across ranks"),
            ("dtype differs across ranks", fit(Xl.astype(np.float32) if comm.rank == 0 else Xl),
             ValueError, r"dtype differs across ranks"),
        ]
    if spec.supervised:
        entries += [
            ("y length wrong on one rank", fit(Xl, yl[:-1] if here else yl), ValueError,
             rf"{tag}.*inconsistent numbers of samples"),
            ("y missing on one rank", fit(Xl, None if here else yl), ValueError,
             rf"{tag}.*requires y"),
        ]
    return entries


def check_collective_errors(spec: EstimatorSpec, comm) -> tuple[str, str]:
    failures = []
    entries = error_matrix(spec, comm)
    for name, thunk, exc_type, match in entries:
        try:
            assert_raises_on_all_ranks(comm, exc_type, thunk, match=match)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    if failures:
        return "fail", "; ".join(failures)
    return "pass", f"{len(entries)} bad inputs raise {', '.join(sorted({e[2].__name__ for e in entries}))} on every rank"


def check_output_placement(spec: EstimatorSpec, comm, array_type: str = "numpy") -> tuple[str, str]:
    """Per-row results come back in the input's array type and on its device (for dpnp: the
    input's SYCL queue), one per local row."""
    if spec.per_row is None:
        return "n/a", "no per-row result"
    X, y, w = _data(spec, 5, np.float64)
    cuts = random_cuts(len(X), comm.size, 5)
    Xl, yl, wl = _fed(local_rows(cuts, comm.rank, X, y, w), array_type)
    est = spec.fit(spec.make(), Xl, yl, wl)
    out = spec.per_row(est, Xl)
    got = type_name(out)
    placed = same_place(out, Xl)
    ok = got == type_name(Xl) and out.shape[0] == Xl.shape[0] and placed is None
    detail = f"{array_type} in, {got} out" + (f" ({placed})" if placed else "")
    verdicts = comm.allgather(ok)
    return ("pass" if all(verdicts) else "fail"), detail


def _predicting_knn():
    from spmdlearn.neighbors import KNeighborsRegressor

    class PredictingKNN(KNeighborsRegressor):
        """KNeighborsRegressor whose fit also predicts its training rows (``_prediction``),
        so that the suite compares the model through its only global output."""

        def fit(self, X, y):
            super().fit(X, y)
            self._prediction = self.predict(X)
            return self

    return PredictingKNN


_PredictingKNN = _predicting_knn()


def _proba_forest():
    from spmdlearn.ensemble import RandomForestClassifier

    class ProbaForest(RandomForestClassifier):
        """RandomForestClassifier whose fit also predicts its training rows (``_proba``)."""

        def fit(self, X, y, sample_weight=None):
            super().fit(X, y, sample_weight)
            self._proba = self.predict_proba(X)
            return self

    return ProbaForest


_ProbaForest = _proba_forest()

#: The estimators the suite drives, by name.
SPECS = _specs()
