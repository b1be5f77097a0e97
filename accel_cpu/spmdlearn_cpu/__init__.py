"""spmdlearn_cpu: vectorized CPU kernels for spmdlearn, registered as the ``cpu`` backend.

This release registers the backend and implements no kernel yet: every kernel falls back to
the NumPy reference (logged with ``SPMDLEARN_VERBOSE=1``).
"""
