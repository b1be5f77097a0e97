"""k-means: the reference kernels and the Lloyd-step reduction contract.

Distances use scikit-learn's formula (``||c||^2 - 2 x.c`` for the assignment, ``||x - c||^2``
for the inertia), so that decisions fall the same way as scikit-learn's on the gathered data.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.metrics.pairwise import euclidean_distances

from ..contract import ReductionContract

__all__ = ["LloydPartial", "lloyd_local", "lloyd_combine", "LLOYD", "kmeans_inertia",
           "sq_distances", "farthest_rows", "kmeans_assign", "kmeans_transform",
           "kmeans_min_distances", "kmeans_plusplus_potentials", "assigned_sq_distances",
           "relocation_rows", "farthest_assigned_rows", "lloyd_bounded", "center_motion", "center_shift", "bound_margin",
           "upper_bound"]


class LloydPartial(NamedTuple):
    """What one Lloyd step needs from one shard, fused into one reduction.

    Reduction contract
    ------------------
    Local
        :func:`lloyd_local`: assign each row to its nearest center, then per-cluster weighted
        sums and weights, the weighted inertia of that assignment and how many labels changed.
    Combine
        :func:`lloyd_combine`: element-wise sums.
    Finalize
        The estimator: centers ``sums * (1 / weights)`` (scikit-learn's ``_average_centers``),
        after relocating empty clusters.
    Identity
        Zeros.
    """

    sums: np.ndarray  #: (n_clusters, n_features) weighted sums of the rows of each cluster
    weights: np.ndarray  #: (n_clusters,) sum of weights of each cluster
    inertia: float  #: sum of w * squared distance to the assigned center (the new assignment)
    n_changed: float  #: labels different from ``labels_old``
    #: ranks whose step updated its sums from the changed rows only (``lloyd_bounded`` given
    #: ``sums_old``) and did not compute its inertia (0 there): ``inertia`` is then not the
    #: step's; 0 when every rank read all its rows
    incremental: float = 0.0


def sq_distances(X: np.ndarray, centers: np.ndarray, x_squared_norms=None) -> np.ndarray:
    """Squared euclidean distances ``(n_samples, n_centers)``, scikit-learn's computation."""
    if X.shape[0] == 0:
        return np.zeros((0, centers.shape[0]), dtype=X.dtype)
    return euclidean_distances(X, centers, X_norm_squared=None if x_squared_norms is None
                               else x_squared_norms.reshape(-1, 1), squared=True)


def lloyd_local(X, sample_weight, centers, labels_old, X_offset=None):
    """One Lloyd E-step on one shard, and the M-step's sufficient statistics.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,)
    centers : ndarray of shape (n_clusters, n_features)
    labels_old : ndarray of shape (n_samples,), int
        The previous labels (-1 before the first step).
    X_offset : ndarray of shape (n_features,), default=None
        The step is that of the rows ``X - X_offset`` (scikit-learn's centered rows); None:
        ``X`` as given. The reference subtracts it from the whole shard at once (a copy).

    Returns
    -------
    labels : ndarray of shape (n_samples,), int32
        Nearest center (lowest index among ties), by ``||c||^2 - 2 x.c`` as scikit-learn.
    partial : LloydPartial
        Its ``inertia`` is ``kmeans_inertia(X, sample_weight, centers, labels)`` of the new
        labels, computed from coordinate differences.
    """
    k, d = centers.shape
    if X.shape[0] == 0:
        return np.zeros(0, np.int32), LloydPartial(np.zeros((k, d)), np.zeros(k), 0.0, 0.0)
    if X_offset is not None:
        X = X - np.asarray(X_offset, dtype=X.dtype)
    given = centers
    centers = np.asarray(centers, dtype=X.dtype)
    c_norms = np.einsum("ij,ij->i", centers, centers)
    scores = c_norms[None, :] - 2.0 * (X @ centers.T)
    labels = np.argmin(scores, axis=1).astype(np.int32)
    w = np.asarray(sample_weight, dtype=np.float64)
    # Per-column weighted bincounts: the cluster sums without a Python loop over rows. The
    # weighted rows are made feature-major, so that each bincount reads one contiguous column.
    XwT = np.multiply(np.asarray(X, np.float64).T, w, order="C")
    sums = np.stack([np.bincount(labels, weights=XwT[j], minlength=k) for j in range(d)], axis=1)
    weights = np.bincount(labels, weights=w, minlength=k).astype(np.float64)
    # The inertia of the new assignment, from coordinate differences (the same expression as
    # kmeans_inertia, so no second pass over the rows is needed for it).
    return labels, LloydPartial(sums, weights, kmeans_inertia(X, w, given, labels),
                                float(np.count_nonzero(labels != labels_old)))


def lloyd_combine(a: LloydPartial, b: LloydPartial) -> LloydPartial:
    return LloydPartial(a.sums + b.sums, a.weights + b.weights, a.inertia + b.inertia,
                        a.n_changed + b.n_changed, a.incremental + b.incremental)


#: The Lloyd step; its kernel also returns the labels of this rank's rows (``with_rows``).
LLOYD = ReductionContract("lloyd", lambda X, w, c, lo, off: lloyd_local(X, w, c, lo, off)[1],
                          lloyd_combine, lambda p: p, row_args=(0, 1, 3),
                          kernel="kmeans_lloyd_local", with_rows=True)


def bound_margin(dtype, n_features) -> float:
    """The relative margin of the bound test of :func:`lloyd_bounded`, for rows of ``dtype``.

    A row keeps its label ``a`` only when its lower bound ``l`` on the distance to every other
    center and its distance ``d_a`` to ``a`` satisfy ``l^2 - d_a^2 > margin * R^2``, with
    ``R = d_a + max_j ||c_j||`` (at least ``||x||`` and every ``||c_j||``). The margin covers
    the rounding of the plain step's scores ``||c||^2 - 2 x.c`` in ``dtype`` (at most
    ``3 (d + 4) u R^2`` each, ``u`` the unit roundoff, centers rounded to ``dtype`` included:
    the dot-product bound of Higham, "Accuracy and Stability of Numerical Algorithms", 3.1)
    and that of the float64 distances and bounds, with a factor of about two to spare: beyond
    it, the plain step's own argmin picks ``a`` too.
    """
    return 8.0 * (n_features + 4) * float(np.finfo(dtype).eps)


def center_motion(centers, centers_old):
    """What the bounds of :func:`lloyd_bounded` need from the centers, float64.

    Returns
    -------
    decrement : ndarray of shape (n_clusters,)
        For a row labelled ``a``: ``max_{j != a} ||centers[j] - centers_old[j]||``, how much its
        distance to any other center may have dropped (triangle inequality), rounded up.
        Zeros when ``centers_old`` is None.
    separation : ndarray of shape (n_clusters,)
        ``min_{j != a} ||centers[a] - centers[j]||``, rounded down (``inf`` for one cluster):
        every other center is at least ``separation[a] - d_a`` from a row at ``d_a`` from
        ``a`` (Hamerly 2010's half-distance test, as a lower bound).
    """
    centers = np.asarray(centers, np.float64)
    k, d = centers.shape
    up, down = 1 + (d + 4) * np.finfo(np.float64).eps, 1 - (d + 4) * np.finfo(np.float64).eps
    if centers_old is None or k == 1:
        decrement = np.zeros(k)
    else:
        shift = np.sqrt(((centers - np.asarray(centers_old, np.float64)) ** 2).sum(axis=1)) * up
        others = np.where(np.eye(k, dtype=bool), -np.inf, shift[None, :])
        decrement = others.max(axis=1)
    if k == 1:
        return decrement, np.full(1, np.inf)
    gaps = np.sqrt(((centers[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)) * down
    gaps[np.eye(k, dtype=bool)] = np.inf
    return decrement, gaps.min(axis=1)


def center_shift(centers, centers_old):
    """``||centers[j] - centers_old[j]||`` for each center, float64, rounded up (zeros when
    ``centers_old`` is None): how much a row's distance to its own center may have grown
    (triangle inequality), the move of :func:`lloyd_bounded`'s upper bounds."""
    centers = np.asarray(centers, np.float64)
    if centers_old is None:
        return np.zeros(len(centers))
    up = 1 + (centers.shape[1] + 4) * np.finfo(np.float64).eps
    return np.sqrt(((centers - np.asarray(centers_old, np.float64)) ** 2).sum(axis=1)) * up


def upper_bound(sq_distance, n_features):
    """An upper bound on a distance from its square computed in float64 from coordinate
    differences (as :func:`kmeans_inertia`'s terms): the square root, rounded up past the
    rounding of the sum of ``n_features`` squares and of the root."""
    return np.sqrt(sq_distance) * (1 + (n_features + 6) * np.finfo(np.float64).eps)


def lloyd_bounded(X, sample_weight, centers, centers_old, labels_old, lower_old, X_offset=None,
                  upper_old=None, sums_old=None):
    """One Lloyd step that recomputes only the rows whose label may change (Hamerly's bounds).

    The step of :func:`lloyd_local` (same labels, same partial) given, for each row, its label
    ``a`` from the previous step and a lower bound ``l`` on its distance to every other center
    of that step (``centers_old``); the new bound of the row is ``l - decrement[a]``
    (:func:`center_motion`). A row keeps its label when ``max(l - decrement[a],
    separation[a] - d_a)``, squared, exceeds ``d_a^2`` (its distance to ``centers[a]``) by more
    than :func:`bound_margin` ``* R^2``; every other row is assigned as :func:`lloyd_local` does,
    by ``||c||^2 - 2 x.c`` in X's dtype, and gets a new bound from its second-best score
    (G. Hamerly, "Making k-means even faster", SDM 2010: one lower bound per row; here the
    upper bound is the exact ``d_a``, which the inertia needs anyway; an implementation given
    ``upper_old`` and ``sums_old`` may skip the rows whose moved upper bound keeps their label).

    Labels equal :func:`lloyd_local`'s: a kept row's label is the nearest center with a gap
    larger than any rounding of the plain step's scores, so the plain step picks it too. The
    one exception is a row whose recomputed scores differ in the last bits from those of the
    plain step's whole-shard product (a BLAS may round a row differently in another block):
    then the two steps may break a true near-tie differently, as two BLAS libraries do.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,)
    centers : ndarray of shape (n_clusters, n_features), float64
    centers_old : ndarray of shape (n_clusters, n_features), float64, or None
        The centers of the previous step, to which ``lower_old`` refers; None: no bounds yet
        (every row is assigned in full).
    labels_old : ndarray of shape (n_samples,), int32
        The previous labels (-1: none yet, the row is assigned in full).
    lower_old : ndarray of shape (n_samples,), float64
        Lower bounds on each row's distance to the centers of ``centers_old`` other than its
        label (this kernel's previous ``lower``); ignored where ``labels_old`` is -1 or
        ``centers_old`` is None.
    X_offset : ndarray of shape (n_features,), default=None
        As in :func:`lloyd_local`.
    upper_old : ndarray of shape (n_samples,), float64, default=None
        Upper bounds on each row's distance to its label's center of ``centers_old`` (this
        kernel's previous ``upper``); None: none kept. An implementation may use them, with
        :func:`center_shift`, to keep a row's label without reading the row (Hamerly's upper
        bound ``u``: kept while ``u + shift[a]`` stays below the row's lower bound by the
        margin); this definition computes every row's distance.
    sums_old : LloydPartial, default=None
        This rank's partial of the previous call (before any reduction), whose sums and weights
        are those of the rows by ``labels_old``. Given, an implementation may return its
        ``sums`` and ``weights`` updated by the rows whose label changed (subtracted from the
        old cluster, added to the new one: equal to :func:`lloyd_local`'s up to rounding, a
        cluster left with no row of nonzero weight exactly zero), ``inertia`` 0 (not
        computed) and ``incremental`` 1, so that the kept rows are not read; or
        :func:`lloyd_local`'s partial, as this definition always does. None:
        :func:`lloyd_local`'s partial.

    Returns
    -------
    labels : ndarray of shape (n_samples,), int32
        :func:`lloyd_local`'s labels.
    lower : ndarray of shape (n_samples,), float64
        Lower bounds on each row's distance to every center other than its label (``inf`` for
        one cluster), the next step's ``lower_old``.
    partial : LloydPartial
        :func:`lloyd_local`'s partial of these labels (see ``sums_old``).
    upper : ndarray of shape (n_samples,), float64
        Upper bounds on each row's distance to its label's center (:func:`upper_bound` of the
        distance here), the next step's ``upper_old``.
    """
    k, d = centers.shape
    n = X.shape[0]
    if n == 0:
        return (np.zeros(0, np.int32), np.zeros(0),
                LloydPartial(np.zeros((k, d)), np.zeros(k), 0.0, 0.0), np.zeros(0))
    if X_offset is not None:
        X = X - np.asarray(X_offset, dtype=X.dtype)
    centers64 = np.asarray(centers, np.float64)
    labels_old = np.asarray(labels_old, np.int32)
    labels = labels_old.copy()
    lower = np.full(n, -np.inf)
    if centers_old is not None:
        # the bound test, on the rows labelled in the previous step
        decrement, separation = center_motion(centers64, centers_old)
        known = labels_old >= 0
        a = np.where(known, labels_old, 0)
        d_a = np.sqrt(_assigned_sq(X, centers64, a))
        moved = np.asarray(lower_old, np.float64) - decrement[a]
        # rounded down: the subtraction rounds by at most half a unit in its last place
        finite = np.isfinite(moved)
        moved[finite] -= 2 * np.finfo(np.float64).eps * np.abs(moved[finite])
        bound = np.maximum(moved, separation[a] - d_a)
        radius = d_a + np.sqrt((centers64 ** 2).sum(axis=1)).max()
        keep = known & (bound > d_a) & ((bound - d_a) * (bound + d_a)
                                        > bound_margin(X.dtype, d) * radius ** 2)
        lower[keep] = moved[keep]
    else:
        keep = np.zeros(n, dtype=bool)
    redo = ~keep
    if np.any(redo):
        labels[redo], lower[redo] = _assign_with_bound(X, centers64, redo)
    w = np.asarray(sample_weight, dtype=np.float64)
    XwT = np.multiply(np.asarray(X, np.float64).T, w, order="C")
    sums = np.stack([np.bincount(labels, weights=XwT[j], minlength=k) for j in range(d)], axis=1)
    weights = np.bincount(labels, weights=w, minlength=k).astype(np.float64)
    upper = upper_bound(_assigned_sq(X, centers64, labels), d)
    return labels, lower, LloydPartial(sums, weights, kmeans_inertia(X, w, centers64, labels),
                                       float(np.count_nonzero(labels != labels_old))), upper


def _assign_with_bound(X, centers64, rows):
    """Labels of ``X[rows]`` by :func:`lloyd_local`'s scores (its product of the whole shard,
    so that each row's scores round as there), and a lower bound on each row's distance to
    every other center: from the second-best score, less the rounding it may carry (the plain
    step's scores in X's dtype, :func:`bound_margin`), rounded down; ``inf`` for one center."""
    k, d = centers64.shape
    C = centers64.astype(X.dtype)
    scores = (np.einsum("ij,ij->i", C, C)[None, :] - 2.0 * (X @ C.T))[rows]
    X = X[rows]
    labels = np.argmin(scores, axis=1).astype(np.int32)
    if k == 1:
        return labels, np.full(len(X), np.inf)
    scores[np.arange(len(X)), labels] = np.inf
    second = scores.min(axis=1).astype(np.float64)
    x_sq = np.einsum("ij,ij->i", np.asarray(X, np.float64), np.asarray(X, np.float64))
    radius = np.sqrt(x_sq) + np.sqrt((centers64 ** 2).sum(axis=1)).max()
    lower_sq = x_sq + second - bound_margin(X.dtype, d) / 2 * radius ** 2
    return labels, np.sqrt(np.maximum(lower_sq, 0.0)) * (1 - 2 * np.finfo(np.float64).eps)


#: Rows per block of the row-wise distance to the assigned center: the temporaries
#: ``X - centers[labels]`` of one block stay in cache instead of costing two passes over an
#: array of ``X``'s size (the row sums do not depend on the blocking).
_ROW_BLOCK = 8192


def _by_row_blocks(n_rows, dtype, values) -> np.ndarray:
    """A per-row vector filled ``_ROW_BLOCK`` rows at a time: ``values(lo, hi)`` gives rows
    ``lo:hi`` (each row's value is the same in any block)."""
    out = np.empty(n_rows, dtype=dtype)
    for lo in range(0, n_rows, _ROW_BLOCK):
        hi = min(n_rows, lo + _ROW_BLOCK)
        out[lo:hi] = values(lo, hi)
    return out


def _assigned_sq(X, centers, labels) -> np.ndarray:
    """``||x_i - centers[labels_i]||^2`` per row, float64, from coordinate differences."""
    centers, labels = np.asarray(centers, np.float64), np.asarray(labels)

    def values(lo, hi):
        diff = np.asarray(X[lo:hi], np.float64) - centers[labels[lo:hi]]
        return np.einsum("ij,ij->i", diff, diff)
    return _by_row_blocks(X.shape[0], np.float64, values)


def kmeans_inertia(X, sample_weight, centers, labels) -> float:
    """``sum_i w_i ||x_i - centers[labels_i]||^2`` for one shard (scikit-learn's ``_inertia``)."""
    if X.shape[0] == 0:
        return 0.0
    # contiguous weights: a broadcast view (one weight for every row) takes the same dot
    # product as an array of that weight, bit for bit
    w = np.ascontiguousarray(sample_weight, np.float64)
    return float(w @ _assigned_sq(X, centers, labels))


def farthest_rows(X, centers, labels, n, offset):
    """This shard's ``n`` rows farthest from their centers: ``(distances, global indices)``.

    Sorted by decreasing distance, ties by lower global index; used to relocate empty clusters.
    """
    if X.shape[0] == 0 or n == 0:
        return np.zeros(0), np.zeros(0, np.int64)
    dist = _assigned_sq(X, centers, labels)
    order = np.lexsort((np.arange(len(dist)), -dist))[:n]
    return dist[order], order.astype(np.int64) + offset


def _assign(X, centers):
    """Labels by scikit-learn's ``||c||^2 - 2 x.c`` (lowest index among ties)."""
    centers = np.asarray(centers, dtype=X.dtype)
    c_norms = np.einsum("ij,ij->i", centers, centers)
    return np.argmin(c_norms[None, :] - 2.0 * (X @ centers.T), axis=1).astype(np.int32)


#: Rows per product of :func:`assign_rows`: the cpu backend's full assignment block, a multiple
#: of every BLAS kernel's row tile.
ASSIGN_BLOCK_ROWS = 4096


def assign_rows(rows, centers, order="C"):
    """:func:`_assign`'s labels of some rows of a shard, as the shard's own product scores them.

    For a device backend that decides a few rows (near-ties of its own scores) on the host.
    The rows are scored ``||c||^2 - 2 x.c`` in their dtype by the host BLAS, in products of
    :data:`ASSIGN_BLOCK_ROWS` rows laid out in ``order`` (the shard's memory order), zero rows
    filling the last. A BLAS computes each row of a product by the same arithmetic whatever
    the other rows hold and wherever the row sits in a product of that shape (here, the shape
    of the cpu backend's full blocks), so each row's scores round as in the product of the
    whole shard.

    Parameters
    ----------
    rows : ndarray of shape (n_rows, n_features)
    centers : ndarray of shape (n_clusters, n_features)
    order : {"C", "F"}

    Returns
    -------
    labels : ndarray of shape (n_rows,), int32
    """
    rows = np.asarray(rows)
    m, B = rows.shape[0], ASSIGN_BLOCK_ROWS
    padded = np.zeros((-(-m // B) * B, rows.shape[1]), dtype=rows.dtype, order=order)
    padded[:m] = rows
    labels = [_assign(np.asarray(padded[lo:lo + B], order=order), centers)
              for lo in range(0, len(padded), B)]
    return np.concatenate(labels)[:m] if labels else np.zeros(0, np.int32)


def kmeans_assign(X, centers):
    """The nearest center of each row, and the squared distance to it (an E-step, no M-step).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    centers : ndarray of shape (n_clusters, n_features)

    Returns
    -------
    labels : ndarray of shape (n_samples,), int32
        Nearest center by scikit-learn's ``||c||^2 - 2 x.c`` (the same decisions as
        :func:`lloyd_local`), the lowest index among ties.
    sq_distances : ndarray of shape (n_samples,), float64
        ``||x - centers[label]||^2`` from coordinate differences (scikit-learn's ``_inertia``
        terms): ``sample_weight @ sq_distances`` is the inertia.
    """
    if X.shape[0] == 0:
        return np.zeros(0, np.int32), np.zeros(0)
    labels = _assign(X, centers)
    return labels, _assigned_sq(X, centers, labels)


def kmeans_transform(X, centers):
    """Euclidean distances ``(n_samples, n_clusters)`` of rows to centers (``KMeans.transform``).

    scikit-learn's ``euclidean_distances`` (the ``||x||^2 - 2 x.c + ||c||^2`` expansion, clipped
    at 0, then the square root), in ``X``'s dtype. Callers pass blocks of rows.
    """
    centers = np.asarray(centers, dtype=X.dtype)
    if X.shape[0] == 0:
        return np.zeros((0, centers.shape[0]), dtype=X.dtype)
    return euclidean_distances(X, centers)


def _to_candidates(X, candidates, x_squared_norms):
    """Squared distances ``(n_candidates, n_samples)`` in scikit-learn's k-means++ orientation.

    ``_euclidean_distances(candidates, X, Y_norm_squared=x_squared_norms, squared=True)``:
    ``-2 c.x + ||c||^2 + ||x||^2``, added in that order, so that candidates whose potentials are
    equal up to rounding (duplicated rows, rows on a grid) compare as in scikit-learn.
    """
    candidates = np.ascontiguousarray(candidates, dtype=X.dtype)
    if X.shape[0] == 0:
        return np.zeros((len(candidates), 0), dtype=X.dtype)
    norms = None if x_squared_norms is None else np.asarray(x_squared_norms).reshape(1, -1)
    return euclidean_distances(candidates, X, Y_norm_squared=norms, squared=True)


def kmeans_min_distances(X, centers, closest=None, x_squared_norms=None):
    """The k-means++ update of each row's squared distance to its closest chosen center.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    centers : ndarray of shape (n_new, n_features)
        Newly chosen centers.
    closest : ndarray of shape (n_samples,), float64, default=None
        Squared distance to the closest center chosen so far; None: no center yet.
    x_squared_norms : ndarray of shape (n_samples,), default=None
        Precomputed ``||x||^2``.

    Returns
    -------
    closest : ndarray of shape (n_samples,), float64
        ``min(closest, min_c ||x - c||^2)``, distances by scikit-learn's
        ``euclidean_distances(..., squared=True)`` (the formula its k-means++ uses).
    """
    d = _to_candidates(X, centers, x_squared_norms).min(axis=0, initial=np.inf).astype(np.float64)
    return d if closest is None else np.minimum(np.asarray(closest, np.float64), d)


def kmeans_plusplus_potentials(X, sample_weight, candidates, closest, x_squared_norms=None):
    """This shard's k-means++ potential of each candidate center.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,)
    candidates : ndarray of shape (n_candidates, n_features)
    closest : ndarray of shape (n_samples,), float64
        Squared distance of each row to the closest center chosen so far.
    x_squared_norms : ndarray of shape (n_samples,), default=None

    Returns
    -------
    potentials : ndarray of shape (n_candidates,), float64
        ``sum_i w_i min(closest_i, ||x_i - c||^2)`` for each candidate ``c`` (scikit-learn's
        ``candidates_pot``, before the sum over ranks).
    """
    n_cand = len(candidates)
    if X.shape[0] == 0:
        return np.zeros(n_cand)
    to_candidates = _to_candidates(X, candidates, x_squared_norms)
    np.minimum(np.asarray(closest), to_candidates, out=to_candidates)
    return np.asarray(to_candidates @ np.ascontiguousarray(sample_weight), np.float64)


def assigned_sq_distances(X, centers, labels) -> np.ndarray:
    """Squared distance of each row to its assigned center, in ``X``'s dtype.

    scikit-learn's ``((X - centers_old[labels]) ** 2).sum(axis=1)`` in
    ``_relocate_empty_clusters_dense``, computed the same way so that ties fall the same way.
    """
    if X.shape[0] == 0:
        return np.zeros(0, dtype=X.dtype)
    centers, labels = np.asarray(centers, dtype=X.dtype), np.asarray(labels)
    return _by_row_blocks(X.shape[0], np.result_type(X.dtype, centers.dtype),
                          lambda lo, hi: ((X[lo:hi] - centers[labels[lo:hi]]) ** 2).sum(axis=1))


def farthest_assigned_rows(X, centers, labels, n_rows, X_offset=None):
    """This shard's ``n_rows`` rows farthest from their assigned centers, for the relocation of
    empty clusters: ``(distances, indices)``.

    The distances are :func:`assigned_sq_distances` of the rows ``X - X_offset`` (X's dtype:
    scikit-learn's ``((X - centers_old[labels]) ** 2).sum(axis=1)`` in
    ``_relocate_empty_clusters_dense``, bit for bit, so that ties fall as there), computed a
    block at a time; the rows are ordered by decreasing distance, then increasing local index.
    Fewer rows than ``n_rows``: all of them.

    Returns
    -------
    distances : ndarray of shape (min(n_rows, n_samples),), X's dtype
    indices : ndarray of shape (min(n_rows, n_samples),), int64
        Local row indices.
    """
    n = X.shape[0]
    dtype = np.result_type(X.dtype, np.float32)
    best_d, best_i = np.zeros(0, dtype=dtype), np.zeros(0, dtype=np.int64)
    if n == 0 or n_rows <= 0:
        return best_d, best_i
    C = np.asarray(centers, dtype=X.dtype)
    labels = np.asarray(labels)
    for lo in range(0, n, _ROW_BLOCK):
        hi = min(n, lo + _ROW_BLOCK)
        Xc = X[lo:hi] if X_offset is None else \
            X[lo:hi] - np.asarray(X_offset, dtype=X.dtype)
        dist = ((Xc - C[labels[lo:hi]]) ** 2).sum(axis=1)
        best_d = np.concatenate([best_d, dist])
        best_i = np.concatenate([best_i, np.arange(lo, hi, dtype=np.int64)])
        order = np.lexsort((best_i, -best_d.astype(np.float64)))[:n_rows]
        best_d, best_i = best_d[order], best_i[order]
    return best_d, best_i


def relocation_rows(distances, n_empty):
    """The rows that receive the ``n_empty`` empty clusters, in order; None when none may move.

    scikit-learn's rule (``_relocate_empty_clusters_dense``) on the distances of all rows to
    their assigned centers: ``np.argpartition(distances, -n_empty)[:-n_empty-1:-1]``, so equal
    distances fall as NumPy's introselect places them; and no relocation at all when every row
    sits on its center (more clusters than distinct rows).
    """
    distances = np.asarray(distances)
    if distances.size == 0 or np.max(distances) == 0:
        return None
    return np.argpartition(distances, -n_empty)[:-n_empty - 1:-1].astype(np.int64)
