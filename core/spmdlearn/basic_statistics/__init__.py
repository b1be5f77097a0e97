"""Distributed per-column statistics."""

from ._basic_statistics import BasicStatistics
from ._incremental import IncrementalBasicStatistics

__all__ = ["BasicStatistics", "IncrementalBasicStatistics"]
