"""Backend plugins: discovery, selection and kernel dispatch.

Backends come from the entry-point group ``spmdlearn.backends`` only; nothing is imported from
a path named in the environment, and this module names no backend but the reference. Each
backend says which inputs it serves through the ``spmdlearn_claims`` hook; ``auto`` picks the
first available backend that claims the input. The reference (NumPy), registered by spmdlearn
itself, claims NumPy and serves last (``trylast``) every kernel that the selected backend lacks
or declines.

Kernels are called through pluggy's own relay: one subset hook caller per (backend, kernel),
holding the backend's implementation and the reference's, so that ``firstresult`` and
``trylast`` hold. Between the two sits a marker implementation of the dispatcher (also
``trylast``, called just before the reference): it is reached only when the backend lacked the
kernel or declined it, which is how each call is counted (:func:`dispatch_counts`) and logged
(``SPMDLEARN_VERBOSE=1``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import types
from collections import Counter

import numpy as np
import pluggy

from . import hookspec
from ._array_api import is_foreign_array
from ._config import get_config

__all__ = ["plugin_manager", "installed_backends", "available_backends", "resolve_backend",
           "requested_backend", "call_kernel", "backend_infos", "backend_kernels",
           "kernel_argnames", "claims", "dispatch_counts", "unclaimed_counts",
           "reset_dispatch_counts", "host_copy"]

ENTRY_POINT_GROUP = "spmdlearn.backends"
REFERENCE = "reference"
#: Name of the dispatcher's marker plugin (see the module docstring); not a backend.
_MARKER = "spmdlearn-dispatch-fallback"
#: Hooks that are not kernels.
_NOT_KERNELS = ("spmdlearn_backend_info", "spmdlearn_claims", "spmdlearn_host_copy")
#: The three outcomes of a kernel call, counted per (backend, kernel).
OUTCOMES = ("served", "declined", "fallback")

logger = logging.getLogger("spmdlearn")
_pm = None
_pm_lock = threading.Lock()
_reached = threading.local()
_counts_lock = threading.Lock()
_counts: dict = {}
#: Declines and fallbacks of calls whose input the selected backend does not claim.
_unclaimed: Counter = Counter()
_relays: dict = {}
_availability: dict = {}
#: Installed backends that failed validation (a hook unknown to this spmdlearn): name -> why.
_broken: dict = {}


def _marker_plugin():
    """One ``trylast`` implementation of every kernel hook that only notes it was reached."""
    def mark():
        stack = getattr(_reached, "stack", None)
        if stack:
            stack[-1] = True

    plugin = types.ModuleType(_MARKER)
    for name in dir(hookspec):
        if name.startswith("spmdlearn_") and name not in _NOT_KERNELS:
            def impl():
                mark()

            impl.__name__ = name
            setattr(plugin, name, hookspec.hookimpl(trylast=True)(impl))
    return plugin


def host_copy(x):
    """A backend's NumPy copy of the large foreign array ``x`` (``spmdlearn_host_copy``), or
    None where no backend makes one."""
    return plugin_manager().hook.spmdlearn_host_copy(x=x)


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager (built on first use)."""
    global _pm
    with _pm_lock:
        if _pm is None:
            from .reference import _plugin as reference_plugin

            pm = pluggy.PluginManager(hookspec.PROJECT)
            pm.add_hookspecs(hookspec)
            # Among trylast implementations the later registered is called first: the marker,
            # registered first, runs just after the backend's and just before the reference's.
            pm.register(_marker_plugin(), name=_MARKER)
            pm.register(reference_plugin, name=REFERENCE)
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            _check_pending(pm)
            _pm = pm
        return _pm


def _check_pending(pm) -> None:
    """pluggy's validation of every plugin's hooks; a backend that implements a hook this
    spmdlearn does not define (built for another version) is unregistered and reported
    unavailable, saying why, instead of making every backend unusable."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin)
            if name in (REFERENCE, _MARKER, None):
                raise
            pm.unregister(exc.plugin)
            _broken[name] = f"not loaded: {exc}"


def installed_backends() -> list[str]:
    """Names of the installed backends, the reference last."""
    names = [name for name, _ in plugin_manager().list_name_plugin()
             if name not in (REFERENCE, _MARKER)]
    return sorted(set(names) | set(_broken)) + [REFERENCE]


def backend_kernels(name: str) -> list[str]:
    """The kernels (hook names without ``spmdlearn_``) that backend ``name`` implements."""
    pm = plugin_manager()
    plugin = pm.get_plugin(name)
    if name in _broken:
        return []
    if plugin is None:
        raise ValueError(f"{name!r} is not an installed backend")
    return sorted(hc.name[len("spmdlearn_"):] for hc in pm.get_hookcallers(plugin)
                  if hc.name not in _NOT_KERNELS)


def kernel_argnames(kernel: str) -> tuple:
    """The arguments of kernel hook ``spmdlearn_<kernel>``, in its hookspec's order."""
    caller = getattr(plugin_manager().hook, f"spmdlearn_{kernel}", None)
    if caller is None or caller.spec is None:
        raise ValueError(f"{kernel!r} is not a kernel hook of spmdlearn.hookspec")
    return tuple(caller.spec.argnames)


