"""Array-valued parameters in the user's own array type, under mpiexec.

``KMeans(init=<array-api-strict array>)`` and ``Ridge(alpha=<array-api-strict array>)`` used to
be refused by the parameter check ("must be ... an array-like"), which took only lists, tuples
and NumPy arrays. An array of any array type spmdlearn takes as rows now works as the NumPy
array of the same values does: the same model as scikit-learn's with the NumPy value, the same
errors, values compared across ranks (its repr elides a large array's values), and
``to_sklearn()`` holding the NumPy value.
"""

import warnings

import numpy as np
import pytest
import sklearn.cluster
import sklearn.linear_model

from spmdlearn.cluster import KMeans
from spmdlearn.linear_model import Ridge
from _shards import uneven_data
from spmdlearn_conformance import assert_all_ranks, assert_raises_on_all_ranks

xp = pytest.importorskip("array_api_strict")

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(60)]

INIT = np.array([[-1.0, 0.0, 0.5, 0.0], [1.0, 0.5, -0.5, 0.2], [0.0, -1.0, 0.0, 1.0]])


def _gathered(world, *arrays):
    return [np.concatenate(world.allgather(a)) for a in arrays]


@pytest.mark.parametrize("rows", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("n_init", ["auto", 1, 3])
def test_kmeans_init_in_the_users_array_type(world, rows, n_init):
    X, _ = uneven_data(world)
    (X_all,) = _gathered(world, X)
    data = X if rows == "numpy" else xp.asarray(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = KMeans(3, init=xp.asarray(INIT), n_init=n_init).fit(data)
    with warnings.catch_warnings(record=True) as ref_caught:
        warnings.simplefilter("always")
        ref = sklearn.cluster.KMeans(3, init=INIT, n_init=n_init).fit(X_all)
    assert_all_ranks(world, np.allclose(est.cluster_centers_, ref.cluster_centers_, rtol=1e-10)
                     and est.n_iter_ == ref.n_iter_, f"centers {est.cluster_centers_} vs "
                     f"{ref.cluster_centers_}")
    said = any("Explicit initial center" in str(w.message) for w in caught)
    ref_said = any("Explicit initial center" in str(w.message) for w in ref_caught)
    assert_all_ranks(world, said == ref_said, f"n_init={n_init}: warned {said}, scikit-learn "
                                              f"{ref_said}")
    sk = est.to_sklearn()
    assert_all_ranks(world, isinstance(sk.init, np.ndarray) and np.array_equal(sk.init, INIT),
                     f"to_sklearn().init is {type(sk.init)}")
    assert_all_ranks(world, np.array_equal(sk.predict(X_all), ref.predict(X_all)),
                     "to_sklearn().predict")


def test_kmeans_init_of_the_wrong_shape_is_refused_on_every_rank(world):
    X, _ = uneven_data(world)
    assert_raises_on_all_ranks(world, ValueError,
                               lambda: KMeans(3, init=xp.asarray(INIT[:2])).fit(X),
                               match=r"shape of the initial centers \(2, 4\)")


def test_kmeans_inits_that_differ_across_ranks_are_refused(world):
    if world.size == 1:
        pytest.skip("needs two ranks")
    X, _ = uneven_data(world)
    # a large init whose repr elides its middle values: they differ on the last rank only
    big = np.zeros((300, 4))
    big[150, 2] = 1.0 if world.rank == world.size - 1 else 0.0
    X_big = np.repeat(X, 10, axis=0) + np.arange(X.shape[0] * 10)[:, None] * 1e-3
    assert_raises_on_all_ranks(world, ValueError,
                               lambda: KMeans(300, init=xp.asarray(big)).fit(X_big),
                               match=r"parameters differ across ranks: init")


@pytest.mark.parametrize("rows", ["numpy", "array_api_strict"])
def test_ridge_alpha_per_target_in_the_users_array_type(world, rows):
    X, y = uneven_data(world)
    Y = np.c_[y, 2 * y + X[:, 0]]
    X_all, Y_all = _gathered(world, X, Y)
    alpha = np.array([0.5, 3.0])
    data = (X, Y) if rows == "numpy" else (xp.asarray(X), xp.asarray(Y))
    est = Ridge(alpha=xp.asarray(alpha)).fit(*data)
    ref = sklearn.linear_model.Ridge(alpha=alpha).fit(X_all, Y_all)
    assert_all_ranks(world, np.allclose(est.coef_, ref.coef_, rtol=1e-9)
                     and np.allclose(est.intercept_, ref.intercept_, rtol=1e-9),
                     f"coef {est.coef_} vs {ref.coef_}")
    assert_all_ranks(world, isinstance(est.to_sklearn().alpha, np.ndarray), "to_sklearn alpha")
    assert_raises_on_all_ranks(world, ValueError,
                               lambda: Ridge(alpha=xp.asarray([1.0, 2.0, 3.0])).fit(*data),
                               match="Number of targets and number of penalties")


def test_foreign_arrays_compare_by_their_values():
    """Parameters are compared by :func:`spmdlearn._base._canonical`: a large array-API array
    by its values (dtype, shape, bytes), not by its repr, which elides the middle values."""
    from spmdlearn._base import _canonical

    a, b = np.zeros((300, 4)), np.zeros((300, 4))
    b[150, 2] = 1.0
    assert repr(xp.asarray(a)) == repr(xp.asarray(b))
    assert _canonical(xp.asarray(a)) != _canonical(xp.asarray(b))
    assert _canonical(xp.asarray(a)) == _canonical(a)
