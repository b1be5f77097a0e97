"""Random forests grown from the rows of every rank: histogram trees."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets

from .._array_api import (accumulation_dtype, device, has_float64, from_model, get_namespace, is_foreign_array, like,
                          numpy_dtype, sum_float64, take_labels, to_host)
from .._backends import REFERENCE, backend_kernels, call_kernel, host_backend
from .._base import SPMDEstimatorMixin, class_weight_meaning, thread_limit
from ..comm import self_comm
from .._validation import Interval, Options, validate_fit, validate_predict
from ..metrics import accuracy_score, r2_score
from ..metrics._classification import global_labels
from ..patterns import LEVEL_HISTOGRAMS
from ..reference._forest import bin_edges, counter_uniform, pad_edges

_SAMPLE_FOR_BINS = 200_000  # rows (over all ranks) whose values set the bin edges
_STREAM_BINS, _STREAM_FEAT = 1, 3  # the bootstrap's stream is BOOTSTRAP_STREAM (2)
_HIST_BYTES = 16 << 20  # the histograms of one reduction (a chunk of a level's nodes)
#: the largest expected bootstrap count of a row (``max_samples`` over the rows): Poisson
#: counts are drawn up to 64, and P(Poisson(30) > 64) < 1e-7
_MAX_LAM = 30


class RealNotInt(numbers.Real):
    """A real number that is not an int (as scikit-learn's parameter constraint of that name):
    floats (NumPy's float64 included); ``max_samples=1`` is an int, ``1.0`` a fraction."""


RealNotInt.register(float)

_STATE_BYTES = 32 << 20  # per-row state of the trees grown together (node, bootstrap count)
#: The same where every rank's rows are on a device (the state is then device memory, not the
#: host's): 1M rows grow 50 trees together. 1M x 20 rows, 50 trees of depth 10, CuPy on an
#: H200: fit 1.18-1.22 s with 32 MiB (2 trees a group), 1.04 s with 256 MiB, 0.94 s with 1 GiB:
#: fewer levels, each for more trees (the same trees: a tree does not depend on its group).
_DEVICE_STATE_BYTES = 1 << 30


class Tree(NamedTuple):
    """One fitted tree: node arrays (children -1 at leaves)."""

    feature: np.ndarray  #: (n_nodes,) split feature (-1 at leaves)
    threshold: np.ndarray  #: (n_nodes,) go left if ``x[feature] <= threshold``
    left: np.ndarray  #: (n_nodes,)
    right: np.ndarray  #: (n_nodes,)
    value: np.ndarray  #: (n_nodes, n_values) class weights, or [mean]
    importance: np.ndarray  #: (n_features,) weighted impurity decrease per feature
    n_node_samples: np.ndarray | None = None  #: (n_nodes,) distinct training rows per node


def _sample_rows(comm, X, start, n_total, seed):
    """A sample of rows chosen by their global index only: the same for any split of the rows.

    The sample (about ``_SAMPLE_FOR_BINS`` rows over all ranks, whatever the number of rows)
    crosses to the host: the bin edges are its per-feature quantiles, computed on the gathered
    sample of every rank. A device shard is sampled on its device and only the sampled rows
    are copied; with fewer rows than ``_SAMPLE_FOR_BINS`` in all, the sample is every row.
    """
    n = X.shape[0]
    rate = min(1.0, _SAMPLE_FOR_BINS / max(n_total, 1))
    keep = counter_uniform(seed, _STREAM_BINS, np.arange(start, start + n)) < rate
    if is_foreign_array(X):
        xp = get_namespace(X)
        rows = X if keep.all() else xp.take(X, from_model(np.flatnonzero(keep), X), axis=0)
        sample = to_host(rows)  # the sample, of O(_SAMPLE_FOR_BINS) rows: not a fallback
    else:
        sample = X[keep]
    return comm.allgather_rows(np.ascontiguousarray(sample, dtype=np.float64))


def _bin_edges(comm, sample, max_bins, n_features):
    """Collective: ``pad_edges(bin_edges(sample, max_bins))`` of a sample that every rank holds,
    each rank sorting a block of the features only (the edges are gathered)."""
    if not len(sample):
        return pad_edges([np.zeros(0) for _ in range(n_features)])
    lo, hi = n_features * comm.rank // comm.size, n_features * (comm.rank + 1) // comm.size
    mine = np.full((hi - lo, max(max_bins - 1, 0)), np.inf)
    for j, cuts in enumerate(bin_edges(sample[:, lo:hi], max_bins)):
        mine[j, : len(cuts)] = cuts  # at most max_bins - 1 cuts
    edges = comm.allgather_rows(mine)  # the features in order
    width = int(np.isfinite(edges).sum(axis=1).max(initial=0))
    return np.ascontiguousarray(edges[:, :width])


def _on_device_of(a, X):
    """``a`` in ``X``'s namespace and device (host per-row inputs of a device shard, e.g. the
    class indices of string labels, move to the shard's device once)."""
    if a is None or is_foreign_array(a) or not is_foreign_array(X):
        return a
    return from_model(a, X)


def _class_sums(y_index, weights, n_classes):
    """Per-class sums of ``weights`` (host float64, O(classes)), in the rows' namespace."""
    xp = get_namespace(y_index, weights)
    if xp is np:
        return np.bincount(y_index, weights=weights, minlength=n_classes)
    # One masked sum per class on the rows' device: only the n_classes sums cross to the host.
    # A cumulative sum adds in row order, as bincount does, so host namespaces give its bits.
    zero = xp.zeros_like(weights)
    if weights.shape[0] == 0:
        return np.zeros(n_classes)
    cumulative = getattr(xp, "cumulative_sum", None)
    out = []
    for k in range(n_classes):
        masked = xp.where(y_index == k, weights, zero)
        out.append(float(cumulative(masked)[-1]) if cumulative is not None else
                   float(xp.sum(masked)))
    return np.array(out, dtype=np.float64)


def _distinct_labels(y):
    """The labels of ``y`` for the classification-target check: ``y`` itself on the host, its
    distinct values (O(classes), computed on its device) for a device array."""
    if not is_foreign_array(y):
        return y
    return to_host(get_namespace(y).unique_values(y))


def _split_bins(hist, nodes, features):
    """``hist[nodes[i], features[i]]`` for each i: ``(len(nodes), n_bins, n_channels)``, in the
    histogram's namespace."""
    if not is_foreign_array(hist):
        return hist[nodes, features]
    xp = get_namespace(hist)
    flat = xp.reshape(hist, (hist.shape[0] * hist.shape[1],) + tuple(hist.shape[2:]))
    at = np.asarray(nodes, np.int64) * hist.shape[1] + np.asarray(features, np.int64)
    return xp.take(flat, from_model(at, hist), axis=0)


class _TreeState:
    """A tree being grown: its nodes so far (growable NumPy arrays), its frontier, and its rows'
    bootstrap counts and nodes (per row, in the rows' namespace and on their device)."""

    def __init__(self, seed, counts, class_weight, node_of_row, n_features):
        self.seed, self.counts, self.class_weight = seed, counts, class_weight
        self.node_of_row = node_of_row
        # (nodes, counts, index): NumPy rows keep each tree's per-row nodes and counts as
        # row ``index`` of two matrices of the trees grown together; else None
        self.stack = None
        self.n_nodes = 0
        self.feature = self.threshold = self.left = self.right = None
        self.value = self.n_rows = None  # n_rows: float64, compared with the split minimum
        self.importance = np.zeros(n_features)
        self.frontier = np.zeros(0, np.int64)
        self.leaves, self.weighted_root = 1, 0.0

    def add_nodes(self, totals):
        """Append leaves with ``totals`` ((k, n_channels): values, then the row count); returns
        their indices."""
        k, at = totals.shape[0], self.n_nodes
        if self.feature is None or at + k > self.feature.shape[0]:
            cap = max(64, 2 * (at + k))

            def grow(old, shape, fill, dtype):
                new = np.full(shape, fill, dtype=dtype)
                if old is not None:
                    new[:at] = old[:at]
                return new

            self.feature = grow(self.feature, cap, -1, np.int64)
            self.threshold = grow(self.threshold, cap, np.nan, np.float64)
            self.left = grow(self.left, cap, -1, np.int64)
            self.right = grow(self.right, cap, -1, np.int64)
            self.value = grow(self.value, (cap, totals.shape[1] - 1), 0.0, np.float64)
            self.n_rows = grow(self.n_rows, cap, 0.0, np.float64)
        self.value[at: at + k] = totals[:, :-1]
        self.n_rows[at: at + k] = totals[:, -1]
        self.n_nodes = at + k
        return np.arange(at, at + k, dtype=np.int64)

    def tree(self):
        n = self.n_nodes
        return Tree(self.feature[:n].copy(), self.threshold[:n].copy(), self.left[:n].copy(),
                    self.right[:n].copy(), self.value[:n].copy(), self.importance,
                    self.n_rows[:n].astype(np.int64))


def _feature_orders(seed, nodes, n_features):
    """Each node's order of trying the features, keyed by (tree seed, node): the same on every
    rank, whichever trees are grown together."""
    nodes = np.asarray(nodes, np.int64)
    u = counter_uniform(seed, _STREAM_FEAT,
                        (nodes[:, None] * n_features + np.arange(n_features)).ravel())
    return np.argsort(u.reshape(len(nodes), n_features), axis=1, kind="stable")


def _take(a, rows):
    return a[rows] if get_namespace(a) is np else get_namespace(a).take(a, rows, axis=0)


def _node_columns(binned, node_of_row, counts, position, columns):
    """The rows of one tree that enter a histogram, with only the features their node needs.

    ``position``: (n_tree_nodes,) host int64, each node's place in the histogram (-1: not in
    it); ``columns``: (n_places, n_columns) host int64, the features of each place. Returns
    ``(bins, place, rows)`` in the rows' namespace: the bins of those features of the rows that
    are in the bootstrap and in a node of the histogram, ``(n_kept, n_columns)``, their place,
    and their indices. The histogram kernel then reads ``n_columns`` features of the rows that
    count instead of every feature of every row.
    """
    xp = get_namespace(binned)
    d, k = binned.shape[1], columns.shape[1]
    if xp is np:
        # Rows out of the bootstrap are in no node (-1), so ``place`` alone selects the rows.
        place = np.concatenate([[-1], position]).take(node_of_row + 1)
        rows = np.flatnonzero(place >= 0)
        place = place.take(rows)
        flat = columns.take(place, axis=0)
        flat += (rows * d)[:, None]
        return binned.reshape(-1).take(flat), place, rows
    in_tree = node_of_row >= 0
    safe = xp.where(in_tree, node_of_row, xp.zeros_like(node_of_row))
    place = xp.where(in_tree, xp.take(from_model(position, binned), safe, axis=0),
                     xp.full_like(node_of_row, -1))
    rows = xp.nonzero((place >= 0) & (counts > 0))[0]
    place = xp.take(place, rows, axis=0)
    flat = xp.reshape(rows * d, (-1, 1)) + xp.take(from_model(columns, binned), place, axis=0)
    bins = xp.take(xp.reshape(binned, (-1,)), xp.reshape(flat, (-1,)), axis=0)
    return xp.reshape(bins, (rows.shape[0], k)), place, rows


def _serves_forest_histograms(backend) -> bool:
    """Whether ``backend`` implements ``forest_histograms`` itself (optional: the reference's,
    a NumPy definition, serves as the conformance oracle; the other backends get each tree's
    gathered rows for ``tree_histograms``)."""
    return backend != REFERENCE and "forest_histograms" in backend_kernels(backend)


def _chunk(groups, lo, hi):
    """The items ``lo:hi`` of ``groups`` ([(tree, nodes)], items counted over all trees' nodes
    in order), as [(tree, nodes)]."""
    out, at = [], 0
    for s, nodes in groups:
        a, b = max(lo - at, 0), min(hi - at, len(nodes))
        if a < b:
            out.append((s, nodes[a:b]))
        at += len(nodes)
        if at >= hi:
            break
    return out


def _select(groups, items):
    """The items ``items`` (increasing indices over all of ``groups``' nodes) as [(tree, nodes)]."""
    out, at = [], 0
    for s, nodes in groups:
        lo, hi = np.searchsorted(items, [at, at + len(nodes)])
        if lo < hi:
            out.append((s, nodes[items[lo:hi] - at]))
        at += len(nodes)
    return out


def _histograms_of(comm, binned, y, w, groups, columns, n_bins, n_classes, backend):
    """Collective: the histograms of the nodes of ``groups`` ([(tree, nodes)]) with the features
    ``columns`` (a row per node, in order), summed over ranks in one reduction."""
    stack = groups[0][0].stack
    if stack is not None and _serves_forest_histograms(backend):
        # The trees' per-row nodes and counts are rows of one matrix each: one kernel call
        # reads the bins of each row's node's features where they lie (no gathered copy).
        # The trees of ``groups`` are rows lo..hi-1 (those between them in no node here).
        lo, hi = stack[2], groups[-1][0].stack[2] + 1
        position = np.full((hi - lo, max([1] + [s.n_nodes for s, _ in groups])), -1,
                           dtype=np.int64)
        cw = None if groups[0][0].class_weight is None else np.zeros((hi - lo, n_classes))
        at = 0
        for s, nodes in groups:
            position[s.stack[2] - lo, nodes] = np.arange(at, at + len(nodes))
            at += len(nodes)
            if cw is not None:
                cw[s.stack[2] - lo] = s.class_weight
        return LEVEL_HISTOGRAMS.run_forest(comm, binned, stack[0][lo:hi], stack[1][lo:hi],
                                           position, columns, y, w, n_bins=n_bins,
                                           n_classes=n_classes, class_weight=cw,
                                           backend=backend)
    parts, at = [], 0
    for s, nodes in groups:
        position = np.full(max(s.n_nodes, 1), -1, dtype=np.int64)
        position[nodes] = np.arange(len(nodes))
        bins, place, rows = _node_columns(binned, s.node_of_row, s.counts, position,
                                          columns[at: at + len(nodes)])
        parts.append((bins, place, _take(y, rows), _take(w, rows), _take(s.counts, rows),
                      s.class_weight, len(nodes)))
        at += len(nodes)
    return LEVEL_HISTOGRAMS.run_stacked(comm, parts, n_bins=n_bins, n_classes=n_classes,
                                        backend=backend)


def _search(hist, n_try, groups, params, classification, backend):
    """``best_splits`` of the stacked ``hist``, whose columns are each node's features in the
    order it tries them: one call for all trees when the thresholds do not depend on a tree's
    root weight, else one per tree."""
    # The search reads the histogram where the reduction leaves it. On more than one rank that
    # is the host: the search runs there, on the backend that serves NumPy (the rows' backend if
    # it claims NumPy, else the one ``auto`` picks for NumPy); moving the histogram back to a
    # device costs more than the search (measured on the OpenCL CPU device, 20,000 rows, 10
    # trees of depth 8: fit + predict took 45 s with the search on the device and 4 s on the
    # host). On one rank a backend's histogram on the device stays there and the search runs
    # on the rows' backend; only each node's totals and decisions, and the bins of the
    # features that split, come to the host.
    split_backend = backend if is_foreign_array(hist) else host_backend(backend)
    n_nodes, n_columns = hist.shape[:2]
    order = np.broadcast_to(np.arange(n_columns, dtype=np.int64), (n_nodes, n_columns))

    def call(h, o, weighted_root):
        return call_kernel("best_splits", split_backend, hist=h,
                           feature_order=np.ascontiguousarray(o), n_draw=n_try,
                           classification=classification, criterion=params["criterion"],
                           min_samples_leaf=params["min_samples_leaf"],
                           min_impurity_decrease=params["min_impurity_decrease"],
                           weighted_n_root=weighted_root,
                           min_weight_leaf=params["min_weight_fraction_leaf"] * weighted_root)

    if params["min_impurity_decrease"] == 0 and params["min_weight_fraction_leaf"] == 0:
        # Both thresholds are then 0 whatever the root's weight (a positive decrease passes),
        # so the nodes of all trees are searched in one call.
        return call(hist, order, 1.0)
    out, at = [], 0
    for s, nodes in groups:
        out.append(call(hist[at: at + len(nodes)], order[at: at + len(nodes)], s.weighted_root))
        at += len(nodes)
    return tuple(np.concatenate([o[i] for o in out]) for i in range(3))


class _LevelSplits(NamedTuple):
    """The splits found for a level's nodes (one entry per node, in the level's order)."""

    ok: np.ndarray  #: (n,) bool, the node splits
    gain: np.ndarray  #: (n,) float64, weighted impurity decrease
    feature: np.ndarray  #: (n,) int64
    cut: np.ndarray  #: (n,) int64, the split's bin (go left if bin <= cut)
    low: np.ndarray  #: (n, n_channels) float64, the left child's totals
    high: np.ndarray  #: (n, n_channels) float64, the right child's totals


def _no_level_splits(n, n_channels):
    return _LevelSplits(np.zeros(n, bool), np.zeros(n), np.full(n, -1, np.int64),
                        np.zeros(n, np.int64), np.zeros((n, n_channels)),
                        np.zeros((n, n_channels)))


def _find_splits(comm, binned, y, w, groups, depth, ctx, out, offset):
    """Collective: the best split of each node of ``groups`` ([(tree, nodes)]), from their
    summed histograms, written to ``out`` (a :class:`_LevelSplits`) from item ``offset`` on;
    the roots' totals at depth 0."""
    n_draw, n_features = ctx["n_draw"], ctx["n_features"]
    classification = ctx["classification"]
    orders = np.concatenate([_feature_orders(s.seed, nodes, n_features) for s, nodes in groups])
    hist = _histograms_of(comm, binned, y, w, groups, orders[:, :n_draw], ctx["n_bins"],
                          ctx["n_classes"], ctx["backend"])
    first = to_host(hist[:, 0])  # each node's bins of one feature: its totals
    if depth == 0:  # the roots' totals: any feature's bins sum to them
        for i, (s, _) in enumerate(groups):
            root = first[i].sum(axis=0)
            s.weighted_root = float(root[:-1].sum() if classification else root[0])
            s.add_nodes(root[None, :])
    # Nodes that may split (the roots are built for their totals in any case).
    splittable = np.concatenate([s.n_rows[nodes] >= ctx["min_split"] for s, nodes in groups])
    if depth >= ctx["max_depth"] or not splittable.any():
        return
    best_f, best_c, best_dec = _search(hist, n_draw, groups, ctx["params"], classification,
                                       ctx["backend"])

    def record(places, h, at, col, first_column, cut, dec):
        # The children's totals: the split feature's bins summed up to the cut, and all of
        # them less that (the cumulative sum over bins adds them in order).
        cum = np.asarray(to_host(_split_bins(h, at, col)), np.float64)
        cum = np.cumsum(cum, axis=1, out=cum if cum.flags.writeable and cum.base is None
                        else None)
        low = cum[np.arange(len(places)), cut]
        # the nodes' weights (each node's sum is the same whichever nodes are summed with it)
        totals = first[places]
        node_weight = totals[:, :, :-1].sum(axis=(1, 2)) if classification else \
            totals[:, :, 0].sum(axis=1)
        to = offset + places
        out.ok[to] = True
        out.gain[to] = np.asarray(dec, np.float64) * node_weight
        out.feature[to] = orders[places, first_column + col]
        out.cut[to] = cut
        out.low[to] = low
        out.high[to] = cum[:, -1] - low

    done = np.flatnonzero((best_f >= 0) & splittable)
    record(done, hist, done, best_f[done], 0, best_c[done], best_dec[done])
    # Nodes whose drawn features have no valid split try the others, in their order, as
    # scikit-learn does; a pure node (one class of positive weight) has none anywhere.
    retry = (best_f < 0) & splittable
    if n_draw >= n_features:
        retry[:] = False
    elif classification and retry.any():
        pick = np.flatnonzero(retry)
        retry[pick] = np.count_nonzero(first[pick][:, :, :-1].sum(axis=1) > 0, axis=1) > 1
    if retry.any():
        again = np.flatnonzero(retry)
        sub = _select(groups, again)
        extra = _histograms_of(comm, binned, y, w, sub, orders[again, n_draw:], ctx["n_bins"],
                               ctx["n_classes"], ctx["backend"])
        f2, c2, d2 = _search(extra, 1, sub, ctx["params"], classification, ctx["backend"])
        ok = np.flatnonzero(f2 >= 0)
        record(again[ok], extra, ok, f2[ok], n_draw, c2[ok], d2[ok])


def _apply_splits(s, nodes, found, ctx, binned):
    """Split ``s``'s ``nodes`` (increasing) as ``found`` (their :class:`_LevelSplits`) says,
    within the leaf budget, and move this rank's rows to the children."""
    pick = np.flatnonzero(found.ok)
    max_leaf_nodes = ctx["params"]["max_leaf_nodes"]
    if max_leaf_nodes is not None:
        # Best improvements first (ties: the lower node), within the leaf budget; then in
        # node order.
        best = np.lexsort((nodes[pick], -found.gain[pick]))
        pick = np.sort(pick[best[: max(0, max_leaf_nodes - s.leaves)]])
    s.frontier = np.zeros(0, np.int64)
    if not len(pick):
        return
    parents, f, c = nodes[pick], found.feature[pick], found.cut[pick]
    totals = np.empty((2 * len(pick), found.low.shape[1]))
    totals[0::2], totals[1::2] = found.low[pick], found.high[pick]
    children = s.add_nodes(totals)  # each parent's left child, then its right one
    s.feature[parents], s.threshold[parents] = f, ctx["edges"][f, c]
    s.left[parents], s.right[parents] = children[0::2], children[1::2]
    np.add.at(s.importance, f, found.gain[pick])  # in node order, as one at a time
    s.frontier = children
    s.leaves += len(pick)
    n = s.n_nodes
    split_feature = np.full(n, -1, dtype=np.int64)
    split_bin = np.zeros(n, dtype=np.int64)
    split_feature[parents], split_bin[parents] = f, c
    routed = call_kernel("tree_route", ctx["backend"], binned=binned,
                         node_of_row=s.node_of_row, split_feature=split_feature,
                         split_bin=split_bin, left=s.left[:n], right=s.right[:n])
    if s.stack is not None:  # a row of the group's matrix
        s.node_of_row[...] = routed
    else:
        s.node_of_row = routed


def _grow_trees(comm, binned, y, w, states, ctx):
    """Grow the trees of ``states`` together, level by level.

    Collective contract (:data:`spmdlearn.patterns.LEVEL_HISTOGRAMS`): every rank holds its
    rows' bins, labels and weights and each tree's bootstrap counts. At each level, the
    histograms of the nodes being split, of all the trees, are built by the ``forest_histograms``
    kernel from every row where the backend serves it (NumPy rows: the trees' per-row nodes
    and counts are rows of two matrices), else by ``tree_histograms`` from each tree's
    gathered rows, and summed over ranks in one reduction per chunk of at most ``_HIST_BYTES`` (every
    rank holds the same bits); every rank then chooses the same splits, with one
    ``best_splits`` call per chunk, and moves its own rows to the children with the
    ``tree_route`` kernel.

    A node's histogram holds only the ``n_draw`` features it draws (``max_features``); the
    rarer nodes where none of them has a valid split, and that are not pure, get a second
    histogram of their other features, tried in the node's order until one splits. A node's
    features, statistics and choices do not depend on which trees grow with it, so the trees
    are those grown one at a time.
    """
    n_channels = ctx["n_classes"] + 1 if ctx["classification"] else 4
    per_chunk = max(1, _HIST_BYTES // (ctx["n_draw"] * ctx["n_bins"] * n_channels * 8))
    depth = 0
    while True:
        if depth == 0:
            groups = [(s, np.zeros(1, np.int64)) for s in states]
        elif depth < ctx["max_depth"]:
            groups = [(s, s.frontier[s.n_rows[s.frontier] >= ctx["min_split"]])
                      for s in states]
            groups = [(s, nodes) for s, nodes in groups if len(nodes)]
        else:
            groups = []
        total = sum(len(nodes) for _, nodes in groups)
        if not total:
            break
        found = _no_level_splits(total, n_channels)
        for lo in range(0, total, per_chunk):
            _find_splits(comm, binned, y, w, _chunk(groups, lo, lo + per_chunk), depth, ctx,
                         found, lo)
        at = 0
        for s, nodes in groups:
            _apply_splits(s, nodes, _LevelSplits(*(a[at: at + len(nodes)] for a in found)),
                          ctx, binned)
            at += len(nodes)
        depth += 1
    return [s.tree() for s in states]


class _BaseForest(SPMDEstimatorMixin, BaseEstimator):
    _classification = False

    def _n_draw(self, n_features):
        m = self.max_features
        if m is None:
            return n_features
        if m == "sqrt":
            return max(1, int(np.sqrt(n_features)))
        if m == "log2":
            return max(1, int(np.log2(n_features)))
        if isinstance(m, numbers.Integral):
            if m > n_features:
                raise ValueError(f"max_features={m} should be <= n_features={n_features}")
            return int(m)
        return max(1, int(m * n_features))

    def _check_bootstrap(self, *_):
        """scikit-learn's refusal, in the agreement of ``fit``'s input (local)."""
        if not self.bootstrap and self.max_samples is not None:
            raise ValueError("`max_sample` cannot be set if `bootstrap=False`. Either switch to "
                             "`bootstrap=True` or set `max_sample=None`.")

    def _bootstrap_lam(self, comm, n_total, w, weighted):
        """Collective when ``max_samples`` is a float: the expected bootstrap count of each
        row, scikit-learn's bootstrap size over the rows of all ranks.

        scikit-learn draws ``max_samples`` rows (an int), ``max(int(max_samples * W), 1)``
        (a float; ``W``: the rows, or the sum of the weights, class weights included, over all
        ranks) or every row (None), with replacement; the Poisson bootstrap draws each row
        ``Poisson(lam)`` times, as many rows in expectation. Its counts are exact up to
        ``lam`` = :data:`_MAX_LAM` (a count above 64 is then rarer than 1e-9); beyond, the
        fit raises NotImplementedError instead of drawing fewer rows than asked.
        """
        m = self.max_samples
        if m is None:
            return 1.0
        if isinstance(m, numbers.Integral):
            n_boot = int(m)
        else:
            local = sum_float64(w) if is_foreign_array(w) else float(np.sum(w))
            total = float(comm.sum_identical(np.array([local]))[0]) if weighted else n_total
            n_boot = max(int(m * total), 1)
            if n_boot < max(10, n_total ** (1 / 3)):
                import warnings

                what = (f"the total sum of sample weights is {total} " if weighted else
                        f"the number of samples is {n_total} ")
                warnings.warn(f"Using the fractional value max_samples={m!r} when {what}results "
                              f"in a low number ({n_boot}) of bootstrap samples. We recommend "
                              "passing `max_samples` as an integer instead.", UserWarning,
                              stacklevel=4)
        lam = n_boot / n_total
        if lam > _MAX_LAM:
            raise NotImplementedError(
                f"max_samples={m!r} draws {n_boot} rows from n_samples={n_total} (summed over "
                f"{comm.size} ranks), {lam:.3g} times each on average; spmdlearn's Poisson "
                f"bootstrap draws each row at most {_MAX_LAM} times on average")
        return lam

    def _fit_forest(self, shard, y, w, n_classes, class_weight_of, n_values, criterion,
                    weighted):
        """Grow the forest. ``y``: class indices or targets; ``w``: row weights (``weighted``:
        sample or class weights given, else ones); ``class_weight_of(counts)``: per-class
        weights of one tree's bootstrap, or None."""
        comm = self._comm()
        # Binning, bootstrap counts, node positions, histograms and routing run on the rows'
        # device, in their namespace; only the bin-edge sample, the level histograms and the
        # split decisions cross to the host.
        X = shard.X
        xp = get_namespace(X)
        n_total = shard.n_samples
        # every rank's row count: this rank's first global row index, and the largest shard
        row_counts = comm.row_counts(X.shape[0])
        start = int(row_counts[: comm.rank].sum())
        # An unseeded forest still needs the same numbers on every rank.
        random_state = comm.agreed_random_state(self.random_state)
        seed = int(check_random_state(random_state).randint(0, 2 ** 31 - 1)) \
            if not isinstance(random_state, numbers.Integral) else int(random_state)
        params = {
            "max_depth": self.max_depth, "min_samples_split": self._min_split(n_total),
            "min_samples_leaf": self._min_leaf(n_total), "criterion": criterion,
            "min_impurity_decrease": self.min_impurity_decrease,
            "max_leaf_nodes": self.max_leaf_nodes, "n_draw": self._n_draw(X.shape[1]),
            "min_weight_fraction_leaf": self.min_weight_fraction_leaf,
        }
        local_mode = self.local_trees_mode
        grow_comm = comm if not local_mode else self_comm()
        sample = _sample_rows(grow_comm, X, start if not local_mode else 0,
                              n_total if not local_mode else X.shape[0], seed)
        edges = _bin_edges(grow_comm, sample, self.max_bins, X.shape[1])
        binned = call_kernel("apply_bins", shard.backend, X=X, edges=edges)
        n_bins = max([int(np.count_nonzero(np.isfinite(e))) + 1 for e in edges] + [1])
        lam = self._bootstrap_lam(comm, n_total, w, weighted) if self.bootstrap else 1.0
        my_trees = list(range(self.n_estimators))
        if local_mode:
            owners = _tree_owners(comm, shard)
            my_trees = [t for t in my_trees if owners[t % len(owners)] == comm.rank]
        gidx = np.arange(start, start + X.shape[0], dtype=np.int64) if xp is np else \
            xp.arange(start, start + X.shape[0], dtype=xp.int64, device=device(X))
        ctx = {"params": params, "n_draw": min(params["n_draw"], X.shape[1]),
               "n_features": X.shape[1], "n_bins": n_bins, "n_classes": n_classes,
               "classification": self._classification, "backend": shard.backend,
               "edges": edges, "max_depth": self.max_depth or np.iinfo(np.int32).max,
               "min_split": max(params["min_samples_split"], 2 * params["min_samples_leaf"])}
        # Trees grow together, a group at a time: each tree holds a node and a bootstrap count
        # per row (16 bytes), so a group's per-row state stays within _STATE_BYTES on the rank
        # with the most rows, _DEVICE_STATE_BYTES where every rank's rows are on a device (the
        # group is the same on every rank).
        largest = X.shape[0] if local_mode else int(row_counts.max())
        on_device = xp is not np if local_mode else all(comm.allgather(xp is not np))
        budget = _DEVICE_STATE_BYTES if on_device else _STATE_BYTES
        per_group = max(1, min(len(my_trees), budget // max(1, 16 * largest)))
        n_groups = -(-len(my_trees) // per_group) if my_trees else 0
        trees = []
        with thread_limit(self.n_jobs):
            for g in range(n_groups):
                states = []
                group = my_trees[g * len(my_trees) // n_groups:
                                 (g + 1) * len(my_trees) // n_groups]
                if xp is np:  # each tree's nodes and counts per row: rows of two matrices
                    node_rows = np.empty((len(group), X.shape[0]), np.int64)
                    count_rows = np.empty((len(group), X.shape[0]), np.int64)
                for t in group:
                    if self.verbose and comm.rank == 0:
                        print(f"building tree {t + 1} of {self.n_estimators}", flush=True)
                    tree_seed = seed + 7919 * (t + 1)
                    if self.bootstrap:
                        counts = call_kernel("bootstrap_counts", shard.backend, row_index=gidx,
                                             seed=tree_seed, lam=lam)
                    else:
                        counts = np.ones(X.shape[0], dtype=np.int64) if xp is np else \
                            xp.ones(X.shape[0], dtype=xp.int64, device=device(X))
                    node_of_row = np.where(counts > 0, 0, -1).astype(np.int64) if xp is np \
                        else xp.astype(counts > 0, xp.int64) - 1
                    if xp is np:
                        j = len(states)
                        node_rows[j], count_rows[j] = node_of_row, counts
                        counts, node_of_row = count_rows[j], node_rows[j]
                    states.append(_TreeState(tree_seed, counts, class_weight_of(counts),
                                             node_of_row, X.shape[1]))
                    if xp is np:
                        states[-1].stack = (node_rows, count_rows, len(states) - 1)
                trees += _grow_trees(grow_comm, binned, y, w, states, ctx)
        if local_mode:
            trees = _gather_trees(comm, trees, my_trees, self.n_estimators, n_values,
                                  X.shape[1])
        self.estimators_ = trees
        self.n_features_in_ = X.shape[1]
        per_tree = []
        for tree in trees:
            total = tree.importance.sum()
            per_tree.append(tree.importance / total if total > 0 else tree.importance)
        importances = np.mean(per_tree, axis=0) if per_tree else np.zeros(X.shape[1])
        total = importances.sum()
        self.feature_importances_ = importances / total if total > 0 else importances

    def _min_split(self, n):
        m = self.min_samples_split
        return m if isinstance(m, numbers.Integral) else max(2, int(np.ceil(m * n)))

    def _min_leaf(self, n):
        m = self.min_samples_leaf
        return m if isinstance(m, numbers.Integral) else max(1, int(np.ceil(m * n)))

    def _leaf_values(self, X, backend):
        """Per tree, the value of the leaf each of this rank's rows reaches, in ``X``'s
        namespace and on its device (the trees' node values go to the device, O(nodes))."""
        xp = get_namespace(X)
        dtype = np.float64 if has_float64(X) else np.float32  # a device without float64
        out = []
        for tree in self.estimators_:
            leaves = call_kernel("tree_apply", backend, X=X, feature=tree.feature,
                                 threshold=tree.threshold, left=tree.left, right=tree.right)
            if xp is np:
                out.append(tree.value[leaves])
            else:
                out.append(xp.take(from_model(tree.value, X, dtype), xp.astype(leaves, xp.int64),
                                   axis=0))
        return out

    def _to_sklearn(self):
        """scikit-learn's forest holding these trees (see :mod:`spmdlearn.ensemble._export`)."""
        from ._export import forest_to_sklearn

        return forest_to_sklearn(self)


def _tree_owners(comm, shard):
    """local_trees_mode: the ranks that grow trees, in rank order (tree t goes to owners[t % n]).

    Only ranks that hold rows of positive total weight: a rank with no rows (or only zero
    weights) would grow a tree of empty leaves, whose zero probabilities and zero predictions
    would pull the forest's average down. At least one rank qualifies (fit checks the total).
    """
    n = shard.X.shape[0]
    weight = n if shard.sample_weight is None else (
        sum_float64(shard.sample_weight) if is_foreign_array(shard.sample_weight)
        else float(np.sum(shard.sample_weight)))
    flags = comm.allgather(bool(n > 0 and weight > 0))
    return [r for r, ok in enumerate(flags) if ok]


def _gather_trees(comm, trees, mine, n_estimators, n_values, n_features):
    """local_trees_mode: every rank's trees, gathered (buffer-based), in tree order."""
    rows, lengths = [], []
    for tree in trees:
        block = np.column_stack([tree.feature, tree.threshold, tree.left, tree.right,
                                 tree.n_node_samples, tree.value.reshape(len(tree.feature), -1)])
        rows.append(block)
        lengths.append(len(block))
    flat = np.concatenate(rows) if rows else np.zeros((0, 5 + n_values))
    imp = np.array([t.importance for t in trees]) if trees else np.zeros((0, n_features))
    all_rows = comm.allgather_rows(np.ascontiguousarray(flat))
    all_lengths = comm.allgather_rows(np.asarray(lengths, np.int64))
    all_ids = comm.allgather_rows(np.asarray(mine, np.int64))
    all_imp = comm.allgather_rows(np.ascontiguousarray(imp))
    out = [None] * n_estimators
    offset = 0
    for k, (t, n) in enumerate(zip(all_ids, all_lengths)):
        block = all_rows[offset: offset + n]
        offset += n
        out[int(t)] = Tree(block[:, 0].astype(np.int64), block[:, 1], block[:, 2].astype(np.int64),
                           block[:, 3].astype(np.int64), block[:, 5:], all_imp[k],
                           block[:, 4].astype(np.int64))
    return out


_COMMON_CONSTRAINTS = {
    "n_estimators": [Interval(numbers.Integral, 1, None, "left")],
    "max_depth": [Interval(numbers.Integral, 1, None, "left"), None],
    "min_samples_split": [Interval(numbers.Integral, 2, None, "left"),
                          Interval(numbers.Real, 0.0, 1.0, "right")],
    "min_samples_leaf": [Interval(numbers.Integral, 1, None, "left"),
                         Interval(numbers.Real, 0.0, 1.0, "neither")],
    "max_features": [Interval(numbers.Integral, 1, None, "left"),
                     Interval(numbers.Real, 0.0, 1.0, "right"), Options(("sqrt", "log2")), None],
    "max_leaf_nodes": [Interval(numbers.Integral, 2, None, "left"), None],
    "min_impurity_decrease": [Interval(numbers.Real, 0.0, None, "left")],
    "min_weight_fraction_leaf": [Interval(numbers.Real, 0.0, 0.5, "both")],
    "bootstrap": ["boolean"],
    "max_samples": [None, Interval(RealNotInt, 0.0, None, "neither"),
                    Interval(numbers.Integral, 1, None, "left")],
    "random_state": ["random_state_like"],
    "n_jobs": [numbers.Integral, None],
    "verbose": ["verbose"],
    "max_bins": [Interval(numbers.Integral, 2, 65535, "both")],
    "local_trees_mode": ["boolean"],
}

_DOC_COMMON = """
    n_estimators : int, default=100
    max_depth : int, default=None
    min_samples_split : int or float, default=2
    min_samples_leaf : int or float, default=1
    min_weight_fraction_leaf : float, default=0.0
        Least fraction of the total (bootstrap-weighted) weight in a leaf.
    max_features : {{"sqrt", "log2"}}, int, float or None, default={max_features}
        Features drawn per node, by a counter-based generator keyed by (random_state, tree,
        node); more are tried if none of them splits.
    max_leaf_nodes : int, default=None
        Leaf budget; nodes are grown level by level, the best improvements of a level first.
    min_impurity_decrease : float, default=0.0
    bootstrap : bool, default=True
        Poisson bootstrap: each row's count is drawn from a counter-based generator keyed by
        (random_state, tree, global row index), so the forest is the same for any number of
        ranks and any split of the rows.
    max_samples : int or float, default=None
        Expected bootstrap size, as scikit-learn's: ``max_samples`` rows (an int, at most
        30 times the rows), ``max(int(max_samples * W), 1)`` rows (a float, ``W`` the rows of
        all ranks, or their total weight, class weights included), all rows if None. Only with
        ``bootstrap=True``.
    random_state : int, RandomState instance or None, default=None
        None: rank 0 draws a seed and broadcasts it.
    n_jobs : int, default=None
        Threads for this rank's kernels.
    verbose : int, default=0
        Rank 0 prints progress.
    max_bins : int, default=256
        Bins per feature; edges are quantiles of a sample of rows chosen by global index.
    local_trees_mode : bool, default=False
        scikit-learn-intelex's mode: each rank grows its share of the trees on its own rows
        only, and the forest is their union (fast, no communication while growing, but the
        forest depends on how the rows are split).
"""

_NOTES = """
    Notes
    -----
    **Distributed semantics.** ``fit`` and ``score`` are collective; ``predict`` (and
    ``predict_proba``) validate collectively and return this rank's rows. By default every tree
    is grown from all ranks' rows: global bin edges, per-level node histograms summed over ranks,
    the same split chosen on every rank. Trees grow together, a group at a time (each tree
    keeps a node and a bootstrap count per row; a group's stay within 32 MB on the largest
    shard): one reduction per level sums the histograms of all the group's nodes of that
    level (in chunks of at most 16 MB), and a node's histograms hold only the features it
    draws (``max_features``). The forest
    (``estimators_``, ``feature_importances_``) is identical on every rank and, by the
    counter-based draws, the same for any number of ranks (up to the rounding of the
    histogram sums). These are histogram trees, not scikit-learn's exact trees: held-out scores
    match scikit-learn's forests closely but not tree for tree.

    **Device arrays.** Rows of another array type (dpnp, CuPy, any array API array) stay in
    their namespace and on their device: binning, bootstrap counts, class indices, each row's
    node, the histograms' inputs and the traversal run there. What crosses to the host does
    not grow with the rows: a sample of about 200,000 rows over all ranks for the bin edges (all
    rows when there are fewer), the distinct labels, the level histograms and the splits.
    Per-row results come back in the input's type, on its device; string labels stay NumPy.
"""


class RandomForestClassifier(ClassifierMixin, _BaseForest):
    __doc__ = """A random forest classifier grown from the rows of all ranks.

    Parameters
    ----------
    criterion : {"gini", "entropy", "log_loss"}, default="gini"
""" + _DOC_COMMON.format(max_features='"sqrt"') + """    class_weight : dict, "balanced", "balanced_subsample" or None, default=None
        "balanced" uses the class frequencies of all ranks' rows; "balanced_subsample" those
        of each tree's bootstrap (over all ranks).

    Attributes
    ----------
    estimators_ : list of Tree
    classes_ : ndarray of shape (n_classes,)
        The union of the labels of all ranks.
    n_classes_ : int
    feature_importances_ : ndarray of shape (n_features,)
    n_features_in_ : int
""" + _NOTES

    _classification = True
    _parameter_constraints = {**_COMMON_CONSTRAINTS,
                              "criterion": [Options(("gini", "entropy", "log_loss"))],
                              "class_weight": [dict, Options(("balanced", "balanced_subsample")),
                                               None]}

    def __init__(self, n_estimators=100, *, criterion="gini", max_depth=None, min_samples_split=2,
                 min_samples_leaf=1, min_weight_fraction_leaf=0.0, max_features="sqrt",
                 max_leaf_nodes=None,
                 min_impurity_decrease=0.0, bootstrap=True, max_samples=None, class_weight=None,
                 random_state=None, n_jobs=None, verbose=0, max_bins=256,
                 local_trees_mode=False):
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_fraction_leaf = min_weight_fraction_leaf
        self.max_features = max_features
        self.max_leaf_nodes = max_leaf_nodes
        self.min_impurity_decrease = min_impurity_decrease
        self.bootstrap = bootstrap
        self.max_samples = max_samples
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.max_bins = max_bins
        self.local_trees_mode = local_trees_mode

    def _parameter_meaning(self, params):
        """The parameters by what they mean, for the ranks' comparison: a ``class_weight``
        dict's weights as floats (:func:`spmdlearn._base.class_weight_meaning`)."""
        return class_weight_meaning(params)

    def fit(self, X, y, sample_weight=None):
        """Collective: grow the forest from all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : RandomForestClassifier
        """
        comm = self._comm()
        shard = validate_fit(self, comm, X, y, sample_weight, requires_y=True,
                             multi_output=False, y_numeric=False,
                             extra_check=lambda est, X, y: (est._check_bootstrap(),
                                                            check_classification_targets(
                                                                _distinct_labels(y))))
        classes = global_labels(comm, _distinct_labels(shard.y))
        K = len(classes)
        y, X = shard.y, shard.X
        if is_foreign_array(y):
            # numeric labels on their device: class indices there (only the O(classes)
            # distinct labels crossed to the host)
            xp = get_namespace(y)
            y_index = xp.astype(xp.searchsorted(
                from_model(classes, y, dtype=numpy_dtype(y.dtype)), y), xp.int64)
        else:  # NumPy labels (strings included): the indices go to X's device
            y_index = np.searchsorted(classes, y) if len(y) else np.zeros(0, np.int64)
        y_index = _on_device_of(y_index, X)
        xp = get_namespace(y_index)
        if shard.sample_weight is None:
            w = np.ones(len(y_index)) if xp is np else \
                xp.ones(y_index.shape[0], dtype=accumulation_dtype(y_index), device=device(y_index))
        else:
            w = _on_device_of(shard.sample_weight, X)
            w = np.asarray(w, np.float64) if xp is np else \
                xp.astype(w, accumulation_dtype(y_index))
        if self.class_weight not in (None, "balanced_subsample"):
            counts = comm.sum_identical(_class_sums(y_index, w, K))
            cw = compute_class_weight(self.class_weight, classes=classes, y=classes,
                                      sample_weight=counts)
            w = w * (cw[y_index] if xp is np else xp.take(from_model(cw, w), y_index, axis=0))
        criterion = "entropy" if self.criterion == "log_loss" else self.criterion

        def class_weight_of(boot):
            if self.class_weight != "balanced_subsample":
                return None
            # the classes' weights in this tree's bootstrap, over all ranks (or this rank's in
            # local_trees_mode)
            counts = _class_sums(y_index, w * (boot if xp is np else xp.astype(boot, w.dtype)),
                                 K)
            if not self.local_trees_mode:
                counts = comm.sum_identical(counts)
            with np.errstate(divide="ignore"):
                return np.where(counts > 0, counts.sum() / (K * counts), 0.0)

        weighted = shard.sample_weight is not None or \
            self.class_weight not in (None, "balanced_subsample")
        self._fit_forest(shard, y_index, w, K, class_weight_of, K, criterion, weighted)
        self.classes_ = classes
        self.n_classes_ = K
        return self

    def predict_proba(self, X):
        """Collective validation, local result: mean over trees of the leaves' class frequencies."""
        shard = validate_predict(self, self._comm(), X)
        return like(self._mean_class_frequencies(shard), shard.X)

    def _mean_class_frequencies(self, shard):
        """The mean over trees, in ``shard.X``'s namespace and on its device."""
        xp = get_namespace(shard.X)
        proba = None
        for values in self._leaf_values(shard.X, shard.backend):
            totals = xp.sum(values, axis=1, keepdims=True)
            share = values / xp.where(totals > 0, totals, xp.ones_like(totals))
            proba = share if proba is None else proba + share
        return proba / len(self.estimators_)

    def predict(self, X):
        """Collective validation, local result: the most probable class of each of this rank's rows.

        Numeric labels come back in ``X``'s array type (string labels: NumPy).
        """
        shard = validate_predict(self, self._comm(), X)
        proba = self._mean_class_frequencies(shard)
        index = get_namespace(proba).argmax(proba, axis=1)
        return like(take_labels(self.classes_, index), shard.X)

    def score(self, X, y, sample_weight=None):
        """Collective: accuracy over all ranks' rows."""
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)


class RandomForestRegressor(RegressorMixin, _BaseForest):
    __doc__ = """A random forest regressor grown from the rows of all ranks.

    Parameters
    ----------
    criterion : {"squared_error"}, default="squared_error"
""" + _DOC_COMMON.format(max_features="1.0") + """
    Attributes
    ----------
    estimators_ : list of Tree
    feature_importances_ : ndarray of shape (n_features,)
    n_features_in_ : int
""" + _NOTES

    _parameter_constraints = {**_COMMON_CONSTRAINTS, "criterion": [Options(("squared_error",))]}

    def __init__(self, n_estimators=100, *, criterion="squared_error", max_depth=None,
                 min_samples_split=2, min_samples_leaf=1, min_weight_fraction_leaf=0.0,
                 max_features=1.0, max_leaf_nodes=None,
                 min_impurity_decrease=0.0, bootstrap=True, max_samples=None, random_state=None,
                 n_jobs=None, verbose=0, max_bins=256, local_trees_mode=False):
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_fraction_leaf = min_weight_fraction_leaf
        self.max_features = max_features
        self.max_leaf_nodes = max_leaf_nodes
        self.min_impurity_decrease = min_impurity_decrease
        self.bootstrap = bootstrap
        self.max_samples = max_samples
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.max_bins = max_bins
        self.local_trees_mode = local_trees_mode

    def fit(self, X, y, sample_weight=None):
        """Collective: grow the forest from all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : RandomForestRegressor
        """
        comm = self._comm()
        shard = validate_fit(self, comm, X, y, sample_weight, requires_y=True,
                             multi_output=False, extra_check=type(self)._check_bootstrap)
        y = _on_device_of(shard.y, shard.X)
        xp = get_namespace(y)
        if xp is np:
            y = np.asarray(y, np.float64)
            w = np.ones(len(y)) if shard.sample_weight is None else \
                np.asarray(shard.sample_weight, np.float64)
        else:  # targets and weights stay on the rows' device
            f = accumulation_dtype(y)  # float32 on a device without float64 (float32 input)
            y = xp.astype(y, f)
            w = xp.ones(y.shape[0], dtype=f, device=device(y)) \
                if shard.sample_weight is None else \
                xp.astype(_on_device_of(shard.sample_weight, shard.X), f)

        self._fit_forest(shard, y, w, 0, lambda counts: None, 3, self.criterion,
                         shard.sample_weight is not None)
        return self

    def predict(self, X):
        """Collective validation, local result: the mean over trees of the leaves' means."""
        shard = validate_predict(self, self._comm(), X)
        xp = get_namespace(shard.X)
        pred = None
        for values in self._leaf_values(shard.X, shard.backend):
            weight = values[:, 0]
            mean = values[:, 1] / xp.where(weight > 0, weight, xp.ones_like(weight))
            pred = mean if pred is None else pred + mean
        return like(pred / len(self.estimators_), shard.X)

    def score(self, X, y, sample_weight=None):
        """Collective: R^2 over all ranks' rows."""
        return r2_score(y, self.predict(X), sample_weight=sample_weight)
