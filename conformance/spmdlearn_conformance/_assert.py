"""Collective assertions: every rank raises the same AssertionError, or none does."""

from __future__ import annotations

import hashlib
import re

import numpy as np


def assert_all_ranks(comm, ok: bool, what: str = "check") -> None:
    """Collective: fail on every rank if ``ok`` is false on any rank."""
    verdicts = comm.allgather((bool(ok), what))
    bad = [(r, w) for r, (v, w) in enumerate(verdicts) if not v]
    if bad:
        raise AssertionError("; ".join(f"rank {r}: {w}" for r, w in bad))


def assert_allclose_all_ranks(comm, actual, desired, *, rtol: float, what: str = "") -> None:
    """Collective: ``actual`` equals ``desired`` within ``rtol`` of the largest ``|desired|``."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    ok = actual.shape == desired.shape
    message = f"{what}: shapes {actual.shape} != {desired.shape}"
    if ok:
        scale = float(np.max(np.abs(desired), initial=0.0)) or 1.0
        both_nan = np.isnan(actual) & np.isnan(desired)
        error = np.where(both_nan, 0.0, np.abs(actual - desired))
        worst = float(np.max(error, initial=0.0)) if not np.isnan(error).any() else np.inf
        ok = worst <= rtol * scale
        message = f"{what}: max abs error {worst:.3g} > {rtol:g} * {scale:.3g}"
    assert_all_ranks(comm, ok, message)


def assert_identical_on_all_ranks(comm, value, what: str = "") -> None:
    """Collective: ``value`` (an array or scalar) has the same bits on every rank."""
    digest = hashlib.sha256(np.ascontiguousarray(np.asarray(value)).tobytes()).hexdigest()
    digests = comm.allgather(digest)
    assert_all_ranks(comm, len(set(digests)) == 1, f"{what}: differs across ranks")


def assert_raises_on_all_ranks(comm, exc_type, fn, *, match: str | None = None) -> None:
    """Collective: ``fn()`` raises ``exc_type`` (message matching ``match``) on every rank."""
    name = getattr(exc_type, "__name__", None) or " or ".join(t.__name__ for t in exc_type)
    try:
        fn()
    except exc_type as exc:
        ok = match is None or re.search(match, str(exc), re.S) is not None
        what = f"raised {type(exc).__name__} but {match!r} not in: {exc}"
    except Exception as exc:  # noqa: BLE001
        ok, what = False, f"raised {type(exc).__name__} instead of {name}: {exc}"
    else:
        ok, what = False, f"did not raise {name}"
    assert_all_ranks(comm, ok, what)
