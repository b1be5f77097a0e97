"""spmdlearn's ``cuda`` backend: the kernels of :mod:`spmdlearn.hookspec` on CuPy arrays.

One GPU per rank: :func:`device_for_rank` gives rank ``r`` the device ``r mod n_devices`` (of the
rank's node), unless ``SPMDLEARN_CUDA_DEVICE`` names one. Data stays on the GPU; only partials
(of the model's size) go to the host, for MPI.
"""

from ._device import device_for_rank, is_cuda_array

__all__ = ["device_for_rank", "is_cuda_array"]
