"""CuPy, imported lazily: array detection, the rank's device, host staging of partials."""

from __future__ import annotations

import os
from functools import lru_cache

__all__ = ["is_cuda_array", "cupy", "as_cupy", "to_host", "device_for_rank", "local_rank"]

#: Environment variables through which common launchers give a process its rank on its node.
_LOCAL_RANK_VARS = ("SPMDLEARN_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                    "PMI_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")


def is_cuda_array(x) -> bool:
    """Whether ``x`` is a GPU array this backend serves (``__cuda_array_interface__``)."""
    return x is not None and hasattr(x, "__cuda_array_interface__")


@lru_cache(maxsize=None)
def cupy():
    """The ``cupy`` module, or None where it does not import (then every kernel declines)."""
    try:
        import cupy as cp
    except ImportError:
        return None
    return cp


def as_cupy(x):
    """A CuPy view of a ``__cuda_array_interface__`` array (no copy), or None for other input."""
    cp = cupy()
    if cp is None or x is None or not hasattr(x, "__cuda_array_interface__"):
        return None
    return x if isinstance(x, cp.ndarray) else cp.asarray(x)


def to_host(a, pinned: bool = False):
    """A NumPy copy of a device array (a partial's field).

    ``pinned``: copy into page-locked host memory from CuPy's pinned memory pool, for a large
    partial (a level's histograms): a copy from the device to pageable memory is staged through
    a driver buffer at a fraction of the bandwidth. The returned array holds the pinned block
    until it is freed.
    """
    cp = cupy()
    if not pinned or a.size == 0:
        return cp.asnumpy(a)
    import numpy as np

    a = cp.ascontiguousarray(a)
    out = np.frombuffer(cp.cuda.alloc_pinned_memory(a.nbytes), a.dtype, a.size).reshape(a.shape)
    a.get(out=out)
    return out


def local_rank() -> int:
    """This process's rank on its node, from the launcher's environment (0 if none is set)."""
    for name in _LOCAL_RANK_VARS:
        value = os.environ.get(name)
        if value not in (None, ""):
            return int(value)
    return 0


def device_for_rank(rank: int | None = None) -> int:
    """The CUDA device this rank should use: ``SPMDLEARN_CUDA_DEVICE`` if set, else
    ``rank mod n_devices`` with ``rank`` this process's rank on its node.

    Parameters
    ----------
    rank : int, default=None
        The node-local rank; read from the launcher's environment if None.

    Returns
    -------
    device : int
        An index into the visible devices (``CUDA_VISIBLE_DEVICES`` applies first).

    Raises
    ------
    RuntimeError
        If CuPy does not import or no device is visible.
    """
    cp = cupy()
    if cp is None:
        raise RuntimeError("the cuda backend needs CuPy (pip install cupy-cuda12x or cupy-cuda13x)")
    n = cp.cuda.runtime.getDeviceCount()
    if n == 0:
        raise RuntimeError("no CUDA device is visible")
    override = os.environ.get("SPMDLEARN_CUDA_DEVICE", "")
    if override:
        device = int(override)
        if not 0 <= device < n:
            raise RuntimeError(f"SPMDLEARN_CUDA_DEVICE={device} but {n} device(s) are visible")
        return device
    return (local_rank() if rank is None else rank) % n
