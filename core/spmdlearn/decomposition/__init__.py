"""Distributed matrix decompositions."""

from ._incremental import IncrementalPCA
from ._pca import PCA

__all__ = ["IncrementalPCA", "PCA"]
