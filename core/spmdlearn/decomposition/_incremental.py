"""IncrementalPCA: PCA from batches, through the R factors of the centered rows."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
from sklearn.decomposition import IncrementalPCA as _SkIncrementalPCA

from .._backends import call_kernel
from .._incremental import UnweightedComomentBatches
from .._scaling import (Scaled, overflow_ranks, report_overflow, scaled_comoments_combine,
                        scaled_identity, scaled_spectrum, unscale_vector)
from .._validation import Interval
from ..comm import get_comm
from ..contract import ReductionContract
from ..reference._moments import overflowed_to_nan
from ..reference._pca import MeanRPartial, mean_r_combine, pca_spectrum
from ._pca import PCA


class _BatchesPartial(NamedTuple):
    """What IncrementalPCA folds: the batches' :class:`~spmdlearn._scaling.Scaled` co-moments
    (``var_``, and the decomposition of rows near the float64 limit) and their
    :class:`~spmdlearn.reference.MeanRPartial` (the decomposition of all other rows)."""

    scaled: Scaled
    rows: MeanRPartial


def _batches_combine(a: _BatchesPartial, b: _BatchesPartial) -> _BatchesPartial:
    with np.errstate(over="ignore", invalid="ignore"):
        return _BatchesPartial(scaled_comoments_combine(a.scaled, b.scaled),
                               mean_r_combine(a.rows, b.rows))


_BATCHES = ReductionContract("incremental_pca", None, _batches_combine, lambda p: p)


class IncrementalPCA(UnweightedComomentBatches, PCA):
    """PCA of all ranks' rows, fed in batches.

    Each batch is folded as scikit-learn's IncrementalPCA folds it: the ``R`` factor of the
    rows seen so far is stacked with the ``R`` of the batch's centered rows and a
    mean-correction row, and the stack is reduced by a QR (the backend's ``tsqr_local``
    kernel for the batch). ``finalize_fit()`` merges the ranks' factors so, and takes the SVD
    of the global ``R``: the result is :class:`PCA` with ``svd_solver="full"`` on all rows
    (the accuracy of an SVD of the rows, small directions beside large ones included),
    whatever the batches. scikit-learn truncates its carried factor to ``n_components``
    after each batch, an approximation that depends on the batches; spmdlearn keeps all of it
    (its size does not grow with the rows). ``var_`` comes from the batches' co-moments.

    Parameters
    ----------
    n_components : int or None, default=None
    whiten : bool, default=False
    copy : bool, default=True
        spmdlearn never modifies ``X``, whatever this value.
    batch_size : int, default=None
        Rows per batch when ``fit`` splits this rank's rows (all at once if None).

    Attributes
    ----------
    components_, explained_variance_, explained_variance_ratio_, singular_values_, mean_, \
