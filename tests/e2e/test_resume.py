"""Crash and resume: kill -9 mid-run, resume, and end with the weights of an uninterrupted run."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import REPO

ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='',
           PYTHONUNBUFFERED='1')


@pytest.fixture(scope='module')
def tiny_cls(demo_root, tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_resume')
    for split in ('train', 'val'):
        for cls in ('circle', 'square', 'star'):
            (root / split / cls).mkdir(parents=True)
            for image in sorted((demo_root / 'cls' / split / cls).iterdir())[:6]:
                shutil.copy(image, root / split / cls / image.name)
    return root


def _run_and_kill_after(cmd, marker, timeout=600):
    """Starts ``cmd``; SIGKILLs it as soon as ``marker`` exists. Returns the return code."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


def _run(cmd):
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _weights(path):
    return torch.load(path, map_location='cpu', weights_only=False)['state_dict']


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

    _run(cmd(tmp_path / 'straight'))
    crashed = tmp_path / 'crashed'
    code = _run_and_kill_after(cmd(crashed), crashed / 'epoch_1.pth')
    assert code == -signal.SIGKILL, 'the run ended before it could be killed'
    assert not (crashed / 'epoch_4.pth').exists()
    _run(cmd(crashed, '--resume'))

    expected = _weights(tmp_path / 'straight' / 'epoch_4.pth')
    resumed = _weights(crashed / 'epoch_4.pth')
    assert set(expected) == set(resumed)
    assert any(k.startswith('teacher.') for k in resumed)
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=0, msg=key)
