"""Entry point of the ``cpu`` backend (group ``spmdlearn.backends``).

It claims NumPy arrays. No kernel is implemented yet, so none is registered: pluggy then
dispatches every kernel to the reference, and each call counts as a fallback (logged with
``SPMDLEARN_VERBOSE=1``).
"""

from spmdlearn.hookspec import hookimpl


@hookimpl
def spmdlearn_backend_info():
    import os

    return {"name": "cpu", "available": True,
            "devices": [f"host ({os.cpu_count()} cores)"],
            "note": "no kernels yet: every kernel falls back to the reference"}


@hookimpl
def spmdlearn_claims(X):
    import numpy as np

    return isinstance(X, np.ndarray)
