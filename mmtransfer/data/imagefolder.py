"""ImageFolder data for pretraining, registered with mmengine's registries.

A sample is ``dict(inputs=uint8[3, H, W], labels=int)``; with ``num_views=2`` it also holds
``inputs2``, a second, independently augmented view of the same image (the EMA teacher's view).
mmengine's default collate stacks them into ``inputs[m, 3, H, W]``, ``labels[m]``, ``inputs2``.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from mmengine.model import BaseDataPreprocessor
from mmengine.registry import DATASETS, MODELS
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder

from mmtransfer.data.transforms import build_transform


class DataError(ValueError):
    """Bad data on disk: missing root, empty class folder, unreadable image."""


def _pil_loader(path: str) -> Image.Image:
    try:
        with open(path, 'rb') as f:
            img = Image.open(f)
            return _to_rgb(img, path)
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f'{path}: corrupt or truncated image ({err})') from err


def _to_rgb(img: Image.Image, path: str) -> Image.Image:
    """8-bit RGB. 16-bit grayscale (PIL's ``I;16`` modes) is scaled to 8 bits, value / 257
    rounded (65535 -> 255): PIL's own conversion clips every value over 255, a white image.
    32-bit integer or float pixels have no agreed 8-bit scale: refused."""
    if img.mode.startswith('I;16'):
        img = Image.fromarray(np.rint(np.asarray(img) / 257).astype(np.uint8))
    elif img.mode in ('I', 'F'):
        raise DataError(f'{path}: 32-bit {"float" if img.mode == "F" else "integer"} pixels '
                        f'(PIL mode {img.mode}) have no 8-bit scale; convert the image to 8 '
                        'bits')
    return img.convert('RGB')


@DATASETS.register_module()
class ImageFolderDataset(Dataset):
    """``root/<class>/<image>`` classification data (ImageNet's layout).

    Args:
        root: the split folder, e.g. ``data/imagenet/train``.
        train: training augmentation (random resized crop, flip) or evaluation (resize, crop).
        size: crop size in pixels (224 on ImageNet, 64 on the demo data).
        num_views: 1, or 2 to also return an independent second view ``inputs2``.
        transform: keyword arguments for :func:`build_transform` beyond ``train`` and ``size``.
    """

    def __init__(self, root: str, train: bool = True, size: int = 224, num_views: int = 1,
                 transform: dict | None = None):
        if not os.path.isdir(root):
            raise DataError(f'{root}: data root not found (expected <root>/<class>/<images>)')
        empty = sorted(d.name for d in os.scandir(root)
                       if d.is_dir() and not any(f.is_file() for f in os.scandir(d.path)))
        if empty:
            raise DataError(f'{root}: class folder {empty[0]!r} has no images')
        try:
            self.folder = ImageFolder(root, loader=_pil_loader)
        except FileNotFoundError as err:
            raise DataError(f'{root}: {err}') from err
        if num_views not in (1, 2):
            raise DataError(f'num_views must be 1 or 2, got {num_views}')
        self.transform = build_transform(train, size, **(transform or {}))
        self.num_views = num_views
        self.metainfo = dict(classes=tuple(self.folder.classes))

    @property
    def classes(self) -> list[str]:
        return self.folder.classes

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> dict:
        path, label = self.folder.samples[index]
        image = self.folder.loader(path)
        sample = dict(inputs=self.transform(image), labels=label)
        if self.num_views == 2:
            sample['inputs2'] = self.transform(image)
        return sample


@MODELS.register_module()
class MultiViewDataPreprocessor(BaseDataPreprocessor):
    """Moves a batch to the device and normalises every image view on it.

    ``inputs`` and ``inputs2`` (``uint8[m, 3, H, W]``) become ``(x - mean) / std`` in float32
    (``channels_last`` memory format on request); ``labels`` stays ``long[m]``. The copy to the
    device is non-blocking (overlapping with compute when the loader pins memory).
    """

    def __init__(self, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                 channels_last: bool = False, non_blocking: bool = True):
        super().__init__(non_blocking=non_blocking)
        self.register_buffer('mean', torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.channels_last = bool(channels_last)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        for key in ('inputs', 'inputs2'):
            if key in data:
                x = (data[key].float() - self.mean) / self.std
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                data[key] = x
        return data


IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')


class ImageFilesDataset(Dataset):
    """Every image file under ``root``, at any depth, in sorted path order: a flat folder (as
    ODIN distributes LSUN and iSUN resized) or an ImageFolder tree. Items are
    ``dict(inputs=uint8[3, size, size], labels=-1)`` (no labels: out-of-distribution data),
    resized to ``resize`` (default ``size / 0.875``) and centre-cropped to ``size``."""

    def __init__(self, root: str, size: int, resize: int | None = None):
        if not os.path.isdir(root):
            raise DataError(f'{root}: folder not found')
        self.paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root, followlinks=True)
                            for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
        if not self.paths:
            raise DataError(f'{root}: no images ({", ".join(IMAGE_EXTENSIONS)}) in it or below')
        self.transform = build_transform(False, size, resize=resize)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=self.transform(_pil_loader(self.paths[index])), labels=-1)
