"""Pairwise baselines: input mixup, manifold mixup and cutmix, in the same functional style.

Each operation is split into its random draw and its application, so that one draw can be
applied to two views (the student's and the EMA teacher's, paper sec. 3.3 / appendix):
``pair_mix`` applies ``(lam, index)``; ``sample_cutmix_box`` draws a box and ``paste_box``
applies it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._utils import check_shape

__all__ = ['pair_mix', 'pair_mixup', 'sample_cutmix_box', 'paste_box', 'box_lambda', 'cutmix']

Box = tuple[int, int, int, int]  # (y1, y2, x1, x2): rows y1..y2-1, columns x1..x2-1


def _check_pair(x: Tensor, lam: float, index: Tensor) -> None:
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f'lam must be in [0, 1], got {lam!r}')
    check_shape('index', index, (x.shape[0],))


def pair_mix(x: Tensor, lam: float, index: Tensor) -> Tensor:
    """``lam * x + (1 - lam) * x[index]``: each example mixed with its partner.

    Args:
        x: ``[m, ...]`` inputs, features, logits or targets (floating point).
        lam: mixing factor in ``[0, 1]``.
        index: ``[m]`` partner of each example (long), e.g. ``torch.randperm(m)``.

    Returns:
        ``[m, ...]``.
    """
    _check_pair(x, lam, index)
    lam = float(lam)
    return lam * x + (1 - lam) * x[index]


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
    check_shape('y', y, (x.shape[0], None))
    y = y if y.is_floating_point() else y.float()
    return pair_mix(x, lam, index), pair_mix(y, lam, index)


def sample_cutmix_box(height: int, width: int, lam: float, *,
                      generator: torch.Generator | None = None) -> Box:
    """CutMix's box: sides ``H sqrt(1 - lam)`` by ``W sqrt(1 - lam)`` around a uniform random
    centre, clipped to the image.

    The centre is drawn on the CPU (``generator`` must be a CPU generator if given), so no
    host-device sync happens.

    Returns:
        ``(y1, y2, x1, x2)``: rows ``y1 .. y2 - 1`` and columns ``x1 .. x2 - 1``.
    """
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f'lam must be in [0, 1], got {lam!r}')
    ratio = math.sqrt(1.0 - float(lam))
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = (int(torch.randint(size, (), generator=generator)) for size in (height, width))
    return (max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height),
            max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width))


def paste_box(x: Tensor, index: Tensor, box: Box) -> Tensor:
    """``x`` with the ``box`` region of every image replaced by that of its partner ``x[index]``.

    Args:
        x: ``[m, C, H, W]`` images.
        index: ``[m]`` partner of each example (long).
        box: ``(y1, y2, x1, x2)`` from :func:`sample_cutmix_box`.

    Returns:
        ``[m, C, H, W]`` (a new tensor).
    """
    check_shape('x', x, (None, None, None, None))
    _check_pair(x, 0.0, index)
    y1, y2, x1, x2 = box
    out = x.clone()
    out[:, :, y1:y2, x1:x2] = x[index, :, y1:y2, x1:x2]
    return out


def box_lambda(box: Box, height: int, width: int) -> float:
    """The fraction of the image outside ``box``: CutMix's ``lam`` after clipping."""
    y1, y2, x1, x2 = box
    return 1.0 - (y2 - y1) * (x2 - x1) / (height * width)


def cutmix(x: Tensor, y: Tensor, lam: float, index: Tensor, *,
           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, float]:
    """CutMix (Yun et al., 2019): paste a box of ``x[index]`` of area ``~(1 - lam) H W`` into ``x``.

    The box comes from :func:`sample_cutmix_box`; ``lam`` is then recomputed as the fraction of
    ``x`` kept, and the targets are mixed with it.

    Args:
        x: ``[m, C, H, W]`` images.
        y: ``[m, c]`` targets (integer one-hot is converted to float32).
        lam: mixing factor in ``[0, 1]``.
        index: ``[m]`` partner of each example (long).

    Returns:
        ``(x_mix [m, C, H, W], y_mix [m, c], lam_adjusted)``.
    """
    check_shape('x', x, (None, None, None, None))
    check_shape('y', y, (x.shape[0], None))
    _check_pair(x, lam, index)
    height, width = x.shape[-2:]
    box = sample_cutmix_box(height, width, lam, generator=generator)
    lam_adjusted = box_lambda(box, height, width)
    y = y if y.is_floating_point() else y.float()
    return paste_box(x, index, box), pair_mix(y, lam_adjusted, index), lam_adjusted
