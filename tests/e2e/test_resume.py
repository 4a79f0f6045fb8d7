"""Crash and resume: kill -9 mid-run, resume, and end with the weights of an uninterrupted run."""
from __future__ import annotations

import shutil
import signal
import sys

import pytest
import torch

from mmtransfer.loading import load_checkpoint
from tests.conftest import REPO
from tests.e2e.crash import run_and_kill_after, run_ok


@pytest.fixture(scope='module')
def tiny_cls(demo_root, tmp_path_factory):
    """Three demo classes, six images each: four short epochs."""
    root = tmp_path_factory.mktemp('tiny_resume')
    for split in ('train', 'val'):
        for cls in ('circle', 'square', 'star'):
            (root / split / cls).mkdir(parents=True)
            for image in sorted((demo_root / 'cls' / split / cls).iterdir())[:6]:
                shutil.copy(image, root / split / cls / image.name)
    return root


def _weights(path):
    return load_checkpoint(path, map_location='cpu')['state_dict']


@pytest.mark.slow
def test_pretraining_killed_then_resumed_matches_an_uninterrupted_run(tiny_cls, tmp_path):
    def cmd(work_dir, *extra):
        return [sys.executable, 'pretrain/train.py', '--method', 'dense_distill',
                '--data-root', str(tiny_cls), '--arch', 'resnet18', '--work-dir', str(work_dir),
                *extra, '--cfg-options', 'model.num_classes=3', 'model.mix.n=16',
                'train_dataloader.batch_size=6', 'train_dataloader.num_workers=0',
                'val_dataloader.num_workers=0', 'train_cfg.max_epochs=4',
                'optim_wrapper.optimizer.lr=0.01', 'auto_scale_lr.enable=False',
                'default_hooks.checkpoint.max_keep_ckpts=-1']

    run_ok(cmd(tmp_path / 'straight'), REPO)
    crashed = tmp_path / 'crashed'
    code = run_and_kill_after(cmd(crashed), REPO, crashed / 'epoch_1.pth')
    assert code == -signal.SIGKILL, 'the run ended before it could be killed'
    assert not (crashed / 'epoch_4.pth').exists()
    run_ok(cmd(crashed, '--resume'), REPO)

    expected = _weights(tmp_path / 'straight' / 'epoch_4.pth')
    resumed = _weights(crashed / 'epoch_4.pth')
    assert set(expected) == set(resumed)
    assert any(k.startswith('teacher.') for k in resumed)
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=0, msg=key)
