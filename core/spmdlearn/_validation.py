"""Input and parameter validation, local first, then agreed across ranks.

Every public ``fit``/``predict``/``transform``/``score`` calls :func:`validate_fit` or
:func:`validate_predict` before its first collective. Each rank checks its own shard; one
``allgather`` carries every rank's verdict and a summary of its shard (rows, features, dtype,
targets); every rank then runs the same cross-rank checks on the same gathered list, so every
rank raises the same exception, naming the ranks and the reasons, or none does.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import assert_all_finite
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted
from sklearn.utils.validation import validate_data

from ._array_api import check_float64_supported, get_namespace, is_foreign_array, numpy_dtype
from ._backends import call_kernel, resolve_backend
from ._base import estimator_params
from ._guard import refuse_sklearn_model_selection
from .comm import Comm, _digest

__all__ = ["Interval", "Options", "validate_params", "validate_fit", "validate_predict", "Shard",
           "check_X", "x_dtype", "as_float", "check_y", "count_nonzero", "check_feature_names_agree",
           "check_deferred_finite", "deferred_finite_moments", "metric_meaning",
           "neighbour_parameter_meaning"]


# -- parameter constraints (data, checked once per fit) ------------------------------------------
@dataclass(frozen=True)
class Interval:
    """A real (or integral) number in ``[left, right]``; ``closed`` is "both", "left", "right", "neither".

    As scikit-learn's ``Interval``: a bound of None is -inf (left) or inf (right), open or
    closed as ``closed`` says (``Interval(Real, 0, None, "left")`` refuses ``inf``), and NaN is
    in no interval."""

    kind: type
    left: float | None
    right: float | None
    closed: str = "both"

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if value != value:  # NaN
            return False
        left = -math.inf if self.left is None else self.left
        right = math.inf if self.right is None else self.right
        if value < left or (value == left and self.closed in ("right", "neither")):
            return False
        if value > right or (value == right and self.closed in ("left", "neither")):
            return False
        return True

    def __str__(self) -> str:
        name = "an int" if self.kind is numbers.Integral else "a float"
        lo = "[" if self.closed in ("both", "left") else "("
        hi = "]" if self.closed in ("both", "right") else ")"
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        return f"{name} in the range {lo}{left}, {right}{hi}"


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values (strings or None)."""

    values: tuple

    def accepts(self, value) -> bool:
        return isinstance(value, (str, type(None))) and value in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


def _accepts(constraint, value) -> bool:
    if constraint == "boolean":
        return isinstance(value, (bool, np.bool_))
    if constraint == "array-like":
        return is_array_parameter(value)
    if constraint is None:
        return value is None
    if constraint is callable:
        return callable(value)
    if constraint == "verbose":
        return isinstance(value, (numbers.Integral, bool, np.bool_)) and value >= 0
    if constraint == "random_state_like":
        return value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool)) \
            or isinstance(value, (np.random.RandomState, np.random.Generator))
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    return constraint.accepts(value)


def is_array_parameter(value) -> bool:
    """Whether a parameter's value is an array: a list, a tuple, a NumPy array, or an array of
    the array API standard (any array type that spmdlearn takes as rows: ``KMeans(init=...)``
    in the user's own array type, as a NumPy array would be)."""
    return isinstance(value, (list, tuple, np.ndarray)) or is_foreign_array(value)


def array_parameter(value, dtype=None) -> np.ndarray:
    """The NumPy value of an array-valued parameter (model-sized; an array of another type
    crosses to the host), as ``numpy.asarray`` gives it for lists and NumPy arrays."""
    from ._array_api import to_host

    return np.asarray(to_host(value) if is_foreign_array(value) else value, dtype=dtype)


def _describe(constraint) -> str:
    if constraint == "boolean":
        return "an instance of 'bool'"
    if constraint == "array-like":
        return "an array-like"
    if constraint is None:
        return "None"
    if constraint == "random_state_like":
        return "an int, a RandomState instance or None"
    if constraint is callable:
        return "a callable"
    if constraint == "verbose":
        return "a non-negative int or bool"
    if isinstance(constraint, type):
        return f"an instance of '{constraint.__name__}'"
    return str(constraint)


