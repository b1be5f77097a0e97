"""ROC AUC over all ranks' rows, exactly."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as _sk
from sklearn.utils.validation import check_array, check_consistent_length

from .._array_api import host_arguments
from ..comm import get_comm
from ._classification import _column, global_labels

__all__ = ["roc_auc_score"]


@host_arguments
def roc_auc_score(y_true, y_score, *, average="macro", sample_weight=None, max_fpr=None,
                  multi_class="raise", labels=None):
    """Collective: binary ROC AUC of all ranks' rows, exact.

    Exact merge: each rank reduces its rows to a histogram of distinct ``(label, score)`` pairs
    with their row counts and weights; the histograms are gathered and merged on every rank
    (memory O(distinct scores), not O(rows) unless every score is distinct), and
    scikit-learn's ``roc_auc_score`` runs on the merged histogram with the totals as weights.
    The ROC curve of weighted distinct points is the curve of the rows, so the value is
    scikit-learn's on the gathered arrays (bit for bit for unweighted rows).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels over all ranks (multiclass raises NotImplementedError on every rank).
    y_score : array-like of shape (n_samples,)
        Scores of the greater label.
    average, multi_class, labels
        scikit-learn's; only meaningful for multiclass, which is refused.
    sample_weight : array-like of shape (n_samples,), default=None
    max_fpr : float, default=None
        Standardized partial AUC up to this false-positive rate.
    """
    comm = get_comm()

    def check():
        yt = _column(y_true, "y_true")
        ys = check_array(y_score, ensure_2d=False, ensure_min_samples=0, input_name="y_score")
        if ys.ndim != 1:
            raise NotImplementedError("roc_auc_score: only binary targets with 1-D scores are "
                                      "supported by spmdlearn")
        check_consistent_length(yt, ys)
        sw = None if sample_weight is None else check_array(
            sample_weight, ensure_2d=False, ensure_min_samples=0, input_name="sample_weight")
        return yt, ys, sw

    yt, ys, sw = comm.agree(check)
    classes = global_labels(comm, yt)
    if len(classes) > 2:
        raise NotImplementedError(f"roc_auc_score: y_true has {len(classes)} classes over all "
                                  "ranks; spmdlearn computes the binary case only")
    positive = np.searchsorted(classes, yt) == len(classes) - 1 if len(yt) else np.zeros(0, bool)
    table = np.column_stack([positive.astype(np.float64), ys.astype(np.float64)])
    keys, inverse = np.unique(table, axis=0, return_inverse=True) if len(yt) else \
        (np.zeros((0, 2)), np.zeros(0, np.int64))
    inverse = np.asarray(inverse).ravel()
    w = np.ones(len(yt)) if sw is None else np.asarray(sw, np.float64)
    local = np.column_stack([keys, np.bincount(inverse, minlength=len(keys)).astype(np.float64),
                             np.bincount(inverse, weights=w, minlength=len(keys))])
    merged = comm.allgather_rows(local)
    keys, inverse = np.unique(merged[:, :2], axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    counts = np.bincount(inverse, weights=merged[:, 2]).astype(np.int64)
    weights = np.bincount(inverse, weights=merged[:, 3])
    return _sk.roc_auc_score(keys[:, 0], keys[:, 1], sample_weight=counts if sw is None else weights,
                             max_fpr=max_fpr)
