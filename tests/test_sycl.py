"""The sycl backend's exactness where the reference's decisions hang on the last bit, its
dispatch accounting and output placement, on dpnp arrays.

Skipped, with the reason, where dpnp, dpctl or a SYCL device is missing (the OpenCL CPU device
of ``intel-opencl-rt`` will do, with ``OCL_ICD_FILENAMES`` pointing at its ``libintelocl.so``:
tests/run_all.py sets it).
"""

from __future__ import annotations

import numpy as np
import pytest

from spmdlearn import reference as ref

pytestmark = pytest.mark.serial


def _dpnp():
    try:
        import dpctl
        import dpnp

        dpctl.SyclQueue()
    except Exception as exc:  # noqa: BLE001 - missing library, runtime or device: skip, saying why
        return exc
    return dpnp


_DPNP = _dpnp()


@pytest.fixture
def dpnp():
    if isinstance(_DPNP, Exception):
        pytest.skip(f"sycl backend not runnable here: {_DPNP!r}")
    return _DPNP


def test_sqrt_is_correctly_rounded(dpnp):
    from spmdlearn_sycl._exact import sqrt_rn

    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(0, 1e17, 200_000), np.exp(rng.uniform(-744, 709, 200_000)),
                        rng.uniform(0.5, 2.0, 200_000),
                        [0.0, 5e-324, 2.2e-308, 0.25, 0.5, 1.0, 2.0, 4.0, 1.7976931348623157e308,
                         np.inf]])
    np.testing.assert_array_equal(dpnp.asnumpy(sqrt_rn(dpnp.asarray(a))), np.sqrt(a))
    assert np.isnan(dpnp.asnumpy(sqrt_rn(dpnp.asarray([np.nan])))[0])


def _far_blocks(dtype, seed=0):
    """Queries and candidates far from the origin, with a duplicated candidate: distances that
    tie after rounding, and differ by an ulp where a square root is not correctly rounded."""
    rng = np.random.default_rng(seed)
    X = (1e8 + rng.normal(size=(300, 4))).astype(dtype)
    Y = np.concatenate([X[:150], X[:1]])
    return X[100:], Y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("metric,p", [("euclidean", None), ("minkowski", 2.0),
                                      ("minkowski", 3.0), ("minkowski", np.inf),
                                      ("manhattan", None), ("chebyshev", None)])
def test_knn_merge_far_from_origin_is_the_reference(dpnp, dtype, metric, p):
    from spmdlearn_sycl._neighbors import knn_merge

    X, Y = _far_blocks(dtype)
    y_index = np.arange(len(Y), dtype=np.int64)
    k = 4
    init = (np.full((len(X), k), np.inf), np.full((len(X), k), -1, np.int64))
    want = ref.knn_merge(X, Y, y_index, *init, metric, p)
    got = knn_merge(dpnp.asarray(X), dpnp.asarray(Y), y_index, *init, metric, p)
    np.testing.assert_array_equal(dpnp.asnumpy(got[1]), want[1])
    np.testing.assert_array_equal(dpnp.asnumpy(got[0]), want[0])


@pytest.mark.parametrize("metric,p", [("euclidean", None), ("minkowski", 3.0)])
def test_radius_boundary_far_from_origin_is_the_reference(dpnp, metric, p):
    from spmdlearn_sycl import _neighbors

    X, Y = _far_blocks(np.float64, seed=1)
    d = ref.block_distances(X[:20], Y[:20], metric, p)
    for eps in np.unique(d)[:40]:  # radii exactly at distances
        got = _neighbors.radius_neighbors_csr(dpnp.asarray(X), dpnp.asarray(Y),
                                              np.arange(len(Y), dtype=np.int64), float(eps),
                                              metric, p, None)
        want = ref.radius_neighbors_csr(X, Y, np.arange(len(Y), dtype=np.int64), float(eps),
                                        metric, p, None)
        np.testing.assert_array_equal(dpnp.asnumpy(got[1]), want[1])
        np.testing.assert_array_equal(dpnp.asnumpy(got[2]), want[2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel", ["kmeans_assign", "kmeans_lloyd_local"])
def test_kmeans_ties_are_the_reference(dpnp, dtype, kernel):
    """Duplicated centers and rows exactly between two centers: the reference's BLAS rounds
    these scores apart in the last bit, and the device must decide as it does."""
    from spmdlearn_sycl import _kmeans

    for seed in range(20):
        rng = np.random.default_rng(seed)
        X = (1e8 + rng.normal(size=(300, 3))).astype(dtype)
        Xc = X - X.mean(0).astype(dtype)
        centers = Xc[rng.integers(0, 300, 3)].astype(np.float64)
        centers[1] = centers[0]
        centers[2] = 2 * np.asarray(Xc[0], np.float64) - centers[0]
        if kernel == "kmeans_assign":
            want = ref.kmeans_assign(Xc, centers)[0]
            got = _kmeans.kmeans_assign(dpnp.asarray(Xc), centers)[0]
        else:
            w, old = np.ones(len(Xc)), np.full(len(Xc), -1, np.int32)
            want = ref.lloyd_local(Xc, w, centers, old)[0]
            got = _kmeans.lloyd_local(dpnp.asarray(Xc), w, centers, old)[0]
        np.testing.assert_array_equal(dpnp.asnumpy(got), want, err_msg=f"seed {seed}")


def test_placement_check_sees_another_queue(dpnp):
    import dpctl

    from spmdlearn_conformance._arrays import same_place

    q1, q2 = dpctl.SyclQueue(), dpctl.SyclQueue()
    a = dpnp.zeros(3, sycl_queue=q1)
    assert same_place(dpnp.ones(3, sycl_queue=q1), a) is None
    assert "not the input's" in same_place(dpnp.ones(3, sycl_queue=q2), a)


def test_declines_on_host_copies_are_counted_apart(dpnp):
    """With the sycl backend selected, a kernel called on NumPy rows (an algorithm step that
    took the input to the host) is declined, and counted as unclaimed; a kernel on dpnp rows is
    served."""
    import spmdlearn
    from spmdlearn import _backends

    X = np.random.default_rng(0).normal(size=(20, 3))
    _backends.reset_dispatch_counts()
    with spmdlearn.config_context(backend="sycl"):
        _backends.call_kernel("moments_local", X=X, sample_weight=None)
        _backends.call_kernel("moments_local", X=dpnp.asarray(X), sample_weight=None)
    assert _backends.dispatch_counts()[("sycl", "moments_local")] == {
        "served": 1, "declined": 1, "fallback": 0}
    assert _backends.unclaimed_counts() == {("sycl", "moments_local"): 1}


@pytest.mark.timeout(120)
def test_info_lists_each_ranks_sycl_devices(dpnp):
    import os
    import subprocess
    import sys

    from run_all import mpiexec_command

    out = subprocess.run(mpiexec_command(2) + [sys.executable, "-m", "spmdlearn", "info"],
                         capture_output=True, text=True, timeout=110,
                         env={**os.environ, "SPMDLEARN_VERBOSE": ""})
    assert out.returncode == 0, out.stdout + out.stderr
    import dpctl

    default = dpctl.select_default_device()
    name = f"{default.backend.name}:{default.device_type.name} {default.name}"
    section = out.stdout.split("  sycl ", 1)[1].split("\n  ")[:6]
    for rank in (0, 1):
        assert any(line.strip().startswith(f"rank {rank}: sees") and
                   line.rstrip().endswith(f"would use: {name}") for line in section), out.stdout
