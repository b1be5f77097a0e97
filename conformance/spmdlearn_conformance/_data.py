"""Data every rank can generate identically, and ways to split it into shards."""

from __future__ import annotations

import numpy as np


def make_data(seed: int, n_samples: int, n_features: int, n_targets: int = 0, *,
              dtype=np.float64, offset: float = 0.0, noise: float = 0.1):
    """Deterministic regression data: the same on every rank for the same arguments.

    Returns ``(X, y)`` with ``y`` None when ``n_targets == 0``, 1-D when 1, else 2-D.
    ``offset`` shifts every column's mean (for numerics checks: mean 1e8, spread 1).
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features)) * rng.uniform(0.5, 2.0, n_features)
    X = X + rng.normal(size=n_features) * 3 + offset
    y = None
    if n_targets:
        coef = rng.normal(size=(n_features, n_targets))
        y = (X - offset) @ coef + rng.normal(size=n_targets) + noise * rng.normal(size=(n_samples, n_targets))
        y = y[:, 0] if n_targets == 1 else y
        y = y.astype(dtype)
    return X.astype(dtype), y


def random_cuts(n_samples: int, n_parts: int, seed: int, *, allow_empty: bool = True) -> np.ndarray:
    """Cut points of a random uneven split of ``n_samples`` rows into ``n_parts`` contiguous parts.

    With ``allow_empty``, some parts may be empty (and, for ``seed % 3 == 0``, the first is).
    """
    rng = np.random.default_rng(seed)
    inner = np.sort(rng.integers(0, n_samples + 1, size=n_parts - 1))
    if allow_empty and n_parts > 1 and seed % 3 == 0:
        inner[0] = 0
    return np.concatenate([[0], inner, [n_samples]]).astype(int)


def local_rows(cuts, rank: int, *arrays):
    """This rank's rows of each array (None stays None) for the split ``cuts``."""
    lo, hi = int(cuts[rank]), int(cuts[rank + 1])
    out = tuple(None if a is None else a[lo:hi] for a in arrays)
    return out[0] if len(out) == 1 else out
