"""Export of spmdlearn's histogram forests to scikit-learn's forests (local, never collective).

scikit-learn builds its ``sklearn.tree._tree.Tree`` objects from a documented pickled state,
``Tree(n_features, n_classes, n_outputs).__setstate__(state)``, where ``state`` holds
``max_depth``, ``node_count``, ``nodes`` (a structured array, one record per node) and
``values`` (``(node_count, n_outputs, max_n_classes)``). The layout of ``nodes`` is fixed
within a scikit-learn release line; the releases whose layout spmdlearn writes are listed in
:data:`SUPPORTED_SKLEARN`, and an installed version outside them (or whose layout differs from
the one expected) raises an error that names it, rather than building a wrong tree.

The trees keep their meaning exactly: a row goes left when ``x[feature] <= threshold``, in
both libraries. scikit-learn compares ``float32(x)`` with the threshold, so each threshold is
written as the largest float32 value not above it: for inputs representable in float32
(float32 data, integers up to 2**24, ...) the two forests then route every row alike and
predict the same. A float64 value that lies within float32 rounding of a threshold may be
routed differently.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["SUPPORTED_SKLEARN", "NODE_FIELDS", "forest_to_sklearn", "check_sklearn_tree_layout"]

#: scikit-learn release lines (major, minor) whose tree state layout spmdlearn writes: the node
#: record below, classifier ``values`` as class fractions (scikit-learn >= 1.4).
SUPPORTED_SKLEARN = ((1, 6), (1, 7), (1, 8), (1, 9))

#: The node record of those releases, field by field.
NODE_FIELDS = ("left_child", "right_child", "feature", "threshold", "impurity", "n_node_samples",
               "weighted_n_node_samples", "missing_go_to_left")

_TREE_LEAF = -1  # scikit-learn's child index of a leaf
_TREE_UNDEFINED = -2  # scikit-learn's feature and threshold of a leaf


def _release(version: str) -> tuple:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else -1)
    return tuple(parts)


@lru_cache(maxsize=None)
def _stub_layout(version: str):
    """(Tree class, node dtype) of the installed scikit-learn, from a two-row fitted tree.

    Both come from scikit-learn's public estimators, not from its private modules.
    """
    from sklearn.tree import DecisionTreeRegressor

    stub = DecisionTreeRegressor().fit(np.array([[0.0], [1.0]]), np.array([0.0, 1.0]))
    return type(stub.tree_), stub.tree_.__getstate__()["nodes"].dtype


def check_sklearn_tree_layout(version: str | None = None):
    """The installed scikit-learn's Tree class and node dtype, if spmdlearn knows its layout.

    Parameters
    ----------
    version : str, default=None
        The scikit-learn version to check (the installed one if None).

    Returns
    -------
    tree_class : type
    node_dtype : numpy.dtype

    Raises
    ------
    NotImplementedError
        If the version is not in :data:`SUPPORTED_SKLEARN`, or its node record is not
        :data:`NODE_FIELDS`; the message names the version.
    """
    import sklearn

    version = sklearn.__version__ if version is None else version
    known = ", ".join(f"{a}.{b}" for a, b in SUPPORTED_SKLEARN)
    if _release(version) not in SUPPORTED_SKLEARN:
        raise NotImplementedError(
            f"to_sklearn() of a forest writes scikit-learn's tree state, whose layout spmdlearn "
            f"knows for scikit-learn {known}; the installed scikit-learn {version} is not one "
            "of them. Install a supported scikit-learn to export forests.")
    tree_class, dtype = _stub_layout(version)
    if tuple(dtype.names) != NODE_FIELDS:
        raise NotImplementedError(
            f"scikit-learn {version}'s tree node layout {dtype.names} is not the one spmdlearn "
            f"writes {NODE_FIELDS}; forests cannot be exported to it.")
    return tree_class, dtype


def _float32_floor(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 value <= each threshold (as float64): ``f32(x) <= t'`` iff ``x <= t``
    for every float32 ``x``."""
    t32 = threshold.astype(np.float32)
    above = t32.astype(np.float64) > threshold
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32.astype(np.float64)


