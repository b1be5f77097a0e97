"""Metrics as reductions: the global value from every rank's local predictions."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..contract import ReductionContract
from ._moments import ComomentsPartial, comoments_combine, comoments_local

__all__ = ["R2Partial", "r2_local", "r2_combine", "r2_finalize", "R2"]


class R2Partial(NamedTuple):
    """Sufficient statistics of one shard for the coefficient of determination.

    Reduction contract
    ------------------
    Local
        :func:`r2_local`: the targets' weighted moments and the weighted residual sum of squares.
    Combine
        :func:`r2_combine`: Chan et al.'s merge for the moments, a sum for the residuals.
    Finalize
        :func:`r2_finalize`: ``1 - SS_res / SS_tot`` per output, scikit-learn's rules for constant
        targets (``force_finite=True``) and its ``multioutput`` averaging.
    Identity
        Zero weight, zero moments, zero residuals.
    """

    moments: ComomentsPartial  #: weighted moments of y_true (its diagonal gives SS_tot)
    residual: np.ndarray  #: (n_outputs,) weighted sum of squared residuals


def r2_local(y_true, y_pred, sample_weight=None) -> R2Partial:
    """Partial of one shard. ``y_true`` and ``y_pred`` have shape (n,) or (n, n_outputs)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = y_true[:, None] if y_true.ndim == 1 else y_true
    y_pred = y_pred[:, None] if y_pred.ndim == 1 else y_pred
    w = np.ones(len(y_true)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    residual = w @ (y_true - y_pred) ** 2
    return R2Partial(comoments_local(y_true, None, w), residual)


def r2_combine(a: R2Partial, b: R2Partial) -> R2Partial:
    return R2Partial(comoments_combine(a.moments, b.moments), a.residual + b.residual)


def r2_finalize(p: R2Partial, multioutput="uniform_average"):
    """The R^2 score as scikit-learn's ``r2_score(..., force_finite=True)`` computes it."""
    ss_tot = np.diag(p.moments.comoment)
    ss_res = p.residual
    scores = np.ones_like(ss_tot)
    nonzero_tot = ss_tot != 0
    valid = nonzero_tot & (ss_res != 0)
    scores[valid] = 1 - ss_res[valid] / ss_tot[valid]
    # A constant target predicted imperfectly scores 0 (scikit-learn's force_finite).
    scores[(ss_res != 0) & ~nonzero_tot] = 0.0
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return scores
        if multioutput == "uniform_average":
            return float(np.mean(scores))
        if multioutput == "variance_weighted":
            if not np.any(nonzero_tot):
                return 1.0 if not np.any(ss_res) else 0.0
            return float(np.average(scores, weights=ss_tot))
        raise ValueError(f"multioutput={multioutput!r} is not one of 'raw_values', "
                         "'uniform_average', 'variance_weighted'")
    return float(np.average(scores, weights=multioutput))


R2 = ReductionContract("r2", r2_local, r2_combine, r2_finalize)
