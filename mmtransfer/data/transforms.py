"""Classification transforms (torchvision), as in torchvision's reference recipe.

Images leave the transform as ``uint8`` tensors ``[3, H, W]``; conversion to float and
normalisation happen on the device in :class:`~mmtransfer.data.MultiViewDataPreprocessor`.
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2 as T


def build_transform(train: bool, size: int = 224, resize: int | None = None,
                    hflip: float = 0.5, scale: tuple[float, float] = (0.08, 1.0)) -> T.Compose:
    """Standard ImageNet augmentation.

    train: ``RandomResizedCrop(size, scale)`` + horizontal flip.
    val:   ``Resize(resize)`` (default ``size / 0.875``) + ``CenterCrop(size)``.
    """
    if train:
        ops = [T.RandomResizedCrop(size, scale=scale, antialias=True)]
        if hflip > 0:
            ops.append(T.RandomHorizontalFlip(hflip))
    else:
        ops = [T.Resize(resize or round(size / 0.875), antialias=True), T.CenterCrop(size)]
    return T.Compose([T.PILToTensor(), *ops, T.ToDtype(torch.uint8)])
