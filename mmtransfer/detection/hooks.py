"""Hook that makes resuming an iteration-based schedule reproduce an uninterrupted run."""
from __future__ import annotations

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from mmtransfer.engine.hooks import RNGStateHook


class _RestoreRNGAfter:
    """Iterator wrapper: after the first ``skip`` batches, puts the random generators back in
    the state they had when it was made."""

    def __init__(self, iterator, skip: int):
        self._iterator, self._left = iterator, skip
        self._states = RNGStateHook._get()

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._iterator)
        if self._left > 0:
            self._left -= 1
            if self._left == 0:
                RNGStateHook._set(self._states)
                self._states = None
        return batch


@HOOKS.register_module()
class ResumeSkipRNGHook(Hook):
    """Keeps the batches skipped on resume from moving the random generators.

    On resume, mmengine's ``IterBasedTrainLoop`` reads and discards the ``iter`` batches the
    checkpoint has already trained on, so that the sampler (``InfiniteSampler``) continues at
    the right position. Reading them runs the data pipeline, whose random transforms
    (``RandomFlip``) draw from the global generators right after :class:`RNGStateHook` restored
    them from the checkpoint: the resumed run would then flip other images, and sample other
    RoIs, than a run never interrupted. This hook puts the generators back after the skipped
    batches, so the first new batch starts from the checkpoint's state.

    With ``num_workers > 0`` the pipeline's draws happen in the worker processes, which a
    resumed run re-seeds afresh; exact reproduction then needs ``num_workers=0``.
    """

    priority = 'LOW'

    def before_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:
            loop.dataloader_iterator = _RestoreRNGAfter(loop.dataloader_iterator, loop.iter)
