"""ResNet width: torchvision's names at any width, and MMDetection's ResNet computes the same."""
from __future__ import annotations

import pytest
import torch
import torchvision
from mmdet.models.backbones import ResNet as MMDetResNet

from mmtransfer.analysis import infer_resnet_width
from mmtransfer.detection.backbone_init import check_fits
from mmtransfer.models import MixPretrainer, ResNetEncoder
from mmtransfer.models.encoder import build_torchvision_resnet


def test_width_64_is_torchvisions_network():
    torch.manual_seed(0)
    ours = build_torchvision_resnet('resnet18', 64)
    reference = torchvision.models.resnet18()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()}


@pytest.mark.parametrize('arch, depth, expansion', [('resnet18', 18, 1), ('resnet50', 50, 4)])
def test_half_width_keeps_the_names_and_halves_every_stage(arch, depth, expansion):
    encoder = ResNetEncoder(arch, width=32)
    full = ResNetEncoder(arch)
    assert set(encoder.state_dict()) == set(full.state_dict())
    assert encoder.conv1.out_channels == 32
    assert encoder.out_channels == 256 * expansion == full.out_channels // 2
    for k in range(1, 5):
        last = getattr(encoder, f'layer{k}')[-1]
        out = last.bn3 if expansion == 4 else last.bn2
        assert out.num_features == 32 * 2 ** (k - 1) * expansion
    assert infer_resnet_width(encoder.state_dict()) == 32


@pytest.mark.parametrize('arch, depth', [('resnet18', 18), ('resnet50', 50)])
def test_mmdet_resnet_with_the_same_base_channels_loads_it_and_computes_the_same(arch, depth):
    torch.manual_seed(0)
    encoder = ResNetEncoder(arch, width=32).eval()
    for bn in encoder.modules():  # non-trivial statistics, so that a swapped buffer shows
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.1, 0.1)
            bn.running_var.uniform_(0.5, 1.5)
    detector_backbone = MMDetResNet(depth=depth, base_channels=32, stem_channels=32,
                                    out_indices=(3,))
    detector_backbone.eval()  # mmdet's ResNet.train() returns None
    check_fits(detector_backbone, encoder.state_dict(), 'encoder')
    detector_backbone.load_state_dict(encoder.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(detector_backbone(x)[0], encoder(x))


def test_the_pretrainer_passes_its_width_to_student_and_teacher():
    model = MixPretrainer('resnet18', num_classes=3, mix=dict(method='distill'), width=16)
    assert model.student.encoder.conv1.out_channels == 16
    assert model.teacher.module.encoder.conv1.out_channels == 16
    assert model.student.head.in_features == 128


@pytest.mark.parametrize('width', [0, 12, 64.0])
def test_bad_width_names_the_key(width):
    with pytest.raises(ValueError, match='width must be a multiple of 8'):
        ResNetEncoder('resnet18', width=width)
