"""Splitters that cut on global row indices: scikit-learn's folds of the gathered rows.

Rank ``r``'s rows are numbered after all rows of ranks ``0..r-1``. Each splitter runs
scikit-learn's own index generation on the global row count (and, for the stratified ones, on
a stand-in label vector with the global class counts), then keeps this rank's rows: the folds
are those scikit-learn cuts from the gathered rows, for the same ``random_state``.
"""

from __future__ import annotations

import hashlib
import inspect
import numbers

import numpy as np
from sklearn import model_selection as _skms
from sklearn.utils import _safe_indexing
from sklearn.utils.multiclass import type_of_target

from .._array_api import to_host
from .._base import _canonical, _object_params, _Short, collective_function
from ..comm import get_comm
from ..metrics._classification import global_labels

__all__ = ["KFold", "StratifiedKFold", "ShuffleSplit", "train_test_split", "check_cv"]


def _n_local(X, y=None):
    """This rank's row count, checked against ``y`` (raises on every rank through ``agree``)."""
    from sklearn.utils.validation import check_consistent_length

    if y is not None:
        check_consistent_length(X, y)
    return X.shape[0] if hasattr(X, "shape") else len(X)


def _agreed_random_state(comm, random_state):
    """``random_state`` as every rank must use it (:meth:`Comm.agreed_random_state`)."""
    return comm.agreed_random_state(random_state)


def _check_identical(comm, arrays, what):
    """Collective: the ranks computed the same global index arrays (a RandomState instance in a
    different state on some rank would cut different folds)."""
    digest = hashlib.sha256()
    for a in arrays:
        # each array's length first: [0..29], [30..59] and [0..30], [31..59] are different
        # splits whose concatenated bytes are the same
        a = np.ascontiguousarray(a, dtype=np.int64)
        digest.update(np.int64(a.size).tobytes())
        digest.update(a.tobytes())
    digests = comm.allgather(digest.hexdigest())
    if len(set(digests)) > 1:
        groups = {}
        for rank, d in enumerate(digests):
            groups.setdefault(d, []).append(rank)
        raise ValueError(f"{what} cut different rows on different ranks (rank groups "
                         f"{sorted(groups.values())}): pass the same int random_state on every "
                         "rank (a RandomState instance must be in the same state everywhere)")


class _Layout:
    """Where this rank's rows sit among all ranks' rows, and how the classes are spread."""

    def __init__(self, comm, n_local, y=None):
        self.comm = comm
        self.start, self.n_total = comm.offsets(n_local)
        self.n_local = n_local
        if y is None:
            return
        # the class of each row decides its fold: labels (O(rows) of ints) on the host, counted
        y = np.asarray(to_host(y, "stratified folds"))
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise NotImplementedError(f"stratification by y of shape {y.shape} (multilabel or "
                                      "multioutput) is not supported by spmdlearn")
        self.classes = global_labels(comm, y)
        k = len(self.classes)
        self.codes = np.searchsorted(self.classes, y) if len(y) else np.zeros(0, np.int64)
        counts = np.bincount(self.codes, minlength=k)
        first = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, self.codes, np.arange(len(y)))
        #: (n_ranks, n_classes): rows of each class on each rank; first local row of each class
        self.rank_counts = comm.allgather_array(counts.astype(np.int64))
        self.rank_first = comm.allgather_array(first)
        self.counts = self.rank_counts.sum(axis=0)
        #: rows of each class on the ranks before this one
        self.before = self.rank_counts[: comm.rank].sum(axis=0)
        types = comm.allgather(type_of_target(y) if len(y) else None)
        kinds = [t for t in types if t is not None]
        if kinds and all(t in ("binary", "multiclass") for t in kinds):
            self.target_type = "multiclass" if k > 2 else "binary"
        else:
            self.target_type = next((t for t in kinds if t not in ("binary", "multiclass")),
                                    "binary")

    def within_class(self):
        """The index of each local row among the global rows of its class."""
        order = np.argsort(self.codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(self.codes,
                                                            minlength=len(self.classes)))[:-1]])
        within = np.empty(self.n_local, dtype=np.int64)
        within[order] = np.arange(self.n_local) - starts[self.codes[order]]
        return within + self.before[self.codes]

    def synthetic(self, class_order):
        """A label vector with the global class counts, classes in blocks in ``class_order``,
        and the position of each local row in it (its class's block, its rank in the class)."""
        k = len(self.classes)
        block = np.empty(k, dtype=np.int64)
        sizes = self.counts[class_order]
        block[class_order] = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        y_syn = np.repeat(np.arange(k), sizes)
        positions = block[self.codes] + self.within_class() if self.n_local else \
            np.zeros(0, np.int64)
        return y_syn, positions

    def local(self, global_indices):
        """This rank's rows among ``global_indices``, in their order, as local indices."""
        g = np.asarray(global_indices, dtype=np.int64)
        mine = (g >= self.start) & (g < self.start + self.n_local)
        return g[mine] - self.start


