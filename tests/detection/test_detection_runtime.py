"""Config helpers of tools/ and the metrics file: independent of any training run."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torchvision
from mmengine.config import Config

from mmtransfer.detection import BackboneLoadError
from mmtransfer.detection.metrics import format_metrics, numeric_metrics, write_metrics_json
from mmtransfer.detection.runtime import (
    check_backbone,
    check_datasets,
    check_detector_checkpoint,
    configure_launcher,
    set_backbone,
    strict_backbone_checkpoint,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def demo_cfg(name='voc') -> Config:
    return Config.fromfile(os.path.join(REPO, f'configs/demo/faster_rcnn_{name}.py'))


def test_set_backbone_to_a_file():
    cfg = demo_cfg()
    set_backbone(cfg, 'some/backbone.pth')
    assert cfg.model.backbone.init_cfg == dict(type='StrictPretrained',
                                               checkpoint='some/backbone.pth')
    assert strict_backbone_checkpoint(cfg) == 'some/backbone.pth'
    assert cfg.model.backbone.frozen_stages == 1 and cfg.model.backbone.norm_eval


def test_set_backbone_none_trains_everything_from_scratch():
    cfg = demo_cfg()
    set_backbone(cfg, None)
    assert cfg.model.backbone.init_cfg is None
    assert cfg.model.backbone.frozen_stages == -1 and not cfg.model.backbone.norm_eval
    assert strict_backbone_checkpoint(cfg) is None
    check_backbone(cfg)  # nothing to check, nothing read


def test_check_backbone_fails_fast_on_a_wrong_depth(tmp_path):
    path = tmp_path / 'r34.pth'
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    cfg = demo_cfg()
    set_backbone(cfg, str(path))
    with pytest.raises(BackboneLoadError, match=r'ResNet\(depth=18\).*unexpected keys'):
        check_backbone(cfg)


def test_check_datasets_names_the_missing_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here
    with pytest.raises(FileNotFoundError, match='dataset root not found: data/demo/VOCdevkit/'):
        check_datasets(demo_cfg('voc'), ('train',))
    with pytest.raises(FileNotFoundError, match='dataset root not found: data/demo/coco/'):
        check_datasets(demo_cfg('coco'), ('test',))


def test_check_datasets_names_the_missing_annotation_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'data/demo/coco').mkdir(parents=True)
    missing = 'data/demo/coco/annotations/instances_val2017.json'
    with pytest.raises(FileNotFoundError, match=missing):
        check_datasets(demo_cfg('coco'), ('test',))


def test_check_datasets_accepts_the_demo_tree(demo_root, tmp_path, monkeypatch):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'demo').symlink_to(demo_root)
    monkeypatch.chdir(tmp_path)
    check_datasets(demo_cfg('voc'), ('train', 'val', 'test'))
    check_datasets(demo_cfg('coco'), ('train', 'val', 'test'))


def _demo_workspace(demo_root, tmp_path, monkeypatch):
    """A copy of the demo's VOC2007 tree under ``data/demo`` (writable), the rest linked."""
    import shutil

    voc = tmp_path / 'data/demo/VOCdevkit'
    shutil.copytree(demo_root / 'VOCdevkit/VOC2007', voc / 'VOC2007')
    (voc / 'VOC2012').symlink_to(demo_root / 'VOCdevkit/VOC2012')
    (tmp_path / 'data/demo/coco').symlink_to(demo_root / 'coco')
    monkeypatch.chdir(tmp_path)
    return voc / 'VOC2007'


def test_check_datasets_names_the_xml_and_the_class_voc_would_drop(demo_root, tmp_path,
                                                                   monkeypatch):
    voc07 = _demo_workspace(demo_root, tmp_path, monkeypatch)
    image_id = (voc07 / 'ImageSets/Main/trainval.txt').read_text().split()[3]
    xml = voc07 / 'Annotations' / f'{image_id}.xml'
    text = xml.read_text()
    first_class = text.split('<object>')[1].split('<name>')[1].split('</name>')[0]
    xml.write_text(text.replace(f'<name>{first_class}</name>', '<name>hexagonn</name>', 1))
    with pytest.raises(ValueError, match=rf"{image_id}\.xml: object class 'hexagonn' is not"):
        check_datasets(demo_cfg('voc'), ('train',))
    check_datasets(demo_cfg('voc'), ('test',))  # the test split does not list that file


def test_check_datasets_names_a_listed_xml_that_is_missing(demo_root, tmp_path, monkeypatch):
    voc07 = _demo_workspace(demo_root, tmp_path, monkeypatch)
    image_id = (voc07 / 'ImageSets/Main/test.txt').read_text().split()[0]
    (voc07 / 'Annotations' / f'{image_id}.xml').unlink()
    with pytest.raises(FileNotFoundError, match=rf'{image_id}\.xml: annotation file not found'):
        check_datasets(demo_cfg('voc'), ('test',))


