"""Bad input to detection fine-tuning and testing: exit 2, one line naming the cause, no
traceback, no checkpoint written. Most cases stop before the Runner is built."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torchvision

from tests.conftest import REPO, save_demo_backbone
from tests.e2e.crash import run_fails

ENV = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
DEMO_VOC = os.path.join(REPO, 'configs', 'demo', 'faster_rcnn_voc.py')
DEMO_COCO = os.path.join(REPO, 'configs', 'demo', 'faster_rcnn_coco.py')
FAST = ['--cfg-options', 'train_cfg.max_iters=1', 'default_hooks.checkpoint.interval=1']


@pytest.fixture()
def workspace(demo_root, tmp_path):
    """A writable copy of the demo's detection trees under ``data/demo``, and backbone files."""
    for tree in ('VOCdevkit', 'coco'):
        shutil.copytree(demo_root / tree, tmp_path / 'data' / 'demo' / tree)
    save_demo_backbone(tmp_path / 'r18.pth')
    return tmp_path


def _fails(argv, cwd, *needles, tool='train.py'):
    """Runs tools/<tool> as a user would; it must exit 2 with one line ``error: ...``."""
    err = run_fails([sys.executable, os.path.join(REPO, 'tools', tool), *argv], cwd, *needles,
                    env=ENV)
    assert not list(cwd.glob('wd/iter_*.pth'))
    return err


def test_backbone_of_another_depth(workspace):
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), workspace / 'r34.pth')
    _fails([DEMO_VOC, '--backbone', 'r34.pth', '--work-dir', 'wd', *FAST], workspace,
           'r34.pth', 'does not fit ResNet(depth=18)', 'unexpected keys')
    assert not (workspace / 'wd').exists()  # stopped before the Runner made the work dir


def test_backbone_file_that_is_not_a_state_dict(workspace):
    torch.save([1, 2, 3], workspace / 'list.pth')
    _fails([DEMO_VOC, '--backbone', 'list.pth', '--work-dir', 'wd', *FAST], workspace,
           'list.pth', 'not a state dict')
    assert not (workspace / 'wd').exists()


def test_voc_xml_with_a_class_not_in_the_class_list(workspace):
    voc07 = workspace / 'data/demo/VOCdevkit/VOC2007'
    image_id = (voc07 / 'ImageSets/Main/trainval.txt').read_text().split()[5]
    xml = voc07 / 'Annotations' / f'{image_id}.xml'
    objects = xml.read_text().split('<object>')
    name = objects[1].split('<name>')[1].split('</name>')[0]
    objects[1] = objects[1].replace(f'<name>{name}</name>', '<name>pentagon</name>')
    xml.write_text('<object>'.join(objects))
    _fails([DEMO_VOC, '--backbone', 'r18.pth', '--work-dir', 'wd', *FAST], workspace,
           f'VOC2007/Annotations/{image_id}.xml', "'pentagon'")
    assert not (workspace / 'wd').exists()


def _annotated_image(json_path) -> str:
    """The file name of an image of ``json_path`` that has a (non-crowd) annotation."""
    coco = json.loads(json_path.read_text())
    annotated = {a['image_id'] for a in coco['annotations'] if not a.get('iscrowd')}
    return next(i['file_name'] for i in coco['images'] if i['id'] in annotated)


@pytest.mark.parametrize('split', ['train', 'test'])
def test_coco_json_pointing_at_a_missing_image(workspace, split):
    folder = 'train2017' if split == 'train' else 'val2017'
    json_path = workspace / f'data/demo/coco/annotations/instances_{folder}.json'
    file_name = _annotated_image(json_path)
    (workspace / 'data/demo/coco' / folder / file_name).unlink()
    if split == 'train':
        argv = [DEMO_COCO, '--backbone', 'none', '--work-dir', 'wd', *FAST]
    else:
        (workspace / 'model.pth').write_bytes(b'')  # never read: the images are checked first
        argv = [DEMO_COCO, 'model.pth', '--work-dir', 'wd']
    _fails(argv, workspace, f'{folder}/{file_name}', f'instances_{folder}.json',
           'image not found', tool=f'{split}.py')


def test_resume_from_a_truncated_checkpoint_names_the_file(workspace):
    ckpt = workspace / 'iter_4.pth'
    ckpt.write_bytes(b'PK\x03\x04 truncated')
    _fails([DEMO_VOC, '--backbone', 'r18.pth', '--work-dir', 'wd', '--resume', str(ckpt), *FAST],
           workspace, str(ckpt), 'truncated')
    assert not (workspace / 'wd').exists()


def test_testing_a_truncated_checkpoint_names_the_file(workspace):
    ckpt = workspace / 'iter_4.pth'
    ckpt.write_bytes(b'PK\x03\x04 truncated')
    _fails([DEMO_VOC, str(ckpt), '--work-dir', 'wd'], workspace, str(ckpt), 'truncated',
           tool='test.py')
    assert not (workspace / 'wd' / 'metrics.json').exists()


@pytest.mark.parametrize('script, args', [
    ('dist_train.sh', [DEMO_VOC, '0']),
    ('dist_test.sh', [DEMO_VOC, 'ckpt.pth', '0']),
    ('dist_train.sh', [DEMO_VOC]),
    ('dist_test.sh', [DEMO_VOC, 'ckpt.pth']),
])
def test_dist_launchers_without_gpus(script, args):
    proc = subprocess.run([os.path.join(REPO, 'tools', script), *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=60)
    err = proc.stderr.strip()
    assert proc.returncode == 2
    assert len(err.splitlines()) == 1 and err.startswith('error: '), err
    assert 'GPUS' in err
