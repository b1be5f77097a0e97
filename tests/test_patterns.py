"""The laws of the named collective patterns, through the in-process simulator: any split of the
rows over any number of simulated ranks, empty ranks included, gives one rank's result."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spmdlearn.patterns import (
    COMPONENT_UNION,
    GRADIENT_SUM,
    LABEL_PROPAGATION,
    LEVEL_HISTOGRAMS,
    RING_TOPK,
    simulate_collective,
)

pytestmark = pytest.mark.serial


@st.composite
def splits(draw, n):
    """Cut points of ``n`` rows over 1-5 simulated ranks; empty ranks are likely."""
    ranks = draw(st.integers(1, 5))
    cuts = sorted(draw(st.lists(st.integers(0, n), min_size=ranks - 1, max_size=ranks - 1)))
    return [0] + cuts + [n]


def _parts(cuts, *arrays):
    return [tuple(a[lo:hi] for a in arrays) for lo, hi in zip(cuts[:-1], cuts[1:])]


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.data())
def test_ring_topk_any_split_equals_one_rank(seed, data):
    rng = np.random.default_rng(seed)
    n, d, k = int(rng.integers(3, 40)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    X = np.round(rng.normal(size=(n, d)) * 2, 0)  # a grid: many equal distances
    Q = np.round(rng.normal(size=(int(rng.integers(0, 20)), d)) * 2, 0)
    exclude = bool(rng.integers(2))
    k = min(k, n - 1) if exclude else k
    one = simulate_collective(
        lambda comm, Q, X: RING_TOPK.run(comm, X if exclude else Q, X, k, exclude_self=exclude),
        [(Q, X)])[0]
    cuts = data.draw(splits(n))
    qcuts = np.linspace(0, len(Q), len(cuts)).astype(int) if not exclude else cuts
    shards = [(q, x) for (x,), (q,) in zip(_parts(cuts, X), _parts(qcuts, Q))]
    many = simulate_collective(
        lambda comm, Q, X: RING_TOPK.run(comm, X if exclude else Q, X, k, exclude_self=exclude),
        shards)
    assert np.array_equal(np.concatenate([m[1] for m in many]), one[1])
    assert np.array_equal(np.concatenate([m[0] for m in many]), one[0])
    # and the one-rank result is the definition: k smallest (distance, index), self excluded
    queries = X if exclude else Q
    dist = np.sqrt(((queries[:, None] - X[None]) ** 2).sum(-1))
    for r in range(len(queries)):
        pairs = sorted((dist[r, c], c) for c in range(n) if not (exclude and c == r))[:k]
        assert [c for _, c in pairs] == list(one[1][r])


def _dbscan_core_graph(X, eps, min_samples):
    dist = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    core = (dist <= eps).sum(1) >= min_samples
    return dist, core


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.data())
def test_label_propagation_any_split_equals_one_rank(seed, data):
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    X = np.round(rng.normal(size=(n, 2)) * 3, 1)
    eps = 1.0
    dist, core = _dbscan_core_graph(X, eps, 3)
    cuts = data.draw(splits(n))

    def run(comm, X, core):
        # each rank starts from its core rows as singleton components, each labelled with
        # its own global index: the law must hold from any such start
        start, _ = comm.offsets(len(X))
        core_idx = np.flatnonzero(core)
        component = np.arange(len(core_idx))
        comp_label, best = LABEL_PROPAGATION.run(comm, X, core, component, core_idx + start,
                                                 eps=eps)
        return comp_label[component], best

    many = simulate_collective(run, _parts(cuts, X, core))
    # expected: each core row holds the smallest index of its cluster (component of the core
    # rows' eps-graph); every row holds the smallest cluster label among its core neighbours
    adj = (dist <= eps) & core[:, None] & core[None, :]
    _, comp = connected_components(adj.astype(int), directed=False)
    smallest = {c: np.flatnonzero((comp == c) & core).min() for c in np.unique(comp[core])}
    expected_best = [min([n] + [smallest[comp[j]] for j in np.flatnonzero((dist[i] <= eps) & core)])
                     for i in range(n)]
    assert list(np.concatenate([m[1] for m in many])) == expected_best
    assert list(np.concatenate([m[0] for m in many])) == \
        [smallest[comp[i]] for i in np.flatnonzero(core)]


def _expected_clusters(X, eps, min_samples):
    """Each core row's smallest cluster index and each row's smallest neighbouring cluster
    label, on one rank (SciPy's connected components of the dense core graph)."""
    from scipy.sparse.csgraph import connected_components

    n = len(X)
    dist, core = _dbscan_core_graph(X, eps, min_samples)
    adj = (dist <= eps) & core[:, None] & core[None, :]
    _, comp = connected_components(adj.astype(int), directed=False)
    smallest = {c: np.flatnonzero((comp == c) & core).min() for c in np.unique(comp[core])}
    best = [min([n] + [smallest[comp[j]] for j in np.flatnonzero((dist[i] <= eps) & core)])
            for i in range(n)]
    return core, [smallest[comp[i]] for i in np.flatnonzero(core)], best


@pytest.mark.parametrize("gathered", [None, 0])
@pytest.mark.parametrize("backend", ["reference", "cpu"])
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), chain=st.booleans(), data=st.data())
def test_component_union_any_split_equals_one_rank(backend, gathered, seed, chain, data):
    """Core rows end with their cluster's smallest index, every row with its core neighbours'
    smallest cluster label, for any split (empty ranks, chains crossing ranks at every step);
    also where the pairs across ranks are too many to gather (``gathered=0``: propagation)."""
    from spmdlearn._backends import available_backends
    from spmdlearn.patterns import ComponentUnion

    pattern = COMPONENT_UNION
    if gathered is not None:
        pattern = ComponentUnion()
        pattern.max_gathered_pairs = gathered
    if backend not in available_backends():
        pytest.skip(f"backend {backend!r} not available")
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    if chain:  # consecutive points of a chain on different ranks, with gaps
        X = np.column_stack([np.cumsum(rng.choice([0.5, 0.9, 1.5], n)), np.zeros(n)])
        X = X[rng.permutation(n)]
    else:
        X = np.round(rng.normal(size=(n, 2)) * 3, 1)
    eps = 1.0
    core, expected_core, expected_best = _expected_clusters(X, eps, 2 if chain else 3)
    cuts = data.draw(splits(n))

    def run(comm, X, core):
        return pattern.run(comm, X, core, eps=eps, backend=backend)

    many = simulate_collective(run, _parts(cuts, X, core))
    assert list(np.concatenate([m[0] for m in many])) == expected_core
    best = np.concatenate([m[1] for m in many])
    assert list(best[~core]) == [b for b, c in zip(expected_best, core) if not c]
    assert list(best[core]) == expected_core


