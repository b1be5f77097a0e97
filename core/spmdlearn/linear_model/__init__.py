"""Distributed linear models."""

from ._linear import LinearRegression, Ridge

__all__ = ["LinearRegression", "Ridge"]
