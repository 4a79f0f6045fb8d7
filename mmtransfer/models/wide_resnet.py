"""Wide ResNets in their CIFAR form (WRN16-8 and any WRN-d-k) as encoders entered and left at
any block.

The definition is PuzzleMix's ``Wide_ResNet`` (github.com/snu-mllab/PuzzleMix,
``models/wide_resnet.py``), which AlignMixup copies unchanged for its WRN16-8
(github.com/shashankvkt/AlignMixup_CVPR22, ``cifar10_100/models/WideResnet.py``, ``wrn16_8``),
after Zagoruyko & Komodakis (BMVC 2016) without dropout: a 3x3 convolution with bias (16
channels, stride 1) as the stem, three groups of ``n = (depth - 4) / 6`` pre-activation
``wide_basic`` blocks with 16k, 32k, 64k channels (k the widen factor) and strides 1, 2, 2 (on a
block's second 3x3; convolutions have biases), then BN + ReLU. That final BN has
``momentum=0.9`` in both references (PyTorch's convention: 90 % of each batch in the running
statistics), kept here. Both initialise with PyTorch's defaults (their ``conv_init`` is unused).

Three groups map onto blocks 0..4 so that manifold mixup's blocks {0, 1, 2} are PuzzleMix's and
manifold mixup's ``layer_mix`` {0, 1, 2} for WRNs: 0 the image, 1 the stem and ``layer1``, 2
``layer2``, 3 ``layer3``, 4 the final BN + ReLU, i.e. the embedding that is pooled and that
AlignMixup mixes. The total stride is 4: block 4 of WRN16-8 is ``[m, 512, 8, 8]`` at 32 px and
``[m, 512, 16, 16]`` at 64 px. Parameter names are the references'.
"""
from __future__ import annotations

import re

import torch.nn.functional as F
from torch import Tensor, nn

from mmtransfer.models.encoder import MapEncoder, block_range, check_last_stride, unstride_

WRN_NAME = re.compile(r'wrn(\d+)_(\d+)')


def parse_wrn(arch: str) -> tuple[int, int] | None:
    """``'wrn16_8'`` -> ``(16, 8)`` (depth, widen factor); ``None`` for a name of another family.
    Raises ``ValueError`` (naming ``arch``) when the depth is not ``6n + 4`` or k < 1."""
    match = WRN_NAME.fullmatch(arch) if isinstance(arch, str) else None
    if match is None:
        return None
    depth, k = int(match.group(1)), int(match.group(2))
    if depth < 10 or (depth - 4) % 6 or k < 1:
        raise ValueError(f'arch: {arch!r} is not a wide ResNet wrn<depth>_<k> with depth = 6n + 4 '
                         f'(n >= 1) and k >= 1')
    return depth, k


class WideBasic(nn.Module):
    """PuzzleMix's ``wide_basic``, ``[m, in, h, w] -> [m, planes, h / stride, w / stride]``:
    ``conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut(x)``, the stride on ``conv2``, the
    shortcut a 1x1 convolution of ``x`` (with bias) when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=True))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        return out + self.shortcut(x)


class WideResNetEncoder(MapEncoder):
    """WRN-``depth``-``k`` without its pooling and ``linear`` classifier.

    Args:
        depth: 6n + 4 (16: two blocks per group).
        widen_factor: k (8 for WRN16-8); group g has ``16 * k * 2**(g-1)`` channels.
        last_stride: stride of ``layer3`` (2); 1 doubles the side of the embedding grid with the
            same weights (16x16 at 32 px).
    """

    def __init__(self, depth: int = 16, widen_factor: int = 8, last_stride: int = 2):
        super().__init__()
        parse_wrn(f'wrn{depth}_{widen_factor}')  # checks depth and k
        check_last_stride(last_stride)
        n, k = (depth - 4) // 6, widen_factor
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=True)
        in_planes = 16
        for g in range(1, 4):
            planes = 16 * k * 2 ** (g - 1)
            blocks = []
            for stride in [1 if g == 1 else 2] + [1] * (n - 1):
                blocks.append(WideBasic(in_planes, planes, stride))
                in_planes = planes
            setattr(self, f'layer{g}', nn.Sequential(*blocks))
        self.bn1 = nn.BatchNorm2d(in_planes, momentum=0.9)
        if last_stride == 1:
            unstride_(self.layer3[0])
        self.out_channels = in_planes

    def forward(self, x: Tensor, start: int = 0, end: int = 4) -> Tensor:
        """Runs blocks ``start+1 .. end``: ``x`` is block ``start``'s output; returns ``end``'s
        (blocks 3 and 4: ``[m, 64k, H / 4, W / 4]``, block 4 after the final BN + ReLU)."""
        for k in block_range(start, end):
            if k == 1:
                x = self.conv1(x)
            x = getattr(self, f'layer{k}')(x) if k <= 3 else F.relu(self.bn1(x))
        return x
