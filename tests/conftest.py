"""Shared fixtures: a small embedded demo tree, generated once per test session."""
from __future__ import annotations

import os
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
torch.set_num_threads(min(2, os.cpu_count() or 1))

# Small but complete: every class folder, both detection layouts.
SMALL_DEMO = dict(cls_train_per_class=24, cls_val_per_class=6, cls_ood_per_shape=3,
                  det_trainval07=24, det_trainval12=16, det_test07=16)


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory):
    """A small demo tree (classification + VOC + COCO layouts), made with the real generator."""
    from mmtransfer.data.demo import make_demo_data

    root = tmp_path_factory.mktemp('demo') / 'demo'
    make_demo_data(root, seed=0, **SMALL_DEMO)
    return root


@pytest.fixture(scope='session')
def pretrain_checkpoint(demo_root, tmp_path_factory):
    """A real iter_1.pth of pretraining (dense_distill: every hook's state in it)."""
    from pretrain.train import main

    work = tmp_path_factory.mktemp('pre')
    assert main(['--method', 'dense_distill', '--data-root', str(demo_root / 'cls'), '--arch',
                 'resnet18', '--max-iters', '1', '--work-dir', str(work), '--cfg-options',
                 'model.num_classes=10', 'model.mix.n=8', 'train_dataloader.batch_size=4',
                 'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0']) == 0
    return work / 'iter_1.pth'


def save_demo_backbone(path) -> None:
    """A randomly initialised backbone of the demo's shape (torchvision resnet18 names, width 32,
    configs/demo/pretrain.py) as an exported backbone file (no ``fc.*``)."""
    from mmtransfer.models import ResNetEncoder

    torch.manual_seed(0)
    torch.save(ResNetEncoder('resnet18', width=32).state_dict(), path)
