"""``python -m spmdlearn info``: MPI library, ranks, whether device arrays go to MPI directly,
installed backends and their devices.

Collective under mpiexec: every rank reports the devices it sees and the one each backend would
use there (a backend's ``spmdlearn_backend_info`` gives ``devices`` and ``selected``); rank 0
prints.
"""

from __future__ import annotations

import argparse
import platform
import sys


def info() -> str:
    import numpy as np
    import scipy
    import sklearn

    from . import __version__
    from ._backends import backend_infos, requested_backend, resolve_backend
    from .comm import get_comm, mpi_library_version, world_size

    lines = [
        f"spmdlearn {__version__} (Python {platform.python_version()}, NumPy {np.__version__}, "
        f"SciPy {scipy.__version__}, scikit-learn {sklearn.__version__})",
        f"MPI: {mpi_library_version()}",
        f"ranks: {world_size()}",
        f"backend requested: {requested_backend()!r}; serves NumPy arrays: "
        f"{_try(lambda: resolve_backend(np.zeros((0, 1))))!r}",
        "installed backends (a kernel the selected one lacks or declines runs on the reference):",
    ]
    # Device arrays over MPI: passed to the library directly, or staged through host memory
    # (one verdict for all ranks; SPMDLEARN_DEVICE_BUFFERS=0|1|auto overrides).
    for at, (kind, (direct, why)) in enumerate(get_comm().device_buffers().items(), start=2):
        lines.insert(at, f"MPI and {kind} device arrays: "
                     f"{'passed to MPI directly' if direct else 'staged through host memory'} "
                     f"({why})")
    infos = backend_infos()
    # What each rank sees: its devices, and the one it would use (``selected``), per backend.
    seen = get_comm().allgather({b["name"]: (list(b.get("devices", [])), b.get("selected"))
                                 for b in infos})
    for b in infos:
        state = "available" if b.get("available") else "unavailable"
        lines.append(f"  {b['name']:<10} {state:<12} devices: {', '.join(b.get('devices', [])) or '-'}")
        lines.append(f"  {'':<10} kernels: {', '.join(b['kernels']) or 'none'}; {b.get('note', '')}")
        if any(selected for _, selected in (r[b["name"]] for r in seen)):
            for rank, per_rank in enumerate(seen):
                devices, selected = per_rank[b["name"]]
                lines.append(f"  {'':<10} rank {rank}: sees {len(devices)} device"
                             f"{'s' if len(devices) != 1 else ''} ({', '.join(devices) or '-'}); "
                             f"would use: {selected or '-'}")
    return "\n".join(lines)


def _try(fn):
    try:
        return fn()
    except ValueError as exc:
        return f"error: {exc}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spmdlearn")
    parser.add_argument("command", choices=["info"], help="what to print")
    parser.parse_args(argv)
    from .comm import world_rank

    text = info()
    if world_rank() == 0:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