def validate_params(estimator) -> None:
    """Check every parameter against ``estimator._parameter_constraints``.

    Raises ValueError with scikit-learn's wording: ``The 'alpha' parameter of Ridge must be ...
    Got -1 instead.``
    """
    params = estimator_params(estimator, deep=False)
    for name, constraints in type(estimator)._parameter_constraints.items():
        if name not in params:  # a constraint shared by a family, for a parameter this lacks
            continue
        value = params[name]
        if not any(_accepts(c, value) for c in constraints):
            described = [_describe(c) for c in constraints]
            # scikit-learn's wording: "a, b or c"
            expected = described[0] if len(described) == 1 else \
                ", ".join(described[:-1]) + " or " + described[-1]
            raise ValueError(f"The {name!r} parameter of {type(estimator).__name__} must be "
                             f"{expected}. Got {value!r} instead.")


# -- data --------------------------------------------------------------------------------------
@dataclass
class Shard:
    """This rank's validated data and the agreed global facts about all ranks' data."""

    X: np.ndarray
    y: np.ndarray | None
    sample_weight: np.ndarray | None
    backend: str
    n_samples: int  #: rows summed over ranks
    n_ranks: int

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of ``X`` (fitted attributes take it), whatever ``X``'s array type."""
        return numpy_dtype(self.X.dtype)


_RESHAPE_HINT = ("Reshape your data either using array.reshape(-1, 1) if your data has a single "
                 "feature or array.reshape(1, -1) if it contains a single sample.")


def _raise_not_finite(X, xp, estimator, input_name):
    """scikit-learn's own message for non-finite input (NaN first, as its check reports)."""
    has_nan = bool(xp.any(xp.isnan(X)))
    witness = np.array([np.nan if has_nan else np.inf], dtype=numpy_dtype(X.dtype))
    assert_all_finite(witness, allow_nan=False, input_name=input_name,
                      estimator_name=None if estimator is None else type(estimator).__name__)
    raise AssertionError("unreachable: the witness is not finite")  # pragma: no cover


def check_finite(X, estimator=None, input_name="X", backend=None, allow_nan=False):
    """Raise scikit-learn's ValueError if ``X`` holds NaN or infinity (local, not collective).

    The check itself is the kernel ``all_finite``, run by the backend that serves ``X``.

    ``allow_nan=True``: NaN is accepted (scikit-learn's ``ensure_all_finite="allow-nan"``) and
    only infinity is refused, with scikit-learn's message. Input that the kernel finds finite is
    read once, as without ``allow_nan``; only a shard that is not finite is read again, to tell
    NaN from infinity.

    Returns
    -------
    has_nan : bool
        Whether ``X`` holds a NaN (only ever True with ``allow_nan``).
    """
    if numpy_dtype(X.dtype).kind not in "fc":
        return False
    xp = get_namespace(X)
    if call_kernel("all_finite", backend, X=X):
        return False
    if not allow_nan:
        _raise_not_finite(X, xp, estimator, input_name)
    if bool(xp.any(xp.isinf(X))):
        witness = np.array([np.inf], dtype=numpy_dtype(X.dtype))
        assert_all_finite(witness, allow_nan=True, input_name=input_name,
                          estimator_name=None if estimator is None else type(estimator).__name__)
    return True


def _check_foreign(X, estimator, input_name="X", ensure_2d=True, dtype="float"):
    """scikit-learn's ``check_array`` rules for an array-API array, kept in its namespace.

    float32 and float64 are kept; other real dtypes are converted, in ``X``'s namespace, to
    float64 (``dtype="float"``), to ``dtype`` (a NumPy dtype: converted by name), or kept
    (``dtype=None``). Complex data, and 1-D or scalar input where 2-D is expected, are refused
    with scikit-learn's messages. Finiteness is checked apart (:func:`check_finite`).
    """
    xp = get_namespace(X)
    if xp.isdtype(X.dtype, "complex floating"):
        raise ValueError("Complex data not supported\n{}\n".format(X))
    if isinstance(dtype, str) and dtype == "float":
        becomes = X.dtype not in (xp.float64, xp.float32)
    else:
        becomes = dtype is not None and np.dtype(dtype) == np.float64
    check_float64_supported(X, input_name, becomes_float64=becomes)
    if dtype == "float":
        if X.dtype not in (xp.float64, xp.float32):
            X = xp.astype(X, xp.float64)
    elif dtype is not None and numpy_dtype(X.dtype) != np.dtype(dtype):
        X = xp.astype(X, getattr(xp, np.dtype(dtype).name))
    if ensure_2d:
        if X.ndim == 0:
            raise ValueError(f"Expected 2D array, got scalar array instead:\narray={X}.\n"
                             + _RESHAPE_HINT)
        if X.ndim == 1:
            raise ValueError(f"Expected 2D array, got 1D array instead:\narray={X}.\n"
                             + _RESHAPE_HINT)
        if X.ndim >= 3:
            context = "" if estimator is None else f" by {type(estimator).__name__}"
            raise ValueError(f"Found array with dim {X.ndim}, while dim <= 2 is required{context}.")
        if X.shape[1] < 1:
            context = "" if estimator is None else f" by {type(estimator).__name__}"
            raise ValueError(f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a "
                             f"minimum of 1 is required{context}.")
    return X


