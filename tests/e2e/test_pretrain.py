"""Pretraining for real on the demo data: every method, export, strict load, DDP, learning."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from mmtransfer.loading import load_checkpoint
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
    # this method's training checkpoint is read by the restricted reader
    assert load_checkpoint(tmp_path / 'iter_2.pth')['meta']['iter'] == 2
    assert (tmp_path / 'backbone.safetensors').is_file()


@pytest.mark.slow
def test_a_run_mixes_from_start_iter_on(demo_root, tmp_path, monkeypatch):
    """The Runner posts each iteration before the model's loss: with ``start_iter=2`` the first
    two steps are unmixed and the next two mixed (what the demo's warm start relies on)."""
    from mmtransfer.models import MixPretrainer

    kinds = []
    draw = MixPretrainer._draw

    def recording_draw(self, x):
        drawn = draw(self, x)
        kinds.append(drawn.kind)
        return drawn

    monkeypatch.setattr(MixPretrainer, '_draw', recording_draw)
    _train(['--method', 'mixup', '--data-root', str(demo_root / 'cls'), '--max-iters', '4',
            *SMALL, 'model.mix.start_iter=2'], tmp_path, 'e2e_start_iter')
    assert kinds == ['none', 'none', 'mixup', 'mixup']


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


def _ddp(tmp_path, out, work_dir, *extra, env_extra=None, check=True):
    """``pretrain/train.py`` under torchrun, 2 gloo processes, dense_distill, MultiMix only."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_port', '29517', os.path.join(REPO, 'tests', 'e2e', 'ddp_pretrain_worker.py'),
           str(out), '--method', 'dense_distill', '--data-root', str(tmp_path / 'cls'),
           '--launcher', 'pytorch', '--work-dir', str(work_dir), *extra, *SMALL,
           'model.mix.prob=1.0']
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='', **(env_extra or {}))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture
def cls_root(demo_root, tmp_path):
    os.symlink(demo_root / 'cls', tmp_path / 'cls')
    return tmp_path


@pytest.mark.slow
def test_two_process_ddp_ranks_mix_differently_stay_identical_and_resume_exactly(cls_root):
    """Per-rank random streams (diff_rank_seed): each rank draws its own Lambda; DDP keeps
    student and teacher identical; the checkpoint holds every rank's generators, and resuming
    from it ends bit-identical to the uninterrupted run."""
    tmp_path = cls_root
    full, resumed = tmp_path / 'full', tmp_path / 'resumed'
    full.mkdir(), resumed.mkdir()
    _ddp(tmp_path, full, tmp_path / 'wd', '--max-iters', '4', '--cfg-options',
         'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.max_keep_ckpts=2',
         env_extra={'MMT_RECORD_LAMBDA': '1'})
    lam0 = torch.load(full / 'rank0_lambda.pth', weights_only=True)
    lam1 = torch.load(full / 'rank1_lambda.pth', weights_only=True)
    assert lam0.shape == lam1.shape and not torch.equal(lam0, lam1)
    rank0 = torch.load(full / 'rank0.pth', weights_only=True)
    rank1 = torch.load(full / 'rank1.pth', weights_only=True)
    assert any(k.startswith('teacher.module.') for k in rank0)
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    # the run really trained: the EMA teacher lags behind the student
    moved = rank0['student.encoder.conv1.weight'] - rank0['teacher.module.encoder.conv1.weight']
    assert moved.abs().sum() > 0
    middle = load_checkpoint(tmp_path / 'wd' / 'iter_2.pth')
    states = middle['rng_states']
    assert len(states) == 2 and not torch.equal(states[0]['torch'], states[1]['torch'])

    _ddp(tmp_path, resumed, tmp_path / 'wd2', '--max-iters', '4', '--resume',
         str(tmp_path / 'wd' / 'iter_2.pth'), '--cfg-options',
         'default_hooks.checkpoint.interval=2')
    again = torch.load(resumed / 'rank0.pth', weights_only=True)
    for key in rank0:
        torch.testing.assert_close(again[key], rank0[key], rtol=0, atol=0, msg=key)


@pytest.mark.slow
def test_a_non_finite_loss_on_one_rank_stops_every_rank_at_once(cls_root):
    tmp_path = cls_root
    proc = _ddp(tmp_path, tmp_path, tmp_path / 'wd', '--max-iters', '4',
                env_extra={'MMT_NAN_AT': '2'}, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert 'iteration 2: loss_cls = nan is not finite (1 of 2 ranks)' in out        # rank 1
    assert 'iteration 2: loss_cls is not finite on another rank' in out             # rank 0
    assert not (tmp_path / 'rank0.pth').exists() and not (tmp_path / 'rank1.pth').exists()
