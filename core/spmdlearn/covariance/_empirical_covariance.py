"""EmpiricalCovariance: the maximum-likelihood covariance of the rows of every rank."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator
from sklearn.covariance import EmpiricalCovariance as _SkEmpiricalCovariance
from sklearn.covariance import log_likelihood
from sklearn.utils import assert_all_finite

from .._backends import call_kernel
from .._array_api import from_model
from .._base import SPMDEstimatorMixin
from .._validation import check_deferred_finite, validate_fit, validate_predict
from .._scaling import (allreduce_scaled, overflow_ranks, report_overflow, sum_overflows,
                        unscale_matrix, unscale_vector)
from .._scaling import SCALED_COMOMENTS
from ..collective import allreduce, partial_size
from ..reference._moments import COMOMENTS, covariance_finalize


def _comoments(shard, comm, X=None):
    X = shard.X if X is None else X
    return allreduce(COMOMENTS, X, None, None, comm=comm, backend=shard.backend)


def _scaled_covariance(scaled, assume_centered):
    """:func:`covariance_finalize` from :class:`~spmdlearn._scaling.Scaled` co-moments.

    As scikit-learn's ``empirical_covariance`` (a sum of products, then a division by ``n``),
    an entry is inf where its sum of products passes the float64 limit, even if the quotient
    would not; the mean is inf where the column's sum passes it.
    """
    p, e = scaled.partial, scaled.exponent
    gram = p.comoment + p.weight * np.outer(p.mean, p.mean) if assume_centered else p.comoment
    total = unscale_matrix(gram, e, e)
    covariance = np.where(np.isfinite(total), unscale_matrix(gram / p.weight, e, e), total)
    if assume_centered:
        return covariance, np.zeros_like(p.mean)
    location = unscale_vector(p.mean, e)
    overflowed = sum_overflows(scaled)
    if overflowed.any():  # scikit-learn's mean is inf there, and its covariance nan
        location = np.where(overflowed, np.copysign(np.inf, p.mean), location)
        covariance = covariance.copy()
        covariance[overflowed, :] = covariance[:, overflowed] = np.nan
    return covariance, location


class EmpiricalCovariance(SPMDEstimatorMixin, BaseEstimator):
    """Maximum-likelihood covariance over the rows of all ranks.

    Parameters
    ----------
    store_precision : bool, default=True
        Whether to compute and store ``precision_`` (the pseudo-inverse of ``covariance_``).
    assume_centered : bool, default=False
        If True, the data are not centered: ``covariance_`` is ``X^T X / n`` and ``location_``
        is zero.

    Attributes
    ----------
    location_ : ndarray of shape (n_features,)
        Column means over all ranks (zeros with ``assume_centered``).
    covariance_ : ndarray of shape (n_features, n_features)
        Biased (divided by ``n``), as scikit-learn's.
    precision_ : ndarray of shape (n_features, n_features) or None
    n_features_in_ : int

    Notes
    -----
    **Distributed semantics.** ``fit``, ``score`` and ``mahalanobis`` are collective (every rank
    calls them; a rank may pass zero rows). ``location_``, ``covariance_`` and ``precision_`` are
    identical on every rank. ``score`` is the log-likelihood of all ranks' test rows;
    ``mahalanobis`` returns the distances of this rank's rows. ``get_precision`` and
    ``error_norm`` are local (they read the fitted model only).

    The covariance comes from one reduction of per-rank centered co-moments (Chan et al.'s
    merge), stable for data far from the origin. Results are in the input's dtype (scikit-learn
    returns float64 for float32 input).
    """

    _sklearn_class = _SkEmpiricalCovariance
    #: the stages in which scikit-learn's counterpart validates X with dtype="numeric", which
    #: refuses string arrays (:func:`spmdlearn._validation.x_dtype`)
    _numeric_X = ("fit", "predict")
    _fitted_attributes = ("location_", "covariance_", "precision_")
    _parameter_constraints = {"store_precision": ["boolean"], "assume_centered": ["boolean"]}

    def __init__(self, *, store_precision=True, assume_centered=False):
        self.store_precision = store_precision
        self.assume_centered = assume_centered

    def fit(self, X, y=None):
        """Collective: fit the covariance of all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (``n_samples`` may be 0).
        y : None
            Ignored.

        Returns
        -------
        self : EmpiricalCovariance
        """
        comm = self._comm()
        shard = validate_fit(self, comm, X, defer_finite=True,
                             reserve=lambda X, y, w: partial_size(SCALED_COMOMENTS, X, None, None))
        if shard.n_samples == 1:
            warnings.warn("Only one sample available. You may want to reshape your data array",
                          UserWarning, stacklevel=2)
        # The last collective (unless a rank's co-moments overflowed: overflow_ranks): the
        # model follows from the global co-moments alone.
        partial, local = allreduce_scaled(shard.X, None, None, comm=comm, backend=shard.backend,
                                          check=lambda: check_deferred_finite(self, shard),
                                          last=True)
        self._set_model(partial, shard.dtype, overflow_ranks(comm, local, partial))
        return self

    def _set_model(self, scaled, dtype, ranks=None):
        """Fitted attributes from the global (scaled) co-moments, identical on every rank.
        ``ranks``: those whose rows needed scaling (None: none did)."""
        if ranks is None:
            covariance, location = covariance_finalize(scaled.partial, self.assume_centered)
        else:
            covariance, location = _scaled_covariance(scaled, self.assume_centered)
        try:
            # scikit-learn's _set_covariance: check_array refuses a covariance that overflowed
            # (the same check and message on the (d, d) float64 array, without the input
            # type's inspection).
            assert_all_finite(covariance)
        except ValueError:
            if ranks is not None:
                report_overflow(ranks, "the covariance", raises=True)
            raise
        # scikit-learn's dtypes: the mean in the input's dtype, the covariance and precision
        # float64 whatever the input (np.cov): a float32 covariance past the float32 limit
        # would be inf where scikit-learn's is finite
        self.location_ = location.astype(dtype)
        self.covariance_ = covariance
        self.precision_ = (linalg.pinvh(covariance, check_finite=False)
                           if self.store_precision else None)

    def get_precision(self):
        """The precision matrix (stored, or the pseudo-inverse of ``covariance_``); local."""
        if self.store_precision:
            return self.precision_
        return linalg.pinvh(self.covariance_, check_finite=False)

    def score(self, X_test, y=None):
        """Collective: mean log-likelihood of all ranks' test rows under the fitted Gaussian.

        Parameters
        ----------
        X_test : array-like of shape (n_samples, n_features)
            This rank's test rows.
        y : None
            Ignored.

        Returns
        -------
        res : float
            Identical on every rank.
        """
        comm = self._comm()
        shard = validate_predict(self, comm, X_test)
        centered = shard.X - from_model(self.location_, shard.X)
        test_cov, _ = covariance_finalize(_comoments(shard, comm, centered), assume_centered=True)
        return float(log_likelihood(test_cov, self.get_precision()))

    def mahalanobis(self, X):
        """Collective validation, local result: squared Mahalanobis distances of this rank's rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        dist : array of shape (n_samples,)
            In ``X``'s array type and on its device.
        """
        shard = validate_predict(self, self._comm(), X)
        return call_kernel("mahalanobis", shard.backend, X=shard.X,
                           location=np.asarray(self.location_, np.float64),
                           precision=np.asarray(self.get_precision(), np.float64))

    def error_norm(self, comp_cov, norm="frobenius", scaling=True, squared=True):
        """Distance between ``comp_cov`` and the fitted covariance (local; scikit-learn's definition)."""
        return self.to_sklearn().error_norm(comp_cov, norm=norm, scaling=scaling, squared=squared)
