"""Synthetic stand-ins in the exact on-disk formats of CIFAR-10, CIFAR-100 and TinyImageNet-200,
drawn with the demo's shapes (:func:`mmtransfer.data.demo.render_classification_image`).

* :func:`write_cifar` writes ``cifar-10-batches-py/`` (data_batch_1..5, test_batch,
  batches.meta) or ``cifar-100-python/`` (train, test, meta): Python 2 protocol-2 pickles as the
  official files (:mod:`mmtransfer.data.py2pickle`), 32x32 images.
* :func:`write_tinyimagenet` writes ``tiny-imagenet-200/`` (wnids.txt, words.txt,
  train/<wnid>/images/*.JPEG with <wnid>_boxes.txt, val/images/*.JPEG,
  val/val_annotations.txt), 64x64 JPEGs. The bounding boxes are the whole image.

Classes are learnable: CIFAR-10 class k is demo shape k (random colours, as the demo); class k of
CIFAR-100 or TinyImageNet is demo shape ``k % 10`` painted in colour family ``k // 10`` of
:data:`COLOURS`. Every image draws from its own generator seeded with ``(seed, stream, class,
index)``, so the files depend only on the arguments.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmtransfer.data.demo import DEMO_CLASSES, render_classification_image
from mmtransfer.data.py2pickle import dumps_py2

#: Ten base colours (RGB) of the colour families.
COLOURS = {'red': (220, 30, 30), 'green': (30, 190, 40), 'blue': (30, 60, 230),
           'yellow': (240, 220, 30), 'cyan': (30, 220, 230), 'magenta': (220, 40, 220),
           'orange': (250, 140, 20), 'purple': (120, 40, 160), 'white': (250, 250, 250),
           'black': (10, 10, 10)}
_CIFAR_TRAIN, _CIFAR_TEST, _TIN_TRAIN, _TIN_VAL = 11, 12, 13, 14  # generator streams


def class_name(k: int, family: int | None) -> str:
    """``<colour family>_<shape>``, or the shape alone when ``family`` is None."""
    shape = DEMO_CLASSES[k % 10]
    return shape if family is None else f'{list(COLOURS)[family]}_{shape}'


def _family(k: int, classes: int, coloured: bool) -> int | None:
    """Colour family of class ``k``: ``k // 10`` beyond 10 classes, ``k`` for the easy
    10-class set, None (random colours) otherwise."""
    if not coloured:
        return None
    return k // 10 if classes > 10 else k


def _render(seed: int, stream: int, k: int, i: int, size: int, family: int | None,
            clutter: bool = True) -> np.ndarray:
    """uint8 ``[size, size, 3]`` image ``i`` of class ``k`` (shape ``k % 10``)."""
    rng = np.random.default_rng([seed, stream, k, i])
    colour = None if family is None else list(COLOURS.values())[family]
    return np.asarray(render_classification_image(rng, k % 10, size, colour=colour,
                                                  clutter=clutter))


def _shuffled(seed: int, stream: int, classes: int, per_class: int) -> list[tuple[int, int]]:
    """(class, index) pairs in a fixed random order (every batch file mixes the classes)."""
    pairs = [(k, i) for k in range(classes) for i in range(per_class)]
    order = np.random.default_rng([seed, stream]).permutation(len(pairs))
    return [pairs[j] for j in order]


def _cifar_rows(seed, stream, pairs, classes, coloured, clutter) -> np.ndarray:
    """uint8 ``[N, 3072]``: each row an image's R, G, B planes, as the CIFAR files."""
    images = np.stack([_render(seed, stream, k, i, 32, _family(k, classes, coloured), clutter)
                       for k, i in pairs])
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(pairs), 3072)


