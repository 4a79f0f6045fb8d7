"""RNGStateHook on resume: the batches IterBasedTrainLoop skips leave the generators as they
were, so the first new batch draws what an uninterrupted run would draw."""
from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.runner import IterBasedTrainLoop

from mmtransfer.engine import RNGStateHook


def drawing_batches():
    """An endless loader whose every batch draws from the three global generators (as
    RandomFlip and mmdet's samplers do)."""
    while True:
        yield (random.random(), float(np.random.rand()), float(torch.rand(())))


def fake_runner(iteration: int):
    loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)  # just the attributes the hook reads
    loop._iter, loop.dataloader_iterator = iteration, drawing_batches()
    return SimpleNamespace(train_loop=loop)


def seed(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def test_skipped_batches_draw_nothing_and_the_next_batch_is_the_checkpoints():
    seed(0)
    expected_first_new_batch = next(drawing_batches())

    seed(0)  # the generators as RNGStateHook restored them from the checkpoint
    runner = fake_runner(iteration=3)
    RNGStateHook().before_train_epoch(runner)
    iterator = runner.train_loop.dataloader_iterator
    skipped = [next(iterator) for _ in range(3)]  # what IterBasedTrainLoop.run() discards
    assert len(set(skipped)) == 3  # they did draw ...
    assert next(iterator) == expected_first_new_batch  # ... and were undone after the last one
    assert next(iterator) != expected_first_new_batch  # later batches draw on as usual


def test_a_fresh_run_is_left_alone():
    runner = fake_runner(iteration=0)
    before = runner.train_loop.dataloader_iterator
    RNGStateHook().before_train_epoch(runner)
    assert runner.train_loop.dataloader_iterator is before
