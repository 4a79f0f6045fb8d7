"""The labelled evaluation split of a classification data root, whatever its layout, with the
image size and normalisation of the recipe that trains on it (tools/evaluate.py and
tools/analyze_embeddings.py need no size flag for CIFAR or TinyImageNet).

    layout        recognised by                           split read       size  normalisation
    CIFAR-10/100  cifar-10-batches-py/ or cifar-100-python/  test (10,000)  32    AlignMixup's
                  (or the root is that folder)
    TinyImageNet  wnids.txt in the root or in                val (10,000)   64    AlignMixup's
                  tiny-imagenet-200/
    ImageFolder   anything else: <root>/<split>/<class>/*    <split>        224   ImageNet's

The normalisations are those of the configs: configs/cifar/ (DeviceAugmentPreprocessor's
defaults) and configs/pretrain/ (MultiViewDataPreprocessor's defaults).
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from mmtransfer.data.cifar import LAYOUTS as CIFAR_LAYOUTS
from mmtransfer.data.cifar import SIDE as CIFAR_SIDE
from mmtransfer.data.cifar import read_cifar
from mmtransfer.data.device_augment import CIFAR_MEAN, CIFAR_STD
from mmtransfer.data.imagefolder import DataError, ImageFolderDataset
from mmtransfer.data.tinyimagenet import read_tinyimagenet

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
TINYIMAGENET_SIDE = 64


class TensorItems(Dataset):
    """``images`` uint8 ``[N, 3, H, W]`` and ``labels[N]`` as items
    ``dict(inputs=uint8[3, H, W], labels=int)``, the items of :class:`ImageFolderDataset`."""

    def __init__(self, images: Tensor, labels: Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=self.images[index], labels=int(self.labels[index]))


@dataclass
class EvalSplit:
    """What an evaluation needs of a data root.

    ``dataset`` yields ``dict(inputs=uint8[3, size, size], labels=int)``; ``labels`` is
    ``long[N]`` in dataset order; ``mean`` / ``std`` are per channel in pixel units (0-255);
    ``ood_resize`` is the shorter side an out-of-distribution image is resized to before the
    centre crop to ``size`` (None: ``size / 0.875``, the ImageNet protocol).
    """

    dataset: Dataset
    labels: Tensor
    classes: list[str]
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layout: str
    path: str
    ood_resize: int | None


def _is_cifar(root: str) -> bool:
    return any(osp.isfile(osp.join(root, v['meta'])) or osp.isdir(osp.join(root, v['folder']))
               for v in CIFAR_LAYOUTS.values())


def _tinyimagenet_root(root: str) -> str | None:
    for folder in (root, osp.join(root, 'tiny-imagenet-200')):
        if osp.isfile(osp.join(folder, 'wnids.txt')):
            return folder
    return None


def _native(layout: str, side: int, size: int | None, resize: int | None) -> None:
    if size not in (None, side) or resize not in (None, side):
        raise ValueError(f'--size / --resize: {layout} images are evaluated at their own '
                         f'{side} px; leave both flags out')


def open_eval_split(root: str, split: str = 'val', size: int | None = None,
                    resize: int | None = None) -> EvalSplit:
    """The labelled evaluation split of ``root`` (layouts in the module docstring).

    ``split`` names the ImageFolder sub-folder (CIFAR reads ``test``, TinyImageNet ``val``);
    ``size`` / ``resize`` apply to ImageFolder roots (default 224, ``size / 0.875``). A
    missing root or file is a :class:`DataError` naming it.
    """
    if not osp.isdir(root):
        raise DataError(f'{root}: data root not found')
    if _is_cifar(root):
        _native('CIFAR', CIFAR_SIDE, size, resize)
        images, labels, classes = read_cifar(root, 'test')
        return EvalSplit(TensorItems(images, labels), labels, list(classes), CIFAR_SIDE,
                         CIFAR_MEAN, CIFAR_STD, 'cifar', root, CIFAR_SIDE)
    tin = _tinyimagenet_root(root)
    if tin is not None:
        _native('TinyImageNet', TINYIMAGENET_SIDE, size, resize)
        images, labels, wnids = read_tinyimagenet(tin, 'val', TINYIMAGENET_SIDE)
        return EvalSplit(TensorItems(images, labels), labels, list(wnids), TINYIMAGENET_SIDE,
                         CIFAR_MEAN, CIFAR_STD, 'tinyimagenet', tin, TINYIMAGENET_SIDE)
    path = osp.join(root, split)
    size = size or 224
    dataset = ImageFolderDataset(path, train=False, size=size,
                                 transform=dict(resize=resize) if resize else None)
    labels = torch.as_tensor(dataset.folder.targets, dtype=torch.int64)
    return EvalSplit(dataset, labels, list(dataset.classes), size, IMAGENET_MEAN, IMAGENET_STD,
                     'imagefolder', path, resize)
