"""Scalers fitted on all ranks' rows."""

from ._data import MaxAbsScaler, MinMaxScaler, StandardScaler

__all__ = ["MaxAbsScaler", "MinMaxScaler", "StandardScaler"]