def _histograms(comm, binned, node_pos, y, w, counts, *, n_nodes, n_bins, n_classes,
                class_weight=None):
    """One node list through the stacked reduction."""
    part = (binned, node_pos, y, w, counts, class_weight, n_nodes)
    return LEVEL_HISTOGRAMS.run_stacked(comm, [part], n_bins=n_bins, n_classes=n_classes)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans(), st.data())
def test_level_histograms_any_split_equals_one_rank(seed, classification, data):
    from spmdlearn.reference import tree_histograms

    rng = np.random.default_rng(seed)
    n, d, n_bins, n_nodes = int(rng.integers(0, 60)), 3, 5, 3
    binned = rng.integers(0, n_bins, (n, d)).astype(np.uint16)
    node_pos = rng.integers(-1, n_nodes, n)
    K = 3 if classification else 0
    y = rng.integers(0, 3, n) if classification else rng.normal(size=n)
    w = rng.uniform(0.5, 2, n)
    counts = rng.integers(0, 3, n)
    kw = dict(n_nodes=n_nodes, n_bins=n_bins, n_classes=K)
    args = (binned, node_pos, y, w, counts)
    one = simulate_collective(lambda comm, *a: _histograms(comm, *a, **kw), [args])[0]
    # one rank: the kernel's histograms of all rows, as float64 NumPy
    assert type(one) is np.ndarray and one.dtype == np.float64
    assert np.array_equal(one, tree_histograms(*args, **kw))
    # any split (an empty rank always among them): the sum over ranks, the same bits everywhere
    cuts = data.draw(splits(n))
    cuts = cuts[:1] + cuts  # rank 0 holds no rows
    many = simulate_collective(lambda comm, *a: _histograms(comm, *a, **kw),
                               _parts(cuts, *args))
    for m in many:
        assert type(m) is np.ndarray and m.dtype == np.float64
        assert np.allclose(m, one, rtol=1e-12, atol=1e-12)
        assert np.array_equal(m, many[0])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans(), st.data())