class _GlobalSplitter:
    """What the global splitters share: ``split`` (collective) yields this rank's rows of each
    fold, ``split_global`` the global row indices of every fold, identical on every rank."""

    _stratified = False

    def _folds(self, comm, X, y, groups):
        """Collective: ``(layout, [(local train, local test, global train, global test)])``;
        the global arrays may be None where computing them needs a gather."""
        raise NotImplementedError

    def _splits(self, X, y=None, groups=None):
        comm = get_comm()

        def check():
            if self._stratified and y is None:
                raise ValueError("The 'y' parameter should not be None.")
            return _n_local(X, y)

        def params():
            # compared as an estimator's parameters are: a RandomState by its state, so that
            # ranks whose instances would draw different folds are told so before any draw
            return {name: (_canonical(value), _Short(value))
                    for name, value in (_object_params(self) or {}).items()}

        # a session of its own when called directly (``split``); inside cross-validation or a
        # search, part of theirs (where the splitter was compared as the ``cv`` argument)
        with comm.session(f"{type(self).__name__}.split", params):
            n_local = comm.agree(check)
            return self._folds(comm, n_local, y)

    def split(self, X, y=None, groups=None):
        """Collective: this rank's rows of each train/test split of all ranks' rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            This rank's rows (may be empty).
        y : array-like of shape (n_samples,), default=None
            This rank's targets (needed by the stratified splitters).
        groups : None
            Ignored, as by scikit-learn's splitter.

        Yields
        ------
        train, test : ndarray of int64
            Local row indices into this rank's ``X``, in the order scikit-learn gives the
            corresponding global rows.
        """
        _, folds = self._splits(X, y, groups)
        for train, test, _, _ in folds:
            yield train, test

    def split_global(self, X, y=None, groups=None):
        """Collective: the global row indices of each split, identical on every rank.

        Returns
        -------
        splits : list of (train, test) ndarray pairs
            What scikit-learn's splitter yields on the gathered rows. For the stratified
            splitter the fold of each row is gathered (``Allgatherv``, 8 bytes per row).
        """
        layout, folds = self._splits(X, y, groups)
        out = []
        for train, test, g_train, g_test in folds:
            if g_train is None:
                comm = layout.comm
                g_train = comm.allgather_rows(train + layout.start)
                g_test = comm.allgather_rows(test + layout.start)
            out.append((g_train, g_test))
        return out


class KFold(_GlobalSplitter, _skms.KFold):
    """K-fold cross-validation over all ranks' rows, scikit-learn's folds of the gathered rows.

    Parameters
    ----------
    n_splits : int, default=5
    shuffle : bool, default=False
    random_state : int, RandomState instance or None, default=None
        As scikit-learn's. None: a seed drawn on rank 0 and shared, so every rank cuts the same
        folds. A RandomState instance must be in the same state on every rank (checked).

    Notes
    -----
    **Distributed semantics.** ``split`` is collective (one ``Allgather`` of the row counts and
    one of a digest). Every rank builds scikit-learn's global index arrays (8 bytes per row of
    all ranks, transiently) and keeps its own rows.
    """

    def _folds(self, comm, n_local, y):
        layout = _Layout(comm, n_local)
        sk = _skms.KFold(self.n_splits, shuffle=self.shuffle,
                         random_state=_agreed_random_state(comm, self.random_state)
                         if self.shuffle else self.random_state)
        splits = list(sk.split(np.broadcast_to(0.0, (layout.n_total, 1))))
        _check_identical(comm, [a for s in splits for a in s], type(self).__name__)
        return layout, [(layout.local(tr), layout.local(te), tr, te) for tr, te in splits]


