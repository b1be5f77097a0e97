"""Certify a backend under mpiexec.

    mpiexec -n N python -m spmdlearn_conformance --backend NAME [--estimators A,B] [--quick]
                                                 [--json PATH] [--timeout SECONDS]

Runs on every rank, prints one report on rank 0, and exits non-zero on every rank if any check
failed on any rank. Every check runs under a time limit: a check that hangs (a collective that
one rank never reaches) ends the process, and mpiexec ends the job, so the suite never hangs.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import sys
import time

import numpy as np

#: (subject, check) -> why it is expected to fail, for every backend. Empty: none known.
EXPECTED_FAILURES: dict = {}


def _agree(comm, status: str, detail: str) -> tuple[str, str]:
    """Reduce one check's verdict over ranks: failing anywhere fails everywhere."""
    verdicts = comm.allgather((status, detail))
    failing = [(r, d) for r, (s, d) in enumerate(verdicts) if s == "fail"]
    if failing:
        if all(d == failing[0][1] for _, d in failing) and len(failing) == comm.size:
            return "fail", failing[0][1]
        return "fail", "; ".join(f"rank {r}: {d}" for r, d in failing)
    return verdicts[0]


def run(backend: str, estimators: list[str] | None, quick: bool, timeout: float, comm=None):
    """Run the suite; returns the list of result rows (identical on every rank)."""
    import spmdlearn
    from spmdlearn import _backends
    from spmdlearn.comm import get_comm

    from ._estimators import (
        SPECS,
        check_agreement,
        check_collective_errors,
        check_output_placement,
        check_rank_count_invariance,
    )
    from ._kernels import CONTRACT_KERNELS, check_contract_laws, check_kernel

    comm = get_comm(comm)
    installed = _backends.installed_backends()
    if backend not in installed:
        raise SystemExit(f"backend {backend!r} is not installed; installed: {', '.join(installed)}")
    pm = _backends.plugin_manager()
    plugin = pm.get_plugin(backend)
    impls = {hc.name[len("spmdlearn_"):]: next(i for i in hc.get_hookimpls() if i.plugin is plugin)
             for hc in pm.get_hookcallers(plugin) if hc.name not in _backends._NOT_KERNELS}
    examples = 15 if quick else 60
    rows = []

    def record(subject, check, fn):
        start = time.time()
        faulthandler.dump_traceback_later(timeout, exit=True)
        try:
            status, detail = fn()
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failing check
            status, detail = "fail", f"raised {type(exc).__name__}: {exc}"
        finally:
            faulthandler.cancel_dump_traceback_later()
        status, detail = _agree(comm, status, detail)
        if status == "fail" and (subject, check) in EXPECTED_FAILURES:
            status, detail = "xfail", EXPECTED_FAILURES[(subject, check)]
        rows.append({"subject": subject, "check": check, "status": status, "detail": detail,
                     "seconds": round(time.time() - start, 3)})

    # 1. kernels against the reference
    for kernel, impl in sorted(impls.items()):
        record(f"kernel {kernel}", "vs reference", lambda: check_kernel(impl, kernel, examples))
    if not impls:
        rows.append({"subject": "kernels", "check": "vs reference", "status": "n/a",
                     "detail": "the backend implements no kernel (everything runs on the reference)",
                     "seconds": 0.0})
    # 2. contract laws with the backend's kernels
    for name, (_, kernel, _) in CONTRACT_KERNELS.items():
        def local(_kernel=kernel, **kwargs):
            return _backends.call_kernel(_kernel, backend, **kwargs)
        record(f"contract {name}", "laws", lambda: check_contract_laws(name, local, examples))
    # 3-6. estimators
    names = estimators or list(SPECS)
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise SystemExit(f"unknown estimators {unknown}; known: {', '.join(SPECS)}")
    with spmdlearn.config_context(backend=backend, comm=comm):
        for name in names:
            spec = SPECS[name]
            for dtype in (np.float64, np.float32):
                record(name, f"agreement {np.dtype(dtype).name}",
                       lambda: check_agreement(spec, comm, dtype, seeds=(0, 1) if quick else (0, 1, 2, 3)))
            record(name, "rank-count invariance", lambda: check_rank_count_invariance(spec, comm))
            record(name, "collective errors", lambda: check_collective_errors(spec, comm))
            record(name, "output placement", lambda: check_output_placement(spec, comm))
    return rows


def report(rows, backend: str, n_ranks: int, quick: bool) -> str:
    subjects = list(dict.fromkeys(r["subject"] for r in rows))
    checks = list(dict.fromkeys(r["check"] for r in rows))
    cell = {(r["subject"], r["check"]): r["status"] for r in rows}
    width = max(len(s) for s in subjects) + 2
    lines = [f"spmdlearn conformance: backend {backend!r}, {n_ranks} rank(s), "
             f"{'quick' if quick else 'full'} mode", ""]
    lines.append("".ljust(width) + " | ".join(c for c in checks))
    for s in subjects:
        lines.append(s.ljust(width) + " | ".join(cell.get((s, c), "").ljust(len(c)) for c in checks))
    lines.append("")
    for r in rows:
        if r["status"] != "pass":
            lines.append(f"{r['status'].upper():5} {r['subject']} / {r['check']}: {r['detail']}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "xfail", "n/a")}
    lines.append(f"conformance: {counts['pass']} passed, {counts['fail']} failed, "
                 f"{counts['xfail']} expected failures, {counts['n/a']} not applicable")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spmdlearn_conformance",
                                     description="Certify a spmdlearn backend under mpiexec.")
    parser.add_argument("--backend", required=True, help="installed backend name")
    parser.add_argument("--estimators", default=None, help="comma-separated subset")
    parser.add_argument("--quick", action="store_true", help="fewer examples and seeds")
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per check")
    args = parser.parse_args(argv)
    from spmdlearn.comm import get_comm

    comm = get_comm()
    rows = run(args.backend, args.estimators.split(",") if args.estimators else None, args.quick,
               args.timeout)
    failed = any(r["status"] == "fail" for r in rows)
    if comm.rank == 0:
        print(report(rows, args.backend, comm.size, args.quick), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"backend": args.backend, "ranks": comm.size, "quick": args.quick,
                           "passed": not failed, "results": rows}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
