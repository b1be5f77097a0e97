"""The host work that a multi-rank fit adds over a one-rank fit, measured in one process.

    python benchmarks/world_host_cost.py --rows 1000 --repeat 2000

On a shared or oversubscribed machine the wall time of a fit under ``mpiexec`` mostly measures
the scheduler (a rank waits while the other is descheduled). This leaves MPI out: the fit runs
on a :class:`spmdlearn.comm.Comm` over a stand-in of a 2-rank communicator whose other rank
answers at once with the same row (every collective completes on the first ``Test``), so the
time is the library's own host work on the multi-rank path: the status exchanges, the checks,
the entry agreement, the unpacking and combining of the ranks' partials. It is compared with
the same fit on one rank (``COMM_SELF``). Prints, per estimator: the median fit time over the
repeats (interleaved, one-rank and 2-rank fits in turn), and the Python calls per fit
(cProfile). KMeans is reported per Lloyd step (fits of 20 and 10 steps, the difference / 10).
``PYTHONPATH=<other checkout>/core`` runs the same on another version of the library.
"""

import argparse
import time

import numpy as np
from mpi4py import MPI

import spmdlearn
from spmdlearn.comm import Comm
from world_overhead import calls_per_fit, estimator_fits


class _Done:
    def Test(self):
        return True

    def Wait(self):
        return None


class _TwinMPI:
    """A 2-rank communicator whose other rank sends what this one sends, at once."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def Iallgather(self, send, recv):
        recv[...] = np.asarray(send).reshape((1,) + recv.shape[1:])
        return _Done()

    def Allgather(self, send, recv):
        recv[...] = np.asarray(send).reshape((1,) + recv.shape[1:])

    def Allgatherv(self, send, recv):
        out, send = recv[0].reshape(-1), np.asarray(send).reshape(-1)
        out[:send.size] = send
        out[send.size:2 * send.size] = send

    def Allreduce(self, send, recv, op=None):
        recv[...] = 2 * np.asarray(send)

    def allgather(self, obj):
        return [obj, obj]

    def bcast(self, obj, root=0):
        return obj

    def Iprobe(self, *args, **kwargs):
        return False


def _time(fit, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fit()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--backend", default="cpu")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.rows, args.features))
    y = X @ np.arange(1.0, args.features + 1) + rng.normal(size=args.rows)
    init = rng.normal(size=(4, args.features))

    fits = estimator_fits(X, y, init)
    twin, alone = Comm(_TwinMPI()), Comm(MPI.COMM_SELF)
    print(f"rows={args.rows} features={args.features} backend={args.backend} "
          f"repeat={args.repeat}", flush=True)
    for name, calls in fits.items():
        results = {"alone": [], "2 ranks": []}
        for fit in calls:
            slow = 5 if name.startswith("KMeans") else 1
            times = {"alone": [], "2 ranks": []}
            counts = {}
            for where, comm in (("alone", alone), ("2 ranks", twin)):
                with spmdlearn.config_context(comm=comm, backend=args.backend):
                    for _ in range(20):
                        fit()
                    counts[where] = calls_per_fit(fit)
            for _ in range(10):  # interleaved, so that a change of load hits both alike
                for where, comm in (("alone", alone), ("2 ranks", twin)):
                    with spmdlearn.config_context(comm=comm, backend=args.backend):
                        times[where].append(_time(fit, max(10, args.repeat // 10 // slow)))
            for where in times:
                results[where].append(np.array([np.median(times[where]), counts[where]]))
        out = {w: v[0] if len(v) == 1 else (v[0] - v[1]) / 10 for w, v in results.items()}
        (ta, na), (tw, nw) = out["alone"], out["2 ranks"]
        print(f"{name:<20} alone {ta:6.3f} ms {na:5.0f} calls | 2 ranks {tw:6.3f} ms {nw:5.0f} "
              f"calls | added {tw - ta:6.3f} ms {nw - na:4.0f} calls", flush=True)


if __name__ == "__main__":
    main()
