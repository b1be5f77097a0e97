"""What every spmdlearn estimator shares."""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
import sys
from contextlib import contextmanager, nullcontext

import numpy as np
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from .comm import get_comm, relocated_warnings

__all__ = ["SPMDEstimatorMixin", "GatherFitDataMixin", "thread_limit", "collective_method",
           "canonical_params", "canonical_arguments", "collective_function"]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


_PLAIN_TYPES = (bool, int, float, complex, str, bytes)


def class_weight_meaning(params):
    """``params`` with a ``class_weight`` dict's weights as Python floats (local): scikit-learn's
    ``compute_class_weight`` reads ``{1: 3}``, ``{1: 3.0}``, ``{1: np.float32(3.0)}`` and
    ``{1: array_api_strict.asarray(3.0)}`` alike, into a float64 array. The keys compare as
    dict keys do (:func:`_canonical`: ``np.int64(1)`` is ``1``)."""
    weights = params.get("class_weight")
    if isinstance(weights, dict):
        try:
            params["class_weight"] = {k: float(v) for k, v in weights.items()}
        except (TypeError, ValueError):  # not numbers: compared as given (fit says why)
            pass
    return params


def _canonical(value):
    """A value that compares equal across ranks when the parameter means the same there.

    Numbers, strings, None and booleans by value and type, a NumPy scalar (or a 0-d array of
    any array type) as the Python number or string it holds (``np.float64(1.0)`` as ``1.0``,
    ``np.str_("a")`` as ``"a"``: the same parameter); arrays by dtype, shape and bytes; dicts
    by their keys and values, each as such a value;
    estimators by class (their parameters appear separately in ``get_params(deep=True)``);
    functions and classes by qualified name; a ``RandomState`` or ``Generator`` by its current
    state (ranks must draw the same numbers); containers element-wise; anything else by its
    ``repr`` without memory addresses.
    """
    if value is None or type(value) in _PLAIN_TYPES:  # the commonest, first
        return (type(value).__name__, value)
    from ._array_api import is_foreign_array, to_host

    if is_foreign_array(value):
        # an array of the array API standard (an init, a penalty per target): by its values,
        # as a NumPy array (its repr elides the values of a large array); a 0-d one holds one
        # value, as a NumPy scalar does (a class weight of array_api_strict.asarray(2.0))
        value = np.asarray(to_host(value))
    if (isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0)) \
            and isinstance(value.item(), (bool, int, float, complex, str, bytes)):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic)):
        return (type(value).__name__, value)
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes() if value.dtype != object
                else tuple(_canonical(v) for v in value.ravel()))
    if isinstance(value, np.random.RandomState):
        kind, keys, pos, has_gauss, gauss = value.get_state()
        return ("RandomState", kind, np.asarray(keys).tobytes(), pos, has_gauss, gauss)
    if isinstance(value, np.random.Generator):
        return ("Generator", repr(value.bit_generator.state))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        # keys as values too: np.int64(1) and 1 (np.str_("a") and "a") are one dict key
        return ("dict", tuple(sorted(((_canonical(k), _canonical(v)) for k, v in value.items()),
                                     key=repr)))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(repr(_canonical(v)) for v in value)))
    if hasattr(value, "get_params") and not isinstance(value, type):
        return ("estimator", type(value).__module__, type(value).__qualname__)
    if inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value):
        return ("callable", getattr(value, "__module__", ""), getattr(value, "__qualname__", ""))
    if isinstance(value, functools.partial):
        return ("partial", _canonical(value.func), _canonical(value.args),
                _canonical(value.keywords))
    params = _object_params(value)
    if params is not None:
        # a splitter's repr shows "random_state=RandomState(MT19937)" whatever the state: its
        # parameters compare as parameters do (a RandomState by its state)
        return ("object", type(value).__module__, type(value).__qualname__,
                tuple((k, _canonical(v)) for k, v in params.items()))
    return ("object", type(value).__qualname__, _ADDRESS.sub("", repr(value)))


#: Parameters that set this rank's own resources, not what is computed: each rank may choose
#: its own (``n_jobs``, its threads: ``os.cpu_count()`` on nodes of different sizes), so they
#: are left out of the ranks' comparison, also as nested parameters (``estimator__n_jobs``).
_RANK_OWN_PARAMETERS = frozenset({"n_jobs"})


