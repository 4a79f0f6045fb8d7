"""Preemption and resume: a checkpoint at the end of the iteration on SIGTERM / SIGUSR1, and a
resume that continues where training stopped, also in the middle of an epoch and on another
number of processes.

What torchrun and mmengine already do is not redone here: torchrun restarts lost ranks and
passes the scheduler's signal on to every rank (``tools/dist_common.sh``), mmengine writes and
resumes checkpoints (``runner.save_checkpoint``, atomic through :mod:`mmtransfer.compat`), and
:class:`~mmtransfer.engine.RNGStateHook` keeps every rank's generators. docs/fault-tolerance.md
tells the whole story.
"""
from __future__ import annotations

import itertools
import os.path as osp
import signal
import threading

import torch
from mmengine.dist import all_reduce, barrier, get_world_size, is_main_process
from mmengine.fileio import join_path
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop

from mmtransfer.engine.hooks import RNGStateHook, announce
from mmtransfer.fileio import write_text_atomic


@HOOKS.register_module()
class FaultToleranceHook(Hook):
    """Stops training on SIGTERM or SIGUSR1 with a checkpoint, and resumes from any checkpoint
    where it was written: mid-epoch, and on another number of processes.

    **Signals.** A signal only sets a flag. At the end of every iteration the ranks agree on it
    (one all-reduce of one integer, the largest signal number any rank received), so every rank
    stops after the same iteration. Then ``iter_<N>.pth`` is written where the
    ``CheckpointHook`` writes (``runner.save_checkpoint``: atomic, with every rank's generators
    through :class:`RNGStateHook`), ``last_checkpoint`` names it, one line says
    ``checkpoint written at iteration N on SIGTERM: <file>``, and the process exits with status
    128 + the signal number (143, 138), as a process ended by that signal does. Training that
    has ended (validation, export) is not interrupted by a late signal.

    **Resume point.** Every checkpoint gets ``meta['resume_point']``: the world size, the batch
    per process, the lr factor of ``auto_scale_lr``, and for a checkpoint written in the middle
    of an epoch (``EpochBasedTrainLoop``) the number of samples of that epoch already trained.
    mmengine resumes an epoch-based run at the start of the checkpoint's epoch; this hook makes
    the sampler leave out those samples (drawn, not loaded), so the resumed run sees the batches
    an uninterrupted run would have seen (exactly with ``DefaultSampler``, no batch sampler and
    ``num_workers=0``; the samples of a rank are every ``world``-th of one permutation, so this
    holds on another world size too, up to a partial batch).

    **Kept checkpoints.** With ``max_keep_ckpts > 0`` on the ``CheckpointHook``, a checkpoint a
    signal wrote is deleted once the run resumed from it has written a newer one (mmengine
    rotates only the checkpoints its hook wrote), so that preemptions do not add a checkpoint
    each.

    **Another world size.** The iteration count, the optimizer state and the schedulers continue
    as saved (a schedule in epochs continues by epoch; one in iterations by iteration count).
    With ``auto_scale_lr`` the lr follows the new global batch (it is multiplied by the ratio of
    the new and the old factor); without it, it is kept. One line says which. The generators
    are re-derived by :class:`RNGStateHook`.
    """

    priority = 'LOWEST'  # after every hook that changes what the checkpoint holds
    KEY = 'resume_point'

    def __init__(self, signals: tuple[str, ...] = ('SIGTERM', 'SIGUSR1')):
        self.signals = tuple(signal.Signals[name] for name in signals)
        self._received = 0
        self._previous: dict = {}
        self._point: dict | None = None  # the resume point of the checkpoint loaded
        self._resume_samples = 0  # samples of the resumed epoch already trained
        self._skipped = 0  # batches of this epoch left out on resume
        self._epoch_start = 0  # runner.iter when this epoch started
        self._sampler_class = None
        self._in_iter = False
        self._writing = None  # the file name of the checkpoint a signal is writing
        self._obsolete = None  # its path in this run, deleted once a newer checkpoint exists

    # ---------------------------------------------------------------- signals

    def _on_signal(self, signum, frame) -> None:
        self._received = self._received or signum

    def before_train(self, runner) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        if self._point is not None and getattr(runner, '_resume', False):
            self._resume_samples = self._point.get('epoch_samples') or 0
            self._map_world_size(runner)
            if self._point.get('signal_file'):
                _, out_dir, backend_args = _checkpoint_target(runner)
                self._obsolete = join_path(out_dir, self._point['signal_file'],
                                           backend_args=backend_args)
        self._point = None

    def after_train(self, runner) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._in_iter = True

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._delete_obsolete(runner)
        received = self._received
        if get_world_size() > 1:
            flag = torch.tensor([received], dtype=torch.int64)
            all_reduce(flag, op='max')
            received = int(flag.item())
        if received:
            self._stop(runner, signal.Signals(received))
        self._in_iter = False

    def _stop(self, runner, sig: signal.Signals) -> None:
        ckpt, out_dir, backend_args = _checkpoint_target(runner)
        rng = next((h for h in runner.hooks if isinstance(h, RNGStateHook)), None)
        filename = f'iter_{runner.iter + 1}.pth'
        path = join_path(out_dir, filename, backend_args=backend_args)
        if getattr(ckpt, 'last_ckpt', None) != path:  # not written by the hook this iteration
            if rng is not None:
                rng.gather()  # every rank's generators, now
            self._writing = filename
            runner.save_checkpoint(out_dir, filename, by_epoch=False, backend_args=backend_args)
            self._writing = None
            if is_main_process():
                write_text_atomic(osp.join(runner.work_dir, 'last_checkpoint'), path)
        self._delete_obsolete(runner, newer=path)
        barrier()  # no rank exits before the file is complete
        self._restore_handlers()
        announce(f'checkpoint written at iteration {runner.iter + 1} on {sig.name}: {path}')
        raise SystemExit(128 + int(sig))

    # ---------------------------------------------------------------- resume point

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        meta = checkpoint.setdefault('meta', {})
        point = dict(world_size=get_world_size(), batch_size=_batch_size(runner),
                     lr_scale=_lr_scale(runner))
        if self._in_iter and isinstance(runner.train_loop, EpochBasedTrainLoop):  # mid-epoch
            done = self._skipped + runner.iter + 1 - self._epoch_start
            point['epoch_samples'] = done * point['world_size'] * point['batch_size']
        if self._writing:
            point['signal_file'] = self._writing
        meta[self.KEY] = point

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._point = (checkpoint.get('meta') or {}).get(self.KEY)

    def _delete_obsolete(self, runner, newer: str | None = None) -> None:
        """Deletes the signal's checkpoint this run resumed from once a newer one is written
        (``newer``, else the ``CheckpointHook``'s last), where that hook keeps only
        ``max_keep_ckpts > 0`` (rank 0)."""
        if self._obsolete is None:  # every iteration: no hook lookup then
            return
        ckpt = _checkpoint_target(runner)[0]
        newer = newer or getattr(ckpt, 'last_ckpt', None)
        if ckpt is None or newer in (None, self._obsolete):
            return
        path, self._obsolete = self._obsolete, None
        if ckpt.max_keep_ckpts > 0 and is_main_process() and ckpt.file_backend.isfile(path):
            ckpt.file_backend.remove(path)

    def before_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        self._epoch_start, self._skipped = runner.iter, 0
        if not (self._resume_samples and isinstance(loop, EpochBasedTrainLoop)):
            return
        batch = _batch_size(runner)
        self._skipped = min(self._resume_samples // (get_world_size() * batch),
                            len(loop.dataloader))
        self._resume_samples = 0
        sampler = _index_sampler(loop.dataloader)
        self._sampler_class = type(sampler)
        sampler.__class__ = _skipping(type(sampler))
        sampler._skip, sampler._rng = self._skipped * batch, RNGStateHook._get()

    def after_train_epoch(self, runner) -> None:
        self._delete_obsolete(runner)
        if self._sampler_class is not None:
            _index_sampler(runner.train_loop.dataloader).__class__ = self._sampler_class
            self._sampler_class = None

    def _map_world_size(self, runner) -> None:
        point, world, batch = self._point, get_world_size(), _batch_size(runner)
        old_world, old_batch = point.get('world_size', world), point.get('batch_size', batch)
        factor = _lr_scale(runner) / point.get('lr_scale', _lr_scale(runner))
        if (old_world, old_batch) == (world, batch) and factor == 1:
            return
        groups = [g for opt in _optimizers(runner.optim_wrapper) for g in opt.param_groups]
        before = groups[0]['lr']
        if factor != 1:
            for group in groups:
                for key in ('lr', 'initial_lr'):
                    if key in group:
                        group[key] *= factor
            for scheduler in _schedulers(runner.param_schedulers):
                if getattr(scheduler, 'param_name', None) == 'lr':
                    scheduler.base_values = [v * factor for v in scheduler.base_values]
            base = runner.auto_scale_lr['base_batch_size']
            lr = (f'lr {before:.6g} -> {groups[0]["lr"]:.6g} (auto_scale_lr: lr x global batch '
                  f'/ {base})')
        else:
            lr = (f'lr {before:.6g} kept (auto_scale_lr is off: the lr does not follow the '
                  'global batch; --auto-scale-lr scales it)')
        announce(f'resumed a checkpoint of {old_world} process{"es" * (old_world != 1)} on '
                 f'{world} (global batch {old_world * old_batch} -> {world * batch}): {lr}')


