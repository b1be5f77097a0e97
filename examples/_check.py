"""Shared by the examples: compare with scikit-learn on the gathered data, on every rank."""

import hashlib
import sys

import numpy as np


def report(comm, rows, rtol):
    """Print ``(name, ours, scikit-learn's)`` rows on rank 0; exit 1 on every rank on mismatch.

    The verdict is computed from values identical on every rank, so every rank exits alike.
    """
    worst = 0.0
    for name, ours, theirs in rows:
        ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
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