def x_dtype(estimator, reset=True):
    """The ``dtype`` rule that ``estimator``'s scikit-learn counterpart validates ``X`` with, in
    ``fit`` (``reset=True``) or after it (predict, transform, kneighbors: ``reset=False``).

    ``"numeric"`` where the class's ``_numeric_X`` names the stage (``"fit"``, ``"predict"``):
    scikit-learn's default, which refuses arrays of strings or bytes and converts objects; else
    ``[float64, float32]``, which converts strings that parse as numbers (scikit-learn's KMeans,
    PCA and scalers, and Ridge's and LogisticRegression's ``fit``). Either way :func:`as_float`
    then gives float32 or float64.
    """
    stage = "fit" if reset else "predict"
    return "numeric" if stage in getattr(estimator, "_numeric_X", ()) else [np.float64,
                                                                             np.float32]


def as_float(X):
    """``X`` (validated NumPy) as float32 or float64: other numeric dtypes become float64."""
    return X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)


def check_X(estimator, X, *, reset, backend=None, set_features=True, finite=True,
            allow_nan=False):
    """Local: validate this rank's ``X`` as scikit-learn's ``validate_data`` does, keeping its type.

    NumPy arrays, lists and DataFrames go through scikit-learn's ``validate_data`` (its messages,
    dtype rules and feature names; a NumPy float array is not copied). Other array-API arrays
    stay in their namespace and on their device (:func:`_check_foreign`). Either way the
    finiteness check runs as the kernel ``all_finite``.

    ``set_features=False`` skips ``n_features_in_``/``feature_names_in_`` (plain ``check_array``).
    ``finite=False`` leaves the finiteness check to the caller (:func:`check_deferred_finite`).
    ``allow_nan=True`` accepts NaN and refuses only infinity (:func:`check_finite`).
    """
    if is_foreign_array(X):
        Xv = _check_foreign(X, estimator)
        if set_features:
            validate_data(estimator, Xv, reset=reset, skip_check_array=True)
    elif set_features:
        Xv = as_float(validate_data(estimator, X, reset=reset, dtype=x_dtype(estimator, reset),
                                    ensure_min_samples=0, ensure_all_finite=False))
    else:
        Xv = as_float(check_array(X, dtype=x_dtype(estimator, reset), ensure_min_samples=0,
                                  ensure_all_finite=False))
    # Without the estimator's features, the messages are check_array's (no estimator named).
    if finite:
        check_finite(Xv, estimator if set_features else None, "X",
                     resolve_backend(Xv) if backend is None else backend, allow_nan=allow_nan)
    return Xv


def count_nonzero(values) -> int:
    """Non-zero entries of a 1-D array of any array type."""
    xp = get_namespace(values)
    return int(np.count_nonzero(values)) if xp is np else int(xp.sum(xp.astype(values != 0,
                                                                                  xp.int64)))


def _check_consistent_rows(X, y):
    if is_foreign_array(X) or is_foreign_array(y):
        lengths = [int(X.shape[0]), int(y.shape[0])]
        if lengths[0] != lengths[1]:
            raise ValueError("Found input variables with inconsistent numbers of samples: "
                             f"{lengths}")
    else:
        check_consistent_length(X, y)


