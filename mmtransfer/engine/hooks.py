"""Hooks of pretraining: EMA teacher update, non-finite loss guard, metrics dump, export."""
from __future__ import annotations

import json
import math
import os.path as osp
import random
import sys

import numpy as np
import torch
from mmengine.dist import (
    all_gather_object,
    all_reduce,
    all_reduce_params,
    get_dist_info,
    get_rank,
    get_world_size,
    master_only,
)
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from mmtransfer.fileio import write_text_atomic


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def announce(line: str) -> None:
    """One line on stderr, from rank 0 only: what happened (a restart, a preemption, a resume
    on another world size), once per event whatever the number of ranks."""
    if get_rank() == 0:
        print(line, file=sys.stderr, flush=True)


@HOOKS.register_module()
class TeacherEMAHook(Hook):
    """After each optimizer step, moves the EMA teacher towards the student.

    Runs on every rank. DDP keeps the students' parameters identical, but each rank updates its
    BN running statistics from its own images; under DDP they are first averaged across ranks
    (one small all-reduce of the floating-point buffers), so students and teachers stay
    identical on every rank (checked by the two-process test).
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        model = _unwrap(runner.model)
        if get_world_size() > 1:
            all_reduce_params([b for b in model.student.buffers() if b.is_floating_point()],
                              op='mean')
        model.update_teacher()


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stops training at the first non-finite loss term, before it can be checkpointed.

    Runs before the checkpoint hook (priority ``VERY_HIGH``), so no checkpoint is written at or
    after the failing iteration: the last one on disk is from before it. Pretraining and
    detection configs both use it. mmengine's RuntimeInfoHook reads these values to the host every
    iteration anyway, so this adds no device sync. Under DDP the flags of every rank are summed
    (one small all-reduce), so all ranks stop together at the same iteration instead of one rank
    stopping and the others waiting for it until the NCCL timeout.
    """

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        # the terms (loss_cls, loss_distill, ...) before their sum, so the culprit is named
        terms = [(key, value.detach().item() if torch.is_tensor(value) else float(value))
                 for key, value in sorted((outputs or {}).items(), key=lambda kv: kv[0] == 'loss')
                 if 'loss' in key]
        bad = torch.tensor([float(not math.isfinite(v)) for _, v in terms], dtype=torch.float64)
        world = get_world_size()
        if world > 1:
            all_reduce(bad, op='sum')
        for (key, value), ranks in zip(terms, bad.tolist(), strict=True):
            if ranks > 0:
                what = (f'{key} = {value} is not finite' if not math.isfinite(value) else
                        f'{key} is not finite on another rank (here {value:.4g})')
                where = f' ({int(ranks)} of {world} ranks)' if world > 1 else ''
                raise NonFiniteLossError(
                    f'iteration {runner.iter + 1}: {what}{where}; stopped, the last checkpoint '
                    f'in {runner.work_dir} is the last good one')


@HOOKS.register_module()
class ExportBackboneHook(Hook):
    """At the end of training, writes ``<work_dir>/backbone.pth`` for MMDetection's ``ResNet``,
    and the same tensors as ``backbone.safetensors`` (the file to share). A CIFAR network's
    encoder is written the same way, under its own key names (:mod:`mmtransfer.export`).

    Args:
        which: ``student`` (default) or ``teacher`` (the EMA teacher, distillation methods).
        filename: output name inside the work dir.
    """

    priority = 'LOWEST'

    def __init__(self, which: str = 'student', filename: str = 'backbone.pth'):
        self.which, self.filename = which, filename

    @master_only
    def after_run(self, runner) -> None:
        from mmtransfer.export import backbone_state_dict, save_backbone

        model = _unwrap(runner.model)
        if runner.train_loop is None or getattr(runner.train_loop, 'iter', 0) == 0:
            return  # test-only runs or no step taken: nothing to export
        out = osp.join(runner.work_dir, self.filename)
        paths = save_backbone(backbone_state_dict(model.state_dict(), self.which), out)
        runner.logger.info(f'exported the {self.which} backbone to {" and ".join(paths)}')


