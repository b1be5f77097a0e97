"""LogisticRegression: scikit-learn's objective and solvers, with sums reduced over all ranks."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from scipy import optimize
from scipy.special import expit, logsumexp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as _SkLogisticRegression
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets

from .._array_api import (accumulation_dtype, device, numpy_dtype, from_model, get_namespace, is_foreign_array, like,
                          take_labels, to_host)
from .._backends import call_kernel, claims
from ..patterns import GRADIENT_SUM
from .._base import SPMDEstimatorMixin, class_weight_meaning, thread_limit
from .._validation import Interval, Options, validate_fit, validate_predict
from ..metrics import accuracy_score
from ..metrics._classification import encode_labels, label_values


class _GlobalLoss:
    """The objective of scikit-learn's LinearModelLoss, its data sums reduced over all ranks.

    ``mean over all rows of w_i * loss_i + 0.5 * l2 * ||coef||^2`` (intercept not penalized),
    with every rank's sums gathered and added in a fixed order: every rank sees the same bits,
    so the optimizer takes the same steps everywhere.
    """

    def __init__(self, comm, X, target, sw, sw_sum, n_classes, fit_intercept, l2, backend):
        self.comm, self.X, self.target, self.sw = comm, X, target, sw
        self.sw_sum, self.K, self.fit_intercept, self.l2 = sw_sum, n_classes, fit_intercept, l2
        self.backend = backend
        self.d = X.shape[1]

    def _split(self, w):
        if self.K == 2:
            return w[: self.d], (w[-1] if self.fit_intercept else 0.0)
        W = w.reshape((self.K, -1), order="F")
        return W[:, : self.d], (W[:, -1] if self.fit_intercept else np.zeros(self.K))

    def _join(self, g_coef, g_intercept):
        if self.K == 2:
            return np.concatenate([g_coef, [g_intercept]]) if self.fit_intercept else g_coef
        G = np.column_stack([g_coef, g_intercept]) if self.fit_intercept else g_coef
        return G.ravel(order="F")

    def _local(self, w, with_hessian=False):
        coef, intercept = self._split(w)
        return call_kernel("logistic_loss_grad", self.backend, X=self.X, target=self.target,
                           sample_weight=self.sw, coef=coef, intercept=intercept,
                           n_classes=self.K, with_hessian=with_hessian)

    def loss_gradient(self, w):
        coef, intercept = self._split(w)
        loss, g_coef, g_int, _ = GRADIENT_SUM.run(
            self.comm, self.X, self.target, self.sw, coef, intercept, n_classes=self.K,
            backend=self.backend)
        g_coef = g_coef / self.sw_sum + self.l2 * coef
        g_int = g_int / self.sw_sum
        value = loss / self.sw_sum + 0.5 * self.l2 * float(np.sum(coef * coef))
        return value, self._join(g_coef, g_int[()] if self.K == 2 else g_int)

    def loss(self, w):
        return self.loss_gradient(w)[0]

    def gradient(self, w):
        return self.loss_gradient(w)[1]

    def gradient_hessian_product(self, w):
        grad = self.gradient(w)
        _, _, _, weights = self._local(w, with_hessian=True)
        coef, _ = self._split(w)

        def hessp(v):
            v_coef, v_int = self._split(v)
            h_coef, h_int = call_kernel("logistic_hessp", self.backend, X=self.X,
                                        hess_weights=weights, v_coef=v_coef, v_intercept=v_int,
                                        n_classes=self.K)
            flat = np.concatenate([np.ravel(h_coef), np.ravel(h_int)])
            total = self.comm.sum_identical(flat) / self.sw_sum
            n_coef = np.size(h_coef)
            h_coef = total[:n_coef].reshape(np.shape(h_coef)) + self.l2 * v_coef
            h_int = total[n_coef:].reshape(np.shape(h_int))
            return self._join(h_coef, h_int[()] if self.K == 2 else h_int)

        return grad, hessp


def _newton_cg(problem, x0, tol, maxiter, verbose, maxinner=200):
    """scikit-learn's Newton-CG (``sklearn.utils.optimize._newton_cg``), step for step.

    The inner conjugate gradient and the Wolfe line search run on globally reduced values, so
    every rank takes the same steps. Its line search is SciPy's MINPACK one
    (``line_search_wolfe1``), the same as scikit-learn's.
    """
    from scipy.optimize._linesearch import line_search_wolfe1, line_search_wolfe2

    xk = np.array(x0, dtype=np.float64, copy=True)
    old_fval, old_old_fval = problem.loss(xk), None
    k = 0
    eps = 16 * np.finfo(np.float64).eps
    while k < maxiter:
        fgrad, fhess_p = problem.gradient_hessian_product(xk)
        absgrad = np.abs(fgrad)
        if np.max(absgrad) <= tol:
            break
        maggrad = np.sum(absgrad)
        termcond = min(0.5, np.sqrt(maggrad)) * maggrad
        xsupi = _cg(fhess_p, fgrad, maxinner, termcond)
        ret = line_search_wolfe1(problem.loss, problem.gradient, xk, xsupi, fgrad, old_fval,
                                 old_old_fval)
        if ret[0] is None:
            fval = problem.loss(xk + xsupi)
            if abs(fval - old_fval) <= abs(old_fval * eps):
                grad = problem.gradient(xk + xsupi)
                if np.sum(np.abs(grad)) < np.sum(np.abs(fgrad)):
                    ret = (1.0, ret[1] + 1, ret[2] + 1, fval, old_fval, grad)
        if ret[0] is None:
            ret = line_search_wolfe2(problem.loss, problem.gradient, xk, xsupi, fgrad, old_fval,
                                     old_old_fval)
        if ret[0] is None:
            warnings.warn("Line Search failed", stacklevel=3)
            break
        alphak, _, _, old_fval, old_old_fval, _ = ret
        xk += alphak * xsupi
        k += 1
        if verbose and problem.comm.rank == 0:
            print(f"Newton-CG iter = {k}, loss = {old_fval}", flush=True)
    if k >= maxiter:
        warnings.warn(f"newton-cg failed to converge at loss = {old_fval}. Increase the number "
                      "of iterations.", ConvergenceWarning, stacklevel=3)
    return xk, k


def _cg(fhess_p, fgrad, maxiter, tol):
    """scikit-learn's capped conjugate gradient for the Newton direction."""
    eps = 16 * np.finfo(fgrad.dtype).eps
    xsupi = np.zeros_like(fgrad)
    ri = fgrad.copy()
    psupi = -ri
    i = 0
    dri0 = ri @ ri
    psupi_norm2 = dri0
    while i <= maxiter:
        if np.sum(np.abs(ri)) <= tol:
            break
        Ap = fhess_p(psupi)
        curv = psupi @ Ap
        if 0 <= curv <= eps * psupi_norm2:
            break
        if curv < 0:
            if i == 0:
                xsupi += dri0 / curv * psupi
            break
        alphai = dri0 / curv
        xsupi += alphai * psupi
        ri += alphai * Ap
        dri1 = ri @ ri
        betai = dri1 / dri0
        psupi = -ri + betai * psupi
        psupi_norm2 = dri1 + betai ** 2 * psupi_norm2
        i += 1
        dri0 = dri1
    return xsupi


