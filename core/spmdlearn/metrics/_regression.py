"""Regression metrics as reductions over all ranks."""

from __future__ import annotations

import warnings

from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils.validation import check_array, check_consistent_length

from ..comm import get_comm
from ..contract import allreduce
from ..reference._metrics import R2, r2_finalize


def _n_outputs(y):
    return 1 if y.ndim == 1 else y.shape[1]


def _check(y_true, y_pred, sample_weight):
    y_true = check_array(y_true, ensure_2d=False, ensure_min_samples=0, dtype="numeric",
                         input_name="y_true")
    y_pred = check_array(y_pred, ensure_2d=False, ensure_min_samples=0, dtype="numeric",
                         input_name="y_pred")
    check_consistent_length(y_true, y_pred)
    if y_true.ndim > 2 or y_pred.ndim > 2 or _n_outputs(y_true) != _n_outputs(y_pred):
        raise ValueError(f"y_true and y_pred have different number of output "
                         f"({y_true.shape} != {y_pred.shape})")
    if sample_weight is not None:
        sample_weight = check_array(sample_weight, ensure_2d=False, ensure_min_samples=0,
                                    input_name="sample_weight")
        check_consistent_length(y_true, sample_weight)
    return y_true, y_pred, sample_weight


def r2_score(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Collective: R^2 over all ranks' rows, as scikit-learn's ``r2_score`` on the gathered arrays.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_outputs)
        This rank's rows (may be empty).
    sample_weight : array-like of shape (n_samples,), default=None
    multioutput : {"raw_values", "uniform_average", "variance_weighted"} or array-like, \
default="uniform_average"

    Returns
    -------
    score : float or ndarray
        Identical on every rank. NaN-free: a constant target scores 1 when predicted exactly
        and 0 otherwise (scikit-learn's ``force_finite=True``).

    Notes
    -----
    **Distributed semantics.** Collective; one reduction of the targets' centered moments and
    the residual sums (:data:`spmdlearn.reference.R2`). With fewer than two rows in total it
    warns and returns NaN, as scikit-learn does.
    """
    comm = get_comm()

    def check():
        return _check(y_true, y_pred, sample_weight)

    (yt, yp, sw), summaries = comm.agree(check, summarize=lambda r: (len(r[0]),))
    total = sum(s[0] for s in summaries)
    if total < 2:
        warnings.warn(f"R^2 score is not well-defined with less than two samples "
                      f"(n_samples={total} summed over {comm.size} ranks).",
                      UndefinedMetricWarning, stacklevel=2)
        return float("nan")
    partial = allreduce(R2, yt, yp, sw, comm=comm)
    return r2_finalize(partial, multioutput)
