"""Every file the toolkit reads, in one place, and reading one never runs code.

Torch files are read by :mod:`mmtransfer.restricted_pickle`, a pickle reader that parses and never
imports or calls what the file names: each name it accepts stands for a rebuild written there
(a function of plain values that returns a tensor, an array, ...). torch's own
``weights_only`` loader is not used, since its default allowlist holds
``_rebuild_from_type_v2``, which calls a function taken from the file.

* **Backbones** (``backbone.pth``, ``.safetensors``: the files people share): plain tensors.
  ``.safetensors`` is read by ``safetensors``; anything else with :data:`BACKBONE_NAMES`
  (tensors, ``OrderedDict``, numbers, strings). A file that names anything else is refused.
* **Training checkpoints** (mmengine's ``epoch_N.pth`` / ``iter_N.pth``: ``--resume``,
  ``tools/test.py``, ``load_from``, ``pretrain/export.py``, ``tools/evaluate.py``):
  :data:`CHECKPOINT_NAMES` adds numpy arrays of numbers, sets, and mmengine's
  ``HistoryBuffer``, rebuilt from its plain arrays by mmengine's own ``__init__``.
* ``MMTRANSFER_TRUST_CHECKPOINTS=1`` is the documented opt-in for a training checkpoint you
  wrote yourself with another toolkit that holds more: it loads with ``weights_only=False``
  (code in the file *runs*). Backbones and :func:`load_weights` never honour it.
* Remote names (``http://``, ``torchvision://``, ``open-mmlab://``, ...) are refused in one line
  by :mod:`mmtransfer.compat`: mmengine would unpickle the download with ``weights_only=False``.

docs/loading.md lists every name each table accepts and why it is safe.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import struct
import zipfile
from collections.abc import Mapping

import torch

from mmtransfer import restricted_pickle
from mmtransfer.restricted_pickle import BACKBONE_NAMES, CHECKPOINT_NAMES, DATA_NAMES, Names

__all__ = ['BACKBONE_NAMES', 'CHECKPOINT_NAMES', 'CheckpointError', 'UnsafeFileError',
           'load_backbone', 'load_checkpoint', 'load_data_pickle', 'load_weights', 'TRUST_ENV']

TRUST_ENV = 'MMTRANSFER_TRUST_CHECKPOINTS'


class CheckpointError(RuntimeError):
    """A file that does not exist, is truncated, or is not a torch/safetensors file."""


class UnsafeFileError(CheckpointError):
    """A file that names something outside the reader's table (and could run code)."""


def _check_file(path: str | os.PathLike) -> str:
    path = osp.expanduser(os.fspath(path))
    if osp.isdir(path):
        raise CheckpointError(f'{path}: is a directory, not a file')
    if not osp.isfile(path):
        raise CheckpointError(f'{path}: file not found')
    return path


def _refused(path: str, err: restricted_pickle.RefusedName, what: str) -> UnsafeFileError:
    return UnsafeFileError(f'{path}: refused: loading it would use {err.what}, which a {what} '
                           f'never needs (a pickle that runs code when opened?)')


def _unreadable(path: str, err: Exception, what: str = 'torch checkpoint') -> CheckpointError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return CheckpointError(f'{path}: not a readable {what} (truncated or foreign file?): '
                           f'{type(err).__name__}: {first}')


def _is_torchscript(path: str) -> bool:
    """A TorchScript archive, which ``torch.load`` would hand to ``torch.jit.load`` (compiling
    the archive's code and running its ``__setstate__`` methods)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split('/', 1)[-1] == 'constants.pkl' for name in archive.namelist())


def _torch_load(path: str, names: Names, what: str, map_location=None):
    if _is_torchscript(path):
        raise UnsafeFileError(f'{path}: refused: a TorchScript archive (its code would be '
                              f'compiled and run), which a {what} never is')
    try:
        return torch.load(path, map_location=map_location, weights_only=False,
                          pickle_module=restricted_pickle.pickle_module(names))
    except restricted_pickle.RefusedName as err:
        raise _refused(path, err, what) from None
    except Exception as err:  # zipfile / EOF / unpickling errors: truncated or not a torch file
        raise _unreadable(path, err) from err


def load_backbone(path: str | os.PathLike) -> dict:
    """Read a backbone file: ``.safetensors``, or a torch file of plain tensors. Returns what the
    file holds (a flat ``{name: tensor}`` dict, or a ``{'state_dict': ...}`` wrapper)."""
    path = _check_file(path)
    if path.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device='cpu')
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f'{path}: not a readable safetensors file: {err}') from err
    return _torch_load(path, BACKBONE_NAMES, 'backbone (plain tensors)', 'cpu')


def load_checkpoint(path: str | os.PathLike, map_location=None) -> Mapping:
    """Read a training checkpoint with :data:`CHECKPOINT_NAMES` (or trusted, with the opt-in)."""
    path = _check_file(path)
    if os.environ.get(TRUST_ENV) == '1':
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:
            raise _unreadable(path, err) from err
    try:
        return _torch_load(path, CHECKPOINT_NAMES, 'training checkpoint', map_location)
    except UnsafeFileError as err:
        raise UnsafeFileError(f'{err}; if you wrote this file yourself, {TRUST_ENV}=1 loads it '
                              f'trusted') from None


def _is_training_checkpoint(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict) \
        and isinstance(obj.get('meta'), dict)


def _is_plain_state_dict(obj) -> bool:
    state = obj.get('state_dict', obj) if isinstance(obj, dict) else None
    return isinstance(state, dict) and all(torch.is_tensor(v) for v in state.values())


def load_weights(path: str | os.PathLike) -> Mapping:
    """A backbone file or a training checkpoint (tools that take either), read once.

    The file is parsed with the checkpoint table (which runs nothing either); what it holds
    decides what it is: an mmengine training checkpoint, or a backbone of plain tensors.
    Anything else is refused, and nothing is ever retried with another loader."""
    path = _check_file(path)
    if path.endswith('.safetensors'):
        return load_backbone(path)
    obj = _torch_load(path, CHECKPOINT_NAMES, 'backbone or training checkpoint', 'cpu')
    if not (_is_training_checkpoint(obj) or _is_plain_state_dict(obj)):
        raise CheckpointError(f'{path}: neither a backbone (a dict of tensors) nor an mmengine '
                              f'training checkpoint (a dict with "state_dict" and "meta")')
    return obj


def load_data_pickle(path: str | os.PathLike, encoding: str = 'bytes'):
    """A data pickle (CIFAR's batch files): dicts, lists, tuples, strings, bytes, numbers and
    numpy arrays of numbers (:data:`DATA_NAMES`); anything else is refused, naming it.

    ``encoding='bytes'`` reads Python 2's ``str`` as ``bytes``, as the CIFAR files need."""
    path = _check_file(path)
    try:
        with open(path, 'rb') as f:
            return restricted_pickle.load(f, DATA_NAMES, encoding=encoding)
    except restricted_pickle.RefusedName as err:
        raise _refused(path, err, 'data file (arrays and plain values)') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            struct.error) as err:
        raise _unreadable(path, err, 'pickle') from err
