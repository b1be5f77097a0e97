"""Regression metrics as reductions over all ranks."""

from __future__ import annotations

import warnings

import numpy as np

from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils.validation import check_array, check_consistent_length

from .._array_api import host_arguments
from .._base import collective_function
from ..comm import get_comm
from ..collective import allreduce
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


@host_arguments
@collective_function
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


def _error_sums(y_true, y_pred, sample_weight, power):
    """Collective: per-output weighted sums of ``|error| ** power`` and the total weight."""
    comm = get_comm()
    (yt, yp, sw), summaries = comm.agree(lambda: _check(y_true, y_pred, sample_weight),
                                        summarize=lambda r: (len(r[0]),))
    if sum(s[0] for s in summaries) == 0:
        raise ValueError(f"n_samples=0 should be >= 1 (summed over {comm.size} ranks)")
    yt = np.asarray(yt, np.float64).reshape(len(yt), -1) if len(yt) else \
        np.zeros((0, _n_outputs(np.asarray(yt))))
    yp = np.asarray(yp, np.float64).reshape(yt.shape)
    w = np.ones(len(yt)) if sw is None else np.asarray(sw, np.float64)
    sums = comm.sum_identical(np.concatenate([w @ (np.abs(yt - yp) ** power), [w.sum()]]))
    return sums[:-1] / sums[-1]


def _combine_outputs(errors, multioutput):
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return errors
        if multioutput == "uniform_average":
            return float(np.average(errors))
        raise ValueError(f"multioutput={multioutput!r} should be 'raw_values' or 'uniform_average'")
    return float(np.average(errors, weights=multioutput))


@host_arguments
@collective_function
def mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Collective: mean squared error over all ranks' rows (scikit-learn's value, up to the order
    of summation).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_outputs)
    sample_weight : array-like of shape (n_samples,), default=None
    multioutput : {"raw_values", "uniform_average"} or array-like, default="uniform_average"
    """
    return _combine_outputs(_error_sums(y_true, y_pred, sample_weight, 2), multioutput)


@host_arguments
@collective_function
def mean_absolute_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Collective: mean absolute error over all ranks' rows (scikit-learn's value, up to the
    order of summation)."""
    return _combine_outputs(_error_sums(y_true, y_pred, sample_weight, 1), multioutput)


@collective_function
def root_mean_squared_error(y_true, y_pred, *, sample_weight=None, multioutput="uniform_average"):
    """Collective: root mean squared error over all ranks' rows (scikit-learn's value, up to the
    order of summation): the square root of each output's mean squared error, then averaged.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_outputs)
    sample_weight : array-like of shape (n_samples,), default=None
    multioutput : {"raw_values", "uniform_average"} or array-like, default="uniform_average"
    """
    return _combine_outputs(np.sqrt(_error_sums(y_true, y_pred, sample_weight, 2)), multioutput)
