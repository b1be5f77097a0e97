"""cProfile of one benchmark call on every rank (after one warm-up); rank 0 prints its top entries.

    mpiexec -n 2 python benchmarks/results/<this file> WORKLOAD METHOD [SCALE]
"""
import cProfile, io, os, pstats, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mpi4py import MPI
from workloads import WORKLOADS, make_data, spmdlearn_calls

comm = MPI.COMM_WORLD
name, method = sys.argv[1], sys.argv[2]
scale = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
w = WORKLOADS[name]
X, y = make_data(w, int(w.rows * scale), comm.rank)
calls = spmdlearn_calls(w, X, y)
if method != "fit":
    calls["fit"]()
calls[method]()  # warm-up
comm.Barrier()
prof = cProfile.Profile()
t = time.perf_counter()
prof.enable(); calls[method](); prof.disable()
el = comm.allreduce(time.perf_counter() - t, op=MPI.MAX)
prof.dump_stats(f"prof-{name}-{method}-r{comm.rank}.pstats")
if comm.rank == 0:
    print(f"# {name} {method} -n {comm.size} backend {os.environ.get('SPMDLEARN_BACKEND')}: "
          f"{el:.3f} s (slowest rank), rank 0 profile:")
    for key in ("tottime", "cumulative"):
        s = io.StringIO(); pstats.Stats(prof, stream=s).sort_stats(key).print_stats(18)
        print("\n".join(l for l in s.getvalue().splitlines() if l.strip())[:6000])
