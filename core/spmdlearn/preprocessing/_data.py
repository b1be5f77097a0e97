"""Scalers whose statistics are those of all ranks' rows."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn import preprocessing as _skp
from sklearn.utils.validation import check_is_fitted

from .._backends import call_kernel
from .._base import SPMDEstimatorMixin
from .._incremental import IncrementalMixin
from .._array_api import get_namespace, numpy_dtype
from .._validation import check_X, validate_predict
from ..reference._moments import (NAN_COLUMN_STATS, nan_column_stats_identity,
                                  nan_column_stats_local, overflowed_to_nan, with_missing)

_EPS64 = np.finfo(np.float64).eps


def _handle_zeros_in_scale(scale, constant_mask=None):
    """scikit-learn's rule: scales of (near) constant features become 1."""
    scale = np.array(scale, copy=True)
    if constant_mask is None:
        constant_mask = scale < 10 * np.finfo(scale.dtype).eps
    scale[constant_mask] = 1.0
    return scale


class _Scaler(IncrementalMixin, SPMDEstimatorMixin, OneToOneFeatureMixin, TransformerMixin,
              BaseEstimator):
    """fit = local batches + finalize_fit; transform validates collectively, acts locally.

    NaN is missing data, as in scikit-learn: disregarded by the statistics, kept by
    ``transform`` and ``inverse_transform``. Every rank's partial is a
    :class:`~spmdlearn.reference.NanColumnStatsPartial` (per-column counts and weights), so the
    ranks exchange one kind of partial whether or not theirs held a NaN. A batch without NaN
    is read once, by the ``column_stats_local`` kernel (its partial is finite exactly when the
    batch holds neither NaN nor infinity, short of sums that overflow, so the finiteness check
    rides in it), whose partial becomes a NaN-aware one in O(n_features)
    (:func:`~spmdlearn.reference.with_missing`); only a batch whose partial is not finite is
    read again, by the NaN-aware reference
    :func:`~spmdlearn.reference.nan_column_stats_local`, in its own array namespace.
    """

    _contract = NAN_COLUMN_STATS
    _allow_nan = True

    def _batch_partial(self, X, y, w, backend, *, check):
        # One read of a batch without NaN or infinity: the kernel's partial is finite then (a
        # NaN or an infinity always makes its sums, or its extremes, not finite), so the
        # finiteness check rides in it, as in the other incremental estimators. A partial that
        # is not finite comes from a NaN, an infinity, or finite values whose sums overflow;
        # the NaN-aware reference reads the batch again and tells them apart: infinite
        # extremes (then ``check`` raises scikit-learn's message), columns without a NaN
        # (finite values: the kernel's partial stands, as scikit-learn's overflowed sums), or
        # missing values.
        with np.errstate(over="ignore", invalid="ignore"):
            p = call_kernel("column_stats_local", backend, X=X, sample_weight=w)
        # (zero weights make the moments 0 whatever the rows hold, and a kernel's extremes may
        # skip NaN: such a batch is not known to be free of NaN)
        if int(X.shape[0]) == 0 or (float(p.weight) != 0 and all(
                np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in p)):
            return with_missing(p)
        with np.errstate(over="ignore", invalid="ignore"):
            q = nan_column_stats_local(X, w)
        if not (np.isfinite(q.min).all() and np.isfinite(q.max).all()):
            check()  # an infinity in the batch: refused
        if (q.count == q.n_rows).all():
            return with_missing(p)
        return q

    def _identity(self, n_features, n_targets):
        return nan_column_stats_identity(n_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    @staticmethod
    def _n_rows(partial):
        return partial.n_rows

    def partial_fit(self, X, y=None):
        """Local: fold one batch of this rank's rows into its statistics (no communication).

        Unlike scikit-learn's, the model is updated only by the collective
        :meth:`finalize_fit` (every rank calls it), so that it describes all ranks' rows.
        """
        return IncrementalMixin.partial_fit(self, X)

    def fit(self, X, y=None):
        """Collective: the statistics of all ranks' rows (``partial_fit`` + ``finalize_fit``)."""
        return IncrementalMixin.fit(self, X)

    def _check_transform(self, X):
        return validate_predict(self, self._comm(), X, allow_nan=True)

    def _affine(self, X, shift, scale, backend=None):
        """``(X - shift) * scale`` by the ``affine_transform`` kernel, in X's dtype."""
        dtype = numpy_dtype(X.dtype)
        return call_kernel("affine_transform", backend, X=X,
                           shift=np.asarray(shift, np.float64).astype(dtype),
                           scale=np.asarray(scale, np.float64).astype(dtype))

    def transform(self, X, copy=None):
        """Collective validation, local result: scale this rank's rows."""
        shard = self._check_transform(X)
        return self._transform(shard.X, shard.backend)

    def inverse_transform(self, X, copy=None):
        """Local: undo the scaling of this rank's rows."""
        check_is_fitted(self)
        return self._inverse(check_X(self, X, reset=False, set_features=False, allow_nan=True))

    def _to_sklearn(self):
        est = type(self)._sklearn_class(**{k: v for k, v in self.get_params().items()
                                           if k in type(self)._sklearn_class().get_params()})
        for name in self._model_attributes + ("n_features_in_",):
            setattr(est, name, getattr(self, name))
        return est


class StandardScaler(_Scaler):
    """Standardize features with the mean and variance of all ranks' rows.

    Parameters
    ----------
    copy : bool, default=True
        spmdlearn returns new arrays, whatever this value.
    with_mean : bool, default=True
    with_std : bool, default=True

    Attributes
    ----------
    scale_, mean_, var_ : ndarray of shape (n_features,) or None
        As scikit-learn's (weighted, biased variance; ``scale_`` 1 for constant features;
        NaN values disregarded, and NaN for a feature whose values are all NaN).
    n_samples_seen_ : float or ndarray of shape (n_features,)
        Non-NaN values (their weights, with ``sample_weight``) over all ranks: one number
        when every feature has the same, else one per feature, as scikit-learn's.
    n_features_in_ : int

    Notes
    -----
    **Distributed semantics.** ``fit`` and ``finalize_fit`` are collective, ``partial_fit`` is
    local; ``transform`` validates collectively and scales this rank's rows; the statistics
    come from one merge of per-rank centered moments. Usable in a Pipeline under mpiexec.
    NaN is missing data, as in scikit-learn, on any rank (ranks with and without NaN mix);
    infinity is refused on every rank, naming the ranks that hold it.
    """

    _sklearn_class = _skp.StandardScaler
    _model_attributes = ("scale_", "mean_", "var_", "n_samples_seen_")
    _parameter_constraints = {"copy": ["boolean"], "with_mean": ["boolean"],
                              "with_std": ["boolean"]}

    def __init__(self, *, copy=True, with_mean=True, with_std=True):
        self.copy = copy
        self.with_mean = with_mean
        self.with_std = with_std

    def partial_fit(self, X, y=None, sample_weight=None):
        """Local: fold one batch of this rank's rows (and weights) into its statistics."""
        return IncrementalMixin.partial_fit(self, X, None, sample_weight)

    def fit(self, X, y=None, sample_weight=None):
        """Collective: the weighted statistics of all ranks' rows.

        ``sample_weight`` must be non-negative (scikit-learn's takes negative weights too):
        the ranks merge weighted moments, which needs every rank's weight to act as a count.
        """
        return IncrementalMixin.fit(self, X, None, sample_weight)

    def _finalize(self, p, n_features, y_ndim, dtype):
        # scikit-learn counts each feature's non-NaN values (their weights, with sample_weight;
        # their number when neither mean nor std is taken), one number when all are equal
        seen = p.weight if self.with_mean or self.with_std else p.count
        self.n_samples_seen_ = (np.float64(seen[0]) if np.ptp(seen) == 0
                                else np.asarray(seen, np.float64))
        if not self.with_mean and not self.with_std:
            self.mean_ = self.var_ = self.scale_ = None
            return
        # A feature without weight (all its values NaN) has mean and variance 0/0, as in
        # scikit-learn; its scale is NaN too.
        none = p.weight == 0
        weight = np.where(none, 1.0, p.weight)
        self.mean_ = np.where(none, np.nan, p.mean)
        if self.with_std:
            self.var_ = np.where(none, np.nan, overflowed_to_nan(p.m2 / weight))
            upper = p.weight * _EPS64 * self.var_ + (p.weight * self.mean_ * _EPS64) ** 2
            with np.errstate(invalid="ignore"):
                constant = self.var_ <= upper
            self.scale_ = _handle_zeros_in_scale(np.sqrt(self.var_), constant)
        else:
            self.var_ = self.scale_ = None

    def _transform(self, X, backend=None):
        d = X.shape[1]
        shift = self.mean_ if self.with_mean else np.zeros(d)
        scale = 1.0 / self.scale_ if self.with_std else np.ones(d)
        return self._affine(X, shift, scale, backend)

    def _inverse(self, X, backend=None):
        # x * scale + mean = (x - (-mean / scale)) * scale
        d = X.shape[1]
        scale = self.scale_ if self.with_std else np.ones(d)
        shift = -np.asarray(self.mean_, np.float64) / scale if self.with_mean else np.zeros(d)
        return self._affine(X, shift, scale, backend)


class MinMaxScaler(_Scaler):
    """Scale features to ``feature_range`` with the extremes of all ranks' rows.

    Parameters
    ----------
    feature_range : tuple (min, max), default=(0, 1)
    copy : bool, default=True
        spmdlearn returns new arrays, whatever this value.
    clip : bool, default=False
        Clip transformed values to ``feature_range``.

    Attributes
    ----------
    min_, scale_, data_min_, data_max_, data_range_ : ndarray of shape (n_features,)
    n_samples_seen_ : int
        Rows over all ranks.
    n_features_in_ : int

    Notes
    -----
    **Distributed semantics.** As :class:`StandardScaler`.
    """

    _sklearn_class = _skp.MinMaxScaler
    _model_attributes = ("min_", "scale_", "data_min_", "data_max_", "data_range_",
                         "n_samples_seen_")
    _parameter_constraints = {"feature_range": [tuple, list], "copy": ["boolean"], "clip": ["boolean"]}

    def __init__(self, feature_range=(0, 1), *, copy=True, clip=False):
        self.feature_range = feature_range
        self.copy = copy
        self.clip = clip

    def _batch_partial(self, X, y, w, backend, *, check):
        lo, hi = self.feature_range
        if lo >= hi:
            raise ValueError("Minimum of desired feature range must be smaller than maximum. "
                             f"Got {self.feature_range}.")
        return super()._batch_partial(X, y, w, backend, check=check)

    def _finalize(self, p, n_features, y_ndim, dtype):
        lo, hi = self.feature_range
        self.n_samples_seen_ = int(p.n_rows)
        # a feature whose values are all NaN has NaN extremes (scikit-learn's nanmin/nanmax)
        self.data_min_ = np.where(p.count == 0, np.nan, p.min).astype(dtype)
        self.data_max_ = np.where(p.count == 0, np.nan, p.max).astype(dtype)
        self.data_range_ = self.data_max_ - self.data_min_
        self.scale_ = (hi - lo) / _handle_zeros_in_scale(self.data_range_)
        self.min_ = lo - self.data_min_ * self.scale_

    def _transform(self, X, backend=None):
        # x * scale + min = (x - (data_min - lo / scale)) * scale
        scale = np.asarray(self.scale_, np.float64)
        shift = np.asarray(self.data_min_, np.float64) - self.feature_range[0] / scale
        out = self._affine(X, shift, scale, backend)
        if self.clip:
            xp = get_namespace(out)
            if xp is np:
                np.clip(out, self.feature_range[0], self.feature_range[1], out=out)
            else:
                out = xp.clip(out, float(self.feature_range[0]), float(self.feature_range[1]))
        return out

    def _inverse(self, X, backend=None):
        return self._affine(X, self.min_, 1.0 / np.asarray(self.scale_, np.float64), backend)


class MaxAbsScaler(_Scaler):
    """Scale each feature by its largest magnitude over all ranks' rows.

    Parameters
    ----------
    copy : bool, default=True
        spmdlearn returns new arrays, whatever this value.

    Attributes
    ----------
    scale_, max_abs_ : ndarray of shape (n_features,)
    n_samples_seen_ : int
    n_features_in_ : int

    Notes
    -----
    **Distributed semantics.** As :class:`StandardScaler`.
    """

    _sklearn_class = _skp.MaxAbsScaler
    _model_attributes = ("scale_", "max_abs_", "n_samples_seen_")
    _parameter_constraints = {"copy": ["boolean"]}

    def __init__(self, *, copy=True):
        self.copy = copy

    def _finalize(self, p, n_features, y_ndim, dtype):
        self.n_samples_seen_ = int(p.n_rows)
        max_abs = np.maximum(np.abs(p.min), np.abs(p.max))
        self.max_abs_ = np.where(p.count == 0, np.nan, max_abs).astype(dtype)
        self.scale_ = _handle_zeros_in_scale(self.max_abs_)

    def _transform(self, X, backend=None):
        return self._affine(X, np.zeros(X.shape[1]), 1.0 / np.asarray(self.scale_, np.float64),
                            backend)

    def _inverse(self, X, backend=None):
        return self._affine(X, np.zeros(X.shape[1]), self.scale_, backend)
