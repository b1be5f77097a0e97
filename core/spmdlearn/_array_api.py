"""The input's array type along the data path: namespaces, host views, results in kind.

spmdlearn keeps each input in its own array type: NumPy stays NumPy, and any other array of the
array API standard (array-api-strict, CuPy, dpnp, PyTorch, ...; recognised by array-api-compat)
stays in its namespace and on its device. Between kernels, estimators compute with
:func:`get_namespace`; per-row results go back to the input's type with :func:`like`.

Where code needs NumPy (the NumPy reference kernels, an algorithm step that no kernel covers
yet), :func:`to_host` takes a host view (DLPack, zero-copy where the array lives in host memory)
or copy. For an array that is not NumPy this is a fallback, never silent: it is counted
(:func:`fallbacks`) and logged with ``SPMDLEARN_VERBOSE=1``.

This module imports neither mpi4py nor :mod:`spmdlearn.comm`.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections import Counter

import numpy as np

__all__ = ["is_foreign_array", "get_namespace", "array_namespace", "device", "numpy_dtype", "to_host", "like",
           "from_model", "in_namespace_of", "csr_rows", "take_rows", "take_labels", "empty_like_rows", "sum_float64",
           "has_float64", "accumulation_dtype", "check_float64_supported",
           "note_fallback", "fallbacks", "reset_fallbacks", "host_kernel", "host_arguments"]

_lock = threading.Lock()
_fallbacks: Counter = Counter()


def is_foreign_array(x) -> bool:
    """True for an array of the array API standard that is not a NumPy array (nor a scalar).

    Lists, pandas objects, NumPy arrays and their subclasses are not foreign: they follow
    scikit-learn's ``check_array`` path.
    """
    if x is None or isinstance(x, (np.ndarray, np.generic, list, tuple, int, float, complex,
                                   str, bytes)):
        return False
    if not hasattr(x, "__array_namespace__") and type(x).__module__.split(".")[0] not in (
            "cupy", "torch", "dpnp", "dpctl", "jax", "sparse", "ndonnx"):
        return False
    import array_api_compat

    return bool(array_api_compat.is_array_api_obj(x))


def get_namespace(*arrays):
    """The array namespace shared by ``arrays`` (None entries and NumPy-likes ignored).

    Returns NumPy itself when no argument is a foreign array, so NumPy code paths stay plain
    NumPy; otherwise array-api-compat's namespace of the foreign arrays.
    """
    foreign = [a for a in arrays if is_foreign_array(a)]
    if not foreign:
        return np
    import array_api_compat

    return array_api_compat.array_namespace(*foreign)


def array_namespace(*arrays):
    """The array API namespace of ``arrays``, NumPy included (None entries ignored).

    Unlike :func:`get_namespace`, NumPy arrays get array-api-compat's wrapper of NumPy, which
    has the standard's functions (``astype``, ``concat``, ``cumulative_sum``, ``device=``
    keywords) on every supported NumPy version: for code written once for every array type.
    """
    import array_api_compat

    return array_api_compat.array_namespace(*[a for a in arrays if a is not None])


def device(x):
    """The device of ``x`` (``"cpu"`` for NumPy)."""
    if not is_foreign_array(x):
        return "cpu"
    import array_api_compat

    return array_api_compat.device(x)


def numpy_dtype(dtype) -> np.dtype:
    """The NumPy dtype of the same name as an array-API dtype (``float32``, ``int64``, ...)."""
    if isinstance(dtype, np.dtype):
        return dtype
    try:
        return np.dtype(dtype)
    except TypeError:
        pass
    name = getattr(dtype, "name", None) or str(dtype)
    return np.dtype(name.rsplit(".", 1)[-1])


def _verbose() -> bool:
    return os.environ.get("SPMDLEARN_VERBOSE", "") not in ("", "0")


def _device_has_float64(x) -> bool:
    """Ask ``x``'s device whether it computes in float64: a SYCL device's ``fp64`` aspect, else
    the namespace's inspection API (``__array_namespace_info__().dtypes(device=...)``)."""
    sycl_device = getattr(x, "sycl_device", None)
    if sycl_device is not None:
        return bool(sycl_device.has_aspect_fp64)
    try:
        info = get_namespace(x).__array_namespace_info__()
        return "float64" in info.dtypes(device=device(x), kind="real floating")
    except Exception:  # noqa: BLE001 - a namespace without the inspection API: assume float64
        return True


def has_float64(x) -> bool:
    """Whether the device of ``x`` has float64 (NumPy and None: True). Local, not collective.

    The one place that asks a device; the estimators and the device backends ask here.
    """
    if x is None or not is_foreign_array(x):
        return True
    return _device_has_float64(x)


def accumulation_dtype(x):
    """The floating dtype, in ``x``'s namespace, for sums and weights on ``x``'s device:
    float64, or float32 on a device without float64 (whose input is float32:
    :func:`check_float64_supported`)."""
    xp = get_namespace(x)
    return xp.float64 if has_float64(x) else xp.float32