def _weights_like(sample_weight, y_index, xp):
    """The sample weights as float64 in ``xp`` (ones when None), a copy the fit may scale."""
    if xp is np:
        return (np.ones(len(y_index)) if sample_weight is None
                else np.asarray(to_host(sample_weight), np.float64).copy())
    f = accumulation_dtype(y_index)  # float32 on a device without float64 (float32 input)
    if sample_weight is None:
        return xp.ones(y_index.shape[0], dtype=f, device=device(y_index))
    if is_foreign_array(sample_weight):
        return xp.astype(sample_weight, f, copy=True)
    return from_model(np.asarray(sample_weight, np.float64), y_index, numpy_dtype(f))


class LogisticRegression(SPMDEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Logistic regression (binary and multinomial) over the rows of all ranks.

    The objective is scikit-learn's: the mean over all ranks' rows of the weighted log-loss,
    plus ``||coef||^2 / (2 C n)`` (``n`` the sum of weights). Its value, gradient and
    Hessian-vector products are sums over rows, gathered from every rank and added in a fixed
    order, so every rank sees the same bits and the optimizer (SciPy's L-BFGS-B, or
    scikit-learn's Newton-CG replayed step for step) takes the same path on every rank.

    Parameters
    ----------
    penalty : {"l2", None}, default="l2"
    dual : bool, default=False
        Only False (the dual form is liblinear's).
    tol : float, default=1e-4
    C : float, default=1.0
    fit_intercept : bool, default=True
    intercept_scaling : float, default=1
        Used by liblinear only, as in scikit-learn; no effect with "lbfgs"/"newton-cg".
    class_weight : dict, "balanced" or None, default=None
        "balanced" uses the class frequencies of all ranks' rows.
    random_state : int, RandomState instance or None, default=None
        Used by scikit-learn's "sag"/"saga"/"liblinear" only; no effect here.
    solver : {"lbfgs", "newton-cg"}, default="lbfgs"
        Others raise NotImplementedError on every rank.
    max_iter : int, default=100
    verbose : int, default=0
        Rank 0 prints progress.
    warm_start : bool, default=False
    n_jobs : int, default=None
        Threads for this rank's local kernels.
    l1_ratio : float or None, default=None
        Only None or 0 (an l2 penalty).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The union of the labels of all ranks.
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : ndarray of shape (1,)
    n_features_in_ : int

    Notes
    -----
    **Distributed semantics.** ``fit`` and ``score`` are collective; ``predict``,
    ``predict_proba``, ``predict_log_proba`` and ``decision_function`` validate collectively and
    return this rank's rows. ``classes_``, ``coef_``, ``intercept_`` and ``n_iter_`` are
    identical on every rank; a rank may lack some classes or hold no rows.
    """

    _sklearn_class = _SkLogisticRegression
    #: scikit-learn's fit converts string arrays (dtype=[float64, float32]); its predict refuses
    #: them (dtype="numeric": :func:`spmdlearn._validation.x_dtype`)
    _numeric_X = ("predict",)
    _fitted_attributes = ("classes_", "coef_", "intercept_", "n_iter_")
    _parameter_constraints = {
        "penalty": [Options(("l2", None))],
        "dual": ["boolean"],
        "tol": [Interval(numbers.Real, 0, None, "left")],
        "C": [Interval(numbers.Real, 0, None, "right")],
        "fit_intercept": ["boolean"],
        "intercept_scaling": [Interval(numbers.Real, 0, None, "neither")],
        "class_weight": [dict, Options(("balanced",)), None],
        "random_state": ["random_state_like"],
        "solver": [Options(("lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag",
                            "saga"))],
        "max_iter": [Interval(numbers.Integral, 0, None, "left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "n_jobs": [None, numbers.Integral],
        "l1_ratio": [Interval(numbers.Real, 0, 1, "both"), None],
    }

    def __init__(self, penalty="l2", *, dual=False, tol=1e-4, C=1.0, fit_intercept=True,
                 intercept_scaling=1, class_weight=None, random_state=None, solver="lbfgs",
                 max_iter=100, verbose=0, warm_start=False, n_jobs=None, l1_ratio=None):
        self.penalty = penalty
        self.dual = dual
        self.tol = tol
        self.C = C
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.l1_ratio = l1_ratio

    def _parameter_meaning(self, params):
        """The parameters by what they mean, for the ranks' comparison: a ``class_weight``
        dict's weights as floats (:func:`spmdlearn._base.class_weight_meaning`)."""
        return class_weight_meaning(params)

    def _check_solver(self, estimator, X, y):
        # The distinct labels: a device array's stay on its device, its values come to the host.
        check_classification_targets(label_values(y))
        if self.solver not in ("lbfgs", "newton-cg"):
            raise NotImplementedError(f"solver={self.solver!r} is not available in spmdlearn; "
                                      "use 'lbfgs' or 'newton-cg'")
        if self.dual:
            raise NotImplementedError("dual=True is liblinear's formulation; spmdlearn solves "
                                      "the primal")
        if self.l1_ratio not in (None, 0, 0.0):
            raise NotImplementedError(f"l1_ratio={self.l1_ratio}: only the l2 penalty "
                                      "(l1_ratio=None or 0) is available")
        if self.solver == "newton-cg":
            try:
                from scipy.optimize._linesearch import line_search_wolfe1  # noqa: F401 - presence check
            except ImportError as exc:  # pragma: no cover - SciPy has had it for a decade
                raise NotImplementedError("solver='newton-cg' needs SciPy's MINPACK line "
                                          "search, not found in this SciPy") from exc

    def fit(self, X, y, sample_weight=None):
        """Collective: fit on all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (may be empty).
        y : array-like of shape (n_samples,)
            This rank's labels.
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : LogisticRegression
        """
        comm = self._comm()
        shard = validate_fit(self, comm, X, y, sample_weight, requires_y=True,
                             multi_output=False, y_numeric=False, extra_check=self._check_solver)
        # Labels are encoded in their own namespace (a numeric device array stays on its
        # device); weights join them there.
        X = shard.X
        classes, y_index = encode_labels(comm, shard.y)
        if len(classes) < 2:
            raise ValueError("This solver needs samples of at least 2 classes in the data, but "
                             f"the data contains only one class: {classes[0] if len(classes) else None!r}"
                             f" (over {comm.size} ranks)")
        K = len(classes)
        xp = get_namespace(y_index) if is_foreign_array(y_index) else np
        sw = _weights_like(shard.sample_weight, y_index, xp)
        if self.class_weight is not None:
            counts = comm.sum_identical(np.array([float(xp.sum(xp.where(y_index == j, sw, xp.zeros_like(sw))))
                                                  for j in range(K)]) if xp is not np
                                        else np.bincount(y_index, weights=sw, minlength=K))

            def class_weights():
                return compute_class_weight(self.class_weight, classes=classes, y=classes,
                                            sample_weight=counts)

            per_class = comm.agree(class_weights)
            sw = sw * (per_class[y_index] if xp is np
                       else xp.take(from_model(per_class, y_index, np.float64), y_index))
        sw_sum = float(comm.sum_identical([float(xp.sum(sw))])[0]) \
            if shard.sample_weight is not None or self.class_weight is not None \
            else float(shard.n_samples)
        C = np.inf if self.penalty is None else self.C
        l2 = 1.0 / (C * sw_sum)
        target = xp.astype(y_index == 1, xp.float64 if xp is np else accumulation_dtype(y_index)) \
            if K == 2 else y_index
        if is_foreign_array(X) and claims(shard.backend, X):
            if xp is np:  # the encoded targets and weights join X on its device once
                target, sw = like(target, X), like(sw, X)
        elif xp is not np:  # a backend serving the host: the kernels' arguments as NumPy
            target, sw = to_host(target), to_host(sw)
        problem = _GlobalLoss(comm, X, target, sw, sw_sum, K, self.fit_intercept, l2,
                              shard.backend)
        d = X.shape[1]
        n_dof = d + int(self.fit_intercept)
        w0 = np.zeros(n_dof) if K == 2 else np.zeros((K, n_dof), order="F")
        if self.warm_start and hasattr(self, "coef_") and self.coef_.shape[1] == d:
            previous = np.column_stack([self.coef_, self.intercept_]) if self.fit_intercept \
                else self.coef_
            if K == 2 and previous.shape[0] == 1:
                w0[:] = previous[0]
            elif K > 2 and previous.shape[0] == K:
                w0[:] = previous
        w0 = w0 if K == 2 else w0.ravel(order="F")
        with thread_limit(self.n_jobs):
            if self.solver == "lbfgs":
                w, n_iter = self._lbfgs(problem, w0, comm)
            else:
                w, n_iter = _newton_cg(problem, w0, self.tol, self.max_iter, self.verbose)
        dtype = shard.dtype
        if K == 2:
            self.coef_ = w[None, :d].astype(dtype)
            self.intercept_ = (w[-1:] if self.fit_intercept else np.zeros(1)).astype(dtype)
        else:
            W = w.reshape((K, -1), order="F")
            self.coef_ = np.ascontiguousarray(W[:, :d]).astype(dtype)
            self.intercept_ = (W[:, -1] if self.fit_intercept else np.zeros(K)).astype(dtype)
        self.classes_ = classes
        self.n_iter_ = np.array([n_iter], dtype=np.int32)
        return self

    def _lbfgs(self, problem, w0, comm):
        iteration = [0]

        def callback(intermediate_result):
            # Progress on rank 0 only (every rank holds the same iterate), flushed at once so
            # that it reaches mpiexec's output while the fit runs.
            iteration[0] += 1
            if self.verbose and comm.rank == 0:
                print(f"L-BFGS-B iter = {iteration[0]}, loss = {intermediate_result.fun}",
                      flush=True)

        result = optimize.minimize(
            problem.loss_gradient, w0, method="L-BFGS-B", jac=True, callback=callback,
            options={"maxiter": self.max_iter, "maxls": 50, "gtol": self.tol,
                     "ftol": 64 * np.finfo(float).eps})
        if not result.success:
            warnings.warn("lbfgs failed to converge after "
                          f"{result.nit} iteration(s) (status={result.status}): "
                          f"{result.message}\nIncrease the number of iterations (max_iter) or "
                          "scale the data.", ConvergenceWarning, stacklevel=3)
        return result.x, min(result.nit, self.max_iter)

    def decision_function(self, X):
        """Collective validation, local result: raw scores of this rank's rows.

        Returns
        -------
        scores : array of shape (n_samples,) for two classes, else (n_samples, n_classes)
            In ``X``'s array type and on its device, as the other per-row results.
        """
        shard = validate_predict(self, self._comm(), X)
        scores = call_kernel("linear_predict", shard.backend, X=shard.X, coef=self.coef_,
                             intercept=self.intercept_)
        # The shape is spelled out, never inferred (-1), so that zero rows reshape too.
        scores = get_namespace(scores).reshape(scores, (shard.X.shape[0], self.coef_.shape[0]))
        return scores[:, 0] if len(self.classes_) == 2 else scores

    def predict_proba(self, X):
        """Collective validation, local result: class probabilities of this rank's rows."""
        scores = self.decision_function(X)
        xp = get_namespace(scores)
        if xp is np:
            if len(self.classes_) == 2:
                p = expit(scores)
                return np.column_stack([1 - p, p])
            return np.exp(scores - logsumexp(scores, axis=1, keepdims=True))
        # The same functions in the input's namespace (each form stable for its sign).
        if len(self.classes_) == 2:
            e = xp.exp(-xp.abs(scores))
            p = xp.where(scores >= 0, 1 / (1 + e), e / (1 + e))
            return xp.stack([1 - p, p], axis=1)
        top = xp.max(scores, axis=1, keepdims=True)
        shifted = scores - top
        return xp.exp(shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True)))

    def predict_log_proba(self, X):
        """Collective validation, local result: log of :meth:`predict_proba`."""
        proba = self.predict_proba(X)
        return get_namespace(proba).log(proba)

    def predict(self, X):
        """Collective validation, local result: the predicted class of each of this rank's rows."""
        scores = self.decision_function(X)
        xp = get_namespace(scores)
        index = xp.astype(scores > 0, xp.int64) if len(self.classes_) == 2 else \
            xp.argmax(scores, axis=1)
        return take_labels(self.classes_, index)

    def score(self, X, y, sample_weight=None):
        """Collective: accuracy over all ranks' rows (identical on every rank)."""
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

    def _to_sklearn(self):
        est = _SkLogisticRegression(C=np.inf if self.penalty is None else self.C, tol=self.tol,
                                    fit_intercept=self.fit_intercept,
                                    class_weight=self.class_weight, solver=self.solver,
                                    max_iter=self.max_iter)
        for name in self._fitted_attributes + ("n_features_in_",):
            setattr(est, name, getattr(self, name))
        return est
