"""Certify a backend under mpiexec.

    mpiexec -n N python -m spmdlearn_conformance --backend NAME [--array-type TYPE]
                       [--estimators A,B|none] [--quick] [--json PATH] [--timeout SECONDS]

Feeds the kernels and the estimators arrays of TYPE (numpy, array_api_strict, dpnp, cupy; a
type whose module is not installed is skipped, saying so), checks each kernel the backend
implements against the reference on the same input (values, dtype, array type), the contract
laws with its kernels, and every estimator with the backend selected; counts each kernel call
as served, declined or fallback. A backend that claims TYPE must serve every kernel it
implements. The last line is the verdict: CERTIFIED (with the kernels served) or NOT CERTIFIED
(checks failed, or 0 kernels served, or skipped, and why).

Runs on every rank, prints one report on rank 0, and exits non-zero on every rank if any check
failed on any rank (a backend that serves 0 kernels fails no check: it is not certified). Every check runs under a time limit: a check that hangs (a collective that
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


def _dispatch_totals(comm, backend: str) -> dict:
    """This check's kernel calls on ``backend``, summed over ranks: ``{kernel: {outcome: n}}``."""
    from spmdlearn import _backends

    unclaimed = _backends.unclaimed_counts()
    mine = {kernel: {**counts, "unclaimed": unclaimed.get((name, kernel), 0)}
            for (name, kernel), counts in _backends.dispatch_counts().items() if name == backend}
    totals: dict = {}
    for counts in comm.allgather(mine):
        for kernel, c in counts.items():
            row = totals.setdefault(kernel, dict.fromkeys(_backends.OUTCOMES + ("unclaimed",), 0))
            for outcome, n in c.items():
                row[outcome] += n
    return totals


def _host_copies(comm) -> dict:
    """The algorithm steps that took the array under test to the host (``{step: n}``, summed
    over ranks): :func:`spmdlearn._array_api.fallbacks` of the estimator checks."""
    from spmdlearn import _array_api

    totals: dict = {}
    for counts in comm.allgather({what: n for (what, _), n in _array_api.fallbacks().items()}):
        for what, n in counts.items():
            totals[what] = totals.get(what, 0) + n
    return dict(sorted(totals.items()))


def _probe(array_type: str):
    from ._arrays import to_type

    return to_type(np.zeros((2, 2)), array_type)