@HOOKS.register_module()
class DumpMetricsHook(Hook):
    """Writes the latest validation metrics to ``<work_dir>/<filename>`` (atomic JSON)."""

    def __init__(self, filename: str = 'val_metrics.json'):
        self.filename = filename

    @master_only
    def after_val_epoch(self, runner, metrics=None) -> None:
        if not metrics:
            return
        write_text_atomic(osp.join(runner.work_dir, self.filename),
                          json.dumps(dict(metrics, epoch=runner.epoch, iter=runner.iter), indent=2))


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves the random generators in every checkpoint and restores them on resume.

    With it, a run killed after a checkpoint and resumed with ``--resume`` draws the same random
    numbers (augmentation, Lambda, permutations, the mixing coin, RoI sampling) as a run never
    interrupted, and so ends with the same weights on CPU with a fixed seed. Two mmengine
    behaviours would otherwise move the generators:

    - a resumed run does not repeat the validation that followed its checkpoint, so validation
      is made RNG-neutral (the generators are put back after it);
    - on resume, ``IterBasedTrainLoop`` reads and discards the ``iter`` batches already trained
      (so that ``InfiniteSampler`` continues at the right position), running the data pipeline's
      random transforms; the generators are put back after those skipped batches.

    With ``num_workers > 0`` the pipeline draws in worker processes, which are seeded per epoch
    by mmengine, so epoch-based runs stay exact; an iteration-based run resumed mid-way needs
    ``num_workers=0`` for exact reproduction.

    Every rank has its own streams (``randomness.diff_rank_seed``), so the checkpoint holds one
    state per rank, ``rng_states = [rank 0, rank 1, ...]``, and each rank gets its own back.
    mmengine saves checkpoints on rank 0 only, so the states are gathered from all ranks just
    before a checkpoint is due (the ``CheckpointHook``'s own test, or :meth:`gather` called by
    whoever saves outside it; one small all-gather then). A resume on another number of ranks
    cannot restore them: each rank's generators are re-derived from the seed, the rank and the
    checkpoint's iteration (deterministic, and not the streams of iteration 0 again), with one
    line saying so. A checkpoint from before per-rank states (one dict) is restored on every
    rank.
    """

    priority = 'VERY_HIGH'
    KEY = 'rng_states'

    def __init__(self):
        self._gathered: list[dict] | None = None

    @staticmethod
    def _get() -> dict:
        states = dict(python=random.getstate(), numpy=np.random.get_state(),
                      torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states['cuda'] = torch.cuda.get_rng_state_all()
        return states

    @staticmethod
    def _set(states: dict) -> None:
        random.setstate(states['python'])
        np.random.set_state(states['numpy'])
        torch.set_rng_state(states['torch'])
        if 'cuda' in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states['cuda'])

    @staticmethod
    def _checkpoint_due(runner, by_epoch: bool) -> bool:
        """Whether the ``CheckpointHook`` saves after this iteration (epoch), by its own test."""
        hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        if hook is None or hook.by_epoch != by_epoch:
            return False
        if by_epoch:
            return bool(hook.every_n_epochs(runner, hook.interval, hook.save_begin)
                        or (hook.save_last and hook.is_last_train_epoch(runner)))
        return bool(hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                    or (hook.save_last and hook.is_last_train_iter(runner)))

    def gather(self) -> None:
        """Collects every rank's generators for the next checkpoint (a collective: every rank
        calls it)."""
        if get_world_size() > 1:
            self._gathered = all_gather_object(self._get())

    def _gather_if_due(self, runner, by_epoch: bool) -> None:
        if get_world_size() > 1 and self._checkpoint_due(runner, by_epoch):
            self.gather()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._gather_if_due(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_due(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if get_world_size() > 1 and self._gathered is None:
            runner.logger.warning('RNGStateHook: checkpoint saved outside the CheckpointHook '
                                  'schedule; only rank 0\'s generators are stored')
        checkpoint[self.KEY] = self._gathered or [self._get()]
        self._gathered = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get(self.KEY)
        if states is None:
            return
        rank, world = get_dist_info()
        if isinstance(states, dict):  # one state for all ranks (checkpoints before per-rank)
            self._set(states)
        elif len(states) == world:
            self._set(states[rank])
        else:
            seed = runner.seed if runner.seed is not None else 0
            iteration = int((checkpoint.get('meta') or {}).get('iter', 0))
            derived = int(np.random.SeedSequence([seed, rank, iteration]).generate_state(1)[0])
            random.seed(derived)
            np.random.seed(derived)
            torch.manual_seed(derived)  # and every CUDA device's
            announce(f'the checkpoint holds the random generators of {len(states)} '
                     f'process{"es" * (len(states) != 1)}, this run has {world}: each rank\'s '
                     f'are re-derived from the seed ({seed}), the rank and iteration {iteration}')

    def before_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:  # resumed: batches skipped
            loop.dataloader_iterator = _RestoreRNGAfter(loop.dataloader_iterator, loop.iter,
                                                        self._get())

    def before_val_epoch(self, runner) -> None:
        self._saved = self._get()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._set(self._saved)


class _RestoreRNGAfter:
    """Iterator wrapper: after the first ``skip`` batches, restores the generator ``states``."""

    def __init__(self, iterator, skip: int, states: dict):
        self._iterator, self._left, self._states = iterator, skip, states

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._iterator)
        if self._left > 0:
            self._left -= 1
            if self._left == 0:
                RNGStateHook._set(self._states)
        return batch
