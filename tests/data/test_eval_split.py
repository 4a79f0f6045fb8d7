"""The evaluation split of each data layout (mmtransfer.data.eval_split), the OOD folder reader,
the synthetic data of `make cifar-demo`, and tools/evaluate.py + tools/analyze_embeddings.py on
CIFAR and TinyImageNet layouts with no size flag."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmtransfer.data.cifar import read_cifar
from mmtransfer.data.device_augment import CIFAR_MEAN, CIFAR_STD
from mmtransfer.data.eval_split import IMAGENET_MEAN, open_eval_split
from mmtransfer.data.imagefolder import DataError, ImageFilesDataset
from mmtransfer.data.synthetic import (
    COLOURS,
    write_cifar,
    write_cifar_demo,
    write_ood_images,
    write_tinyimagenet,
)


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('cifar')
    write_cifar(root, 'cifar10', train_per_class=2, test_per_class=3, seed=0)
    return root


def test_cifar_root_gives_the_test_batch_at_32_px_with_alignmixup_statistics(cifar_root):
    for root in (cifar_root, cifar_root / 'cifar-10-batches-py'):  # the holder or the folder
        split = open_eval_split(str(root))
        images, labels, classes = read_cifar(str(root), 'test')
        assert (split.layout, split.size, split.ood_resize) == ('cifar', 32, 32)
        assert (split.mean, split.std) == (CIFAR_MEAN, CIFAR_STD)
        assert torch.equal(split.labels, labels) and split.classes == list(classes)
        item = split.dataset[4]
        assert item['inputs'].dtype == torch.uint8 and torch.equal(item['inputs'], images[4])
        assert item['labels'] == int(labels[4]) and len(split.dataset) == 30


def test_tinyimagenet_root_gives_val_at_64_px(tmp_path):
    root = write_tinyimagenet(tmp_path, classes=3, train_per_class=1, val_per_class=2)
    for given in (root, tmp_path):
        split = open_eval_split(str(given))
        assert (split.layout, split.size, split.path) == ('tinyimagenet', 64, str(root))
        assert split.dataset[0]['inputs'].shape == (3, 64, 64) and len(split.dataset) == 6
        assert sorted(split.labels.tolist()) == [0, 0, 1, 1, 2, 2]
        assert split.mean == CIFAR_MEAN


def test_imagefolder_root_keeps_its_size_flags_and_imagenet_statistics(demo_root):
    split = open_eval_split(str(demo_root / 'cls'), size=48, resize=56)
    assert (split.layout, split.size, split.ood_resize) == ('imagefolder', 48, 56)
    assert split.mean == IMAGENET_MEAN and split.path == str(demo_root / 'cls' / 'val')
    assert split.dataset[0]['inputs'].shape == (3, 48, 48)
    assert open_eval_split(str(demo_root / 'cls')).size == 224


@pytest.mark.parametrize('size, resize', [(64, None), (None, 36)])
def test_a_size_flag_on_a_fixed_size_layout_is_refused(cifar_root, size, resize):
    with pytest.raises(ValueError, match='CIFAR images are evaluated at their own 32 px'):
        open_eval_split(str(cifar_root), size=size, resize=resize)
    assert open_eval_split(str(cifar_root), size=32, resize=32).size == 32


def test_missing_root_and_missing_file_are_named(tmp_path, cifar_root):
    with pytest.raises(DataError, match=f'{tmp_path / "nope"}: data root not found'):
        open_eval_split(str(tmp_path / 'nope'))
    broken = tmp_path / 'broken' / 'cifar-10-batches-py'
    broken.mkdir(parents=True)
    for name in ('batches.meta', 'data_batch_1'):
        (broken / name).write_bytes((cifar_root / 'cifar-10-batches-py' / name).read_bytes())
    with pytest.raises(DataError, match=f'{broken / "test_batch"}: file not found'):
        open_eval_split(str(broken.parent))


def test_image_files_reads_flat_folders_and_trees_in_path_order(tmp_path):
    for rel, value in (('b.png', 10), ('a.jpg', 20), ('sub/c.PNG', 30), ('notes.txt', None)):
        path = tmp_path / 'ood' / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if value is None:
            path.write_text('not an image')
        else:
            Image.fromarray(np.full((40, 50, 3), value, np.uint8)).save(path)
    data = ImageFilesDataset(str(tmp_path / 'ood'), size=32, resize=32)
    assert [p.rsplit('/', 1)[-1] for p in data.paths] == ['a.jpg', 'b.png', 'c.PNG']
    assert [int(data[i]['inputs'].float().mean().round()) for i in range(3)] == [20, 10, 30]
    assert data[0]['inputs'].shape == (3, 32, 32) and data[0]['labels'] == -1
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    with pytest.raises(DataError, match='no images'):
        ImageFilesDataset(str(tmp_path / 'empty'), size=32)


def test_easy_synthetic_cifar10_paints_class_k_in_colour_family_k(tmp_path):
    folder = write_cifar(tmp_path, 'cifar10', train_per_class=1, test_per_class=4, easy=True)
    images, labels, classes = read_cifar(str(folder), 'test')
    families = list(COLOURS)
    assert classes == tuple(f'{families[k]}_{c}' for k, c in
                            enumerate(('circle', 'square', 'triangle', 'star', 'cross', 'ring',
                                       'hexagon', 'diamond', 'crescent', 'heart')))
    # A property of the colour cue: the pixel nearest to the class colour is closer in its own
    # class's images than in any other class's (averaged over the class's images).
    colours = torch.tensor(list(COLOURS.values()), dtype=torch.float32)      # [10, 3]
    pixels = images.float().permute(0, 2, 3, 1).reshape(len(images), -1, 1, 3)
    nearest = (pixels - colours).norm(dim=-1).min(1).values                  # [N, 10]
    per_class = torch.stack([nearest[labels == k].mean(0) for k in range(10)])
    assert torch.equal(per_class.argmin(1), torch.arange(10))
    with pytest.raises(ValueError, match='easy=True is for cifar10'):
        write_cifar(tmp_path / 'x', 'cifar100', easy=True)


def test_cifar_demo_data_is_written_once_per_setting(tmp_path):
    sizes = dict(train_per_class=1, test_per_class=2, ood_per_shape=3)
    first = write_cifar_demo(tmp_path, seed=0, **sizes)
    assert first['written'] and len(list((tmp_path / 'ood').iterdir())) == 4 * 3
    stamp = (tmp_path / 'cifar-10-batches-py' / 'test_batch').stat().st_mtime_ns
    assert not write_cifar_demo(tmp_path, seed=0, **sizes)['written']
    assert (tmp_path / 'cifar-10-batches-py' / 'test_batch').stat().st_mtime_ns == stamp
    assert write_cifar_demo(tmp_path, seed=1, **sizes)['written']
    assert write_cifar_demo(tmp_path, seed=1, force=True, **sizes)['written']


def test_ood_images_are_flat_and_deterministic(tmp_path):
    a = write_ood_images(tmp_path / 'a', size=32, per_shape=2, seed=5)
    b = write_ood_images(tmp_path / 'b', size=32, per_shape=2, seed=5)
    names = sorted(p.name for p in a.iterdir())
    assert len(names) == 8 and all(p.is_file() for p in a.iterdir())
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    with Image.open(a / names[0]) as img:
        assert img.size == (32, 32)


# ------------------------------------------------------------------- the tools, no size flag


@pytest.fixture(scope='module')
def cifar_run(tmp_path_factory):
    """A PreActResNet-18 (width 8) of configs/demo/cifar10_synthetic.py after 2 steps on a
    small synthetic CIFAR-10, and that data with its OOD folder."""
    from pretrain.train import main

    data = tmp_path_factory.mktemp('cifar_data')
    write_cifar_demo(data, seed=0, train_per_class=4, test_per_class=3, ood_per_shape=2)
    work = tmp_path_factory.mktemp('cifar_run')
    assert main(['--method', 'dense_distill', '--config', 'configs/demo/cifar10_synthetic.py',
                 '--data-root', str(data), '--max-iters', '2', '--work-dir', str(work),
                 '--cfg-options', 'train_dataloader.batch_size=8']) == 0
    return data, work / 'iter_2.pth'


@pytest.mark.slow
def test_evaluate_and_analyze_need_only_the_data_paths(cifar_run, tmp_path):
    from tools.analyze_embeddings import main as analyze
    from tools.evaluate import main as evaluate

    data, checkpoint = cifar_run
    assert evaluate([str(checkpoint), '--data-root', str(data), '--ood-root', str(data / 'ood'),
                     '--pgd-iters', '1', '--workers', '0', '--work-dir', str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / 'eval_metrics.json').read_text())
    assert (metrics['layout'], metrics['size'], metrics['arch']) == ('cifar', 32, 'preactresnet18')
    assert metrics['images'] == 30 and metrics['ood_images'] == 8
    for key in ('ood_auroc', 'ood_aupr', 'ood_detection_accuracy'):
        assert 0 <= metrics[key] <= 100
    assert analyze([str(checkpoint), '--data-root', str(data), '--workers', '0',
                    '--out-dir', str(tmp_path / 'emb')]) == 0
    emb = json.loads((tmp_path / 'emb' / 'embeddings_metrics.json').read_text())
    assert (emb['layout'], emb['size'], emb['num_images']) == ('cifar', 32, 30)


@pytest.mark.slow
def test_evaluate_normalises_as_the_recipe_trained(cifar_run, tmp_path, monkeypatch):
    """The classifier sees (x - CIFAR mean) / CIFAR std: evaluating with ImageNet statistics
    instead changes the logits, so the statistics in use are the recipe's, not a default."""
    import tools.evaluate as evaluate
    from mmtransfer.data import MultiViewDataPreprocessor

    seen = []
    original = MultiViewDataPreprocessor.__init__

    def spy(self, mean=IMAGENET_MEAN, std=(58.395, 57.12, 57.375), **kwargs):
        seen.append((tuple(mean), tuple(std)))
        original(self, mean, std, **kwargs)

    monkeypatch.setattr(MultiViewDataPreprocessor, '__init__', spy)
    data, checkpoint = cifar_run
    assert evaluate.main([str(checkpoint), '--data-root', str(data), '--attacks', '',
                          '--workers', '0', '--work-dir', str(tmp_path)]) == 0
    assert seen == [(CIFAR_MEAN, CIFAR_STD)]
