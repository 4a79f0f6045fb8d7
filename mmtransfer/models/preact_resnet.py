"""PreActResNet-18 in its CIFAR form (3x3 stem, no max-pool) as an encoder entered and left at
any block.

The definition is PuzzleMix's ``preactresnet18`` (Kim et al., ICML 2020;
github.com/snu-mllab/PuzzleMix, ``models/preresnet.py``), identical to manifold mixup's
(Verma et al., ICML 2019; github.com/vikasverma1077/manifold_mixup,
``supervised/models/preresnet.py``): a 3x3 convolution (64 channels, stride 1, no BN) as the
stem, then four stages of two pre-activation basic blocks (He et al., ECCV 2016, "Identity
Mappings in Deep Residual Networks") with 64, 128, 256, 512 channels and strides 1, 2, 2, 2.
Neither ends with a BN-ReLU: the last block's sum is pooled as it is, so it is the embedding.
AlignMixup's CIFAR / TinyImageNet ``ResNet18()`` (Venkataramanan et al., CVPR 2022;
github.com/shashankvkt/AlignMixup_CVPR22, ``cifar10_100/models/resnet.py``) differs in two
places, not followed here: BN + ReLU after the stem conv (128 parameters more), and identity
shortcuts taken after each block's BN-ReLU (its ``shortcut`` is an empty ``nn.Sequential``
applied to ``relu(bn1(x))``) instead of from ``x``.

Blocks are numbered as PuzzleMix's and manifold mixup's ``layer_mix``: 0 is the image, 1 the stem
and ``layer1``, k = 2..4 ``layer{k}``. The total stride is 8, so block 4 is ``[m, 512, 4, 4]`` at
32 px (CIFAR) and ``[m, 512, 8, 8]`` at 64 px (TinyImageNet). AlignMixup's TinyImageNet network
keeps the stride-1 stem and pools 8x8 (``tiny_imgnet/models/resnet18_classifier.py``), and so do
we; PuzzleMix strides the stem by 2 on TinyImageNet instead (4x4). Parameter names are the
references' (``conv1``, ``layer1.0.bn1``, ..., ``layer2.0.shortcut.0``), so their encoders load.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mmtransfer.models.encoder import (
    MapEncoder,
    block_range,
    check_last_stride,
    check_width,
    unstride_,
)

PREACT_LAYOUTS = {(2, 2, 2, 2): 'preactresnet18'}


class PreActBlock(nn.Module):
    """Pre-activation basic block, ``[m, in, h, w] -> [m, planes, h / stride, w / stride]``:
    ``x + conv2(relu(bn2(conv1(relu(bn1(x))))))``; when the shape changes, the shortcut is a
    1x1 convolution of ``relu(bn1(x))`` (PuzzleMix / manifold mixup ``PreActBlock``)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if len(self.shortcut) else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class PreActResNetEncoder(MapEncoder):
    """PreActResNet-18 without its pooling and ``linear`` classifier.

    Args:
        width: stem and ``layer1`` channels (64 in the references, PuzzleMix's
            ``initial_channels``); ``layer{k}`` has ``width * 2**(k-1)``. A multiple of 8.
        last_stride: stride of ``layer4`` (2); 1 doubles the side of the embedding grid with the
            same weights (8x8 at 32 px).
        num_blocks: blocks per stage ((2, 2, 2, 2) is PreActResNet-18).
    """

    def __init__(self, width: int = 64, last_stride: int = 2,
                 num_blocks: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        check_width(width)
        check_last_stride(last_stride)
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        in_planes = width
        for k, depth in enumerate(num_blocks, start=1):
            planes = width * 2 ** (k - 1)
            strides = [1 if k == 1 else 2] + [1] * (depth - 1)
            blocks = []
            for stride in strides:
                blocks.append(PreActBlock(in_planes, planes, stride))
                in_planes = planes
            setattr(self, f'layer{k}', nn.Sequential(*blocks))
        if last_stride == 1:
            unstride_(self.layer4[0])
        self.out_channels = in_planes

    def forward(self, x: Tensor, start: int = 0, end: int = 4) -> Tensor:
        """Runs blocks ``start+1 .. end``: ``x`` is block ``start``'s output; returns ``end``'s
        (block 4: ``[m, 8 * width, H / 8, W / 8]``)."""
        for k in block_range(start, end):
            if k == 1:
                x = self.conv1(x)
            x = getattr(self, f'layer{k}')(x)
        return x