def run(backend: str, estimators: list[str] | None, quick: bool, timeout: float, comm=None,
        array_type: str = "numpy"):
    """Run the suite; returns ``(rows, summary)``, identical on every rank.

    ``rows`` are the checks' results; ``summary`` says whether the backend claims
    ``array_type``, which kernels it implements and served, the dispatch counts of the estimator
    checks (``{kernel: {"served", "declined", "fallback"}}``), whether it is certified and why.
    """
    import spmdlearn
    from spmdlearn import _backends
    from spmdlearn.comm import get_comm

    from ._arrays import missing_reason, use_rank_device
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
    names = list(SPECS) if estimators is None else estimators
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        raise SystemExit(f"unknown estimators {unknown}; known: {', '.join(SPECS)}")
    summary = {"backend": backend, "array_type": array_type, "claims": False, "kernels": [],
               "served": [], "dispatch": {}, "host_copies": {}, "not_served_on_type": [],
               "certified": False, "skipped": None}
    rows: list = []
    skipped = missing_reason(array_type)
    if skipped is None and backend not in _backends.available_backends():
        skipped = (f"backend {backend!r} is installed but unavailable "
                   f"({_backends._available(backend)[1]})")
    if skipped is not None:
        summary["skipped"] = skipped
        summary["verdict"] = f"NOT CERTIFIED: skipped: {skipped}"
        return rows, summary
    summary["device"] = comm.allgather(use_rank_device(array_type, _local_rank(comm)))
    kernels = _backends.backend_kernels(backend)
    claims = _backends.claims(backend, _probe(array_type))
    summary.update(kernels=kernels, claims=claims)
    pm = _backends.plugin_manager()
    plugin = pm.get_plugin(backend)
    impls = {kernel: next(i for i in getattr(pm.hook, f"spmdlearn_{kernel}").get_hookimpls()
                          if i.plugin is plugin) for kernel in kernels}
    examples = 15 if quick else 60

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
        return status

    # 1. kernels against the reference, on the array type under test
    for kernel, impl in sorted(impls.items()):
        if record(f"kernel {kernel}", "vs reference",
                  lambda: check_kernel(impl, kernel, examples, array_type=array_type,
                                       claimed=claims)) == "pass":
            summary["served"].append(kernel)
    if not impls:
        rows.append({"subject": "kernels", "check": "vs reference", "status": "n/a",
                     "detail": "the backend implements no kernel: 0 kernels served "
                               "(everything runs on the reference)", "seconds": 0.0})
    # 2. contract laws with the backend's kernels
    for name, (_, kernel, _) in CONTRACT_KERNELS.items():
        def local(_kernel=kernel, **kwargs):
            return _backends.call_kernel(_kernel, backend, **kwargs)
        record(f"contract {name}", "laws",
               lambda: check_contract_laws(name, local, examples, array_type))
    # 3-6. estimators, counting every kernel call and every host copy of the input
    from spmdlearn import _array_api

    _backends.reset_dispatch_counts()
    _array_api.reset_fallbacks()
    with spmdlearn.config_context(backend=backend, comm=comm):
        for name in names:
            spec = SPECS[name]
            for dtype in (np.float64, np.float32):
                record(name, f"agreement {np.dtype(dtype).name}",
                       lambda: check_agreement(spec, comm, dtype,
                                               seeds=(0, 1) if quick else (0, 1, 2, 3),
                                               array_type=array_type))
            record(name, "rank-count invariance",
                   lambda: check_rank_count_invariance(spec, comm, array_type))
            record(name, "collective errors", lambda: check_collective_errors(spec, comm))
            record(name, "output placement",
                   lambda: check_output_placement(spec, comm, array_type))
    dispatch = _dispatch_totals(comm, backend)
    summary["dispatch"] = dispatch
    summary["host_copies"] = _host_copies(comm) if array_type != "numpy" else {}
    # 7. a backend that claims the array type serves, on it, every kernel it implements: no
    # decline and no fallback on an input it claims (calls on a caller's host copy, NumPy,
    # are counted apart, and the host copies are listed with the verdict)
    if claims:
        for kernel, counts in sorted(dispatch.items()):
            on_type = counts["declined"] + counts["fallback"] - counts["unclaimed"]
            if on_type:
                summary["not_served_on_type"].append(kernel)
            if on_type and kernel in kernels:  # the kernels it lacks are listed as fallbacks
                rows.append({"subject": f"kernel {kernel}", "check": "serves its claimed type",
                             "status": "fail", "seconds": 0.0,
                             "detail": f"declined {on_type} of {on_type + counts['served']} "
                                       f"calls of the estimator checks on {array_type} input, "
                                       "which it claims"})
    failed = any(r["status"] == "fail" for r in rows)
    served = summary["served"]
    summary["certified"] = not failed and bool(served)
    # the kernels that ran on the reference for the claimed type (others: on NumPy input)
    fallback = summary["not_served_on_type"] if claims else sorted(
        k for k, c in dispatch.items() if c["fallback"] or c["declined"])
    if failed:
        verdict = "NOT CERTIFIED: some checks failed"
    elif not served:
        verdict = (f"NOT CERTIFIED: 0 kernels served on {array_type} input "
                   f"({'implements no kernel' if not kernels else 'declines them all'}); "
                   "every kernel ran on the reference")
    else:
        verdict = (f"CERTIFIED on {array_type} input: {len(served)} kernel"
                   f"{'s' if len(served) != 1 else ''} served ({', '.join(served)})")
        if fallback:
            verdict += f"; ran on the reference: {', '.join(fallback)}"
    if summary["host_copies"]:
        verdict += ("; steps that took the input to the host, their kernels on NumPy: "
                    + ", ".join(f"{what} ({n})" for what, n in summary["host_copies"].items()))
    summary["verdict"] = verdict
    return rows, summary


