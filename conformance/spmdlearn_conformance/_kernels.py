"""Check 1 and 2: a backend's kernels against the reference, and the contract laws with them.

Kernel checks are local (no collective inside): every rank draws the same hypothesis examples
(derandomized), and the caller reduces the verdicts over ranks.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spmdlearn.contract import pack_partial, simulate
from spmdlearn.reference import COLUMN_STATS, COMOMENTS, MOMENTS, TSQR

from ._arrays import (
    convert_arguments,
    is_array,
    same_kind,
    same_place,
    to_numpy,
    type_name,
)

#: rtol per input dtype, relative to the largest magnitude of each field of the reference.
KERNEL_RTOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-3}
#: Offsets (column means) drawn per dtype: 1e8 in float64 catches naive sums of squares.
OFFSETS = {np.dtype(np.float64): (0.0, 1e3, 1e8), np.dtype(np.float32): (0.0, 1e2)}


@st.composite
def shards(draw):
    """One shard: dtype, shape (empty, one-row, wide, tall), layout, offset, constant columns."""
    dtype = np.dtype(draw(st.sampled_from([np.float64, np.float32])))
    shape = draw(st.sampled_from(["empty", "one-row", "wide", "tall", "any"]))
    n, d = {"empty": (0, 3), "one-row": (1, 4), "wide": (5, 12), "tall": (200, 3)}.get(
        shape, (draw(st.integers(0, 40)), draw(st.integers(1, 6))))
    seed = draw(st.integers(0, 2**31 - 1))
    offset = draw(st.sampled_from(OFFSETS[dtype]))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + offset
    if n and draw(st.booleans()):
        X[:, rng.integers(d)] = X[0, 0]  # a constant column
    layout = draw(st.sampled_from(["C", "F", "view"]))
    X = X.astype(dtype)
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "view":  # non-contiguous: every other column of a wider array
        wide = np.zeros((n, 2 * d), dtype=dtype)
        wide[:, ::2] = X
        X = wide[:, ::2]
    weights = rng.uniform(0, 2, n).astype(dtype) if draw(st.booleans()) else None
    return X, weights, rng


def edge_shards():
    """Fixed shards every kernel meets, whatever hypothesis draws: the cases that break kernels."""
    rng = np.random.default_rng(12345)
    base = rng.normal(size=(300, 4))
    cases = [
        base[:0].copy(), base[:1].copy(), base[:5].copy() @ rng.normal(size=(4, 12)),  # empty, one row, wide
        base + 1e8,  # far from the origin: naive sums of squares cancel
        np.asfortranarray(base + 1e3),
        np.hstack([base, base])[:, ::2],  # a non-contiguous view
        np.column_stack([base[:, :2], np.full(300, 7.0)]),  # a constant column
    ]
    shards = [(X, None, np.random.default_rng(i)) for i, X in enumerate(cases)]
    shards.append((base.astype(np.float32) + np.float32(100), None, np.random.default_rng(9)))
    shards.append((base + 1e8, rng.uniform(0, 2, 300), np.random.default_rng(10)))
    return shards + adversarial_shards()


#: ``id`` of the generator of each fixed adversarial shard: :func:`_inputs` then builds the
#: exact ties (duplicated centers, thresholds equal to values) instead of drawing them.
_TIES: set = set()


def adversarial_shards():
    """Fixed shards full of exact ties, that every kernel meets.

    Small integers on a grid with duplicated rows: equal distances at the k-th neighbour and
    exactly at the radius (``eps`` is one of the distances), duplicated k-means centers and
    candidates, rows exactly between two centers, and values equal to split thresholds and
    bin edges. A kernel that breaks a tie otherwise than the reference (lowest index first,
    ``<=`` goes left, ``<= eps`` is inside) fails here, whatever hypothesis draws.
    """
    rng = np.random.default_rng(777)
    out = []
    for i, (n, d, dtype) in enumerate([(48, 3, np.float64), (31, 2, np.float32), (9, 1, np.float64)]):
        grid = rng.integers(0, 4, size=(n, d)).astype(dtype)
        grid[n // 2:] = grid[: n - n // 2]  # every row at least twice
        generator = np.random.default_rng(900 + i)
        _TIES.add(id(generator))
        out.append((grid, None, generator))
    return out


def _inputs(kernel, X, w, rng):
    """Keyword arguments of each kernel hook, built from one drawn shard."""
    n, d = X.shape
    if kernel in ("moments_local", "column_stats_local"):
        return {"X": X, "sample_weight": w}
    if kernel == "comoments_local":
        Y = (X[:, :1] * 2 + rng.normal(size=(n, 1)).astype(X.dtype)) if rng.integers(2) else None
        return {"X": X, "Y": Y, "sample_weight": w}
    if kernel == "linear_predict":
        coef = rng.normal(size=(2, d)) if rng.integers(2) else rng.normal(size=d)
        intercept = rng.normal(size=2) if coef.ndim == 2 else float(rng.normal())
        return {"X": X, "coef": coef, "intercept": intercept}
    if kernel == "all_finite":
        # finite rows, one NaN or +-inf, or finite values whose sum overflows
        X = X.copy()
        case = int(rng.integers(4)) if n else 0
        if case == 1:
            X[rng.integers(n), rng.integers(d)] = np.nan
        elif case == 2:
            X[rng.integers(n), rng.integers(d)] = rng.choice([np.inf, -np.inf])
        elif case == 3:
            X[:, rng.integers(d)] = np.finfo(X.dtype).max
        return {"X": X}
    if kernel == "affine_transform":
        # the scalers' forms: centering and scaling, far-from-origin shifts, unit scales
        shift = np.asarray(X.mean(0) if n else np.zeros(d), np.float64)
        scale = rng.uniform(0.1, 10, d)
        scale[rng.integers(d)] = 1.0
        return {"X": X, "shift": shift.astype(X.dtype), "scale": scale.astype(X.dtype)}
    if kernel == "mahalanobis":
        A = rng.normal(size=(d, d))
        return {"X": X, "location": np.asarray(X.mean(0) if n else np.zeros(d), np.float64),
                "precision": A @ A.T + np.eye(d)}
    if kernel in ("kmeans_lloyd_local", "kmeans_lloyd_bounded", "kmeans_inertia", "kmeans_assign",
                  "kmeans_transform", "kmeans_min_distances", "kmeans_plusplus_potentials",
                  "kmeans_farthest_assigned_rows"):
        # k-means kernels see centered rows (the estimator centers them, as scikit-learn does):
        # far from the origin, ||c||^2 - 2 x.c loses every digit in any implementation.
        Xc = X - X.mean(0).astype(X.dtype) if n else X
        centers = (Xc[rng.integers(0, n, 3)] if n else rng.normal(size=(3, d))).astype(np.float64)
        ties = id(rng) in _TIES
        if not ties:
            centers = centers + 0.01 * rng.normal(size=centers.shape)
        weights = np.ones(n) if w is None else np.asarray(w, np.float64)
        if n and (ties or rng.integers(2)):
            # a duplicate center and a row exactly between two centers: ties go to the lower index
            centers[1] = centers[0]
            centers[2] = 2 * np.asarray(Xc[0], np.float64) - centers[0]
        if kernel in ("kmeans_assign", "kmeans_transform"):
            return {"X": Xc, "centers": centers}
        if kernel in ("kmeans_min_distances", "kmeans_plusplus_potentials"):
            norms = np.einsum("ij,ij->i", Xc, Xc) if rng.integers(2) else None
            first = kernel == "kmeans_min_distances" and rng.integers(2)
            spread = float(np.var(Xc)) if n else 1.0
            closest = None if first else rng.uniform(0, 2 * spread + 1, n)
            if kernel == "kmeans_min_distances":
                return {"X": Xc, "centers": centers[:1].astype(X.dtype), "closest": closest,
                        "x_squared_norms": norms}
            return {"X": Xc, "sample_weight": weights, "candidates": centers.astype(X.dtype),
                    "closest": closest, "x_squared_norms": norms}
        if kernel == "kmeans_lloyd_local":
            # the estimator's form: the rows as given and their mean as X_offset (the kernel
            # centers a block at a time); or rows centered already and no offset
            offset = rng.integers(2) and n
            return {"X": X if offset else Xc, "sample_weight": weights, "centers": centers,
                    "labels_old": rng.integers(-1, 3, n).astype(np.int32),
                    "X_offset": X.mean(0).astype(X.dtype) if offset else None}
        if kernel == "kmeans_lloyd_bounded":
            return _bounded_inputs(X, Xc, weights, centers, ties, rng)
        if kernel == "kmeans_farthest_assigned_rows":
            # the estimator's form (rows as given, their mean as X_offset) or centered rows;
            # duplicated rows and coinciding centers make tied distances, which the kernel
            # must order as the reference does (by index), from the reference's bits
            offset = rng.integers(2) and n
            return {"X": X if offset else Xc, "centers": centers,
                    "labels": rng.integers(0, 3, n).astype(np.int32),
                    "n_rows": int(rng.integers(0, 6)),
                    "X_offset": X.mean(0).astype(X.dtype) if offset else None}
        return {"X": Xc, "sample_weight": weights, "centers": centers,
                "labels": rng.integers(0, 3, n)}
    if kernel in _BLOCK_KERNELS:
        return _block_inputs(kernel, X, rng)
    if kernel in ("logistic_loss_grad", "logistic_hessp"):
        K = int(rng.integers(2, 4))
        Xs = X - X.mean(0).astype(X.dtype) if n else X  # the loss saturates far from the origin
        weights = np.ones(n) if w is None else np.asarray(w, np.float64)
        coef = rng.normal(size=d) * 0.3 if K == 2 else rng.normal(size=(K, d)) * 0.3
        intercept = float(rng.normal()) if K == 2 else rng.normal(size=K)
        target = rng.integers(0, 2, n).astype(np.float64) if K == 2 else rng.integers(0, K, n)
        if kernel == "logistic_loss_grad":
            return {"X": Xs, "target": target, "sample_weight": weights, "coef": coef,
                    "intercept": intercept, "n_classes": K, "with_hessian": bool(rng.integers(2))}
        from spmdlearn.reference import logistic_loss_grad

        hess = logistic_loss_grad(Xs, target, weights, coef, intercept, K, True)[3]
        return {"X": Xs, "hess_weights": hess, "v_coef": np.ones_like(coef),
                "v_intercept": intercept, "n_classes": K}
    if kernel in ("tree_histograms", "tree_route"):
        n_bins = 8
        binned = rng.integers(0, n_bins, size=(n, d)).astype(np.uint16)
        if kernel == "tree_route":
            # nodes 1 and 2 split now (node 0 earlier); rows on the split bin go left
            node_of_row = rng.integers(-1, 3, n).astype(np.int64)
            node_of_row[node_of_row == 0] = 1
            return {"binned": binned, "node_of_row": node_of_row,
                    "split_feature": np.array([-1, rng.integers(d), rng.integers(d), -1, -1, -1,
                                               -1], np.int64),
                    "split_bin": np.array([0, 3, 0, 0, 0, 0, 0], np.int64),
                    "left": np.array([1, 3, 5, -1, -1, -1, -1], np.int64),
                    "right": np.array([2, 4, 6, -1, -1, -1, -1], np.int64)}
        K = int(rng.choice([0, 2, 3]))
        y = rng.integers(0, K, n).astype(np.int64) if K else np.asarray(X[:, 0], np.float64)
        weights = np.ones(n) if w is None else np.asarray(w, np.float64)
        return {"binned": binned, "node_pos": rng.integers(-1, 3, n).astype(np.int64), "y": y,
                "sample_weight": weights, "counts": rng.integers(0, 3, n).astype(np.int64),
                "n_nodes": 3, "n_bins": n_bins, "n_classes": K,
                "class_weight": rng.uniform(0.5, 2, K) if K and rng.integers(2) else None}
    if kernel == "forest_histograms":
        # 1-3 trees, each placing some of its nodes 0..4 (a place belongs to one tree), with
        # 1-3 features per place; rows in no node, out of the bootstrap, or in nodes past
        # the tree's positions
        n_bins, T, width = 8, int(rng.integers(1, 4)), 5
        K = int(rng.choice([0, 2, 3]))
        position = np.where(rng.random((T, width)) < 0.6, 0, -1).astype(np.int64)
        placed = position >= 0
        position[placed] = np.arange(int(placed.sum()))
        k = int(rng.integers(1, min(d, 3) + 1))
        columns = np.array([rng.permutation(d)[:k] for _ in range(int(placed.sum()))],
                           np.int64).reshape(-1, k)
        weights = np.ones(n) if w is None else np.asarray(w, np.float64)
        return {"binned": rng.integers(0, n_bins, size=(n, d)).astype(np.uint16),
                "node_of_row": rng.integers(-1, width + 1, (T, n)).astype(np.int64),
                "counts": rng.integers(0, 3, (T, n)).astype(np.int64),
                "position": position, "columns": columns,
                "y": rng.integers(0, K, n).astype(np.int64) if K else np.asarray(X[:, 0],
                                                                              np.float64),
                "sample_weight": weights, "n_bins": n_bins, "n_classes": K,
                "class_weight": rng.uniform(0.5, 2, (T, K)) if K and rng.integers(2) else None}
    if kernel == "best_splits":
        # integer counts on few bins: many equal decreases, the order of features decides
        n_nodes, n_bins, K = min(n, 4), 5, int(rng.choice([0, 2]))
        if K:
            stats = rng.integers(0, 3, (n_nodes, d, n_bins, K)).astype(np.float64)
        else:
            wt = rng.integers(0, 3, (n_nodes, d, n_bins)).astype(np.float64)
            yv = np.round(rng.normal(size=(n_nodes, d, n_bins)), 0)
            stats = np.stack([wt, wt * yv, wt * yv * yv], -1)
        rows = (stats[..., 0] > 0) + rng.integers(0, 2, (n_nodes, d, n_bins))
        return {"hist": np.concatenate([stats, rows[..., None].astype(np.float64)], -1),
                "feature_order": np.argsort(rng.random((n_nodes, d)), axis=1),
                "n_draw": int(rng.integers(1, d + 1)), "classification": bool(K),
                "criterion": "gini" if K else "squared_error",
                "min_samples_leaf": int(rng.integers(1, 3)),
                "min_impurity_decrease": float(rng.choice([0.0, 0.05])),
                "weighted_n_root": 10.0, "min_weight_leaf": 0.0}
    if kernel == "apply_bins":
        # cut points at values of the shard: values exactly on a cut go left
        from spmdlearn.reference import pad_edges

        cuts = [np.unique(np.asarray(X[rng.integers(0, n, 5), j], np.float64)) if n else
                np.zeros(0) for j in range(d)]
        return {"X": X, "edges": pad_edges(cuts)}
    if kernel == "bootstrap_counts":
        start = int(rng.integers(0, 10**9))
        return {"row_index": np.arange(start, start + n, dtype=np.int64),
                "seed": int(rng.integers(0, 2**31 - 1)), "lam": float(rng.uniform(0.3, 2.0))}
    if kernel == "tree_apply":
        # A depth-2 tree on the first feature(s).
        f = np.array([0, min(1, d - 1), 0, -1, -1, -1, -1])
        t = np.array([0.0, -0.5, 0.5, np.nan, np.nan, np.nan, np.nan])
        Xc = np.asarray(X - X.mean(0) if n else X, np.float64)
        if n and id(rng) in _TIES:  # thresholds equal to values of the rows: those go left
            t[:3] = [Xc[0, 0], Xc[1 % n, f[1]], Xc[2 % n, 0]]
        return {"X": Xc, "feature": f, "threshold": t, "left": np.array([1, 3, 5, -1, -1, -1, -1]),
                "right": np.array([2, 4, 6, -1, -1, -1, -1])}
    if kernel == "tsqr_local":
        return {"X": X, "mean": np.asarray(X.mean(0) if n else np.zeros(d), np.float64)}
    raise KeyError(kernel)


def _bounded_inputs(X, Xc, weights, centers, ties, rng):
    """The bounded Lloyd step's state as the estimator carries it: the labels, bounds and
    partial that the reference's step returned for ``centers_old`` (the partial as
    ``sums_old`` or not, the upper bounds or not), then centers that moved from them a little,
    far (past other centers), not at all (ties stay ties), or one that jumped (an empty cluster
    relocated); or the first step (no bounds)."""
    from spmdlearn.reference import lloyd_bounded

    n = len(X)
    offset = rng.integers(2) and n
    rows = X if offset else Xc
    X_offset = X.mean(0).astype(X.dtype) if offset else None
    move = "first" if not n else ["first", "small", "far", "none", "jump"][int(rng.integers(5))]
    if move == "first":
        return {"X": rows, "sample_weight": weights, "centers": centers, "centers_old": None,
                "labels_old": rng.integers(-1, len(centers), n).astype(np.int32),
                "lower_old": rng.uniform(0, 1, n), "X_offset": X_offset, "upper_old": None,
                "sums_old": None, "in_place": bool(rng.integers(2))}
    scale = float(np.std(Xc)) if Xc.size else 1.0
    centers_old = centers.copy()
    if move == "small":
        centers_old = centers + 0.05 * scale * rng.normal(size=centers.shape)
    elif move == "far":
        centers_old = centers + 2.0 * scale * rng.normal(size=centers.shape)
    elif move == "jump":
        centers_old[-1] = -centers[-1] + scale
    labels_old, lower_old, partial, upper_old = lloyd_bounded(
        rows, weights, centers_old, None, np.full(n, -1, np.int32), np.zeros(n), X_offset)
    kept = int(rng.integers(3))  # 0: no upper bounds, 1: no sums_old, 2: both
    return {"X": rows, "sample_weight": weights, "centers": centers, "centers_old": centers_old,
            "labels_old": labels_old, "lower_old": lower_old, "X_offset": X_offset,
            "upper_old": upper_old if kept else None, "sums_old": partial if kept == 2 else None,
            # the estimator's call: the old bounds may be overwritten (the reference, called
            # first, has its result already; the checks read only the new bounds)
            "in_place": bool(rng.integers(2))}


def _invalid_bounds(kwargs, labels, lower, upper) -> str | None:
    """None if each row's ``lower`` is at most its distance to every center but its label and
    its ``upper`` at least its distance to its label's center (float64, from coordinate
    differences; a relative slack for that computation's rounding), else which row breaks it.
    The bounds themselves are an implementation's choice."""
    X = to_numpy(kwargs["X"])
    labels, lower = to_numpy(labels), np.asarray(to_numpy(lower), np.float64)
    upper = np.asarray(to_numpy(upper), np.float64)
    if lower.shape != labels.shape or np.isnan(lower).any():
        return f"bounds of shape {lower.shape} (NaN: {np.isnan(lower).any()})"
    if upper.shape != labels.shape or np.isnan(upper).any():
        return f"upper bounds of shape {upper.shape} (NaN: {np.isnan(upper).any()})"
    if kwargs["X_offset"] is not None:
        X = X - np.asarray(kwargs["X_offset"], X.dtype)
    X = np.asarray(X, np.float64)
    centers = np.asarray(kwargs["centers"], np.float64)
    dist = np.sqrt(((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2))
    own = dist[np.arange(len(X)), labels] if len(X) else np.zeros(0)
    low = np.flatnonzero(upper < own - 1e-12 * (own + np.sqrt((X ** 2).sum(axis=1)) + 1.0))
    if low.size:
        i = int(low[0])
        return f"row {i}: upper bound {upper[i]!r} below its distance {own[i]!r} to its center"
    dist[np.arange(len(X)), labels] = np.inf
    nearest_other = dist.min(axis=1, initial=np.inf)
    slack = 1e-12 * (nearest_other + np.sqrt((X ** 2).sum(axis=1)) + 1.0)
    bad = np.flatnonzero(lower > np.where(np.isinf(nearest_other), np.inf,
                                          nearest_other + slack))
    if bad.size:
        i = int(bad[0])
        return f"row {i}: lower bound {lower[i]!r} above its distance {nearest_other[i]!r} " \
               "to another center"
    return None


_BLOCK_KERNELS = ("knn_merge", "radius_counts", "radius_min_label", "radius_neighbors_csr",
                  "radius_label_union")


def _block_inputs(kernel, X, rng):
    """A block of queries and a block of candidates with ties: the candidates are rows of the
    shard (queries at distance 0 from them), with a duplicate, and ``eps`` is one of the
    distances itself (a pair exactly on the boundary)."""
    from spmdlearn.reference import block_distances, knn_merge

    n, d = X.shape
    metric = ["euclidean", "manhattan", "chebyshev", "minkowski"][int(rng.integers(4))]
    p = 3.0 if metric == "minkowski" else None
    perm = rng.permutation(n)
    Y = X[perm[: max(0, n - n // 3)]]
    if len(Y) > 1:
        Y = np.concatenate([Y, Y[:1]])  # a duplicate candidate
    y_index = rng.permutation(4 * len(Y) + 1)[: len(Y)].astype(np.int64)
    Q = X[perm[n // 3:]] if n > 1 else X
    x_index = None
    if len(Y) and len(Q) and rng.integers(2):
        x_index = y_index[rng.integers(0, len(Y), len(Q))]
    if kernel == "knn_merge":
        k = int(rng.integers(1, 5))
        first = X[perm[: n // 2]]
        init = (np.full((len(Q), k), np.inf), np.full((len(Q), k), -1, np.int64))
        best_d, best_i = knn_merge(Q, first, 10_000 + np.arange(len(first), dtype=np.int64),
                                   *init, metric, p) if len(first) else init
        return {"X": Q, "Y": Y, "y_index": y_index, "best_distances": best_d,
                "best_indices": best_i, "metric": metric, "p": p, "x_index": x_index}
    dist = block_distances(Q[:3], Y[:3], metric, p)
    eps = float(np.median(dist)) if dist.size else 1.0  # some pairs exactly at eps
    args = {"X": Q, "Y": Y, "eps": eps, "metric": metric, "p": p}
    if kernel == "radius_counts":
        return {**args, "sample_weight": rng.normal(size=len(Y))}
    if kernel == "radius_min_label":
        return {**args, "labels": rng.integers(0, 3 * len(Y) + 1, len(Y)).astype(np.int64),
                "current": rng.integers(0, 4 * len(Y) + 1, len(Q)).astype(np.int64)}
    if kernel == "radius_label_union":
        # few labels (rows already joined) or one per row; labels shared by both blocks
        top = int(rng.choice([3, 4 * len(Y) + len(Q) + 1]))
        return {**args, "x_labels": rng.integers(0, top, len(Q)).astype(np.int64),
                "y_labels": rng.integers(0, top, len(Y)).astype(np.int64)}
    return {**args, "y_index": y_index, "x_index": x_index}


def _compare(reference, result, rtol) -> str | None:
    """None if ``result`` matches ``reference`` field by field, else what differs."""
    ref_fields = list(reference) if isinstance(reference, tuple) else [reference]
    res_fields = list(result) if isinstance(result, tuple) else [result]
    if type(result) is not type(reference) and isinstance(reference, tuple):
        return f"returned {type(result).__name__}, expected {type(reference).__name__}"
    for i, (a, b) in enumerate(zip(ref_fields, res_fields)):
        if a is None or b is None:
            if (a is None) != (b is None):
                return f"field {i}: {'None' if b is None else 'a value'}, expected " \
                       f"{'None' if a is None else 'a value'}"
            continue
        if not isinstance(a, tuple) and np.issubdtype(np.asarray(a).dtype, np.integer):
            # labels, indices, counts: decisions, exact (a tie broken otherwise is off by one
            # index, which no relative tolerance on large indices would see)
            if np.shape(a) != np.shape(b) or not np.array_equal(np.asarray(a), np.asarray(b)):
                return f"field {i}: integer results differ from the reference's (ties broken " \
                       "otherwise?)"
            continue
        a = pack_partial((a,)) if isinstance(a, tuple) else np.asarray(a, dtype=np.float64)
        b = pack_partial((b,)) if isinstance(b, tuple) else np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            return f"field {i}: shape {b.shape}, expected {a.shape}"
        finite = np.isfinite(a)
        if not np.array_equal(finite, np.isfinite(b)) or not np.array_equal(a[~finite], b[~finite]):
            return f"field {i}: non-finite entries differ"
        scale = float(np.max(np.abs(a[finite]), initial=0.0)) or 1.0
        err = float(np.max(np.abs(a[finite] - b[finite]), initial=0.0))
        if err > rtol * scale:
            return f"field {i}: max abs error {err:.3g} > {rtol:g} x scale {scale:.3g}"
    return None


def _placement(result, kwargs) -> str | None:
    """None if every array of ``result`` of the input's array type lies where the first data
    argument of that type lies (for dpnp: on its SYCL queue), else where it lies instead."""
    given = next((v for v in kwargs.values() if is_array(v) and type_name(v) != "numpy"), None)
    if given is None:
        return None
    fields = result if isinstance(result, tuple) else (result,)
    for i, field in enumerate(fields):
        if is_array(field) and type_name(field) == type_name(given):
            problem = same_place(field, given)
            if problem:
                return f"field {i}: {problem}"
    return None


def _host(x):
    """``x`` with every array brought to NumPy (partials field by field), to compare values."""
    if isinstance(x, tuple):
        fields = [_host(f) for f in x]
        return type(x)._make(fields) if hasattr(type(x), "_make") else tuple(fields)
    return to_numpy(x)


#: Kernels whose (model-sized) result may be NumPy or of the input's array type, on its device.
HOST_OR_INPUT_TYPE = frozenset({"tree_histograms"})
#: Kernels whose result must be the reference's bits (the forest's trees depend on them).
EXACT = frozenset({"forest_histograms"})


def reference_impl(kernel: str):
    """The reference backend's implementation of kernel hook ``spmdlearn_<kernel>``."""
    from spmdlearn import _backends

    pm = _backends.plugin_manager()
    plugin = pm.get_plugin(_backends.REFERENCE)
    return next(i for i in getattr(pm.hook, f"spmdlearn_{kernel}").get_hookimpls()
                if i.plugin is plugin)


def check_kernel(impl, kernel: str, max_examples: int, *, array_type: str = "numpy",
                 claimed: bool = False) -> tuple[str, str]:
    """Compare one backend kernel with the reference on generated shards of ``array_type``.

    Both run on the same input (data arguments in ``array_type``, model parameters NumPy);
    the backend's result must have the reference's structure, array type and dtype, and its
    values within :data:`KERNEL_RTOL`.

    Parameters
    ----------
    impl : pluggy.HookImpl
        The backend's implementation.
    kernel : str
    max_examples : int
        Hypothesis examples, besides the fixed edge cases.
    array_type : str, default="numpy"
        A name from :data:`spmdlearn_conformance._arrays.ARRAY_TYPES`.
    claimed : bool, default=False
        Whether the backend claims ``array_type`` input: then it must serve every example.

    Returns
    -------
    (status, detail)
        "pass" (with the number of examples served and declined), "fail" with the first failing
        example, or "n/a" when a backend that does not claim ``array_type`` declined them all.
    """
    reference = reference_impl(kernel)
    served = declined = 0
    failure: list = []

    def call(hook_impl, kwargs):
        return hook_impl.function(**{a: kwargs[a] for a in hook_impl.argnames})

    def one(shard):
        nonlocal served, declined
        if failure:
            return
        X, w, rng = shard
        kwargs = convert_arguments(_inputs(kernel, X, w, rng), array_type)
        expected = call(reference, kwargs)
        result = call(impl, kwargs)
        if result is None:
            declined += 1
            return
        served += 1
        # a result the hookspec allows in NumPy or in the input's type: its structure and
        # dtype are checked on a host copy
        kind = same_kind(expected, _host(result) if kernel in HOST_OR_INPUT_TYPE else result) \
            or _placement(result, kwargs)
        if kernel == "kmeans_lloyd_bounded":
            # the labels and partial are the reference's; the bounds need only be bounds; with
            # sums_old, the inertia may be left out (the kept rows were not read)
            got, want = result[2], expected[2]
            if kwargs["sums_old"] is not None and got.incremental == 1:
                got, want = got._replace(inertia=0.0, incremental=0.0), want._replace(inertia=0.0)
            problem = kind or _compare(
                _host((expected[0], want)), _host((result[0], got)),
                KERNEL_RTOL[X.dtype]) or _invalid_bounds(kwargs, result[0], result[1],
                                                         result[3])
        elif kernel == "kmeans_farthest_assigned_rows":
            # the distances decide which rows receive empty clusters: the reference's bits
            want, got = _host(expected), _host(result)
            problem = kind or (None if all(
                np.asarray(g).dtype == np.asarray(e).dtype and np.array_equal(g, e)
                for g, e in zip(got, want)) and len(got) == len(want) else
                f"differs from the reference's rows or bits: {got} against {want}")
        elif kernel in EXACT:
            problem = kind or (None if np.array_equal(_host(expected), _host(result)) else
                               "differs from the reference's bits")
        else:
            problem = kind or _compare(_host(expected), _host(result), KERNEL_RTOL[X.dtype])
        if not problem and kernel == "kmeans_plusplus_potentials" and id(rng) in _TIES:
            # the estimator keeps the candidate of least potential, the first among equals
            best, got = np.argmin(_host(expected)), np.argmin(_host(result))
            if best != got:
                problem = f"least potential at candidate {got}, the reference's at {best}"
        if problem:
            failure.append(f"{problem} (dtype={X.dtype}, shape={X.shape}, "
                           f"mean={X.mean() if X.size else 0:.3g}, "
                           f"{'F' if X.flags.f_contiguous and not X.flags.c_contiguous else 'C'}"
                           f"{'' if X.flags.contiguous or X.flags.f_contiguous else ' view'}"
                           f"{'' if array_type == 'numpy' else ', ' + array_type})")

    @settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(shards())
    def run(shard):
        one(shard)

    try:
        for shard in edge_shards():
            one(shard)
        run()
    except Exception as exc:  # noqa: BLE001 - a crashing kernel fails the check
        failure.append(f"raised {type(exc).__name__}: {exc}")
    if failure:
        return "fail", failure[0]
    if claimed and declined:
        return "fail", (f"declined {declined} of {served + declined} {array_type} examples, "
                        f"an array type it claims")
    if served == 0:
        return "n/a", (f"declined all {declined} {array_type} examples (the backend does not "
                       f"claim {array_type} input)")
    return "pass", f"{served} examples served, {declined} declined"


#: Contracts whose ``local`` is a kernel hook: (contract, kernel, argument builder).
CONTRACT_KERNELS = {
    "moments": (MOMENTS, MOMENTS.kernel, lambda X, w: {"X": X, "sample_weight": w}),
    "comoments": (COMOMENTS, COMOMENTS.kernel,
                  lambda X, w: {"X": X, "Y": X[:, :1] * 3.0, "sample_weight": w}),
    "column_stats": (COLUMN_STATS, COLUMN_STATS.kernel,
                     lambda X, w: {"X": X, "sample_weight": w}),
    # Any mean fixed across shards gives a law-abiding R; the estimator passes the global mean.
    "tsqr": (TSQR, TSQR.kernel, lambda X, w: {"X": X, "mean": np.full(X.shape[1], 0.5)}),
}


def check_contract_laws(contract_name: str, local, max_examples: int,
                        array_type: str = "numpy") -> tuple[str, str]:
    """Identity, commutativity, associativity and partition invariance with ``local``.

    ``local(**kwargs)`` is the backend's kernel (falling back to the reference if it declines),
    fed data of ``array_type``.
    """
    contract, _, build = CONTRACT_KERNELS[contract_name]
    failure: list = []

    def partial_of(X, w):
        return local(**convert_arguments(build(X, w), array_type))

    @settings(max_examples=max_examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(shards(), st.integers(0, 2**31 - 1))
    def run(shard, seed):
        if failure:
            return
        X, w, _ = shard
        X = np.ascontiguousarray(X, dtype=np.float64)
        w = None if w is None else np.asarray(w, np.float64)
        n = len(X)
        cuts = np.concatenate([[0], np.sort(np.random.default_rng(seed).integers(0, n + 1, 3)), [n]])
        parts = [partial_of(X[lo:hi], None if w is None else w[lo:hi])
                 for lo, hi in zip(cuts[:-1], cuts[1:])]
        whole = partial_of(X, w)
        identity = partial_of(X[:0], None if w is None else w[:0])
        rtol = 1e-6
        checks = {
            "identity": _compare(whole, contract.combine(identity, whole), 0.0),
            "commutativity": _compare(contract.combine(parts[0], parts[1]),
                                      contract.combine(parts[1], parts[0]), rtol),
            "associativity": _compare(
                contract.combine(contract.combine(parts[0], parts[1]), parts[2]),
                contract.combine(parts[0], contract.combine(parts[1], parts[2])), rtol),
            "partition invariance": _compare(whole, simulate(contract, [
                (X[lo:hi], None if w is None else w[lo:hi]) for lo, hi in zip(cuts[:-1], cuts[1:])],
                local=partial_of), rtol),
        }
        for law, problem in checks.items():
            if problem:
                failure.append(f"{law}: {problem} (shape={X.shape}, mean={X.mean() if X.size else 0:.3g})")
                return

    try:
        run()
    except Exception as exc:  # noqa: BLE001
        failure.append(f"raised {type(exc).__name__}: {exc}")
    return ("fail", failure[0]) if failure else ("pass", "identity, commutativity, "
                                                  "associativity, partition invariance")
