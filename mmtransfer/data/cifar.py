"""CIFAR-10 / CIFAR-100 in the official "python version" layout, read without running code.

Layouts (https://www.cs.toronto.edu/~kriz/cifar.html)::

    cifar-10-batches-py/   data_batch_1 .. data_batch_5, test_batch, batches.meta
    cifar-100-python/      train, test, meta

Each file is a Python 2 pickle of a dict (read with ``encoding='bytes'``: bytes keys):
``b'data'`` uint8 ``[N, 3072]`` (one row per image: the 32x32 R plane, then G, then B, each row
major), ``b'labels'`` (CIFAR-10) or ``b'fine_labels'`` / ``b'coarse_labels'`` (CIFAR-100),
``b'filenames'``, ``b'batch_label'``; the meta file holds ``b'label_names'`` (CIFAR-10) or
``b'fine_label_names'`` (CIFAR-100). The files are opened with
:func:`mmtransfer.loading.load_data_pickle`, which builds only plain values and numeric numpy
arrays and refuses anything else in one line. CIFAR-100 is read with its 100 fine labels.
"""
from __future__ import annotations

import os
import os.path as osp

import numpy as np
import torch
from mmengine.registry import DATASETS

from mmtransfer.data.bank import BankDataset
from mmtransfer.data.imagefolder import DataError

#: variant -> folder name, files of each split, meta file, label key, class-name key.
LAYOUTS = {
    'cifar10': dict(folder='cifar-10-batches-py',
                    files=dict(train=[f'data_batch_{i}' for i in range(1, 6)],
                               test=['test_batch']),
                    meta='batches.meta', labels='labels', names='label_names'),
    'cifar100': dict(folder='cifar-100-python', files=dict(train=['train'], test=['test']),
                     meta='meta', labels='fine_labels', names='fine_label_names'),
}
_LAYOUT_TEXT = {'cifar10': 'data_batch_1..5, test_batch, batches.meta',
                'cifar100': 'train, test, meta'}
SIDE = 32


def find_cifar(root: str, variant: str | None = None) -> tuple[str, str]:
    """``(folder, variant)``: ``root`` is the extracted folder (``cifar-10-batches-py`` /
    ``cifar-100-python``) or the folder that holds it. ``variant`` (``'cifar10'`` /
    ``'cifar100'``; ``None``: by the meta file found) picks one."""
    if variant not in (None, *LAYOUTS):
        raise ValueError(f'variant must be one of {", ".join(LAYOUTS)} or None, got {variant!r}')
    variants = [variant] if variant else list(LAYOUTS)
    for name in variants:
        if osp.isfile(osp.join(root, LAYOUTS[name]['meta'])):
            return root, name
    found = [name for name in variants if osp.isdir(osp.join(root, LAYOUTS[name]['folder']))]
    if len(found) > 1:
        raise DataError(f'{root}: holds both {" and ".join(LAYOUTS[n]["folder"] for n in found)}'
                        '; pick one with variant=cifar10 or cifar100')
    if found:
        return find_cifar(osp.join(root, LAYOUTS[found[0]]['folder']), found[0])
    if not osp.isdir(root):
        raise DataError(f'{root}: CIFAR folder not found')
    missing = ' nor '.join(osp.join(root, LAYOUTS[n]['meta']) for n in variants)
    raise DataError(f'{missing}: file not found; expected the extracted '
                    f'{" or ".join(LAYOUTS[n]["folder"] + "/" for n in variants)} folder')


def _load(path: str):
    from mmtransfer.loading import load_data_pickle  # the one safe reader of data pickles

    if not osp.isfile(path):
        raise DataError(f'{path}: file not found')
    obj = load_data_pickle(path, encoding='bytes')
    if not isinstance(obj, dict):
        raise DataError(f'{path}: a CIFAR file holds a dict, found {type(obj).__name__}')
    return obj


