"""Global metrics over sharded predictions: each rank passes its rows, every rank gets the value
scikit-learn returns on the gathered arrays. Every function here is collective."""

from ._classification import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)
from ._ranking import roc_auc_score
from ._regression import (
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
)

__all__ = ["accuracy_score", "balanced_accuracy_score", "confusion_matrix", "f1_score", "log_loss", "mean_absolute_error",
           "mean_squared_error", "precision_recall_fscore_support", "precision_score",
           "r2_score", "recall_score", "roc_auc_score", "root_mean_squared_error"]