def check_y(y, X, estimator, y_numeric=True, multi_output=True, finite=True):
    """Local: validate targets as scikit-learn does; array-API targets keep their type.
    ``finite=False`` leaves the finiteness check to the caller (:func:`check_deferred_finite`)."""
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None.")
    if is_foreign_array(y):
        y = _check_foreign(y, estimator, "y", ensure_2d=False,
                           dtype=numpy_dtype(X.dtype) if y_numeric else None)
        if y.ndim == 0:
            raise ValueError(f"Expected array-like (array or non-string sequence), got {y}")
        if finite:
            check_finite(y, None, "y")
    else:
        y = check_array(y, ensure_2d=False, dtype=numpy_dtype(X.dtype) if y_numeric else None,
                        ensure_min_samples=0, input_name="y", ensure_all_finite=finite)
    if y.ndim == 2 and not multi_output and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected. Please change "
                      "the shape of y to (n_samples, ), for example using ravel().",
                      DataConversionWarning, stacklevel=4)
        y = get_namespace(y).reshape(y, (-1,))
    if y.ndim not in (1, 2) or (y.ndim == 2 and not multi_output):
        raise ValueError(f"y should be a 1d array{' or 2d array' if multi_output else ''}, "
                         f"got an array of shape {tuple(y.shape)} instead.")
    _check_consistent_rows(X, y)
    return y


_check_y = check_y


def _check_sample_weight(sample_weight, X, non_negative):
    if sample_weight is None:
        return None
    xp = get_namespace(X)
    if isinstance(sample_weight, numbers.Number):
        if xp is np:
            return np.full(X.shape[0], sample_weight, dtype=X.dtype)
        from ._array_api import device

        return xp.full((X.shape[0],), sample_weight, dtype=X.dtype, device=device(X))
    if is_foreign_array(sample_weight):
        sample_weight = _check_foreign(sample_weight, None, "sample_weight", ensure_2d=False,
                                       dtype=numpy_dtype(X.dtype))
        check_finite(sample_weight, None, "sample_weight")
    else:
        sample_weight = check_array(sample_weight, ensure_2d=False, dtype=numpy_dtype(X.dtype),
                                    ensure_min_samples=0, input_name="sample_weight")
    if sample_weight.ndim != 1:
        raise ValueError("Sample weights must be 1D array or scalar")
    if tuple(sample_weight.shape) != (X.shape[0],):
        raise ValueError(f"sample_weight.shape == {tuple(sample_weight.shape)}, expected "
                         f"{(X.shape[0],)}!")
    swp = get_namespace(sample_weight)
    if non_negative and bool(swp.any(sample_weight < 0)):
        why = f": {non_negative}" if isinstance(non_negative, str) else ""
        raise ValueError(f"Negative values in data passed to sample_weight{why}")
    return sample_weight


def _summary(checked):
    X, y, sw, _, names = checked
    return (int(X.shape[0]), int(X.shape[1]), numpy_dtype(X.dtype).str,
            None if y is None else (y.ndim, 1 if y.ndim == 1 else int(y.shape[1]),
                                    numpy_dtype(y.dtype).kind),
            int(X.shape[0] if sw is None else count_nonzero(sw)),
            None if names is None else tuple(str(n) for n in names))


def _summary_ints(summary) -> tuple:
    """A :func:`_summary` as integers, to travel in the agreement's status exchange: the rows
    and non-zero weights as they are; the features, dtype, targets and column names as values
    (or digests) that are equal on two ranks exactly when the summaries' are."""
    n, d, dtype, y, nonzero, names = summary
    return (n, d, _digest(dtype), *((-1, -1, -1) if y is None else (y[0], y[1], ord(y[2]))),
            nonzero, 0 if names is None else _digest(names) | 1)


#: Columns of :func:`_summary_ints` that every rank's data must share (rows and weights may
#: differ).
_SHARED_COLUMNS = [1, 2, 3, 4, 5, 7]


def _agreed_summaries(comm: Comm, check):
    """Collective: ``(check's result on this rank, every rank's :func:`_summary`)``.

    The summaries travel as integers in the agreement's status exchange; where the ranks' data
    differ in features, dtype, targets or column names (to be refused, or a rank without rows
    whose empty targets have another kind), the whole summaries follow, pickled, so that the
    cross-rank checks name what differs."""
    if comm.size == 1:
        return comm.agree(check, summarize=_summary)
    summary = []

    def ints(checked):
        summary.append(_summary(checked))
        return _summary_ints(summary[0])

    checked, ints = comm.agree(check, summary_ints=ints)
    mine = summary[0]
    if comm.size > 1 and (ints[:, _SHARED_COLUMNS] != ints[0, _SHARED_COLUMNS]).any():
        return checked, comm.allgather(mine)
    return checked, [(int(r[0]), mine[1], mine[2], mine[3], int(r[6]), mine[5]) for r in ints]


