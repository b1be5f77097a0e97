"""IncrementalBasicStatistics: BasicStatistics from batches."""

from __future__ import annotations

import numbers

import numpy as np

from .._incremental import IncrementalMixin
from .._validation import Interval, deferred_finite_moments
from ..reference._moments import BASIC_STATISTICS_OPTIONS, MOMENTS, moments_local
from ._basic_statistics import BasicStatistics


class IncrementalBasicStatistics(IncrementalMixin, BasicStatistics):
    """Per-column statistics of all ranks' rows, fed in batches (scikit-learn-intelex's estimator).

    Parameters
    ----------
    result_options : str or list of str, default="all"
        As :class:`BasicStatistics`.
    batch_size : int, default=None
        Rows per batch when ``fit`` splits this rank's rows (all at once if None).

    Attributes
    ----------
    As :class:`BasicStatistics`, after ``finalize_fit()``.

    Notes
    -----
    **Distributed semantics.** ``partial_fit`` is local (any number of calls per rank, zero
    included); ``finalize_fit()`` is collective and sets attributes identical on every rank;
    ``fit`` is collective (batches, then ``finalize_fit``). Reading a statistic before
    ``finalize_fit()`` raises an AttributeError that says to call it. Pickling keeps this rank's
    partial; ``partial_fit`` may continue after ``finalize_fit()``.
    """

    _contract = MOMENTS
    _weights_scale_rows = True
    _model_attributes = tuple(o + "_" for o in BASIC_STATISTICS_OPTIONS) + ("n_samples_",)
    _parameter_constraints = {**BasicStatistics._parameter_constraints,
                              "batch_size": [Interval(numbers.Integral, 1, None, "left"), None]}

    def __init__(self, result_options="all", batch_size=None):
        self.result_options = result_options
        self.batch_size = batch_size

    _defers_finite = True

    def _batch_partial(self, X, y, w, backend, *, check):
        self._options()
        # As BasicStatistics.fit: the batch is read once, and checked only if its moments are
        # not finite
        return deferred_finite_moments(backend, X, w, check)

    def _identity(self, n_features, n_targets):
        return moments_local(np.zeros((0, n_features)))

    @staticmethod
    def _n_rows(partial):
        return partial.n

    def _finalize(self, partial, n_features, y_ndim, dtype):
        self._set_model(partial, dtype)
