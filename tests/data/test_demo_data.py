"""The synthetic demo data: determinism, layout, and loading by mmdet's own datasets/metrics."""
import copy
import hashlib
import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmtransfer.data import demo
from mmtransfer.data.demo import (
    DEMO_CLASSES,
    MARKER,
    OOD_SHAPES,
    DemoDataError,
    ensure_demo_data,
    is_complete,
    make_demo_data,
    shape_mask,
    voc_to_coco_image_id,
)

REPO = Path(__file__).resolve().parents[2]
SIZES = dict(cls_train_per_class=3, cls_val_per_class=2, cls_ood_per_shape=2, det_trainval07=6,
             det_trainval12=4, det_test07=10)


@pytest.fixture(scope='module')
def trees(tmp_path_factory):
    """Three small trees: seed 0 twice and seed 1 once."""
    base = tmp_path_factory.mktemp('demo')
    out = {}
    for name, seed in (('a', 0), ('b', 0), ('c', 1)):
        out[name] = (make_demo_data(base / name, seed, **SIZES), base / name)
    return out


@pytest.fixture(scope='module')
def root(trees):
    return trees['a'][1]


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def _voc_objects(xml_path: Path) -> list[dict]:
    """Objects of one VOC xml, parsed independently of mmdet."""
    objs = []
    for node in ET.parse(xml_path).getroot().findall('object'):
        box = [int(node.find(f'bndbox/{k}').text) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
        objs.append(dict(name=node.find('name').text, box=box,
                         difficult=int(node.find('difficult').text)))
    return objs


def _image_set(root: Path, year: str, name: str) -> list[str]:
    path = root / 'VOCdevkit' / f'VOC{year}' / 'ImageSets' / 'Main' / f'{name}.txt'
    return path.read_text().split()


# ------------------------------------------------------------------------------ shapes


def test_classes_are_the_agreed_ten():
    assert DEMO_CLASSES == ('circle', 'square', 'triangle', 'star', 'cross', 'ring', 'hexagon',
                            'diamond', 'crescent', 'heart')


@pytest.mark.parametrize('name, area', [
    ('circle', math.pi * 0.95 ** 2 / 4),           # disc of radius 0.95 in the [-1, 1] square
    ('square', 0.72 ** 2),                          # half side 0.72
    ('ring', math.pi * (0.95 ** 2 - 0.55 ** 2) / 4),
    ('diamond', 2 * 0.55 * 0.98 / 4),               # rhombus with diagonals 1.1 and 1.96
])
def test_shape_mask_area_matches_geometry(name, area):
    mask = shape_mask(name, 64)
    assert mask.shape == (64, 64) and mask.min() >= 0 and mask.max() <= 1
    assert mask.mean() == pytest.approx(area, abs=0.01)


def test_shapes_are_pairwise_distinct():
    masks = {name: shape_mask(name, 48) >= 0.5 for name in DEMO_CLASSES}
    for i, a in enumerate(DEMO_CLASSES):
        for b in DEMO_CLASSES[i + 1:]:
            iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
            assert iou < 0.85, (a, b, iou)


def test_ood_shapes_are_no_class():
    # Out-of-distribution shapes must not be a class in disguise: each differs from every class
    # (IoU below the bound the classes keep between themselves) and from each other.
    masks = {name: shape_mask(name, 48) >= 0.5 for name in DEMO_CLASSES + OOD_SHAPES}
    assert not set(OOD_SHAPES) & set(DEMO_CLASSES)
    for a in OOD_SHAPES:
        assert masks[a].mean() > 0.15, a  # a real shape, not a sliver
        for b in DEMO_CLASSES + OOD_SHAPES:
            if a != b:
                iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
                assert iou < 0.85, (a, b, iou)


def test_rotation_keeps_area_and_moves_pixels():
    upright, turned = shape_mask('triangle', 64), shape_mask('triangle', 64, angle=math.pi)
    assert turned.mean() == pytest.approx(upright.mean(), rel=0.02)
    assert np.abs(turned - upright).mean() > 0.1


def test_class_changes_only_the_shape():
    # Colour, texture, pose and clutter come from the same draws whatever the class, so a
    # classifier must use shape: two classes from one generator state differ only on the object.
    a = np.asarray(demo.render_classification_image(np.random.default_rng(7), 0), dtype=int)
    b = np.asarray(demo.render_classification_image(np.random.default_rng(7), 3), dtype=int)
    differs = np.abs(a - b).sum(-1) > 0
    assert 0.02 < differs.mean() < 0.7


def test_rejects_bad_sizes(tmp_path):
    with pytest.raises(DemoDataError, match='sizes'):
        make_demo_data(tmp_path / 'x', 0, det_size=(16, 16))
    with pytest.raises(DemoDataError, match='sizes'):
        make_demo_data(tmp_path / 'x', 0, cls_train_per_class=0)
    assert not (tmp_path / 'x').exists()


# ------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_files(trees):
    assert _hashes(trees['a'][1]) == _hashes(trees['b'][1])


def test_different_seed_gives_different_images(trees):
    a, c = _hashes(trees['a'][1]), _hashes(trees['c'][1])
    images = [k for k in a if k.endswith(('.png', '.jpg'))]
    assert images and set(a) == set(c)
    assert sum(a[k] != c[k] for k in images) == len(images)


# ------------------------------------------------------------------------------ layout


def test_classification_layout(root, trees):
    for split, per_class in (('train', 3), ('val', 2)):
        assert sorted(p.name for p in (root / 'cls' / split).iterdir()) == sorted(DEMO_CLASSES)
        for name in DEMO_CLASSES:
            files = sorted((root / 'cls' / split / name).glob('*.png'))
            assert len(files) == per_class
            for f in files:
                with Image.open(f) as im:
                    assert im.size == (64, 64) and im.mode == 'RGB'
    assert sorted(p.name for p in (root / 'cls' / 'ood').iterdir()) == sorted(OOD_SHAPES)
    for name in OOD_SHAPES:
        files = sorted((root / 'cls' / 'ood' / name).glob('*.png'))
        assert len(files) == 2
        with Image.open(files[0]) as im:
            assert im.size == (64, 64) and im.mode == 'RGB'
    summary = trees['a'][0]
    assert summary['cls_train'] == 30 and summary['cls_val'] == 20 and summary['cls_ood'] == 8


def test_detection_layout(root):
    tv07, te07 = _image_set(root, '2007', 'trainval'), _image_set(root, '2007', 'test')
    tv12 = _image_set(root, '2012', 'trainval')
    assert (len(tv07), len(te07), len(tv12)) == (6, 10, 4)
    assert not set(tv07) & set(te07)
    n_objects = []
    for year, ids in (('2007', tv07 + te07), ('2012', tv12)):
        for voc_id in ids:
            voc_root = root / 'VOCdevkit' / f'VOC{year}'
            with Image.open(voc_root / 'JPEGImages' / f'{voc_id}.jpg') as im:
                assert min(im.size) >= 128 and im.mode == 'RGB'
                width, height = im.size
            objs = _voc_objects(voc_root / 'Annotations' / f'{voc_id}.xml')
            n_objects.append(len(objs))
            for obj in objs:
                xmin, ymin, xmax, ymax = obj['box']
                assert 1 <= xmin <= xmax <= width and 1 <= ymin <= ymax <= height
                assert obj['name'] in DEMO_CLASSES
    assert 1 <= max(n_objects) <= 6 and sum(n_objects) >= len(n_objects)


def test_default_scenes_have_small_occluded_and_difficult_objects():
    rng = np.random.default_rng(123)
    objs = [o for _ in range(40) for o in demo.render_detection_scene(rng)[1]]
    sides = np.array([max(o.box[2] - o.box[0], o.box[3] - o.box[1]) + 1 for o in objs])
    assert sides.min() < 32 and sides.max() > 40      # small and larger objects
    assert any(o.difficult for o in objs) and not all(o.difficult for o in objs)
    assert any(o.truncated for o in objs)


# ------------------------------------------------------------------------------ mmdet loaders


@pytest.fixture(scope='module')
def mmdet_scope():
    from mmdet.utils import register_all_modules
    register_all_modules()


def _voc_dataset(root: Path):
    from mmdet.datasets import VOCDataset
    return VOCDataset(data_root=str(root / 'VOCdevkit'),
                      ann_file='VOC2007/ImageSets/Main/test.txt',
                      data_prefix=dict(sub_data_root='VOC2007/'),
                      metainfo=dict(classes=DEMO_CLASSES), pipeline=[], test_mode=True)


def _coco_dataset(root: Path):
    from mmdet.datasets import CocoDataset
    return CocoDataset(data_root=str(root / 'coco'), ann_file='annotations/instances_val2017.json',
                       data_prefix=dict(img='val2017/'), metainfo=dict(classes=DEMO_CLASSES),
                       pipeline=[], test_mode=True)


def test_mmdet_voc_dataset_loads_it(root, mmdet_scope):
    dataset = _voc_dataset(root)
    ids = _image_set(root, '2007', 'test')
    assert len(dataset) == len(ids)
    for voc_id in ids:
        info = next(d for d in (dataset.get_data_info(i) for i in range(len(dataset)))
                    if d['img_id'] == voc_id)
        expected = _voc_objects(root / 'VOCdevkit/VOC2007/Annotations' / f'{voc_id}.xml')
        assert len(info['instances']) == len(expected)
        for inst, obj in zip(info['instances'], expected, strict=True):
            assert inst['bbox_label'] == DEMO_CLASSES.index(obj['name'])
            assert inst['bbox'] == [v - 1 for v in obj['box']]
            assert inst['ignore_flag'] == obj['difficult']
        assert Path(info['img_path']).is_file()


def test_mmdet_coco_dataset_loads_it(root, mmdet_scope):
    dataset = _coco_dataset(root)
    ann = json.loads((root / 'coco/annotations/instances_val2017.json').read_text())
    assert len(dataset) == len(ann['images']) == 10
    n_instances = sum(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset)))
    assert n_instances == len(ann['annotations'])
    n_ignored = sum(inst['ignore_flag'] for i in range(len(dataset))
                    for inst in dataset.get_data_info(i)['instances'])
    assert n_ignored == sum(a['iscrowd'] for a in ann['annotations'])
    assert [c['name'] for c in sorted(ann['categories'], key=lambda c: c['id'])] == list(
        DEMO_CLASSES)
    assert [c['id'] for c in ann['categories']] == list(range(1, 11))