class ShuffleSplit(_GlobalSplitter, _skms.ShuffleSplit):
    """Random permutation cross-validation over all ranks' rows (scikit-learn's splits of the
    gathered rows).

    Parameters
    ----------
    n_splits : int, default=10
    test_size, train_size : float or int, default=None
        Of all ranks' rows, as scikit-learn's.
    random_state : int, RandomState instance or None, default=None
        See :class:`KFold`.

    Notes
    -----
    **Distributed semantics.** As :class:`KFold`.
    """

    def _folds(self, comm, n_local, y):
        layout = _Layout(comm, n_local)
        sk = _skms.ShuffleSplit(self.n_splits, test_size=self.test_size,
                                train_size=self.train_size,
                                random_state=_agreed_random_state(comm, self.random_state))
        splits = list(sk.split(np.broadcast_to(0.0, (layout.n_total, 1))))
        _check_identical(comm, [a for s in splits for a in s], type(self).__name__)
        return layout, [(layout.local(tr), layout.local(te), tr, te) for tr, te in splits]


class StratifiedKFold(_GlobalSplitter, _skms.StratifiedKFold):
    """Stratified k-fold over all ranks' rows: scikit-learn's folds of the gathered rows.

    Parameters
    ----------
    n_splits : int, default=5
    shuffle : bool, default=False
    random_state : int, RandomState instance or None, default=None
        See :class:`KFold`.

    Notes
    -----
    **Distributed semantics.** ``split`` is collective. scikit-learn assigns the rows of each
    class to folds in the order the rows appear, from the class counts alone (classes taken in
    order of first appearance). So no label vector is gathered: each rank shares its class
    counts and the first row of each class (O(n_classes) per rank), every rank runs
    scikit-learn's ``StratifiedKFold`` on a stand-in label vector with those counts (8 bytes
    per row of all ranks, transiently), and each rank reads the folds of its own rows from
    their class and their rank within the class. The folds equal scikit-learn's on the gathered
    rows, for any split of the rows over the ranks. Its errors and warnings (too few members in
    a class, a continuous ``y``) are scikit-learn's, from the global counts.
    """

    _stratified = True

    def _folds(self, comm, n_local, y):
        layout = _Layout(comm, n_local, y)
        if layout.target_type not in ("binary", "multiclass"):
            raise ValueError("Supported target types are: ('binary', 'multiclass'). Got "
                             f"{layout.target_type!r} instead.")
        # scikit-learn encodes the classes in order of first appearance in y.
        owner = np.argmax(layout.rank_counts > 0, axis=0)
        first = layout.rank_first[owner, np.arange(len(layout.classes))]
        order = np.lexsort((first, owner))
        y_syn, positions = layout.synthetic(order)
        sk = _skms.StratifiedKFold(self.n_splits, shuffle=self.shuffle,
                                   random_state=_agreed_random_state(comm, self.random_state)
                                   if self.shuffle else self.random_state)
        fold_of = np.empty(len(y_syn), dtype=np.int64)
        for i, (_, test) in enumerate(sk.split(np.broadcast_to(0.0, (len(y_syn), 1)), y_syn)):
            fold_of[test] = i
        _check_identical(comm, [fold_of], type(self).__name__)
        mine = fold_of[positions]
        folds = [(np.flatnonzero(mine != i), np.flatnonzero(mine == i), None, None)
                 for i in range(self.n_splits)]
        return layout, folds