def test_level_histograms_stacked_equal_each_part_alone(seed, classification, data):
    """Several node lists (each from its own rows) in one reduction: each part's histograms
    are those of its own reduction, for any split of the rows, in part order."""
    rng = np.random.default_rng(seed)
    n, d, n_bins = int(rng.integers(0, 60)), 2, 4
    K = 2 if classification else 0
    binned = rng.integers(0, n_bins, (n, d)).astype(np.uint16)
    y = rng.integers(0, 2, n) if classification else rng.normal(size=n)
    w = rng.uniform(0.5, 2, n)
    parts = []
    for n_nodes in rng.integers(1, 4, 3):
        parts.append((rng.integers(-1, n_nodes, n), rng.integers(0, 3, n),
                      rng.uniform(0.5, 2, K) if K and rng.integers(2) else None, int(n_nodes)))
    cuts = data.draw(splits(n))

    def stacked(comm, binned, y, w, *per_part):
        local = [(binned, pos, y, w, counts, cw, k)
                 for (pos, counts), (_, _, cw, k) in zip(zip(per_part[::2], per_part[1::2]),
                                                         parts)]
        return LEVEL_HISTOGRAMS.run_stacked(comm, local, n_bins=n_bins, n_classes=K)

    flat = [a for pos, counts, _, _ in parts for a in (pos, counts)]
    many = simulate_collective(stacked, _parts(cuts, binned, y, w, *flat))
    at = 0
    for pos, counts, cw, k in parts:
        alone = simulate_collective(
            lambda comm, *a: _histograms(comm, *a, n_nodes=k, n_bins=n_bins, n_classes=K,
                                         class_weight=cw),
            _parts(cuts, binned, pos, y, w, counts))[0]
        for m in many:
            assert np.array_equal(m[at: at + k], alone)
        at += k
    assert all(m.shape[0] == at and np.array_equal(m, many[0]) for m in many)


@pytest.mark.parametrize("n_parts", [1, 3])
def test_level_histograms_stay_on_the_device_on_one_rank(n_parts):
    """Histograms that a kernel returns on a device (here: array-api-strict arrays) stay
    there on one rank, in the kernel's namespace; on more ranks, empty ones included, the sum
    goes through the host and comes back as float64 NumPy, equal to one rank's."""
    from spmdlearn.patterns import LevelHistograms

    xs = _strict_module()

    class OnDevice(LevelHistograms):
        def local(self, *args, **kwargs):
            return xs.asarray(super().local(*args, **kwargs))

    rng = np.random.default_rng(7)
    n, d, n_bins, K = 40, 3, 4, 2
    binned = rng.integers(0, n_bins, (n, d)).astype(np.uint16)
    y = rng.integers(0, K, n)
    w = rng.uniform(0.5, 2, n)
    per_part = [(rng.integers(-1, 2, n), rng.integers(0, 3, n)) for _ in range(n_parts)]

    def run(pattern):
        def stacked(comm, binned, y, w, *flat):
            local = [(binned, pos, y, w, counts, None, 2)
                     for pos, counts in zip(flat[::2], flat[1::2])]
            return pattern.run_stacked(comm, local, n_bins=n_bins, n_classes=K)
        return stacked

    flat = [a for pair in per_part for a in pair]
    host = simulate_collective(run(LEVEL_HISTOGRAMS), [(binned, y, w, *flat)])[0]
    device = simulate_collective(run(OnDevice()), [(binned, y, w, *flat)])[0]
    assert _is_strict(device)
    assert np.array_equal(np.from_dlpack(device), host) and host.shape[0] == 2 * n_parts
    many = simulate_collective(run(OnDevice()), _parts([0, 0, 13, n], binned, y, w, *flat))
    for m in many:
        assert type(m) is np.ndarray and m.dtype == np.float64
        assert np.allclose(m, host, rtol=1e-12, atol=1e-12) and np.array_equal(m, many[0])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([2, 3]), st.data())
