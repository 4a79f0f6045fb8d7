"""Pretraining for real on the demo data: every method, export, strict load, DDP, learning."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from mmtransfer.models import METHODS
from tests.conftest import REPO

SMALL = ['--arch', 'resnet18', '--cfg-options', 'model.mix.n=32', 'model.num_classes=10',
         'train_dataloader.batch_size=16',
         'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0']


def _train(argv, work_dir, name):
    from pretrain.train import main

    argv = [*argv, '--work-dir', str(work_dir)]
    i = argv.index('--cfg-options')
    argv.insert(i + 1, f'experiment_name={name}')
    assert main(argv) == 0


@pytest.mark.slow
@pytest.mark.parametrize('method', list(METHODS))
def test_every_method_trains_and_exports_a_backbone_the_detector_loads(method, demo_root, tmp_path):
    from mmdet.models.backbones import ResNet

    from mmtransfer.detection import load_backbone_strict

    _train(['--method', method, '--data-root', str(demo_root / 'cls'), '--max-iters', '2', *SMALL],
           tmp_path, f'e2e_{method}')
    backbone = tmp_path / 'backbone.pth'
    assert backbone.is_file()
    metrics = json.loads((tmp_path / 'val_metrics.json').read_text())
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
    detector_backbone = ResNet(depth=18)
    load_backbone_strict(detector_backbone, str(backbone))
    state = torch.load(backbone, weights_only=True)
    torch.testing.assert_close(detector_backbone.layer4[1].conv2.weight,
                               state['layer4.1.conv2.weight'])


def _losses(work_dir):
    (scalars,) = work_dir.glob('*/vis_data/scalars.json')
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    return [r['loss'] for r in rows if 'loss' in r]


@pytest.fixture(scope='module')
def tiny_subset(demo_root, tmp_path_factory):
    """Two demo classes, eight images each: a run of 20 steps can fit it."""
    root = tmp_path_factory.mktemp('tiny')
    for split in ('train', 'val'):
        for cls in ('circle', 'square'):
            (root / split / cls).mkdir(parents=True)
            for image in sorted((demo_root / 'cls' / split / cls).iterdir())[:8]:
                shutil.copy(image, root / split / cls / image.name)
    return root


@pytest.mark.slow
@pytest.mark.parametrize('method', ['multimix', 'dense_distill'])
def test_training_loss_falls_on_a_tiny_subset(method, tiny_subset, tmp_path):
    """10 output classes, 2 present: the loss must fall from ~ln 10 towards the mixed targets'
    entropy (<= ln 2). A short run needs a teacher that keeps up: EMA momentum 0.05."""
    _train(['--method', method, '--data-root', str(tiny_subset), '--max-iters', '20',
            '--arch', 'resnet18', '--cfg-options', 'model.mix.n=64', 'model.num_classes=10',
            'model.mix.ema_momentum=0.05', 'train_dataloader.batch_size=16',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            'default_hooks.logger.interval=1', 'log_processor.window_size=1',
            'optim_wrapper.optimizer.lr=0.02', 'auto_scale_lr.enable=False'],
           tmp_path, f'falls_{method}')
    losses = _losses(tmp_path)
    assert len(losses) == 20
    first, last = sum(losses[:3]) / 3, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last, losses)


@pytest.mark.slow
def test_two_process_ddp_keeps_student_and_teacher_identical_across_ranks(demo_root, tmp_path):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_port', '29517', os.path.join(REPO, 'tests', 'e2e', 'ddp_pretrain_worker.py'),
           str(tmp_path), '--method', 'dense_distill', '--data-root', str(demo_root / 'cls'),
           '--max-iters', '3', '--launcher', 'pytorch', '--work-dir', str(tmp_path / 'wd'), *SMALL]
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(tmp_path / 'rank0.pth', weights_only=True)
    rank1 = torch.load(tmp_path / 'rank1.pth', weights_only=True)
    assert any(k.startswith('teacher.module.') for k in rank0)
    initial = torch.load(next((tmp_path / 'wd').glob('iter_3.pth')), weights_only=False)
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    # the run really trained: the EMA teacher lags behind the student
    moved = rank0['student.encoder.conv1.weight'] - rank0['teacher.module.encoder.conv1.weight']
    assert moved.abs().sum() > 0
    assert initial['meta']['iter'] == 3
