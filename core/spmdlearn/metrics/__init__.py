"""Global metrics over sharded predictions: each rank passes its rows, every rank gets the value
scikit-learn returns on the gathered arrays."""

from ._regression import r2_score

__all__ = ["r2_score"]
