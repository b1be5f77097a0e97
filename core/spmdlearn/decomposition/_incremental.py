"""IncrementalPCA: PCA from batches, through the global co-moments."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.decomposition import IncrementalPCA as _SkIncrementalPCA

from .._incremental import UnweightedComomentBatches
from .._scaling import SCALED_COMOMENTS, report_overflow, scaled_spectrum, unscale_vector
from .._validation import Interval
from ..reference._moments import overflowed_to_nan
from ..reference._pca import pca_spectrum
from ._pca import PCA


class IncrementalPCA(UnweightedComomentBatches, PCA):
    """PCA of all ranks' rows, fed in batches.

    The batches of every rank are folded into co-moments (Chan et al.'s merge), and
    ``finalize_fit()`` decomposes the global covariance: the result equals :class:`PCA` with
    ``svd_solver="covariance_eigh"`` on all rows, whatever the batches (scikit-learn's
    IncrementalPCA approximates the same decomposition by incremental SVDs of the batches).

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
    of its columns divided by powers of two, and the model is the SVD of a square root of the
    co-moments (:func:`spmdlearn._scaling.scaled_spectrum`): scikit-learn's SVD of all rows in
    one batch (its batch-by-batch merges lose the small directions there).
    """

    _sklearn_class = _SkIncrementalPCA
    _spectrum_in_input_dtype = False
    _contract = SCALED_COMOMENTS
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

    def _finalize(self, scaled, n_features, y_ndim, dtype):
        # scikit-learn's IncrementalPCA keeps its statistics in float64 whatever the input
        # (its running mean and variance, then the SVD of float64 stacks): float32 input gives
        # float64 attributes, finite where float32 ones would overflow
        dtype = np.dtype(np.float64)
        partial = scaled.partial
        n = int(partial.n_rows)
        k = self.n_components
        if k is not None and not k <= min(n, n_features):
            raise ValueError(f"n_components={k} must be less or equal to the batch number of "
                             f"samples {n} (summed over all ranks) and n_features={n_features}")
        ranks = self._overflow_ranks(scaled)
        if ranks is None:
            S, explained, Vt = pca_spectrum(n, comoment=partial.comoment)
            self._set_model(S, explained, Vt, partial.mean, n, dtype)
            self.var_ = overflowed_to_nan(np.diag(partial.comoment) / n).astype(dtype)
        else:
            self._set_scaled_model(scaled, n, dtype)
            if not all(np.isfinite(getattr(self, name)).all() for name in (
                    "mean_", "var_", "components_", "explained_variance_",
                    "explained_variance_ratio_", "singular_values_")):
                report_overflow(ranks, "the spectrum")
        self.n_samples_seen_ = n
        self._fit_svd_solver = "covariance_eigh"

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
