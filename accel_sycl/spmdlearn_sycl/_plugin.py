"""Entry point of the ``sycl`` backend (group ``spmdlearn.backends``).

No kernel is implemented yet. Its dependencies (dpctl, dpnp) are imported lazily; when they are
missing the backend reports itself unavailable.
"""

from spmdlearn.hookspec import hookimpl


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
