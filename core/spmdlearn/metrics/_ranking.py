"""ROC AUC over all ranks' rows, exactly: binary, and multiclass one-vs-rest and one-vs-one."""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
from sklearn import metrics as _sk
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils.validation import check_array, check_consistent_length

from .._array_api import host_arguments
from .._base import collective_function
from ..comm import get_comm
from ._classification import _column, global_labels

__all__ = ["roc_auc_score"]


def _binary_auc(positive, scores, counts, weights, weighted, max_fpr=None):
    """scikit-learn's binary ROC AUC of the rows that the histogram ``(positive, scores)`` stands
    for: each key weighted by its row count (unweighted) or its summed weight.

    The ROC curve of weighted distinct points is the curve of the rows: the true- and
    false-positive sums at each distinct score are the same numbers (integers, exactly, when
    unweighted), so the value is scikit-learn's on the gathered rows.
    """
    if len(np.unique(positive)) != 2:
        warnings.warn("Only one class is present in y_true. ROC AUC score is not defined in "
                      "that case.", UndefinedMetricWarning, stacklevel=3)
        return np.nan
    return float(_sk.roc_auc_score(positive, scores, max_fpr=max_fpr,
                                   sample_weight=weights if weighted else counts))


def _max_fpr_default(arguments):
    """``max_fpr=1`` is the whole curve, as None is (scikit-learn computes the same area)."""
    if arguments.get("max_fpr") == 1:
        arguments["max_fpr"] = None
    return arguments


@host_arguments
@collective_function(resolve=_max_fpr_default)
def roc_auc_score(y_true, y_score, *, average="macro", sample_weight=None, max_fpr=None,
                  multi_class="raise", labels=None):
    """Collective: ROC AUC of all ranks' rows, exactly (scikit-learn's value on the gathered rows).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        This rank's labels (may be empty). Two classes over all ranks: binary; more: multiclass.
    y_score : array-like of shape (n_samples,) or (n_samples, n_classes)
        Binary: scores of the greater label (1-D), or ``(n_samples, 2)`` probabilities, as
        scikit-learn refuses them for binary targets. Multiclass: probabilities, columns in the
        order of the sorted labels (rows summing to 1).
    average : {"macro", "weighted", "micro", None}, default="macro"
        Multiclass averaging, as scikit-learn's: "micro" and None with ``multi_class="ovr"``
        only. Binary targets ignore it, as scikit-learn does.
    sample_weight : array-like of shape (n_samples,), default=None
        Not with ``multi_class="ovo"`` (scikit-learn refuses it).
    max_fpr : float, default=None
        Standardized partial AUC up to this false-positive rate (binary only).
    multi_class : {"raise", "ovr", "ovo"}, default="raise"
        Multiclass scheme: one-vs-rest, or Hand & Till's one-vs-one.
    labels : array-like of shape (n_classes,), default=None
        Multiclass only: the sorted labels naming ``y_score``'s columns; None: the union of
        ``y_true`` over all ranks.

    Returns
    -------
    auc : float, or ndarray of shape (n_classes,) for ``average=None``
        Identical on every rank.

    Raises
    ------
    ValueError
        On every rank, for scikit-learn's reasons (unknown ``multi_class``, scores of the wrong
        shape or not summing to 1, ``max_fpr`` with multiclass, ...), naming the failing ranks.

    Notes
    -----
    **Distributed semantics.** Collective. Each rank reduces its rows to a histogram of distinct
    ``(class, column, score)`` triples with their row counts and weights; the histograms are
    gathered (``Allgatherv``) and merged on every rank, so memory is O(distinct scores per
    class and column), at most the gathered ``y_score``. Every one-vs-rest or one-vs-one binary
    problem is a selection from that table, scored by scikit-learn's ``roc_auc_score`` with the
    totals as weights, and averaged as scikit-learn averages (class support for "weighted"
    one-vs-rest, pair prevalence for "weighted" one-vs-one). Unweighted, the value is
    scikit-learn's bit for bit; weighted, up to the order of summation.
    """
    comm = get_comm()

    def check():
        yt = _column(y_true, "y_true")
        ys = check_array(y_score, ensure_2d=False, ensure_min_samples=0, input_name="y_score")
        check_consistent_length(yt, ys)
        if ys.ndim not in (1, 2):
            raise ValueError(f"y_score should be 1-D or 2-D, got shape {ys.shape}")
        sw = None if sample_weight is None else check_array(
            sample_weight, ensure_2d=False, ensure_min_samples=0, input_name="sample_weight")
        if sw is not None:
            check_consistent_length(yt, sw)
        return yt, ys, sw

    (yt, ys, sw), shapes = comm.agree(check, summarize=lambda r: (len(r[0]), r[1].shape[1:]))
    # A rank without rows says nothing about y_score's columns (its empty array may be 1-D).
    columns = {s for n, s in shapes if n} or {shapes[0][1]}
    if len(columns) > 1:
        detail = ", ".join(f"rank {r}: {s}" for r, (_, s) in enumerate(shapes))
        raise ValueError(f"y_score's trailing shape differs across ranks ({detail})")
    (trailing,) = columns
    observed = global_labels(comm, yt)
    n_columns = trailing[0] if trailing else 1
    multiclass = len(observed) > 2 or (len(trailing) == 1 and n_columns > 2)
    if not multiclass:
        if trailing and n_columns != 1:
            raise ValueError(f"y_score of shape (n_samples, {n_columns}) for binary y_true: "
                             "pass the scores of the greater label, as scikit-learn requires")
        if len(observed) > 2:
            raise ValueError("multiclass format is not supported")
        return _binary(comm, yt, ys.reshape(len(yt)), sw, observed, max_fpr)
    if max_fpr is not None and max_fpr != 1.0:
        raise ValueError("Partial AUC computation not available in multiclass setting, "
                         f"'max_fpr' must be set to `None`, received `max_fpr={max_fpr}` instead")
    if multi_class == "raise":
        raise ValueError("multi_class must be in ('ovo', 'ovr')")
    return _multiclass(comm, yt, ys, sw, observed, n_columns, average, multi_class, labels)


