"""Histogram trees: the reference kernels (binning, node histograms, prediction) and the
counter-based random numbers that make a forest independent of how rows are split."""

from __future__ import annotations

import numpy as np

__all__ = ["counter_uniform", "poisson_counts", "bin_edges", "apply_bins", "node_histograms",
           "tree_apply", "best_split", "best_splits", "no_splits", "bootstrap_counts", "tree_histograms", "tree_route",
           "forest_histograms",
           "BOOTSTRAP_STREAM", "pad_edges"]

#: The counter-based stream of the bootstrap draws (other streams: bin sample 1, features 3).
BOOTSTRAP_STREAM = 2

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z):
    """SplitMix64's finalizer, on uint64 arrays (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def counter_uniform(seed: int, stream: int, counters) -> np.ndarray:
    """Uniforms in [0, 1) keyed by ``(seed, stream, counter)``: no state, no order.

    The value for a global row index is the same on whatever rank the row lives, which is
    what makes bootstrap draws independent of the number of ranks and of the split.
    """
    counters = np.asarray(counters, dtype=np.uint64)
    with np.errstate(over="ignore"):
        key = _mix(np.asarray([seed], dtype=np.uint64) * _GOLDEN + np.uint64(stream))
        z = _mix(key + (counters + np.uint64(1)) * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0 ** 53)


def poisson_counts(u: np.ndarray, lam: float) -> np.ndarray:
    """Poisson(``lam``) variates from uniforms ``u`` by inverting the CDF."""
    counts = np.zeros(u.shape, dtype=np.int64)
    p = np.exp(-lam)
    cdf = p
    k = 0
    active = u >= cdf
    while active.any() and k < 64:
        k += 1
        p *= lam / k
        cdf += p
        counts[active] = k
        active &= u >= cdf
    return counts


def bin_edges(sample: np.ndarray, max_bins: int) -> list:
    """Cut points per feature from a sample of rows: midpoints between distinct values when
    there are at most ``max_bins`` of them, else the sample's quantiles."""
    edges = []
    qs = np.linspace(0, 1, max_bins + 1)[1:-1]
    # Each column sorted once: its distinct values, and its quantiles (NumPy's partition of a
    # sorted column is quick), equal to ``np.unique(column)`` and the quantiles of the column.
    columns = np.sort(np.ascontiguousarray(np.asarray(sample, dtype=np.float64).T), axis=1)
    for column in columns:
        distinct = column[np.concatenate(([True], column[1:] != column[:-1]))[:column.size]]
        if len(distinct) <= max_bins:
            cuts = (distinct[:-1] + distinct[1:]) / 2
        else:
            cuts = np.unique(np.quantile(column, qs, method="midpoint"))
        edges.append(cuts)
    return edges


def pad_edges(edges: list) -> np.ndarray:
    """Per-feature cut points as one ``(n_features, max_cuts)`` float64 array, padded with +inf.

    The form the ``apply_bins`` kernel takes: a padded cut is never below a finite value.
    """
    width = max([len(e) for e in edges] + [0])
    out = np.full((len(edges), width), np.inf)
    for j, cuts in enumerate(edges):
        out[j, : len(cuts)] = cuts
    return out


def apply_bins(X: np.ndarray, edges) -> np.ndarray:
    """Bin index of every value: the number of cut points below it (``x <= cut`` goes left).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    edges : ndarray of shape (n_features, max_cuts), float64, or list of 1-D arrays
        Increasing cut points of each feature, padded with +inf (:func:`pad_edges`).

    Returns
    -------
    binned : ndarray of shape (n_samples, n_features), uint16
        ``binned[i, j] = #{c : edges[j, c] < X[i, j]}``: a value equal to a cut point falls in
        the bin left of it.
    """
    out = np.empty(X.shape, dtype=np.uint16)
    for j, cuts in enumerate(edges):
        out[:, j] = np.searchsorted(np.asarray(cuts, np.float64), X[:, j], side="left")
    return out


