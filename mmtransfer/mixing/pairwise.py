"""Pairwise baselines: input mixup, manifold mixup and cutmix, in the same functional style."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._utils import check_shape

__all__ = ['pair_mixup', 'cutmix']


def _check_pair(x: Tensor, y: Tensor, lam: float, index: Tensor) -> None:
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f'lam must be in [0, 1], got {lam!r}')
    check_shape('y', y, (x.shape[0], None))
    check_shape('index', index, (x.shape[0],))


def pair_mixup(x: Tensor, y: Tensor, lam: float, index: Tensor) -> tuple[Tensor, Tensor]:
    """Mixup of each example with a partner: ``x~ = lam x + (1 - lam) x[index]``, same for ``y``.

    Input mixup (Zhang et al., 2018) on images; manifold mixup (Verma et al., 2019) is the same
    operation applied to the features at a block.

    Args:
        x: ``[m, ...]`` inputs or features.
        y: ``[m, c]`` targets (integer one-hot is converted to float32).
        lam: mixing factor in ``[0, 1]``, e.g. from :func:`sample_pair_lambda`.
        index: ``[m]`` partner of each example (long), e.g. ``torch.randperm(m)``.

    Returns:
        ``(x_mix [m, ...], y_mix [m, c])``.
    """
    _check_pair(x, y, lam, index)
    y = y if y.is_floating_point() else y.float()
    lam = float(lam)
    return lam * x + (1 - lam) * x[index], lam * y + (1 - lam) * y[index]


def cutmix(x: Tensor, y: Tensor, lam: float, index: Tensor, *,
           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, float]:
    """CutMix (Yun et al., 2019): paste a box of ``x[index]`` of area ``~(1 - lam) H W`` into ``x``.

    The box has sides ``H sqrt(1 - lam)`` by ``W sqrt(1 - lam)`` around a uniform random centre
    and is clipped to the image; ``lam`` is then recomputed as the fraction of ``x`` kept, and the
    targets are mixed with it. The centre is drawn on the CPU (``generator`` must be a CPU
    generator if given), so no host-device sync happens.

    Args:
        x: ``[m, C, H, W]`` images.
        y: ``[m, c]`` targets (integer one-hot is converted to float32).
        lam: mixing factor in ``[0, 1]``.
        index: ``[m]`` partner of each example (long).

    Returns:
        ``(x_mix [m, C, H, W], y_mix [m, c], lam_adjusted)``.
    """
    check_shape('x', x, (None, None, None, None))
    _check_pair(x, y, lam, index)
    height, width = x.shape[-2:]
    ratio = math.sqrt(1.0 - float(lam))
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = (int(torch.randint(size, (), generator=generator)) for size in (height, width))
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    x_mix = x.clone()
    x_mix[:, :, y1:y2, x1:x2] = x[index, :, y1:y2, x1:x2]
    lam_adjusted = 1.0 - (y2 - y1) * (x2 - x1) / (height * width)
    y = y if y.is_floating_point() else y.float()
    return x_mix, lam_adjusted * y + (1 - lam_adjusted) * y[index], lam_adjusted
