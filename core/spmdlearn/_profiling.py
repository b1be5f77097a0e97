"""Time spent inside kernel hooks, for the benchmark harness's ``--profile`` mode.

Profiling installs pluggy's hook-call monitoring (``PluginManager.add_hookcall_monitoring``) on
spmdlearn's plugin manager for the duration of a ``with`` block, and removes it afterwards:
nothing is timed, and nothing costs anything, outside such a block.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextlib import contextmanager

__all__ = ["kernel_timer"]

#: Hooks that describe or select backends rather than compute: not counted as kernel time.
_NOT_KERNELS = {"spmdlearn_backend_info", "spmdlearn_claims", "spmdlearn_host_copy"}


class KernelTimes:
    """Seconds spent inside each kernel hook (this thread), and the number of calls."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)

    @property
    def total(self) -> float:
        """Seconds inside all kernel hooks."""
        return float(sum(self.seconds.values()))

    def as_dict(self) -> dict:
        return {name: {"seconds": self.seconds[name], "calls": self.calls[name]}
                for name in sorted(self.seconds, key=self.seconds.get, reverse=True)}


@contextmanager
def kernel_timer(sync=None):
    """Time every kernel hook call made by this thread inside the block.

    Parameters
    ----------
    sync : callable, default=None
        Called when a hook returns, before its time is taken (a device synchronize, so that a
        kernel launched asynchronously is timed to its end). None: nothing is called.

    Yields
    ------
    times : KernelTimes
        Filled as hooks run: per hook name (without ``spmdlearn_``), seconds and calls.

    Examples
    --------
    >>> from spmdlearn._profiling import kernel_timer
    >>> with kernel_timer() as times:                                 # doctest: +SKIP
    ...     KMeans(8).fit(X)
    >>> times.total                                                  # doctest: +SKIP
    """
    from ._backends import plugin_manager

    times = KernelTimes()
    owner = threading.get_ident()
    stack = []

    def before(hook_name, hook_impls, kwargs):
        if threading.get_ident() == owner:
            stack.append(time.perf_counter())

    def after(outcome, hook_name, hook_impls, kwargs):
        if threading.get_ident() != owner or not stack:
            return
        if sync is not None and len(stack) == 1:
            sync()
        elapsed = time.perf_counter() - stack.pop()
        if hook_name not in _NOT_KERNELS and not stack:  # outermost call only
            name = hook_name[len("spmdlearn_"):]
            times.seconds[name] += elapsed
            times.calls[name] += 1

    undo = plugin_manager().add_hookcall_monitoring(before, after)
    try:
        yield times
    finally:
        undo()
