"""Entry point of the ``cpu`` backend (group ``spmdlearn.backends``).

No kernel is implemented yet, so none is registered: pluggy then dispatches every kernel to
the reference, and ``SPMDLEARN_VERBOSE=1`` logs each fallback.
"""

from spmdlearn.hookspec import hookimpl


@hookimpl
def spmdlearn_backend_info():
    import os

    return {"name": "cpu", "available": True,
            "devices": [f"host ({os.cpu_count()} cores)"],
            "note": "no kernels yet: every kernel falls back to the reference"}