class _GlobalIndexSplits(_GlobalSplitter):
    """User-given splits, read as global row indices (as scikit-learn reads indices into the
    gathered rows)."""

    def __init__(self, splits):
        self.splits = splits

    def get_n_splits(self, X=None, y=None, groups=None):
        return len(self.splits)

    def _folds(self, comm, n_local, y):
        layout = _Layout(comm, n_local)

        def check():
            out = []
            for train, test in self.splits:
                train, test = np.asarray(train), np.asarray(test)
                for a in (train, test):
                    if a.dtype == bool:
                        raise ValueError("boolean masks as cv splits are not supported: pass "
                                         "global row indices")
                    if a.size and (a.min() < -layout.n_total or a.max() >= layout.n_total):
                        raise ValueError(f"cv split index out of range for n_samples="
                                         f"{layout.n_total} (summed over {comm.size} ranks)")
                out.append((train.astype(np.int64) % max(layout.n_total, 1),
                            test.astype(np.int64) % max(layout.n_total, 1)))
            return out

        splits = comm.agree(check)
        _check_identical(comm, [a for s in splits for a in s], "the cv splits")
        return layout, [(layout.local(tr), layout.local(te), tr, te) for tr, te in splits]


_SKLEARN_TWINS = {_skms.KFold: KFold, _skms.StratifiedKFold: StratifiedKFold,
                  _skms.ShuffleSplit: ShuffleSplit}


def _cv_default(arguments):
    """``cv=None`` is ``cv=5``, as in scikit-learn: the ranks compare what they mean."""
    if arguments.get("cv", 5) is None:
        arguments["cv"] = 5
    return arguments


def _model_selection_meaning(arguments):
    """The arguments of a cross-validation or a search by what they mean, for the ranks'
    comparison (:func:`spmdlearn._base.canonical_arguments`' ``resolve``):

    * ``cv=None`` is ``cv=5``, as in scikit-learn;
    * ``n_jobs=None`` is ``n_jobs=1``: one worker per rank either way (others are refused);
    * ``scoring`` as a list, tuple or set of names is scikit-learn's multimetric dict
      ``{name: name}``, and several scorings are in the order of their names, the order in
      which every rank computes them (:func:`~spmdlearn.model_selection._common.ordered_scoring`);
    * ``pre_dispatch`` has no effect with one job, and ``verbose`` prints on rank 0 only (the
      other ranks' values are not used): neither is compared.
    """
    arguments = _cv_default(arguments)
    if "n_jobs" in arguments and arguments["n_jobs"] is None:
        arguments["n_jobs"] = 1
    if "scoring" in arguments:
        from ._common import ordered_scoring

        arguments["scoring"] = ordered_scoring(arguments["scoring"])
    for unused in ("pre_dispatch", "verbose"):
        arguments.pop(unused, None)
    return arguments


def _split_sizes_default(arguments):
    """Neither size given: ``test_size=0.25``, as in scikit-learn."""
    if arguments.get("test_size") is None and arguments.get("train_size") is None:
        arguments["test_size"] = 0.25
    return arguments


@collective_function(resolve=_cv_default)
def check_cv(cv=5, y=None, *, classifier=False):
    """Collective: a global splitter for ``cv``, as scikit-learn's ``check_cv`` chooses one.

    Parameters
    ----------
    cv : int, splitter or iterable, default=5
        None or int: :class:`StratifiedKFold` for a classifier whose ``y`` (over all ranks) is
        binary or multiclass, else :class:`KFold`. A spmdlearn splitter is used as is;
        scikit-learn's ``KFold``, ``StratifiedKFold`` and ``ShuffleSplit`` become their global
        twins with the same parameters. An iterable of ``(train, test)`` pairs gives global row
        indices, identical on every rank.
    y : array-like of shape (n_samples,), default=None
        This rank's targets.
    classifier : bool, default=False

    Returns
    -------
    splitter : a global splitter

    Raises
    ------
    NotImplementedError
        For another splitter class (it would cut each rank's rows on their own).
    """
    cv = 5 if cv is None else cv
    if isinstance(cv, numbers.Integral):
        if classifier and y is not None:
            comm = get_comm()
            kinds = comm.allgather(type_of_target(y) if len(y) else None)
            kinds = [k for k in kinds if k is not None]
            if kinds and all(k in ("binary", "multiclass") for k in kinds):
                return StratifiedKFold(cv)
        return KFold(cv)
    if isinstance(cv, _GlobalSplitter):
        return cv
    if type(cv) in _SKLEARN_TWINS:
        names = [p for p in inspect.signature(type(cv).__init__).parameters if p != "self"]
        return _SKLEARN_TWINS[type(cv)](**{p: getattr(cv, p) for p in names})
    if hasattr(cv, "split") or isinstance(cv, str):
        raise NotImplementedError(
            f"cv={cv!r}: spmdlearn's model selection cuts folds on global row indices with "
            "KFold, StratifiedKFold and ShuffleSplit (its own or scikit-learn's), an int, or an "
            "iterable of (train, test) global row indices; other splitters would cut each "
            "rank's rows on their own")
    return _GlobalIndexSplits(list(cv))