def report(rows, summary: dict, n_ranks: int, quick: bool) -> str:
    lines = [f"spmdlearn conformance: backend {summary['backend']!r}, array type "
             f"{summary['array_type']}, {n_ranks} rank(s), {'quick' if quick else 'full'} mode", ""]
    if rows:
        subjects = list(dict.fromkeys(r["subject"] for r in rows))
        checks = list(dict.fromkeys(r["check"] for r in rows))
        cell = {(r["subject"], r["check"]): r["status"] for r in rows}
        width = max(len(s) for s in subjects) + 2
        lines.append("".ljust(width) + " | ".join(c for c in checks))
        for s in subjects:
            lines.append(s.ljust(width) + " | ".join(cell.get((s, c), "").ljust(len(c))
                                                     for c in checks))
        lines.append("")
    if summary["dispatch"]:
        lines.append(f"kernel calls of the estimator checks on backend {summary['backend']!r} "
                     "(all ranks):")
        width = max(len(k) for k in summary["dispatch"]) + 2
        lines.append("kernel".ljust(width) + "served  declined  fallback  of these unclaimed")
        for kernel, c in sorted(summary["dispatch"].items()):
            lines.append(kernel.ljust(width) + f"{c['served']:>6}  {c['declined']:>8}  "
                                               f"{c['fallback']:>8}  {c.get('unclaimed', 0):>8}")
        lines.append("")
    if summary["dispatch"] and summary["claims"]:
        lines.append("unclaimed: declined or fallback calls on an input the backend does not "
                     "claim (NumPy: the error checks' input, or a step's host copy below)")
    if summary.get("host_copies"):
        lines.append(f"steps that took the {summary['array_type']} input to the host (all "
                     "ranks; their kernels then ran on NumPy):")
        lines += [f"  {what}: {n}" for what, n in summary["host_copies"].items()]
        lines.append("")
    for r in rows:
        if r["status"] != "pass":
            lines.append(f"{r['status'].upper():5} {r['subject']} / {r['check']}: {r['detail']}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "xfail", "n/a")}
    lines.append(f"conformance: {counts['pass']} passed, {counts['fail']} failed, "
                 f"{counts['xfail']} expected failures, {counts['n/a']} not applicable")
    claims = "claims" if summary["claims"] else "does not claim"
    if summary["skipped"] is None:
        lines.append(f"backend {summary['backend']!r} {claims} {summary['array_type']} input; "
                     f"implements {len(summary['kernels'])} kernel"
                     f"{'s' if len(summary['kernels']) != 1 else ''}")
    lines.append(summary["verdict"])
    return "\n".join(lines)


def _local_rank(comm) -> int:
    """This rank's position among the communicator's ranks on its node (a collective)."""
    import socket

    hosts = comm.allgather(socket.gethostname())
    return hosts[:comm.rank].count(hosts[comm.rank])


def main(argv=None) -> int:
    from ._arrays import ARRAY_TYPES

    parser = argparse.ArgumentParser(prog="python -m spmdlearn_conformance",
                                     description="Certify a spmdlearn backend under mpiexec.")
    parser.add_argument("--backend", required=True, help="installed backend name")
    parser.add_argument("--array-type", default="numpy", choices=list(ARRAY_TYPES),
                        help="the array type fed to the kernels and estimators (default: numpy)")
    parser.add_argument("--estimators", default=None,
                        help="comma-separated subset, or 'none' (kernels and contracts only)")
    parser.add_argument("--quick", action="store_true", help="fewer examples and seeds")
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per check")
    args = parser.parse_args(argv)
    from spmdlearn.comm import get_comm

    comm = get_comm()
    estimators = None if args.estimators is None else (
        [] if args.estimators == "none" else args.estimators.split(","))
    rows, summary = run(args.backend, estimators, args.quick, args.timeout,
                        array_type=args.array_type)
    failed = any(r["status"] == "fail" for r in rows)
    if comm.rank == 0:
        print(report(rows, summary, comm.size, args.quick), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({**summary, "ranks": comm.size, "quick": args.quick,
                           "passed": not failed, "results": rows}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