def _relay(name: str, hook: str, keep: tuple):
    """pluggy's hook caller for ``hook`` restricted to the plugins named in ``keep`` (cached,
    rebuilt when the set of implementations changes)."""
    pm = plugin_manager()
    caller = getattr(pm.hook, hook)
    key = tuple(caller.get_hookimpls())
    cached = _relays.get((name, hook))
    if cached is not None and cached[0] == key:
        return cached[1]
    remove = [plugin for plugin_name, plugin in pm.list_name_plugin() if plugin_name not in keep]
    relay = pm.subset_hook_caller(hook, remove)
    _relays[(name, hook)] = (key, relay)
    return relay


def _info(name: str) -> dict:
    if name in _broken:
        return {"available": False, "devices": [], "note": _broken[name]}
    plugin = plugin_manager().get_plugin(name)
    if not any(hc.name == "spmdlearn_backend_info"
               for hc in plugin_manager().get_hookcallers(plugin)):
        return {"available": True, "devices": [], "note": "no backend_info"}
    try:
        return dict(_relay(name, "spmdlearn_backend_info", (name,))()[0])
    except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, not fatal here
        return {"available": False, "devices": [], "note": f"info failed: {exc!r}"}


def _available(name: str) -> tuple[bool, str]:
    """``(available, note)`` of an installed backend, asked once per process."""
    if name not in _availability:
        info = _info(name)
        _availability[name] = (bool(info.get("available", True)), str(info.get("note", "")))
    return _availability[name]


def available_backends() -> list[str]:
    """Installed backends whose dependencies import, the reference last."""
    return [name for name in installed_backends() if _available(name)[0]]


def backend_infos() -> list[dict]:
    """Every backend's self-description (``spmdlearn_backend_info``), with its kernels."""
    infos = []
    for name in installed_backends():
        info = _info(name)
        info["name"] = name
        info["kernels"] = backend_kernels(name)
        infos.append(info)
    return infos


def _claim_order() -> list[str]:
    """Backends implementing ``spmdlearn_claims``: tryfirst, plain, then trylast ones, each
    group by name, so that every rank asks them in the same order."""
    impls = plugin_manager().hook.spmdlearn_claims.get_hookimpls()
    rank = {impl.plugin_name: (0 if impl.tryfirst else 2 if impl.trylast else 1, impl.plugin_name)
            for impl in impls}
    return sorted(rank, key=rank.get)


def claims(name: str, X) -> bool:
    """Whether backend ``name`` claims input ``X`` (its ``spmdlearn_claims`` hook)."""
    if name not in installed_backends():
        raise ValueError(f"{name!r} is not an installed backend")
    if name in _broken:
        return False
    return any(_relay(name, "spmdlearn_claims", (name,))(X=X))


def kernel_block_rows(kernel: str, backend: str | None, X, default: tuple) -> tuple:
    """Rows per call of ``kernel`` on ``X``: what the backend that serves ``X`` declares, else
    ``default`` (the caller's blocks, sized for the host's temporaries).

    A backend module may define ``KERNEL_BLOCK_ROWS = {kernel: (rows, ...)}``: a fused device
    kernel needs no block-sized temporary, and calls of a few hundred rows would leave most of a
    GPU idle. Only a backend that claims ``X`` is asked (a fallback runs on the reference, with
    the caller's blocks).
    """
    name = resolve_backend(X) if backend is None else backend
    if name == REFERENCE or not claims(name, X):
        return default
    declared = getattr(plugin_manager().get_plugin(name), "KERNEL_BLOCK_ROWS", {})
    return tuple(declared.get(kernel, default))


def _type_name(X) -> str:
    return f"{type(X).__module__}.{type(X).__qualname__}"


def requested_backend() -> str:
    """The backend name asked for: ``config_context(backend=...)``, else ``SPMDLEARN_BACKEND``."""
    name = get_config()["backend"]
    if name is None:
        name = os.environ.get("SPMDLEARN_BACKEND", "") or "auto"
    return name


def resolve_backend(X=None) -> str:
    """The backend that serves kernels on ``X`` now.

    ``auto`` picks the first available backend that claims ``X`` (``spmdlearn_claims``; the
    reference, which claims NumPy, is asked last). An input that no backend claims runs on the
    reference, logged with ``SPMDLEARN_VERBOSE=1``.

    Raises
    ------
    ValueError
        For a name that is not installed, or installed but unavailable (its dependencies do not
        import), listing the available backends.
    """
    name = requested_backend()
    if name == "auto":
        for backend in _claim_order():
            # the claim first: it inspects only X's type, where availability may start a
            # device runtime (a backend that claims nothing here is never started)
            if claims(backend, X) and _available(backend)[0]:
                return backend
        _log(f"no installed backend claims {_type_name(X)} input; the reference serves it")
        return REFERENCE
    installed = installed_backends()
    if name not in installed:
        raise ValueError(f"SPMDLEARN_BACKEND/backend={name!r} is not an installed backend; "
                         f"installed: {', '.join(['auto'] + installed)}")
    available, note = _available(name)
    if not available:
        raise ValueError(f"SPMDLEARN_BACKEND/backend={name!r} is installed but unavailable "
                         f"({note}); available: {', '.join(['auto'] + available_backends())}")
    return name


