"""The backbone reaches the detector: a pretrained one beats random init by a wide margin.

A broken transfer path (a backbone file that is not loaded, loaded into the wrong module, or
overwritten by the detector's own init) trains the detector from random weights, and the margin
vanishes. The demo in miniature: pretrain ``baseline`` with the demo settings (its 1,000 steps on
as many classification images), then fine-tune the demo VOC detector (270 iterations) from it
and from random init with the same schedule and seed on a smaller detection split, and compare
VOC07 mAP. About 4-5 min on 2 CPU cores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

#: VOC07 mAP points (x100), the demo's margin (issue 9). Measured by this test on a 2-core CPU,
#: 2026-12-02: see docs/demo.md.
MARGIN = 10.0
#: As many classification images as the demo: the same 1,000 pretraining steps.
SIZES = dict(cls_train_per_class=800, cls_val_per_class=10, cls_ood_per_shape=1,
             det_trainval07=150, det_trainval12=50, det_test07=60)


def _run(args, cwd):
    env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _voc_map(workspace, backbone: str, name: str) -> float:
    config = os.path.join(REPO, 'configs', 'demo', 'faster_rcnn_voc.py')
    work = workspace / 'det' / name
    _run([os.path.join(REPO, 'tools', 'train.py'), config, '--backbone', backbone,
          '--work-dir', str(work), '--cfg-options', 'randomness.seed=0'], workspace)
    checkpoint = (work / 'last_checkpoint').read_text().strip()
    _run([os.path.join(REPO, 'tools', 'test.py'), config, checkpoint, '--work-dir', str(work)],
         workspace)
    return 100 * json.loads((work / 'metrics.json').read_text())['pascal_voc/mAP']


@pytest.mark.slow
def test_a_pretrained_backbone_beats_random_init_on_voc(tmp_path):
    from mmtransfer.data.demo import make_demo_data

    make_demo_data(tmp_path / 'data' / 'demo', seed=0, **SIZES)
    pretrain = tmp_path / 'pretrain'
    _run([os.path.join(REPO, 'pretrain', 'train.py'), '--method', 'baseline', '--demo',
          '--data-root', str(tmp_path / 'data' / 'demo' / 'cls'), '--work-dir', str(pretrain),
          '--cfg-options', 'val_dataloader.num_workers=0'], tmp_path)
    top1 = json.loads((pretrain / 'val_metrics.json').read_text())['accuracy/top1']
    pretrained = _voc_map(tmp_path, str(pretrain / 'backbone.pth'), 'pretrained')
    random_init = _voc_map(tmp_path, 'none', 'random_init')
    assert pretrained >= random_init + MARGIN, (
        f'pretrained backbone (val top-1 {top1:.1f} %): VOC07 mAP {pretrained:.1f}, '
        f'random init {random_init:.1f}; expected a margin of {MARGIN}')
