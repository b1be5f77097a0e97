"""Moments and co-moments: the reference kernels and their reduction contracts.

Everything here is NumPy in, NumPy out, and never communicates. Partials are float64 whatever
the input dtype; estimators cast results back to the input's dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..contract import ReductionContract

__all__ = [
    "MomentsPartial",
    "moments_local",
    "moments_combine",
    "moments_finalize",
    "MOMENTS",
    "BASIC_STATISTICS_OPTIONS",
    "ComomentsPartial",
    "comoments_local",
    "comoments_combine",
    "covariance_finalize",
    "COMOMENTS",
    "ColumnStatsPartial",
    "column_stats_local",
    "column_stats_combine",
    "COLUMN_STATS",
    "NanColumnStatsPartial",
    "nan_column_stats_local",
    "nan_column_stats_combine",
    "nan_column_stats_identity",
    "with_missing",
    "NAN_COLUMN_STATS",
]

BASIC_STATISTICS_OPTIONS = (
    "min",
    "max",
    "sum",
    "mean",
    "variance",
    "variation",
    "sum_squares",
    "sum_squares_centered",
    "standard_deviation",
    "second_order_raw_moment",
)


class MomentsPartial(NamedTuple):
    """Sufficient statistics of one shard for per-column moments and extremes.

    Reduction contract
    ------------------
    Local
        :func:`moments_local`: two passes over the shard (the mean, then centered squares).
    Combine
        :func:`moments_combine`: Chan, Golub and LeVeque's pairwise merge.
    Finalize
        :func:`moments_finalize`: any of :data:`BASIC_STATISTICS_OPTIONS`.
    Identity
        ``n=0``, ``mean=0``, ``m2=0``, ``min=+inf``, ``max=-inf``.
    """

    n: float  #: number of rows
    mean: np.ndarray  #: (n_features,) column means
    m2: np.ndarray  #: (n_features,) centered sums of squares
    min: np.ndarray  #: (n_features,)
    max: np.ndarray  #: (n_features,)


def moments_local(X: np.ndarray, sample_weight: np.ndarray | None = None) -> MomentsPartial:
    """Per-column moments of one shard.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The shard; ``n_samples`` may be 0.
    sample_weight : ndarray of shape (n_samples,), default=None
        Each row is multiplied by its weight before its statistics are taken (the definition of
        scikit-learn-intelex's BasicStatistics); weights may be negative.

    Returns
    -------
    partial : MomentsPartial
    """
    Z = np.asarray(X, dtype=np.float64)
    if sample_weight is not None:
        Z = Z * np.asarray(sample_weight, dtype=np.float64)[:, None]
    n, d = Z.shape
    if n == 0:
        return MomentsPartial(0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf), np.full(d, -np.inf))
    mean = Z.mean(axis=0)
    centered = Z - mean
    m2 = np.einsum("ij,ij->j", centered, centered)
    return MomentsPartial(float(n), mean, m2, Z.min(axis=0), Z.max(axis=0))


def moments_combine(a: MomentsPartial, b: MomentsPartial) -> MomentsPartial:
    """Merge two shards' moments (Chan et al.); exact identity for an empty shard.

    The merged mean is the weighted average of the two means and the co-moment correction is
    symmetric in ``a`` and ``b``, so ``combine(a, b)`` and ``combine(b, a)`` are bitwise equal.
    """
    if a.n == 0:
        return b
    if b.n == 0:
        return a
    n = a.n + b.n
    delta = b.mean - a.mean
    mean = (a.n * a.mean + b.n * b.mean) / n
    m2 = a.m2 + b.m2 + delta * delta * (a.n * b.n / n)
    return MomentsPartial(n, mean, m2, np.minimum(a.min, b.min), np.maximum(a.max, b.max))


def moments_finalize(p: MomentsPartial, options=BASIC_STATISTICS_OPTIONS) -> dict:
    """The requested statistics from the global moments.

    Variance and standard deviation are unbiased (divided by ``n - 1``; NaN for one row), as in
    scikit-learn-intelex. ``variation`` is the standard deviation over the mean, NaN where the
    mean is 0.

    Returns
    -------
    result : dict of str to ndarray of shape (n_features,), float64
    """
    n = p.n
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = p.m2 / (n - 1) if n > 1 else np.full_like(p.m2, np.nan)
        std = np.sqrt(variance)
        # Sums of squares are rebuilt from centered ones: both terms are non-negative, so
        # nothing cancels (unlike the naive sum of squares minus n times the squared mean).
        sum_squares = p.m2 + n * p.mean * p.mean
        everything = {
            "min": p.min,
            "max": p.max,
            "sum": n * p.mean,
            "mean": p.mean,
            "variance": variance,
            "variation": np.where(p.mean != 0, std / np.where(p.mean != 0, p.mean, 1), np.nan),
            "sum_squares": sum_squares,
            "sum_squares_centered": p.m2,
            "standard_deviation": std,
            "second_order_raw_moment": sum_squares / n if n > 0 else np.full_like(p.m2, np.nan),
        }
    return {name: everything[name] for name in options}


MOMENTS = ReductionContract("moments", moments_local, moments_combine, moments_finalize,
                            kernel="moments_local")


class ComomentsPartial(NamedTuple):
    """Sufficient statistics of one shard for (weighted) means and the co-moment matrix.

    Columns are those of ``[X, Y]``: the features, then the targets (if any).

    Reduction contract
    ------------------
    Local
        :func:`comoments_local`: weighted mean, then ``(Z - mean).T @ diag(w) @ (Z - mean)``.
    Combine
        :func:`comoments_combine`: the matrix form of Chan et al.'s merge,
        ``C = Ca + Cb + (Wa Wb / W) delta delta^T``.
    Finalize
        :func:`covariance_finalize` (EmpiricalCovariance); the linear models solve from it
        (:mod:`spmdlearn.reference._linear`).
    Identity
        ``n_rows=0``, ``weight=0``, ``mean=0``, ``comoment=0``.
    """

    n_rows: float  #: number of rows
    weight: float  #: sum of sample weights (``n_rows`` when unweighted)
    mean: np.ndarray  #: (n_columns,) weighted column means
    comoment: np.ndarray  #: (n_columns, n_columns) centered weighted co-moment matrix


def comoments_local(X: np.ndarray, Y: np.ndarray | None = None,
                    sample_weight: np.ndarray | None = None) -> ComomentsPartial:
    """Weighted means and centered co-moments of ``[X, Y]`` for one shard.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    Y : ndarray of shape (n_samples,) or (n_samples, n_targets), default=None
        Targets appended as extra columns.
    sample_weight : ndarray of shape (n_samples,), default=None
        Non-negative frequency weights (a weight of 2 counts a row twice).

    Returns
    -------
    partial : ComomentsPartial
    """
    Z = np.asarray(X, dtype=np.float64)
    if Y is not None:
        Y = np.asarray(Y, dtype=np.float64)
        Z = np.hstack([Z, Y[:, None] if Y.ndim == 1 else Y])
    n, d = Z.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(w.sum())
    if total == 0:
        return ComomentsPartial(float(n), 0.0, np.zeros(d), np.zeros((d, d)))
    mean = (w @ Z) / total
    centered = Z - mean
    comoment = (centered * w[:, None]).T @ centered
    comoment = (comoment + comoment.T) / 2  # exact symmetry, whatever the BLAS did
    return ComomentsPartial(float(n), total, mean, comoment)


def comoments_combine(a: ComomentsPartial, b: ComomentsPartial) -> ComomentsPartial:
    """Merge two shards' co-moments; exact identity for a shard of zero weight."""
    if a.weight == 0:
        return b._replace(n_rows=a.n_rows + b.n_rows)
    if b.weight == 0:
        return a._replace(n_rows=a.n_rows + b.n_rows)
    weight = a.weight + b.weight
    delta = b.mean - a.mean
    mean = (a.weight * a.mean + b.weight * b.mean) / weight
    comoment = a.comoment + b.comoment + np.outer(delta, delta) * (a.weight * b.weight / weight)
    return ComomentsPartial(a.n_rows + b.n_rows, weight, mean, comoment)


def covariance_finalize(p: ComomentsPartial, assume_centered: bool = False):
    """Maximum-likelihood covariance and location, as scikit-learn's ``empirical_covariance``.

    Returns
    -------
    covariance : ndarray of shape (n_features, n_features)
        Divided by the number of rows (biased). With ``assume_centered`` the raw second moment
        ``X^T X / n``, rebuilt as ``(C + W mean mean^T) / W`` (a sum of PSD terms: no cancellation).
    location : ndarray of shape (n_features,)
        The mean, or zeros with ``assume_centered``.
    """
    if assume_centered:
        second = p.comoment + p.weight * np.outer(p.mean, p.mean)
        return second / p.weight, np.zeros_like(p.mean)
    return p.comoment / p.weight, p.mean.copy()


COMOMENTS = ReductionContract("comoments", comoments_local, comoments_combine, covariance_finalize,
                              kernel="comoments_local")


class ColumnStatsPartial(NamedTuple):
    """Per-column weighted moments and extremes of one shard (for the scalers).

    Reduction contract
    ------------------
    Local
        :func:`column_stats_local`: weighted mean, then weighted centered squares; min and max.
    Combine
        :func:`column_stats_combine`: Chan et al.'s weighted merge; min of mins, max of maxes.
    Finalize
        The scalers: biased variance ``m2 / weight``, ranges, largest magnitudes.
    Identity
        Zero rows and weight, zero moments, ``min=+inf``, ``max=-inf``.
    """

    n_rows: float  #: number of rows
    weight: float  #: sum of frequency weights (``n_rows`` when unweighted)
    mean: np.ndarray  #: (n_features,) weighted means
    m2: np.ndarray  #: (n_features,) weighted centered sums of squares
    min: np.ndarray  #: (n_features,)
    max: np.ndarray  #: (n_features,)


def column_stats_local(X: np.ndarray, sample_weight: np.ndarray | None = None) -> ColumnStatsPartial:
    """Weighted per-column moments and extremes of one shard (frequency weights)."""
    X = np.asarray(X)
    n, d = X.shape
    if n == 0:
        return ColumnStatsPartial(0.0, 0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf),
                                  np.full(d, -np.inf))
    Z = X.astype(np.float64)
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(w.sum())
    extremes = Z.min(axis=0), Z.max(axis=0)
    if total == 0:
        return ColumnStatsPartial(float(n), 0.0, np.zeros(d), np.zeros(d), *extremes)
    mean = (w @ Z) / total
    centered = Z - mean
    return ColumnStatsPartial(float(n), total, mean, w @ (centered * centered), *extremes)


