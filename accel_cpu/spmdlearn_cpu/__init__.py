"""spmdlearn_cpu: CPU kernels for spmdlearn, registered as the ``cpu`` backend.

Kernels serve NumPy input of float32 and float64 (float32 stays float32; accumulations are
float64): dense algebra as blocked BLAS calls over row blocks that stay in cache, distances as
GEMMs fused with the reduction that consumes them, and numba loops (``parallel=True``,
``cache=True``, no fastmath) for moments, assignments, histograms and tree routing. Each rank
runs its kernels on its share of the node's cores (:mod:`spmdlearn_cpu._threads`). No kernel
makes a working copy larger than a block of rows.
"""
