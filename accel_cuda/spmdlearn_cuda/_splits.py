"""The forests' split search on a CuPy histogram: :func:`spmdlearn.reference.best_splits` bit
for bit, through the namespace-generic
:func:`spmdlearn.reference._splits_in_namespace.best_splits_in` (NumPy's summation orders made
explicit; entropy's ``log2`` on the host).
"""

from __future__ import annotations

import numpy as np

from spmdlearn.reference._forest import no_splits
from spmdlearn.reference._splits_in_namespace import best_splits_in

from ._device import cupy, to_host

__all__ = ["best_splits"]


class _Move:
    to_host = staticmethod(to_host)

    @staticmethod
    def on_device(a, like):
        with like.device:
            return cupy().asarray(a)


def best_splits(hist, feature_order, n_draw, classification, criterion, min_samples_leaf,
                min_impurity_decrease, weighted_n_root, min_weight_leaf=0.0):
    """:func:`spmdlearn.reference.best_splits` on a CuPy histogram: the same
    ``(feature, bin, decrease)`` (int64, int64, float64 NumPy arrays: O(nodes), the level's
    decisions, which every rank needs on the host)."""
    cp = cupy()
    hist = hist.astype(cp.float64, copy=False)
    n_nodes, n_features, n_bins = hist.shape[:3]
    if n_nodes == 0 or n_bins < 2:
        return no_splits(n_nodes)
    with hist.device:
        order = cp.asarray(feature_order, dtype=cp.int64)
        feature, cut, gain = best_splits_in(cp, cp.ascontiguousarray(hist), order, n_draw,
                                            classification, criterion, min_samples_leaf,
                                            min_impurity_decrease, weighted_n_root,
                                            min_weight_leaf, _Move)
    return (to_host(feature).astype(np.int64), to_host(cut).astype(np.int64),
            to_host(gain).astype(np.float64))
