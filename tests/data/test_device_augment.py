"""Batched on-device augmentation: the crop against a per-example reference, the flip, the
normalisation by hand, and the preprocessor's batches (views, gather, fallback, state)."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mmtransfer.data.bank import BankDataset
from mmtransfer.data.device_augment import (
    CIFAR_MEAN,
    CIFAR_STD,
    DeviceAugmentPreprocessor,
    crop_flip,
    random_crop_flip,
)
from mmtransfer.data.imagefolder import MultiViewDataPreprocessor


def _images(m=16, h=8, w=10, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (m, 3, h, w), generator=g, dtype=torch.uint8)


def _reference(images: torch.Tensor, dy, dx, flip, padding) -> np.ndarray:
    """One example at a time: numpy zero padding, a slice, a reversed slice when flipped."""
    out = []
    _, _, h, w = images.shape
    for img, y, x, f in zip(images.numpy(), dy.tolist(), dx.tolist(), flip.tolist(),
                            strict=True):
        padded = np.pad(img, ((0, 0), (padding, padding), (padding, padding)))
        crop = padded[:, y:y + h, x:x + w]
        out.append(crop[:, :, ::-1] if f else crop)
    return np.stack(out)


def _candidates(images: torch.Tensor, padding: int) -> np.ndarray:
    """Every crop and flip of each image, numpy slices of the zero-padded batch:
    ``[m, (2p + 1)^2 * 2, C, H, W]``, candidate ``2 * (y * (2p + 1) + x) + flipped``."""
    _, _, h, w = images.shape
    p = padding
    padded = np.pad(images.numpy(), ((0, 0), (0, 0), (p, p), (p, p)))
    crops = []
    for y in range(2 * p + 1):
        for x in range(2 * p + 1):
            crop = padded[:, :, y:y + h, x:x + w]
            crops += [crop, crop[:, :, :, ::-1]]
    return np.stack(crops, axis=1)


def _which(out: torch.Tensor, candidates: np.ndarray) -> np.ndarray:
    """For each example, the candidates it equals: ``bool[m, K]``."""
    return (candidates == out.numpy()[:, None]).all(axis=(2, 3, 4))


@pytest.mark.parametrize('padding', [0, 1, 4])
def test_crop_flip_equals_the_per_example_reference(padding):
    images = _images()
    g = torch.Generator().manual_seed(1)
    dy, dx = torch.randint(0, 2 * padding + 1, (2, 16), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    out = crop_flip(images, dy, dx, flip, padding)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    np.testing.assert_array_equal(out.numpy(), _reference(images, dy, dx, flip, padding))


def test_the_padding_is_zeros_where_the_crop_leaves_the_image():
    images = torch.full((1, 3, 6, 6), 200, dtype=torch.uint8)
    out = crop_flip(images, torch.tensor([0]), torch.tensor([8]), torch.tensor([False]), 4)
    assert (out[0, :, :4, :] == 0).all() and (out[0, :, :, 2:] == 0).all()  # 4 rows, 4 columns
    assert (out[0, :, 4:, :2] == 200).all()


def test_flip_mirrors_the_crop_and_twice_is_the_identity():
    images = _images()
    dy, dx = torch.randint(0, 9, (2, 16), generator=torch.Generator().manual_seed(2))
    yes, no = torch.ones(16, dtype=torch.bool), torch.zeros(16, dtype=torch.bool)
    assert torch.equal(crop_flip(images, dy, dx, yes, 4), crop_flip(images, dy, dx, no, 4).flip(-1))
    zero = torch.zeros(16, dtype=torch.long)
    once = crop_flip(images, zero, zero, yes, 0)
    assert torch.equal(once, images.flip(-1)) and not torch.equal(once, images)
    assert torch.equal(crop_flip(once, zero, zero, yes, 0), images)


def test_random_crop_flip_draws_every_crop_and_flips_half():
    """Each output is exactly one crop-and-flip of its own image, and over 2,000 examples every
    one of the 5 x 5 offsets and both flips occur, the flips about half of the time."""
    torch.manual_seed(0)
    images = _images(m=2000, h=6, w=6)
    out = random_crop_flip(images, padding=2, hflip=0.5)
    hits = _which(out, _candidates(images, 2))
    assert (hits.sum(1) == 1).all()
    chosen = hits.argmax(1)
    assert len(np.unique(chosen // 2)) == 25
    assert 0.45 < (chosen % 2).mean() < 0.55
    torch.manual_seed(0)
    assert (_which(random_crop_flip(images, padding=2, hflip=0.0), _candidates(images, 2))
            .argmax(1) % 2 == 0).all()


def test_random_draws_replay_from_the_saved_generator_state():
    """What RNGStateHook does on resume: restoring torch's state replays the augmentation."""
    images = _images()
    torch.manual_seed(3)
    random_crop_flip(images)
    state = torch.get_rng_state()
    first = random_crop_flip(images)
    torch.manual_seed(99)
    torch.set_rng_state(state)
    assert torch.equal(random_crop_flip(images), first)


def _bank(m=12, h=8, w=8, num_views=1):
    images = _images(m, h, w, seed=5)
    labels = torch.arange(m) % 3
    return BankDataset(images, labels, ('a', 'b', 'c'), num_views=num_views, name='test')


