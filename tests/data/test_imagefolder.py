"""ImageFolderDataset: images other than 8-bit RGB become the uint8 tensors they should."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmtransfer.data.imagefolder import DataError, ImageFolderDataset

# 16-bit values and their 8-bit value: v / 257 rounded (65535 -> 255, 257 k -> k).
SIXTEEN = np.array([[0, 128, 129, 257], [20000, 65535, 1000, 30000]], dtype=np.uint16)
EIGHT = np.array([[0, 0, 1, 1], [78, 255, 4, 117]], dtype=np.uint8)


def _folder(tmp_path, image: Image.Image, name='a.png'):
    (tmp_path / 'cls').mkdir()
    image.save(tmp_path / 'cls' / name)
    return tmp_path


def test_a_16_bit_grayscale_png_is_scaled_to_8_bits(tmp_path):
    root = _folder(tmp_path, Image.fromarray(SIXTEEN))
    assert Image.open(root / 'cls' / 'a.png').mode == 'I;16'  # what PIL makes of it
    # An eval transform that keeps every pixel: resize 2 -> 2, centre crop 2 of a 2x4 image.
    dataset = ImageFolderDataset(str(root), train=False, size=2, transform=dict(resize=2))
    x = dataset[0]['inputs']
    assert x.dtype == torch.uint8 and x.shape == (3, 2, 2)
    for channel in x:  # gray: the same in R, G and B
        assert torch.equal(channel, torch.from_numpy(EIGHT[:, 1:3].copy()))
    # and the whole image through the loader, every value
    image = np.asarray(dataset.folder.loader(str(root / 'cls' / 'a.png')))
    assert image.dtype == np.uint8 and image.shape == (2, 4, 3)
    assert (image == EIGHT[:, :, None]).all()


def test_8_bit_images_are_unchanged(tmp_path):
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 4, 3) * 10
    root = _folder(tmp_path, Image.fromarray(pixels))
    assert (np.asarray(ImageFolderDataset(str(root)).folder.loader(
        str(root / 'cls' / 'a.png'))) == pixels).all()


def test_32_bit_images_are_refused_naming_the_file(tmp_path):
    root = _folder(tmp_path, Image.fromarray(np.full((2, 2), 3.5, dtype=np.float32)), 'a.tif')
    dataset = ImageFolderDataset(str(root), train=False, size=2, transform=dict(resize=2))
    with pytest.raises(DataError, match=r'a\.tif: 32-bit float pixels'):
        dataset[0]
