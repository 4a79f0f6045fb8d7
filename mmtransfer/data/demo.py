"""Embedded synthetic demo data, so that every code path runs on a CPU without ImageNet/VOC/COCO.

Ten classes of flat shapes (:data:`DEMO_CLASSES`) are drawn with a random colour, size, rotation,
aspect and texture (solid, stripes, dots, checker, gradient) on cluttered backgrounds (a
low-frequency colour field, lines, soft blobs, pixel noise). The colour distribution is the same
for every class, so only shape tells the classes apart.

Layout written under ``out_dir``::

    cls/{train,val}/<class>/NNNN.png              64x64 RGB, ImageFolder layout
    cls/ood/<shape>/NNNN.png                      held-out shapes of no class (:data:`OOD_SHAPES`),
                                                  drawn like the val images: the OOD set
    VOCdevkit/VOC2007/{JPEGImages,Annotations}    scenes '000001'...
    VOCdevkit/VOC2007/ImageSets/Main/{trainval,test}.txt
    VOCdevkit/VOC2012/{JPEGImages,Annotations}    scenes '2012_000001'...
    VOCdevkit/VOC2012/ImageSets/Main/trainval.txt
    coco/annotations/instances_{train,val}2017.json
    coco/{train2017,val2017}/NNNNNNNNNNNN.jpg     the same scenes (byte-identical JPEGs)
    .demo_complete.json                           marker: seed, sizes and counts

Detection scenes are ``det_size`` (width, height) = 192x160 by default with 1-6 objects of
14-72 px, drawn in order so that later objects occlude earlier ones. Conventions:

* boxes enclose the *visible* pixels of an object (as the VOC guidelines ask); an object whose
  visible part is under 30% of its extent (occluded or cut by the border) is not drawn at all, so
  nothing unannotated stays in the image;
* ``difficult=1`` (VOC) marks objects with under 60% visible or a box side under 12 px; in COCO
  the same objects get ``iscrowd=1``, which both pycocotools and mmdet treat as "ignore", so the
  two evaluations agree on what counts;
* a visible pixel block with 0-based columns ``c0..c1`` (rows ``r0..r1``) is VOC
  ``xmin=c0+1, xmax=c1+1`` (1-based, inclusive) and COCO ``[c0, r0, c1-c0+1, r1-r0+1]`` (pixel
  edges); COCO ``area`` is the box area ``w*h`` (there are no masks);
* COCO ``image_id`` is ``2007NNNNNN`` for VOC2007 scene ``NNNNNN`` and ``2012NNNNNN`` for VOC2012
  scene ``2012_NNNNNN``; ``file_name`` is the id in 12 digits, like COCO's.

Every image draws from its own ``numpy.random.Generator`` seeded with ``(seed, stream, index)``,
so the output depends only on ``seed`` and the sizes; no global RNG is touched.
"""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

DEMO_CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring', 'hexagon', 'diamond',
                'crescent', 'heart')

CLS_IMAGE_SIZE = 64
DET_IMAGE_SIZE = (192, 160)  # (width, height)
MARKER = '.demo_complete.json'
FORMAT = 'mmtransfer-demo'
FORMAT_VERSION = 2

_SUPERSAMPLE = 4
_DET_OBJECT_SIZE = (14, 72)  # px, log-uniform side of an object's square footprint
_MIN_VISIBLE_FRACTION = 0.3  # below: the object is not drawn
_DIFFICULT_VISIBLE_FRACTION = 0.6
_DIFFICULT_MIN_SIDE = 12
_TEXTURES = ('solid', 'stripes', 'dots', 'checker', 'gradient')
# Streams of the per-image random generators.
_CLS_TRAIN, _CLS_VAL, _VOC07, _VOC12, _CLS_OOD = 1, 2, 3, 4, 5


class DemoDataError(RuntimeError):
    """Raised when the demo data cannot be written where asked."""


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------

