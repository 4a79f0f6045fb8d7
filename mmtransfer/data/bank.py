"""Datasets whose images stay in one uint8 tensor, and whose items are only indices.

A :class:`BankDataset` holds every image of a split as ``uint8[N, 3, H, W]`` (the bank) and
``labels`` as ``int64[N]``. Its item ``i`` is ``dict(index=i, labels=y_i, bank=key)``; mmengine's
``default_collate`` turns a batch into ``index[m]``, ``labels[m]`` and ``bank`` (a list of one
repeated string). The bank itself never passes through the loader:
:class:`~mmtransfer.data.device_augment.DeviceAugmentPreprocessor` looks ``key`` up here, copies
the bank to the model's device once, and gathers and augments each batch there.

The registry holds the banks weakly: a bank lives as long as its dataset.
"""
from __future__ import annotations

import itertools
import weakref

import torch
from torch import Tensor
from torch.utils.data import Dataset

_BANKS: weakref.WeakValueDictionary[str, ImageBank] = weakref.WeakValueDictionary()
_IDS = itertools.count()


class ImageBank:
    """One split in memory: ``images`` uint8 ``[N, 3, H, W]`` (CPU) and the number of
    independently augmented views a training batch gets (1, or 2 for the EMA teacher)."""

    def __init__(self, images: Tensor, num_views: int):
        self.images = images
        self.num_views = num_views


def get_bank(key: str) -> ImageBank:
    """The bank a batch names; ``RuntimeError`` if no dataset of this process registered it."""
    bank = _BANKS.get(key)
    if bank is None:
        raise RuntimeError(f'image bank {key!r} is not registered in this process: a batch of '
                           'a BankDataset must be preprocessed in the process that built the '
                           'dataset')
    return bank


def live_keys() -> set[str]:
    """The keys of the banks whose datasets still exist."""
    return set(_BANKS.keys())


class BankDataset(Dataset):
    """Classification data held as one uint8 tensor; items are ``(index, label, bank key)``.

    Args:
        images: uint8 ``[N, 3, H, W]``.
        labels: ``[N]`` class indices in ``[0, len(classes))``.
        classes: the class names, in label order.
        num_views: 1, or 2 for a second, independently augmented view ``inputs2`` (made by the
            preprocessor in training).
        name: a readable prefix of the bank key (e.g. the file it came from).
    """

    def __init__(self, images: Tensor, labels: Tensor, classes: tuple[str, ...],
                 num_views: int = 1, name: str = 'bank'):
        if num_views not in (1, 2):
            raise ValueError(f'num_views must be 1 or 2, got {num_views}')
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f'{name}: images must be uint8 [N, 3, H, W], got '
                             f'{images.dtype} {list(images.shape)}')
        if labels.shape != (images.shape[0],):
            raise ValueError(f'{name}: {images.shape[0]} images but labels of shape '
                             f'{list(labels.shape)}')
        self._bank = ImageBank(images.contiguous(), num_views)
        self.bank_key = f'{name}#{next(_IDS)}'
        _BANKS[self.bank_key] = self._bank
        self.labels = labels.to(torch.int64)
        self._label_list = self.labels.tolist()
        self.num_views = num_views
        self.metainfo = dict(classes=tuple(classes))

    @property
    def classes(self) -> list[str]:
        return list(self.metainfo['classes'])

    @property
    def images(self) -> Tensor:
        """uint8 ``[N, 3, H, W]``."""
        return self._bank.images

    def __len__(self) -> int:
        return len(self._label_list)

    def __getitem__(self, index: int) -> dict:
        return dict(index=index, labels=self._label_list[index], bank=self.bank_key)
