"""Linear least squares and ridge regression from the global co-moments, and prediction.

The fit is one reduction (:data:`spmdlearn.reference.COMOMENTS` over ``[X, y]``) and a small
solve that every rank repeats on identical bits. The solve works on the co-moment matrix (the
normal equations of the centered data), so its accuracy is that of the normal equations:
relative error about ``cond(X)**2 * eps`` where scikit-learn's SVD-based ``lstsq`` has
``cond(X) * eps``. Columns are scaled to unit diagonal first, which removes the part of the
conditioning that comes from the columns' units.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, optimize

from ._moments import ComomentsPartial

__all__ = ["linear_solve", "linear_predict", "gram_blocks"]


def gram_blocks(p: ComomentsPartial, n_features: int, fit_intercept: bool):
    """Split the global co-moments of ``[X, y]`` into the blocks the solvers need.

    Returns ``(XtX, XtY, x_mean, y_mean)``: centered blocks with ``fit_intercept`` (the intercept
    is then ``y_mean - x_mean @ coef``), raw ones without (means returned as zeros).
    """
    C, mean = p.comoment, p.mean
    if not fit_intercept:
        # Raw second moments: C + W m m^T adds PSD terms, so nothing cancels.
        C = C + p.weight * np.outer(mean, mean)
        mean = np.zeros_like(mean)
    return (C[:n_features, :n_features], C[:n_features, n_features:],
            mean[:n_features], mean[n_features:])


def _spectral_solve(eigenvalues, vectors, B, shift, keep):
    """``V diag(1 / (lambda + shift)) V^T B`` over the kept eigenpairs only (the pseudo-inverse)."""
    inverse = np.zeros_like(eigenvalues)
    inverse[keep] = 1.0 / (eigenvalues[keep] + shift)
    return (vectors * inverse) @ (vectors.T @ B)


def linear_solve(p: ComomentsPartial, n_features: int, *, fit_intercept: bool = True,
                 alpha=None, positive: bool = False, tol: float = 1e-6, exponent=None):
    """Least squares (``alpha=None``) or ridge coefficients from the global co-moments.

    The rank is decided once, from one eigendecomposition of the (centered) Gram matrix
    ``X^T X = V diag(s^2) V^T``, with scikit-learn's convention (``LinearRegression`` calls
    ``scipy.linalg.lstsq(X, y, cond=tol)``): singular values ``s <= tol * max(s)`` count as
    zero. The same eigenpairs give the minimum-norm solution ``V diag(1/s^2) V^T X^T y`` over
    the kept directions, as ``lstsq`` does; a full-rank design is solved by Cholesky of the
    unit-diagonal scaled Gram instead (more accurate when the columns' units differ). With
    ``tol`` well above the rounding of the Gram's eigenvalues (``s`` about ``sqrt(eps)`` of
    ``max(s)``), the decision does not depend on how the rows were split.

    Ridge (``alpha`` given) uses the same eigenpairs: ``V diag(1/(s^2 + alpha)) V^T X^T y``;
    directions whose ``s^2 + alpha`` is at the rounding level of the Gram
    (``n_features * eps * max(s^2)``) are dropped, so ``alpha -> 0`` tends to the minimum-norm
    least-squares solution instead of amplifying rounding.

    Parameters
    ----------
    p : ComomentsPartial
        Global co-moments of ``[X, Y]`` (``Y`` as ``n_targets`` columns).
    n_features : int
    fit_intercept : bool, default=True
    alpha : None, float or ndarray of shape (n_targets,), default=None
        Ridge penalty per target; None for ordinary least squares.
    positive : bool, default=False
        Constrain coefficients to be non-negative (non-negative least squares on the reduced
        system, which has the same minimizer as on the data).
    tol : float, default=1e-6
        Relative cutoff on the singular values for the rank (scikit-learn's
        ``LinearRegression(tol=...)``, ``lstsq``'s ``cond``).
    exponent : ndarray of shape (n_features + n_targets,), default=None
        When given, ``p`` holds the co-moments of the columns of ``[X, Y]`` divided by
        ``2**exponent`` (values near the float64 limit, whose co-moments would overflow): see
        :func:`_graded_solve`. None (or zeros): ``p`` is unscaled.

    Returns
    -------
    coef : ndarray of shape (n_targets, n_features)
    intercept : ndarray of shape (n_targets,)
    rank : int
        Numerical rank of the (centered) design matrix: singular values above
        ``tol * max(s)``.
    singular : ndarray of shape (n_features,)
        Its singular values, decreasing (square roots of the Gram eigenvalues: those below
        ``sqrt(eps)`` relative to the largest carry no significant digits).
    """
    if exponent is not None and np.any(exponent):
        return _graded_solve(p, n_features, fit_intercept, alpha, positive, tol,
                             np.asarray(exponent, dtype=np.int64))
    XtX, XtY, x_mean, y_mean = gram_blocks(p, n_features, fit_intercept)
    n_targets = XtY.shape[1]
    if n_features:
        eigenvalues, vectors = linalg.eigh(XtX, check_finite=False)
    else:
        eigenvalues, vectors = np.zeros(0), np.zeros((0, 0))
    largest = max(eigenvalues.max(initial=0.0), 0.0)
    keep = eigenvalues > (tol * np.sqrt(largest)) ** 2 if tol else eigenvalues > 0
    rank = int(keep.sum())
    singular = np.sqrt(np.clip(eigenvalues, 0, None))[::-1]

    alphas = None
    if alpha is not None:
        alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (n_targets,))
    coef = np.zeros((n_targets, n_features))
    if positive:
        for t in range(n_targets):
            A = XtX if alphas is None else XtX + alphas[t] * np.eye(n_features)
            coef[t] = _nnls_gram(A, XtY[:, t])
    elif alphas is None:
        coef = _least_squares(XtX, XtY, eigenvalues, vectors, keep).T
    else:
        noise = largest * n_features * np.finfo(np.float64).eps
        for t in range(n_targets):
            coef[t] = _spectral_solve(eigenvalues, vectors, XtY[:, t], alphas[t],
                                      eigenvalues + alphas[t] > noise)
    intercept = y_mean - coef @ x_mean
    return coef, intercept, rank, singular


def _graded_solve(p, n_features, fit_intercept, alpha, positive, tol, exponent):
    """:func:`linear_solve` from the co-moments of ``Z = X * 2**-ex`` and ``V = Y * 2**-ey``.

    With ``b`` the coefficients of ``X`` and ``u = b * 2**(ex - ey)`` those of ``Z`` for
    ``V`` (the scaled coefficients, of moderate size), everything is solved for ``u``:

    * the rank and the singular values are those of ``X`` (scikit-learn's ``lstsq``
      convention), from ``G = D (Z^T Z) D = 2**-2E X^T X`` with ``D = diag(2**(ex - E))``,
      ``E = max(ex)``: a common power of two, which keeps the spectrum's shape. Entries of
      ``G`` that underflow are below ``2**-1000`` of its largest, far under any cutoff;
    * full rank: Cholesky of the unit-diagonal Gram, which is the same for ``Z`` as for ``X``;
      rank-deficient: the minimum-norm solution over the kept eigenpairs of ``G``,
      ``u = D G^+ D Z^T V``;
    * ridge: ``(Z^T Z + alpha diag(2**-2ex)) u' = Z^T V`` with ``u' = u * 2**(ey - ...)``, the
      penalty scaled per column (it vanishes beside the co-moments of a scaled-down column);
    * positive: non-negativity is the same for ``u`` as for ``b`` (positive scales).

    Then ``b = u * 2**(ey - ex)`` and the intercept ``(mean(V) - u @ mean(Z)) * 2**ey``,
    both exact, inf only where the result itself passes the float64 limit.
    """
    ex, ey = exponent[:n_features], exponent[n_features:]
    ZtZ, ZtV, z_mean, v_mean = gram_blocks(p, n_features, fit_intercept)
    n_targets = ZtV.shape[1]
    E = int(ex.max(initial=0))
    shift = ex - E
    G = np.ldexp(ZtZ, shift[:, None] + shift[None, :])
    eigenvalues, vectors = linalg.eigh(G) if n_features else (np.zeros(0), np.zeros((0, 0)))
    largest = max(eigenvalues.max(initial=0.0), 0.0)
    keep = eigenvalues > (tol * np.sqrt(largest)) ** 2 if tol else eigenvalues > 0
    rank = int(keep.sum())
    singular = np.ldexp(np.sqrt(np.clip(eigenvalues, 0, None)), E)[::-1]

    alphas = None
    if alpha is not None:
        alphas = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (n_targets,))
    u = np.zeros((n_targets, n_features))
    if alphas is not None or positive:
        for t in range(n_targets):
            # (X^T X + alpha I) b = X^T y, written for u = b * 2**(ex - ey[t]).
            A = ZtZ if alphas is None else ZtZ + np.diag(np.ldexp(alphas[t], -2 * ex))
            if positive:
                u[t] = _nnls_gram(A, ZtV[:, t])
                continue
            a_values, a_vectors = linalg.eigh(A)
            noise = max(a_values.max(initial=0.0), 0.0) * n_features * np.finfo(np.float64).eps
            u[t] = _spectral_solve(a_values, a_vectors, ZtV[:, t], 0.0, a_values > noise)
    else:
        solved = np.zeros((0, n_targets)) if n_features == 0 else None
        if solved is None and keep.all():
            scale = 1.0 / np.sqrt(np.diag(ZtZ))
            try:
                factor = linalg.cho_factor(ZtZ * scale[:, None] * scale[None, :],
                                           check_finite=False)
                solved = scale[:, None] * linalg.cho_solve(factor, ZtV * scale[:, None])
            except linalg.LinAlgError:  # full rank by the cutoff, yet not numerically definite
                pass
        if solved is None:
            DZtV = np.ldexp(ZtV, shift[:, None])
            solved = np.ldexp(_spectral_solve(eigenvalues, vectors, DZtV, 0.0, keep),
                              shift[:, None])
        u = solved.T
    intercept = np.ldexp(v_mean - u @ z_mean, ey)
    with np.errstate(over="ignore"):
        coef = np.ldexp(u, ey[:, None] - ex[None, :])
    return coef, intercept, rank, singular


def _least_squares(XtX, XtY, eigenvalues, vectors, keep):
    """Solve the normal equations with the rank already decided (``keep``).

    Full rank: Cholesky of the unit-diagonal scaled Gram (the scaling keeps columns of very
    different units from losing digits). Rank-deficient: the minimum-norm solution over the
    kept eigenpairs, the one that ``lstsq`` returns.
    """
    d = XtX.shape[0]
    if d == 0:
        return np.zeros((0, XtY.shape[1]))
    if keep.all():
        scale = 1.0 / np.sqrt(np.diag(XtX))
        G = XtX * scale[:, None] * scale[None, :]
        try:
            factor = linalg.cho_factor(G, check_finite=False)
            return scale[:, None] * linalg.cho_solve(factor, XtY * scale[:, None])
        except linalg.LinAlgError:  # full rank by the cutoff, yet not numerically definite
            pass
    return _spectral_solve(eigenvalues, vectors, XtY, 0.0, keep)


def _nnls_gram(A, b):
    """``argmin_{x >= 0} x^T A x - 2 b^T x`` for PSD ``A``, as a non-negative least squares.

    With ``A = S^2`` (``S`` the symmetric square root) and ``c = S^+ b``,
    ``||S x - c||^2 = x^T A x - 2 x^T S S^+ b + const``, and ``S S^+ b = b`` because ``b`` (a
    cross-moment of the data) lies in the range of ``A``.
    """
    if A.shape[0] == 0:
        return np.zeros(0)
    eigenvalues, vectors = linalg.eigh(A)
    cutoff = max(eigenvalues.max(initial=0.0), 0.0) * A.shape[0] * np.finfo(np.float64).eps
    root = np.sqrt(np.clip(eigenvalues, 0, None))
    inv_root = np.where(eigenvalues > cutoff, 1.0 / np.where(root > 0, root, 1), 0.0)
    S = (vectors * root) @ vectors.T
    c = (vectors * inv_root) @ (vectors.T @ b)
    return optimize.nnls(S, c)[0]


def linear_predict(X: np.ndarray, coef: np.ndarray, intercept) -> np.ndarray:
    """``X @ coef.T + intercept`` for one shard, in ``X``'s dtype.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    coef : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept : float or ndarray of shape (n_targets,)
    """
    return X @ np.asarray(coef, dtype=X.dtype).T + np.asarray(intercept, dtype=X.dtype)