def _binary(comm, yt, ys, sw, classes, max_fpr):
    positive = np.searchsorted(classes, yt) == len(classes) - 1 if len(yt) else np.zeros(0, bool)
    table = np.column_stack([np.zeros(len(yt)), np.zeros(len(yt)), positive, ys])
    merged = _merge(comm, table, sw)
    if len(classes) < 2:
        warnings.warn("Only one class is present in y_true. ROC AUC score is not defined in "
                      "that case.", UndefinedMetricWarning, stacklevel=3)
        return np.nan
    return _binary_auc(merged[:, 2], merged[:, 3], merged[:, 4], merged[:, 5], sw is not None,
                       max_fpr)


def _merge(comm, table, sw):
    """Collective: merge the rows of ``table`` (key columns) over all ranks into distinct keys
    with their row counts and summed weights (columns -2 and -1 of the result)."""
    n = len(table)
    w = np.ones(n) if sw is None else np.asarray(sw, np.float64)
    if n:
        keys, inverse = np.unique(table, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        local = np.column_stack([keys, np.bincount(inverse, minlength=len(keys)).astype(float),
                                 np.bincount(inverse, weights=w, minlength=len(keys))])
    else:
        local = np.zeros((0, table.shape[1] + 2))
    gathered = comm.allgather_rows(np.ascontiguousarray(local, dtype=np.float64))
    if not len(gathered):
        raise ValueError(f"n_samples=0 should be >= 1 (summed over {comm.size} ranks)")
    keys, inverse = np.unique(gathered[:, :-2], axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    counts = np.bincount(inverse, weights=gathered[:, -2])
    weights = np.bincount(inverse, weights=gathered[:, -1])
    return np.column_stack([keys, counts, weights])


def _multiclass(comm, yt, ys, sw, observed, n_columns, average, multi_class, labels):
    if ys.ndim != 2:
        raise ValueError("`y_score` needs to be of shape `(n_samples, n_classes)`, since "
                         f"`y_true` contains multiple classes. Got `y_score.shape={ys.shape}`.")

    def check_probabilities():
        if len(ys) and not np.allclose(1, ys.sum(axis=1)):
            raise ValueError("Target scores need to be probabilities for multiclass roc_auc, "
                             "i.e. they should sum up to 1.0 over classes")

    comm.agree(check_probabilities)
    options = ("macro", "weighted", None)
    if multi_class == "ovr":
        options = ("micro",) + options
    if average not in options:
        raise ValueError(f"average must be one of {options} for multiclass problems")
    if multi_class not in ("ovo", "ovr"):
        raise ValueError(f"multi_class='{multi_class}' is not supported for multiclass ROC AUC, "
                         "multi_class must be in ('ovo', 'ovr')")
    if average is None and multi_class == "ovo":
        raise NotImplementedError("average=None is not implemented for multi_class='ovo'.")
    if labels is not None:
        labels = np.asarray(labels).ravel()
        classes = np.unique(labels)
        if len(classes) != len(labels):
            raise ValueError("Parameter 'labels' must be unique")
        if not np.array_equal(classes, labels):
            raise ValueError("Parameter 'labels' must be ordered")
        if len(classes) != n_columns:
            raise ValueError(f"Number of given labels, {len(classes)}, not equal to the number "
                             f"of columns in 'y_score', {n_columns}")
        if len(np.setdiff1d(observed, classes)):
            raise ValueError("'y_true' contains labels not in parameter 'labels'")
    else:
        classes = observed
        if len(classes) != n_columns:
            raise ValueError("Number of classes in y_true not equal to the number of columns in "
                             "'y_score'")
    if multi_class == "ovo" and sw is not None:
        raise ValueError("sample_weight is not supported for multiclass one-vs-one ROC AUC, "
                         "'sample_weight' must be None in this case.")
    k = len(classes)
    n = len(yt)
    code = np.searchsorted(classes, yt).astype(np.float64) if n else np.zeros(0)
    # One row per (row, column): (class of the row, column, score).
    table = np.column_stack([np.repeat(code, k), np.tile(np.arange(k, dtype=np.float64), n),
                             np.zeros(n * k), ys.reshape(-1).astype(np.float64)])
    weights = None if sw is None else np.repeat(np.asarray(sw, np.float64), k)
    merged = _merge(comm, table, weights)
    c, j, s, counts, wsum = (merged[:, 0], merged[:, 1], merged[:, 3], merged[:, 4],
                             merged[:, 5])
    weighted = sw is not None
    if multi_class == "ovo":
        present = np.unique(c).astype(np.int64)
        n_rows = counts[j == 0].sum()
        scores, prevalence = [], []
        for a, b in combinations(present, 2):
            pair = []
            for col, pos in ((a, a), (b, b)):
                sel = (j == col) & ((c == a) | (c == b))
                pair.append(_binary_auc(c[sel] == pos, s[sel], counts[sel], wsum[sel], False))
            scores.append((pair[0] + pair[1]) / 2)
            prevalence.append(counts[(j == 0) & ((c == a) | (c == b))].sum() / n_rows)
        return float(np.average(np.asarray(scores),
                                weights=np.asarray(prevalence) if average == "weighted" else None))
    if average == "micro":
        return _binary_auc(c == j, s, counts, wsum, weighted)
    support = np.array([(wsum if weighted else counts)[(j == 0) & (c == col)].sum()
                        for col in range(k)])
    if average == "weighted" and np.isclose(support.sum(), 0):
        return 0
    per_class = np.array([_binary_auc(c[j == col] == col, s[j == col], counts[j == col],
                                      wsum[j == col], weighted) for col in range(k)])
    if average is None:
        return per_class
    if average == "weighted":
        per_class[support == 0] = 0
        return float(np.average(per_class, weights=support))
    return float(np.average(per_class))
