"""Classification transforms (torchvision), as in torchvision's reference recipe.

Images leave the transform as ``uint8`` tensors ``[3, H, W]``; conversion to float and
normalisation happen on the device in :class:`~mmtransfer.data.MultiViewDataPreprocessor`.
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2 as T


def build_transform(train: bool, size: int = 224, resize: int | None = None,
                    hflip: float = 0.5, scale: tuple[float, float] = (0.08, 1.0),
                    padding: int | None = None) -> T.Compose:
    """Standard ImageNet augmentation, or with ``padding`` the small-image one.

    train: ``RandomResizedCrop(size, scale)`` + horizontal flip.
    val:   ``Resize(resize)`` (default ``size / 0.875``) + ``CenterCrop(size)``.

    With ``padding`` (CIFAR / TinyImageNet style, as AlignMixup's and PuzzleMix's
    ``RandomCrop(size, padding)``): every image is first brought to ``size x size`` by
    ``Resize(resize)`` (default ``size``) + ``CenterCrop(size)``; training then adds
    ``RandomCrop(size, padding)`` (zero padding) + horizontal flip.
    """
    if padding is not None:
        ops = [T.Resize(resize or size, antialias=True), T.CenterCrop(size)]
        if train:
            ops.append(T.RandomCrop(size, padding=padding))
            if hflip > 0:
                ops.append(T.RandomHorizontalFlip(hflip))
    elif train:
        ops = [T.RandomResizedCrop(size, scale=scale, antialias=True)]
        if hflip > 0:
            ops.append(T.RandomHorizontalFlip(hflip))
    else:
        ops = [T.Resize(resize or round(size / 0.875), antialias=True), T.CenterCrop(size)]
    return T.Compose([T.PILToTensor(), *ops, T.ToDtype(torch.uint8)])
