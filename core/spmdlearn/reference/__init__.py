"""The NumPy reference: every kernel and every reduction contract of spmdlearn.

This module is public and stable. Other projects import it as a correctness oracle::

    from spmdlearn.reference import COMOMENTS, comoments_local, simulate

Everything here takes and returns NumPy arrays, never communicates and needs no MPI: importing
it imports neither mpi4py nor :mod:`spmdlearn.comm`. (Running a contract over MPI is
:func:`spmdlearn.collective.allreduce`.) Each
contract (``MOMENTS``, ``COMOMENTS``, ``R2``) is a :class:`~spmdlearn.contract.ReductionContract`
with ``local``, ``combine`` and ``finalize``; :func:`simulate` runs one over a list of shards.
"""

from ..contract import ReductionContract, empty_shard, simulate, tree_fold
from ._covariance import mahalanobis
from ._finite import all_finite
from ._transform import affine_transform
from ._linear import gram_blocks, linear_predict, linear_solve
from ._logistic import logistic_hessp, logistic_loss_grad
from ._pca import (TSQR, MeanRPartial, TSQRPartial, infer_dimension, mean_r_combine, pca_select,
                   pca_spectrum, tsqr_combine, tsqr_local)
from ._forest import (BOOTSTRAP_STREAM, apply_bins, best_split, best_splits, bin_edges,
                      bootstrap_counts,
                      counter_uniform, node_histograms, pad_edges, poisson_counts, tree_apply,
                      tree_histograms, tree_route, forest_histograms)
from ._kmeans import (LLOYD, LloydPartial, assigned_sq_distances, farthest_assigned_rows,
                      farthest_rows, kmeans_assign,
                      kmeans_inertia, kmeans_min_distances, kmeans_plusplus_potentials,
                      kmeans_transform, lloyd_bounded, lloyd_combine, lloyd_local,
                      relocation_rows, sq_distances)
from ._neighbors import (METRICS, block_distances, knn_merge, label_roots, radius_counts,
                         radius_label_union, radius_min_label, radius_neighbors_csr,
                         scipy_metric)
from ._metrics import R2, R2Partial, r2_combine, r2_finalize, r2_local
from ._moments import (
    BASIC_STATISTICS_OPTIONS,
    COLUMN_STATS,
    ColumnStatsPartial,
    column_stats_combine,
    column_stats_local,
    COMOMENTS,
    NAN_COLUMN_STATS,
    NanColumnStatsPartial,
    nan_column_stats_combine,
    nan_column_stats_identity,
    nan_column_stats_local,
    with_missing,
    MOMENTS,
    ComomentsPartial,
    MomentsPartial,
    comoments_combine,
    comoments_local,
    covariance_finalize,
    moments_combine,
    moments_finalize,
    moments_local,
)

#: Every reduction contract, by name.
CONTRACTS = {c.name: c for c in (MOMENTS, COMOMENTS, COLUMN_STATS, NAN_COLUMN_STATS, R2, TSQR,
                                 LLOYD)}

#: Every kernel, by hook name (without the ``spmdlearn_`` prefix): the reference definitions.
KERNELS = {
    "moments_local": moments_local,
    "comoments_local": comoments_local,
    "linear_predict": linear_predict,
    "mahalanobis": mahalanobis,
    "affine_transform": affine_transform,
    "tsqr_local": tsqr_local,
    "kmeans_lloyd_local": lloyd_local,
    "kmeans_lloyd_bounded": lloyd_bounded,
    "kmeans_farthest_assigned_rows": farthest_assigned_rows,
    "kmeans_inertia": kmeans_inertia,
    "kmeans_assign": kmeans_assign,
    "kmeans_transform": kmeans_transform,
    "kmeans_min_distances": kmeans_min_distances,
    "kmeans_plusplus_potentials": kmeans_plusplus_potentials,
    "column_stats_local": column_stats_local,
    "logistic_loss_grad": logistic_loss_grad,
    "logistic_hessp": logistic_hessp,
    "knn_merge": knn_merge,
    "radius_counts": radius_counts,
    "radius_min_label": radius_min_label,
    "radius_neighbors_csr": radius_neighbors_csr,
    "radius_label_union": radius_label_union,
    "tree_histograms": tree_histograms,
    "tree_route": tree_route,
    "forest_histograms": forest_histograms,
    "best_splits": best_splits,
    "apply_bins": apply_bins,
    "bootstrap_counts": bootstrap_counts,
    "tree_apply": tree_apply,
    "all_finite": all_finite,
}

__all__ = [
    "ReductionContract", "simulate", "tree_fold", "empty_shard", "CONTRACTS", "KERNELS",
    "MomentsPartial", "moments_local", "moments_combine", "moments_finalize", "MOMENTS",
    "BASIC_STATISTICS_OPTIONS",
    "ComomentsPartial", "comoments_local", "comoments_combine", "covariance_finalize", "COMOMENTS",
    "linear_solve", "linear_predict", "gram_blocks", "mahalanobis", "affine_transform",
    "R2Partial", "r2_local", "r2_combine", "r2_finalize", "R2",
    "TSQRPartial", "tsqr_local", "tsqr_combine", "TSQR", "MeanRPartial", "mean_r_combine",
    "pca_spectrum", "pca_select",
    "infer_dimension",
    "LloydPartial", "lloyd_local", "lloyd_bounded", "lloyd_combine", "LLOYD", "kmeans_inertia", "sq_distances",
    "kmeans_assign", "kmeans_transform", "kmeans_min_distances", "kmeans_plusplus_potentials",
    "farthest_rows", "farthest_assigned_rows", "assigned_sq_distances", "relocation_rows", "METRICS", "scipy_metric", "block_distances",
    "knn_merge", "radius_counts", "radius_min_label", "radius_neighbors_csr", "radius_label_union",
    "label_roots",
    "ColumnStatsPartial", "column_stats_local", "column_stats_combine", "COLUMN_STATS",
    "NanColumnStatsPartial", "nan_column_stats_local", "nan_column_stats_combine",
    "nan_column_stats_identity", "with_missing", "NAN_COLUMN_STATS",
    "logistic_loss_grad", "logistic_hessp",
    "apply_bins", "best_split", "bin_edges", "counter_uniform", "node_histograms",
    "poisson_counts", "tree_apply", "tree_histograms", "best_splits", "tree_route", "bootstrap_counts",
    "forest_histograms",
    "pad_edges", "BOOTSTRAP_STREAM", "all_finite",
]
