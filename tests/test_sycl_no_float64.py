"""Devices without float64 (many SYCL GPUs): float32 dpnp input runs every estimator with no
float64 array on the device, and gives the float32 NumPy results; float64 input is refused
with a clear error, never downgraded.

The OpenCL CPU device has float64, so the device's answer is replaced where spmdlearn asks it
(``spmdlearn._array_api._device_has_float64``, the one place) and where dpnp asks it
(``dpnp.default_float_type``), and every dpnp array made meanwhile is watched for float64. Skipped, with the reason, where dpnp or a device is missing.
"""

from __future__ import annotations

import traceback

import numpy as np
import pytest

import spmdlearn._array_api as array_api
from spmdlearn._array_api import has_float64

pytestmark = [pytest.mark.serial, pytest.mark.timeout(600)]

# The estimators and data of the array-API test: every estimator, with its per-row calls.
from test_array_api_mpi import ESTIMATORS, _data, _fit, _fitted  # noqa: E402



@pytest.fixture
def no_float64(dpnp, monkeypatch):
    """The device says it has no float64; returns the list of float64 dpnp arrays made since
    (with where each was made)."""
    monkeypatch.setattr(array_api, "_device_has_float64",
                        lambda x: not hasattr(x, "sycl_device"))
    # dpnp's own default float type (bincount's weights, ...) asks the device too
    monkeypatch.setattr(dpnp, "default_float_type", lambda *args, **kwargs: dpnp.float32)
    made = []
    cls = dpnp.ndarray
    create, init = cls._create_from_usm_ndarray, cls.__init__

    def note(dtype):
        if np.dtype(dtype) == np.float64:
            here = [f"{f.filename.split('/')[-1]}:{f.lineno} {f.name}"
                    for f in traceback.extract_stack()[:-2] if "spmdlearn" in f.filename]
            made.append(" <- ".join(reversed(here[-4:])))

    def watched_create(usm):
        note(usm.dtype)
        return create(usm)

    def watched_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        note(self.dtype)

    monkeypatch.setattr(cls, "_create_from_usm_ndarray", staticmethod(watched_create))
    monkeypatch.setattr(cls, "__init__", watched_init)
    return made


def test_the_device_is_asked_in_one_place(dpnp, no_float64):
    x = dpnp.ones(3, dtype=dpnp.float32)
    assert not has_float64(x) and has_float64(np.ones(3))
    from spmdlearn_sycl._device import float_type

    assert float_type(x) == dpnp.float32
    assert no_float64 == []


def _host(value, dpnp):
    return dpnp.asnumpy(value) if isinstance(value, dpnp.ndarray) else value


def _close(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc" or b.dtype.kind in "fc":
        scale = max(float(np.max(np.abs(b), initial=0.0, where=np.isfinite(b))), 1.0)
        return a.shape == b.shape and np.allclose(a, b, rtol=0, atol=2e-4 * scale,
                                                  equal_nan=True)
    return a.shape == b.shape and np.array_equal(a, b)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_float32_runs_without_float64_on_the_device(dpnp, no_float64, name):
    factory, target, weighted, calls = ESTIMATORS[name]
    X, labels, y_reg, w = _data(np.float32)
    y = {"class": labels, "reg": y_reg, None: None}[target]
    w = w if weighted else None
    expected = _fit(factory(), X, y, w)
    got = _fit(factory(), dpnp.asarray(X), None if y is None else dpnp.asarray(y),
               None if w is None else dpnp.asarray(w))
    assert no_float64 == [], f"float64 arrays made on the device: {no_float64}"
    ours, theirs = _fitted(got), _fitted(expected)
    assert set(ours) == set(theirs)
    for key in theirs:
        a, b = ours[key], theirs[key]
        if isinstance(b, (list, tuple)):
            continue  # per-tree structures: compared through the predictions
        assert _close(a, b), f"{name}.{key}: {a} != {b}"
    for label, call in calls:
        result = call(got, dpnp.asarray(X))
        assert no_float64 == [], f"{label}: float64 arrays made on the device: {no_float64}"
        assert _close(_host(result, dpnp), call(expected, X)), f"{name} {label}"


@pytest.mark.parametrize("which", ["X", "y", "sample_weight", "int X"])
def test_float64_input_is_refused_not_downgraded(dpnp, no_float64, which):
    from spmdlearn.linear_model import LinearRegression

    X, _, y, w = _data(np.float32)
    args = {"X": dpnp.asarray(X), "y": dpnp.asarray(y), "sample_weight": dpnp.asarray(w)}
    if which == "int X":
        args["X"] = dpnp.asarray(np.round(X).astype(np.int64))
        match = "X is int64, which becomes float64, on a device without float64"
    else:
        args[which] = dpnp.asarray(args[which], dtype=dpnp.float64)
        match = f"{which} is float64 on a device without float64"
        if which == "y":  # y takes X's dtype, as in scikit-learn: X float64 says so first
            args["X"] = dpnp.asarray(X.astype(np.float64))
            match = "X is float64 on a device without float64"
    with pytest.raises(ValueError, match=match) as info:
        LinearRegression().fit(args["X"], args["y"], sample_weight=args["sample_weight"])
    assert "astype('float32')" in str(info.value)
