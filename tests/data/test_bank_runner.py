"""mmengine's Runner on the in-memory datasets: index-only batches, two views built by the
preprocessor for the EMA teacher, validation, and a resume that replays the augmentation."""
from __future__ import annotations

import pytest
import torch

import mmtransfer.engine  # noqa: F401  (registers the hooks and the metric)
import mmtransfer.models  # noqa: F401
from mmtransfer.data.synthetic import write_cifar, write_tinyimagenet


def _loader(dataset, batch_size, shuffle):
    return dict(batch_size=batch_size, num_workers=0, persistent_workers=False,
                sampler=dict(type='DefaultSampler', shuffle=shuffle),
                collate_fn=dict(type='default_collate'), dataset=dataset)


def _runner(work_dir, train, val, classes, max_iters=2, resume_from=None):
    from mmengine.runner import Runner

    return Runner(
        model=dict(type='MixPretrainer', arch='preactresnet18', width=8, num_classes=classes,
                   mix=dict(method='distill', n=8),
                   data_preprocessor=dict(type='DeviceAugmentPreprocessor')),
        work_dir=str(work_dir),
        train_dataloader=_loader(train, 4, True), val_dataloader=_loader(val, 5, False),
        val_evaluator=dict(type='Accuracy', topk=(1,)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=max_iters),
        val_cfg=dict(),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='RNGStateHook'), dict(type='TeacherEMAHook')],
        randomness=dict(seed=0), default_scope=None,
        load_from=resume_from, resume=resume_from is not None)


@pytest.mark.parametrize('kind', ['cifar10', 'tinyimagenet'])
def test_distillation_trains_and_validates_on_index_batches(tmp_path, kind):
    if kind == 'cifar10':
        root = str(write_cifar(tmp_path / 'data', 'cifar10', 2, 1))
        train = dict(type='CifarDataset', root=root, split='train', num_views=2)
        val = dict(type='CifarDataset', root=root, split='test')
        classes = 10
    else:
        root = str(write_tinyimagenet(tmp_path / 'data', 3, 4, 2))
        train = dict(type='TinyImageNetDataset', root=root, split='train', num_views=2)
        val = dict(type='TinyImageNetDataset', root=root, split='val')
        classes = 3
    runner = _runner(tmp_path / 'work', train, val, classes)
    runner.train()
    metrics = runner.val()
    assert 0 <= metrics['accuracy/top1'] <= 100
    state = torch.load(tmp_path / 'work' / 'iter_2.pth', map_location='cpu', weights_only=False)
    assert not [k for k in state['state_dict'] if k.startswith('data_preprocessor')]


def test_a_resumed_run_draws_the_same_augmentation(tmp_path):
    """Two runs, one stopped after iteration 1 and resumed: the same weights at iteration 2,
    so the on-device crops and flips were replayed from the checkpointed generator."""
    root = str(write_cifar(tmp_path / 'data', 'cifar10', 2, 1))
    train = dict(type='CifarDataset', root=root, split='train', num_views=2)
    val = dict(type='CifarDataset', root=root, split='test')
    straight = _runner(tmp_path / 'a', train, val, 10)
    straight.train()
    first = _runner(tmp_path / 'b', train, val, 10, max_iters=1)
    first.train()
    checkpoint = str(tmp_path / 'b' / 'iter_1.pth')
    resumed = _runner(tmp_path / 'b', train, val, 10, resume_from=checkpoint)
    resumed.train()
    a = straight.model.state_dict()
    b = resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
