"""Backend plugins: discovery, selection and kernel dispatch.

Backends come from the entry-point group ``spmdlearn.backends`` only; nothing is imported from
a path named in the environment. The reference (NumPy) is registered by spmdlearn itself and
serves every kernel that the selected backend declines.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import pluggy

from . import hookspec
from ._config import get_config

__all__ = ["plugin_manager", "installed_backends", "resolve_backend", "call_kernel", "backend_infos"]

ENTRY_POINT_GROUP = "spmdlearn.backends"
REFERENCE = "reference"

logger = logging.getLogger("spmdlearn")
_pm = None
_pm_lock = threading.Lock()


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built on first use)."""
    global _pm
    with _pm_lock:
        if _pm is None:
            from .reference import _plugin as reference_plugin

            pm = pluggy.PluginManager(hookspec.PROJECT)
            pm.add_hookspecs(hookspec)
            pm.register(reference_plugin, name=REFERENCE)
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            pm.check_pending()
            _pm = pm
        return _pm


def installed_backends() -> list[str]:
    """Names of the installed backends, the reference last."""
    names = [name for name, _ in plugin_manager().list_name_plugin() if name != REFERENCE]
    return sorted(names) + [REFERENCE]


def backend_infos() -> list[dict]:
    """Every backend's self-description (``spmdlearn_backend_info``), with its kernels."""
    pm = plugin_manager()
    infos = []
    for name in installed_backends():
        plugin = pm.get_plugin(name)
        try:
            info = dict(plugin.spmdlearn_backend_info())
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal here
            info = {"available": False, "devices": [], "note": f"info failed: {exc!r}"}
        info["name"] = name
        info["kernels"] = sorted(
            hc.name[len("spmdlearn_"):] for hc in pm.get_hookcallers(plugin)
            if hc.name != "spmdlearn_backend_info"
        )
        infos.append(info)
    return infos


def _array_family(X) -> str:
    module = type(X).__module__.split(".")[0]
    if module in ("dpnp", "dpctl"):
        return "sycl"
    return "numpy"


def requested_backend() -> str:
    """The backend name asked for: ``config_context(backend=...)``, else ``SPMDLEARN_BACKEND``."""
    name = get_config()["backend"]
    if name is None:
        name = os.environ.get("SPMDLEARN_BACKEND", "") or "auto"
    return name


def resolve_backend(X=None) -> str:
    """The backend that serves kernels on ``X`` now.

    ``auto`` picks by the array type: dpnp/usm arrays to ``sycl``, NumPy to ``cpu`` when installed,
    else ``reference``. Raises ValueError for a name that is not installed, listing those that are.
    """
    name = requested_backend()
    installed = installed_backends()
    if name == "auto":
        if _array_family(X) == "sycl":
            if "sycl" not in installed:
                raise ValueError("a dpnp/dpctl array was passed but the 'sycl' backend is not "
                                 f"installed (installed: {', '.join(installed)})")
            return "sycl"
        return "cpu" if "cpu" in installed else REFERENCE
    if name not in installed:
        raise ValueError(f"SPMDLEARN_BACKEND/backend={name!r} is not an installed backend; "
                         f"installed: {', '.join(['auto'] + installed)}")
    return name


def _verbose() -> bool:
    return os.environ.get("SPMDLEARN_VERBOSE", "") not in ("", "0")


def _log(message: str) -> None:
    if not _verbose():
        return
    from .comm import MPI

    if MPI is not None and MPI.COMM_WORLD.Get_rank() != 0:
        return
    print(f"[spmdlearn] {message}", file=sys.stderr, flush=True)


def call_kernel(kernel: str, backend: str | None = None, **kwargs):
    """Run kernel ``spmdlearn_<kernel>`` on the selected backend, falling back to the reference.

    Parameters
    ----------
    kernel : str
        Hook name without the ``spmdlearn_`` prefix, e.g. ``"comoments_local"``.
    backend : str, default=None
        A name from :func:`resolve_backend`; resolved from the first argument if None.
    **kwargs
        The hook's arguments; each implementation receives those it declares.

    Every decline is logged (``SPMDLEARN_VERBOSE=1``, rank 0), with the backend that finally ran.
    """
    pm = plugin_manager()
    if backend is None:
        backend = resolve_backend(next(iter(kwargs.values()), None))
    impls = {impl.plugin_name: impl for impl in getattr(pm.hook, f"spmdlearn_{kernel}").get_hookimpls()}
    order = [backend, REFERENCE] if backend != REFERENCE else [REFERENCE]
    for name in order:
        impl = impls.get(name)
        if impl is None:
            _log(f"{kernel}: backend {name!r} does not implement it; falling back")
            continue
        result = impl.function(**{arg: kwargs[arg] for arg in impl.argnames})
        if result is None:
            _log(f"{kernel}: backend {name!r} declined; falling back")
            continue
        _log(f"{kernel}: ran on backend {name!r}")
        return result
    raise RuntimeError(f"no backend computed kernel {kernel!r}: the reference must never decline")
