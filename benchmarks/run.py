"""Side-by-side timings: spmdlearn under mpiexec next to daal4py's distributed mode, scikit-learn
and scikit-learn-intelex on one process, and the machine's limits, in one run.

    python benchmarks/run.py [--ranks 1,2] [--backends reference,cpu,sycl] [--workloads ...]
                             [--repeat 5] [--scaling weak|strong] [--quick] [--scale S]
                             [--profile] [--baseline PATH]

``--profile`` adds, per workload and method, the share of the time spent inside kernel hooks
(every rank; the lowest is printed) and each rank's peak memory during the call against the
target (shard + 25% + 100 MB over the process's memory before its data). ``--baseline PATH``
times a checkout of another commit (e.g. ``git worktree add ../base main``) side by side with
this one, in the same run and on the same data: each spmdlearn configuration runs twice, the
second time with ``PATH``'s own virtual environment (``PATH/.venv``, an editable install of that
checkout: its plugins, not this one's) or, without one, ``PATH``'s sources first on
``PYTHONPATH``, and with ``PATH``'s worker.

Every configuration runs in its own process(es), on the same data (each rank makes its rows from
(workload, rank); the single-process peers concatenate the same rows). MPI runs pin one thread
per rank (ranks x threads = cores used); single-process peers use all cores. Ratios are taken
pair by pair within the run, since these machines are noisy. Writes
``benchmarks/results/<date>-<host>.json`` and prints a Markdown table; with matplotlib, one PNG
per workload (time and parallel efficiency against ranks).

``--backends cpu,sycl`` times the sycl backend next to the cpu backend on the same rows, as
dpnp arrays on the default SYCL device (Intel's OpenCL CPU device of ``intel-opencl-rt``
without a GPU; ``OCL_ICD_FILENAMES`` is set to it when unset).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workloads import WORKLOADS  # noqa: E402

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _has(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def _launcher(n: int) -> list[str]:
    """mpiexec of the MPI mpi4py uses here (Intel MPI's when daal4py's runtime is installed)."""
    bindir = os.path.dirname(sys.executable)
    exe = os.environ.get("SPMDLEARN_MPIEXEC") or shutil.which("mpiexec", path=bindir) \
        or shutil.which("mpiexec")
    cmd = [exe, "-n", str(n)]
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        cmd[1:1] = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    return cmd


def _run(cmd, env, timeout):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if "RESULT " in line:  # another rank's unterminated output may precede it on the line
            return json.loads(line[line.index("RESULT ") + len("RESULT "):])
    raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}), no RESULT line:\n"
                       f"stdout: {proc.stdout[-1500:]}\nstderr: {proc.stderr[-3000:]}")


#: The array type the timed calls get for a backend that serves device arrays only (the sycl
#: backend: dpnp on the default SYCL device, Intel's OpenCL CPU device without a GPU).
DEVICE_ARRAYS = {"sycl": "dpnp"}


def _env(threads: int | None, backend: str | None = None) -> dict:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    for name in THREAD_VARS:
        if threads is None:
            env.pop(name, None)
        else:
            env[name] = str(threads)
    if backend:
        env["SPMDLEARN_BACKEND"] = backend
    opencl = Path(sys.prefix) / "lib" / "libintelocl.so"
    if backend in DEVICE_ARRAYS and opencl.exists():
        env.setdefault("OCL_ICD_FILENAMES", str(opencl))  # Intel's OpenCL CPU device
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--backends", default="cpu")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scaling", choices=["weak", "strong"], default="weak")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: keeps the harness working")
    parser.add_argument("--scale", default="1", help="size multiplier: one float, or "
                        "workload=float pairs (e.g. knn=0.1,random_forest=0.2)")
    parser.add_argument("--peer-max-ranks", type=int, default=None,
                        help="time the single-process peers only up to this many ranks' rows")
    parser.add_argument("--peers", default="daal4py,sklearn,sklearnex",
                        help="peers to time where installed")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per configuration")
    parser.add_argument("--out", default=None, help="results JSON path")
    parser.add_argument("--profile", action="store_true",
                        help="report the share of time in kernel hooks and peak memory per rank")
    parser.add_argument("--baseline", default=None,
                        help="a checkout of another commit, timed side by side (spmdlearn only)")
    args = parser.parse_args(argv)
    ranks = [int(r) for r in args.ranks.split(",") if r]
    names = [w for w in args.workloads.split(",") if w]
    peers = [p for p in args.peers.split(",") if p]
    available = {"daal4py": _has("daal4py"), "sklearnex": _has("sklearnex"), "sklearn": True}
    cores = len(os.sched_getaffinity(0))
    limits = _run([sys.executable, str(HERE / "_limits.py")], _env(1), 600)
    run = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
           "host": socket.gethostname(), "cores": cores, "python": sys.version.split()[0],
           "launcher": " ".join(_launcher(1)[:1]), "limits": limits, "args": vars(args),
           "peers_available": available, "results": []}
    out = Path(args.out) if args.out else HERE / "results" / (
        f"{datetime.date.today().isoformat()}-{socket.gethostname()}"
        f"{'-quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"# machine: {cores} cores; one core: DGEMM {limits['dgemm_gflops_1core']:.1f} GFLOP/s, "
          f"read bandwidth {limits['read_bandwidth_gbs_1proc']:.1f} GB/s", flush=True)
    for name in names:
        workload = WORKLOADS[name]
        full = max(1, int(workload.rows * _scale(args.scale, name)) // (1000 if args.quick else 1))
        for n in ranks:
            rows = full if args.scaling == "weak" else max(1, full * max(ranks) // n)
            jobs = [("spmdlearn", b, None) for b in args.backends.split(",")]
            if args.baseline:
                jobs += [("spmdlearn", b, args.baseline) for b in args.backends.split(",")]
            if "daal4py" in peers and available["daal4py"]:
                jobs.append(("daal4py", None, None))
            for impl, backend, tree in jobs:
                worker = Path(tree) / "benchmarks" / "_worker.py" if tree else HERE / "_worker.py"
                python = sys.executable
                if tree and (Path(tree) / ".venv" / "bin" / "python").exists():
                    python = str(Path(tree) / ".venv" / "bin" / "python")
                cmd = _launcher(n) + [python, str(worker), "--impl", impl,
                                      "--workload", name, "--rows", str(rows),
                                      "--repeat", str(args.repeat)]
                if args.profile and impl == "spmdlearn" and not tree:
                    cmd.append("--profile")
                if impl == "spmdlearn" and backend in DEVICE_ARRAYS:
                    cmd += ["--array-type", DEVICE_ARRAYS[backend]]
                env = _env(1, backend)
                if tree and python == sys.executable:
                    env["PYTHONPATH"] = os.pathsep.join(
                        str(Path(tree) / root) for root in ("core", "accel_cpu", "accel_sycl",
                                                            "conformance"))
                try:
                    result = _run(cmd, env, args.timeout)
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    result = {"impl": impl, "workload": name, "ranks": n, "error": str(exc)[-500:]}
                if tree:
                    backend = f"{backend}@baseline"
                result.update(backend=backend, total_rows=rows * n, rows_per_rank=rows)
                run["results"].append(result)
                out.write_text(json.dumps(run, indent=1))  # partial results survive a time limit
                print(f"  {name} {impl}{'[' + backend + ']' if backend else ''} -n {n}: "
                      f"{_summary(result)}", flush=True)
            for module in ("sklearn", "sklearnex"):
                if args.peer_max_ranks is not None and n > args.peer_max_ranks:
                    continue
                if module in peers and available[module]:
                    cmd = [sys.executable, str(HERE / "_single.py"), "--module", module,
                           "--workload", name, "--ranks", str(n), "--rows", str(rows),
                           "--repeat", str(args.repeat)]
                    try:
                        result = _run(cmd, _env(None), args.timeout)
                    except Exception as exc:  # noqa: BLE001
                        result = {"impl": module, "workload": name, "error": str(exc)[-500:]}
                    result.update(ranks_equivalent=n, total_rows=rows * n, rows_per_rank=rows)
                    run["results"].append(result)
                    out.write_text(json.dumps(run, indent=1))
                    print(f"  {name} {module} (1 process, all rows, all cores) for -n {n}: "
                          f"{_summary(result)}", flush=True)
    out.write_text(json.dumps(run, indent=1))
    table = markdown(run)
    if args.profile:
        table += "\n\n" + profile_markdown(run)
    print(table)
    out.with_suffix(".md").write_text(table + "\n")
    _plots(run, out)
    print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return 0


def _scale(spec: str, workload: str) -> float:
    if "=" not in spec:
        return float(spec)
    pairs = dict(item.split("=") for item in spec.split(",") if item)
    return float(pairs.get(workload, pairs.get("default", 1.0)))


def _summary(result):
    if "error" in result:
        return "ERROR " + result["error"].splitlines()[-1][:200]
    if "skipped" in result:
        return result["skipped"]
    return ", ".join(f"{m} {v['median_s']:.4g} s" for m, v in result["methods"].items())


def _time(results, impl, workload, n, method, backend=None):
    for r in results:
        if r.get("impl") != impl or r.get("workload") != workload or "methods" not in r:
            continue
        if impl in ("spmdlearn", "daal4py") and r.get("ranks") != n:
            continue
        if impl in ("sklearn", "sklearnex") and r.get("ranks_equivalent") != n:
            continue
        if backend is not None and r.get("backend") != backend:
            continue
        if method in r["methods"]:
            return r["methods"][method]["median_s"], r
    return None, None


def markdown(run) -> str:
    """One row per (workload, method, ranks): times side by side and the ratios within the run."""
    from workloads import WORKLOADS as W

    results, limits = run["results"], run["limits"]
    backends = run["args"]["backends"].split(",")
    if run["args"].get("baseline"):
        # the baseline's columns first: ratios are those of the last backend (the one tested)
        backends = [f"{b}@baseline" for b in backends] + backends
    head = ["workload", "method", "ranks", "rows/rank"] + [f"spmdlearn[{b}] s" for b in backends] + \
        ["daal4py s", "sklearn 1-proc s", "sklearnex 1-proc s", "lower bound s",
         "vs bound", "vs daal4py", "vs sklearn", "vs sklearnex", "eff.", "shard MB/rank"] + \
        [f"RSS MB/rank [{b}]" for b in backends] + [f"added MB/rank [{b}]" for b in backends]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ranks = sorted({r["ranks"] for r in results if r.get("impl") == "spmdlearn" and "ranks" in r})
    for name in dict.fromkeys(r["workload"] for r in results):
        methods = list(dict.fromkeys(m for r in results if r.get("workload") == name
                                     for m in r.get("methods", {})))
        for method in methods:
            base_time = None
            for n in ranks:
                ours = [_time(results, "spmdlearn", name, n, method, b) for b in backends]
                # ratios and efficiency are those of the last backend listed (the one under test,
                # as in --backends reference,cpu); times and memory are shown for each
                t0, r0 = ours[-1]
                if t0 is None:
                    continue
                d4p, _ = _time(results, "daal4py", name, n, method)
                sk, _ = _time(results, "sklearn", name, n, method)
                skx, _ = _time(results, "sklearnex", name, n, method)
                flops, nbytes = W[name].flops_bytes(r0["rows_per_rank"]) if method == "fit" else (0, 0)
                bound = max(flops / (limits["dgemm_gflops_1core"] * 1e9),
                            nbytes / (limits["read_bandwidth_gbs_1proc"] * 1e9)) if flops else None
                if base_time is None:
                    base_time = (n, t0)
                n1, t1 = base_time
                weak = run["args"]["scaling"] == "weak"
                eff = (t1 / t0) if weak else (t1 * n1) / (t0 * n)
                cells = [name, method, str(n), str(r0["rows_per_rank"])] + \
                    [_fmt(t) for t, _ in ours] + [_fmt(d4p), _fmt(sk), _fmt(skx), _fmt(bound),
                                                  _ratio(t0, bound), _ratio(t0, d4p),
                                                  _ratio(t0, sk), _ratio(t0, skx), f"{eff:.2f}",
                                                  _mb(r0, "shard_mb_per_rank")] + \
                    [_mb(r, "call_peak_rss_mb_per_rank", "peak_rss_mb_per_rank")
                     for _, r in ours] + \
                    [_added_mb(r) for _, r in ours]
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def profile_markdown(run) -> str:
    """Per (workload, method, ranks): the share of time in kernel hooks (lowest over ranks) and
    peak memory per rank against the target, from ``--profile`` runs."""
    head = ["workload", "method", "ranks", "backend", "call s", "in hooks (min rank)",
            "top kernels (rank 0, s)", "peak over base MB (max rank)", "shard MB",
            "limit MB", "memory"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in run["results"]:
        for method, m in r.get("methods", {}).items():
            prof = m.get("profile")
            if not prof:
                continue
            over = [v for v in prof["peak_over_base_mb_per_rank"] if v is not None]
            worst = max(range(len(over)), key=over.__getitem__) if over else None
            limit = prof["memory_limit_mb_per_rank"][worst] if worst is not None else None
            top = ", ".join(f"{k} {v['seconds']:.3g}" for k, v in
                            list(prof["kernels_rank0"].items())[:3]) or "-"
            cells = [r["workload"], method, str(r["ranks"]), str(r.get("backend")),
                     f"{prof['seconds']:.4g}", f"{100 * prof['share_in_kernels_min']:.1f}%", top,
                     "-" if worst is None else f"{over[worst]:.0f}",
                     f"{max(prof['shard_mb_per_rank']):.1f}",
                     "-" if limit is None else f"{limit:.0f}",
                     "-" if worst is None else ("ok" if over[worst] <= limit else "OVER")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mb(result, key, fallback=None):
    """The largest per-rank value of ``key`` (MiB) in a result, or "-"."""
    values = (result or {}).get(key) or (result or {}).get(fallback) or []
    values = [v for v in values if v is not None]
    return f"{max(values):.0f}" if values else "-"


def _added_mb(result):
    """Largest per-rank memory the timed calls added: their peak RSS less the RSS before them."""
    return _mb(result, "call_added_mb_per_rank")


def _fmt(t):
    return "-" if t is None else f"{t:.4g}"


def _ratio(ours, other):
    return "-" if ours is None or other is None else f"{ours / other:.2f}x"


def _plots(run, out):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots")
        return
    results = run["results"]
    for name in dict.fromkeys(r["workload"] for r in results):
        fig, (ax_t, ax_e) = plt.subplots(1, 2, figsize=(9, 3.5))
        for impl in ("spmdlearn", "daal4py"):
            pts = sorted((r["ranks"], r["methods"]["fit"]["median_s"]) for r in results
                         if r.get("impl") == impl and r.get("workload") == name
                         and "methods" in r and "fit" in r["methods"])
            if not pts:
                continue
            n, t = zip(*pts)
            ax_t.plot(n, t, "o-", label=impl)
            weak = run["args"]["scaling"] == "weak"
            eff = [(t[0] / ti) if weak else (t[0] * n[0]) / (ti * ni) for ni, ti in zip(n, t)]
            ax_e.plot(n, eff, "o-", label=impl)
        ax_t.set(xlabel="ranks", ylabel="fit time (s)", title=f"{name} ({run['args']['scaling']})")
        ax_e.set(xlabel="ranks", ylabel="parallel efficiency", ylim=(0, 1.2))
        ax_t.legend()
        fig.tight_layout()
        fig.savefig(out.with_name(f"{out.stem}-{name}.png"), dpi=80)
        plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
