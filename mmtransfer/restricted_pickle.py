"""A pickle reader that only parses: it never imports, calls or looks up what a file names.

A pickle is a program for a small stack machine. Most of its opcodes build plain data (numbers,
strings, lists, dicts, tuples); a few import a name (``GLOBAL``, ``STACK_GLOBAL``, ``EXT*``),
call what is on the stack (``REDUCE``, ``NEWOBJ``, ``INST``, ``OBJ``) or call a method of it
(``BUILD``'s ``__setstate__``, ``APPEND``'s ``extend``, ``SETITEM``'s ``__setitem__``). That is
how a file runs code, and why an allowlist of *types* is not enough: torch's own
``_rebuild_from_type_v2(func, ...)`` calls a ``func`` the file hands it, and ``getattr`` turns any
allowed name into any attribute of it (issue 24).

Here each of those opcodes is replaced:

* a name resolves only through a :class:`Names` table, to a :class:`Rebuild` written in this
  module (a function of plain values that checks them and returns a tensor, a numpy array, a
  set, ...) or to a constant (a torch dtype); anything else is refused, naming it;
* ``REDUCE`` / ``NEWOBJ`` call only a :class:`Rebuild`; ``INST``, ``OBJ``, ``NEWOBJ_EX`` and the
  extension registry are refused;
* ``BUILD`` (setting an object's state) is allowed on three objects a rebuild just made, each
  with a checked state: a numpy array (its dtype, shape and bytes), a numpy dtype (its byte
  order) and an ``OrderedDict`` (torch's ``_metadata``); a ``HistoryBuffer`` gets its state from
  the ``BUILD`` as plain arrays and is re-initialised by mmengine's own ``__init__``;
* ``APPEND*`` / ``SETITEM*`` / ``ADDITEMS`` act only on a real list, dict or set.

No rebuild returns a callable or an object with a method the machine would call later, so the
set of things a file can call is exactly the rebuilds below. Tensors come from torch's storage
records (``persistent_load``, which :func:`torch.load` provides) through
``_rebuild_tensor_v2``, with no backward hooks and no metadata.

Use :func:`pickle_module` as ``torch.load(..., pickle_module=..., weights_only=False)``, or
:func:`load` for a plain data pickle (CIFAR's batch files).
"""
from __future__ import annotations

import _compat_pickle
import io
import pickle
import types
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping

import numpy as np
import torch

__all__ = ['Names', 'Rebuild', 'RefusedName', 'pickle_module', 'load', 'BACKBONE_NAMES',
           'DATA_NAMES', 'CHECKPOINT_NAMES']


class RefusedName(pickle.UnpicklingError):
    """The file names a global, or uses an opcode, that this reader does not build."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class Rebuild:
    """A function of plain values, the only kind of thing ``REDUCE`` / ``NEWOBJ`` may call."""

    def __init__(self, name: str, fn: Callable, new: Callable | None = None):
        self.name, self._fn, self._new = name, fn, new

    def __call__(self, *args):
        return self._fn(*args)

    def new(self, *args):
        if self._new is None:
            raise RefusedName(f'NEWOBJ of {self.name}')
        return self._new(*args)

    def __repr__(self) -> str:
        return f'<rebuild {self.name}>'


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise RefusedName(what)


def _is_int_tuple(value) -> bool:
    return isinstance(value, tuple) and all(type(v) is int for v in value)


# ----------------------------------------------------------------------------- torch
def _rebuild_tensor(storage, offset, size, stride, requires_grad, hooks, metadata=None):
    _require(isinstance(storage, torch.storage.TypedStorage | torch.UntypedStorage),
             'torch._utils._rebuild_tensor_v2 without a storage record')
    _require(type(offset) is int and _is_int_tuple(size) and _is_int_tuple(stride)
             and type(requires_grad) is bool, 'torch._utils._rebuild_tensor_v2 with bad sizes')
    _require(isinstance(hooks, dict) and not hooks and not metadata,
             'torch._utils._rebuild_tensor_v2 with backward hooks or metadata')
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad,
                                           OrderedDict())


def _rebuild_parameter(data, requires_grad, hooks):
    _require(type(data) is torch.Tensor and type(requires_grad) is bool
             and isinstance(hooks, dict) and not hooks, 'torch._utils._rebuild_parameter')
    return torch.nn.Parameter(data, requires_grad)


def _counter(counts=None):
    """``MultiStepLR``'s milestones: ``Counter({epoch: count})``."""
    _require(counts is None or type(counts) is dict, 'collections.Counter of a non-dict')
    return Counter(counts or {})


