"""The detection configs load, inherit mmdet's bases and differ from them only as intended."""
from __future__ import annotations

import os

import pytest
from mmengine.config import Config

from mmtransfer.data.demo import DEMO_CLASSES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOC, COCO = 'configs/faster_rcnn_voc.py', 'configs/faster_rcnn_coco.py'
DEMO_VOC, DEMO_COCO = 'configs/demo/faster_rcnn_voc.py', 'configs/demo/faster_rcnn_coco.py'


def load(name: str) -> Config:
    return Config.fromfile(os.path.join(REPO, name))


def leaf_datasets(dataset_cfg):
    """Dataset configs inside RepeatDataset / ConcatDataset wrappers."""
    if 'dataset' in dataset_cfg:
        return leaf_datasets(dataset_cfg['dataset'])
    if 'datasets' in dataset_cfg:
        return [leaf for child in dataset_cfg['datasets'] for leaf in leaf_datasets(child)]
    return [dataset_cfg]


@pytest.mark.parametrize('name', [VOC, COCO, DEMO_VOC, DEMO_COCO])
def test_backbone_is_initialised_strictly_from_the_config_variable(name):
    cfg = load(name)
    assert cfg.custom_imports == dict(imports=['mmtransfer.detection', 'mmtransfer.engine'],
                                      allow_failed_imports=False)
    assert cfg.model.backbone.init_cfg == dict(type='StrictPretrained',
                                               checkpoint=cfg.backbone_checkpoint)
    assert 'torchvision://' not in cfg.pretty_text  # nothing would try to download


@pytest.mark.parametrize('name', [VOC, COCO, DEMO_VOC, DEMO_COCO])
def test_crash_safety_hooks_build_in_mmdets_scope(name):
    """custom_hooks resolve from mmdet's registry (mmengine's root holds ours)."""
    from mmdet.registry import HOOKS
    from mmengine.registry import init_default_scope
    from mmengine.utils import import_modules_from_strings

    from mmtransfer.engine import NonFiniteLossHook, RNGStateHook

    cfg = load(name)
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    hooks = [HOOKS.build(hook) for hook in cfg.custom_hooks]
    assert [type(h) for h in hooks] == [NonFiniteLossHook, RNGStateHook]


def test_research_configs_keep_mmdet_defaults():
    voc, coco = load(VOC), load(COCO)
    for cfg in (voc, coco):
        assert cfg.model.type == 'FasterRCNN'
        assert cfg.model.backbone.depth == 50
        assert cfg.model.neck.in_channels == [256, 512, 1024, 2048]
        assert cfg.backbone_checkpoint == 'work_dirs/pretrain/dense_distill/backbone.pth'
    assert voc.val_evaluator.type == 'VOCMetric' and voc.val_evaluator.eval_mode == '11points'
    assert voc.test_evaluator == voc.val_evaluator
    assert voc.model.roi_head.bbox_head.num_classes == 20
    assert voc.train_cfg.max_epochs == 4 and voc.train_dataloader.dataset.times == 3
    train_sets = leaf_datasets(voc.train_dataloader.dataset)
    assert [d.ann_file for d in train_sets] == ['VOC2007/ImageSets/Main/trainval.txt',
                                                'VOC2012/ImageSets/Main/trainval.txt']
    assert all(d.data_root == 'data/VOCdevkit/' for d in train_sets)
    assert voc.test_dataloader.dataset.ann_file == 'VOC2007/ImageSets/Main/test.txt'

    assert coco.val_evaluator.type == 'CocoMetric' and coco.val_evaluator.metric == 'bbox'
    assert coco.model.roi_head.bbox_head.num_classes == 80
    assert coco.train_cfg.max_epochs == 12
    assert coco.train_dataloader.dataset.data_root == 'data/coco/'


def test_demo_classes_equal_the_generators():
    for name in (DEMO_VOC, DEMO_COCO):
        cfg = load(name)
        assert tuple(cfg.classes) == DEMO_CLASSES
        assert cfg.model.roi_head.bbox_head.num_classes == len(DEMO_CLASSES) == 10
        loaders = (cfg.train_dataloader, cfg.test_dataloader)
        for dataset in [d for loader in loaders for d in leaf_datasets(loader.dataset)]:
            assert tuple(dataset.metainfo.classes) == DEMO_CLASSES


@pytest.mark.parametrize('name, root', [(DEMO_VOC, 'data/demo/VOCdevkit/'),
                                        (DEMO_COCO, 'data/demo/coco/')])
def test_demo_configs_are_small_and_resnet18(name, root):
    cfg = load(name)
    assert cfg.model.backbone.depth == 18
    assert cfg.model.neck.in_channels == [32, 64, 128, 256]
    assert cfg.backbone_checkpoint == 'work_dirs/demo/pretrain/baseline/backbone.pth'
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=cfg.max_iters)
    assert cfg.default_hooks.checkpoint.interval == cfg.max_iters
    assert cfg.val_dataloader is None  # test.py evaluates once, after training
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        assert loader.num_workers <= 1 and not loader.persistent_workers
        for dataset in leaf_datasets(loader.dataset):
            assert dataset.data_root == root
    assert cfg.test_dataloader.dataset.test_mode


def test_demo_configs_inherit_the_research_configs():
    """What the demo does not restate comes from its parent (and so from mmdet)."""
    voc, demo_voc = load(VOC), load(DEMO_VOC)
    assert demo_voc.test_evaluator == dict(voc.test_evaluator, type='NamedVOCMetric')
    assert demo_voc.optim_wrapper.optimizer == voc.optim_wrapper.optimizer  # SGD, lr 0.01
    assert demo_voc.model.roi_head.bbox_roi_extractor.roi_layer == \
        voc.model.roi_head.bbox_roi_extractor.roi_layer
    coco, demo_coco = load(COCO), load(DEMO_COCO)
    assert demo_coco.optim_wrapper.optimizer.type == coco.optim_wrapper.optimizer.type
    assert demo_coco.test_evaluator.type == 'CocoMetric'
    assert demo_coco.test_evaluator.ann_file == \
        'data/demo/coco/annotations/instances_val2017.json'


@pytest.mark.parametrize('name', [DEMO_VOC, DEMO_COCO])
def test_demo_detector_backbone_fits_the_demo_pretraining_encoder(name):
    """The backbone the demo pretrains (configs/demo/pretrain.py) loads strictly into the demo
    detectors' mmdet ResNet: same depth, same width."""
    from mmdet.registry import MODELS

    from mmtransfer.detection.backbone_init import check_fits
    from mmtransfer.models import ResNetEncoder

    pretrain = Config.fromfile(os.path.join(REPO, 'configs', 'demo', 'pretrain.py')).model
    encoder = ResNetEncoder(pretrain.arch, width=pretrain.width)
    backbone_cfg = load(name).model.backbone
    backbone_cfg.pop('init_cfg')
    check_fits(MODELS.build(backbone_cfg), encoder.state_dict(), 'demo encoder')