def _show_names(names, limit=6) -> str:
    if names is None:
        return "no column names"
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{', ...' if len(names) > limit else ''}]"


def check_feature_names_agree(names, comm_size: int, ranks=None) -> None:
    """Raise ValueError unless every rank passed the same column names, in the same order.

    ``names[r]`` is rank r's tuple of column names (None: no names, e.g. a NumPy array). An
    empty rank's DataFrame still carries its columns, so it takes part like any other rank.
    ``ranks`` names the rank of each entry when ``names`` covers only some ranks.
    Names on some ranks and none on others, different names, or the same names in another
    order (a permuted DataFrame would be fitted as if aligned) are all errors.
    """
    if comm_size == 1 or len(set(names)) <= 1:
        return
    groups: dict = {}
    for rank, value in zip(range(len(names)) if ranks is None else ranks, names):
        groups.setdefault(value, []).append(rank)

    def ranks(rs):
        return ("rank " if len(rs) == 1 else "ranks ") + ", ".join(str(r) for r in rs)

    detail = "; ".join(f"{ranks(rs)}: {_show_names(v)}" for v, rs in groups.items())
    named = [v for v in groups if v is not None]
    if None in groups:
        what = "column names are given on some ranks and not on others"
    elif len({frozenset(v) for v in named}) == 1:
        what = "the same columns come in a different order on some ranks"
    else:
        what = "column names differ across ranks"
    raise ValueError(f"feature names must agree across ranks: {what} ({detail}). Every rank "
                     "must pass the same columns in the same order (a DataFrame with the same "
                     "column names everywhere, or arrays without names everywhere)")


def _cross_rank_checks(summaries, comm: Comm, min_samples: int, estimator) -> int:
    """Checks on every rank's summary; every rank runs them on the same list, so all raise alike."""
    # Ranks whose data agree in features, dtype, targets and names (the common case) pass the
    # checks below: they are left out
    if comm.size > 1 and len({s[1:4] + s[5:6] for s in summaries}) > 1:
        check_feature_names_agree([s[5] for s in summaries], comm.size)
        for index, what in ((1, "n_features"), (2, "dtype"), (3, "y (ndim, n_targets, kind)")):
            values = [s[index] for s in summaries]
            if index == 3:
                # The kind of labels on a rank without rows (an empty float array) says nothing.
                distinct = {v if v is None or s[0] else v[:2] for v, s in zip(values, summaries)}
                kinds = {v[2] for v, s in zip(values, summaries) if v is not None and s[0]}
                bad = len({v if v is None else v[:2] for v in distinct}) > 1 or len(kinds) > 1
            else:
                bad = len(set(values)) > 1
            if bad:
                detail = ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
                raise ValueError(f"{what} differs across ranks ({detail}); every rank must pass "
                                 "data of the same shape and type")
    total = sum(s[0] for s in summaries)
    if total < min_samples:
        raise ValueError(f"n_samples={total} should be >= {min_samples} (summed over "
                         f"{comm.size} rank{'s' if comm.size > 1 else ''}) for "
                         f"{type(estimator).__name__}")
    return total


