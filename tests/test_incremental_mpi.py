"""Incremental estimators: local partial_fit, collective finalize_fit, the same model as the
non-incremental estimator on all rows seen by all ranks."""

import pickle
import re
import warnings

import numpy as np
import pytest

import spmdlearn

from spmdlearn.basic_statistics import BasicStatistics, IncrementalBasicStatistics
from spmdlearn.covariance import EmpiricalCovariance, IncrementalEmpiricalCovariance
from spmdlearn.decomposition import PCA, IncrementalPCA
from spmdlearn.hookspec import hookimpl
from spmdlearn.linear_model import IncrementalLinearRegression, LinearRegression
from spmdlearn_conformance import (
    assert_all_ranks,
    assert_allclose_all_ranks,
    assert_identical_on_all_ranks,
    assert_raises_on_all_ranks,
    local_rows,
    make_data,
    random_cuts,
)

pytestmark = pytest.mark.mpi


def _alone(est, X, y=None):
    """Fit ``est`` on this rank alone (COMM_SELF) with the given rows: the reference model."""
    import spmdlearn
    from mpi4py import MPI

    with spmdlearn.config_context(comm=MPI.COMM_SELF):
        return est.fit(X) if y is None else est.fit(X, y)

CASES = {
    "stats": (IncrementalBasicStatistics, BasicStatistics, False, ("mean_", "variance_", "max_")),
    "cov": (lambda: IncrementalEmpiricalCovariance(store_precision=True), EmpiricalCovariance,
            False, ("covariance_", "location_", "precision_")),
    "linreg": (IncrementalLinearRegression, LinearRegression, True, ("coef_", "intercept_")),
    "pca": (lambda: IncrementalPCA(n_components=3),
            lambda: PCA(n_components=3, svd_solver="covariance_eigh"), False,
            ("components_", "explained_variance_", "mean_", "noise_variance_")),
}


def _feed(est, X, y, batch, supervised):
    for lo in range(0, len(X), batch):
        est.partial_fit(X[lo:lo + batch], y[lo:lo + batch] if supervised else None)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_finalize_equals_full_fit(comm, name, batch):
    make_inc, make_full, supervised, attrs = CASES[name]
    X, y = make_data(3, 90, 5, 2)
    cuts = random_cuts(90, comm.size, batch)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    inc = make_inc()
    _feed(inc, X_local, y_local, batch, supervised)  # an empty rank makes no call at all
    inc.finalize_fit()
    full = _alone(make_full(), X, y if supervised else None)
    for attr in attrs:
        assert_allclose_all_ranks(comm, getattr(inc, attr), getattr(full, attr), rtol=1e-7,
                                  what=attr)
        assert_identical_on_all_ranks(comm, getattr(inc, attr), attr)


@pytest.mark.parametrize("name", CASES)
def test_reading_before_finalize_says_what_to_do(comm, name):
    make_inc, _, supervised, attrs = CASES[name]
    X, y = make_data(4, 10, 3, 1)
    est = make_inc().partial_fit(X, y if supervised else None)
    try:
        getattr(est, attrs[0])
        ok = False
    except AttributeError as exc:
        ok = "call finalize_fit() on every rank" in str(exc)
    assert_all_ranks(comm, ok, "attribute before finalize_fit")


@pytest.mark.parametrize("name", CASES)
def test_pickle_keeps_partial_and_partial_fit_continues(comm, name):
    make_inc, make_full, supervised, attrs = CASES[name]
    X, y = make_data(5, 60, 4, 1)
    cuts = random_cuts(60, comm.size, 5)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    half = len(X_local) // 2
    est = make_inc()
    _feed(est, X_local[:half], y_local[:half], 5, supervised)
    est.finalize_fit()
    est = pickle.loads(pickle.dumps(est))  # one rank at a time: no collective in pickling
    _feed(est, X_local[half:], y_local[half:], 5, supervised)
    assert_all_ranks(comm, not hasattr(est, attrs[0]), "stale model dropped by partial_fit")
    est.finalize_fit()  # includes the rows fed after the first finalize
    full = _alone(make_full(), X, y if supervised else None)
    assert_allclose_all_ranks(comm, getattr(est, attrs[0]), getattr(full, attrs[0]), rtol=1e-7,
                              what=attrs[0])


