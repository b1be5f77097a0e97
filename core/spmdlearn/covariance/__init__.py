"""Distributed covariance estimation."""

from ._empirical_covariance import EmpiricalCovariance
from ._incremental import IncrementalEmpiricalCovariance

__all__ = ["EmpiricalCovariance", "IncrementalEmpiricalCovariance"]
