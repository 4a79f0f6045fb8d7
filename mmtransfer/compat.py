"""Every version workaround of the stack, in one place.

Imported (and applied) by ``mmtransfer/__init__.py``, so every entry point that imports
the package (``pretrain/``, ``tools/``, tests) gets it. Installed packages are never edited.

torch >= 2.6 defaults ``torch.load(weights_only=True)``. mmengine 0.10.7 predates that and
its local-file loader calls ``torch.load(filename, map_location=...)``, so resuming or testing
from an mmengine checkpoint (which pickles the message hub, numpy scalars, ...) fails with an
``UnpicklingError``. We re-register mmengine's local-file scheme with a loader that passes
``weights_only=False``: these are checkpoints the user's own runs wrote.

mmengine 0.10.7 also writes checkpoints in place (``LocalBackend.put``): a job killed during
the write leaves a truncated ``epoch_N.pth`` that ``--resume`` then picks. The Runner's
``save_checkpoint`` is replaced, for local paths, by an atomic one (temp file + rename).
"""
from __future__ import annotations

import os.path as osp
import warnings

# mmengine 0.10.7 imports pkg_resources, which setuptools >= 80 reports as deprecated on every
# run (setuptools < 82 is pinned because mmcv's build needs it); the notice is noise to users.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

import torch  # noqa: E402
from mmengine.runner import runner as mmengine_runner  # noqa: E402
from mmengine.runner.checkpoint import CheckpointLoader  # noqa: E402

from mmtransfer.fileio import save_atomic  # noqa: E402


class CheckpointError(RuntimeError):
    """A checkpoint file that does not exist, is truncated, or is not a torch pickle."""


def torch_load_trusted(filename: str, map_location=None):
    """``torch.load`` of a local file written by this toolkit or mmengine (trusted pickle).

    Raises :class:`CheckpointError` naming the file when it is missing, truncated or foreign.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointError(f'{filename}: checkpoint file not found')
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except Exception as err:  # zipfile / pickle / EOF errors all mean the same to the user
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f'{filename}: not a readable torch checkpoint (truncated or foreign file?): '
            f'{type(err).__name__}: {first_line}') from err


def _load_from_local(filename, map_location):
    return torch_load_trusted(filename, map_location)


_save_checkpoint_in_place = mmengine_runner.save_checkpoint


def _save_checkpoint_atomic(checkpoint, filename, file_client_args=None, backend_args=None):
    if '://' in str(filename):  # remote backends keep mmengine's own writer
        return _save_checkpoint_in_place(checkpoint, filename, file_client_args, backend_args)
    save_atomic(checkpoint, filename)


_applied = False


def apply() -> None:
    """Install the workarounds (idempotent)."""
    global _applied
    if _applied:
        return
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)
    mmengine_runner.save_checkpoint = _save_checkpoint_atomic
    _applied = True