@pytest.mark.parametrize("name", CASES)
def test_fit_uses_batches(comm, name):
    make_inc, make_full, supervised, attrs = CASES[name]
    X, y = make_data(6, 50, 4, 1)
    cuts = random_cuts(50, comm.size, 6)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    est = make_inc().set_params(batch_size=3)
    est = est.fit(X_local, y_local) if supervised else est.fit(X_local)
    full = _alone(make_full(), X, y if supervised else None)
    assert_allclose_all_ranks(comm, getattr(est, attrs[0]), getattr(full, attrs[0]), rtol=1e-7,
                              what=attrs[0])


def test_incremental_errors(comm):
    X, y = make_data(7, 20, 3, 1)
    est = IncrementalLinearRegression()
    est.partial_fit(X[:10], y[:10])
    # A bad batch raises on its rank at once (partial_fit is local) and loses nothing.
    bad = X[10:].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.partial_fit(bad, y[10:])
    with pytest.raises(ValueError, match="X has 2 features, but IncrementalLinearRegression is "
                                         "expecting 3 features"):
        est.partial_fit(X[10:, :2], y[10:])
    est.partial_fit(X[10:], y[10:])
    est.finalize_fit()
    ref = _alone(LinearRegression(), np.tile(X, (comm.size, 1)), np.tile(y, comm.size))
    assert_allclose_all_ranks(comm, est.coef_, ref.coef_, rtol=1e-7, what="nothing lost")
    # n_features differing across ranks is found by the collective finalize_fit.
    if comm.size > 1:
        other = IncrementalBasicStatistics()
        other.partial_fit(X[:, :2] if comm.rank == 0 else X)
        assert_raises_on_all_ranks(comm, ValueError, other.finalize_fit,
                                   match="n_features differs across ranks")
    # finalize with no rows anywhere
    empty = IncrementalBasicStatistics()
    assert_raises_on_all_ranks(comm, ValueError, empty.finalize_fit,
                               match="no rank called partial_fit")
    empty.partial_fit(X[:0])
    assert_raises_on_all_ranks(comm, ValueError, empty.finalize_fit, match="n_samples=0")


#: Reads of each batch by kernels: one pass (co-moments or moments, the finiteness check riding
#: in it), and IncrementalPCA's second for the QR of the batch centered by its mean, as
#: scikit-learn's partial_fit reads a batch for its mean and variance, then for its SVD.
READS_PER_BATCH = {"stats": 1, "cov": 1, "linreg": 1, "pca": 2}