def _skipping(cls: type) -> type:
    """A subclass of the sampler class ``cls`` whose instances leave out their first ``_skip``
    indices (drawn, not loaded) and are shorter by as many; it adds no attribute slot, so a
    sampler's ``__class__`` can be set to it for the resumed epoch and back.

    Its iteration first puts back the generators ``_rng``: the DataLoader draws its base seed
    from them when the epoch's iterator is made, which the interrupted run did before its
    checkpoint (the sampler is iterated after that draw, at the first batch).
    """

    def __iter__(self):
        if self._rng is not None:
            RNGStateHook._set(self._rng)
            self._rng = None
        return itertools.islice(cls.__iter__(self), self._skip, None)

    def __len__(self) -> int:
        return max(cls.__len__(self) - self._skip, 0)

    return type(f'Skipping{cls.__name__}', (cls,),
                dict(__iter__=__iter__, __len__=__len__, __slots__=()))


def _checkpoint_target(runner) -> tuple[CheckpointHook | None, str, dict | None]:
    """The ``CheckpointHook`` of ``runner`` (or None), the folder it writes to (the work dir
    without one) and its ``backend_args``."""
    ckpt = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
    out_dir = getattr(ckpt, 'out_dir', None) or runner.work_dir
    return ckpt, out_dir, getattr(ckpt, 'backend_args', None)


