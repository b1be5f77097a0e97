"""Streaming: ``partial_fit`` is local, ``finalize_fit`` is the one collective.

Each rank folds its batches into one local partial of the estimator's reduction contract
(any number of ``partial_fit`` calls per rank, zero included). ``finalize_fit()`` combines the
ranks' partials and sets the model. Nothing collective hides behind attribute access or
pickling: a model attribute read before ``finalize_fit()`` raises an AttributeError saying so,
and the pickled state is this rank's partial.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import validate_data

from ._array_api import is_foreign_array, numpy_dtype, take_rows
from ._validation import (_check_consistent_rows, _check_foreign, _check_sample_weight, as_float,
                          check_feature_names_agree, check_finite, check_X, check_y,
                          count_nonzero, validate_params, x_dtype)
from .comm import get_comm

__all__ = ["IncrementalMixin", "UnweightedComomentBatches"]


class IncrementalMixin:
    """Local ``partial_fit``, collective ``finalize_fit``, ``fit`` = batches + finalize.

    Subclasses define ``_contract`` (the reduction), ``_model_attributes`` (what finalize sets),
    ``_batch_partial(X, y, w, backend, *, check)`` (the validated batch's partial),
    ``_identity(n_features, n_targets)`` and ``_finalize(partial, n_features, y_ndim, dtype)``;
    ``_requires_y`` for supervised ones.

    ``_batch_partial`` has one signature for every estimator and takes what it needs:
    ``check()`` raises scikit-learn's ValueError for NaN or infinity in ``X`` (infinity only
    with ``_allow_nan``, and then returns whether ``X`` holds a NaN) or ``y``, and may be
    called whatever the flags (a check that validation already made passes again). The flags
    decide only what validation checks before the batch's partial.
    """

    _requires_y = False
    _model_attributes: tuple = ()
    #: ``_batch_partial`` runs the finiteness check it is given whenever its one-pass partial is
    #: not finite (NaN or infinity in the batch always makes it so), so that a batch is read
    #: once there, as the non-incremental fits defer it (``validate_fit(defer_finite=True)``);
    #: False: the batch is checked before its partial (a kernel that ignores NaN).
    _defers_finite = False
    #: NaN in X is missing data (scikit-learn's scalers): accepted, infinity refused by the
    #: check that ``_batch_partial`` is given (run, as with ``_defers_finite``, only when the
    #: batch's one-pass partial is not finite); it returns whether the batch holds a NaN.
    _allow_nan = False
    #: Frequency weights must be non-negative and not all zero (BasicStatistics' scale rows).
    _weights_scale_rows = False

    def __getattr__(self, name):
        # Only called for missing attributes: explain the model attributes before finalize.
        if name in type(self)._model_attributes:
            raise AttributeError(
                f"{type(self).__name__}.{name} is not available: call finalize_fit() on every "
                "rank (it is collective) after partial_fit, or call fit()")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _parameter_meaning(self, params):
        """The parameters by what they mean, for the ranks' comparison (after the estimator's
        own rules): ``batch_size`` only cuts this rank's rows into batches, so each rank may
        choose its own."""
        own = getattr(super(), "_parameter_meaning", None)
        params = own(params) if callable(own) else params
        if "batch_size" in params:
            params["batch_size"] = None
        return params

    def _clear_model(self):
        for name in type(self)._model_attributes:
            self.__dict__.pop(name, None)

    def partial_fit(self, X, y=None, sample_weight=None, check_input=True):
        """Local: fold one batch of this rank's rows into its partial (no communication).

        Input errors are raised on this rank at once and leave the state as it was.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets), default=None
            Targets, for supervised estimators.
        sample_weight : array-like of shape (n_samples,), default=None
        check_input : bool, default=True
            Kept for scikit-learn-intelex's API; the batch is always validated.

        Returns
        -------
        self
        """
        validate_params(self)
        # The first batch's validation records n_features_in_ and feature_names_in_ before its
        # checks end; a refused batch must leave them as they were (a rank whose only batch
        # was refused would otherwise keep its column names through finalize_fit).
        before = {k: self.__dict__[k] for k in ("n_features_in_", "feature_names_in_")
                  if k in self.__dict__}
        try:
            return self._partial_fit(X, y, sample_weight)
        except BaseException:
            for key in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(key, None)
            self.__dict__.update(before)
            raise

    def _partial_fit(self, X, y, sample_weight):
        from ._backends import resolve_backend

        first = "_partial" not in self.__dict__
        backend = resolve_backend(X)
        defer, allow_nan = self._defers_finite, self._allow_nan
        Xv = check_X(self, X, reset=first, backend=backend, finite=not (defer or allow_nan))
        dtype = numpy_dtype(Xv.dtype)
        if not first and dtype != self._dtype:
            raise ValueError(f"X has dtype {dtype}, but earlier batches had {self._dtype}")
        yv = None
        if self._requires_y:
            if y is None:
                raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                                 "y is None.")
            yv = check_y(y, Xv, self, finite=not defer)
            n_targets = 1 if yv.ndim == 1 else int(yv.shape[1])
            if not first and (yv.ndim, n_targets) != (self._y_ndim, self._n_targets):
                raise ValueError(f"y has shape {tuple(yv.shape[1:])} per row, but earlier batches "
                                 f"had {self._n_targets} target(s)")
        w = _check_sample_weight(sample_weight, Xv, non_negative=not self._weights_scale_rows)

        def check():
            # The finiteness checks in scikit-learn's order and with its messages: those that
            # validation left out (``_defers_finite``), or those it made, which pass again.
            has_nan = check_finite(Xv, self, "X", backend, allow_nan=allow_nan)
            if yv is not None:
                check_finite(yv, None, "y")
            return has_nan

        batch = self._batch_partial(Xv, yv, w, backend, check=check)
        nonzero = int(Xv.shape[0]) if w is None else count_nonzero(w)
        # State changes only after every check passed: a bad batch loses nothing.
        self._nonzero_weights = self.__dict__.get("_nonzero_weights", 0) + nonzero
        if first:
            self._partial, self._dtype = batch, dtype
            if yv is not None:
                self._y_ndim, self._n_targets = yv.ndim, (1 if yv.ndim == 1 else int(yv.shape[1]))
        else:
            self._partial = self._contract.combine(self._partial, batch)
        self._clear_model()
        return self

    def finalize_fit(self):
        """Collective: combine every rank's partial and set the model (identical on every rank).

        A rank that never called ``partial_fit`` takes part with no rows. ``partial_fit`` may
        continue afterwards; a later ``finalize_fit()`` includes the new rows.

        Returns
        -------
        self
        """
        comm = get_comm()
        has = "_partial" in self.__dict__

        def summary():
            validate_params(self)
            names = self.__dict__.get("feature_names_in_") if has else None
            return (has, getattr(self, "n_features_in_", None) if has else None,
                    self._dtype.str if has else None,
                    (self._y_ndim, self._n_targets) if has and self._requires_y else None,
                    self.__dict__.get("_nonzero_weights", 0),
                    None if names is None else tuple(str(n) for n in names))

        _, summaries = comm.agree(summary, summarize=lambda s: s)
        seen = [s for s in summaries if s[0]]
        if not seen:
            raise ValueError(f"{type(self).__name__}.finalize_fit: no rank called partial_fit "
                             f"(summed over {comm.size} ranks): nothing to fit")
        # Ranks without batches take no part in the names; the others must agree on them.
        check_feature_names_agree([s[5] for s in seen], len(seen),
                                  ranks=[r for r, s in enumerate(summaries) if s[0]])
        for index, what in ((1, "n_features"), (2, "dtype"), (3, "y (ndim, n_targets)")):
            values = {s[index] for s in seen}
            if len(values) > 1:
                detail = ", ".join(f"rank {r}: {s[index]}" for r, s in enumerate(summaries) if s[0])
                raise ValueError(f"{what} differs across ranks ({detail}); every rank must pass "
                                 "batches of the same shape and type")
        _, n_features, dtype, targets, _, names = seen[0]
        dtype = np.dtype(dtype)
        n_targets = targets[1] if targets else 0
        local = self._partial if has else self._identity(n_features, n_targets)
        partial = comm.reduce_partials(local, self._contract.combine)
        if self._n_rows(partial) == 0:
            raise ValueError(f"{type(self).__name__}.finalize_fit: n_samples=0 should be >= 1 "
                             f"(summed over {comm.size} ranks)")
        if not self._weights_scale_rows and sum(s[4] for s in summaries) == 0:
            raise ValueError("Sample weights must contain at least one non-zero number (summed "
                             f"over {comm.size} ranks).")
        if not has:
            self.n_features_in_ = n_features
            self.__dict__.pop("feature_names_in_", None)
            if names is not None:
                self.feature_names_in_ = np.asarray(names, dtype=object)
        self._finalize(partial, n_features, targets[0] if targets else None, dtype)
        return self

    def fit(self, X, y=None, sample_weight=None):
        """Collective: forget earlier batches, fold this rank's rows in batches of
        ``batch_size`` (all at once if None), then :meth:`finalize_fit`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like, default=None
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        comm = get_comm()
        for name in ("_partial", "_nonzero_weights", "n_features_in_", "feature_names_in_"):
            self.__dict__.pop(name, None)
        self._clear_model()

        def batches():
            # validate_data records the DataFrame's column names (as scikit-learn's fit does);
            # the batches below are NumPy slices, so the names are put back after them. An
            # array-API array keeps its type (no names); finiteness is checked per batch.
            Xv = _check_foreign(X, self) if is_foreign_array(X) else as_float(validate_data(
                self, X, reset=True, dtype=x_dtype(self, reset=True), ensure_min_samples=0,
                ensure_all_finite=False))
            names = self.__dict__.get("feature_names_in_")
            w = _check_sample_weight(sample_weight, Xv, non_negative=not self._weights_scale_rows)
            yv = None if y is None else (y if is_foreign_array(y) else np.asarray(y))
            if yv is not None:
                _check_consistent_rows(Xv, yv)
            n = int(Xv.shape[0])
            step = getattr(self, "batch_size", None) or max(n, 1)
            for lo in range(0, max(n, 1), step):
                hi = lo + step
                IncrementalMixin.partial_fit(self, take_rows(Xv, lo, hi),
                                             None if yv is None else take_rows(yv, lo, hi),
                                             None if w is None else take_rows(w, lo, hi))
            if names is not None:
                self.feature_names_in_ = names

        comm.agree(batches)  # the batches are local; their errors are agreed before finalize
        return self.finalize_fit()