def validate_fit(estimator, comm: Comm, X, y=None, sample_weight=None, *, requires_y=False,
                 multi_output=True, y_numeric=True, min_samples=1, non_negative_weight=True,
                 allow_all_zero_weight=False, extra_check=None, defer_finite=False,
                 reserve=None) -> Shard:
    """Collective: validate parameters and this rank's shard for ``fit``, agree across ranks.

    Sets ``n_features_in_`` (and ``feature_names_in_``) through scikit-learn's ``validate_data``;
    the column names are part of the agreement (:func:`check_feature_names_agree`), so
    ``feature_names_in_`` is the same on every rank or every rank raises.
    ``extra_check(estimator, X, y)``, if given, runs on every rank inside the agreement.
    ``non_negative_weight``: negative weights are refused (True, or a str: the reason, added to
    the error's message) or accepted (False).

    ``defer_finite=True``: ``X`` and ``y`` are not checked for NaN and infinity here. The caller
    passes them, with the weights, to a one-pass kernel whose partial is not finite whenever
    an input value is not (sums of ``w x`` and ``w x x^T``: ``0 * inf`` is NaN too), and calls
    :func:`check_deferred_finite` when its partial is not finite, in the reduction's local step,
    so that the error reaches every rank. The shard is then read once instead of twice.

    ``reserve(X, y, sample_weight)``, if given, returns the number of float64 values of the
    reduction that follows (its partial's packed size, :func:`spmdlearn.collective.partial_size`):
    the agreement reserves room for it in the method's later status exchanges
    (:meth:`spmdlearn.comm.Comm.reserve`), so that the partials travel with the ranks' verdicts
    in one collective.
    """

    # Every rank runs the same program, so every rank refuses alike, before any collective.
    refuse_sklearn_model_selection(comm)

    def check():
        validate_params(estimator)
        Xv = check_X(estimator, X, reset=True, finite=not defer_finite)
        backend = resolve_backend(Xv)  # on the validated array: a list becomes NumPy
        yv = (_check_y(y, Xv, estimator, y_numeric, multi_output, finite=not defer_finite)
              if requires_y else None)
        sw = _check_sample_weight(sample_weight, Xv, non_negative_weight)
        if extra_check is not None:
            extra_check(estimator, Xv, yv)
        if reserve is not None and comm.size > 1:
            comm.reserve(reserve(Xv, yv, sw))
        return Xv, yv, sw, backend, getattr(estimator, "feature_names_in_", None)

    (Xv, yv, sw, backend, _), summaries = _agreed_summaries(comm, check)
    total = _cross_rank_checks(summaries, comm, min_samples, estimator)
    if not allow_all_zero_weight and total and sum(s[4] for s in summaries) == 0:
        raise ValueError("Sample weights must contain at least one non-zero number (summed over "
                         f"{comm.size} rank{'s' if comm.size > 1 else ''}).")
    return Shard(Xv, yv, sw, backend, total, comm.size)


def check_deferred_finite(estimator, shard: Shard) -> None:
    """Local: the finiteness checks that ``validate_fit(..., defer_finite=True)`` left out,
    in scikit-learn's order (``X``, then ``y``) and with its messages."""
    check_finite(shard.X, estimator, "X", shard.backend)
    if shard.y is not None:
        check_finite(shard.y, None, "y")


