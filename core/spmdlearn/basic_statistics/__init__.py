"""Distributed per-column statistics."""

from ._basic_statistics import BasicStatistics

__all__ = ["BasicStatistics"]
