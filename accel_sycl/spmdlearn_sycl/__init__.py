"""spmdlearn_sycl: SYCL kernels on dpnp/dpctl arrays, registered as the ``sycl`` backend.

This release registers the backend and implements no kernel yet. dpnp and dpctl are imported
lazily, only to describe the devices.
"""