def bootstrap_counts(row_index, seed: int, lam: float) -> np.ndarray:
    """Poisson(``lam``) bootstrap count of each row, keyed by its global index only.

    ``poisson_counts(counter_uniform(seed, BOOTSTRAP_STREAM, row_index), lam)``: the count of a
    row does not depend on the rank that holds it, nor on the number of ranks.

    Parameters
    ----------
    row_index : ndarray of shape (n_samples,), int64
        Global row indices.
    seed : int
        The tree's seed.
    lam : float
        Expected count (the bootstrap fraction).

    Returns
    -------
    counts : ndarray of shape (n_samples,), int64
    """
    return poisson_counts(counter_uniform(seed, BOOTSTRAP_STREAM, row_index), lam)


def tree_histograms(binned, node_pos, y, sample_weight, counts, n_nodes: int, n_bins: int,
                    n_classes: int, class_weight=None) -> np.ndarray:
    """Per (node, feature, bin) sums of the bootstrap-weighted statistics of one shard's rows.

    Each row ``i`` with ``node_pos[i] >= 0`` and ``counts[i] > 0`` adds, with
    ``v = sample_weight[i] * counts[i]`` (times ``class_weight[y[i]]`` when given), to
    ``hist[node_pos[i], j, binned[i, j]]`` for every feature ``j``:

    * classification (``n_classes > 0``): ``v`` to channel ``y[i]`` and 1 to channel
      ``n_classes`` (the row count);
    * regression (``n_classes == 0``): ``(v, v * y, v * y^2, 1)``.

    Parameters
    ----------
    binned : ndarray of shape (n_samples, n_features), uint16
    node_pos : ndarray of shape (n_samples,), int
        Position of each row's node among the ``n_nodes`` being split; -1: not being split.
    y : ndarray of shape (n_samples,)
        Class index (int, ``0 <= y < n_classes``) or target (float).
    sample_weight : ndarray of shape (n_samples,), float64
    counts : ndarray of shape (n_samples,), int
        Bootstrap counts (0: the row is out of the bag).
    n_nodes, n_bins, n_classes : int
    class_weight : ndarray of shape (n_classes,), default=None

    Returns
    -------
    hist : ndarray of shape (n_nodes, n_features, n_bins, n_classes + 1 or 4), float64
    """
    n_features = binned.shape[1]
    n_channels = n_classes + 1 if n_classes > 0 else 4
    size = n_nodes * n_features * n_bins
    keep = (np.asarray(node_pos) >= 0) & (np.asarray(counts) > 0)
    if not keep.any():
        return np.zeros((n_nodes, n_features, n_bins, n_channels))
    rows = np.flatnonzero(keep)
    v = np.asarray(sample_weight, np.float64)[rows] * np.asarray(counts)[rows]
    y = np.asarray(y)[rows]
    if class_weight is not None:
        v = v * np.asarray(class_weight, np.float64)[y]
    node_pos = np.asarray(node_pos)
    offsets = np.arange(n_features)

    def cells(sel):
        # flat (node, feature, bin) cell of every (row, feature) of rows[sel], row-major: a
        # row's features are consecutive, hence np.repeat(values, n_features) for its values
        at = rows[sel]
        return ((node_pos[at].astype(np.int64)[:, None] * n_features + offsets) * n_bins
                + binned[at].astype(np.int64)).ravel()

    # Each channel is one bincount written into its column of ``hist``: the temporaries are
    # O(cells) (one channel), not O(hist). bincount adds in row order, so summing the rows of
    # one class on their own (in their order) gives the same bits as one bincount over all.
    hist = np.empty((size, n_channels))
    if n_classes > 0:
        y = y.astype(np.int64)
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"class indices must lie in [0, {n_classes}); got "
                             f"[{int(y.min())}, {int(y.max())}]")
        by_class = np.argsort(y, kind="stable")
        bounds = np.searchsorted(y[by_class], np.arange(n_classes + 1))
        hist[:, n_classes] = 0.0  # row counts: integers, exact in float64
        for k in range(n_classes):
            sel = by_class[bounds[k]:bounds[k + 1]]
            cell = cells(sel)
            hist[:, k] = np.bincount(cell, weights=np.repeat(v[sel], n_features),
                                     minlength=size)
            hist[:, n_classes] += np.bincount(cell, minlength=size)
    else:
        y = y.astype(np.float64)
        cell = cells(slice(None))
        for c, u in enumerate((v, v * y, v * y * y)):
            hist[:, c] = np.bincount(cell, weights=np.repeat(u, n_features), minlength=size)
        hist[:, 3] = np.bincount(cell, minlength=size)
    return hist.reshape(n_nodes, n_features, n_bins, n_channels)