def _plain_ordered_dict(*args):
    _require(not args, 'collections.OrderedDict with arguments')
    return OrderedDict()


def _set_ordered_dict_state(obj: OrderedDict, state) -> None:
    _require(isinstance(state, dict) and set(state) <= {'_metadata'},
             'BUILD of an OrderedDict with attributes other than _metadata')
    obj.__dict__.update(state)


def _torch_size(dims=()):
    _require(_is_int_tuple(dims), 'torch.Size of non-integers')
    return torch.Size(dims)


def _torch_device(kind, index=None):
    _require(type(kind) is str and (index is None or type(index) is int), 'torch.device')
    return torch.device(kind) if index is None else torch.device(kind, index)


_TORCH_DTYPES = {('torch', name): value for name, value in vars(torch).items()
                 if isinstance(value, torch.dtype)}


# ----------------------------------------------------------------------------- python
def _latin1_bytes(text, encoding):
    """Protocol 2 writes ``bytes`` as ``_codecs.encode(text, 'latin1')``."""
    _require(type(text) is str and encoding in ('latin1', 'latin-1'), '_codecs.encode')
    return text.encode('latin-1')


def _collection(kind: type) -> Callable:
    def rebuild(items=()):
        _require(type(items) in (list, tuple), f'builtins.{kind.__name__} of a non-list')
        return kind(items)
    return rebuild


# ----------------------------------------------------------------------------- numpy
class _NdarrayClass:
    """What the name ``numpy.ndarray`` stands for: an argument of ``_reconstruct`` only."""


_NDARRAY = _NdarrayClass()


def _plain_dtype(dtype) -> bool:
    return isinstance(dtype, np.dtype) and not dtype.hasobject and dtype.fields is None \
        and dtype.subdtype is None


def _numpy_dtype(code, align=False, copy=True):
    # Python 2 pickles (CIFAR's batch files, read with encoding='bytes') hold the code as bytes
    # and the flags as the integers 0 and 1 (numpy 1.x's arraydescr_reduce: "(Nii)").
    if type(code) is bytes and code.isascii():
        code = code.decode('ascii')
    _require(type(code) is str and type(align) in (bool, int) and type(copy) in (bool, int),
             'numpy.dtype')
    try:
        dtype = np.dtype(code, align=False, copy=True)  # a copy: BUILD may set its byte order
    except TypeError as err:
        raise RefusedName(f'numpy.dtype({code!r})') from err
    _require(_plain_dtype(dtype), f'numpy.dtype({code!r}) (objects or fields)')
    return dtype


def _set_dtype_state(dtype: np.dtype, state) -> None:
    if isinstance(state, tuple) and len(state) > 1 and type(state[1]) is bytes:
        state = (state[0], state[1].decode('latin-1'), *state[2:])  # Python 2: b'|'
    _require(isinstance(state, tuple) and len(state) == 8 and state[0] == 3
             and state[1] in ('<', '>', '|', '=') and state[2:5] == (None, None, None),
             'BUILD of a numpy.dtype with fields or a subarray')
    dtype.__setstate__(state)


def _numpy_reconstruct(cls, shape, code):
    _require(cls is _NDARRAY and _is_int_tuple(shape) and isinstance(code, bytes | str),
             'numpy _reconstruct of a class other than numpy.ndarray')
    return np.ndarray((0,), dtype=np.uint8)


def _set_array_state(array: np.ndarray, state) -> None:
    _require(isinstance(state, tuple) and len(state) == 5 and type(state[0]) is int
             and _is_int_tuple(state[1]) and _plain_dtype(state[2]) and type(state[3]) is bool
             and isinstance(state[4], bytes | str), 'BUILD of a numpy array of objects')
    raw = state[4].encode('latin-1') if isinstance(state[4], str) else state[4]  # Python 2 str
    array.__setstate__((state[0], state[1], state[2], state[3], raw))


def _numpy_scalar(dtype, raw=b''):
    _require(_plain_dtype(dtype) and isinstance(raw, bytes | str), 'numpy scalar of objects')
    raw = raw.encode('latin-1') if isinstance(raw, str) else raw
    _require(len(raw) == dtype.itemsize, 'numpy scalar of the wrong size')
    return np.frombuffer(raw, dtype=dtype, count=1)[0]


