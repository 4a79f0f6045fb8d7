"""Any ImageFolder tree at a small size with the CIFAR augmentation (``transform=dict(padding=4)``):
the loader path of ImageFolderDataset, for trees that are not CIFAR or TinyImageNet files."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mmtransfer.data import ImageFolderDataset, build_transform


def _pil(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _crops(img: np.ndarray, size: int, padding: int) -> np.ndarray:
    """Every zero-padded crop of a ``[3, size, size]`` image, and its mirror image."""
    p = np.pad(img, ((0, 0), (padding, padding), (padding, padding)))
    out = []
    for y in range(2 * padding + 1):
        for x in range(2 * padding + 1):
            crop = p[:, y:y + size, x:x + size]
            out += [crop, crop[:, :, ::-1]]
    return np.stack(out)


def test_training_is_a_padded_random_crop_and_flip_of_the_image():
    pil = _pil(32, 32)
    original = np.asarray(pil).transpose(2, 0, 1)
    transform = build_transform(True, 32, padding=4)
    candidates = _crops(original, 32, 4)
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        out = transform(pil)
        assert out.dtype == torch.uint8 and out.shape == (3, 32, 32)
        hits = np.flatnonzero((candidates == out.numpy()).all(axis=(1, 2, 3)))
        assert len(hits) == 1
        seen.add(int(hits[0]))
    assert len(seen) > 20                    # random, not one fixed crop


def test_validation_brings_any_image_to_size_without_augmentation():
    pil = _pil(32, 32, seed=1)
    out = build_transform(False, 32, padding=4)(pil)
    np.testing.assert_array_equal(out.numpy(), np.asarray(pil).transpose(2, 0, 1))
    assert build_transform(False, 32, padding=4)(_pil(48, 40)).shape == (3, 32, 32)
    assert build_transform(True, 32, padding=4)(_pil(48, 40)).shape == (3, 32, 32)


def test_image_folder_dataset_at_a_given_size(tmp_path):
    for k, name in enumerate(('a', 'b')):
        (tmp_path / name).mkdir()
        for i in range(2):
            _pil(40 + 8 * i, 56, seed=10 * k + i).save(tmp_path / name / f'{i}.png')
    dataset = ImageFolderDataset(str(tmp_path), train=True, size=32, num_views=2,
                                 transform=dict(padding=4))
    sample = dataset[3]
    assert sample['labels'] == 1
    assert sample['inputs'].shape == sample['inputs2'].shape == (3, 32, 32)
