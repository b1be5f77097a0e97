"""Classification metrics over all ranks' rows.

Every metric of the confusion-matrix family is a function of the weighted confusion matrix.
Each rank counts its cells (``(true label, predicted label) -> (rows, weight)``), the cells are
summed over ranks (row counts exactly, as integers), and scikit-learn's own function is applied
to one synthetic row per non-empty cell, weighted by the cell's total: the value is the one
scikit-learn returns on the gathered arrays (exactly for unweighted counts).
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as _sk
from sklearn.utils.validation import check_array, check_consistent_length

from .._array_api import (from_model, get_namespace, host_arguments, is_foreign_array,
                          numpy_dtype, to_host)
from .._base import collective_function
from ..comm import get_comm

__all__ = ["accuracy_score", "balanced_accuracy_score", "confusion_matrix", "precision_recall_fscore_support",
           "precision_score", "recall_score", "f1_score", "log_loss", "global_labels"]


def _column(y, name):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1:
        raise NotImplementedError(f"{name} of shape {y.shape}: multilabel and multioutput "
                                  "targets are not supported by spmdlearn's metrics")
    return y


def _kind(labels: np.ndarray) -> str:
    return "string" if labels.dtype.kind in "OUS" else "number"


@host_arguments
def global_labels(comm, *arrays) -> np.ndarray:
    """Collective: the sorted union of the labels in ``arrays`` over all ranks.

    Raises ValueError on every rank when ranks hold labels of different types (numbers on some
    ranks, strings on others), as scikit-learn refuses a mix of label types.
    """
    local = [np.unique(a) for a in arrays if len(a)]
    local = np.unique(np.concatenate(local)) if local else np.array([])
    gathered = comm.allgather(local.tolist() if len(local) else None)
    kinds = {(r, _kind(np.asarray(g))) for r, g in enumerate(gathered) if g is not None}
    if len({k for _, k in kinds}) > 1:
        detail = ", ".join(f"rank {r}: {k}" for r, k in sorted(kinds))
        raise ValueError(f"labels of different types across ranks ({detail}): Mix of label "
                         "input types (string and number)")
    values = [v for g in gathered if g is not None for v in g]
    return np.unique(np.asarray(values)) if values else np.array([])


def _numeric_device_labels(y) -> bool:
    """Whether ``y`` is a 1-D numeric array of a foreign (non-NumPy) type: encoded in place."""
    return (is_foreign_array(y) and getattr(y, "ndim", 0) == 1
            and numpy_dtype(y.dtype).kind in "biuf")


def label_values(y):
    """What a label check needs of ``y``: ``y`` itself, or, for a numeric array of another type
    (a device array), its distinct values brought to the host (O(classes), not the rows)."""
    if _numeric_device_labels(y):
        xp = get_namespace(y)
        return to_host(xp.unique_values(y))
    return to_host(y)


def encode_labels(comm, y):
    """Collective: the sorted classes of all ranks (NumPy) and the class index of each of this
    rank's labels, ``searchsorted(classes, y)``.

    A numeric ``y`` of another array type (a device array) is encoded in its own namespace and
    stays there: only its distinct values cross to the host. Other labels (strings, objects,
    NumPy) are encoded on the host.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
    y_index : array of shape (n_samples,), int64, in ``y``'s namespace
    """
    if _numeric_device_labels(y):
        classes = global_labels(comm, label_values(y))
        xp = get_namespace(y)
        index = xp.searchsorted(from_model(classes, y, numpy_dtype(y.dtype)), y)
        return classes, xp.astype(index, xp.int64)
    y = to_host(y)
    classes = global_labels(comm, y)
    return classes, (np.searchsorted(classes, y) if len(y) else np.zeros(0, np.int64))


def _cells(y_true, y_pred, sample_weight):
    """Collective: the global confusion cells as synthetic ``(y_true, y_pred, weight)`` rows."""
    comm = get_comm()

    def check():
        yt, yp = _column(y_true, "y_true"), _column(y_pred, "y_pred")
        check_consistent_length(yt, yp)
        sw = None
        if sample_weight is not None:
            sw = check_array(sample_weight, ensure_2d=False, ensure_min_samples=0,
                             input_name="sample_weight")
            check_consistent_length(yt, sw)
        return yt, yp, sw

    yt, yp, sw = comm.agree(check)
    labels = global_labels(comm, yt, yp)
    k = len(labels)
    counts = np.zeros((k, k), dtype=np.int64)
    weights = np.zeros((k, k))
    if len(yt):
        i, j = np.searchsorted(labels, yt), np.searchsorted(labels, yp)
        np.add.at(counts, (i, j), 1)
        np.add.at(weights, (i, j), 1.0 if sw is None else np.asarray(sw, np.float64))
    counts = comm.allgather_array(counts).sum(axis=0)
    weights = comm.sum_identical(weights)
    if counts.sum() == 0:
        raise ValueError(f"n_samples=0 should be >= 1 (summed over {comm.size} ranks)")
    i, j = np.nonzero(counts)
    w = counts[i, j] if sample_weight is None else weights[i, j]
    return labels[i], labels[j], w


@host_arguments
@collective_function
def accuracy_score(y_true, y_pred, *, normalize=True, sample_weight=None):
    """Collective: accuracy over all ranks' rows (scikit-learn's value on the gathered arrays).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        This rank's labels (may be empty).
    normalize : bool, default=True
        Fraction (True) or count (False) of correct rows.
    sample_weight : array-like of shape (n_samples,), default=None

    Returns
    -------
    score : float
        Identical on every rank.
    """
    t, p, w = _cells(y_true, y_pred, sample_weight)
    return _sk.accuracy_score(t, p, normalize=normalize, sample_weight=w)


@host_arguments
@collective_function
def balanced_accuracy_score(y_true, y_pred, *, sample_weight=None, adjusted=False):
    """Collective: scikit-learn's balanced accuracy of all ranks' rows.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        This rank's labels (may be empty).
    sample_weight : array-like of shape (n_samples,), default=None
    adjusted : bool, default=False
        Adjust for chance, as scikit-learn's.

    Returns
    -------
    score : float
        Identical on every rank; exact for unweighted rows (a function of the confusion matrix).
    """
    t, p, w = _cells(y_true, y_pred, sample_weight)
    return _sk.balanced_accuracy_score(t, p, sample_weight=w, adjusted=adjusted)


@host_arguments
@collective_function
def confusion_matrix(y_true, y_pred, *, labels=None, sample_weight=None, normalize=None):
    """Collective: scikit-learn's confusion matrix of all ranks' rows (int counts unweighted)."""
    t, p, w = _cells(y_true, y_pred, sample_weight)
    return _sk.confusion_matrix(t, p, labels=labels, sample_weight=w, normalize=normalize)


@host_arguments
@collective_function
def precision_recall_fscore_support(y_true, y_pred, **kwargs):
    """Collective: scikit-learn's ``precision_recall_fscore_support`` on all ranks' rows.

    Takes scikit-learn's keyword arguments (``beta``, ``labels``, ``pos_label``, ``average``,
    ``warn_for``, ``sample_weight``, ``zero_division``). ``support`` counts all ranks' rows.
    """
    t, p, w = _cells(y_true, y_pred, kwargs.pop("sample_weight", None))
    return _sk.precision_recall_fscore_support(t, p, sample_weight=w, **kwargs)


@host_arguments
@collective_function
def precision_score(y_true, y_pred, **kwargs):
    """Collective: scikit-learn's ``precision_score`` on all ranks' rows."""
    t, p, w = _cells(y_true, y_pred, kwargs.pop("sample_weight", None))
    return _sk.precision_score(t, p, sample_weight=w, **kwargs)


@host_arguments
@collective_function
def recall_score(y_true, y_pred, **kwargs):
    """Collective: scikit-learn's ``recall_score`` on all ranks' rows."""
    t, p, w = _cells(y_true, y_pred, kwargs.pop("sample_weight", None))
    return _sk.recall_score(t, p, sample_weight=w, **kwargs)


@host_arguments
@collective_function
def f1_score(y_true, y_pred, **kwargs):
    """Collective: scikit-learn's ``f1_score`` on all ranks' rows."""
    t, p, w = _cells(y_true, y_pred, kwargs.pop("sample_weight", None))
    return _sk.f1_score(t, p, sample_weight=w, **kwargs)


@host_arguments
@collective_function
def log_loss(y_true, y_pred, *, normalize=True, sample_weight=None, labels=None):
    """Collective: cross-entropy over all ranks' rows.

    Each rank computes scikit-learn's per-row losses with the global label set, sums them
    (weighted), and the sums are reduced; the result equals scikit-learn's on the gathered
    arrays up to the order of summation (~1e-15 relative).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
    y_pred : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted probabilities, columns in the order of the sorted global labels.
    normalize : bool, default=True
    sample_weight : array-like of shape (n_samples,), default=None
    labels : array-like, default=None
        The labels; None: the union of ``y_true`` over all ranks.
    """
    comm = get_comm()

    def check():
        yt = _column(y_true, "y_true")
        yp = check_array(y_pred, ensure_2d=False, ensure_min_samples=0, input_name="y_pred")
        check_consistent_length(yt, yp)
        sw = None if sample_weight is None else check_array(
            sample_weight, ensure_2d=False, ensure_min_samples=0, input_name="sample_weight")
        return yt, yp, sw

    yt, yp, sw = comm.agree(check)
    all_labels = np.asarray(labels) if labels is not None else global_labels(comm, yt)

    def local_loss():
        if len(yt) == 0:
            return 0.0, 0.0
        w = np.ones(len(yt)) if sw is None else np.asarray(sw, np.float64)
        loss = _sk.log_loss(yt, yp, normalize=False, sample_weight=w, labels=all_labels)
        return float(loss), float(w.sum())

    loss, weight = comm.agree(local_loss)
    totals = comm.sum_identical([loss, weight])
    if totals[1] == 0:
        raise ValueError(f"n_samples=0 should be >= 1 (summed over {comm.size} ranks)")
    return float(totals[0] / totals[1]) if normalize else float(totals[0])