def forest_histograms(binned, node_of_row, counts, position, columns, y, sample_weight,
                      n_bins: int, n_classes: int, class_weight=None) -> np.ndarray:
    """The histograms of the nodes of several trees, each node with its own features.

    Each tree ``t`` places its node ``node_of_row[t, i]`` at ``position[t, node]`` among the
    histogram's nodes (-1: not in it); the place's features are ``columns[place]``. The result
    is :func:`tree_histograms` of each tree's rows that are in a placed node (in their order,
    with the tree's bootstrap counts and class weights), on the bins of their place's
    features, stacked: ``hist[p, j]`` is the histogram of feature ``columns[p, j]`` of the
    rows at place ``p``. A place belongs to one tree at most.

    Parameters
    ----------
    binned : ndarray of shape (n_samples, n_features), uint16
    node_of_row : ndarray of shape (n_trees, n_samples), int64
        Each tree's node of each row (-1: none).
    counts : ndarray of shape (n_trees, n_samples), int64
        Each tree's bootstrap counts; a row with 0 is skipped.
    position : ndarray of shape (n_trees, n_tree_nodes), int64
        The place of each tree's node (-1: not in the histogram); nodes beyond
        ``n_tree_nodes`` are in none.
    columns : ndarray of shape (n_places, n_columns), int64
        The features of each place.
    y, sample_weight : ndarray of shape (n_samples,)
        As in :func:`tree_histograms`.
    n_bins, n_classes : int
    class_weight : ndarray of shape (n_trees, n_classes), float64, or None
        Each tree's class weights.

    Returns
    -------
    hist : ndarray of shape (n_places, n_columns, n_bins, n_classes + 1 or 4), float64
    """
    position, columns = np.asarray(position, np.int64), np.asarray(columns, np.int64)
    n_places, k = columns.shape
    out = np.zeros((n_places, k, n_bins, n_classes + 1 if n_classes > 0 else 4))
    for t in range(node_of_row.shape[0]):
        # -1 for nodes out of the histogram, out of the tree, or for rows in no node
        lookup = np.concatenate([[-1], position[t], [-1]])
        node = np.where((node_of_row[t] >= 0) & (node_of_row[t] < position.shape[1]),
                        node_of_row[t], -1)
        place = lookup[node + 1]
        rows = np.flatnonzero(place >= 0)
        if not len(rows):
            continue
        place = place[rows]
        mine = np.unique(place)
        bins = binned[rows[:, None], columns[place]]
        out[mine] += tree_histograms(bins, np.searchsorted(mine, place), y[rows],
                                     sample_weight[rows], counts[t, rows], len(mine), n_bins,
                                     n_classes, None if class_weight is None else class_weight[t])
    return out