@collective_function(resolve=_split_sizes_default)
def train_test_split(*arrays, test_size=None, train_size=None, random_state=None, shuffle=True,
                     stratify=None):
    """Collective: scikit-learn's ``train_test_split`` of all ranks' rows, this rank's part.

    Parameters
    ----------
    *arrays : sequence of indexables with the same number of rows (on this rank)
        This rank's rows (lists, NumPy arrays, SciPy sparse matrices or pandas frames).
    test_size, train_size : float or int, default=None
        Of all ranks' rows, as scikit-learn's.
    random_state : int, RandomState instance or None, default=None
        See :class:`KFold`.
    shuffle : bool, default=True
    stratify : array-like of shape (n_samples,), default=None
        This rank's class labels.

    Returns
    -------
    splitting : list, length=2 * len(arrays)
        This rank's rows of each array's train and test parts. Over the ranks, in rank order,
        they are the rows scikit-learn's ``train_test_split`` gives on the gathered arrays (each
        rank keeps scikit-learn's order among its own rows).

    Notes
    -----
    **Distributed semantics.** Collective. Unstratified: scikit-learn's split of the global
    row indices (8 bytes per row of all ranks, transiently). Stratified: scikit-learn's
    ``StratifiedShuffleSplit`` draws from the class counts alone, so the ranks share their
    class counts (O(n_classes) per rank) and run it on a stand-in label vector; each rank maps
    the draws back to its own rows.
    """
    if not arrays:
        raise ValueError("At least one array required as input")
    comm = get_comm()

    def check():
        from sklearn.utils.validation import check_consistent_length

        check_consistent_length(*arrays, *([stratify] if stratify is not None else []))
        if stratify is not None and not shuffle:
            raise ValueError("Stratified train/test split is not implemented for shuffle=False")
        return _n_local(arrays[0])

    n_local = comm.agree(check)
    layout = _Layout(comm, n_local, stratify)
    rs = _agreed_random_state(comm, random_state) if shuffle else random_state
    if stratify is None:
        train, test = _skms.train_test_split(np.arange(layout.n_total), test_size=test_size,
                                             train_size=train_size, random_state=rs,
                                             shuffle=shuffle)
        _check_identical(comm, [train, test], "train_test_split")
        train, test = layout.local(train), layout.local(test)
    else:
        y_syn, positions = layout.synthetic(np.arange(len(layout.classes)))
        train_syn, test_syn = _skms.train_test_split(np.arange(len(y_syn)), test_size=test_size,
                                                     train_size=train_size, random_state=rs,
                                                     stratify=y_syn)
        _check_identical(comm, [train_syn, test_syn], "train_test_split")
        lookup = np.full(len(y_syn), -1, dtype=np.int64)
        lookup[positions] = np.arange(n_local)
        train, test = lookup[train_syn], lookup[test_syn]
        train, test = train[train >= 0], test[test >= 0]
    out = []
    for a in arrays:
        out.extend([_safe_indexing(a, train), _safe_indexing(a, test)])
    return out
