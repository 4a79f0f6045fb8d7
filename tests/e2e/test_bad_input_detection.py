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


def test_a_vit_backbone_given_to_the_resnet_detector(workspace):
    from mmtransfer.models import build_encoder

    torch.save(build_encoder('vit_s16').state_dict(), workspace / 'vit.pth')
    _fails([DEMO_VOC, '--backbone', 'vit.pth', '--work-dir', 'wd', *FAST], workspace,
           'vit.pth', 'a ViT backbone', 'ResNet(depth=18)', 'not in the paper')
    assert not (workspace / 'wd').exists()


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
@pytest.mark.slow
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


def _pretraining_checkpoint(path) -> None:
    """What pretrain/train.py saves: the student and teacher under their own prefixes."""
    from mmtransfer.models import ResNetEncoder

    encoder = ResNetEncoder('resnet18', width=32).state_dict()
    state = {f'{prefix}{k}': v for prefix in ('student.encoder.', 'teacher.module.encoder.')
             for k, v in encoder.items()}
    state['student.head.weight'] = torch.zeros(10, 256)
    torch.save({'meta': {'iter': 1}, 'state_dict': state}, path)


@pytest.mark.parametrize('kind', ['backbone', 'pretraining'])
@pytest.mark.slow
def test_testing_a_file_that_is_not_a_detector_checkpoint(workspace, kind):
    """Evaluated, it would be a random detector scoring mAP 0.0 into metrics.json."""
    if kind == 'backbone':
        ckpt = 'r18.pth'
    else:
        ckpt = 'iter_1.pth'
        _pretraining_checkpoint(workspace / ckpt)
    _fails([DEMO_VOC, ckpt, '--work-dir', 'wd'], workspace, f'{ckpt}: not a checkpoint of this '
           'detector: missing keys backbone.* (120 of 120), neck.* (16 of 16), roi_head.* (8 of '
           '8), rpn_head.* (6 of 6)', tool='test.py')
    assert not (workspace / 'wd' / 'metrics.json').exists()


@pytest.mark.slow
def test_a_corrupt_jpeg_in_the_training_data_names_the_file(workspace):
    voc = workspace / 'data/demo/VOCdevkit'
    for image in voc.glob('VOC20*/JPEGImages/*.jpg'):  # whichever the sampler draws first
        image.write_bytes(image.read_bytes()[:2000])  # truncated
    err = _fails([DEMO_VOC, '--backbone', 'r18.pth', '--work-dir', 'wd', *FAST], workspace,
                 'corrupt or truncated image')
    path = err.split('error: ')[1].split(':')[0]
    assert (workspace / path).parent.name == 'JPEGImages' and (workspace / path).is_file()


@pytest.mark.parametrize('argv, tool, needle', [
    (['--work-dir', 'file/wd'], 'train.py', 'argument --work-dir: file/wd: '),
    (['ckpt.pth', '--out', 'folder.pkl'], 'test.py', 'argument --out: folder.pkl: is a directory'),
    (['folder.pkl'], 'test.py', 'folder.pkl: is a directory, not a checkpoint'),
    (['--cfg-options', 'train_cfg.max_iters=abc'], 'train.py',
     '--cfg-options train_cfg.max_iters=abc: expected a number (the config has 270)'),
    (['--cfg-options', 'bogus_top=1'], 'train.py', "'bogus_top' is not a top-level key"),
    (['--cfg-options', 'train_cfg.bogus=1'], 'train.py',
     "train_cfg: IterBasedTrainLoop has no option 'bogus'"),
    (['r18.pth', '--cfg-options', 'test_cfg.bogus=1'], 'test.py',
     "test_cfg: TestLoop has no option 'bogus'"),
])
@pytest.mark.slow
def test_bad_paths_and_options(workspace, argv, tool, needle):
    (workspace / 'file').write_text('x')
    (workspace / 'folder.pkl').mkdir()
    _fails([DEMO_VOC, *argv], workspace, needle, tool=tool)


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
@pytest.mark.slow
def test_a_config_that_is_a_directory_or_has_a_syntax_error(workspace, tool):
    ckpt = ['r18.pth'] if tool == 'test.py' else []
    _fails([str(workspace), *ckpt], workspace, f'{workspace}: is a directory, not a config file',
           tool=tool)
    (workspace / 'bad.py').write_text("_base_ = 'x.py'\nmodel = dict(type='FasterRCNN'\n")
    _fails(['bad.py', *ckpt], workspace, "bad.py:2: Python syntax error: '(' was never closed",
           tool=tool)


@pytest.mark.parametrize('bug', [False, True])
@pytest.mark.slow
def test_a_failing_rank_under_dist_launch(bug):
    """Two gloo ranks: rank 1 fails, rank 0 then gets gloo's "Connection closed by peer". The
    launcher shows rank 1's error line once and not the consequence; a bug keeps its
    traceback (and still not the consequence)."""
    env = dict(ENV, PORT='29541', PYTHON=sys.executable, **({'MMT_RANK1_BUG': '1'} if bug else {}))
    script = os.path.join(REPO, 'tests', 'e2e', 'dist_error_worker.py')
    proc = subprocess.run(['bash', '-c', f'source tools/dist_common.sh; dist_launch {script} 2'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert 'Connection closed by peer' not in proc.stderr and 'SIGTERM' not in proc.stderr
    if bug:
        assert proc.returncode == 1
        assert proc.stderr.strip().endswith('AssertionError: a bug on rank 1'), proc.stderr
    else:
        assert proc.returncode == 2
        assert proc.stderr.strip() == ('error: data/train/x/1.png: corrupt or truncated image '
                                       '(rank 1)')