var_, noise_variance_, n_components_, n_samples_seen_, n_samples_
        After ``finalize_fit()``; ``var_`` is the per-feature variance (biased), and
        ``n_samples_seen_`` counts all ranks' rows.

    Notes
    -----
    **Distributed semantics.** ``partial_fit`` is local; ``finalize_fit()`` and ``fit`` are
    collective; ``transform`` and the scores are as in :class:`PCA`.

    Values near the float64 limit: a batch whose co-moments overflow is folded as co-moments
    of its columns divided by powers of two, and the model is then the SVD of a square root of
    the co-moments (:func:`spmdlearn._scaling.scaled_spectrum`): scikit-learn's SVD of all
    rows in one batch (its batch-by-batch merges lose the small directions there).
    """

    _sklearn_class = _SkIncrementalPCA
    _spectrum_in_input_dtype = False
    _contract = _BATCHES
    _model_attributes = ("components_", "explained_variance_", "explained_variance_ratio_",
                         "singular_values_", "mean_", "var_", "noise_variance_",
                         "n_components_", "n_samples_seen_", "n_samples_")
    _fitted_attributes = _model_attributes
    _parameter_constraints = {
        "n_components": [Interval(numbers.Integral, 1, None, "left"), None],
        "whiten": ["boolean"], "copy": ["boolean"],
        "batch_size": [Interval(numbers.Integral, 1, None, "left"), None],
    }

    def __init__(self, n_components=None, *, whiten=False, copy=True, batch_size=None):
        self.n_components = n_components
        self.whiten = whiten
        self.copy = copy
        self.batch_size = batch_size

    def _batch_partial(self, X, y, w, backend, *, check):
        # Two reads of the batch, as scikit-learn's partial_fit makes (its mean and variance,
        # then the SVD of the centered rows): the QR needs the batch's mean first. The
        # finiteness check rides in the first (co-moments that are not finite).
        scaled = UnweightedComomentBatches._batch_partial(self, X, y, w, backend, check=check)
        d = int(X.shape[1])
        n = int(scaled.partial.n_rows)
        if n == 0:
            return _BatchesPartial(scaled, MeanRPartial(0, np.zeros(d), np.zeros((d, d))))
        if scaled.exponent.any():
            # Values near the float64 limit: the global exponents are then not all zero (the
            # merge keeps the largest), and finalize decomposes the scaled co-moments; this
            # factor (of the rows seen, zeros) is never read.
            return _BatchesPartial(scaled, MeanRPartial(n, np.zeros(d), np.zeros((d, d))))
        mean = np.asarray(scaled.partial.mean, dtype=np.float64)
        r = call_kernel("tsqr_local", backend, X=X, mean=mean).r
        return _BatchesPartial(scaled, MeanRPartial(n, mean, np.asarray(r, dtype=np.float64)))

    def _identity(self, n_features, n_targets):
        return _BatchesPartial(scaled_identity(n_features),
                               MeanRPartial(0, np.zeros(n_features),
                                            np.zeros((n_features, n_features))))

    @staticmethod
    def _n_rows(partial):
        return partial.scaled.partial.n_rows

    def _overflow_ranks(self, partial):
        """Collective where the global co-moments are scaled: the ranks whose batches were."""
        local = self.__dict__.get("_partial")
        return overflow_ranks(get_comm(), None if local is None else local.scaled,
                              partial.scaled)

    def _finalize(self, partial, n_features, y_ndim, dtype):
        # scikit-learn's IncrementalPCA keeps its statistics in float64 whatever the input
        # (its running mean and variance, then the SVD of float64 stacks): float32 input gives
        # float64 attributes, finite where float32 ones would overflow
        dtype = np.dtype(np.float64)
        scaled = partial.scaled
        n = int(scaled.partial.n_rows)
        k = self.n_components
        if k is not None and not k <= min(n, n_features):
            raise ValueError(f"n_components={k} must be less or equal to the batch number of "
                             f"samples {n} (summed over all ranks) and n_features={n_features}")
        ranks = self._overflow_ranks(partial)
        if ranks is None:
            comoments = scaled.partial
            S, explained, Vt = pca_spectrum(n, r=partial.rows.r)
            self._set_model(S, explained, Vt, comoments.mean, n, dtype)
            self.var_ = overflowed_to_nan(np.diag(comoments.comoment) / n).astype(dtype)
        else:
            self._set_scaled_model(scaled, n, dtype)
            if not all(np.isfinite(getattr(self, name)).all() for name in (
                    "mean_", "var_", "components_", "explained_variance_",
                    "explained_variance_ratio_", "singular_values_")):
                report_overflow(ranks, "the spectrum")
        self.n_samples_seen_ = n
        self._fit_svd_solver = "full"

    def _set_scaled_model(self, scaled, n, dtype):
        """The model from co-moments of columns scaled by ``2**-e`` (values near the float64
        limit), as scikit-learn's SVD of the rows gives it.

        The spectrum is :func:`~spmdlearn._scaling.scaled_spectrum`'s (an SVD of a square
        root of the co-moments); ``var_`` and the ratios follow scikit-learn's formulas (NaN
        where its ``inf - inf`` is).
        """
        p, e = scaled.partial, scaled.exponent
        S, explained, Vt = scaled_spectrum(scaled, n)
        with np.errstate(over="ignore", invalid="ignore"):
            self._set_model(S, explained, Vt, unscale_vector(p.mean, e), n, dtype)
            var = overflowed_to_nan(unscale_vector(np.diag(p.comoment), 2 * e) / n)
            self.var_ = var.astype(dtype)
            # scikit-learn's IncrementalPCA: S**2 / sum(var_ * n_samples_seen_).
            self.explained_variance_ratio_ = (
                S[:self.n_components_] ** 2 / np.sum(var * n)).astype(dtype)

    def fit_transform(self, X, y=None):
        """Collective: ``fit`` (batches, then ``finalize_fit``), then project this rank's rows."""
        return self.fit(X).transform(X)
