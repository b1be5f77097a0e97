"""BasicStatistics: per-column statistics of the rows of every rank."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator

from .._base import SPMDEstimatorMixin
from .._scaling import dtype_limit
from .._validation import check_deferred_finite, deferred_finite_moments, validate_fit
from ..collective import partial_size, reduce_step
from ..reference._moments import BASIC_STATISTICS_OPTIONS, MOMENTS, moments_finalize


class BasicStatistics(SPMDEstimatorMixin, BaseEstimator):
    """Per-column statistics over the rows of all ranks (scikit-learn-intelex's estimator).

    Parameters
    ----------
    result_options : str or list of str, default="all"
        Which statistics to compute: ``"all"`` or any of ``"min"``, ``"max"``, ``"sum"``,
        ``"mean"``, ``"variance"``, ``"variation"``, ``"sum_squares"``,
        ``"sum_squares_centered"``, ``"standard_deviation"``, ``"second_order_raw_moment"``.

    Attributes
    ----------
    min_, max_, sum_, mean_, variance_, variation_, sum_squares_, sum_squares_centered_, \
standard_deviation_, second_order_raw_moment_ : ndarray of shape (n_features,)
        The requested statistics, in the input's dtype. Variance and standard deviation are
        unbiased (``n - 1``; NaN for a single row); ``variation`` is the standard deviation over
        the mean (NaN where the mean is 0).
    n_features_in_ : int
    n_samples_ : int
        Rows summed over all ranks.

    Notes
    -----
    **Distributed semantics.** ``fit`` is collective: every rank calls it with its shard (a rank
    may pass zero rows). Every attribute is identical on every rank and does not depend on how
    the rows are split (up to rounding). The reduction merges per-rank centered moments
    (Chan et al.), so a column with mean 1e8 and spread 1 keeps its variance to ~1e-9 relative.

    With ``sample_weight``, each row is multiplied by its weight before its statistics are taken
    (scikit-learn-intelex's definition): ``mean_`` is the mean of ``w_i * x_i`` over the rows.
    Unlike scikit-learn-intelex, 1-D ``X`` is refused, as scikit-learn refuses it.
    """

    _parameter_constraints = {"result_options": [str, list, tuple]}

    def __init__(self, result_options="all"):
        self.result_options = result_options

    def _options(self) -> tuple:
        options = self.result_options
        if isinstance(options, str):
            options = BASIC_STATISTICS_OPTIONS if options == "all" else (options,)
        options = tuple(options)
        unknown = [o for o in options if o not in BASIC_STATISTICS_OPTIONS]
        if unknown or not options:
            raise ValueError(f"result_options={self.result_options!r} should be 'all' or a list of "
                             f"{', '.join(BASIC_STATISTICS_OPTIONS)}; unknown: {unknown}")
        return tuple(dict.fromkeys(options))

    def fit(self, X, y=None, sample_weight=None):
        """Collective: compute the statistics of all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (``n_samples`` may be 0).
        y : None
            Ignored; present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Multiplies each row (may be negative).

        Returns
        -------
        self : BasicStatistics
        """
        comm = self._comm()
        shard = validate_fit(self, comm, X, sample_weight=sample_weight, non_negative_weight=False,
                             allow_all_zero_weight=True,
                             extra_check=lambda est, X, y: est._options(), defer_finite=True,
                             reserve=lambda X, y, w: partial_size(MOMENTS, X, w))

        def step():
            # the shard is read once: the deferred finiteness check runs only on moments that
            # are not finite
            return deferred_finite_moments(shard.backend, shard.X, shard.sample_weight,
                                           lambda: check_deferred_finite(self, shard))

        # The last collective: the statistics follow from the global moments alone.
        partial = reduce_step(MOMENTS, step, shard.X, shard.sample_weight, comm=comm, last=True)
        self._set_model(partial, shard.dtype)
        return self

    def _set_model(self, partial, dtype):
        """Fitted attributes from the global moments (identical on every rank)."""
        self.n_samples_ = int(partial.n)
        limit = dtype_limit(dtype)
        past = []
        for name, value in moments_finalize(partial, self._options()).items():
            if limit is not None and (np.abs(value[np.isfinite(value)]) > limit).any():
                past.append(name + "_")
            with np.errstate(over="ignore"):  # said below, once, by name
                setattr(self, name + "_", value.astype(dtype, copy=False))
        if past:
            # float64 partials do not overflow there; the float32 attributes are inf, as
            # scikit-learn-intelex's float32 statistics are
            warnings.warn(f"overflow in {', '.join(past)}: values pass the "
                          f"{np.dtype(dtype).name} limit {limit:.4g} and are inf; fit on "
                          "float64 data for finite values", RuntimeWarning, stacklevel=4)

    def to_sklearn(self):
        """Not available: scikit-learn has no BasicStatistics estimator (not collective).

        The fitted attributes are plain NumPy arrays, identical on every rank, and need no MPI.

        Raises
        ------
        NotImplementedError
            Always, on the calling rank only.
        """
        raise NotImplementedError(f"{type(self).__name__}.to_sklearn(): scikit-learn has no "
                                  "equivalent of BasicStatistics (it is scikit-learn-intelex's); its "
                                  "fitted attributes (mean, variance, ...) are plain NumPy "
                                  "arrays, identical on every rank, that need no MPI to use")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags
