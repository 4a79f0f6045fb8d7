"""Bad input to pretraining: one line naming the cause, exit 2, no traceback, nothing written."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from mmtransfer.cli import run
from mmtransfer.loading import load_checkpoint
from tests.conftest import REPO
from tests.e2e.crash import run_fails

ENV = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='2')

FAST = ['--arch', 'resnet18', '--max-iters', '1', '--cfg-options', 'model.num_classes=2',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'model.mix.n=8']


@pytest.fixture()
def two_classes(demo_root, tmp_path):
    root = tmp_path / 'data'
    for split in ('train', 'val'):
        for cls in ('circle', 'square'):
            (root / split / cls).mkdir(parents=True)
            for image in sorted((demo_root / 'cls' / split / cls).iterdir())[:4]:
                shutil.copy(image, root / split / cls / image.name)
    return root


def _fails(argv, capsys, *needles):
    """Runs pretrain/train.py as a user would; it must exit 2 with one line on stderr."""
    return run_fails([sys.executable, 'pretrain/train.py', *argv], REPO, *needles, env=ENV)


@pytest.mark.slow
def test_unknown_method(capsys):
    _fails(['--method', 'multimixx'], capsys, '--method', 'multimixx')


@pytest.mark.slow
def test_missing_data_root(tmp_path, capsys):
    _fails(['--data-root', str(tmp_path / 'nope')], capsys, str(tmp_path / 'nope'))


@pytest.mark.slow
def test_class_folder_without_images(two_classes, tmp_path, capsys):
    (two_classes / 'train' / 'empty_class').mkdir()
    _fails(['--data-root', str(two_classes), '--work-dir', str(tmp_path / 'wd'), *FAST], capsys,
           'empty_class', 'no images')
    assert not (tmp_path / 'wd' / 'backbone.pth').exists()


@pytest.mark.parametrize('workers', [0, 1])
@pytest.mark.slow
def test_corrupt_image_stops_naming_the_file(two_classes, tmp_path, capsys, workers):
    bad = sorted((two_classes / 'train' / 'circle').iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:60])       # a truncated PNG
    argv = ['--data-root', str(two_classes), '--work-dir', str(tmp_path / 'wd'), *FAST,
            f'train_dataloader.num_workers={workers}', 'train_dataloader.batch_size=8']
    _fails(argv, capsys, bad.name, 'corrupt or truncated')
    assert not (tmp_path / 'wd' / 'backbone.pth').exists()


@pytest.mark.parametrize('option, needle', [
    ('model.mix.n=0', 'mix.n'),
    ('model.mix.alpha=0', 'mix.alpha'),
    ('model.mix.alpha=[2.0,0.5]', 'inverted'),
    ('model.mix.gamma=1.5', 'mix.gamma'),
    ('model.mix.block=7', 'mix.block'),
])
def test_bad_mixing_option_names_the_key(two_classes, capsys, option, needle):
    _fails(['--method', 'dense_distill', '--data-root', str(two_classes), *FAST, option], capsys,
           needle)


def test_dense_resolution_larger_than_the_feature_map(two_classes, tmp_path, capsys):
    _fails(['--method', 'dense', '--data-root', str(two_classes), '--work-dir', str(tmp_path),
            *FAST, 'model.mix.dense_resolution=9', 'model.mix.prob=1.0'], capsys,
           'dense_resolution=9')


def test_resume_from_a_truncated_checkpoint_names_the_file(two_classes, tmp_path, capsys):
    ckpt = tmp_path / 'iter_1.pth'
    ckpt.write_bytes(b'PK\x03\x04 truncated')
    _fails(['--data-root', str(two_classes), '--work-dir', str(tmp_path), *FAST[:-12],
            '--resume', str(ckpt), *FAST[-12:]], capsys, str(ckpt))


@pytest.mark.slow
def test_resume_from_a_foreign_checkpoint_names_the_file(two_classes, tmp_path, capsys):
    ckpt = tmp_path / 'foreign.pth'
    torch.save([1, 2, 3], ckpt)
    _fails(['--data-root', str(two_classes), '--work-dir', str(tmp_path / 'wd'), '--resume',
            str(ckpt), *FAST], capsys, str(ckpt))


@pytest.mark.slow
def test_non_finite_loss_stops_at_once_and_keeps_the_last_good_checkpoint(two_classes, tmp_path,
                                                                           capsys):
    argv = ['--data-root', str(two_classes), '--work-dir', str(tmp_path), '--arch', 'resnet18',
            '--max-iters', '40', '--cfg-options', 'model.num_classes=2',
            'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'optim_wrapper.optimizer.lr=1e12',
            'optim_wrapper.optimizer.momentum=0', 'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.by_epoch=False', 'default_hooks.checkpoint.max_keep_ckpts=-1']
    err = _fails(argv, capsys, 'iteration', 'loss_cls', 'not finite')
    failed_iter = int(err.split('iteration ')[1].split(':')[0])
    assert failed_iter < 40
    saved = sorted(int(p.stem.split('_')[1]) for p in tmp_path.glob('iter_*.pth'))
    assert saved and max(saved) == failed_iter - 1       # the last good one, none after
    ckpt = load_checkpoint(tmp_path / f'iter_{max(saved)}.pth')
    assert ckpt['meta']['iter'] == failed_iter - 1 and 'optimizer' in ckpt
    assert not (tmp_path / 'backbone.pth').exists()


def _fails_here(argv, capsys, *needles):
    """The same contract, in this process: for errors found before any work (no start-up)."""
    from pretrain.train import main

    assert run(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('error: '), err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize('option, needle', [
    ('model.mix.prob=abc', 'model.mix.prob=abc: expected a number'),
    ('model.mix.gamma=x', 'model.mix.gamma=x: expected a number'),
    ('model.mix.alpha=abc', 'model.mix.alpha=abc: expected a list'),
    ('model.mix.detach_attention=yes', 'detach_attention=yes: expected True or False'),
    ('train_cfg.max_iters=abc', 'train_cfg.max_iters=abc: expected a number'),
    ('bogus_top=1', "'bogus_top' is not a top-level key"),
])
def test_a_wrong_typed_or_unknown_option_names_the_key(two_classes, tmp_path, capsys, option,
                                                        needle):
    _fails_here(['--data-root', str(two_classes), '--work-dir', str(tmp_path / 'wd'), *FAST,
                 option], capsys, needle)
    assert not (tmp_path / 'wd').exists()


@pytest.mark.parametrize('option, needle', [
    ('train_cfg.bogus=1', "train_cfg: IterBasedTrainLoop has no option 'bogus'"),
    ('val_cfg.bogus=1', "val_cfg: ValLoop has no option 'bogus'"),
    ('default_hooks.logger.intervl=5', "default_hooks.logger: LoggerHook has no option 'intervl'"),
])
def test_an_option_the_built_class_does_not_take_names_it_before_any_output(
        two_classes, tmp_path, capsys, option, needle):
    _fails_here(['--data-root', str(two_classes), '--work-dir', str(tmp_path / 'wd'), *FAST,
                 option], capsys, needle)
    assert not (tmp_path / 'wd').exists()  # no dumped config, no log folder


@pytest.mark.parametrize('argv, needle', [
    (['--seed', '-1'], "argument --seed: must be an integer >= 0, got '-1'"),
    (['--data-root', ''], 'argument --data-root: must not be empty'),
    (['--config', ''], 'argument --config: must not be empty'),
])
def test_a_bad_flag_value_names_the_flag(capsys, argv, needle):
    _fails_here(argv, capsys, needle)


def test_a_work_dir_under_a_file_or_onto_a_file(tmp_path, capsys):
    (tmp_path / 'file').write_text('x')
    _fails(['--work-dir', str(tmp_path / 'file' / 'wd')], capsys, 'argument --work-dir',
           f'{tmp_path / "file"} is a file, not a directory')
    _fails_here(['--work-dir', str(tmp_path / 'file')], capsys, 'argument --work-dir',
                f'{tmp_path / "file"}: is a file, not a directory')


def test_export_onto_a_directory(tmp_path, capsys):
    (tmp_path / 'out.pth').mkdir()
    run_fails([sys.executable, 'pretrain/export.py', 'iter_1.pth', str(tmp_path / 'out.pth')],
              REPO, 'argument out', f'{tmp_path / "out.pth"}: is a directory', env=ENV)
    assert list(tmp_path.iterdir()) == [tmp_path / 'out.pth']


def test_a_config_that_is_a_directory_or_has_a_syntax_error(tmp_path, capsys):
    _fails_here(['--config', str(tmp_path)], capsys,
                f'{tmp_path}: is a directory, not a config file')
    bad = tmp_path / 'bad.py'
    bad.write_text("_base_ = 'base.py'\nmodel = dict(\nx = 1\n")
    _fails(['--config', str(bad)], capsys, f'{bad}:2: Python syntax error')
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = {str(bad)!r}\n")
    _fails_here(['--config', str(child)], capsys, f'{child}: a file it inherits (_base_) has a '
                'Python syntax error')


def test_an_unknown_top_level_key_in_a_config_is_a_warning(two_classes, tmp_path):
    config = tmp_path / 'typo.py'
    config.write_text(f"_base_ = {os.path.join(REPO, 'configs', 'pretrain', 'base.py')!r}\n"
                      "optim_wraper = dict(optimizer=dict(lr=0.5))\n"
                      "model = dict(mix=dict(method='mixup'))\n")
    proc = subprocess.run([sys.executable, 'pretrain/train.py', '--config', str(config),
                           '--data-root', str(two_classes), '--check-only'], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == f"warning: {config}: unknown top-level key 'optim_wraper' " \
                                  '(a typo?)'


def test_the_recipe_and_the_demo_settings_raise_no_warning(two_classes, capsys):
    from pretrain.train import main

    assert run(main, ['--method', 'mixup', '--demo', '--data-root', str(two_classes),
                      '--check-only']) == 0
    assert capsys.readouterr().err == ''
