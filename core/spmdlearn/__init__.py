"""spmdlearn: distributed SPMD machine learning with the scikit-learn API.

Every MPI rank runs the same script on its own shard of rows, calls the same estimator, and
ends with the same global model::

    mpiexec -n 4 python train.py

The communicator is chosen by :func:`config_context` / :func:`set_config` (default: a duplicate
of ``MPI.COMM_WORLD`` made once by the library); the backend by ``SPMDLEARN_BACKEND`` or
``config_context(backend=...)``.
"""

from ._config import config_context, get_config, set_config

__version__ = "0.1.0"

__all__ = ["config_context", "get_config", "set_config", "__version__"]