def check_float64_supported(x, name: str = "X", becomes_float64: bool = False) -> None:
    """Raise a ValueError if ``x`` is float64 (or would become float64, ``becomes_float64``:
    integers converted as scikit-learn does) on a device without float64. Local: the caller's
    agreement raises it on every rank, naming the ranks. spmdlearn never downgrades float64
    to float32 on its own."""
    if not is_foreign_array(x) or has_float64(x):
        return
    dtype = numpy_dtype(x.dtype)
    if dtype == np.float64 or becomes_float64:
        what = "is float64" if dtype == np.float64 else f"is {dtype}, which becomes float64,"
        raise ValueError(
            f"{name} {what} on a device without float64 ({device(x)}): spmdlearn does not "
            f"convert float64 to float32 on its own; pass float32 data, e.g. "
            f"{name}.astype('float32')")


def _type_name(x) -> str:
    return f"{type(x).__module__.split('.')[0]}.{type(x).__name__}"


def note_fallback(what: str, x) -> None:
    """Count (and, with ``SPMDLEARN_VERBOSE=1``, log) that ``what`` ran on a host copy of ``x``."""
    key = (what, _type_name(x))
    with _lock:
        _fallbacks[key] += 1
    if _verbose():
        from ._backends import _log  # rank 0 logs, as for every dispatch decision

        _log(f"{what}: {key[1]} input served on the host (NumPy); fallback")


def fallbacks() -> dict:
    """``{(what, array type): count}``: each time a foreign array was taken to the host."""
    with _lock:
        return dict(_fallbacks)


def reset_fallbacks() -> None:
    """Forget the counted fallbacks (tests and conformance reports count from zero)."""
    with _lock:
        _fallbacks.clear()


#: From this size on, :func:`to_host` asks the backends for the copy (``spmdlearn_host_copy``).
HOST_COPY_MIN_BYTES = 1 << 20


def to_host(x, what: str | None = None):
    """A NumPy view (zero-copy where possible) or copy of ``x``; NumPy and None pass through.

    A foreign array of at least :data:`HOST_COPY_MIN_BYTES` is copied by its backend where one
    offers to (``spmdlearn_host_copy``: CUDA copies into page-locked memory), else by DLPack.

    Parameters
    ----------
    x : array or None
    what : str, default=None
        What needs the host array (a kernel, an algorithm step); a foreign ``x`` is counted and
        logged as a fallback under this name. None: not counted (the caller counted it).
    """
    if not is_foreign_array(x):
        return x
    if what is not None:
        note_fallback(what, x)
    if getattr(x, "nbytes", 0) >= HOST_COPY_MIN_BYTES:
        from ._backends import host_copy

        copy = host_copy(x)
        if copy is not None:
            return copy
    try:
        return np.from_dlpack(x)
    except (BufferError, RuntimeError, TypeError, ValueError):
        pass
    try:  # a device array: DLPack can copy it to the host (NumPy >= 2.1, array API 2023.12)
        return np.from_dlpack(x, device="cpu", copy=True)
    except (BufferError, RuntimeError, TypeError, ValueError, AttributeError):
        pass
    get = getattr(x, "get", None)  # CuPy's explicit device-to-host copy
    return get() if callable(get) else np.asarray(x)


def like(values, ref):
    """``values`` as an array of ``ref``'s type and device (unchanged when ``ref`` is not foreign).

    Used for per-row results computed on the host: NumPy values become ``ref``'s namespace.
    Values already of that namespace pass through. Values NumPy cannot express in ``ref``'s
    namespace (strings, objects: class labels) stay NumPy.
    """
    if not is_foreign_array(ref) or values is None or is_foreign_array(values):
        return values
    values = np.asarray(values)
    if values.dtype.kind not in "biuf":
        return values
    xp = get_namespace(ref)
    return xp.asarray(np.ascontiguousarray(values), device=device(ref))


def from_model(values, ref, dtype=None):
    """A (small) NumPy model array in ``ref``'s namespace and device, for arithmetic with it.

    ``dtype``: the NumPy dtype to cast to first (default: keep ``values``' dtype).
    """
    values = np.asarray(values) if dtype is None else np.asarray(values, dtype=dtype)
    if not is_foreign_array(ref):
        return values
    xp = get_namespace(ref)
    return xp.asarray(np.ascontiguousarray(values), device=device(ref))


def in_namespace_of(x, ref, what: str | None = None):
    """``x`` in ``ref``'s array type and device (unchanged when already there).

    For arrays that meet in one computation but were given in different types (training rows
    of one type, queries of another). A foreign ``x`` taken to the host for a NumPy ``ref`` is a
    counted fallback under ``what``; host values go to ``ref``'s device as a model array does.
    """
    if x is None:
        return None
    if not is_foreign_array(ref):
        return to_host(x, what)
    if is_foreign_array(x) and get_namespace(x) is get_namespace(ref) and \
            device(x) == device(ref):
        return x
    return from_model(to_host(x), ref)


