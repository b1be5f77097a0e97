"""PCA over the rows of every rank."""

from __future__ import annotations

import numbers
import warnings
from math import log

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.decomposition import PCA as _SkPCA
from sklearn.utils.extmath import fast_logdet, svd_flip

from .._array_api import from_model, get_namespace, numpy_dtype, sum_float64
from .._backends import call_kernel
from .._base import SPMDEstimatorMixin
from .._validation import (Interval, Options, check_deferred_finite, check_X,
                           deferred_finite_moments, validate_fit, validate_predict)
from ..collective import allreduce, reduce_step
from .._scaling import (allreduce_scaled, dtype_limit, overflow_ranks, r_rank,
                        raise_past_dtype_limit, report_overflow, scaled_spectrum,
                        tsqr_exponents, unscale_matrix, unscale_vector, warn_past_dtype_limit)
from ..reference._moments import MOMENTS
from ..reference._pca import TSQR, pca_select, pca_spectrum


def _overflowed_covariance_eigh(raw, mean, n, dtype):
    """scikit-learn's ``covariance_eigh`` steps on an ``X^T X`` past the limit of ``dtype``.

    ``raw`` (float64, inf past the float64 limit) is cast to ``dtype`` (inf past its limit),
    centered and divided as scikit-learn does, in ``dtype``, then decomposed by the same
    ``numpy.linalg.eigh``. Returns ``(singular_values, explained_variance, components)`` (NaN
    where scikit-learn's are), or None where that eigh fails (scikit-learn's LinAlgError).
    Local; the same on every rank (global values).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        m = np.asarray(mean).astype(dtype)
        C = np.asarray(raw).astype(dtype)
        C -= n * m.reshape(-1, 1) * m.reshape(1, -1)
        C /= n - 1
        try:
            eigenvalues, vectors = np.linalg.eigh(C)
        except np.linalg.LinAlgError:
            return None
        eigenvalues, vectors = eigenvalues[::-1].copy(), vectors[:, ::-1]
        eigenvalues[eigenvalues < 0.0] = 0.0
        S = np.sqrt(eigenvalues * (n - 1))
        _, Vt = svd_flip(None, vectors.T.copy(), u_based_decision=False)
    return S, eigenvalues, Vt


class PCA(SPMDEstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Principal component analysis of the rows of all ranks.

    Parameters
    ----------
    n_components : int, float, "mle" or None, default=None
        Components to keep: all (``min(n_samples, n_features)``, over all ranks) if None; an int;
        a float in (0, 1) for the smallest number explaining that fraction of the variance;
        ``"mle"`` for Minka's estimate (needs ``n_samples >= n_features``).
    copy : bool, default=True
        spmdlearn never modifies ``X``, whatever this value.
    whiten : bool, default=False
        Scale the projections to unit variance.
    svd_solver : {"auto", "full", "covariance_eigh", "arpack", "randomized"}, default="auto"
        ``"covariance_eigh"``: one reduction of the co-moments, then ``eigh`` (fast; accuracy of
        the covariance). ``"full"``: a mean reduction, then a tall-skinny QR reduction of the
        centered rows and the SVD of ``R`` (the accuracy of an SVD of the data). ``"auto"``
        decides from the global shape: ``"covariance_eigh"`` when ``n_features <= 1000`` and
        ``n_samples >= 10 * n_features``, else ``"full"`` (where scikit-learn would choose its
        approximate ``"randomized"``, spmdlearn computes the exact decomposition).
        ``"arpack"`` and ``"randomized"`` raise NotImplementedError on every rank.
    tol, iterated_power, n_oversamples, power_iteration_normalizer, random_state
        Used by scikit-learn's ``"arpack"``/``"randomized"`` only, which spmdlearn refuses; as in
        scikit-learn with the exact solvers, they have no effect.

    Attributes
    ----------
    components_ : ndarray of shape (n_components_, n_features)
        Signs follow scikit-learn (``svd_flip``, largest entry of each row positive).
    explained_variance_, explained_variance_ratio_, singular_values_ : ndarray of shape (n_components_,)
    mean_ : ndarray of shape (n_features,)
    n_components_ : int
    n_samples_ : int
        Rows over all ranks.
    noise_variance_ : float
    n_features_in_ : int

    Notes
    -----
    **Distributed semantics.** ``fit``, ``fit_transform``, ``score`` are collective;
    ``transform``, ``inverse_transform``, ``score_samples`` validate collectively and return this
    rank's rows. Fitted attributes are identical on every rank; the solver and the number of
    components are chosen from global shapes and statistics. ``get_covariance`` and
    ``get_precision`` are local.
    """

    _sklearn_class = _SkPCA
    #: scikit-learn's PCA computes its spectrum in the input's dtype (float32 variances past
    #: the float32 limit are inf there); its IncrementalPCA in float64
    _spectrum_in_input_dtype = True
    _fitted_attributes = ("components_", "explained_variance_", "explained_variance_ratio_",
                          "singular_values_", "mean_", "n_components_", "n_samples_",
                          "noise_variance_")
    _parameter_constraints = {
        "n_components": [Interval(numbers.Integral, 0, None, "left"),
                         Interval(numbers.Real, 0, 1, "neither"), Options(("mle",)), None],
        "copy": ["boolean"],
        "whiten": ["boolean"],
        "svd_solver": [Options(("auto", "full", "covariance_eigh", "arpack", "randomized"))],
        "tol": [Interval(numbers.Real, 0, None, "left")],
        "iterated_power": [Interval(numbers.Integral, 0, None, "left"), Options(("auto",))],
        "n_oversamples": [Interval(numbers.Integral, 1, None, "left")],
        "power_iteration_normalizer": [Options(("auto", "QR", "LU", "none"))],
        "random_state": ["random_state_like"],
    }

    def __init__(self, n_components=None, *, copy=True, whiten=False, svd_solver="auto", tol=0.0,
                 iterated_power="auto", n_oversamples=10, power_iteration_normalizer="auto",
                 random_state=None):
        self.n_components = n_components
        self.copy = copy
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.tol = tol
        self.iterated_power = iterated_power
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state

    def _parameter_meaning(self, params):
        """The parameters by what they mean, for the ranks' comparison: ``copy`` (``X`` is
        never modified) and, with the exact solvers, the parameters of scikit-learn's
        approximate ones (without effect there), as their defaults."""
        if "copy" in params:
            params["copy"] = True
        if params.get("svd_solver") not in ("arpack", "randomized"):
            params.update({name: default for name, default in (
                ("tol", 0.0), ("iterated_power", "auto"), ("n_oversamples", 10),
                ("power_iteration_normalizer", "auto"), ("random_state", None))
                if name in params})
        return params

    def _check_solver(self, estimator, X, y):
        if self.svd_solver in ("arpack", "randomized"):
            raise NotImplementedError(
                f"svd_solver={self.svd_solver!r} is not available in spmdlearn; use 'full' or "
                "'covariance_eigh' (exact)")

    def _solver(self, n_samples, n_features):
        if self.svd_solver != "auto":
            return self.svd_solver
        if n_features <= 1000 and n_samples >= 10 * n_features:
            return "covariance_eigh"
        return "full"

    def fit(self, X, y=None):
        """Collective: fit the model on all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (may be empty).
        y : None
            Ignored.

        Returns
        -------
        self : PCA
        """
        self._fit(X)
        return self

    def _fit(self, X):
        comm = self._comm()
        # The finiteness check rides in the first reduction's local step, where the partial
        # (co-moments or moments) is not finite: the shard is read once there, not twice.
        shard = validate_fit(self, comm, X, extra_check=self._check_solver, defer_finite=True)
        n, d = shard.n_samples, shard.X.shape[1]
        solver = self._solver(n, d)
        k_request = self.n_components
        # Checks on global shapes: every rank reaches the same verdict.
        if k_request == "mle":
            if n < d:
                raise ValueError(f"n_components='mle' is only supported if n_samples >= "
                                 f"n_features (n_samples={n} summed over {comm.size} ranks, "
                                 f"n_features={d})")
        elif k_request is not None and isinstance(k_request, numbers.Integral) \
                and not 0 <= k_request <= min(n, d):
            raise ValueError(f"n_components={k_request} must be between 0 and "
                             f"min(n_samples, n_features)={min(n, d)} with svd_solver={solver!r} "
                             f"(n_samples={n} summed over {comm.size} ranks)")
        backend = shard.backend
        ranks = None
        # float32 input: scikit-learn computes in float32, and fails where its sums, X^T X,
        # centered rows or singular values pass the float32 limit; spmdlearn's float64
        # partials do not overflow there, so it says so (on every rank: global values)
        limit = dtype_limit(shard.dtype)
        if solver == "covariance_eigh":
            scaled, local = allreduce_scaled(shard.X, None, None, comm=comm, backend=backend,
                                             check=lambda: check_deferred_finite(self, shard))
            ranks = overflow_ranks(comm, local, scaled)
            p, e = scaled.partial, scaled.exponent
            raw = unscale_matrix(p.comoment + p.weight * np.outer(p.mean, p.mean), e, e)
            mean = unscale_vector(p.mean, e)
            # scikit-learn forms the raw X^T X in the input's dtype (then subtracts
            # n mean mean^T): where that passes the dtype's limit, its eigh of the overflowed
            # covariance either fails or returns NaN, as LAPACK goes: the same eigh decides here
            past64 = not np.isfinite(raw).all()
            overflowed = past64 or (limit is not None and np.abs(raw).max(initial=0.0) > limit)
            if overflowed:
                spectrum = _overflowed_covariance_eigh(raw, mean, n, shard.dtype)
                if spectrum is None and past64:
                    report_overflow(ranks, "X^T X", raises=True)
                    raise np.linalg.LinAlgError("Eigenvalues did not converge")
                if spectrum is None:
                    raise_past_dtype_limit(comm, shard.X, shard.dtype, "X^T X",
                                           np.linalg.LinAlgError,
                                           "scikit-learn's eigh of it fails (Eigenvalues did "
                                           "not converge) on the same rows")
                if past64:
                    report_overflow(ranks, "X^T X")
                else:
                    warn_past_dtype_limit(comm, shard.X, shard.dtype, "X^T X",
                                          "scikit-learn's eigh of it returns NaN variances on "
                                          "the same rows")
                S, explained, Vt = spectrum
            elif ranks is None:
                S, explained, Vt = pca_spectrum(n, comoment=p.comoment)
            else:  # a graded covariance, whose eigh would lose the small directions
                S, explained, Vt = scaled_spectrum(scaled, n)
        else:
            def step():
                # moments that overflow near the float64 limit are handled below (the
                # dtype's limit, scaled columns): the kernel does not warn of them
                with np.errstate(over="ignore", invalid="ignore"):
                    return deferred_finite_moments(backend, shard.X, None,
                                                   lambda: check_deferred_finite(self, shard))

            moments = reduce_step(MOMENTS, step, shard.X, None, comm=comm)
            mean = moments.mean
            if limit is not None and moments.n:
                with np.errstate(over="ignore", invalid="ignore"):
                    sums = np.abs(moments.n * moments.mean)
                    centered = np.maximum(moments.max - mean, mean - moments.min)
                if (sums > limit).any():
                    raise_past_dtype_limit(comm, shard.X, shard.dtype,
                                           "the column sums (for the mean)")
                if (centered > limit).any():
                    raise_past_dtype_limit(comm, shard.X, shard.dtype, "the centered rows")
            # R is linear in the columns (R of X diag(d) is R diag(d)): columns whose values
            # near the float64 limit would overflow the QR merges are divided by powers of two
            # (from the global extremes, identical on every rank) and R is unscaled exactly.
            e = tsqr_exponents(moments.min, moments.max)
            if e.any():
                factor = np.ldexp(1.0, -e)
                Xs = shard.X * from_model(factor, shard.X, dtype=numpy_dtype(shard.X.dtype))
                r = allreduce(TSQR, Xs, mean * factor, comm=comm, backend=backend)
                S, explained, Vt = pca_spectrum(n, r=unscale_matrix(r.r, np.zeros_like(e), e),
                                                rank=r_rank(r.r, n))
            else:
                r = allreduce(TSQR, shard.X, mean, comm=comm, backend=backend)
                S, explained, Vt = pca_spectrum(n, r=r.r)
        if limit is not None and solver == "full" and S.size and S[0] > limit:
            raise_past_dtype_limit(comm, shard.X, shard.dtype, "the singular values",
                                   consequence="scikit-learn's SVD of the same float32 rows "
                                   "fails")
        self._fit_svd_solver = solver
        self._set_model(S, explained, Vt, mean, n, shard.dtype)
        if solver == "covariance_eigh" and overflowed:
            with np.errstate(invalid="ignore"):  # scikit-learn's ratios: NaN over a NaN sum
                self.explained_variance_ratio_ = (explained / explained.sum())[
                    :self.n_components_].astype(shard.dtype)
            return shard
        if ranks is not None and not all(np.isfinite(getattr(self, name)).all() for name in (
                "mean_", "components_", "explained_variance_", "singular_values_")):
            report_overflow(ranks, "the spectrum")
        return shard

    def _set_model(self, S, explained, Vt, mean, n, dtype):
        """Fitted attributes from the global spectrum (identical on every rank)."""
        k, ratio, noise = pca_select(self.n_components, explained, n, Vt.shape[1])
        limit = dtype_limit(dtype)
        with np.errstate(over="ignore", invalid="ignore"):  # float32 past its limit: inf
            self.mean_ = mean.astype(dtype)
            self.n_samples_ = n
            self.n_components_ = k
            self.components_ = np.ascontiguousarray(Vt[:k]).astype(dtype)
            self.explained_variance_ = explained[:k].astype(dtype)
            self.explained_variance_ratio_ = ratio[:k].astype(dtype)
            self.singular_values_ = S[:k].astype(dtype)
            self.noise_variance_ = dtype.type(noise)
            squares_overflow = (self._spectrum_in_input_dtype and limit is not None
                                and bool((S ** 2 > limit).any()))
            if squares_overflow:
                # scikit-learn's float32 variances are S**2 / (n - 1), inf where S**2 passes
                # the limit; its ratios are those over their (inf) sum: nan for the inf ones, 0
                # for the others; its noise variance the mean of the rest
                variances = np.where(S ** 2 > limit, np.inf, explained).astype(dtype)
                self.explained_variance_ = variances[:k]
                self.explained_variance_ratio_ = (variances / variances.sum())[:k]
                self.noise_variance_ = dtype.type(np.mean(variances[k:])
                                                  if k < min(n, Vt.shape[1]) else 0.0)
        if squares_overflow:
            warnings.warn(
                f"overflow in explained_variance_: squared singular values pass the "
                f"{dtype.name} limit {limit:.4g}: inf (and their explained_variance_ratio_ nan),"
                f" as scikit-learn's on the same rows; fit on float64 data for finite values",
                RuntimeWarning, stacklevel=4)

    def _project(self, X, backend):
        """``(X - mean_) @ components_.T``, whitened if asked (scikit-learn's formula)."""
        offset = -(self.mean_ @ self.components_.T)
        Z = call_kernel("linear_predict", backend, X=X, coef=self.components_, intercept=offset)
        xp = get_namespace(Z)
        Z = xp.reshape(Z, (X.shape[0], self.components_.shape[0]))
        if self.whiten:
            scale = np.sqrt(self.explained_variance_)
            scale[scale < np.finfo(scale.dtype).eps] = np.finfo(scale.dtype).eps
            dtype = numpy_dtype(Z.dtype)
            Z = call_kernel("affine_transform", backend, X=Z, shift=np.zeros(len(scale), dtype),
                            scale=(1.0 / scale.astype(np.float64)).astype(dtype))
        return Z

    def transform(self, X):
        """Collective validation, local result: project this rank's rows.

        Returns
        -------
        X_new : array of shape (n_samples, n_components_)
            In ``X``'s array type and on its device.
        """
        shard = validate_predict(self, self._comm(), X)
        return self._project(shard.X, shard.backend)

    def fit_transform(self, X, y=None):
        """Collective: fit on all ranks' rows, then project this rank's rows."""
        shard = self._fit(X)
        return self._project(shard.X, shard.backend)

    def inverse_transform(self, X):
        """Local: map projections of this rank's rows back to the input space."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        X = check_X(self, X, reset=False, set_features=False)
        coef = np.sqrt(self.explained_variance_[:, None]) * self.components_ if self.whiten \
            else self.components_
        out = call_kernel("linear_predict", None, X=X, coef=np.ascontiguousarray(coef.T),
                          intercept=self.mean_)
        return get_namespace(out).reshape(out, (X.shape[0], len(self.mean_)))

    def get_covariance(self):
        """Local: the covariance of the fitted generative model (scikit-learn's formula)."""
        return self.to_sklearn().get_covariance()

    def get_precision(self):
        """Local: the inverse of :meth:`get_covariance` (scikit-learn's formula)."""
        return self.to_sklearn().get_precision()

    def _score_samples(self, X, backend=None):
        precision = self.get_precision()
        sq = call_kernel("mahalanobis", backend, X=X, location=np.asarray(self.mean_, np.float64),
                         precision=np.asarray(precision, np.float64))
        log_like = -0.5 * sq - 0.5 * (X.shape[1] * log(2.0 * np.pi) - float(fast_logdet(precision)))
        xp = get_namespace(log_like)
        if xp is np:
            return np.asarray(log_like).astype(X.dtype, copy=False)
        return log_like if log_like.dtype == X.dtype else xp.astype(log_like, X.dtype)

    def score_samples(self, X):
        """Collective validation, local result: log-likelihood of each of this rank's rows."""
        shard = validate_predict(self, self._comm(), X)
        return self._score_samples(shard.X, shard.backend)

    def score(self, X, y=None):
        """Collective: mean log-likelihood over all ranks' rows (identical on every rank)."""
        comm = self._comm()
        shard = validate_predict(self, comm, X)
        ll = self._score_samples(shard.X, shard.backend)
        parts = comm.allgather_array(np.array([sum_float64(ll), ll.shape[0]], np.float64))
        # Summed in rank order from gathered values: the same bits on every rank.
        return float(sum(parts[:, 0]) / sum(parts[:, 1]))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        return self.components_.shape[0]
