"""IncrementalPCA: PCA from batches, through the global co-moments."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.decomposition import IncrementalPCA as _SkIncrementalPCA

from .._incremental import UnweightedComomentBatches
from .._validation import Interval
from ..reference._moments import COMOMENTS, overflowed_to_nan
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
    """

    _sklearn_class = _SkIncrementalPCA
    _contract = COMOMENTS
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

    def _finalize(self, partial, n_features, y_ndim, dtype):
        n = int(partial.n_rows)
        k = self.n_components
        if k is not None and not k <= min(n, n_features):
            raise ValueError(f"n_components={k} must be less or equal to the batch number of "
                             f"samples {n} (summed over all ranks) and n_features={n_features}")
        S, explained, Vt = pca_spectrum(n, comoment=partial.comoment)
        self._set_model(S, explained, Vt, partial.mean, n, dtype)
        self.var_ = overflowed_to_nan(np.diag(partial.comoment) / n).astype(dtype)
        self.n_samples_seen_ = n
        self._fit_svd_solver = "covariance_eigh"

    def fit_transform(self, X, y=None):
        """Collective: ``fit`` (batches, then ``finalize_fit``), then project this rank's rows."""
        return self.fit(X).transform(X)