@pytest.mark.parametrize("name", CASES)
def test_each_batch_is_read_once_per_pass(comm, name):
    """``fit`` and ``partial_fit`` read a batch as often as the algorithm needs: the finiteness
    check does not add a pass of its own (it did: ``all_finite`` on every batch)."""
    from spmdlearn import _backends

    make_inc, make_full, supervised, attrs = CASES[name]
    X, y = make_data(8, 40, 4, 1)
    cuts = random_cuts(40, comm.size, 8)
    X_local, y_local = local_rows(cuts, comm.rank, X, y)
    first = "moments_local" if name == "stats" else "comoments_local"
    reads, expected = {}, {}
    for how in ("partial_fit", "fit"):
        est = make_inc().set_params(batch_size=5)
        _backends.reset_dispatch_counts()
        if how == "fit":
            est.fit(X_local, y_local) if supervised else est.fit(X_local)
        else:
            _feed(est, X_local, y_local, 5, supervised)
            est.finalize_fit()
        reads[how] = {kernel: sum(c.values())
                      for (_, kernel), c in _backends.dispatch_counts().items()}
        n_batches = -(-len(X_local) // 5)
        # fit folds an empty rank's rows as one empty batch (nothing to read, nor to factor)
        expected[how] = {first: max(n_batches, 1) if how == "fit" else n_batches}
        if name == "pca":
            expected[how]["tsqr_local"] = n_batches
        expected[how] = {k: v for k, v in expected[how].items() if v}
    assert_all_ranks(comm, reads == expected,
                     f"kernel calls {reads}, expected {expected} ({READS_PER_BATCH[name]} "
                     "read(s) of each batch)")


@pytest.mark.parametrize("name", CASES)
def test_deferred_finiteness_check_still_refuses(comm, name):
    """The finiteness check that rides in the batch's kernel raises scikit-learn's message, at
    once on its rank (partial_fit is local), and the bad batch leaves the state as it was."""
    make_inc, make_full, supervised, attrs = CASES[name]
    X, y = make_data(9, 20, 3, 1)
    for where, value, match in (("X", np.nan, "Input X contains NaN"),
                                ("X", np.inf, "Input X contains infinity"),
                                ("y", np.inf, "Input y contains infinity")):
        if where == "y" and not supervised:
            continue
        est = make_inc()
        _feed(est, X[:10], y[:10], 10, supervised)
        bad_X, bad_y = X[10:].copy(), y[10:].copy()
        (bad_X if where == "X" else bad_y)[2, ...] = value
        with pytest.raises(ValueError, match=match):
            est.partial_fit(bad_X, bad_y) if supervised else est.partial_fit(bad_X)
        _feed(est, X[10:], y[10:], 10, supervised)
        est.finalize_fit()
        full = _alone(make_full(), np.tile(X, (comm.size, 1)),
                      np.tile(y, comm.size) if supervised else None)
        assert_allclose_all_ranks(comm, getattr(est, attrs[0]), getattr(full, attrs[0]),
                                  rtol=1e-7, what=f"nothing lost after a bad {where}")


class _WarningMoments:
    """A backend whose moments kernel warns on any input, then declines (the reference computes
    the moments): the warning stands for one a kernel gives (numpy's overflow, say). Each call's
    message is its own, so that a collective method, which shows each distinct warning once
    (:meth:`spmdlearn.comm.Comm.session`), shows them all."""

    calls = 0

    @hookimpl
    def spmdlearn_moments_local(self, X):
        type(self).calls += 1
        warnings.warn(f"the moments kernel's own warning, call {type(self).calls}", UserWarning)
        return None


@pytest.fixture
def warning_moments():
    """Every kernel call through the backend above; yields its class (``calls``: this rank's)."""
    from spmdlearn import _backends

    pm = _backends.plugin_manager()
    pm.register(_WarningMoments(), name="warning_moments")
    _WarningMoments.calls = 0
    try:
        with spmdlearn.config_context(backend="warning_moments"):
            yield _WarningMoments
    finally:
        pm.unregister(name="warning_moments")
        _backends._availability.pop("warning_moments", None)


# The fits whose finiteness check rides in the moments kernel's partial.
MOMENT_FITS = {
    "BasicStatistics.fit": lambda X: BasicStatistics().fit(X),
    "IncrementalBasicStatistics.fit": lambda X: IncrementalBasicStatistics(batch_size=4).fit(X),
    "IncrementalBasicStatistics.partial_fit": lambda X: _feed(
        IncrementalBasicStatistics(), X, None, 4, False),
    "PCA full": lambda X: PCA(n_components=2, svd_solver="full").fit(X),
}


def _kernel_warnings(caught):
    """The numbers of the kernel calls whose warnings were shown, in order, repeats included."""
    return [int(m.group(1)) for m in (re.search(r"the moments kernel's own warning, call (\d+)",
                                                str(w.message)) for w in caught) if m]


@pytest.mark.parametrize("name", MOMENT_FITS)
def test_kernel_warnings_on_finite_input_are_shown_once(world, warning_moments, name):
    """The kernel's warnings are held while the deferred finiteness check may still refuse the
    rows; for finite rows each is shown, exactly once."""
    X, _ = make_data(11, 10 * world.size, 3, 1)
    X_local = X[10 * world.rank:10 * (world.rank + 1)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every showing is recorded, repeats included
        MOMENT_FITS[name](X_local)
    calls, shown = warning_moments.calls, _kernel_warnings(caught)
    assert_all_ranks(world, calls >= 1 and shown == list(range(1, calls + 1)),
                     f"{name}: the warnings of kernel calls {shown} shown, for {calls} call(s)")


@pytest.mark.parametrize("name", ["BasicStatistics.fit", "IncrementalBasicStatistics.fit",
                                  "IncrementalBasicStatistics.partial_fit"])
def test_infinity_on_one_rank_refuses_without_the_kernels_warnings(world, warning_moments, name):
    """An infinity in one rank's rows: scikit-learn's message on that rank (alone, for the local
    partial_fit), the collective error naming it on every rank for fit; the kernel's warnings
    are not shown beside the error (as when validation checked before the kernel), and the
    other ranks' finite rows show theirs."""
    X, _ = make_data(12, 10 * world.size, 3, 1)
    X_local = X[10 * world.rank:10 * (world.rank + 1)].copy()
    bad = world.size - 1
    if world.rank == bad:
        X_local[6, 1] = np.inf  # in the second batch of four rows
    sklearn_message = "Input X contains infinity or a value too large for dtype('float64')."
    fit = MOMENT_FITS[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if name.endswith("partial_fit"):
            raised = None
            try:
                fit(X_local)
            except ValueError as exc:
                raised = str(exc)
            expected = sklearn_message if world.rank == bad else None
            assert_all_ranks(world, raised == expected,
                             f"{name} raised {raised!r}, expected {expected!r}")
        else:
            rank_text = rf"rank {bad}.*" if world.size > 1 else ""
            assert_raises_on_all_ranks(world, ValueError, lambda: fit(X_local),
                                       match=rank_text + re.escape(sklearn_message))
    calls, shown = warning_moments.calls, _kernel_warnings(caught)
    # the bad rank's kernel runs on its batches up to the infinite one, whose warning is held
    expected = list(range(1, calls if world.rank == bad else calls + 1))
    assert_all_ranks(world, calls >= 1 and shown == expected,
                     f"{name}: the warnings of kernel calls {shown} shown, for {calls} call(s); "
                     f"expected {expected}")


def _scaler():
    from spmdlearn.preprocessing import StandardScaler

    return StandardScaler()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", [*CASES, "scaler"])
def test_refused_first_batch_leaves_no_feature_names(comm, name):
    """A first batch refused by partial_fit leaves the estimator as it was: no
    ``n_features_in_`` nor ``feature_names_in_`` of its own. A rank whose only batch was refused
    (a DataFrame holding infinity) used to keep that batch's column names through
    ``finalize_fit``, so the model's ``feature_names_in_`` differed across ranks."""
    pd = pytest.importorskip("pandas")
    make_inc, _, supervised, _ = CASES.get(name, (_scaler, None, False, None))
    X, y = make_data(10, 12, 3, 1)
    est = make_inc()
    refused = None
    if comm.rank == comm.size - 1:
        bad = pd.DataFrame(np.column_stack([X, X[:, :1]]), columns=["a", "b", "c", "d"])
        bad.iloc[1, 0] = np.inf
        try:
            est.partial_fit(bad, y) if supervised else est.partial_fit(bad)
        except ValueError as exc:
            refused = str(exc)
        left = sorted(k for k in ("n_features_in_", "feature_names_in_") if k in est.__dict__)
        assert_all_ranks(comm, refused is not None and "infinity" in refused and not left,
                         f"refused: {refused!r}; left by the refused batch: {left}")
    else:
        assert_all_ranks(comm, True)
    if comm.size == 1 or comm.rank != comm.size - 1:
        est.partial_fit(X, y) if supervised else est.partial_fit(X)
    if comm.size == 1:
        assert_all_ranks(comm, "feature_names_in_" not in est.__dict__
                         and est.n_features_in_ == 3, "a good batch after the refused one")
        return
    est.finalize_fit()
    names = getattr(est, "feature_names_in_", None)
    names = None if names is None else list(names)
    everywhere = comm.allgather((names, est.n_features_in_))
    assert_all_ranks(comm, all(v == (None, 3) for v in everywhere),
                     f"(feature_names_in_, n_features_in_) per rank: {everywhere}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", CASES)
def test_no_rows_anywhere_is_not_an_overflow(comm, name):
    """Empty batches on every rank: finalize_fit refuses n_samples=0, without the warning (and
    the note in the error) of an overflow: an empty shard's identity extremes (min=+inf,
    max=-inf) are not values near the float64 limit. IncrementalBasicStatistics warned
    "overflow in the reduction moments_combine ... the input has values near the float64
    limit"."""
    import warnings

    make_inc, _, supervised, _ = CASES[name]
    est = make_inc()
    X, y = np.zeros((0, 3)), np.zeros(0)
    est.partial_fit(X, y) if supervised else est.partial_fit(X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_raises_on_all_ranks(comm, ValueError, est.finalize_fit, match="n_samples=0")
    overflow = [str(w.message) for w in caught if "overflow" in str(w.message)]
    assert_all_ranks(comm, not overflow, f"warned: {overflow}")
    # an empty rank beside ranks with rows: no overflow either
    X, y = make_data(12, 8, 3, 1)
    est = make_inc()
    if comm.rank == 0:
        est.partial_fit(X, y) if supervised else est.partial_fit(X)
    else:
        est.partial_fit(X[:0], y[:0]) if supervised else est.partial_fit(X[:0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.finalize_fit()
    overflow = [str(w.message) for w in caught if "overflow" in str(w.message)]
    assert_all_ranks(comm, not overflow, f"warned: {overflow}")
