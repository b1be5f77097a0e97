"""dpnp and dpctl, imported lazily: array detection, queues, host copies of partials."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["dpnp", "as_dpnp", "to_host", "on_device", "float_type", "has_float64"]

#: Top-level modules of the array types this backend serves.
ARRAY_MODULES = ("dpnp", "dpctl")


@lru_cache(maxsize=None)
def dpnp():
    """The ``dpnp`` module, or None where it does not import (then every kernel declines)."""
    try:
        import dpnp as module
    except ImportError:
        return None
    return module


def is_sycl_array(x) -> bool:
    """Whether ``x`` is a dpnp array or a dpctl ``usm_ndarray`` (no import needed to tell)."""
    return x is not None and type(x).__module__.split(".")[0] in ARRAY_MODULES


def as_dpnp(x):
    """A dpnp view of a dpnp or dpctl array (no copy), or None for any other input."""
    if not is_sycl_array(x) or dpnp() is None:
        return None
    np_ = dpnp()
    return x if isinstance(x, np_.ndarray) else np_.asarray(x)


def to_host(a):
    """A NumPy copy of a small device array (a partial's field)."""
    return dpnp().asnumpy(a)


def on_device(a, like, dtype=None):
    """Host data (a model parameter, of the model's size) on the queue of ``like`` (cast on
    the host first: a device without float64 never receives a float64 buffer)."""
    np_ = dpnp()
    if is_sycl_array(a):
        a = as_dpnp(a)
        if a.sycl_queue != like.sycl_queue:
            raise ValueError("arguments are on different SYCL queues; move them to one queue "
                             "(dpnp.asarray(x, sycl_queue=q))")
        return a if dtype is None else a.astype(dtype, copy=False)
    import numpy as np

    host = np.asarray(a) if dtype is None else np.asarray(a, dtype=np.dtype(dtype))
    if host.dtype == np.float64 and not has_float64(like):
        raise ValueError(f"float64 data for a device without float64 ({like.sycl_device.name})")
    return np_.asarray(host, sycl_queue=like.sycl_queue)


def has_float64(X) -> bool:
    """Whether ``X``'s device has float64 (asked in one place: spmdlearn's ``has_float64``)."""
    from spmdlearn._array_api import has_float64 as ask

    return ask(X)


def float_type(X):
    """float64 where the device has it, else float32: the accumulation type of the kernels."""
    np_ = dpnp()
    return np_.float64 if has_float64(X) else np_.float32
