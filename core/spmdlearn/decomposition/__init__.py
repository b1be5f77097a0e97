"""Distributed matrix decompositions."""

from ._pca import PCA

__all__ = ["PCA"]
