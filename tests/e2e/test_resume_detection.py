"""Crash and resume of detection fine-tuning: ``kill -9`` mid-run, the same command with
``--resume``, and the final checkpoint equals that of a run never interrupted, tensor by tensor.

What has to survive the crash for equality: model, optimizer (SGD momentum), LR schedulers,
the InfiniteSampler's position (mmengine's IterBasedTrainLoop re-reads the trained batches) and
the random generators (RNGStateHook, which also keeps the re-read batches from drawing),
which drive RandomFlip and the RPN / RoI samplers. On one CPU thread with a fixed seed every
step is deterministic, so equality is exact (atol=0).
"""
from __future__ import annotations

import os
import re
import signal
import sys

import pytest
import torch

from mmtransfer.loading import load_checkpoint
from tests.conftest import REPO, save_demo_backbone
from tests.e2e.crash import run_and_kill_after, run_ok

MAX_ITERS = 8


@pytest.fixture(scope='module')
def workspace(demo_root, tmp_path_factory):
    """``data/demo`` -> the session's demo tree, and a resnet18 backbone file."""
    root = tmp_path_factory.mktemp('det_resume')
    (root / 'data').mkdir()
    (root / 'data' / 'demo').symlink_to(demo_root)
    save_demo_backbone(root / 'r18.pth')
    return root


def _cmd(work_dir, *extra):
    return [sys.executable, os.path.join(REPO, 'tools', 'train.py'),
            os.path.join(REPO, 'configs', 'demo', 'faster_rcnn_voc.py'), '--backbone', 'r18.pth',
            '--work-dir', str(work_dir), *extra, '--cfg-options',
            f'train_cfg.max_iters={MAX_ITERS}', 'default_hooks.checkpoint.interval=2',
            'default_hooks.checkpoint.max_keep_ckpts=-1', 'default_hooks.logger.interval=1',
            'train_dataloader.num_workers=0', 'randomness.seed=0']


def _checkpoint(path):
    return load_checkpoint(path, map_location='cpu')


@pytest.mark.slow
def test_finetuning_killed_then_resumed_matches_an_uninterrupted_run(workspace):
    straight, crashed = workspace / 'straight', workspace / 'crashed'
    run_ok(_cmd(straight), workspace)

    # mmengine writes `last_checkpoint` (what --resume reads) right after a checkpoint
    code = run_and_kill_after(_cmd(crashed), workspace, crashed / 'last_checkpoint')
    assert code == -signal.SIGKILL, 'the run ended before it could be killed'
    assert not (crashed / f'iter_{MAX_ITERS}.pth').exists()
    log = run_ok(_cmd(crashed, '--resume'), workspace)
    resumed_at = int(re.search(r'resumed epoch: \d+, iter: (\d+)', log).group(1))
    assert 0 < resumed_at < MAX_ITERS
    assert f'Iter(train) [{resumed_at + 1}/{MAX_ITERS}]' in log
    assert f'Iter(train) [{resumed_at}/{MAX_ITERS}]' not in log  # continued, not restarted

    expected = _checkpoint(straight / f'iter_{MAX_ITERS}.pth')
    resumed = _checkpoint(crashed / f'iter_{MAX_ITERS}.pth')
    assert set(expected['state_dict']) == set(resumed['state_dict'])
    for key, value in expected['state_dict'].items():
        torch.testing.assert_close(resumed['state_dict'][key], value, rtol=0, atol=0, msg=key)
    momentum = {k: s['momentum_buffer'] for k, s in expected['optimizer']['state'].items()}
    assert momentum and momentum.keys() == resumed['optimizer']['state'].keys()
    for key, value in momentum.items():
        torch.testing.assert_close(resumed['optimizer']['state'][key]['momentum_buffer'], value,
                                   rtol=0, atol=0, msg=f'optimizer state {key}')
    assert resumed['param_schedulers'] == expected['param_schedulers']
