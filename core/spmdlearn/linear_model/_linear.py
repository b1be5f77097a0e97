"""LinearRegression and Ridge: one co-moment reduction over all ranks, then a small solve."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin
from sklearn.linear_model import LinearRegression as _SkLinearRegression
from sklearn.linear_model import Ridge as _SkRidge

from .._backends import call_kernel
from .._base import SPMDEstimatorMixin, thread_limit
from .._validation import (Interval, Options, array_parameter, check_deferred_finite,
                           validate_fit, validate_predict)
from .._scaling import (allreduce_scaled, dtype_limit, gram_overflows, overflow_ranks,
                        raise_past_dtype_limit, report_overflow, sum_overflows)
from .._scaling import SCALED_COMOMENTS
from ..collective import partial_size
from ..metrics import r2_score
from ..reference._linear import linear_solve


class _LinearModel(SPMDEstimatorMixin, MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Shared fit/predict/score of the least-squares family."""

    def _alpha(self, n_targets):
        return None

    def _fit(self, X, y, sample_weight, extra_check=None):
        comm = self._comm()
        shard = validate_fit(self, comm, X, y, sample_weight, requires_y=True,
                             extra_check=extra_check, defer_finite=True,
                             reserve=lambda X, y, w: partial_size(SCALED_COMOMENTS, X, y, w))
        with thread_limit(getattr(self, "n_jobs", None)):
            partial, local = allreduce_scaled(shard.X, shard.y, shard.sample_weight, comm=comm,
                                              backend=shard.backend,
                                              check=lambda: check_deferred_finite(self, shard),
                                              last=True)
        ranks = overflow_ranks(comm, local, partial)
        past = self._past_dtype_limit(partial, shard.X.shape[1], shard.dtype)
        if past is not None:  # the same verdict on every rank: from the global partial
            raise_past_dtype_limit(comm, shard.X, shard.dtype, past)
        return self._set_model(partial, shard.X.shape[1], shard.y.ndim, shard.dtype, ranks)

    def _set_model(self, scaled, n_features, y_ndim, dtype, ranks=None):
        """Fitted attributes from the global (scaled) co-moments of ``[X, y]``; returns
        (rank, singular). ``ranks``: those whose rows needed scaling (None: none did)."""
        partial = scaled.partial
        n_targets = partial.mean.shape[0] - n_features
        if ranks is not None:
            self._check_overflow(scaled, n_features, ranks)
        past = self._past_dtype_limit(scaled, n_features, dtype)
        if past is not None:  # (IncrementalLinearRegression: its batches are gone, no ranks)
            limit = dtype_limit(dtype)
            raise ValueError(f"overflow in {past}: it passes the {np.dtype(dtype).name} limit "
                             f"{limit:.4g}; scikit-learn fails on the same rows, and so does "
                             "this fit; fit on float64 data (X.astype(numpy.float64)) for finite "
                             "results")
        try:
            coef, intercept, rank, singular = linear_solve(
                partial, n_features, fit_intercept=self.fit_intercept,
                alpha=self._alpha(n_targets), positive=getattr(self, "positive", False),
                tol=getattr(self, "tol", 1e-6) if self._alpha(n_targets) is None else 1e-6,
                exponent=scaled.exponent)
        except Exception:
            if ranks is not None:
                report_overflow(ranks, "the least-squares solve", raises=True)
            raise
        if ranks is not None and not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            report_overflow(ranks, "the coefficients")
        self.coef_ = (coef[0] if y_ndim == 1 else coef).astype(dtype)
        if not self.fit_intercept:
            self.intercept_ = 0.0  # scikit-learn's value, whatever the number of targets
        elif y_ndim == 1:
            self.intercept_ = dtype.type(intercept[0])
        else:
            self.intercept_ = intercept.astype(dtype)
        return rank, singular.astype(dtype)

    def _past_dtype_limit(self, scaled, n_features, dtype):
        """What scikit-learn computes in float32 (the input's dtype) that passes the float32
        limit, where its fit then fails (a column's sum, for the centering), or None; None
        for float64 input (:meth:`_check_overflow` says that). Local, the same on every rank."""
        limit = dtype_limit(dtype)
        if limit is not None and self.fit_intercept and sum_overflows(scaled, limit).any():
            return "the column sums (for the means)"
        return None

    def _check_overflow(self, scaled, n_features, ranks):
        """Raise where scikit-learn's fit fails on values near the float64 limit (local; the
        same verdict on every rank). Its centering overflows when a column's sum does: the
        mean is inf, and ``lstsq`` refuses the centered rows."""
        if self.fit_intercept and sum_overflows(scaled).any():
            report_overflow(ranks, "the column sums (for the means)", raises=True)
            raise ValueError("array must not contain infs or NaNs: a column's sum passes the "
                             "float64 limit, so its mean (and the centered rows) are not finite")

    def predict(self, X):
        """Collective validation, local result: predictions for this rank's rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (may be empty).

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
        """
        shard = validate_predict(self, self._comm(), X)
        return call_kernel("linear_predict", shard.backend, X=shard.X, coef=self.coef_,
                           intercept=self.intercept_)

    def score(self, X, y, sample_weight=None):
        """Collective: R^2 of the predictions over all ranks' rows (identical on every rank).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        comm = self._comm()
        shard = validate_predict(self, comm, X, y, sample_weight, requires_y=True)
        y_pred = call_kernel("linear_predict", shard.backend, X=shard.X, coef=self.coef_,
                             intercept=self.intercept_)
        return r2_score(shard.y, y_pred, sample_weight=shard.sample_weight)


class LinearRegression(_LinearModel):
    """Ordinary least squares over the rows of all ranks.

    Parameters
    ----------
    fit_intercept : bool, default=True
        Whether to fit an intercept (the data are centered with the global weighted means).
    copy_X : bool, default=True
        spmdlearn never modifies ``X``, whatever this value (kept for scikit-learn's API).
    tol : float, default=1e-6
        As in scikit-learn, used only by the sparse ``lsqr`` solver; spmdlearn takes dense data
        only, so, as for scikit-learn on dense data, it has no effect.
    n_jobs : int, default=None
        Threads for this rank's local kernels (None: the rank's share of its node's cores).
    positive : bool, default=False
        Constrain the coefficients to be non-negative (exact non-negative least squares on the
        reduced system, the minimizer scikit-learn's ``nnls`` finds on the data).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    rank_ : int
        Numerical rank of the centered design over all ranks.
    singular_ : ndarray of shape (n_features,)
        Its singular values, from the Gram eigenvalues (those below ~1e-8 of the largest carry
        no significant digits).
    n_features_in_ : int

    Notes
    -----
    **Distributed semantics.** ``fit`` and ``score`` are collective; ``predict`` is collective
    for validation only (every rank calls it; a rank may pass zero rows) and returns this rank's
    predictions. ``coef_``, ``intercept_``, ``rank_``, ``singular_`` are identical on every rank.

    The fit is one reduction of the weighted co-moments of ``[X, y]`` (Chan et al.'s merge),
    then the normal equations, scaled to unit diagonal and solved by Cholesky; a rank-deficient
    design gets the minimum-norm solution (pseudo-inverse), as scikit-learn's ``lstsq`` gives.
    The normal equations have error ~``cond(X)**2 * eps``; for ill-conditioned designs expect
    less agreement with scikit-learn's SVD than its ``cond(X) * eps``.

    Values near the float64 limit (whose co-moments would overflow) are handled as
    scikit-learn's ``lstsq`` handles them: the co-moments are taken on columns divided by
    powers of two and the solution is unscaled exactly (:mod:`spmdlearn._scaling`); where
    scikit-learn fails (a column's sum past the limit) this fit raises the same error, naming
    the overflow and the ranks whose rows cause it.
    """

    _sklearn_class = _SkLinearRegression
    #: the stages in which scikit-learn's counterpart validates X with dtype="numeric", which
    #: refuses string arrays (:func:`spmdlearn._validation.x_dtype`)
    _numeric_X = ("fit", "predict")
    _fitted_attributes = ("coef_", "intercept_", "rank_", "singular_")
    _parameter_constraints = {
        "fit_intercept": ["boolean"],
        "copy_X": ["boolean"],
        "tol": [Interval(numbers.Real, 0, None, "left")],
        "n_jobs": [None, numbers.Integral],
        "positive": ["boolean"],
    }

    def __init__(self, *, fit_intercept=True, copy_X=True, tol=1e-6, n_jobs=None, positive=False):
        self.fit_intercept = fit_intercept
        self.copy_X = copy_X
        self.tol = tol
        self.n_jobs = n_jobs
        self.positive = positive

    def fit(self, X, y, sample_weight=None):
        """Collective: fit on all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (``n_samples`` may be 0, or fewer than ``n_features``).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights.

        Returns
        -------
        self : LinearRegression
        """
        self.rank_, self.singular_ = self._fit(X, y, sample_weight)
        return self


class Ridge(_LinearModel):
    """Linear least squares with L2 regularization, over the rows of all ranks.

    Parameters
    ----------
    alpha : float or array-like of shape (n_targets,), default=1.0
        Penalty (per target if an array); non-negative.
    fit_intercept : bool, default=True
    copy_X : bool, default=True
        spmdlearn never modifies ``X``, whatever this value.
    max_iter : int, default=None
        Used by scikit-learn's iterative solvers only, which spmdlearn refuses; as for
        scikit-learn's exact solvers, it has no effect.
    tol : float, default=1e-4
        Likewise used by iterative solvers only.
    solver : {"auto", "cholesky", "svd"}, default="auto"
        All three solve the same reduced system exactly: "auto" and "cholesky" by Cholesky,
        "svd" is accepted because its solution is the same. The iterative solvers ("lsqr",
        "sparse_cg", "sag", "saga", "lbfgs") raise NotImplementedError on every rank.
    positive : bool, default=False
        Non-negative coefficients, exactly (non-negative least squares on the reduced system);
        only with ``solver="auto"``.
    random_state : int, RandomState instance or None, default=None
        Used by scikit-learn's "sag"/"saga" only; no effect here (those solvers are refused).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    n_iter_ : None
        Exact solvers do not iterate.
    solver_ : str
        The solver used ("cholesky", or "nnls" with ``positive=True``).
    n_features_in_ : int

    Notes
    -----
    **Distributed semantics.** As for :class:`LinearRegression`: ``fit`` and ``score`` are
    collective; ``predict`` validates collectively and returns this rank's predictions; fitted
    attributes are identical on every rank. One co-moment reduction, then
    ``(X^T X + alpha I) coef = X^T y`` on the centered (weighted) data.
    """

    _sklearn_class = _SkRidge
    #: scikit-learn's fit converts string arrays (dtype=[float64, float32]); its predict refuses
    #: them (dtype="numeric": :func:`spmdlearn._validation.x_dtype`)
    _numeric_X = ("predict",)
    _fitted_attributes = ("coef_", "intercept_", "n_iter_", "solver_")
    _parameter_constraints = {
        "alpha": [Interval(numbers.Real, 0, None, "left"), "array-like"],
        "fit_intercept": ["boolean"],
        "copy_X": ["boolean"],
        "max_iter": [Interval(numbers.Integral, 1, None, "left"), None],
        "tol": [Interval(numbers.Real, 0, None, "left")],
        "solver": [Options(("auto", "svd", "cholesky", "lsqr", "sparse_cg", "sag", "saga",
                            "lbfgs"))],
        "positive": ["boolean"],
        "random_state": ["random_state_like"],
    }

    def __init__(self, alpha=1.0, *, fit_intercept=True, copy_X=True, max_iter=None, tol=1e-4,
                 solver="auto", positive=False, random_state=None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.copy_X = copy_X
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver
        self.positive = positive
        self.random_state = random_state

    def _check_solver(self, estimator, X, y):
        if self.solver in ("lsqr", "sparse_cg", "sag", "saga", "lbfgs"):
            raise NotImplementedError(
                f"solver={self.solver!r} is not available in spmdlearn: its exact solvers "
                "'auto', 'cholesky' and 'svd' solve the same problem")
        if self.positive and self.solver != "auto":
            raise ValueError(f"solver={self.solver!r} does not support positive fitting; "
                             "use solver='auto'")
        alpha = array_parameter(self.alpha, dtype=np.float64)
        n_targets = 1 if y.ndim == 1 else y.shape[1]
        if alpha.ndim > 1 or (alpha.ndim == 1 and alpha.shape[0] not in (1, n_targets)):
            raise ValueError(f"Number of targets and number of penalties do not correspond: "
                             f"{alpha.size} != {n_targets}")
        if np.any(alpha < 0):
            raise ValueError(f"alpha={self.alpha!r} should be >= 0")

    def _alpha(self, n_targets):
        return array_parameter(self.alpha, dtype=np.float64).ravel() * np.ones(n_targets)

    def _past_dtype_limit(self, scaled, n_features, dtype):
        """As :class:`LinearRegression`'s; also the normal equations that scikit-learn's
        "auto" and "cholesky" form in float32."""
        past = super()._past_dtype_limit(scaled, n_features, dtype)
        limit = dtype_limit(dtype)
        if past is None and limit is not None and self.solver in ("auto", "cholesky") \
                and not self.positive \
                and gram_overflows(scaled, n_features, self.fit_intercept, limit):
            past = "the normal equations X^T X, X^T y"
        return past

    def _check_overflow(self, scaled, n_features, ranks):
        """As :class:`LinearRegression`; also, scikit-learn's "auto" and "cholesky" form the
        normal equations ``X^T X``, ``X^T y`` and refuse them once they overflow."""
        super()._check_overflow(scaled, n_features, ranks)
        if self.solver in ("auto", "cholesky") and not self.positive \
                and gram_overflows(scaled, n_features, self.fit_intercept):
            report_overflow(ranks, "the normal equations X^T X, X^T y", raises=True)
            raise ValueError(f"array must not contain infs or NaNs: with solver={self.solver!r} "
                             "the normal equations X^T X, X^T y pass the float64 limit, as they "
                             "do in scikit-learn (solver='svd' solves the same problem without "
                             "forming them)")

    def fit(self, X, y, sample_weight=None):
        """Collective: fit on all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (``n_samples`` may be 0).
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : float or array-like of shape (n_samples,), default=None

        Returns
        -------
        self : Ridge
        """
        self._fit(X, y, sample_weight, extra_check=self._check_solver)
        self.n_iter_ = None
        self.solver_ = "nnls" if self.positive else "cholesky"
        return self
