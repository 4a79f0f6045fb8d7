"""TinyImageNet-200 in its release layout: pixels and labels of a hand-made tree, one-line
errors naming the file or folder, the synthetic generator's tree."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmtransfer.cli import run
from mmtransfer.data.imagefolder import DataError
from mmtransfer.data.synthetic import write_tinyimagenet
from mmtransfer.data.tinyimagenet import TinyImageNetDataset, read_tinyimagenet

WNIDS = ['n04067472', 'n01443537', 'n02085620']  # wnids.txt is not sorted in the release


def _image(seed: int, mode: str = 'RGB') -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (64, 64, 3) if mode == 'RGB' else (64, 64)
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def make_tree(root, per_class=2):
    """The release layout with a few JPEGs (one grayscale), boxes files and a val split."""
    (root / 'val' / 'images').mkdir(parents=True)
    (root / 'wnids.txt').write_text(''.join(f'{w}\n' for w in WNIDS))
    for k, wnid in enumerate(WNIDS):
        folder = root / 'train' / wnid / 'images'
        folder.mkdir(parents=True)
        for i in range(per_class):
            mode = 'L' if (k, i) == (1, 0) else 'RGB'
            _image(10 * k + i, mode).save(folder / f'{wnid}_{i}.JPEG', quality=95)
        (root / 'train' / wnid / f'{wnid}_boxes.txt').write_text(f'{wnid}_0.JPEG\t1\t2\t3\t4\n')
    lines = []
    for j, wnid in enumerate(['n02085620', 'n04067472', 'n02085620', 'n01443537']):
        _image(100 + j).save(root / 'val' / 'images' / f'val_{j}.JPEG', quality=95)
        lines.append(f'val_{j}.JPEG\t{wnid}\t0\t5\t60\t62\n')
    (root / 'val' / 'val_annotations.txt').write_text(''.join(lines))
    return root


def _decoded(path) -> np.ndarray:
    """What PIL itself decodes, as [3, 64, 64] RGB."""
    return np.asarray(Image.open(path).convert('RGB')).transpose(2, 0, 1)


def test_train_split_pixels_and_labels_follow_the_sorted_wnids(tmp_path):
    root = make_tree(tmp_path / 'tiny-imagenet-200')
    images, labels, wnids = read_tinyimagenet(root, 'train', threads=2)
    assert wnids == tuple(sorted(WNIDS))
    assert images.dtype == torch.uint8 and images.shape == (6, 3, 64, 64)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    files = [root / 'train' / w / 'images' / f'{w}_{i}.JPEG' for w in sorted(WNIDS)
             for i in range(2)]
    for got, path in zip(images.numpy(), files, strict=True):
        np.testing.assert_array_equal(got, _decoded(path))
    gray = images[sorted(WNIDS).index(WNIDS[1]) * 2]            # n01443537_0: grayscale
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_val_split_follows_the_annotation_file(tmp_path):
    root = make_tree(tmp_path / 't')
    dataset = TinyImageNetDataset(str(root), 'val', threads=1)
    order = sorted(WNIDS)
    assert dataset.labels.tolist() == [order.index(w) for w in
                                       ['n02085620', 'n04067472', 'n02085620', 'n01443537']]
    for j in range(4):
        np.testing.assert_array_equal(dataset.images[j].numpy(),
                                      _decoded(root / 'val' / 'images' / f'val_{j}.JPEG'))
    assert dataset.classes == order and dataset[2]['labels'] == order.index('n02085620')


def test_size_resizes_every_image(tmp_path):
    root = make_tree(tmp_path / 't')
    images, _, _ = read_tinyimagenet(root, 'val', size=32)
    assert images.shape == (4, 3, 32, 32)
    expected = np.asarray(Image.open(root / 'val' / 'images' / 'val_1.JPEG').convert('RGB')
                          .resize((32, 32), Image.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_array_equal(images[1].numpy(), expected)


def _broken(root, what):
    if what == 'val_annotations':
        (root / 'val' / 'val_annotations.txt').unlink()
        return root / 'val' / 'val_annotations.txt', 'val', 'file not found'
    if what == 'wnids':
        (root / 'wnids.txt').unlink()
        return root / 'wnids.txt', 'train', 'file not found'
    if what == 'class_images':
        (root / 'train' / WNIDS[2] / 'images').rename(root / 'train' / WNIDS[2] / 'imgs')
        return root / 'train' / WNIDS[2] / 'images', 'train', 'folder not found'
    if what == 'extra_class':
        (root / 'train' / 'n99999999').mkdir()
        return root / 'train' / 'n99999999', 'train', 'not listed in'
    if what == 'listed_image':
        (root / 'val' / 'images' / 'val_2.JPEG').unlink()
        return root / 'val' / 'images' / 'val_2.JPEG', 'val', 'val_annotations.txt:3'
    if what == 'unknown_wnid':
        ann = root / 'val' / 'val_annotations.txt'
        ann.write_text(ann.read_text().replace('n01443537', 'n00000001'))
        return f'{ann}:4', 'val', "class 'n00000001' is not in"
    if what == 'corrupt_jpeg':
        path = root / 'train' / WNIDS[0] / 'images' / f'{WNIDS[0]}_1.JPEG'
        path.write_bytes(path.read_bytes()[:100])
        return path, 'train', 'corrupt or truncated image'
    raise ValueError(what)


@pytest.mark.parametrize('what', ['val_annotations', 'wnids', 'class_images', 'extra_class',
                                  'listed_image', 'unknown_wnid', 'corrupt_jpeg'])
def test_a_wrong_layout_is_one_line_naming_the_file(tmp_path, what):
    root = make_tree(tmp_path / 'tiny-imagenet-200')
    named, split, needle = _broken(root, what)
    with pytest.raises(DataError) as err:
        TinyImageNetDataset(str(root), split)
    line = str(err.value)
    assert line.startswith(f'{named}: ') and needle in line and '\n' not in line


def test_the_tools_turn_a_missing_annotation_file_into_one_error_line(tmp_path, capsys):
    root = make_tree(tmp_path / 'tiny-imagenet-200')
    (root / 'val' / 'val_annotations.txt').unlink()
    assert run(lambda argv: TinyImageNetDataset(str(root), 'val') and 0, []) == 2
    err = capsys.readouterr().err
    assert err == f'error: {root / "val" / "val_annotations.txt"}: file not found ' \
        f'(TinyImageNet-200 layout: wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG, ' \
        f'val/val_annotations.txt)\n'


def test_the_synthetic_tree_has_the_release_layout_and_loads(tmp_path):
    root = write_tinyimagenet(tmp_path, classes=12, train_per_class=2, val_per_class=1)
    assert root.name == 'tiny-imagenet-200'
    wnids = (root / 'wnids.txt').read_text().split()
    assert len(wnids) == 12 and len((root / 'words.txt').read_text().splitlines()) == 12
    for wnid in wnids:
        assert sorted(p.name for p in (root / 'train' / wnid / 'images').iterdir()) == \
            [f'{wnid}_0.JPEG', f'{wnid}_1.JPEG']
        assert (root / 'train' / wnid / f'{wnid}_boxes.txt').is_file()
    lines = (root / 'val' / 'val_annotations.txt').read_text().splitlines()
    assert len(lines) == 12 and all(len(line.split('\t')) == 6 for line in lines)
    with Image.open(root / 'val' / 'images' / 'val_0.JPEG') as image:
        assert (image.format, image.size, image.mode) == ('JPEG', (64, 64), 'RGB')
    train = TinyImageNetDataset(str(root), 'train')
    val = TinyImageNetDataset(str(root), 'val')
    assert len(train) == 24 and len(val) == 12
    assert torch.bincount(val.labels).tolist() == [1] * 12