def write_cifar(out_dir: str | os.PathLike, variant: str = 'cifar10', train_per_class: int = 50,
                test_per_class: int = 10, seed: int = 0, easy: bool = False) -> Path:
    """Write a synthetic ``cifar-10-batches-py/`` or ``cifar-100-python/`` under ``out_dir``
    (10 or 100 classes) and return that folder.

    ``easy=True`` (CIFAR-10 only): class k is shape k painted in colour family k, on a smooth
    background without lines or blobs, so that a narrow network learns it in a few hundred CPU
    steps (``make cifar-demo``); by default only the shape tells the classes apart.
    """
    if variant not in ('cifar10', 'cifar100'):
        raise ValueError(f'variant must be cifar10 or cifar100, got {variant!r}')
    if train_per_class < 1 or test_per_class < 1:
        raise ValueError('train_per_class and test_per_class must be >= 1')
    cifar10 = variant == 'cifar10'
    if easy and not cifar10:
        raise ValueError('easy=True is for cifar10 (cifar100 is coloured already)')
    classes = 10 if cifar10 else 100
    coloured = easy or not cifar10
    folder = Path(out_dir) / ('cifar-10-batches-py' if cifar10 else 'cifar-100-python')
    folder.mkdir(parents=True, exist_ok=True)
    names = [class_name(k, _family(k, classes, coloured)).encode() for k in range(classes)]
    splits = [('train', _CIFAR_TRAIN, train_per_class, 5 if cifar10 else 1),
              ('test', _CIFAR_TEST, test_per_class, 1)]
    for split, stream, per_class, batches in splits:
        pairs = _shuffled(seed, stream, classes, per_class)
        rows = _cifar_rows(seed, stream, pairs, classes, coloured, clutter=not easy)
        for b, part in enumerate(np.array_split(np.arange(len(pairs)), batches)):
            labels = [pairs[j][0] for j in part]
            batch = {b'batch_label': (f'training batch {b + 1} of {batches}' if split == 'train'
                                      else 'testing batch 1 of 1').encode(),
                     b'filenames': [f'{names[k].decode()}_s_{i:06d}.png'.encode()
                                    for k, i in (pairs[j] for j in part)],
                     b'data': rows[part]}
            if cifar10:
                batch[b'labels'] = labels
                file = f'data_batch_{b + 1}' if split == 'train' else 'test_batch'
            else:
                batch[b'fine_labels'] = labels
                batch[b'coarse_labels'] = [k // 5 for k in labels]
                file = split
            (folder / file).write_bytes(dumps_py2(batch))
    if cifar10:
        meta = {b'num_cases_per_batch': int(np.ceil(10 * train_per_class / 5)),
                b'label_names': names, b'num_vis': 3072}
        (folder / 'batches.meta').write_bytes(dumps_py2(meta))
    else:
        meta = {b'fine_label_names': names,
                b'coarse_label_names': [f'superclass_{c:02d}'.encode() for c in range(20)]}
        (folder / 'meta').write_bytes(dumps_py2(meta))
    return folder


def write_tinyimagenet(out_dir: str | os.PathLike, classes: int = 10, train_per_class: int = 20,
                       val_per_class: int = 5, seed: int = 0) -> Path:
    """Write a synthetic ``tiny-imagenet-200/`` (``classes`` <= 100 classes, 64x64 JPEGs) under
    ``out_dir`` and return that folder."""
    from PIL import Image

    if not 1 <= classes <= 100:
        raise ValueError(f'classes must be in 1..100, got {classes}')
    if train_per_class < 1 or val_per_class < 1:
        raise ValueError('train_per_class and val_per_class must be >= 1')
    root = Path(out_dir) / 'tiny-imagenet-200'
    wnids = [f'n{9_000_000 + k:08d}' for k in range(classes)]
    family = [_family(k, classes, coloured=classes > 10) for k in range(classes)]
    root.mkdir(parents=True, exist_ok=True)
    (root / 'wnids.txt').write_text(''.join(f'{w}\n' for w in wnids))
    (root / 'words.txt').write_text(''.join(f'{w}\t{class_name(k, family[k])}\n'
                                            for k, w in enumerate(wnids)))
    for k, wnid in enumerate(wnids):
        images = root / 'train' / wnid / 'images'
        images.mkdir(parents=True, exist_ok=True)
        boxes = []
        for i in range(train_per_class):
            name = f'{wnid}_{i}.JPEG'
            Image.fromarray(_render(seed, _TIN_TRAIN, k, i, 64, family[k])).save(
                images / name, format='JPEG', quality=90)
            boxes.append(f'{name}\t0\t0\t63\t63\n')
        (root / 'train' / wnid / f'{wnid}_boxes.txt').write_text(''.join(boxes))
    (root / 'val' / 'images').mkdir(parents=True, exist_ok=True)
    lines = []
    for j, (k, i) in enumerate(_shuffled(seed, _TIN_VAL, classes, val_per_class)):
        name = f'val_{j}.JPEG'
        Image.fromarray(_render(seed, _TIN_VAL, k, i, 64, family[k])).save(
            root / 'val' / 'images' / name, format='JPEG', quality=90)
        lines.append(f'{name}\t{wnids[k]}\t0\t0\t63\t63\n')
    (root / 'val' / 'val_annotations.txt').write_text(''.join(lines))
    return root


_OOD = 15  # generator stream of the out-of-distribution images
#: Sizes of ``make cifar-demo``'s data (:func:`write_cifar_demo`).
CIFAR_DEMO_SIZES = dict(train_per_class=400, test_per_class=30, ood_per_shape=30)


def write_ood_images(out_dir: str | os.PathLike, size: int = 32, per_shape: int = 30,
                     seed: int = 0) -> Path:
    """Write ``per_shape`` PNGs of each held-out shape (:data:`~mmtransfer.data.demo.OOD_SHAPES`,
    no class of these sets) in random colours on a smooth background, flat in ``out_dir``
    (as ODIN's LSUN / iSUN folders), and return that folder."""

    from mmtransfer.data.demo import OOD_SHAPES

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for k, shape in enumerate(OOD_SHAPES):
        for i in range(per_shape):
            rng = np.random.default_rng([seed, _OOD, k, i])
            render_classification_image(rng, shape, size, clutter=False).save(
                folder / f'{shape}_{i:04d}.png')
    return folder


def write_cifar_demo(out_dir: str | os.PathLike, seed: int = 0, force: bool = False,
                     **sizes) -> dict:
    """``make cifar-demo``'s data under ``out_dir``: the easy synthetic CIFAR-10
    (``cifar-10-batches-py/``, :func:`write_cifar` with ``easy=True``) and ``ood/`` (flat
    32 px PNGs of held-out shapes). A tree already written with the same arguments (its
    ``synthetic.json``) is left as it is unless ``force``. Returns the arguments and counts."""
    import json

    params = dict(CIFAR_DEMO_SIZES, **sizes, seed=seed, format=1)
    out = Path(out_dir)
    marker = out / 'synthetic.json'
    try:
        done = json.loads(marker.read_text()) == params
    except (OSError, ValueError):
        done = False
    if done and not force:
        return dict(params, written=False)
    marker.unlink(missing_ok=True)
    write_cifar(out, 'cifar10', params['train_per_class'], params['test_per_class'], seed,
                easy=True)
    write_ood_images(out / 'ood', 32, params['ood_per_shape'], seed)
    marker.write_text(json.dumps(params) + '\n')
    return dict(params, written=True)
