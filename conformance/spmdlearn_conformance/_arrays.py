"""The array types the suite can feed (``--array-type``), and how to compare across them.

The suite draws its data in NumPy, converts the data arguments to the array type under test,
and brings results back to NumPy only to compare values; the array type and dtype of each
result are checked before that.
"""

from __future__ import annotations

import importlib

import numpy as np

#: ``--array-type`` name -> the module that makes such arrays.
ARRAY_TYPES = {"numpy": "numpy", "array_api_strict": "array_api_strict", "dpnp": "dpnp",
               "cupy": "cupy"}

#: Kernel arguments that hold model parameters (NumPy, identical on every rank), not data:
#: they stay NumPy whatever the array type under test.
MODEL_ARGUMENTS = frozenset({
    "coef", "intercept", "location", "precision", "mean", "centers", "shift", "scale",
    "feature", "threshold", "left", "right", "v_coef", "v_intercept", "edges", "X_offset",
})


def array_module(array_type: str):
    """The module of ``array_type``; ImportError (with the reason) when it is not installed."""
    if array_type not in ARRAY_TYPES:
        raise ValueError(f"array_type={array_type!r}; known: {', '.join(ARRAY_TYPES)}")
    return importlib.import_module(ARRAY_TYPES[array_type])


def missing_reason(array_type: str) -> str | None:
    """Why ``array_type`` cannot be fed here (its module does not import), or None."""
    try:
        array_module(array_type)
    except ImportError as exc:
        return f"--array-type {array_type}: module {ARRAY_TYPES[array_type]!r} is not installed ({exc})"
    return None


def use_rank_device(array_type: str, local_rank: int) -> str | None:
    """Make this rank's arrays of ``array_type`` go to its own device, one device per rank
    (``local_rank`` mod the visible devices, as :func:`spmdlearn_cuda.device_for_rank`).

    Only CuPy has a process-wide current device; for other types this does nothing. Returns
    what was chosen (for the report), or None.
    """
    if array_type != "cupy":
        return None
    import cupy

    n = cupy.cuda.runtime.getDeviceCount()
    if n == 0:
        return None
    cupy.cuda.Device(local_rank % n).use()
    return f"GPU {local_rank % n} of {n}"


def to_type(x, array_type: str):
    """``x`` (NumPy, or None) as an array of ``array_type``; None and non-arrays pass through."""
    if array_type == "numpy" or not isinstance(x, np.ndarray):
        return x
    return array_module(array_type).asarray(np.ascontiguousarray(x))


def convert_arguments(kwargs: dict, array_type: str) -> dict:
    """Kernel arguments with their data arrays in ``array_type`` (model parameters stay NumPy)."""
    return {name: value if name in MODEL_ARGUMENTS else to_type(value, array_type)
            for name, value in kwargs.items()}


def type_name(x) -> str:
    """The top-level module of ``x``'s type (``numpy``, ``array_api_strict``, ``cupy``...)."""
    return type(x).__module__.split(".")[0]


def is_array(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, np.generic)


def dtype_name(x) -> str:
    dtype = x.dtype
    name = getattr(dtype, "name", None)
    return name if isinstance(name, str) else str(dtype).rsplit(".", 1)[-1]


def to_numpy(x):
    """A NumPy copy of an array of any supported type (device arrays come to the host)."""
    if x is None or isinstance(x, (np.ndarray, np.generic, int, float, bool)):
        return x
    module = type_name(x)
    if module == "cupy":
        return x.get()
    if module == "dpnp":
        import dpnp

        return dpnp.asnumpy(x)
    return np.asarray(x)


def same_place(result, given) -> str | None:
    """None if the array ``result`` is where the array ``given`` is, else where it is instead.

    dpnp and dpctl arrays: the same SYCL queue (a per-row result on another queue of the same
    device would make the caller's next operation with its input fail); CuPy: the same GPU;
    other types: the same ``array_api_compat.device``. NumPy: always the host.
    """
    kind = type_name(given)
    if kind != type_name(result) or kind == "numpy":
        return None  # the array type is checked on its own
    if kind in ("dpnp", "dpctl"):
        if result.sycl_queue != given.sycl_queue:
            return (f"on SYCL queue {result.sycl_queue} of {result.sycl_device.name}, not the "
                    f"input's {given.sycl_queue} of {given.sycl_device.name}")
        return None
    import array_api_compat

    where, wanted = array_api_compat.device(result), array_api_compat.device(given)
    return None if where == wanted else f"on device {where}, not the input's {wanted}"


def same_kind(reference, result, path="result") -> str | None:
    """None if ``result`` has ``reference``'s structure, array types and dtypes, else what differs.

    Tuples (partials) are compared field by field; arrays must be of the same array type and
    dtype; scalars must be scalars.
    """
    if isinstance(reference, tuple):
        if not isinstance(result, tuple) or len(result) != len(reference):
            return f"{path}: {type(result).__name__}, expected a {type(reference).__name__} " \
                   f"of {len(reference)} fields"
        for i, (a, b) in enumerate(zip(reference, result)):
            problem = same_kind(a, b, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if reference is None or result is None:
        if (reference is None) != (result is None):
            return f"{path}: {'None' if result is None else 'a value'}, expected " \
                   f"{'None' if reference is None else 'a value'}"
        return None
    if is_array(reference):
        if not is_array(result):
            return f"{path}: {type(result).__name__}, expected a {type_name(reference)} array"
        if type_name(result) != type_name(reference):
            return f"{path}: array type {type_name(result)}, expected {type_name(reference)} " \
                   "(the reference's on the same input)"
        if dtype_name(result) != dtype_name(reference):
            return f"{path}: dtype {dtype_name(result)}, expected {dtype_name(reference)} " \
                   "(the reference's on the same input)"
        return None
    if is_array(result) and getattr(result, "ndim", 0) > 0:
        return f"{path}: an array of shape {result.shape}, expected a scalar"
    return None
