"""PCA from one or two reductions: the reference.

Two routes, as scikit-learn's two exact solvers:

* ``covariance_eigh``: the global co-moments (:data:`COMOMENTS`), then ``eigh`` of the covariance;
* ``full``: a tall-skinny QR (TSQR) of the centered rows, then the SVD of the small ``R``. The
  singular values of ``R`` are those of the centered data, so the spectrum is as accurate as
  scikit-learn's SVD of the gathered data, also when the covariance is ill-conditioned.
"""

from __future__ import annotations

from math import lgamma, log
from typing import NamedTuple

import numpy as np
from scipy import linalg
from sklearn.utils.extmath import svd_flip

from ..contract import ReductionContract

__all__ = ["TSQRPartial", "tsqr_local", "tsqr_combine", "TSQR", "MeanRPartial",
           "mean_r_combine", "pca_spectrum", "pca_select", "infer_dimension"]


class TSQRPartial(NamedTuple):
    """The ``R`` factor of one shard's centered rows.

    Reduction contract
    ------------------
    Local
        :func:`tsqr_local`: ``R`` of ``QR(X - mean)``, padded with zero rows to
        ``(n_features, n_features)``, its diagonal made non-negative.
    Combine
        :func:`tsqr_combine`: ``R`` of ``QR([Ra; Rb])`` (``[Ra; Rb]^T [Ra; Rb]`` is the sum of the
        two Gram matrices, so the result is the ``R`` of all rows). Commutative and associative
        up to rounding; exact for the identity.
    Finalize
        :func:`pca_spectrum` with ``solver="full"``.
    Identity
        The zero matrix.
    """

    r: np.ndarray  #: (n_features, n_features) upper triangular


def _r_of(A: np.ndarray, d: int) -> np.ndarray:
    R = np.zeros((d, d))
    if A.shape[0]:
        r = linalg.qr(A, mode="r", check_finite=False)[0][:d]
        # Signs do not matter to the SVD; fixing them makes R unique.
        signs = np.where(np.diag(r) < 0, -1.0, 1.0)
        R[: r.shape[0]] = r * signs[: r.shape[0], None]
    return R


def tsqr_local(X: np.ndarray, mean: np.ndarray) -> TSQRPartial:
    """``R`` of this shard's rows centered by the global ``mean`` (float64)."""
    X = np.asarray(X, dtype=np.float64)
    return TSQRPartial(_r_of(X - mean, X.shape[1]))


def tsqr_combine(a: TSQRPartial, b: TSQRPartial) -> TSQRPartial:
    if not a.r.any():
        return b
    if not b.r.any():
        return a
    return TSQRPartial(_r_of(np.vstack([a.r, b.r]), a.r.shape[1]))


TSQR = ReductionContract("tsqr", tsqr_local, tsqr_combine, lambda p: p.r, row_args=(0,),
                         kernel="tsqr_local")


class MeanRPartial(NamedTuple):
    """Rows seen, their mean and the ``R`` factor of the rows centered by it: what
    scikit-learn's IncrementalPCA carries between batches (its ``singular_values_[:, None] *
    components_`` is such an ``R`` up to a rotation), without truncation.

    Reduction contract
    ------------------
    Local
        The batch's mean, then :func:`tsqr_local` of the batch centered by it (the backend's
        ``tsqr_local`` kernel).
    Combine
        :func:`mean_r_combine`: ``R`` of ``QR([Ra; Rb; sqrt(na nb / n) (mean_a - mean_b)])``,
        scikit-learn's stack with its mean-correction row; the Gram of the stack is the sum of
        the centered co-moments plus Chan et al.'s correction, so the result is the ``R`` of
        all rows centered by their mean, and the SVD of it has the accuracy of an SVD of the
        rows (no squared condition, as a co-moment matrix would have). Commutative and
        associative up to rounding; exact for the identity.
    Finalize
        :func:`pca_spectrum` with ``r``.
    Identity
        Zero rows, a zero mean, the zero matrix.
    """

    n_rows: int
    mean: np.ndarray  #: (n_features,) float64
    r: np.ndarray  #: (n_features, n_features) upper triangular


def mean_r_combine(a: MeanRPartial, b: MeanRPartial) -> MeanRPartial:
    """Merge two :class:`MeanRPartial` (see its contract)."""
    if a.n_rows == 0:
        return b
    if b.n_rows == 0:
        return a
    n = a.n_rows + b.n_rows
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.n_rows / n)
    correction = np.sqrt(a.n_rows * b.n_rows / n) * delta
    r = _r_of(np.vstack([a.r, b.r, correction[None, :]]), a.r.shape[1])
    return MeanRPartial(n, mean, r)


