"""The shortcuts of the multi-rank host path give what the general code gives (serial).

* ``_base._bind``: binding a collective call's arguments without ``inspect`` gives
  ``Signature.bind`` + ``apply_defaults``, or declines (None) where ``inspect`` must answer;
* ``comm._Head``: the column checks of a status exchange, from two array reductions;
* ``Comm.mpi``: setting it keeps ``rank`` and ``size``.
"""

import inspect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spmdlearn._base import _bind, _layout
from spmdlearn.comm import _FAILED, _ROW, _STATUS, _WARNED, Comm, _Head

pytestmark = pytest.mark.serial


def _plain(self, X, y=None, sample_weight=None):
    pass


def _keyword_only(self, X, *, copy=None):
    pass


def _variadic(self, *args, **kwargs):
    pass


def _required(self, X, y):
    pass


@pytest.mark.parametrize("function", [_plain, _keyword_only, _variadic, _required])
@given(n_args=st.integers(0, 5),
       names=st.lists(st.sampled_from(["self", "X", "y", "sample_weight", "copy", "other"]),
                      unique=True, max_size=3))
def test_bind_is_inspect_bind(function, n_args, names):
    signature = inspect.signature(function)
    args, kwargs = tuple(range(n_args)), {name: name for name in names}
    try:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        expected = dict(bound.arguments)
    except TypeError:
        expected = None
    got = _bind(_layout(signature), args, kwargs)
    if got is not None:  # None: declined, inspect binds (or raises)
        assert expected is not None and list(got.items()) == list(expected.items())
    if function is _plain and expected is not None:
        assert got is not None  # plain signatures take the shortcut


@given(rows=st.lists(st.lists(st.integers(-3, 3), min_size=_ROW, max_size=_ROW),
                     min_size=1, max_size=5))
def test_head_is_the_column_checks(rows):
    rows = np.array(rows, dtype=np.int64)
    head = _Head(np.hstack([rows, np.zeros((len(rows), 4), np.int64)]))
    for column in range(_ROW):
        assert head.differ[column] == bool((rows[:, column] != rows[0, column]).any())
    for flag in (_FAILED, _WARNED):
        assert bool(head.status & flag) == bool((rows[:, _STATUS] & flag).any())


class _Sized:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


def test_setting_mpi_sets_rank_and_size():
    comm = Comm(_Sized(1, 3))
    assert (comm.rank, comm.size) == (1, 3)
    other = _Sized(0, 2)
    comm.mpi = other
    assert comm.mpi is other and (comm.rank, comm.size) == (0, 2)
