"""A subtly wrong foreign backend: float32 in, float64 out.

Its values are right (computed in float64, so closer to the exact result than the reference's
float32), but its output has another dtype than its input, which the estimators then hand on.
"""

import numpy as np

from spmdlearn.hookspec import hookimpl


@hookimpl
def spmdlearn_backend_info():
    return {"name": "widedtype", "available": True, "devices": ["host"], "note": "test plugin"}


@hookimpl
def spmdlearn_linear_predict(X, coef, intercept):
    if type(X) is not np.ndarray:
        return None
    X = np.asarray(X, dtype=np.float64)
    return X @ np.asarray(coef, np.float64).T + np.asarray(intercept, np.float64)