def deferred_finite_moments(backend, X, sample_weight, check):
    """Local: the ``moments_local`` kernel's partial of ``X``, with the finiteness check that
    validation deferred (``validate_fit(defer_finite=True)``, ``IncrementalMixin._defers_finite``).

    The moments of rows holding NaN or infinity are not finite (the mean, at least), so
    ``check`` runs only then and ``X`` is read once. The kernel's warnings are held until the
    check has passed: they are shown for finite input, and input that is not finite raises the
    check's error alone, as when validation checked before the kernel.

    Parameters
    ----------
    backend : str
        The backend that serves ``X`` (:func:`spmdlearn._backends.resolve_backend`).
    X : array of shape (n_samples, n_features)
    sample_weight : array of shape (n_samples,) or None
    check : callable
        ``check()`` raises scikit-learn's ValueError for NaN or infinity in the inputs
        (:func:`check_deferred_finite`).

    Returns
    -------
    partial : MomentsPartial
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = call_kernel("moments_local", backend, X=X, sample_weight=sample_weight)
    if p.n and not all(np.isfinite(np.asarray(v)).all() for v in p[1:]):
        check()
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return p


def validate_predict(estimator, comm: Comm, X, y=None, sample_weight=None, *, requires_y=False,
                     multi_output=True, attributes=None, training_rows=False,
                     allow_nan=False) -> Shard:
    """Collective: check fitted state and this rank's shard for predict/transform/score; agree.

    The column names of a DataFrame are checked against ``feature_names_in_`` as scikit-learn
    does (an error for other names or another order, a warning for names on one side only).
    ``training_rows=True`` says that ``X`` is the estimator's own validated training rows
    (a query with ``X=None``): they are not checked against the names again.
    ``allow_nan=True``: NaN in ``X`` is accepted (the scalers keep it), infinity refused.
    """

    refuse_sklearn_model_selection(comm)

    def check():
        check_is_fitted(estimator, attributes)
        Xv = X if training_rows else check_X(estimator, X, reset=False, allow_nan=allow_nan)
        backend = resolve_backend(Xv)  # on the validated array: a list becomes NumPy
        yv = _check_y(y, Xv, estimator, True, multi_output) if requires_y else None
        sw = _check_sample_weight(sample_weight, Xv, non_negative=False)
        return Xv, yv, sw, backend, None

    (Xv, yv, sw, backend, _), summaries = _agreed_summaries(comm, check)
    if comm.size > 1 and requires_y:
        targets = {s[3][:2] for s in summaries}
        if len(targets) > 1:
            raise ValueError("y differs in shape across ranks: "
                             + ", ".join(f"rank {r}: {s[3][:2]}" for r, s in enumerate(summaries)))
    return Shard(Xv, yv, sw, backend, sum(s[0] for s in summaries), comm.size)


def metric_meaning(metric, metric_params, p, available):
    """``(metric, p)`` naming the distance that these parameters compute, one for every
    spelling of it (local; raises as :func:`check_metric`).

    Spellings are the same distance where scikit-learn's own table says so:
    ``sklearn.metrics.DistanceMetric.get_metric`` gives the same class (``"l2"`` and
    ``"euclidean"``; ``"l1"``, ``"cityblock"`` and ``"manhattan"``; ``"infinity"`` and
    ``"chebyshev"``; ``"minkowski"`` with ``p`` 1, 2 or infinity and those). The result is one
    of ``"euclidean"``, ``"manhattan"``, ``"chebyshev"`` (``p`` None), ``"minkowski"`` with a
    float ``p``, or a metric that the table lacks (``"cosine"``), as given, ``p`` None.
    ``p`` outside ``"minkowski"`` does not change the distance, as in scikit-learn.
    """
    metric, p = check_metric(metric, metric_params, p, available)
    return _metric_meaning(metric, float(p) if metric == "minkowski" and p is not None else None)


@functools.lru_cache(maxsize=64)
def _metric_meaning(metric, p):
    from sklearn.metrics import DistanceMetric

    # scikit-learn's neighbours use p=2 for minkowski when neither p nor metric_params sets it
    kwargs = {"p": 2.0 if p is None else p} if metric == "minkowski" else {}
    try:
        kind = type(DistanceMetric.get_metric(metric, **kwargs))
    except ValueError:  # not in scikit-learn's DistanceMetric table (cosine): no alias either
        return metric, None
    for name in ("euclidean", "manhattan", "chebyshev"):
        if kind is type(DistanceMetric.get_metric(name)):
            return name, None
    return metric, kwargs.get("p")


def neighbour_parameter_meaning(params, available):
    """Distance-based estimators' parameters by what they mean, for the ranks' comparison
    (``_parameter_meaning``): ``metric``/``p``/``metric_params`` as :func:`metric_meaning`'s
    distance, ``weights=None`` as ``"uniform"`` (scikit-learn's neighbours weigh both alike),
    and the local search structure (``algorithm``, ``leaf_size``: spmdlearn compares blocks of
    rows directly, whatever they are) as the defaults. A metric that spmdlearn refuses is left
    as given: the validation says why, on every rank."""
    try:
        metric, p = metric_meaning(params.get("metric"), params.get("metric_params"),
                                   params.get("p"), available)
    except (TypeError, ValueError, NotImplementedError):
        pass
    else:
        params.update(metric=metric, p=p, metric_params=None)
    if "weights" in params and params["weights"] is None:
        params["weights"] = "uniform"
    params.update({name: default for name, default in (("algorithm", "auto"), ("leaf_size", 30))
                   if name in params})
    return params


def check_metric(metric, metric_params, p, available):
    """``(metric, p)`` for distance-based estimators; NotImplementedError for what spmdlearn
    does not compute (a precomputed matrix cannot exist: no rank holds another's rows)."""
    if not isinstance(metric, str) or metric not in available:
        raise NotImplementedError(f"metric={metric!r} is not available in spmdlearn; available: "
                                  f"{', '.join(sorted(available))}")
    params = dict(metric_params or {})
    if "p" in params and metric != "minkowski":
        # scikit-learn passes metric_params to the metric, and its other metrics take no p
        raise TypeError(f"metric_params={metric_params!r}: 'p' is a parameter of "
                        f"metric='minkowski' only, not of metric={metric!r}")
    p = params.pop("p", p)
    if params:
        raise NotImplementedError(f"metric_params={metric_params!r}: only 'p' is supported")
    # the constructor's p means nothing to the other metrics (scikit-learn disregards it)
    if metric == "minkowski" and p is not None and p < 1:
        raise ValueError(f"p={p} should be >= 1 for the Minkowski distance")
    return metric, p