def test_check_detector_checkpoint_takes_a_whole_detector_and_names_what_is_missing(tmp_path):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    detector = MODELS.build(demo_cfg().model)
    state = detector.state_dict()
    torch.save({'meta': {}, 'state_dict': state}, tmp_path / 'whole.pth')
    check_detector_checkpoint(detector, str(tmp_path / 'whole.pth'))
    # as DDP saved it, "module." first: mmengine drops it on loading
    torch.save({f'module.{k}': v for k, v in state.items()}, tmp_path / 'ddp.pth')
    check_detector_checkpoint(detector, str(tmp_path / 'ddp.pth'))
    headless = {k: v for k, v in state.items() if not k.startswith('roi_head.bbox_head.fc_cls')}
    torch.save({'meta': {}, 'state_dict': headless}, tmp_path / 'headless.pth')
    with pytest.raises(ValueError, match=r'headless\.pth: not a checkpoint of this detector: '
                                         r'missing keys roi_head\.\* \(2 of 8\);'):
        check_detector_checkpoint(detector, str(tmp_path / 'headless.pth'))


def test_configure_launcher_makes_ddp_cpu_safe(monkeypatch):
    cfg = demo_cfg()
    configure_launcher(cfg, 'none')
    assert cfg.launcher == 'none' and 'model_wrapper_cfg' not in cfg
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'  # mmdet's default, untouched

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr('mmtransfer.cli.init_cpu_distributed', lambda launcher: None)
    configure_launcher(cfg, 'pytorch')
    assert cfg.launcher == 'pytorch' and cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == 'MMDistributedDataParallel'
    assert cfg.model_wrapper_cfg.device_ids is None  # the module's device: GPU of the rank or CPU


def test_numeric_metrics_keep_numbers_only():
    raw = {'coco/bbox_mAP': np.float64(0.25), 'coco/bbox_mAP_50': 0.5,
           'coco/bbox_mAP_copypaste': '0.250 0.500', 'pascal_voc/AP50': np.float32(0.75),
           'flag': True}
    assert numeric_metrics(raw) == {'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.5,
                                    'pascal_voc/AP50': 0.75}


def test_format_metrics_shows_the_headline_names():
    text = format_metrics({'coco/bbox_mAP': 0.25, 'coco/bbox_mAP_50': 0.5,
                           'coco/bbox_mAP_75': 0.125, 'coco/bbox_mAP_s': 0.0,
                           'coco/bbox_mAP_m': 0.3, 'coco/bbox_mAP_l': 0.4})
    names = [line.split()[0] for line in text.splitlines()[1:]]
    assert names == ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl']
    assert '0.2500' in text
    voc = format_metrics({'pascal_voc/mAP': 0.5, 'pascal_voc/AP50': 0.5})
    assert [line.split()[0] for line in voc.splitlines()[1:]] == ['mAP']


def test_write_metrics_json_round_trips_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / 'run' / 'metrics.json'
    write_metrics_json(str(path), {'pascal_voc/mAP': 0.5})
    write_metrics_json(str(path), {'pascal_voc/mAP': 0.625})  # replaces
    assert json.loads(path.read_text()) == {'pascal_voc/mAP': 0.625}
    assert os.listdir(path.parent) == ['metrics.json']


def test_coco_metrics_without_detections(tmp_path):
    """An empty result set scores 0 where there is ground truth, -1 where a size range has none
    (pycocotools' convention), as the table of a real run would show."""
    from types import SimpleNamespace

    from mmdet.datasets.api_wrappers import COCO

    from mmtransfer.detection.metrics import coco_metrics_without_detections

    boxes = [[10, 10, 20, 20], [50, 40, 60, 50]]  # areas 400 (small) and 3000 (medium)
    gt = dict(images=[dict(id=1, file_name='a.jpg', width=192, height=160)],
              categories=[dict(id=1, name='circle'), dict(id=2, name='square')],
              annotations=[dict(id=i + 1, image_id=1, category_id=i + 1, bbox=b,
                                area=b[2] * b[3], iscrowd=0) for i, b in enumerate(boxes)])
    path = tmp_path / 'gt.json'
    path.write_text(json.dumps(gt))
    metric = SimpleNamespace(_coco_api=COCO(str(path)), cat_ids=[1, 2], img_ids=[1],
                             prefix='coco')
    assert coco_metrics_without_detections(metric) == {
        'coco/bbox_mAP': 0.0, 'coco/bbox_mAP_50': 0.0, 'coco/bbox_mAP_75': 0.0,
        'coco/bbox_mAP_s': 0.0, 'coco/bbox_mAP_m': 0.0, 'coco/bbox_mAP_l': -1.0}