def _index_sampler(dataloader):
    """The sampler of indices: the batch sampler's (mmdet's ``AspectRatioBatchSampler``), or
    the loader's."""
    return getattr(getattr(dataloader, 'batch_sampler', None), 'sampler', None) or \
        dataloader.sampler


def _batch_size(runner) -> int:
    """Images per process and iteration (the config's: a batch sampler hides it from the
    loader)."""
    cfg = runner.cfg.get('train_dataloader') or {}
    return int(cfg.get('batch_size') or runner.train_dataloader.batch_size)


def _lr_scale(runner) -> float:
    """The factor mmengine's ``auto_scale_lr`` applies to the config's lr (1 when off)."""
    auto = getattr(runner, 'auto_scale_lr', None) or {}
    if not auto.get('enable', False) or 'base_batch_size' not in auto:
        return 1.0
    return get_world_size() * _batch_size(runner) / auto['base_batch_size']


def _optimizers(optim_wrapper) -> list:
    wrappers = optim_wrapper.values() if hasattr(optim_wrapper, 'values') else [optim_wrapper]
    return [w.optimizer for w in wrappers]


def _schedulers(schedulers) -> list:
    if isinstance(schedulers, dict):
        return [s for group in schedulers.values() for s in _schedulers(group)]
    return list(schedulers or [])
