"""float64 input on a rank whose SYCL device lacks float64: the same clear error on every
rank, naming that rank (the device's answer replaced where spmdlearn asks it, on one rank)."""

from __future__ import annotations

import numpy as np
import pytest

import spmdlearn._array_api as array_api
from spmdlearn_conformance import assert_all_ranks

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]


def test_float64_on_a_device_without_it_raises_on_every_rank(comm, monkeypatch, dpnp):
    from spmdlearn.preprocessing import StandardScaler

    lacking = comm.size - 1  # the last rank's device has no float64
    if comm.rank == lacking:
        monkeypatch.setattr(array_api, "_device_has_float64", lambda x: False)
    X = np.arange(12.0).reshape(4, 3) + comm.rank
    with pytest.raises(ValueError) as info:
        StandardScaler().fit(dpnp.asarray(X))
    text = str(info.value)
    ok = "X is float64 on a device without float64" in text and "astype('float32')" in text
    if comm.size > 1:
        ok = ok and f"rank {lacking}:" in text and f"failed on 1 of {comm.size} ranks" in text
    assert_all_ranks(comm, ok, text)
    # float32 runs there, and on every other rank
    Xt = StandardScaler().fit_transform(dpnp.asarray(X.astype(np.float32)))
    assert_all_ranks(comm, isinstance(Xt, dpnp.ndarray) and Xt.dtype == np.float32,
                     f"{type(Xt)} {Xt.dtype}")
