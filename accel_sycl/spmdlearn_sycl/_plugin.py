"""Entry point of the ``sycl`` backend (group ``spmdlearn.backends``).

It claims dpnp and dpctl (usm_ndarray) arrays. No kernel is implemented yet. Its dependencies
(dpctl, dpnp) are imported lazily; when they are missing the backend reports itself unavailable
and claims nothing.
"""

from spmdlearn.hookspec import hookimpl

#: Top-level modules of the array types this backend serves.
_ARRAY_MODULES = ("dpnp", "dpctl")


@hookimpl
def spmdlearn_backend_info():
    try:
        import dpctl
    except ImportError:
        return {"name": "sycl", "available": False, "devices": [],
                "note": "dpctl/dpnp not installed (pip install 'spmdlearn[sycl]')"}
    try:
        devices = [f"{d.backend.name}:{d.device_type.name} {d.name}" for d in dpctl.get_devices()]
    except Exception as exc:  # noqa: BLE001 - a broken SYCL runtime is reported, not fatal
        return {"name": "sycl", "available": False, "devices": [], "note": f"dpctl failed: {exc}"}
    return {"name": "sycl", "available": bool(devices), "devices": devices,
            "note": "no kernels yet: every kernel falls back to the reference"}


@hookimpl
def spmdlearn_claims(X):
    # An array of dpnp or dpctl exists only if that module imported: no import needed here.
    return type(X).__module__.split(".")[0] in _ARRAY_MODULES