def _batch(dataset, index):
    from mmengine.dataset import default_collate

    return default_collate([dataset[i] for i in index])


def test_validation_only_normalises_with_cifar_statistics_by_hand():
    values = torch.tensor([0, 64, 255], dtype=torch.uint8)
    images = values.view(1, 3, 1, 1).expand(2, 3, 4, 4).contiguous()
    dataset = BankDataset(images, torch.tensor([1, 0]), ('x', 'y'), name='flat')
    out = DeviceAugmentPreprocessor()(_batch(dataset, [1, 0]), training=False)
    assert set(out) == {'inputs', 'labels'}
    # torchvision's ToTensor + Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    expected = [(0 / 255 - 0.4914) / 0.2023, (64 / 255 - 0.4822) / 0.1994,
                (255 / 255 - 0.4465) / 0.2010]
    assert out['inputs'].dtype == torch.float32 and out['inputs'].shape == (2, 3, 4, 4)
    for c in range(3):
        assert torch.allclose(out['inputs'][:, c], torch.tensor(expected[c]), atol=1e-5)
    assert out['labels'].tolist() == [0, 1] and out['labels'].dtype == torch.int64


def test_validation_gathers_the_indexed_images_in_batch_order():
    dataset = _bank()
    pre = DeviceAugmentPreprocessor(mean=(0, 0, 0), std=(1, 1, 1))
    index = [7, 2, 11, 2]
    out = pre(_batch(dataset, index), training=False)
    assert torch.equal(out['inputs'], dataset.images[index].float())
    assert out['labels'].tolist() == [i % 3 for i in index]


@pytest.mark.parametrize('num_views', [1, 2])
def test_training_views_are_independent_crops_of_the_indexed_images(num_views):
    dataset = _bank(num_views=num_views)
    pre = DeviceAugmentPreprocessor(mean=(0, 0, 0), std=(1, 1, 1), padding=4)
    index = [3, 0, 9, 5, 5, 1]
    torch.manual_seed(0)
    out = pre(_batch(dataset, index), training=True)
    views = ['inputs', 'inputs2'][:num_views]
    assert set(out) == {'labels', *views}
    candidates = _candidates(dataset.images[index], 4)
    for view in views:
        assert out[view].dtype == torch.float32
        assert (_which(out[view].to(torch.uint8), candidates).sum(1) == 1).all()
    if num_views == 2:
        assert not torch.equal(out['inputs'], out['inputs2'])
    assert not torch.equal(out['inputs'], dataset.images[index].float())


def test_channels_last_on_request():
    dataset = _bank(num_views=2)
    out = DeviceAugmentPreprocessor(channels_last=True)(_batch(dataset, [0, 1]), training=True)
    for view in ('inputs', 'inputs2'):
        assert out[view].is_contiguous(memory_format=torch.channels_last)


def test_batches_that_hold_images_go_through_the_multiview_preprocessor():
    batch = dict(inputs=_images(4), labels=torch.tensor([0, 1, 2, 3]), inputs2=_images(4, seed=1))
    ours = DeviceAugmentPreprocessor(mean=(1, 2, 3), std=(4, 5, 6))(dict(batch), training=True)
    theirs = MultiViewDataPreprocessor(mean=(1, 2, 3), std=(4, 5, 6))(dict(batch), training=True)
    assert set(ours) == set(theirs) == {'inputs', 'labels', 'inputs2'}
    for key in ours:
        assert torch.equal(ours[key], theirs[key])


def test_the_bank_is_copied_once_and_kept_out_of_state_dict_and_copies():
    dataset = _bank()
    pre = DeviceAugmentPreprocessor()
    pre(_batch(dataset, [0, 1]), training=True)
    held = pre._on_device[dataset.bank_key][1]
    pre(_batch(dataset, [2, 3]), training=False)
    assert pre._on_device[dataset.bank_key][1] is held
    assert list(pre.state_dict()) == []
    assert copy.deepcopy(pre)._on_device == {}


def test_a_freed_dataset_frees_its_bank():
    import gc

    pre = DeviceAugmentPreprocessor()
    dataset = _bank()
    pre(_batch(dataset, [0]), training=False)
    old_key = dataset.bank_key
    del dataset
    gc.collect()
    other = _bank()
    pre(_batch(other, [0]), training=False)
    assert set(pre._on_device) == {other.bank_key} and old_key != other.bank_key


def test_bad_options_and_mixed_batches_are_refused():
    with pytest.raises(ValueError, match='padding'):
        DeviceAugmentPreprocessor(padding=-1)
    with pytest.raises(ValueError, match='hflip'):
        DeviceAugmentPreprocessor(hflip=1.5)
    a, b = _bank(), _bank()
    batch = _batch(a, [0, 1])
    batch['bank'] = [a.bank_key, b.bank_key]
    with pytest.raises(ValueError, match='several banks'):
        DeviceAugmentPreprocessor()(batch, training=False)


def test_cifar_constants_are_alignmixups_in_pixel_units():
    assert CIFAR_MEAN == pytest.approx((125.307, 122.961, 113.8575))
    assert CIFAR_STD == pytest.approx((51.5865, 50.847, 51.255))