def canonical_params(estimator) -> dict:
    """``{name: (comparable value, text)}`` for ``get_params(deep=True)`` (not collective).

    The text (``str`` of it) is the value's short ``repr``, made only when a message needs it.

    An estimator's ``_parameter_meaning(params) -> params`` (where it has one) resolves
    values that mean the same before the comparison (``KMeans(n_init="auto")`` is
    ``n_init=1`` with the k-means++ or an array init); messages show the values as given.
    Parameters of :data:`_RANK_OWN_PARAMETERS` (``n_jobs``) are left out.

    The rule for random states: an int (or None) compares by value; a ``RandomState`` or
    ``Generator`` instance compares by its state when the method is called, so ranks that
    seeded theirs alike agree and ranks that would draw different numbers are told so.
    """
    out = {}
    params = estimator_params(estimator)
    meaning = getattr(estimator, "_parameter_meaning", None)
    meant = meaning(dict(params)) if callable(meaning) else params
    for name, value in params.items():
        if name.rpartition("__")[2] in _RANK_OWN_PARAMETERS:
            continue
        out[name] = (_canonical(meant[name]), _Short(value))
        if value is None or isinstance(value, _SCALARS):
            continue
        # a splitter parameter (``GridSearchCV(cv=KFold(...))``): its own parameters by name
        for p, v in (_object_params(value) or {}).items():
            out[f"{name}__{p}"] = (_canonical(v), _Short(v))
    return out


#: Parameter values that are no object with parameters of its own (the commonest: checked
#: first, for the call of :func:`_object_params` it saves on every collective method call).
_SCALARS = (bool, int, float, str)


#: Arguments that are data (this rank's rows, targets, weights and groups): they differ across
#: ranks by design and are agreed by the validation, not by value.
_DATA_ARGUMENTS = frozenset({"X", "y", "Y", "sample_weight", "y_true", "y_pred", "y_score",
                             "groups", "arrays"})


#: Arguments that are arrays or lists but not rows: they steer the result as parameters do
#: (``r2_score(multioutput=[0.3, 0.7])``, ``confusion_matrix(labels=[...])``,
#: ``partial_fit(classes=...)``) and compare by value.
_VALUE_ARGUMENTS = frozenset({"multioutput", "labels", "classes"})


def _is_data(value) -> bool:
    """Rows (an array of any kind, a list, None), not a setting: a NumPy scalar or a 0-d array
    holds one value, compared by :func:`_canonical` (``radius=np.float64(2.0)``)."""
    if isinstance(value, np.generic) or getattr(value, "shape", None) == ():
        return False
    return value is None or isinstance(value, (np.ndarray, list)) or hasattr(value, "shape")


def _canonical_argument(value):
    """:func:`_canonical` of a call's argument, data compared as one value, also inside a dict
    of routed parameters (``cross_validate(params={"sample_weight": w})``: this rank's rows)."""
    if _is_data(value):
        return ("data or None",)
    if isinstance(value, dict):
        return ("dict", tuple(sorted((repr(k), _canonical_argument(v)) for k, v in value.items())))
    return _canonical(value)