def host_backend(backend: str) -> str:
    """The backend for a step on host (NumPy) arrays of a computation whose rows ``backend``
    serves: ``backend`` itself if it claims NumPy, else the backend ``auto`` picks for NumPy
    (the reference when no other claims it). Logged with ``SPMDLEARN_VERBOSE=1``.

    For a step that takes a partial where the reduction leaves it, on the host (the forests'
    split search reads the level's summed histogram): a device backend does not claim NumPy.
    """
    host = np.zeros(0)
    if claims(backend, host):
        return backend
    for name in _claim_order():
        if claims(name, host) and _available(name)[0]:
            _log(f"{backend!r} does not claim NumPy; its host steps run on {name!r}")
            return name
    return REFERENCE


def _verbose() -> bool:
    return os.environ.get("SPMDLEARN_VERBOSE", "") not in ("", "0")


def _log(message: str) -> None:
    if not _verbose():
        return
    from .comm import world_rank

    if world_rank() != 0:
        return
    print(f"[spmdlearn] {message}", file=sys.stderr, flush=True)


def _count(backend: str, kernel: str, outcome: str) -> None:
    with _counts_lock:
        _counts.setdefault((backend, kernel), Counter())[outcome] += 1


def dispatch_counts() -> dict:
    """This process's kernel calls since the last reset: ``{(backend, kernel): {outcome: n}}``.

    ``backend`` is the one selected for the call. Outcomes: ``served`` (it computed the
    result), ``declined`` (it implements the kernel but returned None; the reference served),
    ``fallback`` (it does not implement the kernel, or the selected backend is the reference
    and an argument is another library's array: the reference served it on the host).
    """
    with _counts_lock:
        return {key: {o: c[o] for o in OUTCOMES} for key, c in _counts.items()}


def unclaimed_counts() -> dict:
    """Of the declined and fallback calls of :func:`dispatch_counts`, those whose input the
    selected backend does not claim (``spmdlearn_claims`` of the first argument is false):
    ``{(backend, kernel): n}``.

    With ``config_context(backend=...)`` a backend is asked for every call, also for NumPy
    arrays that a caller took to the host (an algorithm step that is not device-resident yet,
    counted by :func:`spmdlearn._array_api.fallbacks`). Declining those is right; a decline
    or fallback on an input the backend claims is what certification rejects.
    """
    with _counts_lock:
        return dict(_unclaimed)


def reset_dispatch_counts() -> None:
    """Forget the counted calls (the conformance suite counts each check from zero)."""
    with _counts_lock:
        _counts.clear()
        _unclaimed.clear()


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

    Every call is counted (:func:`dispatch_counts`); every decline and fallback is logged
    (``SPMDLEARN_VERBOSE=1``, rank 0), with the backend that finally ran.
    """
    hook = f"spmdlearn_{kernel}"
    if backend is None:
        backend = resolve_backend(next(iter(kwargs.values()), None))
    relay = _relay(backend, hook, (backend, _MARKER, REFERENCE))
    # One flag per call in flight on this thread: a kernel may itself call kernels.
    stack = _reached.__dict__.setdefault("stack", [])
    stack.append(False)
    try:
        result = relay(**kwargs)
    finally:
        reached = stack.pop()
    if result is None:
        raise RuntimeError(f"no backend computed kernel {kernel!r}: the reference must never "
                           "decline")
    if backend == REFERENCE:
        # The NumPy reference serves another library's array through a host copy (counted by
        # spmdlearn._array_api.fallbacks() too): a fallback, not a kernel on the array's device.
        outcome = "fallback" if any(is_foreign_array(v) for v in kwargs.values()) else "served"
    elif not reached:
        outcome = "served"
    elif any(impl.plugin_name == backend and not (impl.wrapper or impl.hookwrapper)
             for impl in relay.get_hookimpls()):
        outcome = "declined"
    else:
        outcome = "fallback"
    _count(backend, kernel, outcome)
    if outcome != "served" and backend != REFERENCE and not claims(
            backend, next(iter(kwargs.values()), None)):
        with _counts_lock:
            _unclaimed[(backend, kernel)] += 1
    if _verbose():
        if outcome == "declined":
            _log(f"{kernel}: backend {backend!r} declined; falling back")
        elif outcome == "fallback":
            _log(f"{kernel}: backend {backend!r} does not implement it; falling back")
        _log(f"{kernel}: ran on backend {backend if outcome == 'served' else REFERENCE!r}")
    return result
