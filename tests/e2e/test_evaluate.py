"""tools/evaluate.py end to end on a briefly trained demo checkpoint."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

SMALL = ['--arch', 'resnet18', '--cfg-options', 'model.num_classes=10',
         'train_dataloader.batch_size=16', 'train_dataloader.num_workers=0',
         'val_dataloader.num_workers=0']


@pytest.fixture(scope='module')
def checkpoint(demo_root, tmp_path_factory):
    from pretrain.train import main

    work = tmp_path_factory.mktemp('eval_ckpt')
    assert main(['--method', 'baseline', '--data-root', str(demo_root / 'cls'), '--max-iters', '2',
                 '--work-dir', str(work), *SMALL]) == 0
    return next(work.glob('iter_2.pth'))


@pytest.fixture(scope='module')
def blank_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('ood') / 'blank'
    root.mkdir()
    for i in range(6):
        Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(root / f'{i}.png')
    return root.parent


def _evaluate(*argv):
    from tools.evaluate import main

    return main([*argv, '--size', '64', '--workers', '0'])


@pytest.mark.slow
def test_evaluate_writes_every_metric(checkpoint, demo_root, blank_root, tmp_path):
    assert _evaluate(str(checkpoint), '--data-root', str(demo_root / 'cls'), '--ood-root',
                     str(blank_root), '--pgd-iters', '2', '--work-dir', str(tmp_path)) == 0
    metrics = json.loads((tmp_path / 'eval_metrics.json').read_text())
    for key in ('top1', 'top5', 'ece', 'fgsm_top1_error', 'pgd_top1_error', 'ood_auroc',
                'ood_aupr', 'ood_detection_accuracy'):
        assert 0 <= metrics[key] <= 100, key
    assert metrics['fgsm_top1_error'] >= 100 - metrics['top1'] - 1e-9
    assert metrics['ood_images'] == 6 and (tmp_path / 'reliability.png').stat().st_size > 0
    assert metrics['attack']['fgsm_eps'] == pytest.approx(8 / 255)
    assert metrics['attack']['pgd_iters'] == 2


# PuzzleMix's robustness test (checkpoint/test_robust.py): FGSM (8, 8, 1), PGD (4, 2, 20) in 1/255.
@pytest.mark.parametrize('argv, fgsm_eps, pgd_eps', [
    ([], 8 / 255, 4 / 255),
    (['--eps', '0'], 0.0, 0.0),
    (['--eps', '0', '--pgd-eps', '3/255'], 0.0, 3 / 255),
    (['--fgsm-eps', '0.01'], 0.01, 4 / 255),
])
def test_attack_budgets_default_to_the_literature_protocol(argv, fgsm_eps, pgd_eps):
    from tools.evaluate import parse_args

    args = parse_args(['ckpt.pth', '--data-root', 'root', *argv])
    assert (args.fgsm_eps, args.pgd_eps) == (pytest.approx(fgsm_eps), pytest.approx(pgd_eps))
    assert (args.pgd_step, args.pgd_iters) == (pytest.approx(2 / 255), 20)


@pytest.mark.slow
def test_eps_zero_error_equals_the_clean_error(checkpoint, demo_root, tmp_path):
    assert _evaluate(str(checkpoint), '--data-root', str(demo_root / 'cls'), '--eps', '0',
                     '--work-dir', str(tmp_path)) == 0
    metrics = json.loads((tmp_path / 'eval_metrics.json').read_text())
    assert metrics['fgsm_top1_error'] == pytest.approx(100 - metrics['top1'])
    assert metrics['pgd_top1_error'] == pytest.approx(100 - metrics['top1'])


@pytest.mark.slow
@pytest.mark.parametrize('extra, message', [
    (['--attacks', 'cw'], "--attacks: unknown attack 'cw'"),
    (['--ood-root', 'EMPTY'], 'no images'),
    (['--arch', 'resnet50'], 'weights do not fit the encoder'),
    (['THREE_CLASSES'], 'its head has 10 classes, the data root has 3'),
])
def test_bad_inputs_are_one_line_errors(checkpoint, demo_root, tmp_path, capsys, extra, message):
    from mmtransfer.cli import run

    if 'EMPTY' in extra:
        (tmp_path / 'empty' / 'class').mkdir(parents=True)
        extra = ['--ood-root', str(tmp_path / 'empty')]

    def main(argv):
        return _evaluate(*argv)

    data_root = demo_root / 'cls'
    if 'THREE_CLASSES' in extra:  # a val split of another class count than the checkpoint's
        data_root, extra = tmp_path / 'three', []
        for name in ('circle', 'square', 'star'):
            (data_root / 'val' / name).mkdir(parents=True)
            shutil.copy(next((demo_root / 'cls' / 'val' / name).glob('*.png')),
                        data_root / 'val' / name / '0.png')

    code = run(main, [str(checkpoint), '--data-root', str(data_root), '--work-dir',
                      str(tmp_path / 'out'), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and '\n' not in err
    assert not (tmp_path / 'out' / 'eval_metrics.json').exists()