class _RowsText:
    """The text of a data argument in messages: ``None`` or what holds the rows (its type and
    shape), never the rows themselves."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __str__(self) -> str:
        if self.value is None:
            return "None"
        shape = getattr(self.value, "shape", None)
        kind = type(self.value).__name__
        return f"{kind} of shape {tuple(shape)}" if shape is not None else \
            f"{kind} of length {len(self.value)}"


#: Data arguments whose None has its own meaning, so that ranks must agree on whether they
#: pass one: ``kneighbors(X=None)`` (and ``radius_neighbors``, the graphs, a neighbours
#: model's ``predict``/``score``) queries the training rows, each excluding itself; an array
#: queries those rows. One rank with None and another with rows would compute different
#: things (or wait in different collectives).
_PRESENCE_ARGUMENTS = frozenset({"X"})


def _object_params(value):
    """``{name: value}`` of an object's constructor parameters, where the object keeps each one
    under its own name (scikit-learn's convention, which its ``repr`` shows: ``KFold``,
    ``ShuffleSplit``, ``StratifiedKFold``); None for other objects (estimators, whose
    parameters are compared apart, a constructor with ``*args``/``**kwargs``, a parameter not
    kept, a signature that cannot be read)."""
    if isinstance(value, type) or hasattr(value, "get_params"):
        return None
    names = _init_parameter_names(type(value))
    attributes = getattr(value, "__dict__", None)
    if names is None or attributes is None or not all(n in attributes for n in names):
        return None
    return {n: attributes[n] for n in names}


@functools.lru_cache(maxsize=None)
def _init_parameter_names(cls):
    """The names of ``cls.__init__``'s parameters, or None where they do not say what the
    object is (``object.__init__``, ``*args``/``**kwargs``, no readable signature)."""
    init = getattr(cls, "__init__", object.__init__)
    if init is object.__init__ or not inspect.isfunction(init):
        return None
    try:
        parameters = list(inspect.signature(init).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    if any(p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
           for p in parameters):
        return None
    return tuple(p.name for p in parameters)


def canonical_arguments(signature, args, kwargs, owner=None, resolve=None) -> dict:
    """``{"argument NAME": (comparable value, text)}`` for a call's arguments (not collective).

    A collective method's or function's own arguments (``radius_neighbors(radius=...)``,
    ``kneighbors(n_neighbors=...)``, ``cross_val_score(cv=...)``, ``r2_score(multioutput=...)``)
    steer its collectives as an estimator's parameters do, so the ranks agree on them with the
    parameters: a value that differs on one rank raises on every rank, naming the argument
    and the ranks, before any computation. Data (:data:`_DATA_ARGUMENTS`, arrays, lists,
    DataFrames, None) compare as one value: the validation checks what they hold. Other values
    compare as :func:`_canonical` says; an estimator argument also by its parameters
    (``argument estimator__C``), a splitter by its (``argument cv__random_state``, a
    ``RandomState`` by its state). ``self`` is left out (its parameters are agreed apart).

    Whether ``X`` is None is compared (:data:`_PRESENCE_ARGUMENTS`): ``kneighbors(X=None)``
    on one rank and ``kneighbors(X=rows)`` on another mean different computations.

    Defaults are resolved before the comparison, so that values that mean the same agree:
    an argument whose default is None and that is passed as None means the ``owner``
    estimator's parameter of the same name, as in scikit-learn
    (``kneighbors(n_neighbors=None)`` is ``n_neighbors=self.n_neighbors``,
    ``radius_neighbors(radius=None)`` is ``self.radius``, ``transform(copy=None)`` is
    ``self.copy``); ``resolve(arguments)`` (a collective function's own rule, e.g.
    ``cv=None`` is ``cv=5``) rewrites the bound arguments. Messages show the values as given.
    """
    layout = _layout(signature)
    given = _bind(layout, args, kwargs)
    if given is None:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return {}  # the call itself raises, the same on every rank
        bound.apply_defaults()
        given = dict(bound.arguments)
    arguments = dict(given)
    if owner is not None:
        own = estimator_params(owner, deep=False)
        for key, value in given.items():
            if value is None and layout[key][1] is None and key in own \
                    and key not in _DATA_ARGUMENTS:
                arguments[key] = own[key]
    if resolve is not None:
        arguments = resolve(arguments)
    out = {}
    for key, value in arguments.items():
        kind = layout[key][0]
        if key in _PRESENCE_ARGUMENTS and kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                       inspect.Parameter.VAR_KEYWORD):
            out[f"argument {key}"] = (("None",) if value is None else ("rows",),
                                      _RowsText(value))
            continue
        if key == "self" or key in _DATA_ARGUMENTS or kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        values = value.items() if kind is inspect.Parameter.VAR_KEYWORD else [(key, value)]
        texts = given[key].items() if kind is inspect.Parameter.VAR_KEYWORD \
            else [(key, given[key])]
        for (k, v), (_, shown) in zip(values, texts):
            if k in _DATA_ARGUMENTS:
                continue
            name = f"argument {k}"
            out[name] = (_canonical(v) if k in _VALUE_ARGUMENTS else _canonical_argument(v),
                         _Short(shown))
            out.update(nested_params(name, v))
    return out


_LAYOUTS: dict = {}


def _layout(signature) -> dict:
    """``{name: (kind, default)}`` of ``signature``'s parameters, in order, made once per
    signature object (a collective method's is made once, when it is wrapped): reading
    ``Signature.parameters`` and each ``Parameter``'s fields costs a Python call each, at every
    collective call on more than one rank."""
    entry = _LAYOUTS.get(id(signature))
    if entry is None or entry[0] is not signature:
        entry = _LAYOUTS[id(signature)] = (signature, {
            name: (p.kind, p.default) for name, p in signature.parameters.items()})
    return entry[1]


_PLAIN = inspect.Parameter.POSITIONAL_OR_KEYWORD


def _bind(layout, args, kwargs):
    """``signature.bind(*args, **kwargs)`` with the defaults applied, as a dict, for a
    signature of plain parameters (``layout``: :func:`_layout`) and a call that binds; None
    otherwise (the caller then binds with ``inspect``, which also says why a call does not)."""
    if len(args) > len(layout):
        return None
    bound, i = {}, 0
    for name, (kind, default) in layout.items():
        if kind is not _PLAIN:
            return None
        if i < len(args):
            if name in kwargs:
                return None
            bound[name] = args[i]
        elif name in kwargs:
            bound[name] = kwargs[name]
        elif default is inspect.Parameter.empty:
            return None
        else:
            bound[name] = default
        i += 1
    if len(kwargs) + len(args) > len(bound) or any(k not in bound for k in kwargs):
        return None
    return bound


def nested_params(name, value) -> dict:
    """The compared forms of the parameters inside ``value`` (an estimator's, by
    :func:`canonical_params`, or a splitter's or other object's constructor parameters), each
    named ``name__parameter``; empty for a plain value."""
    if hasattr(value, "get_params") and not isinstance(value, type):
        return {f"{name}__{p}": c for p, c in canonical_params(value).items()}
    return {f"{name}__{p}": (_canonical(pv), _Short(pv))
            for p, pv in (_object_params(value) or {}).items()}


@contextmanager
def collective_entry(where: str, params, caller):
    """The frame of a public collective call (what :func:`collective_function`,
    :func:`collective_method` and the searches' ``fit`` run in): on more than one rank,
    :meth:`spmdlearn.comm.Comm.session` (the ranks agree on ``where`` and ``params()`` on
    entry); on one rank, the warnings relocated to ``caller`` alone. A context manager, so that
    no frame comes between the wrapper and the call (warnings' stack levels)."""
    comm = get_comm()
    if comm.size == 1:
        with relocated_warnings(*caller):
            yield
    else:
        with comm.session(where, params, caller):
            yield


def collective_function(function=None, *, resolve=None):
    """Wrap a public collective function (a metric, a cross-validation) in
    :meth:`spmdlearn.comm.Comm.session`, as :func:`collective_method` wraps methods: the ranks
    agree on the function and its arguments (:func:`canonical_arguments`) on entry; any
    exception on any rank becomes the same exception on every rank. Inside a collective method
    (``score`` calling a metric) it is part of that method's session.

    ``resolve(arguments) -> arguments``: the function's own defaults, resolved before the
    ranks compare the arguments, so that values meaning the same agree (``cv=None`` and
    ``cv=5``). Used as ``@collective_function`` or ``@collective_function(resolve=...)``."""
    if function is None:
        return functools.partial(collective_function, resolve=resolve)
    signature = inspect.signature(function)
    where = f"{function.__module__.split('._')[0]}.{function.__name__}"

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno, __file__)
        with collective_entry(where, lambda: canonical_arguments(signature, args, kwargs,
                                                                 resolve=resolve), caller):
            return function(*args, **kwargs)

    wrapper.__spmdlearn_collective__ = True
    return wrapper


def estimator_params(estimator, deep: bool = True) -> dict:
    """``estimator.get_params(deep)``, with the parameter names of the class found once.

    scikit-learn's ``BaseEstimator.get_params`` reads the constructor's signature on every call
    (``inspect.signature``: 20-40 us, most of the call); every collective method call checks
    the parameters, and on more than one rank digests them. A class that overrides
    ``get_params`` is asked as usual. Local.
    """
    cls = type(estimator)
    if getattr(cls, "get_params", None) is not BaseEstimator.get_params:
        return estimator.get_params(deep=deep)
    out = {}
    for key in _param_names(cls):
        value = getattr(estimator, key)
        if deep and hasattr(value, "get_params") and not isinstance(value, type):
            out.update((key + "__" + k, v) for k, v in value.get_params().items())
        out[key] = value
    return out


@functools.lru_cache(maxsize=None)
def _param_names(cls) -> tuple:
    return tuple(cls._get_param_names())


class _Short:
    """A parameter's text for messages, ``repr`` without memory addresses and at most 60
    characters, made only when a message needs it (``str``): the ``repr`` of an array or of a
    nested estimator costs up to a millisecond, and every collective method call on more than
    one rank builds the parameters."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __str__(self) -> str:
        return _short(self.value)


def _short(value) -> str:
    if isinstance(value, (np.random.RandomState, np.random.Generator)):
        # its repr is the same whatever its state: a digest of the state tells them apart
        state = hashlib.sha256(repr(_canonical(value)).encode()).hexdigest()[:8]
        return f"{_ADDRESS.sub('', repr(value))[:-1]}, state {state})"
    text = _ADDRESS.sub("", repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


#: Public methods that may be collective; each is wrapped when its docstring starts with
#: "Collective" (the house convention: "Collective: ...", "Collective validation, local
#: result: ..."); "Local: ..." methods stay local.
_DOC_MARK = "Collective"


def collective_method(method, name=None):
    """Wrap a public collective estimator method in :meth:`spmdlearn.comm.Comm.session`.

    The ranks agree on the estimator's class, the method and the parameters on entry; any
    exception on any rank, at any step, is raised on every rank; warnings show once.
    """
    name = name or method.__name__
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno, __file__)

        def params():
            return {**canonical_params(self),
                    **canonical_arguments(signature, (self, *args), kwargs, owner=self)}

        with collective_entry(f"{type(self).__name__}.{name}", params, caller):
            return method(self, *args, **kwargs)

    wrapper.__spmdlearn_collective__ = True
    return wrapper


class SPMDEstimatorMixin:
    """Mixin: the communicator is resolved at each call, never stored on the estimator.

    Subclasses list the scikit-learn class they mirror in ``_sklearn_class`` and the fitted
    attributes to copy in ``_fitted_attributes``; :meth:`to_sklearn` builds the equivalent fitted
    scikit-learn estimator from them.

    Every public method whose docstring starts with "Collective" (``fit``, ``finalize_fit``,
    ``predict``, ``transform``, ``score``, ``kneighbors``, ...) is wrapped on class creation by
    :func:`collective_method`: on entry the ranks agree on the estimator's class, the method and
    the digest of ``get_params(deep=True)`` (a mismatch raises on every rank, naming the
    parameters or the methods and the ranks); any exception on any rank at any later step
    becomes the same exception on every rank; every collective runs under the watchdog.
    """

    _sklearn_class = None
    _fitted_attributes: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in dir(cls):
            if name.startswith("_"):
                continue
            try:
                attr = inspect.getattr_static(cls, name)
            except AttributeError:
                continue
            if not inspect.isfunction(attr) or getattr(attr, "__spmdlearn_collective__", False):
                continue
            doc = (attr.__doc__ or "").lstrip()
            if doc.startswith(_DOC_MARK):
                setattr(cls, name, collective_method(attr, name))

    @staticmethod
    def _comm():
        return get_comm()

    def to_sklearn(self):
        """The equivalent fitted scikit-learn estimator, for serving without MPI.

        Not collective: any rank may call it alone (``if rank == 0: model.to_sklearn()``).
        Models whose state is spread over the ranks' rows (neighbours, DBSCAN) first need the
        collective ``gather_fit_data()`` on every rank; without it they raise on this rank.

        Returns
        -------
        estimator : scikit-learn estimator
            Same parameters, same fitted attributes (NumPy arrays, identical on every rank),
            ``n_features_in_`` and ``feature_names_in_`` included.

        Raises
        ------
        NotFittedError
            Before ``fit`` (or ``finalize_fit``).
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        est = self._to_sklearn()
        for name in ("n_features_in_", "feature_names_in_"):
            if name in self.__dict__:
                setattr(est, name, self.__dict__[name])
        return est

    def _to_sklearn(self):
        """Build the scikit-learn estimator (local); subclasses override what differs."""
        sk_class = type(self)._sklearn_class
        params = sk_class().get_params(deep=False)
        from ._array_api import is_foreign_array
        from ._validation import array_parameter

        mine = self.get_params(deep=False)
        # scikit-learn's estimator serves NumPy rows: an array-valued parameter of another
        # array type (KMeans' init, Ridge's alpha) as the NumPy array it holds
        est = sk_class(**{k: array_parameter(mine[k]) if is_foreign_array(mine[k]) else mine[k]
                          for k in params if k in mine})
        for name in self._fitted_attributes:
            if hasattr(self, name):
                setattr(est, name, getattr(self, name))
        return est


class GatherFitDataMixin:
    """For models whose fitted state is spread over the ranks' rows (neighbours, DBSCAN).

    :meth:`gather_fit_data` is the one collective step: it gathers every rank's share of the
    fitted state (training rows and targets, or per-row labels) so that ``to_sklearn()`` can
    then run on any rank alone. Subclasses define ``_local_fit_data(start)``: this rank's
    share as a dict of arrays whose first axis is its rows (indices made global with
    ``start``, this rank's first global row index), and ``_n_local_rows()``.
    """

    def gather_fit_data(self, root=None):
        """Collective: gather every rank's share of the fitted state; every rank calls it.

        Afterwards ``to_sklearn()`` is local (on every rank, or on ``root`` only). Memory: the
        receiving ranks hold the state of all ranks' rows (the training rows, for neighbours).

        Parameters
        ----------
        root : int, default=None
            The rank that receives the data; None: every rank.

        Returns
        -------
        self

        Raises
        ------
        NotFittedError
            On every rank, before ``fit``.
        ValueError
            On every rank, if ``root`` is not a rank of the communicator.
        """
        from sklearn.utils.validation import check_is_fitted

        comm = self._comm()

        def check():
            check_is_fitted(self)
            if root is not None and not (isinstance(root, int) and 0 <= root < comm.size):
                raise ValueError(f"root={root!r} should be None or a rank in [0, {comm.size})")

        comm.agree(check)
        start, _ = comm.offsets(self._n_local_rows())
        gathered = {}
        for name, local in self._local_fit_data(start).items():
            local = np.ascontiguousarray(local)
            gathered[name] = comm.allgather_rows(local) if root is None else \
                comm.gather_rows(local, root=root)
        self._gathered_fit_data = gathered if root is None or comm.rank == root else root
        return self

    def _fit_data(self):
        """All ranks' share of the fitted state, for ``to_sklearn()`` (local, never collective)."""
        gathered = self.__dict__.get("_gathered_fit_data")
        if isinstance(gathered, dict):
            return gathered
        name = type(self).__name__
        if gathered is not None:
            raise RuntimeError(f"{name}.to_sklearn(): gather_fit_data(root={gathered}) gave "
                               f"every rank's fitted data to rank {gathered} only; call "
                               "to_sklearn() there, or gather_fit_data() with root=None")
        n_local = self._n_local_rows()
        if n_local == self._n_total_rows():  # this rank holds every row: nothing to gather
            return self._local_fit_data(0)
        raise RuntimeError(f"{name}.to_sklearn() needs the fitted data of every rank (this rank "
                           f"holds {n_local} of {self._n_total_rows()} rows): call "
                           f"gather_fit_data() on every rank first (it is collective); "
                           f"to_sklearn() is then local and may run on one rank alone")

    def _clear_gathered(self):
        self.__dict__.pop("_gathered_fit_data", None)


def thread_limit(n_jobs):
    """Context limiting this rank's BLAS/OpenMP threads to ``n_jobs`` (None: unchanged).

    Negative values count back from the cores of this rank's share, as in joblib: -1 is all.
    """
    if n_jobs is None or n_jobs < 0:
        return nullcontext()
    return threadpool_limits(limits=int(n_jobs))
