"""Distributed linear models."""

from ._incremental import IncrementalLinearRegression
from ._linear import LinearRegression, Ridge
from ._logistic import LogisticRegression

__all__ = ["IncrementalLinearRegression", "LinearRegression", "LogisticRegression", "Ridge"]
