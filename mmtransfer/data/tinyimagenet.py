"""TinyImageNet-200 in its release layout, decoded once into one uint8 tensor.

Layout of ``tiny-imagenet-200.zip`` (http://cs231n.stanford.edu/tiny-imagenet-200.zip)::

    wnids.txt                         the 200 class ids (WordNet ids), one a line
    train/<wnid>/images/*.JPEG        500 images per class, 64x64
    val/images/*.JPEG                 10,000 images
    val/val_annotations.txt           <file> TAB <wnid> TAB <x0> TAB <y0> TAB <x1> TAB <y1>
    test/images/*.JPEG                unlabelled (not read)

Labels index the wnids sorted by name, the order ``torchvision.datasets.ImageFolder`` gives
``train/`` (PuzzleMix reads TinyImageNet with ImageFolder). All 110,000 images are 64x64 and
decoded once at start-up (grayscale ones to RGB); ``size`` other than 64 resizes them.
"""
from __future__ import annotations

import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from mmengine.registry import DATASETS
from PIL import Image

from mmtransfer.data.bank import BankDataset
from mmtransfer.data.imagefolder import DataError, _pil_loader

LAYOUT = ('wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG, val/val_annotations.txt')
_IMAGE_EXTENSIONS = ('.jpeg', '.jpg', '.png')


def _require_file(path: str) -> None:
    if not osp.isfile(path):
        raise DataError(f'{path}: file not found (TinyImageNet-200 layout: {LAYOUT})')


def read_wnids(root: str) -> tuple[str, ...]:
    """The class ids of ``wnids.txt``, sorted (the label order)."""
    if not osp.isdir(root):
        raise DataError(f'{root}: TinyImageNet folder not found')
    path = osp.join(root, 'wnids.txt')
    _require_file(path)
    with open(path) as f:
        wnids = [line.strip() for line in f if line.strip()]
    if not wnids or len(set(wnids)) != len(wnids):
        raise DataError(f'{path}: expected distinct class ids, one a line')
    return tuple(sorted(wnids))


def list_train(root: str, wnids: tuple[str, ...]) -> tuple[list[str], list[int]]:
    """``train/<wnid>/images/*``: paths (sorted by class, then name) and labels."""
    train = osp.join(root, 'train')
    if not osp.isdir(train):
        raise DataError(f'{train}: folder not found (TinyImageNet-200 layout: {LAYOUT})')
    extra = sorted({d.name for d in os.scandir(train) if d.is_dir()} - set(wnids))
    if extra:
        raise DataError(f'{osp.join(train, extra[0])}: class folder not listed in '
                        f'{osp.join(root, "wnids.txt")}')
    paths, labels = [], []
    for label, wnid in enumerate(wnids):
        folder = osp.join(train, wnid, 'images')
        if not osp.isdir(folder):
            raise DataError(f'{folder}: folder not found (TinyImageNet-200 layout: {LAYOUT})')
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith(_IMAGE_EXTENSIONS))
        if not names:
            raise DataError(f'{folder}: no images')
        paths += [osp.join(folder, n) for n in names]
        labels += [label] * len(names)
    return paths, labels


def list_val(root: str, wnids: tuple[str, ...]) -> tuple[list[str], list[int]]:
    """``val/images/*`` with labels from ``val/val_annotations.txt``, in its order."""
    ann = osp.join(root, 'val', 'val_annotations.txt')
    _require_file(ann)
    index = {wnid: i for i, wnid in enumerate(wnids)}
    paths, labels = [], []
    with open(ann) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.rstrip('\n').split('\t')
            if len(fields) < 2:
                raise DataError(f'{ann}:{lineno}: expected "<file>\\t<wnid>\\t<x0>\\t<y0>\\t'
                                f'<x1>\\t<y1>", got {line.strip()!r}')
            name, wnid = fields[0].strip(), fields[1].strip()
            if wnid not in index:
                raise DataError(f'{ann}:{lineno}: class {wnid!r} is not in '
                                f'{osp.join(root, "wnids.txt")}')
            path = osp.join(root, 'val', 'images', name)
            if not osp.isfile(path):
                raise DataError(f'{path}: file not found (listed in {ann}:{lineno})')
            paths.append(path)
            labels.append(index[wnid])
    if not paths:
        raise DataError(f'{ann}: lists no images')
    return paths, labels


def decode_images(paths: list[str], size: int, threads: int = 8) -> np.ndarray:
    """uint8 ``[N, 3, size, size]``: every file decoded to RGB (resized when not
    ``size x size``), with ``threads`` decoding at once (Pillow releases the GIL)."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)

    def decode(i: int) -> None:
        image = _pil_loader(paths[i])
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        out[i] = np.asarray(image).transpose(2, 0, 1)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for _ in pool.map(decode, range(len(paths))):  # re-raises the first error
            pass
    return out


def read_tinyimagenet(root: str, split: str = 'train', size: int = 64, threads: int = 8
                      ) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """``(images uint8 [N, 3, size, size], labels int64 [N], wnids)`` of ``'train'``
    (100,000 images) or ``'val'`` (10,000)."""
    if split not in ('train', 'val'):
        raise ValueError(f'split must be "train" or "val", got {split!r}')
    root = os.fspath(root)
    wnids = read_wnids(root)
    paths, labels = (list_train if split == 'train' else list_val)(root, wnids)
    images = decode_images(paths, size, threads)
    return torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64), wnids


@DATASETS.register_module()
class TinyImageNetDataset(BankDataset):
    """TinyImageNet-200 in memory as uint8 ``[N, 3, size, size]`` (1.2 GB for train at 64 px);
    items are indices, for :class:`~mmtransfer.data.device_augment.DeviceAugmentPreprocessor`.

    Args:
        root: the extracted ``tiny-imagenet-200/`` folder.
        split: ``'train'`` or ``'val'`` (the labelled 10,000; the release's test split has no
            labels).
        size: image side (64, the release's).
        num_views: 1, or 2 for a second augmented view ``inputs2`` (distillation).
        threads: decoding threads at start-up.
    """

    def __init__(self, root: str, split: str = 'train', size: int = 64, num_views: int = 1,
                 threads: int = 8):
        images, labels, wnids = read_tinyimagenet(root, split, size, threads)
        super().__init__(images, labels, wnids, num_views, name=f'{root}:{split}')