def test_voc_and_coco_hold_the_same_scenes(root):
    coco = {}
    for split in ('train2017', 'val2017'):
        ann = json.loads((root / 'coco/annotations' / f'instances_{split}.json').read_text())
        names = {c['id']: c['name'] for c in ann['categories']}
        for img in ann['images']:
            coco[img['id']] = dict(split=split, file=img['file_name'], objs=[])
        for a in ann['annotations']:
            coco[a['image_id']]['objs'].append((names[a['category_id']], a['bbox'], a['iscrowd']))
    expected_split = {('2007', 'trainval'): 'train2017', ('2012', 'trainval'): 'train2017',
                      ('2007', 'test'): 'val2017'}
    n_scenes = 0
    for (year, image_set), split in expected_split.items():
        for voc_id in _image_set(root, year, image_set):
            entry = coco[voc_to_coco_image_id(voc_id)]
            assert entry['split'] == split
            voc_jpg = root / 'VOCdevkit' / f'VOC{year}' / 'JPEGImages' / f'{voc_id}.jpg'
            assert (root / 'coco' / split / entry['file']).read_bytes() == voc_jpg.read_bytes()
            voc = [(o['name'], [float(o['box'][0] - 1), float(o['box'][1] - 1),
                                float(o['box'][2] - o['box'][0] + 1),
                                float(o['box'][3] - o['box'][1] + 1)], o['difficult'])
                   for o in _voc_objects(root / 'VOCdevkit' / f'VOC{year}' / 'Annotations'
                                         / f'{voc_id}.xml')]
            assert sorted(voc) == sorted(entry['objs'])
            n_scenes += 1
    assert n_scenes == len(coco) == 20


