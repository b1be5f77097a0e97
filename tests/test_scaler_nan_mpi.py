"""Scalers treat NaN as missing data, as scikit-learn's do, over all ranks' rows.

NaN is disregarded by ``fit`` (per-feature statistics of the non-NaN values; StandardScaler's
``n_samples_seen_`` becomes per-feature counts where they differ) and kept by ``transform`` and
``inverse_transform``; infinity is still refused, on every rank. Each case compares with
scikit-learn's scaler fitted on the ranks' rows gathered (``comm.allgather``), whichever ranks
hold NaN: one rank only, every rank, a feature all NaN on every rank, a rank without rows.
"""

import warnings

import numpy as np
import pytest
from sklearn import preprocessing as skp

from spmdlearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from spmdlearn_conformance import assert_all_ranks, assert_raises_on_all_ranks

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(120)]

SCALERS = {
    "standard": (lambda: StandardScaler(), lambda: skp.StandardScaler(), True),
    "standard-no-mean": (lambda: StandardScaler(with_mean=False),
                         lambda: skp.StandardScaler(with_mean=False), True),
    "standard-no-std": (lambda: StandardScaler(with_std=False),
                        lambda: skp.StandardScaler(with_std=False), True),
    "standard-neither": (lambda: StandardScaler(with_mean=False, with_std=False),
                         lambda: skp.StandardScaler(with_mean=False, with_std=False), True),
    "minmax": (lambda: MinMaxScaler((-1, 2)), lambda: skp.MinMaxScaler((-1, 2)), False),
    "minmax-clip": (lambda: MinMaxScaler(clip=True), lambda: skp.MinMaxScaler(clip=True), False),
    "maxabs": (lambda: MaxAbsScaler(), lambda: skp.MaxAbsScaler(), False),
}

#: Where the NaN are: on the last rank's rows only, on every rank, a feature NaN on every rank
#: (besides NaN on every rank), and NaN on every rank but the first, which holds no rows.
PATTERNS = ("one-rank", "all-ranks", "all-nan-feature", "empty-rank")

N_FEATURES = 4


def _shard(comm, pattern, dtype, seed=0):
    """This rank's rows (and weights) for ``pattern``: sizes differ from rank to rank."""
    rank, size = comm.rank, comm.size
    rng = np.random.default_rng([seed, rank, size])
    n = 0 if pattern == "empty-rank" and rank == 0 and size > 1 else 5 + 3 * rank
    X = (rng.normal(size=(n, N_FEATURES)) * [1.0, 3.0, 0.5, 2.0] + [10.0, -5.0, 0.0, 1e3])
    w = rng.uniform(0.1, 2.0, n)
    if pattern == "one-rank":
        if rank == size - 1:
            X[rng.random(X.shape) < 0.3] = np.nan
            X[0, 1] = np.nan  # at least one NaN on this rank
    else:
        X[rng.random(X.shape) < 0.25] = np.nan
        if n:
            X[0, 0] = np.nan
    if pattern == "all-nan-feature":
        X[:, 2] = np.nan
    return X.astype(dtype), w


def _gathered(comm, *arrays):
    """Every rank's rows of each array, in rank order (the data scikit-learn is fitted on)."""
    return tuple(np.concatenate(comm.allgather(a), axis=0) for a in arrays)


