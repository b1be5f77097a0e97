"""spmdlearn_conformance: the checks any spmdlearn backend must pass, under mpiexec.

    mpiexec -n 3 python -m spmdlearn_conformance --backend NAME --array-type TYPE

certifies a backend on an array type (numpy, array_api_strict, dpnp, cupy): its kernels against
the reference on the same input (values, dtype, array type), the contract laws with its kernels,
and every estimator with it selected, counting each kernel call as served, declined or
fallback. See ``python -m spmdlearn_conformance --help``.

The building blocks are public so that a backend's own test-suite can use them:

* data: :func:`make_data`, :func:`random_cuts`, :func:`local_rows`;
* collective assertions: :func:`assert_all_ranks`, :func:`assert_allclose_all_ranks`,
  :func:`assert_identical_on_all_ranks`, :func:`assert_raises_on_all_ranks`;
* the tolerance table: :data:`TOLERANCES`.

Every assertion is collective: each rank computes its verdict, the verdicts are gathered, and
every rank raises the same AssertionError (naming the failing ranks) or none does.
"""

from ._assert import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_identical_on_all_ranks,
    assert_raises_on_all_ranks,
)
from ._data import local_rows, make_data, random_cuts
from ._tolerances import TOLERANCES, tolerance

__all__ = [
    "assert_all_ranks", "assert_allclose_all_ranks", "assert_identical_on_all_ranks",
    "assert_raises_on_all_ranks", "local_rows", "make_data", "random_cuts", "TOLERANCES",
    "tolerance",
]
