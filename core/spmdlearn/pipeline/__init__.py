"""Pipelines that refuse scikit-learn steps which would fit on one rank's rows only."""

from ._pipeline import LocalStatisticsError, Pipeline, make_pipeline

__all__ = ["Pipeline", "make_pipeline", "LocalStatisticsError"]