def tree_route(binned, node_of_row, split_feature, split_bin, left, right) -> np.ndarray:
    """Move each row of a node that splits to the child its bin sends it to.

    Parameters
    ----------
    binned : ndarray of shape (n_samples, n_features), uint16
    node_of_row : ndarray of shape (n_samples,), int64
        Each row's node (-1: the row is not in the tree, e.g. out of the bag).
    split_feature : ndarray of shape (n_nodes,), int64
        The feature of each node that splits now; -1 for every other node.
    split_bin : ndarray of shape (n_nodes,), int64
        A row goes left when ``binned[row, split_feature[node]] <= split_bin[node]``.
    left, right : ndarray of shape (n_nodes,), int64
        Children.

    Returns
    -------
    node_of_row : ndarray of shape (n_samples,), int64
        Rows of splitting nodes at their child; the others unchanged.
    """
    node = np.asarray(node_of_row, np.int64).copy()
    split_feature = np.asarray(split_feature, np.int64)
    moving = node >= 0
    moving[moving] = split_feature[node[moving]] >= 0
    rows = np.flatnonzero(moving)
    if rows.size:
        n = node[rows]
        go_left = binned[rows, split_feature[n]] <= np.asarray(split_bin)[n]
        node[rows] = np.where(go_left, np.asarray(left)[n], np.asarray(right)[n])
    return node


def node_histograms(binned: np.ndarray, node_pos: np.ndarray, stats: np.ndarray,
                    n_nodes: int, n_bins: int) -> np.ndarray:
    """Per (node, feature, bin) sums of the row statistics of one shard.

    Parameters
    ----------
    binned : ndarray of shape (n_rows, n_features), int
    node_pos : ndarray of shape (n_rows,), int
        Position of each row's node among the ``n_nodes`` being split (-1: not being split).
    stats : ndarray of shape (n_rows, n_stats)
        Per-row statistics to sum (weighted class counts, or w, w*y, w*y^2, and a row count).
    n_nodes, n_bins : int

    Returns
    -------
    hist : ndarray of shape (n_nodes, n_features, n_bins, n_stats), float64
    """
    n_features = binned.shape[1]
    n_stats = stats.shape[1]
    hist = np.zeros((n_nodes, n_features, n_bins, n_stats))
    keep = node_pos >= 0
    if not keep.any():
        return hist
    b = binned[keep].astype(np.int64)
    pos = node_pos[keep].astype(np.int64)
    s = stats[keep]
    base = (pos[:, None] * n_features + np.arange(n_features)[None, :]) * n_bins + b
    flat = base.ravel()
    size = n_nodes * n_features * n_bins
    for c in range(n_stats):
        weights = np.repeat(s[:, c], n_features)
        hist[..., c] = np.bincount(flat, weights=weights, minlength=size).reshape(
            n_nodes, n_features, n_bins)
    return hist


def tree_apply(X: np.ndarray, feature, threshold, left, right) -> np.ndarray:
    """Leaf reached by every row (``x[feature] <= threshold`` goes left)."""
    node = np.zeros(X.shape[0], dtype=np.int64)
    active = left[node] >= 0
    while active.any():
        rows = np.flatnonzero(active)
        n = node[rows]
        go_left = X[rows, feature[n]] <= threshold[n]
        node[rows] = np.where(go_left, left[n], right[n])
        active[rows] = left[node[rows]] >= 0
    return node