def column_stats_combine(a: ColumnStatsPartial, b: ColumnStatsPartial) -> ColumnStatsPartial:
    """Merge two shards' column statistics; exact identity for a shard of zero weight."""
    lo, hi = np.minimum(a.min, b.min), np.maximum(a.max, b.max)
    if a.weight == 0:
        return ColumnStatsPartial(a.n_rows + b.n_rows, b.weight, b.mean, b.m2, lo, hi)
    if b.weight == 0:
        return ColumnStatsPartial(a.n_rows + b.n_rows, a.weight, a.mean, a.m2, lo, hi)
    weight = a.weight + b.weight
    delta = b.mean - a.mean
    mean = (a.weight * a.mean + b.weight * b.mean) / weight
    m2 = a.m2 + b.m2 + delta * delta * (a.weight * b.weight / weight)
    return ColumnStatsPartial(a.n_rows + b.n_rows, weight, mean, m2, lo, hi)


COLUMN_STATS = ReductionContract("column_stats", column_stats_local, column_stats_combine,
                                 lambda p: p, kernel="column_stats_local")


class NanColumnStatsPartial(NamedTuple):
    """Per-column weighted moments and extremes of one shard, NaN taken as missing.

    The statistics of scikit-learn's scalers, which disregard NaN in ``fit``: each column has
    its own count and weight, those of its non-NaN values. A shard without NaN has the same
    statistics as its :class:`ColumnStatsPartial` (:func:`with_missing` turns one into the other),
    so the scalers compute those by the ``column_stats_local`` kernel and reach
    :func:`nan_column_stats_local` only for shards that hold a NaN.

    Reduction contract
    ------------------
    Local
        :func:`nan_column_stats_local` (or :func:`with_missing` of a shard without NaN).
    Combine
        :func:`nan_column_stats_combine`: Chan et al.'s weighted merge, column by column; min
        of mins and max of maxes over the columns' non-NaN values.
    Finalize
        The scalers: biased variance ``m2 / weight``, NaN for a column of zero weight (all
        its values NaN, as scikit-learn's 0/0); ranges and magnitudes NaN for a column of zero
        count.
    Identity
        :func:`nan_column_stats_identity`: zero rows, counts, weights and moments; min and
        max 0 (a column of zero count has no extremes: ``combine`` takes the other side's,
        so every field stays finite).
    """

    n_rows: float  #: number of rows, NaN or not
    count: np.ndarray  #: (n_features,) non-NaN values per column
    weight: np.ndarray  #: (n_features,) sum of the weights of the non-NaN values per column
    mean: np.ndarray  #: (n_features,) weighted means of the non-NaN values (0 for zero weight)
    m2: np.ndarray  #: (n_features,) weighted centered sums of squares of the non-NaN values
    min: np.ndarray  #: (n_features,) smallest non-NaN value (0 for zero count)
    max: np.ndarray  #: (n_features,) largest non-NaN value (0 for zero count)


