"""Co-moments kept finite for values near the float64 limit: columns scaled by powers of two.

A co-moment (a sum of products of centered values) overflows float64 as soon as values pass
about 1.3e154, although scikit-learn, which decomposes the rows themselves (SVD, least squares),
does not overflow there. Whenever a shard's co-moments are not finite (or so large that the
solvers that use them would overflow), its columns ``j`` are
divided by an exact power of two ``2**e_j`` (``e_j`` from the column's largest magnitude, as
``np.frexp`` gives it) and the co-moments are taken again: a :class:`Scaled` partial holds the
exponents beside the co-moments of the scaled columns. Powers of two do not round, so the
estimators unscale their results exactly (``np.ldexp``), inf where the result itself passes
the float64 limit, as scikit-learn's does.

Normal input pays nothing but a check of the size of each partial: its exponents are zeros, the
combine is the contract's own, and the estimators finalize from the unscaled co-moments as
before (bitwise). Everything here is pure NumPy and local, except :func:`allreduce_scaled` and
:func:`overflow_ranks`, which are collective.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from ._array_api import from_model, get_namespace, numpy_dtype, to_host
from .collective import reduce_step
from .comm import _note_overflow, _ranks
from .contract import ReductionContract
from .reference._moments import ComomentsPartial, comoments_combine, comoments_local

__all__ = ["Scaled", "scaled_local", "scaled_comoments_combine", "SCALED_COMOMENTS",
           "allreduce_scaled", "overflow_ranks", "report_overflow", "scaled_spectrum",
           "sum_overflows", "gram_overflows", "unscale_matrix", "unscale_vector", "dtype_limit",
           "raise_past_dtype_limit", "warn_past_dtype_limit", "past_dtype_limit_message"]


class Scaled(NamedTuple):
    """A co-moments partial of the columns ``Z[:, j] = X[:, j] * 2**-exponent[j]``.

    Reduction contract
    ------------------
    Local
        :func:`scaled_local`: the backend's ``comoments_local``; only if its result is not
        finite, again on the columns scaled by their largest magnitudes' powers of two.
    Combine
        :func:`scaled_comoments_combine`: Chan et al.'s merge at a common scale (the larger
        exponent of each column; both operands brought to the magnitude of their own values
        first when the merge at that scale overflows).
    Finalize
        The estimators, from the scaled co-moments (:func:`unscale_matrix`).
    Identity
        Zero exponents and the co-moments of zero rows.
    """

    exponent: np.ndarray  #: (n_columns,) float64 holding integers >= 0
    partial: ComomentsPartial


#: Means and co-moments below these sizes leave the solvers headroom (products of two of
#: them, the raw second moments ``C + W m m^T``, LAPACK's sums); data whose co-moments pass
#: them (values above ~1e90) are scaled, as are co-moments that overflowed.
_MEAN_LIMIT, _COMOMENT_LIMIT = np.ldexp(1.0, 300), np.ldexp(1.0, 600)


def _finite(partial) -> bool:
    return all(np.isfinite(np.asarray(field, dtype=np.float64)).all() for field in partial)


def _moderate(p: ComomentsPartial) -> bool:
    """Whether ``p`` is finite and far enough from the float64 limit to be used unscaled."""
    # NaN compares False, so a partial that is not finite is not moderate either.
    return bool(np.abs(p.mean).max(initial=0.0) < _MEAN_LIMIT
                and np.abs(p.comoment).max(initial=0.0) < _COMOMENT_LIMIT)


def _exponents(magnitude) -> np.ndarray:
    """Per column, the smallest ``e >= 0`` with ``magnitude * 2**-e < 1`` (as float64)."""
    magnitude = np.asarray(magnitude, dtype=np.float64)
    exponent = np.frexp(np.where(np.isfinite(magnitude), magnitude, 0.0))[1]
    return np.maximum(exponent, 0).astype(np.float64)


def _rescale(p: ComomentsPartial, shift) -> ComomentsPartial:
    """``p`` for columns divided further by ``2**shift`` (exact, apart from underflow)."""
    shift = np.asarray(shift, dtype=np.int64)
    if not shift.any():
        return p
    return p._replace(mean=np.ldexp(p.mean, -shift),
                      comoment=np.ldexp(p.comoment, -(shift[:, None] + shift[None, :])))


def _magnitude(p: ComomentsPartial) -> np.ndarray:
    """Per column, a size of the values behind ``p``: the largest of ``|mean|`` and
    ``sqrt(comoment_jj)``. Scaled below 1, every entry of the co-moments is at most 1."""
    return np.maximum(np.abs(p.mean), np.sqrt(np.clip(np.diag(p.comoment), 0, None)))


def scaled_local(comoments, X, Y=None, check=None) -> Scaled:
    """This shard's :class:`Scaled` co-moments; local, never communicates.

    Parameters
    ----------
    comoments : callable
        ``comoments(X, Y) -> ComomentsPartial`` (the backend's kernel, weights bound).
    X : array of shape (n_samples, n_features)
        In any array namespace.
    Y : array of shape (n_samples,) or (n_samples, n_targets), default=None
    check : callable, default=None
        Called when the first co-moments are not moderate, before any rescaling: the finiteness
        check of the inputs that validation deferred (it raises for NaN or infinity; a value
        that is not finite always makes the co-moments not finite).

    Returns
    -------
    partial : Scaled
        Zero exponents when the co-moments are finite and moderate (the kernel ran once);
        else the co-moments of the columns scaled by the powers of two of their largest
        magnitudes.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        p = comoments(X, Y)
    n_columns = p.mean.shape[0]
    if _moderate(p):
        return Scaled(np.zeros(n_columns), p)
    if check is not None:
        check()
    xp = get_namespace(X)
    columns = [X] if Y is None else [X, Y if Y.ndim == 2 else xp.reshape(Y, (-1, 1))]
    # Only the small per-column maxima cross to the host.
    magnitude = np.concatenate([np.asarray(to_host(xp.max(xp.abs(c), axis=0)), dtype=np.float64)
                                if c.shape[0] else np.zeros(c.shape[1]) for c in columns])
    exponent = _exponents(magnitude)
    d = X.shape[1]
    Xs = X * from_model(np.ldexp(1.0, -exponent[:d].astype(np.int64)), X,
                         dtype=numpy_dtype(X.dtype))
    Ys = None
    if Y is not None:
        factor = np.ldexp(1.0, -exponent[d:].astype(np.int64))
        Ys = Y * from_model(factor if Y.ndim == 2 else factor[0], Y, dtype=numpy_dtype(Y.dtype))
    with np.errstate(over="ignore", invalid="ignore"):
        return Scaled(exponent, comoments(Xs, Ys))


def scaled_comoments_combine(a: Scaled, b: Scaled) -> Scaled:
    """Merge two :class:`Scaled` partials at a common scale; commutative, identity exact.

    Equal exponents (zeros for normal input) merge as the contract does; if that overflows, or
    the exponents differ, each partial is brought to the larger exponent of each column, and,
    if that still overflows, to the magnitude of both partials' own values.
    """
    if a.partial.weight == 0 or b.partial.weight == 0:
        # The identity of Chan's merge: the other partial as it is, rows counted.
        keep = b if a.partial.weight == 0 else a
        return Scaled(keep.exponent, keep.partial._replace(
            n_rows=a.partial.n_rows + b.partial.n_rows))
    exponent = np.maximum(a.exponent, b.exponent)
    with np.errstate(over="ignore", invalid="ignore"):
        merged = comoments_combine(_rescale(a.partial, exponent - a.exponent),
                                   _rescale(b.partial, exponent - b.exponent))
        if _moderate(merged) or not (_finite(a.partial) and _finite(b.partial)):
            return Scaled(exponent, merged)
        exponent = np.maximum(a.exponent + _exponents(_magnitude(a.partial)),
                              b.exponent + _exponents(_magnitude(b.partial)))
        merged = comoments_combine(_rescale(a.partial, exponent - a.exponent),
                                   _rescale(b.partial, exponent - b.exponent))
    return Scaled(exponent, merged)


SCALED_COMOMENTS = ReductionContract(
    "scaled_comoments", lambda X, Y=None, sample_weight=None: scaled_local(
        lambda X, Y: comoments_local(X, Y, sample_weight), X, Y),
    scaled_comoments_combine, lambda p: p)


def scaled_identity(n_columns_x: int, n_targets: int = 0) -> Scaled:
    """The :class:`Scaled` partial of zero rows."""
    Y = np.zeros((0, n_targets)) if n_targets else None
    return Scaled(np.zeros(n_columns_x + n_targets), comoments_local(np.zeros((0, n_columns_x)), Y))


def allreduce_scaled(X, Y, sample_weight, *, comm, backend, check=None, last=False):
    """Collective: the global :class:`Scaled` co-moments of ``[X, Y]`` and this rank's own.

    The backend's ``comoments_local`` kernel computes the partial (twice on a rank whose
    co-moments overflow); the ranks' partials are combined by :func:`scaled_comoments_combine`
    in the fixed order of :func:`spmdlearn.contract.tree_fold`. ``check`` (see
    :func:`scaled_local`) runs in the local step: what it raises, every rank raises. ``last``:
    the collective method's last collective (see :func:`spmdlearn.collective.allreduce`); the
    ranks' overflow, where there is one, is then told in a collective that follows
    (:func:`overflow_ranks`), which keeps the method's exit exchange.

    Returns
    -------
    partial : Scaled
        Identical on every rank.
    local : Scaled
        This rank's partial (for :func:`overflow_ranks`).
    """
    from ._backends import call_kernel

    mine = []

    def step():  # the backend's kernel, again on rescaled columns if its partial overflows
        mine.append(scaled_local(lambda X, Y: call_kernel(
            "comoments_local", backend, X=X, Y=Y, sample_weight=sample_weight), X, Y, check))
        return mine[0]

    partial = reduce_step(SCALED_COMOMENTS, step, X, Y, sample_weight, comm=comm, last=last)
    return partial, mine[0]


def overflow_ranks(comm, local: Scaled | None, partial: Scaled):
    """Collective when ``partial`` is scaled (its exponents are the same on every rank): the
    ranks whose own co-moments overflowed; None, without communicating, for normal input.
    ``local``: this rank's partial (None: a rank without rows)."""
    if not partial.exponent.any():
        return None
    mine = local is not None and bool(local.exponent.any())
    flags = comm.allgather_array(np.array([float(mine)]))[:, 0]
    return [r for r, flag in enumerate(flags) if flag]


def report_overflow(ranks, what: str, *, raises: bool = False) -> None:
    """Say that ``what`` overflowed, naming the ranks whose rows hold values near the float64
    limit: a RuntimeWarning, and a note that the errors raised later in the same collective
    method repeat (``raises``: the caller raises next, as scikit-learn does). Local; ``ranks``
    are the same on every rank."""
    where = f"the values of {_ranks(ranks)} overflow it" if ranks else "the values overflow it"
    message = f"overflow in {what}: {where} (they are near the float64 limit)"
    _note_overflow(message)
    consequence = ("scikit-learn fails on the same rows, and so does this fit" if raises else
                   "those results are inf or nan, as scikit-learn's are on the same rows")
    warnings.warn(f"{message}; {consequence}", RuntimeWarning, stacklevel=3)


def sum_overflows(scaled: Scaled, limit=None) -> np.ndarray:
    """Per column of ``scaled``, whether the column's (weighted) sum passes the float64 limit
    (or ``limit``, that of float32 input, :func:`dtype_limit`): where scikit-learn's mean (a
    sum, then a division) is inf. Local."""
    p = scaled.partial
    with np.errstate(over="ignore"):
        sums = unscale_vector(p.weight * p.mean, scaled.exponent)
    return ~np.isfinite(sums) | (limit is not None and np.abs(sums) > limit)


def gram_overflows(scaled: Scaled, n_features: int, fit_intercept: bool = True,
                   limit=None) -> bool:
    """Whether the normal equations ``X^T X``, ``X^T Y`` of the (centered) columns, as
    scikit-learn forms them, pass the float64 limit (or ``limit``, :func:`dtype_limit`)
    anywhere. Local."""
    p = scaled.partial
    with np.errstate(over="ignore", invalid="ignore"):
        gram = p.comoment if fit_intercept else p.comoment + p.weight * np.outer(p.mean, p.mean)
    e = scaled.exponent
    gram = unscale_matrix(gram[:n_features], e[:n_features], e)
    return not np.isfinite(gram).all() or (limit is not None
                                           and bool((np.abs(gram) > limit).any()))


def scaled_spectrum(scaled: Scaled, n_samples: int):
    """PCA's spectrum (:func:`spmdlearn.reference._pca.pca_spectrum`) of the centered rows
    whose :class:`Scaled` co-moments are ``scaled``, as an SVD of the rows gives it. Local.

    The covariance itself may not be representable (its entries can span more than the float64
    range: a graded matrix, whose eigh loses its small directions), but a square root of it is:
    with ``C_Z = U diag(w) U^T`` the scaled co-moments, ``R = diag(sqrt(w)) U^T diag(2**e)``
    has ``R^T R = X_c^T X_c`` and entries no larger than the columns' norms, so the SVD of ``R``
    gives the singular values and components of the centered rows. Explained variances are
    ``S**2 / (n - 1)``, inf past the limit (as scikit-learn's).
    """
    from scipy import linalg

    from .reference._pca import pca_spectrum

    p, e = scaled.partial, scaled.exponent
    w, U = linalg.eigh(p.comoment, check_finite=False)
    R = unscale_matrix(np.sqrt(np.clip(w, 0, None))[:, None] * U.T, np.zeros_like(e), e)
    # The rank is that of the scaled co-moments (column scaling does not change it), with
    # pca_spectrum's cutoff for co-moments.
    cutoff = max(n_samples, w.shape[0]) * np.finfo(np.float64).eps * max(w.max(initial=0.0), 0.0)
    with np.errstate(over="ignore"):
        return pca_spectrum(n_samples, r=R, rank=int((w > cutoff).sum()))


def r_rank(r, n_samples: int) -> int:
    """The numerical rank of a (scaled) TSQR ``R``, with pca_spectrum's cutoff. Local."""
    from scipy import linalg

    s = linalg.svd(r, compute_uv=False, check_finite=False)
    return int((s > max(n_samples, r.shape[1]) * np.finfo(np.float64).eps
                * s.max(initial=0.0)).sum())


def tsqr_exponents(minimum, maximum) -> np.ndarray:
    """Per column, the power of two (int64) by which to divide the rows before a tall-skinny QR:
    zero unless the column's largest magnitude passes ``2**300`` (its R would near the limit in
    the QR merges). From the global extremes, so identical on every rank. Local."""
    magnitude = np.maximum(np.abs(minimum), np.abs(maximum))
    large = np.isfinite(magnitude) & (magnitude >= _MEAN_LIMIT)
    return np.where(large, _exponents(magnitude), 0).astype(np.int64)


def unscale_matrix(matrix, row_exponent, column_exponent):
    """``matrix[i, j] * 2**(row_exponent[i] + column_exponent[j])``, exact (inf past the limit)."""
    with np.errstate(over="ignore"):
        return np.ldexp(matrix, (np.asarray(row_exponent, dtype=np.int64)[:, None]
                                 + np.asarray(column_exponent, dtype=np.int64)[None, :]))


def unscale_vector(vector, exponent):
    """``vector[j] * 2**exponent[j]``, exact (inf past the limit)."""
    with np.errstate(over="ignore"):
        return np.ldexp(vector, np.asarray(exponent, dtype=np.int64))


def dtype_limit(dtype):
    """The largest finite value of a floating ``dtype`` narrower than float64 (float32:
    about 3.4e38), else None. scikit-learn computes in the input's dtype: a float32 sum,
    ``X^T X`` or singular value past it is inf there, where spmdlearn's float64 partials stay
    finite. Local."""
    dtype = np.dtype(dtype)
    if dtype.kind != "f" or np.finfo(dtype).max >= np.finfo(np.float64).max:
        return None
    return float(np.finfo(dtype).max)


def raise_past_dtype_limit(comm, X, dtype, what: str, exc_type=ValueError, consequence=None):
    """Collective; called alike on every rank (from global values): raise ``exc_type`` on every
    rank, saying that ``what`` passes the limit of ``dtype`` (see :func:`dtype_limit`),
    where scikit-learn's computation in that dtype fails on the same rows, and naming the ranks
    whose rows hold values whose squares pass it (one gather of each rank's largest
    magnitude)."""
    raise exc_type(past_dtype_limit_message(comm, X, dtype, what, consequence))


def warn_past_dtype_limit(comm, X, dtype, what: str, consequence: str) -> None:
    """Collective, as :func:`raise_past_dtype_limit`, for a result that scikit-learn returns
    (NaN or inf) instead of failing: a RuntimeWarning on every rank, naming the ranks."""
    message = past_dtype_limit_message(comm, X, dtype, what, consequence, fails=False)
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def past_dtype_limit_message(comm, X, dtype, what: str, consequence=None, fails=True) -> str:
    """Collective: the message of :func:`raise_past_dtype_limit` (``fails``) or
    :func:`warn_past_dtype_limit`; the overflow is remembered for later errors."""
    xp = get_namespace(X)
    local = float(to_host(xp.max(xp.abs(X)))) if X.shape[0] and X.shape[1] else 0.0
    magnitudes = comm.allgather_array(np.array([local], dtype=np.float64))[:, 0]
    limit = dtype_limit(dtype)
    ranks = [r for r, m in enumerate(magnitudes) if m * m > limit]
    dtype = np.dtype(dtype).name
    where = (f"the values of {_ranks(ranks)} are near it (largest magnitude "
             f"{magnitudes.max():.3g})" if ranks else
             f"the values of the ranks together pass it (largest magnitude {magnitudes.max():.3g})")
    outcome = ("and so does this fit" if fails else "and so does this fit (with this "
               "warning)")
    message = (f"overflow in {what}: it passes the {dtype} limit {limit:.4g}; {where}. "
               f"{consequence or 'scikit-learn fails on the same ' + dtype + ' rows'}, "
               f"{outcome}; fit on float64 data (X.astype(numpy.float64)) for finite results")
    _note_overflow(message)
    return message
