"""The one place an encoder is built from an architecture name (``model.arch``, ``--arch``).

Every encoder has ``forward(x, start=0, end=4)`` over blocks 0 (the image) .. 4 (the embedding,
``[m, out_channels, h, w]`` before pooling) and an ``out_channels`` attribute, so every method
runs on any of them unchanged.

    arch                      network                                     block 4 at 32/64/224 px
    resnet18 .. resnet152     torchvision ResNet (ImageNet stem)          -   / 2x2   / 7x7
    preactresnet18            PreActResNet-18, CIFAR stem (PuzzleMix)     4x4 / 8x8   / -
    wrn16_8 (any wrn<d>_<k>)  WRN-d-k, CIFAR stem (PuzzleMix, AlignMixup) 8x8 / 16x16 / -
    vit_s16                   timm's vit_small_patch16_224 (class token)  2x2 / 4x4   / 14x14
    vit_s16_avg               the same, pooled by the mean of the patches (tokens, 16 px each)

A ViT's block outputs are token sequences, not maps: the pretrainer reads them through the
:class:`~mmtransfer.models.encoder.MapEncoder` methods (``pool``, ``positions``, ...).
"""
from __future__ import annotations

from mmtransfer.models.encoder import MapEncoder, ResNetEncoder
from mmtransfer.models.preact_resnet import PreActResNetEncoder
from mmtransfer.models.wide_resnet import WideResNetEncoder, parse_wrn

RESNETS = ('resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152')
CIFAR_ARCHS = ('preactresnet18', 'wrn16_8')
VITS = {'vit_s16': 'token', 'vit_s16_avg': 'avg'}  # arch -> the pooled embedding
ARCHS = RESNETS + CIFAR_ARCHS + tuple(VITS)
DEFAULT_WIDTH = 64  # stem channels of the ResNets and of PreActResNet-18


def build_encoder(arch: str, width: int | None = None, last_stride: int = 2) -> MapEncoder:
    """A randomly initialised encoder for ``arch`` (see the module's table).

    Args:
        arch: one of :data:`ARCHS`, or ``wrn<depth>_<k>`` (depth = 6n + 4) for another WRN.
        width: stem / first-stage channels of a ResNet or PreActResNet (``None``: 64); a WRN
            takes its width from its name (``wrn16_2`` is WRN16-8 at a quarter of the width),
            and a ViT is ViT-S, so ``width`` must be ``None`` for them.
        last_stride: stride of the last stage (2); 1 doubles the side of the embedding grid.

    Raises ``ValueError`` naming ``arch`` and the choices for an unknown name.
    """
    if arch in RESNETS:
        return ResNetEncoder(arch, last_stride=last_stride,
                             width=DEFAULT_WIDTH if width is None else width)
    if arch == 'preactresnet18':
        return PreActResNetEncoder(width=DEFAULT_WIDTH if width is None else width,
                                   last_stride=last_stride)
    wrn = parse_wrn(arch)
    if wrn is not None:
        if width is not None:
            raise ValueError(f'width: {arch} takes its widen factor from its name (e.g. wrn16_2 '
                             f'for k = 2); leave width unset, got {width!r}')
        return WideResNetEncoder(*wrn, last_stride=last_stride)
    if arch in VITS:
        if width is not None or last_stride != 2:
            raise ValueError(f'{arch} has a fixed width and patch grid: leave width and '
                             f'last_stride unset, got width={width!r}, last_stride={last_stride!r}')
        from mmtransfer.models.vit import ViTEncoder  # timm, imported only for a ViT

        return ViTEncoder(pool=VITS[arch])
    raise ValueError(f'arch: unknown encoder {arch!r}; choose from {", ".join(ARCHS)} '
                     f'(or wrn<depth>_<k> with depth = 6n + 4)')