def test_voc_to_coco_image_id():
    assert voc_to_coco_image_id('000123') == 2007000123
    assert voc_to_coco_image_id('2012_000045') == 2012000045


# ------------------------------------------------------------------------------ metrics


def _coco_eval(ann_file: Path, detections: list[dict]) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    gt = COCO(str(ann_file))
    ev = COCOeval(gt, gt.loadRes(copy.deepcopy(detections)), 'bbox')
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


def test_cocoeval_ground_truth_as_detections(root):
    ann_file = root / 'coco/annotations/instances_val2017.json'
    anns = json.loads(ann_file.read_text())['annotations']
    dets = [dict(image_id=a['image_id'], category_id=a['category_id'], bbox=a['bbox'], score=1.0)
            for a in anns]
    assert _coco_eval(ann_file, dets)[0] == pytest.approx(1.0)

    def shifted(frac):
        return [dict(d, bbox=[d['bbox'][0] + frac * d['bbox'][2], *d['bbox'][1:]]) for d in dets]

    # Shifting a box by half its width gives IoU (w/2)/(3w/2) = 1/3 < 0.5 with its own object
    # (a rare overlapping neighbour of the same class may still match).
    stats = _coco_eval(ann_file, shifted(0.5))
    assert stats[0] < 0.02 and stats[1] < 0.02
    # By a fifth: IoU 0.8/1.2 = 2/3, a hit at IoU thresholds 0.50..0.65 and a miss at 0.75.
    stats = _coco_eval(ann_file, shifted(0.2))
    assert stats[1] == pytest.approx(1.0) and stats[2] == pytest.approx(0.0)
    assert stats[0] == pytest.approx(0.4, abs=0.02)  # 4 of the 10 thresholds


