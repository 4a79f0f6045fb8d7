"""Batched augmentation on the model's device, for data held as one uint8 tensor.

The CIFAR and TinyImageNet recipe of AlignMixup (``cifar10_100/main.py``,
``tiny_imgnet/main.py``: padding 4 on both) and PuzzleMix (``load_data.py``: padding 2 on CIFAR,
4 on TinyImageNet) is ``RandomCrop(size, padding)`` (zero padding) + ``RandomHorizontalFlip()``
+ ``ToTensor()`` + ``Normalize(mean, std)``, one image at a time in loader workers. Here the
same operations run on a whole batch at once, on the device: the crop and the flip are one
gather of per-example windows from the padded batch, then one float conversion and
normalisation. Random numbers come from torch's default generator of the device, which
``RNGStateHook`` saves and restores.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.registry import MODELS
from torch import Tensor

from mmtransfer.data.bank import get_bank, live_keys
from mmtransfer.data.imagefolder import MultiViewDataPreprocessor

#: AlignMixup's normalisation for CIFAR-10, CIFAR-100 and TinyImageNet (``Normalize((0.4914,
#: 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))`` in ``cifar10_100/main.py`` and
#: ``tiny_imgnet/main.py``), in the 0-255 units of the uint8 pixels.
CIFAR_MEAN = tuple(255 * v for v in (0.4914, 0.4822, 0.4465))
CIFAR_STD = tuple(255 * v for v in (0.2023, 0.1994, 0.2010))


def crop_flip(images: Tensor, dy: Tensor, dx: Tensor, flip: Tensor, padding: int) -> Tensor:
    """Crop each image of ``images`` (``[m, C, H, W]``) out of its zero-padded copy, then
    mirror the flipped ones.

    Example ``i`` is ``pad(images[i], padding)[:, dy[i]:dy[i] + H, dx[i]:dx[i] + W]``, reversed
    along W where ``flip[i]``; ``dy``, ``dx`` are ``long[m]`` in ``[0, 2 * padding]``, ``flip``
    is ``bool[m]``. The padded batch and its mirror image are stacked, and one gather takes
    each example's window (a crop then a mirror is the mirror's crop at ``2 * padding - dx``);
    no loop over examples. Same dtype and device as ``images``.
    """
    m, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4) if padding else images
    both = torch.cat([padded, padded.flip(3)])                    # [2m, C, H + 2p, W + 2p]
    windows = both.unfold(2, h, 1).unfold(3, w, 1)                # [2m, C, 2p + 1, 2p + 1, H, W]
    example = torch.arange(m, device=images.device) + m * flip
    return windows[example, :, dy, torch.where(flip, 2 * padding - dx, dx)]


def random_crop_flip(images: Tensor, padding: int = 4, hflip: float = 0.5) -> Tensor:
    """``crop_flip`` with offsets uniform in ``[0, 2 * padding]`` and a flip with probability
    ``hflip``, drawn per example from the default generator of ``images.device`` (offsets
    first, rows then columns, then the flips)."""
    m, dev = images.shape[0], images.device
    dy, dx = torch.randint(0, 2 * padding + 1, (2, m), device=dev)
    flip = torch.rand(m, device=dev) < hflip
    return crop_flip(images, dy, dx, flip, padding)


@MODELS.register_module()
class DeviceAugmentPreprocessor(MultiViewDataPreprocessor):
    """Builds each batch of a :class:`~mmtransfer.data.bank.BankDataset` on the model's device.

    The dataset's uint8 bank ``[N, 3, H, W]`` is copied to the device on its first batch and
    kept there (not in the state dict). Per batch, ``images = bank[index]``; in training each
    view (``inputs``, and ``inputs2`` when the dataset has ``num_views=2``) is an independent
    :func:`random_crop_flip`; in validation and test the images are only normalised. Every view
    becomes ``(x - mean) / std`` in float32 (``channels_last`` on request), and ``labels`` is
    ``long[m]``: the dict ``MixPretrainer.forward(inputs, labels, inputs2)`` takes, as from
    :class:`MultiViewDataPreprocessor`. Batches that already hold ``inputs`` (an
    ``ImageFolderDataset``) are passed to that class unchanged.

    Args:
        mean, std: per channel, in pixel units (0-255); default AlignMixup's CIFAR statistics.
        padding: zero padding of the random crop (4 px; 0 turns the crop off).
        hflip: probability of a horizontal flip (0.5; 0 turns it off).
        channels_last, non_blocking: as :class:`MultiViewDataPreprocessor`.
    """

    def __init__(self, mean=CIFAR_MEAN, std=CIFAR_STD, padding: int = 4, hflip: float = 0.5,
                 channels_last: bool = False, non_blocking: bool = True):
        super().__init__(mean=mean, std=std, channels_last=channels_last,
                         non_blocking=non_blocking)
        if int(padding) != padding or padding < 0:
            raise ValueError(f'padding must be an integer >= 0, got {padding!r}')
        if not 0 <= hflip <= 1:
            raise ValueError(f'hflip must be a probability in [0, 1], got {hflip!r}')
        self.padding, self.hflip = int(padding), float(hflip)
        self._on_device: dict[str, tuple[Tensor, Tensor]] = {}  # key -> (CPU bank, device copy)

    def forward(self, data: dict, training: bool = False) -> dict:
        if 'bank' not in data:
            return super().forward(data, training)
        keys = data['bank']
        key = keys if isinstance(keys, str) else keys[0]
        if not isinstance(keys, str) and keys.count(key) != len(keys):
            raise ValueError(f'one batch holds images of several banks ({sorted(set(keys))}): '
                             'concatenated BankDatasets are not supported')
        bank = get_bank(key)
        images = self._device_images(key, bank.images)
        index = torch.as_tensor(data['index']).to(images.device, non_blocking=True)
        labels = torch.as_tensor(data['labels']).to(images.device, non_blocking=True)
        batch = images.index_select(0, index)   # on CPU 10x faster than images[index]
        out = dict(labels=labels)
        for view in ('inputs', 'inputs2')[:bank.num_views if training else 1]:
            x = random_crop_flip(batch, self.padding, self.hflip) if training else batch
            out[view] = self._normalise(x)
        return out

    def _normalise(self, x: Tensor) -> Tensor:
        x = (x.float() - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _device_images(self, key: str, cpu: Tensor) -> Tensor:
        """The bank on this module's device, copied once (again if the bank or device changed)."""
        cached = self._on_device.get(key)
        if cached is None or cached[0] is not cpu or cached[1].device != self.mean.device:
            for stale in set(self._on_device) - live_keys():
                del self._on_device[stale]
            cached = (cpu, cpu.to(self.mean.device))
            self._on_device[key] = cached
        return cached[1]

    def __getstate__(self):
        """Pickles and deep copies leave the device copies behind."""
        state = super().__getstate__()
        return {**state, '_on_device': {}}