# ----------------------------------------------------------------------------- mmengine
#: HistoryBuffer's statistics, by the names mmengine registers by default (a fixed list).
_STATISTICS = ('min', 'max', 'current', 'mean')


class _Statistic(str):
    """What ``HistoryBuffer.<name>`` stands for in a file: its name, never the method."""


def _history_buffer_new(*args):
    """``NEWOBJ``: an uninitialised HistoryBuffer, which the following ``BUILD`` initialises."""
    from mmengine.logging.history_buffer import HistoryBuffer

    _require(not args, 'NEWOBJ of HistoryBuffer with arguments')
    return HistoryBuffer.__new__(HistoryBuffer)


def _statistic_by_name(owner, name):
    """Protocol 2 writes ``HistoryBuffer.mean`` as ``getattr(HistoryBuffer, 'mean')``."""
    _require(owner is _HISTORY_BUFFER and name in _STATISTICS,
             f'builtins.getattr (only HistoryBuffer.{"/".join(_STATISTICS)} are read)')
    return _Statistic(name)


def _set_history_buffer_state(buffer, state) -> None:
    """``HistoryBuffer.__init__`` on the plain values; its statistics are mmengine's own."""
    keys = {'max_length', '_log_history', '_count_history', 'statistics_methods',
            '_statistics_methods'}
    _require(isinstance(state, dict) and set(state) <= keys
             and type(state.get('max_length')) is int
             and all(isinstance(state.get(k), np.ndarray) for k in ('_log_history',
                                                                  '_count_history')),
             'BUILD of a HistoryBuffer with other state')
    for key in ('statistics_methods', '_statistics_methods'):
        methods = state.get(key, {})
        _require(isinstance(methods, dict)
                 and all(type(v) is _Statistic and k == v for k, v in methods.items()),
                 'HistoryBuffer statistics other than its own')
    buffer.__init__(state['_log_history'], state['_count_history'], state['max_length'])


_HISTORY_BUFFER = Rebuild('mmengine.logging.history_buffer.HistoryBuffer',
                          lambda *_: _refuse('calling HistoryBuffer'), new=_history_buffer_new)


def _refuse(what: str):
    raise RefusedName(what)


# ----------------------------------------------------------------------------- tables
class Names:
    """What each name a file may use stands for: a :class:`Rebuild` or a constant."""

    def __init__(self, table: Mapping[tuple[str, str], object]):
        self.table = dict(table)

    def __or__(self, other: Names) -> Names:
        return Names({**self.table, **other.table})

    def resolve(self, module: str, name: str):
        try:
            return self.table[(module, name)]
        except (KeyError, TypeError):
            raise RefusedName(f'{module}.{name}') from None


def _rebuilds(*entries: tuple[str, Callable]) -> dict:
    table = {}
    for qualname, fn in entries:
        module, name = qualname.rsplit(' ', 1)
        table[(module, name)] = Rebuild(f'{module}.{name}', fn)
    return table


#: Plain data: containers of numbers, strings, bytes; what every table holds.
_PLAIN = _rebuilds(('_codecs encode', _latin1_bytes), ('builtins set', _collection(set)),
                   ('builtins frozenset', _collection(frozenset)),
                   ('collections Counter', _counter))

#: numpy arrays and scalars of numbers, booleans or strings (never objects).
_NUMPY = {
    **_rebuilds(('numpy._core.multiarray _reconstruct', _numpy_reconstruct),
                ('numpy.core.multiarray _reconstruct', _numpy_reconstruct),
                ('numpy._core.multiarray scalar', _numpy_scalar),
                ('numpy.core.multiarray scalar', _numpy_scalar),
                ('numpy dtype', _numpy_dtype)),
    ('numpy', 'ndarray'): _NDARRAY,
}

#: Tensors (torch's storage records) and the state-dict ``OrderedDict``.
_TENSORS = {
    **_rebuilds(('torch._utils _rebuild_tensor_v2', _rebuild_tensor),
                ('torch._utils _rebuild_parameter', _rebuild_parameter),
                ('collections OrderedDict', _plain_ordered_dict),
                ('torch Size', _torch_size), ('torch device', _torch_device)),
    **_TORCH_DTYPES,
}

