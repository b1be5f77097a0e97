"""Timing helpers of the GPU benchmarks: synchronized medians, and where a fit's time goes.

Every timing ends with a device synchronize and is the median of ``repeat`` runs after one
warm-up. :func:`time_shares` runs a fit once more with each kernel hook synchronized at its end
and every MPI call of spmdlearn's communicator timed: the shares inside GPU kernels, inside MPI
(host staging included) and elsewhere (validation, Python, host copies).
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["median_time", "median_times_in_turn", "event_median_time", "time_shares"]


def median_time(fn, repeat, sync=lambda: None, reduce=None, before=None):
    """Median seconds of ``fn()`` + ``sync()`` over ``repeat`` runs after a warm-up.

    ``reduce(seconds) -> seconds``: applied to each run's time (the slowest rank's, under MPI).
    ``before()``: called untimed before each run (a barrier, so that every rank starts together).
    """
    return median_times_in_turn([fn], repeat, sync, [reduce], before)[0]


def median_times_in_turn(fns, repeat, sync=lambda: None, reduces=None, before=None):
    """:func:`median_time` of several functions timed in turn (run ``i`` of each before run
    ``i + 1`` of any), so that a change of the host's speed during the runs reaches all alike.
    ``reduces``: one ``reduce`` (or None) per function."""
    reduces = reduces or [None] * len(fns)
    for fn in fns:
        fn()
    sync()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, reduce, out in zip(fns, reduces, times):
            if before is not None:
                before()
            start = time.perf_counter()
            fn()
            sync()
            elapsed = time.perf_counter() - start
            out.append(reduce(elapsed) if reduce else elapsed)
    return [float(np.median(t)) for t in times]


def event_median_time(cp, fn, repeat):
    """Median seconds of ``fn()`` on the current device between two CUDA events, over
    ``repeat`` runs after a warm-up: the GPU's time, without the host's launch gaps."""
    fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(repeat):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
    return float(np.median(times))


class _TimedMPI:
    """A proxy of an mpi4py communicator that adds the seconds of every call to ``seconds``."""

    def __init__(self, mpi):
        self._mpi, self.seconds = mpi, 0.0

    def __getattr__(self, name):
        attr = getattr(self._mpi, name)
        if not callable(attr):
            return attr

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


def time_shares(fn, sync):
    """One run of ``fn`` with the kernels synchronized: ``{"total_s", "kernels", "mpi",
    "outside"}`` (shares of ``total_s``) and the per-hook seconds."""
    from spmdlearn._profiling import kernel_timer
    from spmdlearn.comm import get_comm

    comm = get_comm()
    proxy = _TimedMPI(comm.mpi)
    comm.mpi = proxy
    try:
        with kernel_timer(sync=sync) as times:
            start = time.perf_counter()
            fn()
            sync()
            total = time.perf_counter() - start
    finally:
        comm.mpi = proxy._mpi
    kernels, mpi = times.total, proxy.seconds
    return {"total_s": total, "kernels": kernels / total, "mpi": mpi / total,
            "outside": max(0.0, 1.0 - (kernels + mpi) / total), "hooks": times.as_dict()}
