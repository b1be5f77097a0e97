"""Documented tolerances: how closely each estimator must agree with scikit-learn.

Relative to the largest magnitude of the expected attribute (``atol = rtol * max|expected|``),
so that entries near zero are judged on the attribute's scale.
"""

import numpy as np

#: (estimator, dtype) -> rtol. float32 runs compare float32 output with scikit-learn on the
#: float64 copy of the data.
TOLERANCES = {
    ("BasicStatistics", "float64"): 1e-7,
    ("BasicStatistics", "float32"): 1e-4,
    ("EmpiricalCovariance", "float64"): 1e-7,
    ("EmpiricalCovariance", "float32"): 1e-4,
    ("LinearRegression", "float64"): 1e-7,
    ("LinearRegression", "float32"): 1e-4,
    ("DBSCAN", "float64"): 0.0,  # labels: identical
    ("DBSCAN", "float32"): 0.0,
    ("KMeans", "float64"): 1e-6,
    ("KMeans", "float32"): 1e-4,
    # coef_ within 1e-6 of its scale, n_iter_ identical (tol=1e-10, same solver).
    ("LogisticRegression", "float64"): 1e-6,
    ("LogisticRegression", "float32"): 1e-3,
    ("KNeighborsRegressor", "float64"): 1e-10,
    ("KNeighborsRegressor", "float32"): 1e-4,
    # The reference backend's forest on one rank (classification counts add exactly).
    ("RandomForestClassifier", "float64"): 1e-12,
    ("RandomForestClassifier", "float32"): 1e-12,
    ("PCA", "float64"): 1e-7,
    ("PCA", "float32"): 1e-4,
    ("StandardScaler", "float64"): 1e-7,
    ("StandardScaler", "float32"): 1e-4,
    ("MinMaxScaler", "float64"): 1e-7,
    ("MinMaxScaler", "float32"): 1e-4,
    ("MaxAbsScaler", "float64"): 1e-7,
    ("MaxAbsScaler", "float32"): 1e-4,
    ("Ridge", "float64"): 1e-7,
    ("Ridge", "float32"): 1e-4,
}


def tolerance(estimator: str, dtype) -> float:
    return TOLERANCES[(estimator, np.dtype(dtype).name)]
