"""Moments and co-moments of one shard, blocked: the cpu twins of
:mod:`spmdlearn.reference._moments`.

Each row block is read from memory once. For the moments, its mean is taken in a first compiled
pass and its centered sums of squares in a second pass over the cached block; for the
co-moments, the block is shifted by its first row into a cached buffer and added to the
co-moment by BLAS ``gemm``, the shifts and means being corrected for at the end. The blocks
are merged with Chan, Golub and LeVeque's pairwise formula, their means taken about the first
block's (so the differences of means the merge squares keep their digits). No centered or
float64 copy of the shard is ever made, and no raw sum of squares is formed, so columns far
from the origin keep their digits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from scipy.linalg.blas import dgemm

from spmdlearn.reference import ColumnStatsPartial, ComomentsPartial, MomentsPartial
from spmdlearn.reference import comoments_local as _reference_comoments

from ._blocks import BLAS_BYTES, STREAM_BYTES, block_rows
from ._layout import canonical
from ._threads import use_kernel_threads

__all__ = ["moments_local", "column_stats_local", "comoments_local"]

#: How sample weights enter: none, rows multiplied by them (moments), frequency weights.
_UNWEIGHTED, _SCALED, _FREQUENCY = 0, 1, 2


@njit(cache=True, nogil=True)
def _merge(W, M, M2, LO, HI, a, b):
    """Merge block ``b`` into block ``a`` (Chan et al.; a block of zero weight is the identity)."""
    d = M.shape[1]
    for j in range(d):
        LO[a, j] = min(LO[a, j], LO[b, j])
        HI[a, j] = max(HI[a, j], HI[b, j])
    wa, wb = W[a], W[b]
    if wb == 0.0:
        return
    if wa == 0.0:
        W[a] = wb
        for j in range(d):
            M[a, j] = M[b, j]
            M2[a, j] = M2[b, j]
        return
    w = wa + wb
    f = wa * (wb / w)  # not (wa * wb) / w: that overflows for weights of 1e200, underflows for 1e-200
    for j in range(d):
        delta = M[b, j] - M[a, j]
        M[a, j] = (wa * M[a, j] + wb * M[b, j]) / w
        M2[a, j] = M2[a, j] + M2[b, j] + delta * delta * f
    W[a] = w


@njit(cache=True, nogil=True)
def _block_moments(nb, d):
    """Each block's weight, mean, centered sum of squares, min and max (``nb`` blocks, at least
    one), as the empty block: the arrays the block kernels fill and :func:`_merged` merges."""
    nb = max(nb, 1)
    return (np.zeros(nb), np.zeros((nb, d)), np.zeros((nb, d)), np.full((nb, d), np.inf),
            np.full((nb, d), -np.inf))


@njit(cache=True, nogil=True)
def _merged(W, M, M2, LO, HI):
    """The blocks' moments merged pairwise, as a tree (:func:`_merge`): ``(weight, mean, m2,
    min, max)`` of all of them."""
    nb = W.shape[0]
    step = 1
    while step < nb:
        for a in range(0, nb - step, 2 * step):
            _merge(W, M, M2, LO, HI, a, a + step)
        step *= 2
    return W[0], M[0].copy(), M2[0].copy(), LO[0].copy(), HI[0].copy()


@njit(cache=True, nogil=True, inline="always")
def _row_factors(w, mode, i):
    """Row ``i``'s factor on its values (its weight where weights scale rows, else 1) and its
    frequency (its weight with frequency weights, else 1)."""
    wi = 1.0 if mode == _UNWEIGHTED else np.float64(w[i])
    return (wi if mode == _SCALED else 1.0), (wi if mode == _FREQUENCY else 1.0)


@njit(cache=True, nogil=True)
def _row_sums(X, w, mode, lo, hi, center, s, mn, mx):
    """The first pass over rows ``lo:hi``: the sums of their values less ``center``, weighted
    by their frequencies, into ``s``, and the values' extremes into ``mn``/``mx`` (a value is
    the row's times its factor, :func:`_row_factors`). Returns the rows' weight."""
    wsum = 0.0
    for i in range(lo, hi):
        a, f = _row_factors(w, mode, i)
        for j in range(X.shape[1]):
            x = np.float64(X[i, j]) * a
            s[j] += f * (x - center[j])
            mn[j] = min(mn[j], x)
            mx[j] = max(mx[j], x)
        wsum += f
    return wsum


@njit(cache=True, nogil=True)
def _row_squares(X, w, mode, lo, hi, center, q):
    """The second pass over rows ``lo:hi``: the squares of their values less ``center``,
    weighted by their frequencies, into ``q``."""
    for i in range(lo, hi):
        a, f = _row_factors(w, mode, i)
        for j in range(X.shape[1]):
            c = np.float64(X[i, j]) * a - center[j]
            q[j] += f * c * c


@njit(cache=True, nogil=True)
def _row_block(X, w, mode, lo, hi, hint, W, M2, LO, HI, b):
    """Block ``b`` (rows ``lo:hi``) of :func:`_column_moments`, in two passes over its rows:
    the sums of the values less ``hint`` (in columns where they are not finite, of the values
    as they are) give the mean, then the squares about it. Writes the weight, centered sum of squares and
    extremes; returns the mean as a center plus a residual: the center holds its leading
    digits, and the mean less ``hint`` is exactly ``(center - hint) + residual`` (the
    residual is what rounding the center lost), which :func:`_relative_means` keeps."""
    d = X.shape[1]
    s = np.zeros(d)
    mn = np.full(d, np.inf)
    mx = np.full(d, -np.inf)
    wsum = _row_sums(X, w, mode, lo, hi, hint, s, mn, mx)
    W[b] = wsum
    for j in range(d):
        LO[b, j] = mn[j]
        HI[b, j] = mx[j]
    if wsum == 0.0:
        return np.zeros(d), np.zeros(d)
    relative = s / wsum
    center = hint + relative
    residual = relative - (center - hint)
    about = np.where(np.isfinite(center), hint, 0.0)
    if (about != hint).any():  # non-finite about the hint: those columns again, about 0
        # (only those: the other columns' sums are the same as they are, and keep their
        # residuals, so one NaN or infinity does not cost the whole block its digits)
        s[:] = 0.0
        _row_sums(X, w, mode, lo, hi, about, s, mn, mx)
        relative = s / wsum
        center = about + relative
        residual = relative - (center - about)
    s[:] = 0.0
    _row_squares(X, w, mode, lo, hi, center, s)
    for j in range(d):
        M2[b, j] = s[j]
    return center, residual


@njit(cache=True, nogil=True)
def _relative_means(center, residual, origin, M, M2, b):
    """Block ``b``'s mean less ``origin`` into ``M[b]``, from its center and residual: the
    center less the origin is exact where both lie within a factor 2 of each other (Sterbenz),
    so blocks far from 0 keep the digits of their differences of means, which the merge
    squares. A residual is left out where the block's sum of squares is not finite (the
    values overflow about the center, and the residual holds only their rounding: the
    reference's mean is the center there)."""
    for j in range(M.shape[1]):
        r = residual[j] if np.isfinite(M2[b, j]) and np.isfinite(residual[j]) else 0.0
        M[b, j] = (center[j] - origin[j]) + r