def _depth(left, right):
    depth = np.zeros(len(left), dtype=np.int64)
    for node in range(len(left)):  # children are always created after their parent
        if left[node] >= 0:
            depth[left[node]] = depth[right[node]] = depth[node] + 1
    return int(depth.max()) if len(depth) else 0


def _tree_state(tree, classification, criterion, dtype):
    """scikit-learn's ``__setstate__`` dict for one spmdlearn tree."""
    n = len(tree.feature)
    leaf = tree.left < 0
    if classification:
        weight = tree.value.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            fractions = np.where(weight[:, None] > 0, tree.value / np.where(weight > 0, weight, 1)[:, None], 0.0)
        if criterion == "gini":
            impurity = 1.0 - np.sum(fractions ** 2, axis=1)
        else:
            logs = np.log2(np.where(fractions > 0, fractions, 1.0))
            impurity = -np.sum(fractions * logs, axis=1)
        values = fractions[:, None, :]
    else:
        weight = tree.value[:, 0]
        safe = np.where(weight > 0, weight, 1.0)
        mean = np.where(weight > 0, tree.value[:, 1] / safe, 0.0)
        impurity = np.maximum(np.where(weight > 0, tree.value[:, 2] / safe - mean * mean, 0.0), 0.0)
        values = mean[:, None, None]
    nodes = np.zeros(n, dtype=dtype)
    nodes["left_child"] = np.where(leaf, _TREE_LEAF, tree.left)
    nodes["right_child"] = np.where(leaf, _TREE_LEAF, tree.right)
    nodes["feature"] = np.where(leaf, _TREE_UNDEFINED, tree.feature)
    nodes["threshold"] = np.where(leaf, _TREE_UNDEFINED, _float32_floor(np.nan_to_num(tree.threshold)))
    nodes["impurity"] = impurity
    counts = tree.n_node_samples if tree.n_node_samples is not None else np.rint(weight)
    nodes["n_node_samples"] = counts
    nodes["weighted_n_node_samples"] = weight
    nodes["missing_go_to_left"] = 0
    return {"max_depth": _depth(tree.left, tree.right), "node_count": n, "nodes": nodes,
            "values": np.ascontiguousarray(values, dtype=np.float64)}


def forest_to_sklearn(forest):
    """scikit-learn's RandomForestClassifier/Regressor holding ``forest``'s trees.

    Local: no communication. Predictions on any rows equal spmdlearn's forest's (see the
    module's note on float32 thresholds). The result pickles and predicts without spmdlearn.

    Raises
    ------
    NotImplementedError
        If the installed scikit-learn's tree layout is not one spmdlearn writes (the message
        names the version).
    """
    from sklearn import ensemble, tree as sktree

    tree_class, dtype = check_sklearn_tree_layout()
    classification = forest._classification
    sk_class = ensemble.RandomForestClassifier if classification else ensemble.RandomForestRegressor
    tree_sk_class = sktree.DecisionTreeClassifier if classification else sktree.DecisionTreeRegressor
    mine = forest.get_params(deep=False)
    est = sk_class(**{k: mine[k] for k in sk_class().get_params(deep=False) if k in mine})
    criterion = getattr(forest, "criterion", "squared_error")
    if criterion == "log_loss":
        criterion = "entropy"
    n_features = forest.n_features_in_
    n_classes = np.array([forest.n_classes_ if classification else 1], dtype=np.intp)
    template = tree_sk_class(**{p: getattr(est, p) for p in est.estimator_params})
    trees = []
    for i, ours in enumerate(forest.estimators_):
        t = tree_sk_class(**{p: getattr(est, p) for p in est.estimator_params})
        t.set_params(random_state=i)
        t.n_features_in_ = n_features
        t.n_outputs_ = 1
        t.max_features_ = forest._n_draw(n_features)
        if classification:
            t.classes_ = forest.classes_
            t.n_classes_ = int(forest.n_classes_)
        skt = tree_class(n_features, n_classes, 1)
        skt.__setstate__(_tree_state(ours, classification, criterion, dtype))
        t.tree_ = skt
        trees.append(t)
    est.estimator_ = template
    est.estimators_ = trees
    est.n_features_in_ = n_features
    est.n_outputs_ = 1
    if classification:
        est.classes_ = forest.classes_
        est.n_classes_ = int(forest.n_classes_)
    return est