def csr_rows(indptr, n_entries: int, first: int = 0):
    """The row of each entry of a CSR structure, ``first`` added: ``(n_entries,)`` int64, in
    ``indptr``'s namespace (NumPy's ``repeat`` by row lengths, through a binary search, which
    every namespace has with array-valued arguments)."""
    xp = array_namespace(indptr)
    entries = xp.arange(n_entries, dtype=xp.int64, device=device(indptr))
    return xp.astype(xp.searchsorted(indptr, entries, side="right"), xp.int64) + (first - 1)


def take_rows(x, lo: int, hi: int):
    """Rows ``lo:hi`` of ``x``, clipped to its rows (the array API specifies neither NumPy's
    implicit trailing axes nor out-of-bounds slices)."""
    n = int(x.shape[0]) if hasattr(x, "shape") else len(x)
    lo, hi = min(lo, n), min(hi, n)
    return x[lo:hi, ...] if getattr(x, "ndim", 1) > 1 else x[lo:hi]


def host_kernel(rows=()):
    """Decorator for a NumPy reference kernel: serve foreign arrays through a host view.

    Every foreign array argument is taken to the host (counted and logged as a fallback under
    the kernel's name); the kernel runs in NumPy; the outputs named in ``rows`` (``"all"``: the
    whole result; an int: that element of a tuple result) are per-row results and go back to
    the type and device of the first foreign argument. Partials (O(model)) stay NumPy: they
    cross to the host for MPI anyway. NumPy inputs take the plain path unchanged.
    """

    def decorate(func):
        name = func.__name__
        names = tuple(inspect.signature(func).parameters)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            # pluggy's relay passes the hook's arguments positionally, in signature order.
            kwargs.update(zip(names, args))
            ref = next((v for v in kwargs.values() if is_foreign_array(v)), None)
            if ref is None:
                return func(**kwargs)
            note_fallback(name.removeprefix("spmdlearn_"), ref)
            result = func(**{k: to_host(v) for k, v in kwargs.items()})
            if rows == "all":
                if isinstance(result, tuple) and not hasattr(result, "_fields"):
                    return tuple(like(r, ref) for r in result)
                return like(result, ref)
            if rows and isinstance(result, tuple):
                out = list(result)
                for i in rows:
                    if out[i] is not None:  # e.g. Hessian weights not asked for
                        out[i] = like(out[i], ref)
                return type(result)(out) if not hasattr(result, "_fields") else type(result)(*out)
            return result

        return wrapper

    return decorate


def host_arguments(func):
    """Decorator: foreign array arguments of ``func`` reach it as host (NumPy) arrays.

    For functions whose results are O(model) (metrics: a number, a confusion matrix) and whose
    per-row work is not a kernel yet: each foreign argument is a counted, logged fallback.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        name = func.__name__
        args = [to_host(a, name) for a in args]
        kwargs = {k: to_host(v, name) for k, v in kwargs.items()}
        return func(*args, **kwargs)

    return wrapper


def sum_float64(x) -> float:
    """The sum of ``x``'s elements, accumulated in float64, as a Python float (in ``x``'s
    namespace: only the number crosses to the host)."""
    xp = get_namespace(x)
    if xp is np:
        return float(np.sum(x, dtype=np.float64))
    if not has_float64(x):  # the device cannot: one float64 sum of a host copy, as for NumPy
        note_fallback("sum in float64 (device without float64)", x)
        return float(np.sum(to_host(x), dtype=np.float64))
    return float(xp.sum(xp.astype(x, xp.float64)))


def take_labels(classes, index):
    """``classes[index]`` in ``index``'s array type: the labels of predicted class indices.

    Numeric ``classes`` follow ``index`` to its namespace and device; string or object labels
    have no array-API dtype, so those stay a NumPy array.
    """
    if not is_foreign_array(index):
        return classes[index]
    classes = np.asarray(classes)
    if classes.dtype.kind not in "biuf":
        return classes[to_host(index)]
    xp = get_namespace(index)
    return xp.take(from_model(classes, index), xp.astype(index, xp.int64), axis=0)


def empty_like_rows(x, shape, dtype=None):
    """An uninitialised array of ``shape`` in ``x``'s type and device, of ``x``'s dtype or of
    ``dtype`` (a NumPy dtype, taken by name in ``x``'s namespace)."""
    if not is_foreign_array(x):
        return np.empty(shape, dtype=x.dtype if dtype is None else dtype)
    xp = get_namespace(x)
    dtype = x.dtype if dtype is None else getattr(xp, np.dtype(dtype).name)
    return xp.empty(shape, dtype=dtype, device=device(x))
