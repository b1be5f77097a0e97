"""Distributed linear models."""

from ._incremental import IncrementalLinearRegression
from ._linear import LinearRegression, Ridge

__all__ = ["IncrementalLinearRegression", "LinearRegression", "Ridge"]