class UnweightedComomentBatches(IncrementalMixin):
    """Batches folded into co-moments of ``X`` alone, without weights (covariance, PCA), as
    :class:`spmdlearn._scaling.Scaled` partials (exact for values near the float64 limit)."""

    _defers_finite = True

    def _batch_partial(self, X, y, w, backend, *, check):
        from ._backends import call_kernel
        from ._scaling import scaled_local

        return scaled_local(lambda X, Y: call_kernel("comoments_local", backend, X=X, Y=None,
                                                     sample_weight=None), X, check=check)

    def _identity(self, n_features, n_targets):
        from ._scaling import scaled_identity

        return scaled_identity(n_features)

    @staticmethod
    def _n_rows(partial):
        return partial.partial.n_rows

    def _overflow_ranks(self, partial):
        """Collective for scaled co-moments: the ranks whose batches needed scaling."""
        from ._scaling import overflow_ranks

        return overflow_ranks(get_comm(), self.__dict__.get("_partial"), partial)

    def partial_fit(self, X, y=None, check_input=True):
        """Local: fold one batch of this rank's rows into its co-moments (no communication).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : None
            Ignored.
        check_input : bool, default=True
            Kept for scikit-learn-intelex's API; the batch is always validated.

        Returns
        -------
        self
        """
        return IncrementalMixin.partial_fit(self, X)

    def fit(self, X, y=None):
        """Collective: this rank's rows in batches of ``batch_size``, then ``finalize_fit()``."""
        return IncrementalMixin.fit(self, X)