def nan_column_stats_identity(n_features: int) -> NanColumnStatsPartial:
    """The partial of zero rows with ``n_features`` columns (the identity of ``combine``)."""
    zeros = np.zeros(n_features)
    return NanColumnStatsPartial(0.0, zeros, zeros, zeros, zeros, zeros, zeros)


def with_missing(p: ColumnStatsPartial) -> NanColumnStatsPartial:
    """The :class:`NanColumnStatsPartial` of a shard without NaN, from its
    :class:`ColumnStatsPartial` (every column counts every row): O(n_features), exact."""
    d = p.mean.shape[0]
    if p.n_rows == 0:
        return nan_column_stats_identity(d)
    return NanColumnStatsPartial(float(p.n_rows), np.full(d, float(p.n_rows)),
                                 np.full(d, float(p.weight)), p.mean, p.m2, p.min, p.max)


def nan_column_stats_local(X, sample_weight=None) -> NanColumnStatsPartial:
    """Weighted per-column moments and extremes of one shard's non-NaN values.

    Computed in ``X``'s array namespace (NumPy or any array-API array, on its device); only
    the O(n_features) results come to the host, as NumPy float64.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        The shard, NaN where a value is missing; no infinity (the caller refuses it).
    sample_weight : array of shape (n_samples,), default=None
        Frequency weights; a row's weight counts in each column where its value is not NaN.

    Returns
    -------
    partial : NanColumnStatsPartial
    """
    from .._array_api import accumulation_dtype, device, get_namespace, is_foreign_array, to_host

    xp = get_namespace(X)
    n, d = (int(k) for k in X.shape)
    if n == 0:
        return nan_column_stats_identity(d)
    acc = accumulation_dtype(X)
    on = {"device": device(X)} if is_foreign_array(X) else {}  # NumPy 1.x takes no device
    missing = xp.isnan(X)
    present = xp.astype(~missing, acc)
    Z = xp.where(missing, xp.zeros_like(X), X)
    Z = xp.astype(Z, acc)
    count = xp.sum(present, axis=0)
    if sample_weight is None:  # unweighted: no (n, d) products with ones
        weight, total = count, xp.sum(Z, axis=0)
    else:
        w = xp.astype(xp.asarray(sample_weight, **on), acc)[:, None]
        weight, total = xp.sum(present * w, axis=0), xp.sum(Z * w, axis=0)
    safe = xp.where(weight == 0, xp.ones_like(weight), weight)
    mean = xp.where(weight == 0, xp.zeros_like(weight), total / safe)
    centered = (Z - mean[None, :]) * present
    squares = centered * centered
    m2 = xp.sum(squares if sample_weight is None else squares * w, axis=0)
    inf = xp.asarray(float("inf"), dtype=X.dtype, **on)
    lo = xp.min(xp.where(missing, inf, X), axis=0)
    hi = xp.max(xp.where(missing, -inf, X), axis=0)

    def host(a):
        return np.asarray(to_host(a), dtype=np.float64).reshape(d)

    count, weight, mean, m2, lo, hi = (host(a) for a in (count, weight, mean, m2, lo, hi))
    empty = count == 0
    return NanColumnStatsPartial(float(n), count, weight, mean, m2, np.where(empty, 0.0, lo),
                                 np.where(empty, 0.0, hi))


