"""A torchvision ResNet as an encoder that can be entered and left at any block.

Blocks are numbered as in manifold mixup: block 0 is the input image, block k (1..4) is the
output of ``layer{k}`` (the stem runs with layer1). Block 4 is the embedding MultiMix
interpolates: ``[m, d, h, w]`` before pooling (d = 2048, h = w = 7 for ResNet-50 at 224 px).
The module's parameter names are torchvision's, so its state dict is what MMDetection's
``ResNet`` loads.
"""
from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

NUM_BLOCKS = 4


class MapEncoder(nn.Module):
    """What the pretrainer asks of an encoder besides ``forward(x, start=0, end=4)`` and
    ``out_channels``; here for the convolutional encoders, whose every block output is a
    feature map ``[m, d, h, w]``. The ViT encoder (:mod:`mmtransfer.models.vit`) answers the
    same questions about its token sequences.
    """

    #: ``dense_pool`` must divide the grid (a token belongs to one window): ViT, not CNNs,
    #: whose last window is clipped (``ceil_mode``) as the paper's 7 -> 4 pooling needs.
    whole_windows = False

    def pool(self, z: Tensor) -> Tensor:
        """The pooled embedding the classifier reads: ``[m, d, h, w] -> [m, d]`` (GAP)."""
        return z.mean((2, 3))

    def positions(self, h: Tensor) -> Tensor:
        """A block output's spatial positions as a map ``[m, d, h, w]`` (here: itself)."""
        return h

    def with_positions(self, h: Tensor, maps: Tensor, w: Tensor) -> Tensor:
        """The block output of ``n`` dense mixtures whose positions are ``maps [n, d, h, w]``,
        mixed per position with ``w [r, m, n]`` from ``h``'s; a map has nothing else to mix."""
        return maps

    def class_token(self, h: Tensor) -> Tensor | None:
        """``[m, d]``: the class token of a block output, ``None`` for a network without one."""
        return None

    def check_image_size(self, size: int) -> None:
        """``ValueError`` naming the size when the network cannot take ``size x size`` images
        (a convolutional network takes any; a too-small one is caught by its empty grid)."""


def block_range(start: int, end: int) -> range:
    """Blocks ``start+1 .. end`` that a ``forward(x, start, end)`` runs; checks
    ``0 <= start <= end <= 4``."""
    if not 0 <= start <= end <= NUM_BLOCKS:
        raise ValueError(f'blocks must satisfy 0 <= start <= end <= 4, got {start}, {end}')
    return range(start + 1, end + 1)


def check_width(width) -> None:
    """Stem / first-stage channels: a multiple of 8, at least 8."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 8 or width % 8:
        raise ValueError(f'width must be a multiple of 8 (>= 8), got {width!r}')


def check_last_stride(last_stride) -> None:
    if last_stride not in (1, 2):
        raise ValueError(f'last_stride must be 1 or 2, got {last_stride!r}')


def unstride_(block: nn.Module) -> None:
    """Stride 1 for every stride-2 convolution of ``block`` (its 3x3 and its 1x1 shortcut): the
    same weights, twice the output side, no dilation."""
    for conv in block.modules():
        if isinstance(conv, nn.Conv2d) and conv.stride == (2, 2):
            conv.stride = (1, 1)


def build_torchvision_resnet(arch: str, width: int = 64,
                             zero_init_residual: bool = False) -> torchvision.models.ResNet:
    """torchvision's ``arch`` (random init) with ``width`` stem / ``layer1`` channels.

    ``width=64`` is torchvision's network. Other widths rebuild the stem, the four stages and
    ``fc`` with torchvision's own ``_make_layer`` and initialisation, so the key names and the
    layout stay torchvision's (a width-32 ResNet-18 has a quarter of the FLOPs).
    """
    if not arch.startswith('resnet') or not hasattr(torchvision.models, arch):
        raise ValueError(f'arch: unknown torchvision ResNet {arch!r}')
    check_width(width)
    net = getattr(torchvision.models, arch)(weights=None, zero_init_residual=zero_init_residual)
    if width == 64:
        return net
    block = type(net.layer1[0])
    depths = [len(getattr(net, f'layer{k}')) for k in range(1, 5)]
    net.inplanes = width
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    for k, depth in enumerate(depths, start=1):
        setattr(net, f'layer{k}', net._make_layer(block, width * 2 ** (k - 1), depth,
                                                  stride=1 if k == 1 else 2))
    net.fc = nn.Linear(width * 8 * block.expansion, net.fc.out_features)
    for module in net.modules():  # torchvision ResNet.__init__'s initialisation
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)
    if zero_init_residual:
        for module in net.modules():
            last_bn = getattr(module, 'bn3' if block.expansion == 4 else 'bn2', None)
            if isinstance(module, block) and last_bn is not None:
                nn.init.constant_(last_bn.weight, 0)
    return net


class ResNetEncoder(MapEncoder):
    """torchvision ResNet without ``avgpool`` and ``fc``.

    Args:
        arch: a torchvision ResNet name (``resnet18``, ``resnet50``, ...).
        zero_init_residual: zero the last BN of each residual branch (torchvision option).
        last_stride: stride of the last block (``layer4``): 2 as in ResNet, or 1, which doubles
            the side of the embedding grid without dilation (the paper's 8x8 dense grid from a
            4x4 one; 14x14 instead of 7x7 at 224 px). The weights are the same either way.
        width: channels of the stem and of ``layer1`` (64 in ResNet; ``layer{k}`` has
            ``width * 2**(k-1)`` times the block expansion). Other widths keep torchvision's key
            names; MMDetection's ``ResNet`` loads them with ``base_channels=stem_channels=width``.
    """

    def __init__(self, arch: str = 'resnet50', zero_init_residual: bool = False,
                 last_stride: int = 2, width: int = 64):
        super().__init__()
        check_last_stride(last_stride)
        net = build_torchvision_resnet(arch, width, zero_init_residual)
        if last_stride == 1:  # the strided 3x3 (or 1x1 downsample) convs of layer4's first block
            unstride_(net.layer4[0])
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1, net.layer2, net.layer3, net.layer4)
        self.out_channels = net.fc.in_features

    def _block(self, k: int) -> nn.Module:
        return self.layer1 if k == 1 else getattr(self, f'layer{k}')

    def forward(self, x: Tensor, start: int = 0, end: int = NUM_BLOCKS) -> Tensor:
        """Runs blocks ``start+1 .. end``: ``x`` is block ``start``'s output; returns ``end``'s."""
        for k in block_range(start, end):
            if k == 1:
                x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self._block(k)(x)
        return x


class LinearHead(nn.Linear):
    """The classifier ``W z + b``; also usable as a 1x1 convolution on dense embeddings.

    ``z[m, d] -> logits[m, c]`` and ``z[m, d, r] -> logits[m, c, r]`` (dense MultiMix, eq. 11).
    """

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() == 2:
            return super().forward(z)
        return torch.einsum('mdr,cd->mcr', z, self.weight) + self.bias[:, None]