def test_voc_metric_ground_truth_as_predictions(root, mmdet_scope):
    from mmdet.evaluation import VOCMetric
    dataset = _voc_dataset(root)
    metric = VOCMetric(metric='mAP', eval_mode='11points')
    metric.dataset_meta = dataset.metainfo
    samples = []
    for i in range(len(dataset)):
        insts = dataset.get_data_info(i)['instances']

        def pick(ignored, insts=insts):
            chosen = [x for x in insts if x['ignore_flag'] == ignored]
            return dict(bboxes=torch.tensor([x['bbox'] for x in chosen],
                                            dtype=torch.float32).reshape(-1, 4),
                        labels=torch.tensor([x['bbox_label'] for x in chosen],
                                            dtype=torch.long))

        gt = pick(0)
        samples.append(dict(gt_instances=gt, ignored_instances=pick(1),
                            pred_instances=dict(gt, scores=torch.ones(len(gt['labels'])))))
    metric.process({}, samples)
    assert metric.evaluate(len(samples))['pascal_voc/mAP'] == pytest.approx(1.0)


# ------------------------------------------------------------------------------ atomicity


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, '_write_detection', boom)
    with pytest.raises(KeyboardInterrupt):
        make_demo_data(tmp_path / 'out', 0, **SIZES)
    assert list(tmp_path.iterdir()) == []


def test_failed_rebuild_keeps_the_old_tree(tmp_path, monkeypatch):
    out = make_demo_data(tmp_path / 'out', 0, **SIZES)['out_dir']
    before = _hashes(Path(out))
    monkeypatch.setattr(demo, '_write_detection', lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        make_demo_data(out, 1, **SIZES)
    assert _hashes(Path(out)) == before
    assert [p.name for p in tmp_path.iterdir()] == ['out']


def test_refuses_non_demo_directory(tmp_path):
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'precious.txt').write_text('keep me')
    (tmp_path / 'mine' / MARKER).write_text('not json')  # a broken marker does not count
    with pytest.raises(DemoDataError, match='refusing to overwrite .*mine'):
        make_demo_data(tmp_path / 'mine', 0, **SIZES)
    assert (tmp_path / 'mine' / 'precious.txt').read_text() == 'keep me'


def test_completeness_check(root):
    assert is_complete(root, 0, **SIZES)
    assert not is_complete(root, 1, **SIZES)
    assert not is_complete(root, 0)  # default sizes differ
    assert not is_complete(root / 'cls', 0, **SIZES)


def test_ensure_generates_only_when_needed(tmp_path, monkeypatch):
    out = ensure_demo_data(tmp_path / 'd', 0, **SIZES)
    assert is_complete(out, 0, **SIZES)
    before = _hashes(out)
    monkeypatch.setattr(demo, 'make_demo_data', lambda *a, **k: pytest.fail('regenerated'))
    assert ensure_demo_data(out, 0, **SIZES) == out
    assert _hashes(out) == before
    monkeypatch.undo()
    (out / 'coco/annotations/instances_val2017.json').unlink()  # damaged tree: rebuilt
    ensure_demo_data(out, 0, **SIZES)
    assert _hashes(out) == before


# ------------------------------------------------------------------------------ CLI


def _cli(*args):
    return subprocess.run([sys.executable, str(REPO / 'tools' / 'make_demo_data.py'), *args],
                          capture_output=True, text=True, cwd=REPO)


@pytest.mark.slow
def test_cli(tmp_path):
    small = ['--cls-train-per-class', '1', '--cls-val-per-class', '1', '--cls-ood-per-shape', '1',
             '--det-trainval07', '2', '--det-trainval12', '1', '--det-test07', '2']
    out = tmp_path / 'demo'
    proc = _cli('--out', str(out), '--seed', '3', *small)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)['voc07_test']['images'] == 2
    assert json.loads((out / MARKER).read_text())['seed'] == 3
    proc = _cli('--out', str(out), '--seed', '3', *small)
    assert proc.returncode == 0 and 'already complete' in proc.stdout

    (tmp_path / 'other').mkdir()
    (tmp_path / 'other' / 'x').write_text('x')
    proc = _cli('--out', str(tmp_path / 'other'), *small)
    assert proc.returncode == 2
    assert proc.stderr.strip().count('\n') == 0 and 'other' in proc.stderr


@pytest.mark.parametrize('argv, needle', [
    (['--seed', 'x'], "argument --seed: invalid int value: 'x'"),
    (['--out', 'file/demo'], 'argument --out: file/demo: '),
])
def test_cli_bad_arguments_are_one_line_without_the_usage(tmp_path, argv, needle):
    (tmp_path / 'file').write_text('x')
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'make_demo_data.py'), *argv],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count('\n') == 1, proc.stderr
    assert proc.stderr.startswith('error: ') and needle in proc.stderr