def _assert_close(comm, actual, desired, rtol, what):
    """Collective: NaN at the same places, the other values within ``rtol`` of the largest
    ``|desired|`` (assert_allclose_all_ranks scales by a maximum that NaN would make NaN)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    ok = actual.shape == desired.shape
    message = f"{what}: shapes {actual.shape} != {desired.shape}"
    if ok:
        ok = np.array_equal(np.isnan(actual), np.isnan(desired))
        message = f"{what}: NaN at other places than scikit-learn's"
    if ok:
        known = ~np.isnan(desired)
        scale = float(np.max(np.abs(desired[known]), initial=0.0)) or 1.0
        worst = float(np.max(np.abs(actual[known] - desired[known]), initial=0.0))
        ok = worst <= rtol * scale
        message = f"{what}: max abs error {worst:.3g} > {rtol:g} * {scale:.3g}"
    assert_all_ranks(comm, ok, message)


def _sklearn(make, X, sample_weight=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # its nanmin/nanmax of all-NaN slices
        est = make()
        return est.fit(X) if sample_weight is None else est.fit(X, sample_weight=sample_weight)


def _same_model(comm, est, ref, rtol):
    for name in est._model_attributes:
        mine, expected = getattr(est, name), getattr(ref, name)
        if expected is None:
            assert_all_ranks(comm, mine is None, f"{name} is None")
            continue
        assert_all_ranks(comm, np.shape(mine) == np.shape(expected),
                         f"{name}: shape {np.shape(mine)} != scikit-learn's {np.shape(expected)}")
        _assert_close(comm, mine, expected, rtol, name)


def _same_transforms(comm, est, ref, X_local, rtol):
    expected = expected_back = np.empty_like(X_local)  # scikit-learn refuses zero rows
    if len(X_local):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # scikit-learn's x / nan
            expected = ref.transform(X_local)
            expected_back = ref.inverse_transform(expected)
    Z = est.transform(X_local)
    assert_all_ranks(comm, Z.dtype == X_local.dtype, "transform keeps the dtype")
    assert_all_ranks(comm, np.array_equal(np.isnan(Z), np.isnan(expected)),
                     "transform keeps NaN where scikit-learn does")
    assert_all_ranks(comm, bool(np.isnan(Z[np.isnan(X_local)]).all()),
                     "transform keeps every NaN of the input")
    _assert_close(comm, Z, expected, rtol, "transform")
    back = est.inverse_transform(Z)
    assert_all_ranks(comm, bool(np.isnan(back[np.isnan(X_local)]).all()),
                     "inverse_transform keeps NaN")
    _assert_close(comm, back, expected_back, rtol, "inverse_transform")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("name, weighted", [(n, w) for n, s in SCALERS.items()
                                            for w in ([False, True] if s[2] else [False])])
def test_nan_is_missing_as_in_sklearn(comm, name, weighted, pattern, dtype):
    ours, theirs, _ = SCALERS[name]
    X_local, w_local = _shard(comm, pattern, dtype)
    w_local = w_local if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow warning from NaN
        est = ours().fit(X_local, sample_weight=w_local) if weighted else ours().fit(X_local)
    X, = _gathered(comm, X_local)
    w = _gathered(comm, w_local)[0] if weighted else None
    ref = _sklearn(theirs, X, w)
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    _same_model(comm, est, ref, rtol)
    _same_transforms(comm, est, ref, X_local, rtol * 10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["standard", "minmax", "maxabs"])
def test_partial_fit_batches_with_nan(comm, name, dtype):
    # batches of 3 rows: some hold NaN, some not; rank 0 holds no rows at -n 2 and above
    ours, theirs, weighted = SCALERS[name]
    X_local, w_local = _shard(comm, "empty-rank", dtype, seed=1)
    X_local[3:6] = np.abs(X_local[3:6]) + 1.0  # a batch without NaN on ranks with rows
    est = ours()
    error = None
    try:  # partial_fit is local: its errors are agreed before the collective finalize_fit
        for lo in range(0, len(X_local), 3):
            if weighted:
                est.partial_fit(X_local[lo:lo + 3], sample_weight=w_local[lo:lo + 3])
            else:
                est.partial_fit(X_local[lo:lo + 3])
    except Exception as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    assert_all_ranks(comm, error is None, f"partial_fit raised {error}")
    est.finalize_fit()
    X, w = _gathered(comm, X_local, w_local)
    ref = _sklearn(theirs, X, w if weighted else None)
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    _same_model(comm, est, ref, rtol)
    _same_transforms(comm, est, ref, X_local, rtol * 10)


def test_nan_free_shards_keep_the_kernel(comm, monkeypatch):
    # The NaN-aware reference reads only the shards that hold a NaN; the others go to the
    # column_stats_local kernel, and the ranks still merge to scikit-learn's statistics.
    from spmdlearn.preprocessing import _data

    calls = []
    original = _data.nan_column_stats_local
    monkeypatch.setattr(_data, "nan_column_stats_local",
                        lambda X, w: calls.append(len(X)) or original(X, w))
    X_local, _ = _shard(comm, "one-rank", np.float64, seed=2)
    est = StandardScaler().fit(X_local)
    holds_nan = bool(np.isnan(X_local).any())
    assert_all_ranks(comm, len(calls) == (1 if holds_nan else 0),
                     f"NaN-aware path taken {len(calls)} time(s), holding NaN: {holds_nan}")
    X, = _gathered(comm, X_local)
    _same_model(comm, est, _sklearn(skp.StandardScaler, X), 1e-10)


def test_no_nan_n_samples_seen_is_one_number(comm):
    X_local, _ = _shard(comm, "one-rank", np.float64, seed=3)
    X_local = np.nan_to_num(X_local)
    est = StandardScaler().fit(X_local)
    X, = _gathered(comm, X_local)
    assert_all_ranks(comm, np.ndim(est.n_samples_seen_) == 0 and est.n_samples_seen_ == len(X),
                     f"n_samples_seen_={est.n_samples_seen_!r}, expected {len(X)}")


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("name", ["standard", "minmax", "maxabs"])
def test_infinity_is_refused_on_every_rank(comm, name, sign):
    ours, _, _ = SCALERS[name]
    X_local, _ = _shard(comm, "all-ranks", np.float64, seed=4)
    bad = comm.size - 1
    if comm.rank == bad:
        X_local[-1, 1] = sign * np.inf
    match = (f"rank {bad}" if comm.size > 1 else "") + ".*Input X contains infinity"
    assert_raises_on_all_ranks(comm, ValueError, lambda: ours().fit(X_local), match=match)
    est = ours()
    # partial_fit is local: the rank with infinity refuses its batch, the others take theirs
    try:
        est.partial_fit(X_local)
        refused = False
    except ValueError as exc:
        refused = "Input X contains infinity" in str(exc)
    assert_all_ranks(comm, refused == (comm.rank == bad), "partial_fit refuses infinity locally")
    fitted = ours().fit(np.where(np.isinf(X_local), np.nan, X_local))
    assert_raises_on_all_ranks(comm, ValueError, lambda: fitted.transform(X_local), match=match)


@pytest.mark.parametrize("name", ["standard", "minmax", "maxabs"])
def test_nan_in_array_api_input(comm, name):
    # The NaN-aware statistics run in the input's namespace; results stay in its type.
    xp = pytest.importorskip("array_api_strict")
    ours, theirs, weighted = SCALERS[name]
    X_local, w_local = _shard(comm, "all-nan-feature", np.float64, seed=5)
    kwargs = {"sample_weight": xp.asarray(w_local)} if weighted else {}
    est = ours().fit(xp.asarray(X_local), **kwargs)
    X, w = _gathered(comm, X_local, w_local)
    ref = _sklearn(theirs, X, w if weighted else None)
    _same_model(comm, est, ref, 1e-10)
    Z = est.transform(xp.asarray(X_local))
    assert_all_ranks(comm, type(Z) is type(xp.asarray(X_local)), "transform keeps the array type")
    expected = np.empty_like(X_local)
    if len(X_local):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = ref.transform(X_local)
    _assert_close(comm, np.asarray(Z), expected, 1e-9, "transform")


@pytest.mark.parametrize("name", ["standard", "minmax", "maxabs"])
def test_each_batch_is_read_once_without_nan(comm, name, monkeypatch):
    """A batch without NaN is read once, by the ``column_stats_local`` kernel (the finiteness
    check rides in its partial, as in the other incremental estimators); a batch holding a NaN
    twice (the kernel, then the NaN-aware reference). They were read by ``all_finite`` first,
    then again."""
    from spmdlearn import _backends
    from spmdlearn.preprocessing import _data

    nan_reads = []
    original = _data.nan_column_stats_local
    monkeypatch.setattr(_data, "nan_column_stats_local",
                        lambda X, w: nan_reads.append(len(X)) or original(X, w))
    ours, theirs, _ = SCALERS[name]
    X_local, _ = _shard(comm, "one-rank", np.float64, seed=6)
    clean = np.nan_to_num(X_local, nan=1.5)
    est = ours()
    _backends.reset_dispatch_counts()
    batches = [clean[lo:lo + 4] for lo in range(0, len(clean), 4)] + [X_local]
    for batch in batches:
        est.partial_fit(batch)
    reads = {kernel: sum(c.values()) for (_, kernel), c in _backends.dispatch_counts().items()}
    holds_nan = bool(np.isnan(X_local).any())
    expected = {"column_stats_local": len(batches)}
    assert_all_ranks(comm, reads == expected and len(nan_reads) == int(holds_nan),
                     f"kernel calls {reads}, expected {expected}; NaN-aware reads {nan_reads}")
    est.finalize_fit()
    X, C = _gathered(comm, X_local, clean)
    ref = _sklearn(theirs, np.concatenate([C, X]))
    _same_model(comm, est, ref, 1e-10)


def test_finite_values_whose_sums_overflow_are_not_missing(comm):
    # finite values near the float64 limit make the kernel's sums overflow: neither NaN nor
    # infinity, so they are accepted and counted as values (no feature has a missing value)
    X_local, _ = _shard(comm, "one-rank", np.float64, seed=7)
    X_local = np.nan_to_num(X_local, nan=0.5)
    X_local[:, 1] = np.where(np.arange(len(X_local)) % 2, 1.7e308, -1.7e308)
    X, = _gathered(comm, X_local)
    for ours, theirs in ((MinMaxScaler, skp.MinMaxScaler), (MaxAbsScaler, skp.MaxAbsScaler)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            est = ours().fit(X_local)
        ref = _sklearn(theirs, X)
        for attr in ("data_min_", "data_max_") if ours is MinMaxScaler else ("max_abs_",):
            _assert_close(comm, getattr(est, attr), getattr(ref, attr), 0, attr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        est = StandardScaler().fit(X_local)
    assert_all_ranks(comm, np.ndim(est.n_samples_seen_) == 0 and est.n_samples_seen_ == len(X),
                     f"n_samples_seen_={est.n_samples_seen_!r}, expected {len(X)} (no NaN)")


@pytest.mark.parametrize("with_mean", [True, False])
def test_nan_in_a_batch_of_zero_weights(comm, with_mean):
    # A batch whose weights are all zero has moments 0 whatever it holds, and a kernel's
    # extremes may skip NaN: its NaN must still count as missing (scikit-learn counts the
    # non-NaN values in n_samples_seen_ when it takes neither mean nor std)
    X_local, w_local = _shard(comm, "one-rank", np.float64, seed=8)
    X_local = np.nan_to_num(X_local, nan=2.0)
    X_local[:1, 1] = np.nan  # beside a value in the same column of the batch
    w_local[:2] = 0.0
    make = lambda: StandardScaler(with_mean=with_mean, with_std=with_mean)  # noqa: E731
    est = make()
    for lo, hi in ((0, 2), (2, len(X_local))):
        est.partial_fit(X_local[lo:hi], sample_weight=w_local[lo:hi])
    est.finalize_fit()
    X, w = _gathered(comm, X_local, w_local)
    _same_model(comm, est, _sklearn(lambda: skp.StandardScaler(with_mean=with_mean,
                                                               with_std=with_mean), X, w), 1e-10)
