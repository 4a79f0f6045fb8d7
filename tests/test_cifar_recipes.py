"""configs/cifar/: the paper's CIFAR and TinyImageNet recipes (../shared/paper-figures.md), with
the method of ``--method`` set on them, and one real Runner step of each network on data written
in the CIFAR pickle and TinyImageNet release layouts."""
from __future__ import annotations

import json

import pytest

from pretrain.train import build_config, main, parse_args
from tests.conftest import REPO

CIFAR = {'cifar10_preactresnet18': ('preactresnet18', 10, None),
         'cifar100_preactresnet18': ('preactresnet18', 100, None),
         'cifar10_wrn16_8': ('wrn16_8', 10, 2),
         'cifar100_wrn16_8': ('wrn16_8', 100, 2)}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    from mmtransfer.data.synthetic import write_cifar, write_tinyimagenet

    root = tmp_path_factory.mktemp('small')
    return dict(cifar10=write_cifar(root / 'c10', 'cifar10', 4, 2),
                cifar100=write_cifar(root / 'c100', 'cifar100', 1, 1),
                tiny=write_tinyimagenet(root / 'tin', classes=4, train_per_class=4,
                                        val_per_class=2))


def _config(name, method, data_root):
    return build_config(parse_args(['--method', method, '--config',
                                    f'{REPO}/configs/cifar/{name}.py', '--data-root',
                                    str(data_root)]))


@pytest.mark.parametrize('name', sorted(CIFAR))
def test_the_cifar_recipes_are_the_papers(name, data):
    arch, classes, dense_pool = CIFAR[name]
    cfg = _config(name, 'dense_distill', data[name.split('_')[0]])
    assert (cfg.model.arch, cfg.model.num_classes, cfg.model.mix.dense_pool) == \
        (arch, classes, dense_pool)
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.1, momentum=0.9,
                                               weight_decay=1e-4)
    assert cfg.param_scheduler.milestones == [500, 1000, 1500] and cfg.train_cfg.max_epochs == 2000
    assert cfg.train_dataloader.batch_size == 128
    assert (cfg.model.mix.n, cfg.model.mix.alpha, cfg.model.mix.prob, cfg.model.mix.gamma) == \
        (1000, (0.5, 2.0), 0.5, 0.5)
    assert cfg.train_dataloader.dataset.type == 'CifarDataset'
    assert cfg.model.data_preprocessor.type == 'DeviceAugmentPreprocessor'
    assert cfg.work_dir == f'work_dirs/{name}/dense_distill/seed0'


def test_tinyimagenet_recipe(data):
    cfg = _config('tinyimagenet_preactresnet18', 'baseline', data['tiny'])
    assert cfg.param_scheduler.milestones == [600, 900] and cfg.train_cfg.max_epochs == 1200
    assert cfg.train_dataloader.dataset.type == 'TinyImageNetDataset'
    assert cfg.train_dataloader.dataset.size == 64 and cfg.model.num_classes == 200


@pytest.mark.parametrize('method, views, teacher', [
    ('baseline', 1, False), ('multimix', 1, False), ('distill', 2, True),
    ('dense_distill', 2, True)])
def test_the_method_flag_sets_the_method_and_what_distillation_needs(data, method, views,
                                                                     teacher):
    cfg = _config('cifar10_preactresnet18', method, data['cifar10'])
    hooks = [h['type'] for h in cfg.custom_hooks]
    assert cfg.model.mix.method == method
    assert cfg.train_dataloader.dataset.num_views == views
    assert hooks.count('TeacherEMAHook') == int(teacher)
    assert 'RNGStateHook' in hooks and 'ExportBackboneHook' in hooks


@pytest.mark.parametrize('name, root, options', [
    ('cifar10_preactresnet18', 'cifar10', ['model.width=8']),
    ('cifar100_wrn16_8', 'cifar100', ['model.arch=wrn16_1']),
    ('tinyimagenet_preactresnet18', 'tiny', ['model.width=8', 'model.num_classes=4']),
])
def test_one_step_of_dense_distill_on_each_layout(tmp_path, data, name, root, options):
    assert main(['--method', 'dense_distill', '--config', f'{REPO}/configs/cifar/{name}.py',
                 '--data-root', str(data[root]), '--max-iters', '1', '--work-dir',
                 str(tmp_path), '--cfg-options', *options, 'model.mix.n=8',
                 'train_dataloader.batch_size=4']) == 0
    metrics = json.loads((tmp_path / 'val_metrics.json').read_text())
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
    assert (tmp_path / 'backbone.safetensors').is_file()


@pytest.mark.parametrize('arch, size, last_stride, grid', [
    ('preactresnet18', 32, 2, (4, 4)), ('preactresnet18', 64, 2, (8, 8)),
    ('wrn16_8', 32, 2, (8, 8)), ('resnet18', 64, 2, (2, 2)), ('resnet18', 224, 2, (7, 7)),
    ('preactresnet18', 32, 1, (8, 8)),
])
def test_the_embedding_grid_is_the_factory_tables(arch, size, last_stride, grid):
    from mmtransfer.models.pretrainer import embedding_grid

    assert embedding_grid(arch, size, last_stride=last_stride) == grid


def test_a_dense_grid_larger_than_the_map_is_named():
    from mmtransfer.models.mix_config import MixConfig
    from mmtransfer.models.pretrainer import check_dense_grid

    check_dense_grid(MixConfig(method='dense', dense_pool=4), (4, 4))        # 1x1: allowed
    with pytest.raises(ValueError, match=r'mix.dense_pool=8 is larger than the feature map'):
        check_dense_grid(MixConfig(method='dense', dense_pool=8), (4, 4))
    with pytest.raises(ValueError, match=r'mix.dense_resolution=5 is larger'):
        check_dense_grid(MixConfig(method='dense', dense_resolution=5), (4, 4))
    with pytest.raises(ValueError, match='the embedding grid is empty'):
        check_dense_grid(MixConfig(method='dense'), (0, 0))


@pytest.mark.parametrize('options, needle', [
    (['model.mix.dense_pool=8'], 'mix.dense_pool=8 is larger than the feature map (4, 4)'),
    (['model.mix.dense_resolution=16'], 'mix.dense_resolution=16 is larger'),
])
def test_a_config_with_no_dense_grid_is_one_line_before_any_work(data, tmp_path, capsys,
                                                                   options, needle):
    from mmtransfer.cli import run

    work = tmp_path / 'work'
    code = run(main, ['--method', 'dense', '--config',
                      f'{REPO}/configs/cifar/cifar10_preactresnet18.py', '--data-root',
                      str(data['cifar10']), '--work-dir', str(work), '--cfg-options', *options])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith('error: ') and needle in err[0]
    assert not work.exists()