def test_gradient_sum_any_split_equals_one_rank(seed, K, data):
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(0, 50)), 3
    X = rng.normal(size=(n, d))
    w = rng.uniform(0.5, 2, n)
    if K == 2:
        target, coef, intercept = rng.integers(0, 2, n).astype(float), rng.normal(size=d), 0.3
    else:
        target, coef, intercept = rng.integers(0, K, n), rng.normal(size=(K, d)), rng.normal(size=K)

    def run(comm, X, t, w):
        return GRADIENT_SUM.run(comm, X, t, w, coef, intercept, n_classes=K, with_hessian=True)

    one = simulate_collective(run, [(X, target, w)])[0]
    many = simulate_collective(run, _parts(data.draw(splits(n)), X, target, w))
    for m in many:
        assert np.isclose(m[0], one[0], rtol=1e-12, atol=1e-12)
        assert np.allclose(m[1], one[1], rtol=1e-12, atol=1e-12)
        assert np.allclose(m[2], one[2], rtol=1e-12, atol=1e-12)
        assert m[0] == many[0][0] and np.array_equal(m[1], many[0][1])
    assert np.allclose(np.concatenate([np.reshape(m[3], (-1,) + np.shape(one[3])[1:])
                                       for m in many]), one[3])


# -- the patterns in another array namespace ------------------------------------------------
# Device arrays (dpnp, CuPy) take the same code path as array-api-strict, a strict array type
# of the standard: no NumPy-only idiom, no scatter. The results must be NumPy's, in the type.

def _strict_module():
    return pytest.importorskip("array_api_strict")


def _is_strict(x):
    from spmdlearn._array_api import is_foreign_array

    return is_foreign_array(x) and type(x).__module__.startswith("array_api_strict")


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.data())
def test_patterns_in_another_namespace_give_numpys_results(seed, data):
    from spmdlearn.patterns import lookup_payload

    xs = _strict_module()
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(2, 30)), 2
    X = np.round(rng.normal(size=(n, 2)) * 3, 1)  # equal distances and chains within eps
    payload = rng.integers(0, 5, (n, 2)).astype(np.float64)
    _, core = _dbscan_core_graph(X, 1.0, 3)
    cuts = data.draw(splits(n))

    def run(comm, X, core, payload):
        start, _ = comm.offsets(X.shape[0])
        xp = np if isinstance(X, np.ndarray) else xs
        core_idx = xp.nonzero(core)[0]
        component = xp.arange(core_idx.shape[0], dtype=xp.int64)
        comp_label, best = LABEL_PROPAGATION.run(comm, X, core, component, core_idx + start,
                                                 eps=1.0)
        dist, ind = RING_TOPK.run(comm, X, X, k - 1, exclude_self=True)
        values = lookup_payload(comm, ind, payload)
        return comp_label, best, dist, ind, values

    expected = simulate_collective(run, _parts(cuts, X, core, payload))
    got = simulate_collective(run, [tuple(xs.asarray(a) for a in shard)
                                    for shard in _parts(cuts, X, core, payload)])
    for rank_expected, rank_got in zip(expected, got):
        for e, g in zip(rank_expected, rank_got):
            assert _is_strict(g)
            assert np.array_equal(np.from_dlpack(g), e) and np.from_dlpack(g).dtype == e.dtype


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_segment_min_is_numpys_minimum_at(seed):
    from spmdlearn.patterns import segment_min

    xs = _strict_module()
    rng = np.random.default_rng(seed)
    n_segments, n = int(rng.integers(0, 12)), int(rng.integers(0, 40))
    keys = rng.integers(0, max(n_segments, 1), n) if n_segments else np.zeros(0, np.int64)
    values = rng.integers(-5, 5, keys.shape[0])
    initial = rng.integers(-3, 8, n_segments)
    expected = segment_min(keys, values, initial)
    got = segment_min(xs.asarray(keys), xs.asarray(values), xs.asarray(initial))
    reference = initial.copy()
    np.minimum.at(reference, keys, values)
    assert np.array_equal(expected, reference)
    assert _is_strict(got) and np.array_equal(np.from_dlpack(got), reference)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans(), st.sampled_from(["reference", "cpu"]),
       st.data())