#: mmengine's message hub: ``HistoryBuffer`` and the names of its statistics.
_MMENGINE = {
    ('mmengine.logging.history_buffer', 'HistoryBuffer'): _HISTORY_BUFFER,
    **_rebuilds(('builtins getattr', _statistic_by_name)),
    **{('mmengine.logging.history_buffer', f'HistoryBuffer.{s}'): _Statistic(s)
       for s in _STATISTICS},  # protocol >= 4 names the method itself
}

BACKBONE_NAMES = Names({**_PLAIN, **_TENSORS})
DATA_NAMES = Names({**_PLAIN, **_NUMPY})
CHECKPOINT_NAMES = Names({**_PLAIN, **_TENSORS, **_NUMPY, **_MMENGINE})


def _set_state(obj, state) -> None:
    """``BUILD``: only on the objects a rebuild made, each with a checked state."""
    from mmengine.logging.history_buffer import HistoryBuffer

    if type(obj) is np.ndarray:
        _set_array_state(obj, state)
    elif isinstance(obj, np.dtype):
        _set_dtype_state(obj, state)
    elif type(obj) is OrderedDict:
        _set_ordered_dict_state(obj, state)
    elif type(obj) is HistoryBuffer:
        _set_history_buffer_state(obj, state)
    else:
        raise RefusedName(f'BUILD (setting the state) of a {type(obj).__name__}')


def _refused_opcode(name: str):
    def load(self):
        raise RefusedName(f'the pickle opcode {name}')
    return load


class _RestrictedUnpickler(pickle._Unpickler):
    """Python's own unpickler (the pure-Python one, whose opcodes can be replaced) with every
    opcode that imports or calls replaced as described in the module docstring."""

    names: Names = Names({})
    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        if self.proto < 3 and self.fix_imports:  # Python 2's names, mapped as pickle's reader does
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        return self.names.resolve(module, name)

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        _require(isinstance(func, Rebuild) and type(args) is tuple,
                 f'REDUCE of {type(func).__name__}')
        self.stack[-1] = func(*args)

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        _require(isinstance(cls, Rebuild) and type(args) is tuple, 'NEWOBJ')
        self.append(cls.new(*args))

    def load_build(self):
        state = self.stack.pop()
        _set_state(self.stack[-1], state)

    def load_append(self):
        value = self.stack.pop()
        _require(type(self.stack[-1]) is list, 'APPEND to a non-list')
        self.stack[-1].append(value)

    def load_appends(self):
        items = self.pop_mark()
        _require(type(self.stack[-1]) is list, 'APPENDS to a non-list')
        self.stack[-1].extend(items)

    def load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        _require(type(self.stack[-1]) in (dict, OrderedDict), 'SETITEM of a non-dict')
        self.stack[-1][key] = value

    def load_setitems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        _require(type(target) in (dict, OrderedDict), 'SETITEMS of a non-dict')
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def load_additems(self):
        items = self.pop_mark()
        _require(type(self.stack[-1]) is set, 'ADDITEMS to a non-set')
        self.stack[-1].update(items)

    for _op, _load in (
            (pickle.REDUCE, load_reduce), (pickle.NEWOBJ, load_newobj), (pickle.BUILD, load_build),
            (pickle.APPEND, load_append), (pickle.APPENDS, load_appends),
            (pickle.SETITEM, load_setitem), (pickle.SETITEMS, load_setitems),
            (pickle.ADDITEMS, load_additems)):
        dispatch[_op[0]] = _load
    for _name in ('INST', 'OBJ', 'NEWOBJ_EX', 'EXT1', 'EXT2', 'EXT4'):
        dispatch[getattr(pickle, _name)[0]] = _refused_opcode(_name)
    del _op, _load, _name


def pickle_module(names: Names) -> types.ModuleType:
    """A ``pickle_module`` for :func:`torch.load` that reads only what ``names`` allows."""
    module = types.ModuleType(f'{__name__}.restricted')
    module.Unpickler = type('Unpickler', (_RestrictedUnpickler,), {'names': names})

    def load_one(file, **kwargs):
        return module.Unpickler(file, **kwargs).load()

    module.load = load_one
    module.UnpicklingError = pickle.UnpicklingError
    return module


def load(file, names: Names = DATA_NAMES, encoding: str = 'ASCII'):
    """One plain-data pickle from a binary file object or ``bytes``."""
    if isinstance(file, bytes | bytearray):
        file = io.BytesIO(file)
    return pickle_module(names).Unpickler(file, encoding=encoding).load()
