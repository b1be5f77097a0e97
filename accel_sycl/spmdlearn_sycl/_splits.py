"""The forests' split search on a dpnp histogram: :func:`spmdlearn.reference.best_splits` bit
for bit, through the namespace-generic :func:`spmdlearn.reference._splits_in_namespace.best_splits_in`
(NumPy's summation orders made explicit; entropy's ``log2`` on the host).
"""

from __future__ import annotations

import numpy as np

from spmdlearn.reference._forest import no_splits
from spmdlearn.reference._splits_in_namespace import best_splits_in

from ._device import dpnp, has_float64, on_device, to_host

__all__ = ["best_splits"]


class _Move:
    to_host = staticmethod(to_host)
    on_device = staticmethod(on_device)


def best_splits(hist, feature_order, n_draw, classification, criterion, min_samples_leaf,
                min_impurity_decrease, weighted_n_root, min_weight_leaf=0.0):
    """:func:`spmdlearn.reference.best_splits` on a dpnp histogram: the same
    ``(feature, bin, decrease)`` (int64, int64, float64 NumPy arrays: O(nodes), the level's
    decisions, which every rank needs on the host). Declines where the device lacks float64."""
    xp = dpnp()
    if not has_float64(hist):
        return None  # the reference's decisions need float64 arithmetic: decline
    hist = hist.astype(xp.float64, copy=False)
    n_nodes, n_features, n_bins = hist.shape[:3]
    if n_nodes == 0 or n_bins < 2:
        return no_splits(n_nodes)
    order = on_device(np.asarray(to_host(feature_order) if hasattr(feature_order, "sycl_queue")
                                 else feature_order, np.int64), hist)
    feature, cut, gain = best_splits_in(xp, xp.ascontiguousarray(hist), order, n_draw,
                                        classification, criterion, min_samples_leaf,
                                        min_impurity_decrease, weighted_n_root, min_weight_leaf,
                                        _Move)
    return (to_host(feature).astype(np.int64), to_host(cut).astype(np.int64),
            to_host(gain).astype(np.float64))