def nan_column_stats_combine(a, b) -> NanColumnStatsPartial:
    """Merge two shards' NaN-aware column statistics, column by column (Chan et al.).

    A column of zero weight on one side takes the other side's moments, and one of zero count
    the other side's extremes, exactly. Where both sides have weight, the arithmetic is that of
    :func:`column_stats_combine`, so shards without NaN merge to the same bits. Either side may
    be a :class:`ColumnStatsPartial` (a shard without NaN).
    """
    if isinstance(a, ColumnStatsPartial):
        a = with_missing(a)
    if isinstance(b, ColumnStatsPartial):
        b = with_missing(b)
    weight = a.weight + b.weight
    a_none, b_none = a.weight == 0, b.weight == 0
    safe = np.where(weight == 0, 1.0, weight)
    delta = b.mean - a.mean
    mean = np.where(a_none, b.mean, np.where(b_none, a.mean,
                                             (a.weight * a.mean + b.weight * b.mean) / safe))
    m2 = np.where(a_none, b.m2, np.where(b_none, a.m2,
                                         a.m2 + b.m2 + delta * delta * (a.weight * b.weight / safe)))
    a_empty, b_empty = a.count == 0, b.count == 0
    lo = np.where(a_empty, b.min, np.where(b_empty, a.min, np.minimum(a.min, b.min)))
    hi = np.where(a_empty, b.max, np.where(b_empty, a.max, np.maximum(a.max, b.max)))
    return NanColumnStatsPartial(a.n_rows + b.n_rows, a.count + b.count, weight, mean, m2, lo, hi)


NAN_COLUMN_STATS = ReductionContract("nan_column_stats", nan_column_stats_local,
                                     nan_column_stats_combine, lambda p: p)


def overflowed_to_nan(variance):
    """Per-feature variances with those that overflowed (inf, from finite input) made NaN.

    scikit-learn's ``_incremental_mean_and_var`` (StandardScaler, IncrementalPCA) subtracts a
    squared sum from a sum of squares: when values near the float64 limit overflow both, it
    gives ``inf - inf = nan``; the merged co-moments here give ``inf``. Local, not collective.
    """
    variance = np.asarray(variance)
    return np.where(np.isinf(variance), np.nan, variance)