def _impurity(stats, classification, criterion):
    """Impurity of nodes from summed statistics (last axis: class weights, or w, wy, wy^2)."""
    if classification:
        w = stats.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = np.where(w[..., None] > 0, stats / np.where(w > 0, w, 1)[..., None], 0.0)
            if criterion == "gini":
                return 1.0 - np.sum(p * p, axis=-1), w
            logp = np.where(p > 0, np.log2(np.where(p > 0, p, 1)), 0.0)
            return -np.sum(p * logp, axis=-1), w
    w = stats[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(w > 0, stats[..., 1] / np.where(w > 0, w, 1), 0.0)
        var = np.where(w > 0, stats[..., 2] / np.where(w > 0, w, 1) - mean * mean, 0.0)
    return np.maximum(var, 0.0), w


def best_split(hist, order, n_draw, classification, criterion, min_samples_leaf,
               min_impurity_decrease, weighted_n_root, min_weight_leaf=0.0):
    """The best split of one node from its global histogram (identical on every rank).

    Features are tried in the drawn ``order``: the first ``n_draw`` of them, and more if none of
    those gives a valid split (as scikit-learn's splitter). Ties go to the earlier feature in
    the order, then the lower bin.

    Parameters
    ----------
    hist : ndarray of shape (n_features, n_bins, n_stats + 1)
        The node's statistics per feature and bin; the last channel counts rows.

    Returns
    -------
    split : tuple (feature, bin, improvement) or None
    """
    stats, rows = hist[..., :-1], hist[..., -1]
    total = stats[0].sum(axis=0)
    total_rows = rows[0].sum()
    impurity, w = _impurity(total, classification, criterion)
    best = None
    for tried, f in enumerate(order):
        if tried >= n_draw and best is not None:
            break
        left = np.cumsum(stats[f], axis=0)[:-1]
        left_rows = np.cumsum(rows[f])[:-1]
        right = total - left
        right_rows = total_rows - left_rows
        imp_l, w_l = _impurity(left, classification, criterion)
        imp_r, w_r = _impurity(right, classification, criterion)
        valid = (left_rows >= min_samples_leaf) & (right_rows >= min_samples_leaf) & \
            (w_l > 0) & (w_r > 0) & (w_l >= min_weight_leaf) & (w_r >= min_weight_leaf)
        if not valid.any():
            continue
        decrease = impurity - (w_l / w) * imp_l - (w_r / w) * imp_r
        decrease = np.where(valid, decrease, -np.inf)
        c = int(np.argmax(decrease))
        gain = float(decrease[c]) * w / weighted_n_root
        if gain + 1e-12 < min_impurity_decrease or decrease[c] <= 0:
            continue
        if best is None or decrease[c] > best[2]:
            best = (int(f), c, float(decrease[c]))
    return best


def _split_scores(hist, total, total_rows, impurity, w, classification, criterion,
                  min_samples_leaf, min_weight_leaf):
    """Impurity decrease of every (node, feature, bin) split; -inf where the split is invalid.

    ``hist``: (n_nodes, n_features, n_bins, n_stats + 1); the others per node.
    """
    stats, rows = hist[..., :-1], hist[..., -1]
    left = np.cumsum(stats, axis=2)[:, :, :-1]
    left_rows = np.cumsum(rows, axis=2)[:, :, :-1]
    right = total[:, None, None, :] - left
    right_rows = total_rows[:, None, None] - left_rows
    imp_l, w_l = _impurity(left, classification, criterion)
    imp_r, w_r = _impurity(right, classification, criterion)
    valid = (left_rows >= min_samples_leaf) & (right_rows >= min_samples_leaf) & \
        (w_l > 0) & (w_r > 0) & (w_l >= min_weight_leaf) & (w_r >= min_weight_leaf)
    ww = w[:, None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        decrease = impurity[:, None, None] - (w_l / ww) * imp_l - (w_r / ww) * imp_r
    return np.where(valid, decrease, -np.inf)


def no_splits(n_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`best_splits`' result where no node splits: ``(feature, bin, decrease)`` of shape
    ``(n_nodes,)``, int64 -1, int64 0 and float64 0 (writable: a search fills it in)."""
    return np.full(n_nodes, -1, np.int64), np.zeros(n_nodes, np.int64), np.zeros(n_nodes)


def best_splits(hist, feature_order, n_draw, classification, criterion, min_samples_leaf,
                min_impurity_decrease, weighted_n_root, min_weight_leaf=0.0):
    """The best split of every node of a level from their global histograms: :func:`best_split`
    for each node, computed for all nodes and features at once.

    Parameters
    ----------
    hist : ndarray of shape (n_nodes, n_features, n_bins, n_stats + 1)
        Each node's statistics per feature and bin; the last channel counts rows.
    feature_order : ndarray of shape (n_nodes, n_features), int
        The order in which each node tries the features (a permutation per node): the first
        ``n_draw``, and more only while none of them gives a valid split.
    n_draw : int
    classification : bool
    criterion : {"gini", "entropy", "squared_error"}
    min_samples_leaf : float
    min_impurity_decrease : float
    weighted_n_root : float
    min_weight_leaf : float, default=0.0

    Returns
    -------
    feature : ndarray of shape (n_nodes,), int64
        The split feature; -1 where the node does not split.
    bin : ndarray of shape (n_nodes,), int64
        Rows with ``bin <= bin`` go left.
    decrease : ndarray of shape (n_nodes,), float64
        The impurity decrease of the split (weighted by the node's share, unscaled by the root).

    Ties go to the earlier feature in the node's order, then to the lower bin, as in
    :func:`best_split`. Work O(n_nodes x n_features x n_bins x n_stats), in blocks of nodes.
    """
    hist = np.asarray(hist, np.float64)
    n_nodes, n_features, n_bins = hist.shape[:3]
    feature, cut, gain = no_splits(n_nodes)
    if n_nodes == 0 or n_bins < 2:
        return feature, cut, gain
    order = np.asarray(feature_order, np.int64)
    per_node = n_features * n_bins * hist.shape[3] * 8 * 12  # bytes of the temporaries
    step = max(1, int((32 << 20) // per_node))
    for lo in range(0, n_nodes, step):
        nodes = np.arange(lo, min(n_nodes, lo + step))
        h = hist[nodes]
        total = h[:, 0, :, :-1].sum(axis=1)
        total_rows = h[:, 0, :, -1].sum(axis=1)
        impurity, w = _impurity(total, classification, criterion)

        def evaluate(sub, order_sub):
            """(ok, decrease, bin) of each node's features ``order_sub``, in that order."""
            ordered = np.take_along_axis(h[sub], order_sub[:, :, None, None], axis=1)
            dec = _split_scores(ordered, total[sub], total_rows[sub], impurity[sub], w[sub],
                                classification, criterion, min_samples_leaf, min_weight_leaf)
            c = np.argmax(dec, axis=2)  # the lowest bin among equal decreases
            best = np.take_along_axis(dec, c[:, :, None], axis=2)[:, :, 0]
            with np.errstate(invalid="ignore"):
                node_gain = best * w[sub][:, None] / weighted_n_root
                ok = np.isfinite(best) & ~(node_gain + 1e-12 < min_impurity_decrease) & \
                    (best > 0)
            return ok, best, c

        def choose(sub, ok, best, c, order_sub):
            # tried: the first n_draw features, or up to the first that splits if none of
            # them does; the earliest in order wins among equal decreases
            first_ok = np.where(ok.any(axis=1), np.argmax(ok, axis=1), ok.shape[1])
            limit = np.maximum(n_draw, first_ok + 1)
            tried = np.arange(ok.shape[1])[None, :] < limit[:, None]
            score = np.where(ok & tried, best, -np.inf)
            pick = np.argmax(score, axis=1)
            rows = np.arange(len(sub))
            splits = np.isfinite(score[rows, pick])
            idx = nodes[sub][splits]
            feature[idx] = order_sub[rows, pick][splits]
            cut[idx] = c[rows, pick][splits]
            gain[idx] = score[rows, pick][splits]

        # Most nodes split on one of their first n_draw features: evaluate those first, and
        # all features only for the nodes where none of them splits.
        every = np.arange(len(nodes))
        first = order[nodes][:, :n_draw]
        ok, best, c = evaluate(every, first)
        choose(every, ok, best, c, first)
        rest = every[~ok.any(axis=1)]
        if rest.size and n_draw < n_features:
            full = order[nodes[rest]]
            ok, best, c = evaluate(rest, full)
            choose(rest, ok, best, c, full)
    return feature, cut, gain
