"""Global configuration: the communicator and the backend, thread-local like scikit-learn's.

Neither is ever stored on an estimator: communicators cannot be pickled or cloned, and the same
fitted estimator may be used under another communicator or backend later.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

_DEFAULTS = {"comm": None, "backend": None}
_local = threading.local()


def _state() -> dict:
    if not hasattr(_local, "config"):
        _local.config = dict(_DEFAULTS)
    return _local.config


def get_config() -> dict:
    """Return a copy of the current configuration.

    Returns
    -------
    config : dict
        Keys ``comm`` (None means the library's duplicate of ``MPI.COMM_WORLD``) and ``backend``
        (None means the ``SPMDLEARN_BACKEND`` environment variable, else ``"auto"``).
    """
    return dict(_state())


def set_config(comm=None, backend=None) -> None:
    """Set the communicator and/or the backend for the rest of this thread.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm or spmdlearn.comm.Comm, default=None
        The communicator every collective uses. None leaves the setting unchanged.
    backend : str, default=None
        ``"auto"`` (the first available backend that claims the input), ``"reference"`` or an
        installed backend's name (``python -m spmdlearn info`` lists them); a name that is not
        installed or not available is an error at the next collective call. None leaves the
        setting unchanged.
    """
    state = _state()
    if comm is not None:
        state["comm"] = comm
    if backend is not None:
        if not isinstance(backend, str):
            raise TypeError(f"backend={backend!r} should be a str")
        state["backend"] = backend


@contextmanager
def config_context(*, comm=None, backend=None):
    """Temporarily set the communicator and/or the backend.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm or spmdlearn.comm.Comm, default=None
        Communicator for every collective inside the block (a sub-communicator works: only its
        ranks take part). None keeps the current one.
    backend : str, default=None
        Backend name for every kernel inside the block. None keeps the current one.

    Examples
    --------
    >>> from mpi4py import MPI                                   # doctest: +SKIP
    >>> import spmdlearn                                          # doctest: +SKIP
    >>> with spmdlearn.config_context(comm=MPI.COMM_SELF):        # doctest: +SKIP
    ...     model = LinearRegression().fit(X_local, y_local)      # a rank-local fit
    """
    old = get_config()
    try:
        set_config(comm=comm, backend=backend)
        yield
    finally:
        _state().clear()
        _state().update(old)