@njit(cache=True, nogil=True)
def _first_block_origin(center, residual, M, M2, b=0):
    """The origin the blocks' means are taken about: the center of the block taken first
    (``b``) where it is finite (0 elsewhere); writes that block's mean less it into ``M[b]``.

    Blocks' means kept as absolute values lose their low digits where the columns lie far
    from 0 (a mean of 1e8 holds about 1e-8 of absolute error), and the merge's squared
    differences of means with them; about a near origin, the differences keep their digits.
    """
    origin = np.where(np.isfinite(center), center, 0.0)
    _relative_means(center, residual, origin, M, M2, b)
    return origin


@njit(cache=True, nogil=True)
def _heaviest_block(w, n, block):
    """The first of the row blocks of largest total weight ``w`` (one pass over the weights,
    not the rows): the block whose mean is the origin of the weighted kernels. A first block
    of zero or negligible frequency weights would put the origin anywhere (0, or values that
    hardly count), and the other blocks' means about it would lose their digits; the heaviest
    block holds at least ``1 / n_blocks`` of the weight, so the weighted spread about its mean
    is at least as large as that of the origin."""
    best, heaviest = 0, -np.inf
    for b in range((n + block - 1) // block):
        t = 0.0
        for i in range(b * block, min(n, (b + 1) * block)):
            t += w[i]
        if t > heaviest:
            best, heaviest = b, t
    return best


@canonical(read_only="X w")
@njit(parallel=True, cache=True)
def _column_moments(X, w, mode, block):
    """Per-column weight, mean, centered sum of squares, min and max over all rows of ``X``.

    Blocks are independent (``prange``); each takes two passes over its rows while they are
    in cache (:func:`_row_block`); their means are kept about the first block's, or with
    frequency weights the heaviest block's (:func:`_first_block_origin`,
    :func:`_heaviest_block`); then the blocks are merged pairwise, as a tree.
    """
    n, d = X.shape
    nb = (n + block - 1) // block
    W, M, M2, LO, HI = _block_moments(nb, d)
    # the origin's block: the first, or with frequency weights the heaviest
    o = _heaviest_block(w, n, block) if mode == _FREQUENCY else 0
    lo, hi = o * block, min(n, (o + 1) * block)
    center, _ = _row_block(X, w, mode, lo, hi, np.zeros(d), W, M2, LO, HI, o)
    # that block's mean was taken about 0, so its center is rounded at the scale of the
    # values: one more pass over it, about the center, gives the residual
    s = np.zeros(d)
    _row_sums(X, w, mode, lo, hi, center, s, np.empty(d), np.empty(d))
    residual = s / W[o] if W[o] != 0.0 else s
    origin = _first_block_origin(center, residual, M, M2, o)
    for b in prange(nb):
        if b != o:
            center, residual = _row_block(X, w, mode, b * block, min(n, (b + 1) * block),
                                          origin, W, M2, LO, HI, b)
            _relative_means(center, residual, origin, M, M2, b)
    weight, mean, m2, lo, hi = _merged(W, M, M2, LO, HI)
    return weight, origin + mean, m2, lo, hi


#: A block's moments are taken in one pass about its first row where, for every column, the
#: sum of squares about that row is at most this many times the sum of squares about the
#: block's mean: the subtraction that turns one into the other then cancels at most
#: ``log2(16) = 4`` bits (the first row lies within 3.9 standard deviations of the mean).
#: Other blocks take a second pass about their mean.
SHIFT_RATIO = 16.0


@njit(cache=True, nogil=True, inline="always")
def _extend(chunk, shift, s, q, lo_in, lo_out, hi_in, hi_out):
    """Add one chunk of the flattened rows, minus ``shift``, to the lane sums ``s`` and sums of
    squares ``q``, and take its lane minima and maxima from ``lo_in``/``hi_in`` into
    ``lo_out``/``hi_out``.

    The extremes are written to other arrays than they are read from: where they were updated
    in place, LLVM turns ``a = lo[p]; lo[p] = x if x < a else a`` into a masked store of ``x``,
    which is slower than the scalar loop (measured, one Zen 4 core, 2M x 20 float64: 50 ms
    against 32 ms for this form, which compiles to ``vminpd``/``vmaxpd``). A NaN leaves the
    extremes as they are, as the row loop does.
    """
    for p in range(chunk.shape[0]):
        x = np.float64(chunk[p])
        z = x - shift[p]
        s[p] += z
        q[p] += z * z
        a = lo_in[p]
        lo_out[p] = x if x < a else a
        b = hi_in[p]
        hi_out[p] = x if x > b else b


@njit(cache=True, nogil=True)
def _flat_pass(f, lanes, shift, s, q, lo, hi):
    """:func:`_extend` over every chunk of ``f``, the last one partial (the rows after the
    last whole chunk; ``lanes`` being a multiple of the column count, value ``p`` of any chunk
    is in column ``p % d``): the lane sums ``s`` and squares ``q`` of the values less
    ``shift``, and their extremes in ``lo[0]``/``hi[0]``."""
    total = f.shape[0]
    n_chunks = total // lanes
    s[:] = 0.0
    q[:] = 0.0
    lo[:] = np.inf
    hi[:] = -np.inf
    for c in range(0, n_chunks - 1, 2):  # in pairs: the extremes go back and forth
        _extend(f[c * lanes:(c + 1) * lanes], shift, s, q, lo[0], lo[1], hi[0], hi[1])
        _extend(f[(c + 1) * lanes:(c + 2) * lanes], shift, s, q, lo[1], lo[0], hi[1], hi[0])
    if n_chunks % 2:
        c = n_chunks - 1
        _extend(f[c * lanes:(c + 1) * lanes], shift, s, q, lo[0], lo[1], hi[0], hi[1])
        lo[0, :] = lo[1]
        hi[0, :] = hi[1]
    _extend(f[n_chunks * lanes:], shift, s, q, lo[0], lo[0], hi[0], hi[0])


@njit(cache=True, nogil=True)
def _fold(lane_values, d, how):
    """The lanes' values folded into their ``d`` columns: summed (``how`` 0), their minimum
    (1) or their maximum (2)."""
    out = np.full(d, (0.0, np.inf, -np.inf)[how])
    for p in range(lane_values.shape[0]):
        j = p % d
        if how == 0:
            out[j] += lane_values[p]
        elif how == 1:
            out[j] = min(out[j], lane_values[p])
        else:
            out[j] = max(out[j], lane_values[p])
    return out


@njit(cache=True, nogil=True)
def _flat_block(f, d, lanes, shift, s, q, lo, hi):
    """Center and residual of the mean (their sum), centered sum of squares, minimum and
    maximum of each column of the rows whose values are ``f`` (one C-ordered block of ``d``
    columns, flattened), ``lanes`` values (a multiple of ``d``) at a time, which LLVM
    vectorises whatever ``d``.

    One pass takes the sums and sums of squares about the block's first row, the center (and
    the extremes); a block where that would cancel more than :data:`SHIFT_RATIO` allows,
    overflow, or meet non-finite values takes two more passes from the cache, as the
    reference: the mean of the values, the center, then the squares and the residual about
    it. ``shift``, ``s``, ``q`` (``lanes``) and ``lo``/``hi`` (``2 x lanes``) are scratch.
    Returns the center, residual, centered sums of squares, minima and maxima, and whether one
    pass served.
    """
    rows = f.shape[0] // d
    for p in range(lanes):
        shift[p] = np.float64(f[p % d])
    _flat_pass(f, lanes, shift, s, q, lo, hi)
    sums = _fold(s, d, 0)
    squares = _fold(q, d, 0)
    mn = _fold(lo[0], d, 1)
    mx = _fold(hi[0], d, 2)
    center = shift[:d].copy()
    residual = sums / rows
    m2 = squares - sums * residual
    kept = True
    for j in range(d):
        # the raw sum must be finite too: where it overflows, the mean is the reference's
        # (an infinite sum over the rows), not the one about the shift
        kept = (kept and np.isfinite(squares[j]) and np.isfinite(center[j] * rows + sums[j])
                and squares[j] <= SHIFT_RATIO * m2[j])  # False for NaN
    if kept:
        return center, residual, np.maximum(m2, 0.0), mn, mx, True
    # Two more passes over the cached block, as the reference: the mean of the values as they
    # are (the sums about the first row lose the mean's digits where that row lies far out, and
    # overflow where it lies at the other end of the range), then the squares about it, whose
    # sum is the residual.
    shift[:] = 0.0
    _flat_pass(f, lanes, shift, s, q, lo, hi)
    center = _fold(s, d, 0) / rows
    for p in range(lanes):
        shift[p] = center[p % d]
    _flat_pass(f, lanes, shift, s, q, lo, hi)
    return center, _fold(s, d, 0) / rows, _fold(q, d, 0), mn, mx, False


@canonical(read_only="X")
@njit(parallel=True, cache=True)
def _column_moments_flat(X, block, lanes):
    """:func:`_column_moments` of unweighted C-ordered rows: each block's values are taken as
    one flat run (:func:`_flat_block`), so the loops are vectorised across columns and rows;
    the blocks' means are kept about the first block's (:func:`_first_block_origin`)."""
    n, d = X.shape
    f = X.reshape(n * d)
    nb = (n + block - 1) // block
    W, M, M2, LO, HI = _block_moments(nb, d)
    center, residual = _flat_block_into(f, d, lanes, 0, min(n, block), W, M2, LO, HI, 0)
    origin = _first_block_origin(center, residual, M, M2)
    for b in prange(1, nb):
        center, residual = _flat_block_into(f, d, lanes, b * block, min(n, (b + 1) * block), W,
                                            M2, LO, HI, b)
        _relative_means(center, residual, origin, M, M2, b)
    weight, mean, m2, lo, hi = _merged(W, M, M2, LO, HI)
    return weight, origin + mean, m2, lo, hi


@njit(cache=True, nogil=True)
def _flat_block_into(f, d, lanes, lo, hi, W, M2, LO, HI, b):
    """:func:`_flat_block` of rows ``lo:hi``, written as block ``b``'s moments; returns its
    center and residual."""
    center, residual, m2, mn, mx, _ = _flat_block(
        f[lo * d:hi * d], d, lanes, np.empty(lanes), np.empty(lanes), np.empty(lanes),
        np.empty((2, lanes)), np.empty((2, lanes)))
    W[b] = np.float64(hi - lo)
    for j in range(d):
        M2[b, j] = m2[j]
        LO[b, j] = mn[j]
        HI[b, j] = mx[j]
    return center, residual


def _lanes(d):
    """Values per chunk of :func:`_flat_block`: a multiple of ``d`` and of 8 (whole AVX-512
    vectors of float64), at least 64."""
    lanes = d * 8 // np.gcd(d, 8)
    return lanes * max(1, -(-64 // lanes))


def _moments_of(X, sample_weight, mode):
    """``(weight, mean, m2, min, max)`` of the shard's columns, by the fastest kernel that
    serves its layout and weights."""
    n, d = X.shape
    block = block_rows(d)
    if mode == _UNWEIGHTED and type(X) is np.ndarray and X.flags.c_contiguous and d:
        return _column_moments_flat(X, block, _lanes(d))
    return _column_moments(X, _weights(sample_weight, n), mode, block)


def _weights(sample_weight, n):
    """The weights as contiguous float64, the one type the kernels are compiled for (they read
    each weight as float64, so float32 weights give the same values); a copy of one value per
    row at most, never of the shard."""
    if sample_weight is None:
        return np.zeros(0)
    return np.ascontiguousarray(sample_weight, dtype=np.float64)


def moments_local(X, sample_weight=None) -> MomentsPartial:
    """:func:`spmdlearn.reference.moments_local`, in one blocked compiled pass."""
    n, d = X.shape
    if n == 0:
        return MomentsPartial(0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf),
                              np.full(d, -np.inf))
    use_kernel_threads()
    mode = _UNWEIGHTED if sample_weight is None else _SCALED
    _, mean, m2, lo, hi = _moments_of(X, sample_weight, mode)
    return MomentsPartial(float(n), mean, m2, lo, hi)


def column_stats_local(X, sample_weight=None) -> ColumnStatsPartial:
    """:func:`spmdlearn.reference.column_stats_local`, in one blocked compiled pass."""
    n, d = X.shape
    if n == 0:
        return ColumnStatsPartial(0.0, 0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf),
                                  np.full(d, -np.inf))
    use_kernel_threads()
    mode = _UNWEIGHTED if sample_weight is None else _FREQUENCY
    weight, mean, m2, lo, hi = _moments_of(X, sample_weight, mode)
    if weight == 0.0:
        mean, m2 = np.zeros(d), np.zeros(d)
    return ColumnStatsPartial(float(n), float(weight), mean, m2, lo, hi)


@njit(cache=True, nogil=True, inline="always")
def _shift_rows(X, Y, w, weighted, lo, hi, out, c, s, sq):
    """Write rows ``lo:hi`` of ``[X, Y]``, minus ``c`` and scaled by ``sqrt(w)``, into
    ``out[:hi - lo]`` (float64); add their weighted sums to ``s`` and weighted squares to
    ``sq``; return their weight."""
    dx = X.shape[1]
    dy = Y.shape[1]
    if weighted:
        wsum = 0.0
        for i in range(lo, hi):
            r = i - lo
            wi = np.float64(w[i])
            root = np.sqrt(wi)
            wsum += wi
            for j in range(dx):
                z = (np.float64(X[i, j]) - c[j]) * root
                out[r, j] = z
                s[j] += z * root
                sq[j] += z * z
            for j in range(dy):
                z = (np.float64(Y[i, j]) - c[dx + j]) * root
                out[r, dx + j] = z
                s[dx + j] += z * root
                sq[dx + j] += z * z
        return wsum
    for i in range(lo, hi):
        r = i - lo
        for j in range(dx):
            z = np.float64(X[i, j]) - c[j]
            out[r, j] = z
            s[j] += z
            sq[j] += z * z
        for j in range(dy):
            z = np.float64(Y[i, j]) - c[dx + j]
            out[r, dx + j] = z
            s[dx + j] += z
            sq[dx + j] += z * z
    return np.float64(hi - lo)


@canonical(read_only="X Y w")
@njit(cache=True, nogil=True)
def _shift_block(X, Y, w, weighted, lo, hi, out, b, shift, sums, weights):
    """Write rows ``lo:hi`` of ``[X, Y]``, minus the block's shift and scaled by ``sqrt(w)``,
    into ``out[:hi - lo]`` (float64).

    The shift is the block's first row, in one pass over the rows; where, in some column, the
    squares about that row exceed :data:`SHIFT_RATIO` times the squares about the block's mean
    (the first row lies far out: the mean would lose its digits to the shift), the rows are
    written again about the mean that pass found. Records the shift in ``shift[b]``, the
    weighted sums of the shifted rows in ``sums[b]`` and the block's weight in ``weights[b]``.
    ``out.T @ out`` is then the block's weighted co-moment about the shift: one symmetric
    rank-k update.
    """
    dx = X.shape[1]
    c = shift[b]
    s = sums[b]
    for j in range(dx):
        c[j] = np.float64(X[lo, j])
    for j in range(Y.shape[1]):
        c[dx + j] = np.float64(Y[lo, j])
    sq = np.zeros(c.shape[0])
    wsum = _shift_rows(X, Y, w, weighted, lo, hi, out, c, s, sq)
    weights[b] = wsum
    if wsum == 0.0:
        return
    far = False
    for j in range(c.shape[0]):
        if np.isfinite(sq[j]) and not sq[j] <= SHIFT_RATIO * (sq[j] - s[j] * s[j] / wsum):
            far = True
    if far:
        for j in range(c.shape[0]):
            c[j] += s[j] / wsum
            s[j] = 0.0
        _shift_rows(X, Y, w, weighted, lo, hi, out, c, s, sq)


@njit(cache=True, nogil=True)
def _block_corrections(shift, sums, weights):
    """The rank-one terms that turn the sum of the blocks' co-moments about their shifts into the
    centered co-moment of all of them, and the weighted mean.

    Block ``b`` about its own mean is ``S_b - u_b u_b^T`` with ``u_b = s_b / sqrt(W_b)``; merging it
    into the blocks before it (Chan et al.) adds ``v_b v_b^T`` with
    ``v_b = sqrt(W W_b / (W + W_b)) (mean_b - mean)``. Means are kept relative to the first
    block's shift, so the differences of means keep their digits far from the origin.

    Returns ``U``, ``V`` (one row per block), the mean and the total weight.
    """
    nb, d = sums.shape
    U = np.zeros((nb, d))
    V = np.zeros((nb, d))
    mean = np.zeros(d)
    W = 0.0
    for b in range(nb):
        wb = weights[b]
        if wb == 0.0:
            continue
        r = 1.0 / np.sqrt(wb)
        wt = W + wb
        g = np.sqrt(W * wb / wt)
        for j in range(d):
            U[b, j] = sums[b, j] * r
            mb = (shift[b, j] - shift[0, j]) + sums[b, j] / wb
            if W == 0.0:
                mean[j] = mb
            else:
                V[b, j] = (mb - mean[j]) * g
                mean[j] = (W * mean[j] + wb * mb) / wt
        W = wt
    if nb:
        for j in range(d):
            mean[j] += shift[0, j]
    return U, V, mean, W


#: Rows per block of the unshifted path of :func:`comoments_local`: about 2.5 MiB of 20 columns.
#: Measured (CPU time, one core, 2M x 20 float64): 60 ms of ``syrk`` plus 18 ms of ``gemv`` for
#: the sums on blocks of 16,384 rows, against 69-82 ms on blocks of 4,096 or of 65,536 rows.
RAW_BYTES = 5 << 19
#: A block's unshifted co-moment is kept where, for every column, its raw sum of squares is at
#: most this many times its sum of squares about the block's mean: the subtraction of the mean
#: then cancels at most ``log2(16) = 4`` bits, as many as the shift by one row does for a column
#: whose first value lies 3.9 standard deviations from its mean.
RAW_RATIO = 16.0


def _raw_block(Xb, Yb):
    """The co-moment of a float64 block about the origin, ``[Xb, Yb]^T [Xb, Yb]`` (BLAS ``syrk``
    and ``gemm`` on the caller's rows, no copy), and its column sums; or None where the
    subtraction of the block's mean would cancel more than :data:`RAW_RATIO` allows (columns far
    from the origin, constant columns, non-finite values): the caller then shifts the block."""
    rows = Xb.shape[0]
    ones = np.ones(rows)
    dx = Xb.shape[1]
    d = dx + Yb.shape[1]
    G = np.empty((d, d))
    s = np.empty(d)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite: the shifted path reports it
        G[:dx, :dx] = Xb.T @ Xb  # numpy calls syrk for a transposed view of the same array
        s[:dx] = ones @ Xb
        if d > dx:
            G[:dx, dx:] = Xb.T @ Yb
            G[dx:, :dx] = G[:dx, dx:].T
            G[dx:, dx:] = Yb.T @ Yb
            s[dx:] = ones @ Yb
        squares = np.diagonal(G)
        centered = squares - s * s / rows
        if not np.all(squares <= RAW_RATIO * centered):
            return None
    return G, s


def comoments_local(X, Y=None, sample_weight=None) -> ComomentsPartial:
    """:func:`spmdlearn.reference.comoments_local`: one pass of blocked rank-k updates.

    Unweighted float64 blocks whose columns lie near the origin (:func:`_raw_block`) are
    multiplied as they are, by BLAS ``syrk`` on the caller's rows. Every other block is read once:
    shifted by its first row and scaled by ``sqrt(w)`` into a cache-sized float64 buffer (one
    compiled pass that also sums the shifted rows), whose co-moment is added in place to one
    accumulator by BLAS ``dgemm`` (``Z^T Z``). The blocks' means and Chan, Golub and LeVeque's
    merge terms are rank-one corrections applied at the end (:func:`_block_corrections`), so the
    result is the stable blockwise merge with only BLAS calls and at most one compiled pass per
    block. Memory: one block, whatever the shard.
    """
    n, dx = X.shape
    if Y is None:
        Y2 = np.zeros((n, 0), dtype=X.dtype)
    else:
        Y2 = Y[:, None] if Y.ndim == 1 else Y
    d = dx + Y2.shape[1]
    weighted = sample_weight is not None
    w = _weights(sample_weight, n) if weighted else np.zeros(0)
    if weighted and n and float(np.min(w)) < 0:
        return None  # sqrt(w) needs non-negative weights; the reference serves the others
    raw = not weighted and X.dtype == np.float64 and Y2.dtype == np.float64
    block = block_rows(d, RAW_BYTES if raw else BLAS_BYTES)
    # OpenBLAS's dgemm on d x d outputs is fastest on operands of L2-cache size: measured (CPU
    # time, one Zen 4 core, 2M x 21 float64) 38 ms of dgemm on 256 KiB slices against 60 ms of
    # dsyrk (any block size) or 72-80 ms of dgemm on 0.5-1 MiB blocks. Shifting 1 MiB blocks
    # (fewer compiled calls) took 25 ms against 39 ms for 256 KiB ones.
    chunk = block_rows(d, STREAM_BYTES)
    nb = (n + block - 1) // block
    buf = None
    shift, sums, weights = np.zeros((nb, d)), np.zeros((nb, d)), np.zeros(nb)
    comoment = np.zeros((d, d), order="F")  # accumulated in place by dgemm
    for b in range(nb):
        lo = b * block
        hi = min(n, lo + block)
        if raw:
            found = _raw_block(X[lo:hi], Y2[lo:hi])
            if found is not None:
                comoment += found[0]
                sums[b] = found[1]
                weights[b] = hi - lo
                continue
        if buf is None:
            buf = np.empty((min(block, max(n, 1)), d))
        _shift_block(X, Y2, w, weighted, lo, hi, buf, b, shift, sums, weights)
        for s in range(0, hi - lo, chunk):
            # a (d, rows) Fortran-ordered view of the buffer: dgemm adds Z^T Z without a copy
            Zt = buf[s: min(hi - lo, s + chunk)].T
            dgemm(1.0, Zt, Zt, 1.0, comoment, 0, 1, 1)
    with np.errstate(invalid="ignore", over="ignore"):
        overflowed = not (np.all(np.isfinite(sums))
                          and np.all(np.isfinite(shift * weights[:, None] + sums)))
    if overflowed:
        # Sums about a block's first row that are not finite, or whose raw sums are not (values
        # at both ends of the range, non-finite values): the moments about the shifts are not
        # the reference's there (a mean of -inf for rows of +-1e308, of 1.7e308 for rows that
        # sum to inf), so the reference's own formula serves the shard.
        return _reference_comoments(X, Y, sample_weight)
    U, V, mean, weight = _block_corrections(shift, sums, weights)
    if weight == 0.0:
        return ComomentsPartial(float(n), 0.0, np.zeros(d), np.zeros((d, d)))
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite input: non-finite partial
        comoment = comoment - U.T @ U + V.T @ V
        comoment = (comoment + comoment.T) / 2  # exact symmetry
    return ComomentsPartial(float(n), float(weight), mean, comoment)