def _field(obj: dict, name: str, path: str):
    """``obj[b'name']`` (the official files), or ``obj['name']`` (files pickled by Python 3)."""
    for key in (name.encode(), name):
        if key in obj:
            return obj[key]
    raise DataError(f'{path}: no {name!r} entry (keys: {sorted(map(str, obj))})')


def _text(value) -> str:
    return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def read_cifar_meta(folder: str, variant: str) -> tuple[str, ...]:
    """The class names in label order, from ``batches.meta`` / ``meta``."""
    path = osp.join(folder, LAYOUTS[variant]['meta'])
    names = _field(_load(path), LAYOUTS[variant]['names'], path)
    if not isinstance(names, list | tuple) or not names \
            or not all(isinstance(n, bytes | str) for n in names):
        raise DataError(f'{path}: {LAYOUTS[variant]["names"]!r} must be a list of names')
    return tuple(_text(n) for n in names)


def read_cifar_batch(path: str, labels_key: str, num_classes: int) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """``(images uint8 [N, 3, 32, 32], labels int64 [N])`` of one batch file."""
    obj = _load(path)
    data = _field(obj, 'data', path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * SIDE * SIDE:
        got = (f'{data.dtype} {list(data.shape)}' if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise DataError(f'{path}: "data" is {got}; a CIFAR batch holds uint8 [N, 3072] (each '
                        'row a 32x32 image: R, G, B planes)')
    labels = _field(obj, labels_key, path)
    try:
        labels = np.asarray(labels)
    except ValueError:  # ragged
        labels = np.asarray([], dtype=object)
    if labels.shape != (data.shape[0],) or labels.dtype.kind not in 'iu':
        raise DataError(f'{path}: {labels_key!r} must hold {data.shape[0]} integer labels (one '
                        f'per row of "data"), got {labels.dtype} {list(labels.shape)}')
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f'{path}: labels must lie in [0, {num_classes}), found '
                        f'{labels.min()}..{labels.max()}')
    return data.reshape(-1, 3, SIDE, SIDE), labels.astype(np.int64)


def read_cifar(root: str, split: str = 'train',
               variant: str | None = None) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """``(images uint8 [N, 3, 32, 32], labels int64 [N], class names)`` of one split
    (``'train'``: 50,000 images, ``'test'``: 10,000)."""
    if split not in ('train', 'test'):
        raise ValueError(f'split must be "train" or "test", got {split!r}')
    folder, variant = find_cifar(os.fspath(root), variant)
    layout = LAYOUTS[variant]
    paths = [osp.join(folder, name) for name in layout['files'][split]]
    for path in paths + [osp.join(folder, layout['meta'])]:
        if not osp.isfile(path):
            raise DataError(f'{path}: file not found ({layout["folder"]}/ holds '
                            f'{_LAYOUT_TEXT[variant]})')
    classes = read_cifar_meta(folder, variant)
    parts = [read_cifar_batch(path, layout['labels'], len(classes)) for path in paths]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return torch.from_numpy(images), torch.from_numpy(labels), classes


@DATASETS.register_module()
class CifarDataset(BankDataset):
    """CIFAR-10 or CIFAR-100 (fine labels) in memory as uint8 ``[N, 3, 32, 32]``; items are
    indices, for :class:`~mmtransfer.data.device_augment.DeviceAugmentPreprocessor`.

    Args:
        root: ``cifar-10-batches-py/``, ``cifar-100-python/``, or the folder holding one.
        split: ``'train'`` or ``'test'``.
        variant: ``'cifar10'``, ``'cifar100'`` or ``None`` (by the meta file found).
        num_views: 1, or 2 for a second augmented view ``inputs2`` (distillation).
    """

    def __init__(self, root: str, split: str = 'train', variant: str | None = None,
                 num_views: int = 1):
        images, labels, classes = read_cifar(root, split, variant)
        super().__init__(images, labels, classes, num_views, name=f'{root}:{split}')
