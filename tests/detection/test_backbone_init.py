"""Strict backbone loading: accepted formats load every tensor; anything else stops the run."""
from __future__ import annotations

import os

import pytest
import torch
import torchvision
from mmdet.models.backbones import ResNet

import mmtransfer.detection  # noqa: F401  (registers StrictPretrained)
from mmtransfer.detection import BackboneLoadError, load_backbone_strict
from mmtransfer.loading import CheckpointError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope='module')
def resnet18_state():
    """A torchvision resnet18 state dict (random init, classifier included), not all zeros."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None)
    with torch.no_grad():  # non-trivial BN statistics, so that buffers are compared too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _backbone_only(state):
    return {k: v for k, v in state.items() if not k.startswith('fc.')}


def _save(tmp_path, obj, name='backbone.pth'):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def _assert_loaded(backbone: torch.nn.Module, state: dict) -> None:
    """Every parameter/buffer of ``backbone`` equals the file's tensor of the same name."""
    loaded = backbone.state_dict()
    assert set(loaded) == set(_backbone_only(state))
    for name, value in loaded.items():
        assert torch.equal(value, state[name]), name


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert '\n' not in message
    return message


@pytest.mark.parametrize('wrap', [
    pytest.param(_backbone_only, id='plain'),
    pytest.param(lambda s: {'state_dict': _backbone_only(s)}, id='state_dict-wrapper'),
    pytest.param(lambda s: s, id='torchvision-with-fc'),
])
def test_accepted_formats_load_every_tensor(tmp_path, resnet18_state, wrap):
    backbone = ResNet(depth=18)
    before = backbone.conv1.weight.clone()
    load_backbone_strict(backbone, _save(tmp_path, wrap(resnet18_state)))
    _assert_loaded(backbone, resnet18_state)
    assert not torch.equal(backbone.conv1.weight, before)


def test_missing_batch_counters_are_tolerated(tmp_path, resnet18_state):
    """Old torchvision files have no num_batches_tracked; the counter keeps its own value."""
    state = {k: v for k, v in _backbone_only(resnet18_state).items()
             if not k.endswith('num_batches_tracked')}
    backbone = ResNet(depth=18)
    load_backbone_strict(backbone, _save(tmp_path, state))
    for name, value in state.items():
        assert torch.equal(backbone.state_dict()[name], value), name


def test_model_wrapper_is_rejected_naming_the_key(tmp_path, resnet18_state):
    path = _save(tmp_path, {'model': _backbone_only(resnet18_state)})
    with pytest.raises(BackboneLoadError) as err:
        load_backbone_strict(ResNet(depth=18), path)
    message = _one_line(err)
    assert path in message and "'model'" in message


def test_resnet18_file_into_resnet50_is_rejected(tmp_path, resnet18_state):
    path = _save(tmp_path, _backbone_only(resnet18_state))
    backbone = ResNet(depth=50)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    with pytest.raises(BackboneLoadError) as err:
        load_backbone_strict(backbone, path)
    message = _one_line(err)
    assert path in message and 'missing keys' in message
    # BasicBlock conv1 is 3x3; Bottleneck conv1 is 1x1 with the same channels in layer1.
    assert 'layer1.0.conv1.weight [64,64,3,3] in file vs [64,64,1,1] in model' in message
    for name, value in backbone.state_dict().items():  # nothing was half-loaded
        assert torch.equal(value, before[name]), name


def test_one_missing_and_one_unexpected_key_are_named(tmp_path, resnet18_state):
    state = _backbone_only(resnet18_state)
    del state['layer3.1.bn2.running_var']
    state['layer5.0.conv1.weight'] = torch.zeros(1)
    with pytest.raises(BackboneLoadError) as err:
        load_backbone_strict(ResNet(depth=18), _save(tmp_path, state))
    message = _one_line(err)
    assert "missing keys ['layer3.1.bn2.running_var']" in message
    assert "unexpected keys ['layer5.0.conv1.weight']" in message


@pytest.mark.parametrize('obj', [
    pytest.param([torch.zeros(3)], id='list'),
    pytest.param(torch.zeros(3), id='tensor'),
    pytest.param({'conv1.weight': [1, 2], 'epoch': 3}, id='dict-of-non-tensors'),
])
def test_non_state_dicts_are_rejected(tmp_path, obj):
    path = _save(tmp_path, obj)
    with pytest.raises(BackboneLoadError) as err:
        load_backbone_strict(ResNet(depth=18), path)
    assert path in _one_line(err)


def test_truncated_file_is_rejected_naming_it(tmp_path, resnet18_state):
    path = tmp_path / 'truncated.pth'
    torch.save(_backbone_only(resnet18_state), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        load_backbone_strict(ResNet(depth=18), str(path))
    assert str(path) in _one_line(err)


def test_missing_file_is_rejected_naming_it(tmp_path):
    path = str(tmp_path / 'nowhere.pth')
    with pytest.raises(CheckpointError) as err:
        load_backbone_strict(ResNet(depth=18), path)
    assert path in str(err.value)


# ------------------------------------------------------------------ through a built detector


def _build_detector(backbone_file: str):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(os.path.join(REPO, 'configs/demo/faster_rcnn_voc.py'))
    cfg.model.backbone.init_cfg.checkpoint = backbone_file
    # torchvision's own resnet18 (width 64), not the demo's half-width one.
    cfg.model.backbone.update(base_channels=64, stem_channels=64)
    cfg.model.neck.in_channels = [64, 128, 256, 512]
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def test_detector_init_weights_loads_the_backbone(tmp_path, resnet18_state):
    detector = _build_detector(_save(tmp_path, _backbone_only(resnet18_state)))
    detector.init_weights()
    _assert_loaded(detector.backbone, resnet18_state)


def test_detector_init_weights_raises_on_a_mismatch(tmp_path, resnet18_state):
    state = _backbone_only(resnet18_state)
    del state['layer2.0.downsample.0.weight']
    detector = _build_detector(_save(tmp_path, state))
    with pytest.raises(BackboneLoadError, match='layer2.0.downsample.0.weight'):
        detector.init_weights()
