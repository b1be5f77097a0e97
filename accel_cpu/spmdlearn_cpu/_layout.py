"""Fewer compiled specializations: Fortran-ordered arrays share the strided ('A') one.

numba compiles a kernel once per tuple of argument types, and an array's type includes its
layout: C-contiguous, Fortran-contiguous or strided ('A'). A kernel that meets float32 and
float64 shards in all three layouts is compiled six times, each a few seconds (parallel
kernels: about 10 s on two cores). Measured with empty numba caches, the cpu conformance
suite at one rank spent 434 of its 470 s compiling.

:func:`any_layout` wraps a kernel so that a Fortran-ordered array argument is typed as a
strided array: F-ordered and strided shards share one specialization, while C-ordered shards
keep theirs (the layout-specific loops are up to 1.7x faster on them: ``(X - shift) * scale``
on 400,000 x 20 float64 rows, 11.8 ms against 17.5 ms). No array is copied: the strided
specialization reads any strides.
"""

from __future__ import annotations

import numpy as np
from numba import typeof

__all__ = ["any_layout"]


def _fortran(a) -> bool:
    """A 2-d or higher array that numba would type as Fortran-ordered ('F')."""
    return type(a) is np.ndarray and a.ndim > 1 and a.flags.f_contiguous \
        and not a.flags.c_contiguous


class _AnyLayout:
    """A numba dispatcher called with its Fortran-ordered array arguments typed as 'A'."""

    def __init__(self, kernel):
        self._kernel = kernel
        self._entries = {}  # argument types -> compiled entry point
        self.__doc__ = kernel.__doc__
        self.__name__ = kernel.__name__
        self.__wrapped__ = kernel

    def __call__(self, *args):
        if not any(_fortran(a) for a in args):
            return self._kernel(*args)
        types = tuple(t.copy(layout="A") if _fortran(a) else t
                      for a, t in ((a, typeof(a)) for a in args))
        entry = self._entries.get(types)
        if entry is None:
            # the dispatcher's own compilation (and its on-disk cache) for these exact types:
            # every array argument has its own dtype, rank and writability, only the layout of
            # the Fortran-ordered ones is relaxed, a conversion numba itself makes
            entry = self._entries[types] = self._kernel.compile(types)
        return entry(*args)


def any_layout(kernel):
    """``kernel`` (a numba dispatcher called from Python), with Fortran-ordered array
    arguments typed as strided ('A') arrays, so that they share one specialization."""
    return _AnyLayout(kernel)