def pca_spectrum(n_samples: int, *, r=None, comoment=None, rank=None):
    """Singular values and components (rows, scikit-learn's sign convention) of the centered data.

    Parameters
    ----------
    n_samples : int
        Rows over all ranks (at least 2).
    r : ndarray of shape (n_features, n_features), default=None
        The TSQR ``R`` (``solver="full"``).
    comoment : ndarray of shape (n_features, n_features), default=None
        The centered co-moment matrix (``solver="covariance_eigh"``).
    rank : int, default=None
        With ``r``: the numerical rank, decided by the caller (for rows whose columns were
        scaled by powers of two, the rank of the scaled ``R``); singular values past it are 0.
        None: all of ``R``'s singular values are kept, as scikit-learn keeps those of the rows.

    Returns
    -------
    singular_values : ndarray of shape (k,)
        Decreasing; ``k = min(n_samples, n_features)`` for "full", ``n_features`` for
        "covariance_eigh" (as scikit-learn).
    explained_variance : ndarray of shape (k,)
    components : ndarray of shape (k, n_features)

    Notes
    -----
    ``"full"`` takes the singular values of ``R`` as scikit-learn takes those of the rows:
    null directions come out at ``eps`` of the largest singular value, whose square is far
    below anything the choices of ``n_components`` read, and small but exact singular values
    of graded columns are kept. ``"covariance_eigh"`` squares the conditioning: an eigenvalue
    of the co-moments at or below ``max(n_samples, n_features) * eps`` times the largest (the
    rounding bound of the sums that formed them) carries no digits and is set to exactly 0.
    Without that cutoff, null eigenvalues of about ``10 * eps`` of the largest remain, differ
    from one split of the rows to another, and Minka's MLE takes them for signal; with it, the
    rank, ``n_components="mle"``, a variance fraction and ``noise_variance_`` do not depend on
    the split and equal scikit-learn's from the SVD of the gathered rows.
    """
    eps = np.finfo(np.float64).eps
    if r is not None:
        _, S, Vt = linalg.svd(r, full_matrices=False, check_finite=False)
        k = min(n_samples, r.shape[1])
        S, Vt = S[:k], Vt[:k]
        if rank is not None:
            S = np.where(np.arange(S.size) < rank, S, 0.0)
        explained = S ** 2 / (n_samples - 1)
    else:
        eigenvalues, vectors = linalg.eigh(comoment / (n_samples - 1), check_finite=False)
        eigenvalues, vectors = eigenvalues[::-1], vectors[:, ::-1]
        # The covariance is PSD: values at the rounding level (negative ones included) are 0.
        cutoff = max(n_samples, comoment.shape[0]) * eps * max(eigenvalues.max(initial=0.0), 0.0)
        explained = np.where(eigenvalues > cutoff, eigenvalues, 0.0)
        S = np.sqrt(explained * (n_samples - 1))
        Vt = vectors.T
    _, Vt = svd_flip(None, Vt.copy(), u_based_decision=False)
    return S, explained, Vt


def _assess_dimension(spectrum, rank, n_samples):
    """Minka's log-likelihood of a rank-``rank`` model (as scikit-learn computes it)."""
    n_features = spectrum.shape[0]
    eps = 1e-15
    if spectrum[rank - 1] < eps:
        return -np.inf
    pu = -rank * log(2.0)
    for i in range(1, rank + 1):
        pu += lgamma((n_features - i + 1) / 2.0) - log(np.pi) * (n_features - i + 1) / 2.0
    pl = -np.sum(np.log(spectrum[:rank])) * n_samples / 2.0
    v = max(eps, np.sum(spectrum[rank:]) / (n_features - rank))
    pv = -log(v) * n_samples * (n_features - rank) / 2.0
    m = n_features * rank - rank * (rank + 1.0) / 2.0
    pp = log(2.0 * np.pi) * (m + rank) / 2.0
    spectrum_ = spectrum.copy()
    spectrum_[rank:n_features] = v
    pa = 0.0
    for i in range(rank):
        for j in range(i + 1, n_features):
            pa += log((spectrum[i] - spectrum[j]) * (1.0 / spectrum_[j] - 1.0 / spectrum_[i])) \
                + log(n_samples)
    return pu + pl + pv + pp - pa / 2.0 - rank * log(n_samples) / 2.0


def infer_dimension(spectrum: np.ndarray, n_samples: int) -> int:
    """Number of components by Minka's MLE (T. P. Minka, NIPS 2000), in [1, n_features - 1]."""
    ll = np.full(spectrum.shape[0], -np.inf)
    for rank in range(1, spectrum.shape[0]):
        ll[rank] = _assess_dimension(spectrum, rank, n_samples)
    return int(np.argmax(ll))


def pca_select(n_components, explained, n_samples, n_features):
    """Resolve ``n_components`` (None, int, float in (0, 1), "mle") and the noise variance."""
    ratio = explained / explained.sum() if explained.sum() > 0 else np.zeros_like(explained)
    if n_components is None:
        k = min(n_samples, n_features)
    elif n_components == "mle":
        k = infer_dimension(explained, n_samples)
    elif 0 < n_components < 1.0 and not isinstance(n_components, (int, np.integer)):
        k = int(np.searchsorted(np.cumsum(ratio), n_components, side="right") + 1)
    else:
        k = int(n_components)
    noise = float(np.mean(explained[k:])) if k < min(n_features, n_samples) else 0.0
    return k, ratio, noise
