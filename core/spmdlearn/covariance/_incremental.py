"""IncrementalEmpiricalCovariance: EmpiricalCovariance from batches."""

from __future__ import annotations

import numbers


from .._incremental import UnweightedComomentBatches
from .._validation import Interval
from .._scaling import SCALED_COMOMENTS
from ._empirical_covariance import EmpiricalCovariance


class IncrementalEmpiricalCovariance(UnweightedComomentBatches, EmpiricalCovariance):
    """Maximum-likelihood covariance of all ranks' rows, fed in batches (scikit-learn-intelex's).

    Parameters
    ----------
    store_precision : bool, default=False
    assume_centered : bool, default=False
    batch_size : int, default=None
        Rows per batch when ``fit`` splits this rank's rows (all at once if None).
    copy : bool, default=True
        spmdlearn never modifies ``X``, whatever this value.

    Notes
    -----
    **Distributed semantics.** ``partial_fit`` is local; ``finalize_fit()`` is collective and
    sets ``covariance_``, ``location_``, ``precision_`` identically on every rank; ``fit``,
    ``score`` and ``mahalanobis`` are collective as in :class:`EmpiricalCovariance`.
    """

    _contract = SCALED_COMOMENTS
    _model_attributes = ("covariance_", "location_", "precision_")
    _parameter_constraints = {**EmpiricalCovariance._parameter_constraints,
                              "batch_size": [Interval(numbers.Integral, 1, None, "left"), None],
                              "copy": ["boolean"]}

    def __init__(self, *, store_precision=False, assume_centered=False, batch_size=None,
                 copy=True):
        self.store_precision = store_precision
        self.assume_centered = assume_centered
        self.batch_size = batch_size
        self.copy = copy

    def _finalize(self, partial, n_features, y_ndim, dtype):
        self._set_model(partial, dtype, self._overflow_ranks(partial))

    def _to_sklearn(self):
        from sklearn.covariance import EmpiricalCovariance as SkEmpiricalCovariance

        est = SkEmpiricalCovariance(store_precision=self.store_precision,
                                    assume_centered=self.assume_centered)
        for name in ("location_", "covariance_", "precision_", "n_features_in_"):
            setattr(est, name, getattr(self, name))
        return est
