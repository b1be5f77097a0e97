"""Property tests of the fused per-block kernels against their plain definitions (one process).

Inputs are built to hit the cases that break fused kernels: equal distances (values on a grid,
duplicate rows and candidates), queries that are candidates, distances exactly ``eps``, empty
and one-row blocks.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from spmdlearn import reference as ref

pytestmark = pytest.mark.serial

_METRIC = st.sampled_from(["euclidean", "manhattan", "chebyshev", "minkowski", "cosine"])


def _plain_distances(X, Y, metric, p):
    if not len(X) or not len(Y):
        return np.zeros((len(X), len(Y)))
    diff = X[:, None, :] - Y[None]
    if metric == "euclidean":
        return np.sqrt((diff ** 2).sum(-1))
    if metric == "manhattan":
        return np.abs(diff).sum(-1)
    if metric == "chebyshev":
        return np.abs(diff).max(-1)
    if metric == "minkowski":
        return (np.abs(diff) ** p).sum(-1) ** (1 / p)
    norms = np.linalg.norm(X, axis=1)[:, None] * np.linalg.norm(Y, axis=1)[None]
    return 1 - (X @ Y.T) / norms


@st.composite
def block_pairs(draw):
    """Queries and candidates with duplicate rows and values on a grid (many equal distances)."""
    n_x = draw(st.sampled_from([0, 1, 2, 7, 12]))
    n_y = draw(st.sampled_from([0, 1, 3, 9, 15]))
    d = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    Y = np.round(rng.normal(size=(n_y, d)) * 2, 0) + 0.5
    X = rng.normal(size=(n_x, d)) * 2
    if draw(st.booleans()):
        X = np.round(X, 0) + 0.5
    if n_y and n_x and draw(st.booleans()):
        X[: n_x // 2 + 1] = Y[rng.integers(0, n_y, n_x // 2 + 1)]  # queries on candidates
    if n_y > 1:
        Y[-1] = Y[0]  # a duplicate candidate
    return X, Y, rng


@given(block_pairs(), _METRIC, st.integers(1, 6), st.booleans())
def test_knn_merge_keeps_the_k_smallest_pairs_ties_by_lower_index(data, metric, k, self_rows):
    X, Y, rng = data
    p = 3.0 if metric == "minkowski" else None
    n = len(X)
    y_index = rng.permutation(100)[: len(Y)].astype(np.int64)
    # a running best from an earlier block, sorted by (distance, index), unfilled slots last
    filled = int(rng.integers(0, k + 1))
    best_d = np.full((n, k), np.inf)
    best_i = np.full((n, k), -1, np.int64)
    best_d[:, :filled] = np.sort(np.round(rng.random((n, filled)) * 6, 0), axis=1)
    best_i[:, :filled] = 200 + np.arange(filled)
    x_index = y_index[rng.integers(0, len(Y), n)] if self_rows and len(Y) else None
    got_d, got_i = ref.knn_merge(X, Y, y_index, best_d, best_i, metric, p, x_index)
    assert got_d.shape == (n, k) and got_i.shape == (n, k) and got_i.dtype == np.int64
    name, kw = ref.scipy_metric(metric, p)
    dist = cdist(X, Y, name, **kw) if n and len(Y) else np.zeros((n, len(Y)))
    assert np.allclose(dist, _plain_distances(X, Y, metric, p), atol=1e-9)
    for r in range(n):
        pairs = [(best_d[r, c], best_i[r, c]) for c in range(k)]
        pairs += [(dist[r, c], y_index[c]) for c in range(len(Y))
                  if x_index is None or y_index[c] != x_index[r]]
        expected = sorted(pairs)[:k]
        assert [i for _, i in expected] == list(got_i[r])
        assert np.array_equal([d for d, _ in expected], got_d[r])


@given(st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_knn_merge_ties_go_to_the_lower_global_index(k, seed):
    rng = np.random.default_rng(seed)
    Y = np.zeros((8, 2))  # every candidate at the same distance
    y_index = rng.permutation(50)[:8].astype(np.int64)
    X = np.ones((3, 2))
    d, i = ref.knn_merge(X, Y, y_index, np.full((3, k), np.inf), np.full((3, k), -1, np.int64))
    assert np.array_equal(i, np.tile(np.sort(y_index)[:k], (3, 1)))
    assert np.allclose(d, np.sqrt(2))


@given(block_pairs(), _METRIC)
def test_knn_merge_over_blocks_in_any_order_equals_one_block(data, metric):
    X, Y, rng = data
    p = 3.0 if metric == "minkowski" else None
    k = 3
    y_index = np.arange(len(Y), dtype=np.int64)
    init = np.full((len(X), k), np.inf), np.full((len(X), k), -1, np.int64)
    whole = ref.knn_merge(X, Y, y_index, *init, metric, p)
    cut = int(rng.integers(0, len(Y) + 1))
    part = ref.knn_merge(X, Y[cut:], y_index[cut:], *init, metric, p)
    part = ref.knn_merge(X, Y[:cut], y_index[:cut], *part, metric, p)
    assert np.array_equal(whole[1], part[1]) and np.array_equal(whole[0], part[0])


@given(block_pairs(), st.floats(0.0, 3.0), _METRIC)
def test_radius_kernels_match_their_definitions(data, eps, metric):
    X, Y, rng = data
    if rng.integers(2):
        eps = float(np.round(eps, 0))  # grid data: many distances exactly eps
    p = 3.0 if metric == "minkowski" else None
    name, kw = ref.scipy_metric(metric, p)
    exact = cdist(X, Y, name, **kw) if len(X) and len(Y) else np.zeros((len(X), len(Y)))
    assert np.allclose(exact, _plain_distances(X, Y, metric, p), atol=1e-9)
    within = exact <= eps
    w = rng.normal(size=len(Y))
    counts = ref.radius_counts(X, Y, w, eps, metric, p)
    assert counts.shape == (len(X),) and np.allclose(counts, within @ w)
    labels = rng.integers(0, 20, len(Y)).astype(np.int64)
    current = rng.integers(0, 25, len(X)).astype(np.int64)
    expected = np.array([min([current[r]] + list(labels[within[r]])) for r in range(len(X))],
                        np.int64)
    got = ref.radius_min_label(X, Y, labels, current, eps, metric, p)
    assert got.dtype == np.int64 and np.array_equal(got, expected)
    y_index = 10 + np.arange(len(Y), dtype=np.int64)
    x_index = y_index[rng.integers(0, len(Y), len(X))] if len(Y) and rng.integers(2) else None
    indptr, ind, d = ref.radius_neighbors_csr(X, Y, y_index, eps, metric, p, x_index)
    assert indptr.shape == (len(X) + 1,) and indptr[0] == 0 and indptr[-1] == len(ind) == len(d)
    for r in range(len(X)):
        cols = [c for c in range(len(Y)) if within[r, c] and
                (x_index is None or y_index[c] != x_index[r])]
        assert list(ind[indptr[r]:indptr[r + 1]]) == list(y_index[cols])
        assert np.array_equal(d[indptr[r]:indptr[r + 1]], exact[r, cols])


@st.composite
def rows_and_centers(draw):
    """Rows and centers on a grid (rows equidistant from two centers), duplicate centers."""
    n = draw(st.sampled_from([0, 1, 2, 9, 30]))
    d = draw(st.integers(1, 3))
    k = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    C = np.round(rng.normal(size=(k, d)) * 2, 0)
    if k > 1 and draw(st.booleans()):
        C[-1] = C[0]  # a duplicate center: the lower index must win
    X = np.round(rng.normal(size=(n, d)) * 2, 0) + (0.5 if draw(st.booleans()) else 0.0)
    return X, C, rng


@given(rows_and_centers())
def test_kmeans_assign_is_the_nearest_center_lowest_index_on_ties(data):
    X, C, rng = data
    labels, sq = ref.kmeans_assign(X, C)
    assert labels.dtype == np.int32 and sq.dtype == np.float64 and labels.shape == (len(X),)
    d = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    for r in range(len(X)):
        nearest = np.flatnonzero(d[r] == d[r].min())
        assert labels[r] == nearest[0]
    assert np.array_equal(sq, d[np.arange(len(X)), labels])
    # the same decisions as the Lloyd step, and the Lloyd step's inertia is this assignment's
    w = rng.uniform(0.5, 2, len(X))
    lloyd_labels, p = ref.lloyd_local(X, w, C, np.full(len(X), -1, np.int32))
    assert np.array_equal(lloyd_labels, labels)
    assert p.inertia == ref.kmeans_inertia(X, w, C, labels)
    assert np.isclose(p.inertia, w @ sq)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("n_rows", [1, 4096, 2 * 4096 + 777])
def test_assign_rows_scores_a_subset_as_the_shard_product_does(dtype, order, n_rows):
    """Any subset of a shard's rows, scored by ``assign_rows``, takes the labels of the shard's
    own product (``lloyd_local``), near-ties included: rows far from the origin, where the
    scores keep few digits and a product that rounded a row otherwise would flip labels. This
    is what the device backends rely on to decide their near-ties from a few rows."""
    from spmdlearn.reference._kmeans import _assign, assign_rows

    rng = np.random.default_rng(n_rows)
    far = 1e3 if dtype == np.float32 else 1e8
    X = np.asarray(rng.normal(size=(3 * 4096 + 5, 4)) + far, dtype=dtype, order=order)
    centers = X[rng.choice(len(X), 9)].astype(np.float64)
    want = _assign(X, centers)
    np.testing.assert_array_equal(ref.lloyd_local(X, np.ones(len(X)), centers, want)[0], want)
    for subset in (rng.choice(len(X), n_rows, replace=False), np.arange(n_rows)):
        got = assign_rows(np.asarray(X[np.sort(subset)], order=order), centers, order)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want[np.sort(subset)])


@given(rows_and_centers())
def test_kmeans_transform_is_euclidean_distances(data):
    X, C, _ = data
    got = ref.kmeans_transform(X, C)
    assert got.shape == (len(X), len(C))
    assert np.allclose(got, np.sqrt(((X[:, None, :] - C[None]) ** 2).sum(-1)), atol=1e-7)


@given(rows_and_centers(), st.booleans())
def test_kmeans_plusplus_kernels_are_min_distance_updates(data, first):
    X, C, rng = data
    d = ((X[:, None, :] - C[None]) ** 2).sum(-1)
    x_sq = (X * X).sum(1) if rng.integers(2) else None
    closest = None if first else rng.uniform(0, 10, len(X))
    got = ref.kmeans_min_distances(X, C[:1], closest, x_sq)
    expected = d[:, 0] if first else np.minimum(closest, d[:, 0])
    assert got.shape == (len(X),) and np.allclose(got, expected, atol=1e-9)
    w = rng.uniform(0.5, 2, len(X))
    pots = ref.kmeans_plusplus_potentials(X, w, C, got, x_sq)
    assert pots.shape == (len(C),)
    assert np.allclose(pots, [w @ np.minimum(got, d[:, c]) for c in range(len(C))], atol=1e-8)


@st.composite
def binned_rows(draw):
    n = draw(st.sampled_from([0, 1, 2, 17, 40]))
    d = draw(st.integers(1, 4))
    n_bins = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    return rng.integers(0, n_bins, (n, d)).astype(np.uint16), n_bins, rng


@given(st.integers(0, 2**31 - 1), st.sampled_from([0, 1, 5, 30]))
def test_apply_bins_counts_cut_points_below_values_on_cuts_go_left(seed, n):
    rng = np.random.default_rng(seed)
    edges = [np.sort(np.unique(np.round(rng.normal(size=int(rng.integers(0, 6))), 1)))
             for _ in range(3)]
    padded = ref.pad_edges(edges)
    X = np.round(rng.normal(size=(n, 3)), 1)  # many values exactly on a cut point
    binned = ref.apply_bins(X, padded)
    assert binned.dtype == np.uint16 and binned.shape == X.shape
    for i in range(n):
        for j in range(3):
            assert binned[i, j] == sum(c < X[i, j] for c in edges[j])
    assert np.array_equal(binned, ref.apply_bins(X, edges))


@given(st.integers(0, 2**31 - 1), st.floats(0.1, 2.0), st.integers(0, 300))
def test_bootstrap_counts_depend_on_the_global_index_only(seed, lam, cut):
    rows = np.arange(300, dtype=np.int64)
    whole = ref.bootstrap_counts(rows, seed, lam)
    assert whole.dtype == np.int64
    assert np.array_equal(whole, ref.poisson_counts(
        ref.counter_uniform(seed, ref.BOOTSTRAP_STREAM, rows), lam))
    parts = np.concatenate([ref.bootstrap_counts(rows[:cut], seed, lam),
                            ref.bootstrap_counts(rows[cut:], seed, lam)])
    assert np.array_equal(whole, parts)


@given(binned_rows(), st.sampled_from([0, 2, 3]), st.booleans())
def test_tree_histograms_sum_weighted_bootstrap_statistics(data, K, with_class_weight):
    binned, n_bins, rng = data
    n, d = binned.shape
    n_nodes = 3
    node_pos = rng.integers(-1, n_nodes, n)
    y = rng.integers(0, K, n) if K else rng.normal(size=n)
    w = rng.uniform(0.5, 2, n)
    counts = rng.integers(0, 3, n)
    cw = rng.uniform(0.5, 2, K) if K and with_class_weight else None
    hist = ref.tree_histograms(binned, node_pos, y, w, counts, n_nodes, n_bins, K, cw)
    channels = K + 1 if K else 4
    expected = np.zeros((n_nodes, d, n_bins, channels))
    for i in range(n):
        if node_pos[i] < 0 or counts[i] == 0:
            continue
        v = w[i] * counts[i] * (cw[y[i]] if cw is not None else 1.0)
        for j in range(d):
            cell = expected[node_pos[i], j, binned[i, j]]
            if K:
                cell[y[i]] += v
                cell[K] += 1
            else:
                cell += [v, v * y[i], v * y[i] ** 2, 1]
    assert hist.shape == expected.shape and np.allclose(hist, expected)


@given(binned_rows())
def test_tree_route_moves_rows_of_splitting_nodes_only(data):
    binned, n_bins, rng = data
    n, d = binned.shape
    # nodes 0..2 exist; 1 and 2 split now into (3, 4) and (5, 6); node 0 split before
    node_of_row = rng.integers(-1, 3, n)
    node_of_row[node_of_row == 0] = 1
    split_feature = np.array([-1, rng.integers(d), rng.integers(d), -1, -1, -1, -1])
    split_bin = np.array([0, rng.integers(n_bins), rng.integers(n_bins), 0, 0, 0, 0])
    left, right = np.array([1, 3, 5, -1, -1, -1, -1]), np.array([2, 4, 6, -1, -1, -1, -1])
    got = ref.tree_route(binned, node_of_row, split_feature, split_bin, left, right)
    for i in range(n):
        node = node_of_row[i]
        if node < 0:
            assert got[i] == -1
        else:
            go_left = binned[i, split_feature[node]] <= split_bin[node]
            assert got[i] == (left[node] if go_left else right[node])


def test_every_kernel_has_a_conformance_check_that_the_reference_passes():
    """Each hook has its vs-reference check in the conformance suite (with its edge cases),
    and the reference itself passes it."""
    from spmdlearn import _backends
    from spmdlearn_conformance._kernels import check_kernel

    pm = _backends.plugin_manager()
    plugin = pm.get_plugin("reference")
    impls = {hc.name[len("spmdlearn_"):]: next(i for i in hc.get_hookimpls() if i.plugin is plugin)
             for hc in pm.get_hookcallers(plugin)
             if hc.name not in ("spmdlearn_backend_info", "spmdlearn_claims")}
    assert set(impls) == set(ref.KERNELS)
    for kernel, impl in sorted(impls.items()):
        status, detail = check_kernel(impl, kernel, 3)
        assert status == "pass", f"{kernel}: {detail}"


@given(st.integers(0, 2**31 - 1), st.sampled_from([0, 1, 25]),
       st.sampled_from([np.float64, np.float32]))
def test_affine_transform_is_shift_then_scale_in_the_input_dtype(seed, n, dtype):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, 3)) * 5 + 1e3).astype(dtype)
    shift = rng.normal(size=3).astype(dtype) + dtype(1e3)
    scale = rng.uniform(0.1, 3, 3).astype(dtype)
    out = ref.affine_transform(X, shift, scale)
    assert out.dtype == dtype and out.shape == X.shape and out is not X
    assert np.array_equal(out, (X - shift) * scale)  # both steps rounded in the input dtype


@st.composite
def level_histograms(draw):
    """Histograms of a tree level with many equal decreases (integer counts on few bins)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    n_nodes, F, B = draw(st.integers(0, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    classification = draw(st.booleans())
    if classification:
        stats = rng.integers(0, 3, (n_nodes, F, B, 3)).astype(float)
    else:
        w = rng.integers(0, 3, (n_nodes, F, B)).astype(float)
        y = np.round(rng.normal(size=(n_nodes, F, B)), 0)
        stats = np.stack([w, w * y, w * y * y], -1)
    rows = (stats[..., 0] > 0) + rng.integers(0, 2, (n_nodes, F, B))
    hist = np.concatenate([stats, rows[..., None].astype(float)], -1)
    order = np.array([rng.permutation(F) for _ in range(n_nodes)]).reshape(n_nodes, F)
    criterion = draw(st.sampled_from(["gini", "entropy"])) if classification else "squared_error"
    return hist, order, classification, criterion, rng


@given(level_histograms(), st.integers(1, 5), st.integers(1, 3),
       st.sampled_from([0.0, 0.01, 0.1]), st.sampled_from([0.0, 1.0]))
def test_best_splits_are_best_split_of_every_node(data, n_draw, min_leaf, min_decrease,
                                                   min_weight):
    hist, order, classification, criterion, _ = data
    n_draw = min(n_draw, hist.shape[1])
    f, c, dec = ref.best_splits(hist, order, n_draw, classification, criterion, min_leaf,
                                min_decrease, 10.0, min_weight)
    assert f.shape == c.shape == dec.shape == (len(hist),)
    for i in range(len(hist)):
        expected = ref.best_split(hist[i], order[i], n_draw, classification, criterion,
                                  min_leaf, min_decrease, 10.0, min_weight)
        if expected is None:
            assert f[i] == -1
        else:
            assert (f[i], c[i]) == expected[:2] and np.isclose(dec[i], expected[2])


@given(binned_rows(), st.sampled_from([0, 2, 3]), st.booleans(), st.integers(1, 3))
def test_forest_histograms_are_each_trees_node_histograms_of_the_nodes_features(
        data, K, with_class_weight, n_trees):
    binned, n_bins, rng = data
    n, d = binned.shape
    width = 4  # tree nodes 0..3 have positions; rows in node 4 (or -1) are in none
    node_of_row = rng.integers(-1, width + 1, (n_trees, n))
    counts = rng.integers(0, 3, (n_trees, n))
    position = np.where(rng.random((n_trees, width)) < 0.6, 0, -1)
    placed = position >= 0
    position[placed] = rng.permutation(int(placed.sum()))  # places in any order of the trees
    n_places = int(placed.sum())
    k = int(rng.integers(1, d + 1))
    columns = np.array([rng.permutation(d)[:k] for _ in range(n_places)]).reshape(n_places, k)
    y = rng.integers(0, K, n) if K else rng.normal(size=n)
    w = rng.uniform(0.5, 2, n)
    cw = rng.uniform(0.5, 2, (n_trees, K)) if K and with_class_weight else None
    hist = ref.forest_histograms(binned, node_of_row, counts, position, columns, y, w, n_bins,
                                 K, cw)
    expected = np.zeros((n_places, k, n_bins, K + 1 if K else 4))
    for t in range(n_trees):
        for i in range(n):
            node = node_of_row[t, i]
            if node < 0 or node >= width or position[t, node] < 0 or counts[t, i] == 0:
                continue
            p = position[t, node]
            v = w[i] * counts[t, i] * (cw[t, y[i]] if cw is not None else 1.0)
            for j in range(k):
                cell = expected[p, j, binned[i, columns[p, j]]]
                if K:
                    cell[y[i]] += v
                    cell[K] += 1
                else:
                    cell += [v, v * y[i], v * y[i] ** 2, 1]
    assert hist.shape == expected.shape and np.allclose(hist, expected)
