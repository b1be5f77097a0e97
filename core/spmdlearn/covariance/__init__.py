"""Distributed covariance estimation."""

from ._empirical_covariance import EmpiricalCovariance

__all__ = ["EmpiricalCovariance"]
