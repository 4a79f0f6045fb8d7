"""Every version workaround of the stack, in one place.

Imported (and applied) by ``mmtransfer/__init__.py``, so every entry point that imports
the package (``pretrain/``, ``tools/``, tests) gets it. Installed packages are never edited.

torch >= 2.6 defaults ``torch.load(weights_only=True)``. mmengine 0.10.7 predates that and
its local-file loader calls ``torch.load(filename, map_location=...)``, so resuming or testing
from an mmengine checkpoint (which pickles the message hub, numpy arrays, ...) fails with an
``UnpicklingError``. We re-register mmengine's local-file scheme (every ``--resume``,
``load_from``, ``tools/test.py CHECKPOINT`` and ``Pretrained`` init) with
:func:`mmtransfer.loading.load_checkpoint`, which parses the file and never runs code from it.
Every remote scheme mmengine knows (``http(s)://``, ``torchvision://``, ``open-mmlab://``,
``mmcls://``, ``s3://``, ...) would unpickle the download (or a file planted in the torch hub
cache) with ``weights_only=False``; each is replaced by a one-line refusal that says to download
the file and pass the local path, which then goes through the same loader.

mmengine 0.10.7 also writes checkpoints in place (``LocalBackend.put``): a job killed during
the write leaves a truncated ``epoch_N.pth`` that ``--resume`` then picks. The Runner's
``save_checkpoint`` is replaced, for local paths, by an atomic one (temp file + rename).
"""
from __future__ import annotations

import warnings

# mmengine 0.10.7 imports pkg_resources, which setuptools >= 80 reports as deprecated on every
# run (setuptools < 82 is pinned because mmcv's build needs it); the notice is noise to users.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

from mmengine.runner import runner as mmengine_runner  # noqa: E402
from mmengine.runner.checkpoint import CheckpointLoader  # noqa: E402

from mmtransfer.fileio import save_atomic  # noqa: E402
from mmtransfer.loading import CheckpointError, load_checkpoint  # noqa: E402,F401


def _load_from_local(filename, map_location):
    return load_checkpoint(filename, map_location)


def _refuse_remote(filename, map_location=None, *args, **kwargs):
    raise CheckpointError(
        f'{filename}: remote checkpoints are not opened here (mmengine would unpickle the '
        f'download, running any code in it); download it, then pass the local file, which is '
        f'read without running code')


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
    remote = [prefix for prefix in CheckpointLoader._schemes if prefix]
    CheckpointLoader.register_scheme(prefixes=remote, loader=_refuse_remote, force=True)
    CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local, force=True)
    mmengine_runner.save_checkpoint = _save_checkpoint_atomic
    _applied = True