def test_level_histograms_of_several_trees_from_every_row_equal_the_gathered_rows(
        seed, classification, backend, data):
    """``run_forest`` (the trees' nodes placed in one histogram, each row's node's features
    read where they lie) gives ``run_stacked``'s histograms of each tree's gathered rows with
    its nodes' features, bit for bit, for any split of the rows (an empty rank among them)."""
    from spmdlearn._backends import installed_backends

    if backend not in installed_backends():
        pytest.skip(f"{backend} is not installed")
    rng = np.random.default_rng(seed)
    n, d, n_bins, T, width, k = int(rng.integers(0, 60)), 4, 5, 3, 4, 2
    K = 2 if classification else 0
    binned = rng.integers(0, n_bins, (n, d)).astype(np.uint16)
    y = rng.integers(0, 2, n) if classification else rng.normal(size=n)
    w = rng.uniform(0.5, 2, n)
    node_of_row, counts = rng.integers(-1, width, (n, T)), rng.integers(0, 3, (n, T))
    position = np.where(rng.random((T, width)) < 0.6, 0, -1)
    placed = position >= 0
    position[placed] = np.arange(int(placed.sum()))  # tree by tree, nodes in order
    columns = np.array([rng.permutation(d)[:k] for _ in range(int(placed.sum()))]).reshape(-1, k)
    cw = rng.uniform(0.5, 2, (T, K)) if K and rng.integers(2) else None
    cuts = data.draw(splits(n))
    cuts = cuts[:1] + cuts  # rank 0 holds no rows

    def fused(comm, binned, y, w, node_of_row, counts):
        return LEVEL_HISTOGRAMS.run_forest(
            comm, binned, np.ascontiguousarray(node_of_row.T), np.ascontiguousarray(counts.T),
            position, columns, y, w, n_bins=n_bins, n_classes=K, class_weight=cw,
            backend=backend)

    def gathered(comm, binned, y, w, node_of_row, counts):
        parts = []
        for t in range(T):
            mine = np.flatnonzero(placed[t])
            place = np.full(width + 1, -1)
            place[mine] = np.arange(len(mine))
            local = place[node_of_row[:, t]]
            rows = np.flatnonzero(local >= 0)
            own = columns[position[t, mine]]
            parts.append((binned[rows[:, None], own[local[rows]]], local[rows], y[rows], w[rows],
                          counts[rows, t], None if cw is None else cw[t], len(mine)))
        return LEVEL_HISTOGRAMS.run_stacked(comm, parts, n_bins=n_bins, n_classes=K)

    args = _parts(cuts, binned, y, w, node_of_row, counts)
    many, expected = simulate_collective(fused, args), simulate_collective(gathered, args)
    for m, e in zip(many, expected):
        assert m.shape == e.shape and np.array_equal(m, e)


# -- check_distance_range: the branch to gather depends only on agreed values -----------------
def _float32_on_float32_rows(monkeypatch):
    """Ranks whose rows are float32 compute as on a device without float64 (float32 sums)."""
    from spmdlearn import _array_api

    real = _array_api.accumulation_dtype
    monkeypatch.setattr(_array_api, "accumulation_dtype",
                        lambda x: np.float32 if x.dtype == np.float32 else real(x))


def _per_rank_verdicts(shards, radius, metric="euclidean"):
    from spmdlearn.patterns import check_distance_range

    def run(comm, Q):
        try:
            check_distance_range(comm, (Q, Q), metric=metric, p=2, radius=radius)
            return None
        except ValueError as exc:
            return str(exc)

    # a rank that left out the gather would leave the others waiting: a short timeout fails
    return simulate_collective(run, [(s,) for s in shards], timeout=10)


@pytest.mark.parametrize("radius", [1e30, 1e100])
def test_distance_range_float32_rank_same_branch(monkeypatch, radius):
    """A radius above float32's limit but below float64's: a float32 rank must not gather
    alone (it used to: the float64 ranks returned at once and the float32 rank waited)."""
    _float32_on_float32_rows(monkeypatch)
    rng = np.random.default_rng(0)
    shards = [rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(4, 3)),
              np.zeros((0, 3))]
    assert _per_rank_verdicts(shards, radius) == [None, None, None]


def test_distance_range_overflow_on_float32_rank_raises_everywhere(monkeypatch):
    """Rows 1e20 apart overflow float32's squares, not float64's: every rank raises, naming
    the float32 rank; with every rank in float64 nobody does."""
    _float32_on_float32_rows(monkeypatch)
    far = np.array([[0.0, 0.0], [1e20, 0.0]])
    shards = [far.astype(np.float32), far, np.zeros((0, 2))]
    verdicts = _per_rank_verdicts(shards, 1e30)
    assert all(v is not None and "overflow float32 on rank 0" in v and "radius=1e+30" in v
               for v in verdicts), verdicts
    shards[0] = far
    assert _per_rank_verdicts(shards, 1e30) == [None, None, None]
    shards[0] = far.astype(np.float32)
    assert _per_rank_verdicts(shards, 1e10) == [None, None, None]  # below every limit
