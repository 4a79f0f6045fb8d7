"""ViT-S/16 through pretrain/train.py: the recipe by --arch, train, resume, export into timm;
bad sizes and grids are one line before any work."""
from __future__ import annotations

import os
import sys

import pytest
import timm
import torch

from mmtransfer.loading import load_checkpoint
from tests.conftest import REPO
from tests.e2e.crash import run_fails

ENV = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='2')
SMALL = ['--cfg-options', 'model.num_classes=10', 'model.mix.n=16', 'model.mix.start_iter=0',
         'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
         'val_dataloader.num_workers=0', 'val_dataloader.batch_size=100',
         'train_dataloader.dataset.size=32', 'val_dataloader.dataset.size=32']


def _fails(argv, *needles):
    return run_fails([sys.executable, 'pretrain/train.py', *argv], REPO, *needles, env=ENV)


def test_arch_vit_takes_the_vit_recipe(demo_root):
    from pretrain.train import build_config, parse_args

    cfg = build_config(parse_args(['--arch', 'vit_s16', '--method', 'dense_distill',
                                   '--data-root', str(demo_root / 'cls')]))
    assert cfg.model.arch == 'vit_s16' and cfg.model.mix.method == 'dense_distill'
    assert cfg.model.mix.attention_u == 'token'
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 0.01, 0.05)
    assert cfg.param_scheduler[0].type == 'LinearLR' and cfg.param_scheduler[1].milestones == [
        100, 200]
    assert cfg.train_dataloader.dataset.num_views == 2  # distillation's second view
    assert cfg.work_dir == os.path.join('work_dirs', 'pretrain', 'vit_s16', 'dense_distill')


@pytest.mark.slow
def test_vit_trains_resumes_and_exports_into_timm(demo_root, tmp_path):
    from pretrain.train import main

    base = ['--arch', 'vit_s16', '--method', 'dense_distill', '--data-root',
            str(demo_root / 'cls'), '--work-dir', str(tmp_path)]
    assert main([*base, '--max-iters', '2', *SMALL]) == 0
    assert main([*base, '--max-iters', '3', '--resume', *SMALL]) == 0
    assert load_checkpoint(tmp_path / 'iter_3.pth')['meta']['iter'] == 3
    state = torch.load(tmp_path / 'backbone.pth', weights_only=True)
    vit = timm.create_model('vit_small_patch16_224', pretrained=False, num_classes=0)
    vit.load_state_dict(state, strict=True)
    trained = load_checkpoint(tmp_path / 'iter_3.pth')['state_dict']
    torch.testing.assert_close(vit.cls_token, trained['student.encoder.cls_token'])


@pytest.mark.parametrize('options, needles', [
    (['train_dataloader.dataset.size=40'], ['image size 40', 'patch size 16']),
    (['model.mix.dense_pool=3'], ['mix.dense_pool=3', '14x14 token grid']),
])
def test_bad_vit_sizes_and_grids(demo_root, tmp_path, options, needles):
    _fails(['--arch', 'vit_s16', '--method', 'dense', '--data-root', str(demo_root / 'cls'),
            '--work-dir', str(tmp_path / 'wd'), '--cfg-options', *options], *needles)
    assert not (tmp_path / 'wd').exists()


def test_a_class_token_query_on_a_cnn(demo_root, tmp_path):
    _fails(['--method', 'dense', '--data-root', str(demo_root / 'cls'), '--work-dir',
            str(tmp_path / 'wd'), '--cfg-options', 'model.mix.attention_u=token'],
           "mix.attention_u='token'", 'resnet50')


@pytest.mark.slow
def test_two_process_ddp_keeps_the_vit_ranks_identical(demo_root, tmp_path):
    """dense_distill on ViT-S/16 under torchrun with 2 gloo processes: every parameter gets a
    gradient (DDP's find_unused_parameters stays off) and the ranks end identical."""
    import subprocess

    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_port', '29521', os.path.join(REPO, 'tests', 'e2e', 'ddp_pretrain_worker.py'),
           str(tmp_path), '--arch', 'vit_s16', '--method', 'dense_distill', '--data-root',
           str(demo_root / 'cls'), '--launcher', 'pytorch', '--work-dir', str(tmp_path / 'wd'),
           '--max-iters', '2', *SMALL, 'model.mix.prob=1.0']
    env = dict(ENV, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(tmp_path / 'rank0.pth', weights_only=True)
    rank1 = torch.load(tmp_path / 'rank1.pth', weights_only=True)
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    assert not torch.equal(rank0['student.encoder.cls_token'],
                           rank0['teacher.module.encoder.cls_token'])
