"""Count and time numba's compilations in a run (numba's ``numba:compile`` events).

    NUMBA_CACHE_DIR=$(mktemp -d) python benchmarks/numba_compiles.py OUT -m MODULE [ARGS...]
    python benchmarks/numba_compiles.py --report OUT

The first form runs ``python -m MODULE ARGS`` (under ``mpiexec`` too: one file per process) and
writes, at exit, one record per compilation to ``OUT.<pid>.json``: the kernel, its argument
types, wall and CPU seconds (the CPU time is the process's: compilation runs on one thread, and
it stays meaningful on a loaded machine), and the nesting depth (a kernel called from compiled
code is compiled inside its caller's compilation; depth 0 totals are the cost). With an empty
``NUMBA_CACHE_DIR`` every specialization is a cold compilation, as in CI's fresh clone. The
second form prints the totals and, per kernel, its specializations.
"""

from __future__ import annotations

import atexit
import collections
import glob
import json
import os
import runpy
import sys
import time


def _record(out: str) -> None:
    from numba.core import event

    records, stack = [], []

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append((time.perf_counter(), time.process_time()))

        def on_end(self, ev):
            wall, cpu = stack.pop()
            func = ev.data["dispatcher"].py_func
            records.append({"name": f"{func.__module__}.{func.__qualname__}",
                            "args": str(ev.data["args"]), "wall": time.perf_counter() - wall,
                            "cpu": time.process_time() - cpu, "depth": len(stack)})

    event.register("numba:compile", Listener())
    atexit.register(lambda: json.dump(records, open(f"{out}.{os.getpid()}.json", "w")))


def _report(out: str) -> None:
    records = [r for path in glob.glob(f"{out}.*.json") for r in json.load(open(path))]
    top = [r for r in records if r["depth"] == 0]
    print(f"{len(top)} compilations ({len(records)} with nested ones): "
          f"{sum(r['cpu'] for r in top):.1f} s CPU, {sum(r['wall'] for r in top):.1f} s wall")
    by_kernel = collections.defaultdict(list)
    for r in top:
        by_kernel[r["name"]].append(r)
    for name, rows in sorted(by_kernel.items(), key=lambda kv: -sum(r["cpu"] for r in kv[1])):
        print(f"{sum(r['cpu'] for r in rows):7.1f} s {len(rows):3d}  {name}")
        for r in rows:
            print(f"              {r['cpu']:6.2f} s  {r['args']}")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--report"]:
        return _report(argv[1])
    out, flag, module, *rest = argv
    if flag != "-m":
        raise SystemExit(__doc__)
    _record(out)
    sys.argv = [module] + rest
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
