"""Every file the toolkit reads, in one place, and reading one never runs code.

* **Backbones** (``backbone.pth``, ``.safetensors``, torchvision weights: the files people
  share): plain tensors only. ``.safetensors`` is read by ``safetensors``; anything else by
  ``torch.load(weights_only=True)`` with no type beyond torch's own (tensors, dicts, lists,
  numbers, strings). A file that would need more is refused, naming the type it asked for.
* **Training checkpoints** (mmengine's ``epoch_N.pth`` / ``iter_N.pth``: ``--resume``,
  ``tools/test.py``, ``load_from``, ``pretrain/export.py``): ``weights_only=True`` plus exactly
  :data:`CHECKPOINT_GLOBALS`, the types mmengine and our hooks put in them, found with
  ``torch.serialization.get_unsafe_globals_in_checkpoint`` on real checkpoints of both stages
  (every pretraining method, Faster R-CNN). A checkpoint that needs another type is refused in
  one line naming it.
* ``MMTRANSFER_TRUST_CHECKPOINTS=1`` is the documented opt-in for an old training checkpoint you
  wrote yourself and that needs more: it loads with ``weights_only=False`` (code in the file
  *runs*). Never set it for a file from elsewhere; backbones ignore it.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
import re
from collections.abc import Mapping

import numpy as np
import torch

__all__ = ['CHECKPOINT_GLOBALS', 'CheckpointError', 'UnsafeFileError', 'load_backbone',
           'load_checkpoint', 'load_weights', 'TRUST_ENV']

TRUST_ENV = 'MMTRANSFER_TRUST_CHECKPOINTS'


class CheckpointError(RuntimeError):
    """A file that does not exist, is truncated, or is not a torch/safetensors file."""


class UnsafeFileError(CheckpointError):
    """A file whose loading would need a type outside the allowlist (and could run code)."""


def _checkpoint_globals() -> list:
    from mmengine.logging.history_buffer import HistoryBuffer

    numpy_dtypes = [type(np.dtype(t)) for t in ('u1', 'u4', 'i4', 'i8', 'f4', 'f8', 'b1')]
    return [
        HistoryBuffer,                      # the message hub's loss / lr / time histories
        getattr,                            # HistoryBuffer pickles its statistics methods as
        #                                     getattr(buffer, 'mean'); calling what it returns
        #                                     is still refused by the weights-only unpickler
        np.ndarray, np.dtype, *numpy_dtypes,
        np._core.multiarray._reconstruct,   # numpy arrays: the history values, numpy's RNG state
        np._core.multiarray.scalar,         # numpy scalars in runtime info
    ]


#: The types a training checkpoint of this toolkit holds beyond tensors and builtins.
CHECKPOINT_GLOBALS = _checkpoint_globals()


def _check_file(path: str) -> str:
    path = osp.expanduser(os.fspath(path))
    if not osp.isfile(path):
        raise CheckpointError(f'{path}: file not found')
    return path


def _refused(path: str, err: Exception, what: str) -> UnsafeFileError:
    match = re.search(r'GLOBAL ([\w.]+)', str(err))
    name = match.group(1) if match else type(err).__name__
    return UnsafeFileError(
        f'{path}: refused: loading it would call {name}, which a {what} never needs '
        f'(a pickle that runs code when opened?)')


def _unreadable(path: str, err: Exception) -> CheckpointError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return CheckpointError(f'{path}: not a readable torch checkpoint (truncated or foreign '
                           f'file?): {type(err).__name__}: {first}')


def load_backbone(path: str | os.PathLike) -> dict:
    """Read a backbone file: ``.safetensors`` or a weights-only torch file. Returns what the
    file holds (a flat ``{name: tensor}`` dict, or a ``{'state_dict': ...}`` wrapper)."""
    path = _check_file(path)
    if path.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device='cpu')
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f'{path}: not a readable safetensors file: {err}') from err
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        if 'GLOBAL' in str(err) or 'global' in str(err):
            raise _refused(path, err, 'backbone (plain tensors)') from None
        raise _unreadable(path, err) from err
    except Exception as err:  # zipfile / EOF errors: truncated or not a torch file
        raise _unreadable(path, err) from err


def load_checkpoint(path: str | os.PathLike, map_location=None) -> Mapping:
    """Read a training checkpoint with the allowlist (or trusted, with the opt-in)."""
    path = _check_file(path)
    if os.environ.get(TRUST_ENV) == '1':
        try:
            return torch.load(path, map_location=map_location, weights_only=False)
        except Exception as err:
            raise _unreadable(path, err) from err
    try:
        with torch.serialization.safe_globals(CHECKPOINT_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if 'GLOBAL' in str(err) or 'global' in str(err):
            refusal = _refused(path, err, 'training checkpoint')
            raise UnsafeFileError(f'{refusal}; if you wrote this file yourself, '
                                  f'{TRUST_ENV}=1 loads it trusted') from None
        raise _unreadable(path, err) from err
    except Exception as err:
        raise _unreadable(path, err) from err


def load_weights(path: str | os.PathLike) -> Mapping:
    """A backbone file or a training checkpoint (tools that take either): plain tensors first,
    then the checkpoint allowlist; never more."""
    try:
        return load_backbone(path)
    except UnsafeFileError:
        return load_checkpoint(path, map_location='cpu')
