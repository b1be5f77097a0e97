"""Shared by the examples: compare with scikit-learn on the gathered data, on every rank."""

import hashlib
import sys

import numpy as np


def device_arrays(comm, argv=None):
    """``--device numpy|cpu|gpu`` (default ``numpy``): where this rank's rows live.

    ``cpu`` and ``gpu`` put them in dpnp arrays on a SYCL device of that type (rank ``r`` uses
    the ``r mod n``-th of the node's ``n`` devices; Intel's OpenCL CPU runtime gives a CPU
    device on any x86 machine), and spmdlearn's sycl backend runs the kernels there. Returns
    ``(to_device, to_host)``: NumPy to the chosen device, and any of these arrays to NumPy.
    Unknown options are left for the example's own parser.
    """
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--device", choices=["numpy", "cpu", "gpu"], default="numpy",
                        help="where each rank's rows live (default: numpy, on the host)")
    args, _ = parser.parse_known_args(argv)
    if args.device == "numpy":
        return (lambda a: a), host
    try:
        import dpctl
        import dpnp
    except ImportError as exc:
        raise SystemExit(f"--device {args.device} needs dpnp and dpctl "
                         f"(pip install -e '.[sycl]'): {exc}") from None
    devices = dpctl.get_devices(device_type=args.device)
    if not devices:
        raise SystemExit(f"--device {args.device}: no SYCL {args.device} device here "
                         f"(dpctl sees: {[d.name for d in dpctl.get_devices()] or 'none'})")
    queue = dpctl.SyclQueue(devices[comm.rank % len(devices)])
    names = comm.allgather(f"{queue.sycl_device.backend.name}:{queue.sycl_device.name}")
    if comm.rank == 0:
        print(f"device: dpnp arrays on SYCL {args.device} devices, by rank: {names}")
    return (lambda a: dpnp.asarray(a, sycl_queue=queue)), host


def host(a):
    """A NumPy copy of ``a`` (a dpnp array, a NumPy array or a number)."""
    asnumpy = getattr(a, "asnumpy", None)
    return asnumpy() if callable(asnumpy) else np.asarray(a)


def report(comm, rows, rtol):
    """Print ``(name, ours, scikit-learn's)`` rows on rank 0; exit 1 on every rank on mismatch.

    The verdict is computed from values identical on every rank, so every rank exits alike.
    """
    worst = 0.0
    rows = [(name, host(ours).astype(float), np.asarray(theirs, float))
            for name, ours, theirs in rows]
    for name, ours, theirs in rows:
        scale = max(float(np.max(np.abs(theirs), initial=0.0)), 1e-300)
        error = float(np.max(np.abs(ours - theirs), initial=0.0)) / scale
        worst = max(worst, error)
        if comm.rank == 0:
            print(f"  {name:<22} spmdlearn {np.array2string(ours.ravel()[:4], precision=6)}"
                  f"  scikit-learn {np.array2string(theirs.ravel()[:4], precision=6)}"
                  f"  rel.err {error:.1e}")
    # Identical on every rank? Gather a digest of our values.
    digest = hashlib.sha256(b"".join(np.asarray(o, float).tobytes() for _, o, _ in rows)).hexdigest()
    same = len(set(comm.allgather(digest))) == 1
    ok = worst <= rtol and same
    if comm.rank == 0:
        print(f"  identical on all {comm.size} ranks: {same}; worst relative error "
              f"{worst:.1e} (tolerance {rtol:g}): {'OK' if ok else 'MISMATCH'}")
    if not ok:
        sys.exit(1)
