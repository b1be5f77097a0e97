"""IncrementalLinearRegression: LinearRegression from batches."""

from __future__ import annotations

import numbers

from .._backends import call_kernel
from .._incremental import IncrementalMixin
from .._scaling import SCALED_COMOMENTS, overflow_ranks, scaled_identity, scaled_local
from .._validation import Interval
from ..comm import get_comm
from ._linear import LinearRegression


class IncrementalLinearRegression(IncrementalMixin, LinearRegression):
    """Ordinary least squares on all ranks' rows, fed in batches (scikit-learn-intelex's).

    Parameters
    ----------
    fit_intercept : bool, default=True
    copy_X : bool, default=True
        spmdlearn never modifies ``X``, whatever this value.
    n_jobs : int, default=None
        Threads for this rank's local kernels.
    batch_size : int, default=None
        Rows per batch when ``fit`` splits this rank's rows (all at once if None).

    Attributes
    ----------
    coef_, intercept_, rank_, singular_, n_features_in_
        As :class:`LinearRegression`, after ``finalize_fit()``.

    Notes
    -----
    **Distributed semantics.** ``partial_fit(X, y)`` is local; ``finalize_fit()`` is
    collective; ``predict`` and ``score`` are as in :class:`LinearRegression`.
    """

    _requires_y = True
    _contract = SCALED_COMOMENTS
    _model_attributes = ("coef_", "intercept_", "rank_", "singular_")
    _parameter_constraints = {
        "fit_intercept": ["boolean"], "copy_X": ["boolean"],
        "n_jobs": [None, numbers.Integral],
        "batch_size": [Interval(numbers.Integral, 1, None, "left"), None],
    }

    def __init__(self, *, fit_intercept=True, copy_X=True, n_jobs=None, batch_size=None):
        self.fit_intercept = fit_intercept
        self.copy_X = copy_X
        self.n_jobs = n_jobs
        self.batch_size = batch_size

    _defers_finite = True

    def _batch_partial(self, X, y, w, backend, *, check):
        return scaled_local(lambda X, Y: call_kernel("comoments_local", backend, X=X, Y=Y,
                                                     sample_weight=w), X, y, check=check)

    def _identity(self, n_features, n_targets):
        return scaled_identity(n_features, n_targets)

    @staticmethod
    def _n_rows(partial):
        return partial.partial.n_rows

    def _finalize(self, partial, n_features, y_ndim, dtype):
        if partial.partial.weight <= 0:
            raise ValueError("Sample weights must contain at least one non-zero number "
                             "(summed over all ranks).")
        ranks = overflow_ranks(get_comm(), self.__dict__.get("_partial"), partial)
        self.rank_, self.singular_ = self._set_model(partial, n_features, y_ndim, dtype, ranks)

    def _to_sklearn(self):
        from sklearn.linear_model import LinearRegression as SkLinearRegression

        est = SkLinearRegression(fit_intercept=self.fit_intercept, copy_X=self.copy_X,
                                 n_jobs=self.n_jobs)
        for name in ("coef_", "intercept_", "rank_", "singular_", "n_features_in_"):
            setattr(est, name, getattr(self, name))
        return est