def _regular(n: int, radius: float = 0.95, phase: float = math.pi / 2) -> np.ndarray:
    t = phase + 2 * math.pi * np.arange(n) / n
    return radius * np.stack([np.cos(t), np.sin(t)], axis=1)


def _heart(n: int = 64) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    pts = np.stack([x, y], axis=1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return 0.95 * pts / np.abs(pts).max()


def _star(points: int = 5, outer: float = 1.0, inner: float = 0.42) -> np.ndarray:
    pts = _regular(2 * points, 1.0)
    return pts * np.where(np.arange(2 * points) % 2 == 0, outer, inner)[:, None]


def _centred(pts: np.ndarray) -> np.ndarray:
    return pts - (pts.max(0) + pts.min(0)) / 2


_CIRCLE = _regular(64, 0.95)
_ARM, _LEN = 0.3, 0.95
# Each shape: polygons in unit coordinates (y up), each painted with fill 1 (add) or 0 (cut).
_SHAPES: dict[str, list[tuple[np.ndarray, int]]] = {
    'circle': [(_CIRCLE, 1)],
    'square': [(np.array([[-.72, -.72], [.72, -.72], [.72, .72], [-.72, .72]]), 1)],
    'triangle': [(_centred(_regular(3, 1.05)), 1)],
    'star': [(_centred(_star()), 1)],
    'cross': [(np.array([[-_ARM, _LEN], [_ARM, _LEN], [_ARM, _ARM], [_LEN, _ARM], [_LEN, -_ARM],
                         [_ARM, -_ARM], [_ARM, -_LEN], [-_ARM, -_LEN], [-_ARM, -_ARM],
                         [-_LEN, -_ARM], [-_LEN, _ARM], [-_ARM, _ARM]]), 1)],
    'ring': [(_CIRCLE, 1), (_regular(64, 0.55), 0)],
    'hexagon': [(_regular(6, 0.95, 0.0), 1)],
    'diamond': [(np.array([[0, .98], [.55, 0], [0, -.98], [-.55, 0]]), 1)],
    'crescent': [(_CIRCLE, 1), (_regular(64, 0.8) + np.array([0.45, 0.2]), 0)],
    'heart': [(_heart(), 1)],
}
assert tuple(_SHAPES) == DEMO_CLASSES
# Shapes of no class, for the out-of-distribution split (never in training or detection data).
OOD_SHAPES = ('pentagon', 'arrow', 'tee', 'ellipse')
_SHAPES.update({
    'pentagon': [(_centred(_regular(5, 1.0)), 1)],
    'arrow': [(np.array([[0, .95], [.7, .25], [.25, .25], [.25, -.95], [-.25, -.95],
                         [-.25, .25], [-.7, .25]]), 1)],
    'tee': [(np.array([[-.9, .9], [.9, .9], [.9, .45], [.22, .45], [.22, -.9], [-.22, -.9],
                       [-.22, .45], [-.9, .45]]), 1)],
    'ellipse': [(_CIRCLE * np.array([1.0, 0.5]), 1)],
})


def shape_mask(name: str, size: int, angle: float = 0.0, aspect: float = 1.0) -> np.ndarray:
    """Anti-aliased coverage of one shape on a ``(size, size)`` float32 grid in [0, 1].

    The shape is rotated by ``angle`` (radians) and stretched ``aspect`` times along x (then
    shrunk to fit), and fills most of the square.
    """
    big = size * _SUPERSAMPLE
    canvas = Image.new('L', (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    stretch = np.array([aspect, 1.0]) / max(aspect, 1.0)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    for pts, fill in _SHAPES[name]:
        xy = (pts * stretch) @ rot.T
        px = (xy * np.array([1.0, -1.0]) + 1.0) * (big / 2)  # y up -> rows down
        draw.polygon([tuple(p) for p in px], fill=255 * fill)
    cov = np.asarray(canvas, dtype=np.float32).reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE)
    return cov.mean(axis=(1, 3)) / 255.0


# --------------------------------------------------------------------------------------------
# Painting
# --------------------------------------------------------------------------------------------

def _random_colour(rng: np.random.Generator, avoid: np.ndarray | None = None) -> np.ndarray:
    """A random RGB colour (float32, 0-255), at L1 distance >= 160 from ``avoid`` if given."""
    for _ in range(16):
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        if avoid is None or np.abs(colour - avoid).sum() >= 160:
            break
    return colour


def _texture(rng: np.random.Generator, size: int, base: np.ndarray) -> np.ndarray:
    """A ``(size, size, 3)`` texture around colour ``base``: solid, stripes, dots, checker or
    gradient, with a second random colour."""
    kind = _TEXTURES[rng.integers(len(_TEXTURES))]
    other = _random_colour(rng, avoid=base)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    period = rng.uniform(4, 10)
    phase = rng.uniform(0, 1)
    if kind == 'solid':
        weight = np.zeros_like(u)
    elif kind == 'stripes':
        weight = ((u / period + phase) % 1.0 < 0.5).astype(np.float32)
    elif kind == 'dots':
        du = (u / period + phase) % 1.0 - 0.5
        dv = (v / period + phase) % 1.0 - 0.5
        weight = (du ** 2 + dv ** 2 < 0.09).astype(np.float32)
    elif kind == 'checker':
        weight = ((np.floor(u / period + phase) + np.floor(v / period)) % 2).astype(np.float32)
    else:  # gradient
        weight = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    tex = base + weight[..., None] * (other - base)
    return tex + rng.normal(0, 6, (size, size, 1)).astype(np.float32)  # shading


def _background(rng: np.random.Generator, width: int, height: int,
                clutter: bool = True) -> np.ndarray:
    """Cluttered ``(height, width, 3)`` float32 background: colour field, lines, soft blobs
    (``clutter=False``: the colour field alone)."""
    base = _random_colour(rng)
    coarse = rng.uniform(-45, 45, (3, 4, 3)) + base
    field = Image.fromarray(np.clip(coarse, 0, 255).astype(np.uint8)).resize(
        (width, height), Image.BICUBIC)
    if not clutter:
        return np.asarray(field, dtype=np.float32)
    draw = ImageDraw.Draw(field)
    scale = max(width, height)
    for _ in range(int(rng.integers(2, 3 + scale // 32))):
        pts = rng.uniform(-0.1, 1.1, (int(rng.integers(2, 5)), 2)) * (width, height)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.line([tuple(p) for p in pts], fill=colour, width=int(rng.integers(1, 4)))
    img = np.asarray(field, dtype=np.float32)
    n_blobs = int(rng.integers(1, 3 + scale // 48))
    centre = rng.uniform(0, 1, (n_blobs, 2)) * (width, height)
    sigma = rng.uniform(0.04, 0.15, n_blobs) * scale
    alpha = rng.uniform(0.3, 0.7, n_blobs)
    colours = rng.uniform(0, 255, (n_blobs, 3)).astype(np.float32)
    xx = np.arange(width, dtype=np.float32)
    yy = np.arange(height, dtype=np.float32)
    d2 = ((xx[None, None, :] - centre[:, 0, None, None]) ** 2
          + (yy[None, :, None] - centre[:, 1, None, None]) ** 2)
    weight = alpha[:, None, None] * np.exp(-d2 / (2 * sigma[:, None, None] ** 2))  # (k, H, W)
    for w, c in zip(weight, colours, strict=True):  # blobs stack in order
        img += w[..., None] * (c - img)
    return img


def _finish(rng: np.random.Generator, img: np.ndarray) -> Image.Image:
    """Add pixel noise and quantise to an RGB image."""
    noisy = img + rng.normal(0, rng.uniform(2, 10), img.shape).astype(np.float32)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), 'RGB')


def _paint(img: np.ndarray, alpha: np.ndarray, tex: np.ndarray, x0: int, y0: int) -> None:
    """Alpha-blend a square ``tex`` with coverage ``alpha`` into ``img`` at (x0, y0), clipped."""
    h, w = img.shape[:2]
    s = alpha.shape[0]
    ya, yb, xa, xb = max(y0, 0), min(y0 + s, h), max(x0, 0), min(x0 + s, w)
    if ya >= yb or xa >= xb:
        return
    a = alpha[ya - y0:yb - y0, xa - x0:xb - x0, None]
    t = tex[ya - y0:yb - y0, xa - x0:xb - x0]
    img[ya:yb, xa:xb] += a * (t - img[ya:yb, xa:xb])


def render_classification_image(rng: np.random.Generator, label: int | str,
                                size: int = CLS_IMAGE_SIZE,
                                colour: tuple[float, float, float] | None = None,
                                clutter: bool = True) -> Image.Image:
    """One ``size x size`` RGB image of one shape on a cluttered background.

    ``label`` is an index of :data:`DEMO_CLASSES` or a shape name (:data:`OOD_SHAPES` too).
    ``colour`` (RGB, 0-255) fixes the shape's base colour; by default it is random, and only
    the shape tells the classes apart. ``clutter=False`` leaves out the background's lines and
    blobs (a smooth colour field).
    """
    name = DEMO_CLASSES[label] if isinstance(label, int) else label
    img = _background(rng, size, size, clutter)
    side = int(rng.integers(int(size * 0.45), int(size * 0.94) + 1))
    angle, aspect = rng.uniform(0, 2 * math.pi), float(np.exp(rng.uniform(-0.15, 0.15)))
    alpha = shape_mask(name, side, angle, aspect)
    x0, y0 = (int(v) for v in rng.integers(0, size - side + 1, 2))
    local = img[y0:y0 + side, x0:x0 + side].reshape(-1, 3).mean(0)
    base = _random_colour(rng, avoid=local) if colour is None else np.asarray(colour, np.float32)
    _paint(img, alpha, _texture(rng, side, base), x0, y0)
    return _finish(rng, img)


@dataclass
class SceneObject:
    """One annotated object of a detection scene; box in 0-based inclusive pixel indices."""

    label: int
    box: tuple[int, int, int, int]  # c0, r0, c1, r1
    truncated: bool
    difficult: bool


def render_detection_scene(rng: np.random.Generator, width: int = DET_IMAGE_SIZE[0],
                           height: int = DET_IMAGE_SIZE[1],
                           max_objects: int = 6) -> tuple[Image.Image, list[SceneObject]]:
    """One cluttered scene with 1..``max_objects`` shapes and its annotations.

    Objects are placed first; those left mostly hidden by later objects or the border are
    removed before anything is painted, so every drawn object is annotated.
    """
    n = int(rng.integers(1, max_objects + 1))
    lo, hi = _DET_OBJECT_SIZE
    placed = []  # (label, alpha, x0, y0)
    for _ in range(n):
        label = int(rng.integers(len(DEMO_CLASSES)))
        side = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
        angle, aspect = rng.uniform(0, 2 * math.pi), float(np.exp(rng.uniform(-0.15, 0.15)))
        alpha = shape_mask(DEMO_CLASSES[label], side, angle, aspect)
        x0 = int(rng.integers(-side // 4, width - side + side // 4 + 1))
        y0 = int(rng.integers(-side // 4, height - side + side // 4 + 1))
        placed.append((label, alpha, x0, y0))

    def owners(objs):
        """(H, W) index of the topmost object covering each pixel (-1: background)."""
        own = np.full((height, width), -1, dtype=np.int32)
        for k, (_, alpha, x0, y0) in enumerate(objs):
            s = alpha.shape[0]
            ya, yb, xa, xb = max(y0, 0), min(y0 + s, height), max(x0, 0), min(x0 + s, width)
            if ya < yb and xa < xb:
                region = own[ya:yb, xa:xb]
                region[alpha[ya - y0:yb - y0, xa - x0:xb - x0] >= 0.5] = k
        return own

    def visible_counts(own, count):
        return np.bincount(own.ravel() + 1, minlength=count + 1)[1:]

    extent = np.array([(a >= 0.5).sum() for _, a, _, _ in placed])
    own = owners(placed)
    keep = visible_counts(own, len(placed)) >= _MIN_VISIBLE_FRACTION * extent
    keep &= extent > 0
    placed = [p for p, k in zip(placed, keep, strict=True) if k]
    extent = extent[keep]
    own = owners(placed)
    visible = visible_counts(own, len(placed))

    img = _background(rng, width, height)
    objects = []
    for k, (label, alpha, x0, y0) in enumerate(placed):
        s = alpha.shape[0]
        ya, yb, xa, xb = max(y0, 0), min(y0 + s, height), max(x0, 0), min(x0 + s, width)
        local = img[ya:yb, xa:xb].reshape(-1, 3).mean(0)
        _paint(img, alpha, _texture(rng, s, _random_colour(rng, avoid=local)), x0, y0)
        rows, cols = np.nonzero(own == k)
        box = (int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max()))
        in_image = int((alpha[ya - y0:yb - y0, xa - x0:xb - x0] >= 0.5).sum())
        small = min(box[2] - box[0], box[3] - box[1]) + 1 < _DIFFICULT_MIN_SIDE
        difficult = bool(visible[k] < _DIFFICULT_VISIBLE_FRACTION * extent[k] or small)
        objects.append(SceneObject(label, box, bool(in_image < extent[k]), difficult))
    return _finish(rng, img), objects


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------

def _voc_xml(year: str, filename: str, width: int, height: int,
             objects: list[SceneObject]) -> bytes:
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = f'VOC{year}'
    ET.SubElement(root, 'filename').text = filename
    source = ET.SubElement(root, 'source')
    ET.SubElement(source, 'database').text = 'mmtransfer synthetic demo'
    ET.SubElement(source, 'annotation').text = f'PASCAL VOC{year}'
    ET.SubElement(source, 'image').text = 'synthetic'
    size = ET.SubElement(root, 'size')
    for key, value in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, 'segmented').text = '0'
    for obj in objects:
        node = ET.SubElement(root, 'object')
        ET.SubElement(node, 'name').text = DEMO_CLASSES[obj.label]
        ET.SubElement(node, 'pose').text = 'Unspecified'
        ET.SubElement(node, 'truncated').text = str(int(obj.truncated))
        ET.SubElement(node, 'difficult').text = str(int(obj.difficult))
        bndbox = ET.SubElement(node, 'bndbox')
        c0, r0, c1, r1 = obj.box
        for key, value in (('xmin', c0 + 1), ('ymin', r0 + 1), ('xmax', c1 + 1),
                           ('ymax', r1 + 1)):
            ET.SubElement(bndbox, key).text = str(value)
    ET.indent(root, space='\t')
    return ET.tostring(root, encoding='utf-8') + b'\n'


def _coco_categories() -> list[dict]:
    return [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(DEMO_CLASSES)]


def _coco_annotation(ann_id: int, image_id: int, obj: SceneObject) -> dict:
    c0, r0, c1, r1 = obj.box
    w, h = c1 - c0 + 1, r1 - r0 + 1
    return dict(id=ann_id, image_id=image_id, category_id=obj.label + 1,
                bbox=[float(c0), float(r0), float(w), float(h)], area=float(w * h),
                iscrowd=int(obj.difficult), segmentation=[])


def voc_to_coco_image_id(voc_id: str) -> int:
    """COCO image id of a VOC scene id: '000123' -> 2007000123, '2012_000045' -> 2012000045."""
    if voc_id.startswith('2012_'):
        return 2012_000000 + int(voc_id[5:])
    return 2007_000000 + int(voc_id)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_classification(root: Path, seed: int, train_per_class: int, val_per_class: int,
                          ood_per_shape: int) -> dict:
    counts = {}
    for split, stream, shapes, per_class in (
            ('train', _CLS_TRAIN, DEMO_CLASSES, train_per_class),
            ('val', _CLS_VAL, DEMO_CLASSES, val_per_class),
            ('ood', _CLS_OOD, OOD_SHAPES, ood_per_shape)):
        for label, name in enumerate(shapes):
            folder = root / 'cls' / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                rng = np.random.default_rng([seed, stream, label, i])
                render_classification_image(rng, name).save(folder / f'{i:04d}.png')
        counts[f'cls_{split}'] = per_class * len(shapes)
    return counts


def _write_detection(root: Path, seed: int, trainval07: int, trainval12: int, test07: int,
                     size: tuple[int, int]) -> dict:
    width, height = size
    devkit = root / 'VOCdevkit'
    splits = (  # (name, year, stream, first index, count, VOC image set, COCO split)
        ('voc07_trainval', '2007', _VOC07, 1, trainval07, 'trainval', 'train2017'),
        ('voc07_test', '2007', _VOC07, trainval07 + 1, test07, 'test', 'val2017'),
        ('voc12_trainval', '2012', _VOC12, 1, trainval12, 'trainval', 'train2017'),
    )
    coco = {split: dict(images=[], annotations=[]) for split in ('train2017', 'val2017')}
    counts = {}
    ann_id = 0
    for name, year, stream, first, count, image_set, coco_split in splits:
        voc_root = devkit / f'VOC{year}'
        ids, n_objects, n_difficult = [], 0, 0
        for index in range(first, first + count):
            voc_id = f'{index:06d}' if year == '2007' else f'2012_{index:06d}'
            rng = np.random.default_rng([seed, stream, index])
            image, objects = render_detection_scene(rng, width, height)
            buf = io.BytesIO()
            image.save(buf, format='JPEG', quality=92)
            jpeg = buf.getvalue()
            _write(voc_root / 'JPEGImages' / f'{voc_id}.jpg', jpeg)
            _write(voc_root / 'Annotations' / f'{voc_id}.xml',
                   _voc_xml(year, f'{voc_id}.jpg', width, height, objects))
            image_id = voc_to_coco_image_id(voc_id)
            file_name = f'{image_id:012d}.jpg'
            _write(root / 'coco' / coco_split / file_name, jpeg)
            coco[coco_split]['images'].append(
                dict(id=image_id, file_name=file_name, width=width, height=height))
            for obj in objects:
                ann_id += 1
                coco[coco_split]['annotations'].append(_coco_annotation(ann_id, image_id, obj))
            ids.append(voc_id)
            n_objects += len(objects)
            n_difficult += sum(obj.difficult for obj in objects)
        image_sets = voc_root / 'ImageSets' / 'Main'
        image_sets.mkdir(parents=True, exist_ok=True)
        (image_sets / f'{image_set}.txt').write_text(''.join(f'{i}\n' for i in ids))
        counts[name] = dict(images=count, objects=n_objects, difficult=n_difficult)
    for split, content in coco.items():
        payload = dict(info=dict(description='mmtransfer synthetic demo (same scenes as VOCdevkit)',
                                 version=str(FORMAT_VERSION), year=2017),
                       licenses=[], categories=_coco_categories(), **content)
        _write(root / 'coco' / 'annotations' / f'instances_{split}.json',
               json.dumps(payload).encode())
    return counts


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------

def _read_marker(out_dir: Path) -> dict | None:
    try:
        marker = json.loads((out_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get('format') != FORMAT:
        return None
    return marker


def is_complete(out_dir: str | os.PathLike, seed: int = 0, **sizes) -> bool:
    """Whether ``out_dir`` holds a finished demo tree made with ``seed`` and ``sizes``
    (keyword arguments of :func:`make_demo_data`; defaults when left out)."""
    out_dir = Path(out_dir)
    marker = _read_marker(out_dir)
    if marker is None or marker.get('version') != FORMAT_VERSION:
        return False
    if marker.get('seed') != seed or marker.get('params') != _params(**sizes):
        return False
    return all((out_dir / p).exists() for p in _REQUIRED)


_REQUIRED = ('cls/train', 'cls/val', 'cls/ood', 'VOCdevkit/VOC2007/ImageSets/Main/test.txt',
             'VOCdevkit/VOC2012/ImageSets/Main/trainval.txt',
             'coco/annotations/instances_train2017.json',
             'coco/annotations/instances_val2017.json')


def _params(cls_train_per_class: int = 800, cls_val_per_class: int = 50,
            cls_ood_per_shape: int = 50, det_trainval07: int = 300, det_trainval12: int = 200,
            det_test07: int = 150, det_size: tuple[int, int] = DET_IMAGE_SIZE) -> dict:
    return dict(cls_train_per_class=int(cls_train_per_class),
                cls_val_per_class=int(cls_val_per_class),
                cls_ood_per_shape=int(cls_ood_per_shape), det_trainval07=int(det_trainval07),
                det_trainval12=int(det_trainval12), det_test07=int(det_test07),
                det_size=[int(det_size[0]), int(det_size[1])])


def default_sizes() -> dict:
    """The keyword arguments of :func:`make_demo_data` that set sizes, with their defaults."""
    return _params()


def _check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if out_dir.is_dir() and not out_dir.is_symlink():
        if _read_marker(out_dir) is not None or not any(out_dir.iterdir()):
            return
    raise DemoDataError(f'refusing to overwrite {out_dir}: it exists and is not a demo-data '
                        f'directory (no {MARKER})')


def make_demo_data(out_dir: str | os.PathLike, seed: int = 0, *, cls_train_per_class: int = 800,
                   cls_val_per_class: int = 50, cls_ood_per_shape: int = 50,
                   det_trainval07: int = 300, det_trainval12: int = 200, det_test07: int = 150,
                   det_size: tuple[int, int] = DET_IMAGE_SIZE) -> dict:
    """Generate the demo tree at ``out_dir`` (replacing an older demo tree) and return counts.

    The tree is built in a hidden temporary sibling and renamed into place at the end, so an
    interrupted run never leaves a partial ``out_dir``. A non-empty ``out_dir`` that is not a demo
    tree raises :class:`DemoDataError`. ``det_size`` is (width, height) of the scenes.
    """
    out_dir = Path(out_dir).absolute()
    params = _params(cls_train_per_class, cls_val_per_class, cls_ood_per_shape, det_trainval07,
                     det_trainval12, det_test07, det_size)
    if min(params['det_size']) < 32 or min(v for k, v in params.items() if k != 'det_size') < 1:
        raise DemoDataError(f'demo sizes must be positive (scenes >= 32 px): {params}')
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.tmp-', dir=out_dir.parent))
    try:
        counts = _write_classification(tmp, seed, cls_train_per_class, cls_val_per_class,
                                       cls_ood_per_shape)
        counts.update(_write_detection(tmp, seed, det_trainval07, det_trainval12, det_test07,
                                       tuple(params['det_size'])))
        summary = dict(classes=list(DEMO_CLASSES), **counts)
        marker = dict(format=FORMAT, version=FORMAT_VERSION, seed=int(seed), params=params,
                      summary=summary)
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + '\n')
        _check_replaceable(out_dir)  # it may have appeared meanwhile
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.old-', dir=out_dir.parent))
            os.replace(out_dir, old / 'tree')
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dict(out_dir=str(out_dir), seed=int(seed), seconds=time.perf_counter() - start,
                **summary)


def ensure_demo_data(out_dir: str | os.PathLike, seed: int = 0, **sizes) -> Path:
    """Return ``out_dir`` after generating it, unless it already holds a complete demo tree with
    the same ``seed`` and ``sizes`` (keyword arguments of :func:`make_demo_data`)."""
    out_dir = Path(out_dir)
    if not is_complete(out_dir, seed, **sizes):
        make_demo_data(out_dir, seed, **sizes)
    return out_dir
