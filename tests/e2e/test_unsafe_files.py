"""A file that would run code when opened is refused at every entry point, in one line, and the
code never runs; outputs keep the permissions a plain write would give; launchers stay terse."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from mmtransfer.loading import load_checkpoint
from tests.conftest import REPO, save_demo_backbone
from tests.e2e.crash import run_fails
from tests.gadgets import eval_through_rebuild, plant

ENV = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
DEMO_VOC = os.path.join(REPO, 'configs', 'demo', 'faster_rcnn_voc.py')


def malicious(path, marker, wrap):
    """A file that looks right (``wrap``: valid content) with issue 24's gadget in it: torch's
    ``_rebuild_from_type_v2`` handed ``eval`` through ``getattr``, which touches ``marker``."""
    torch.save(plant(wrap, 'meta', eval_through_rebuild(marker)) if 'meta' in wrap
               else dict(wrap, extra=eval_through_rebuild(marker)), path)
    return path


@pytest.fixture()
def workspace(demo_root, tmp_path):
    """The demo's detection trees where the demo configs look (data/demo), read-only links."""
    os.makedirs(tmp_path / 'data' / 'demo')
    for tree in ('VOCdevkit', 'coco'):
        os.symlink(demo_root / tree, tmp_path / 'data' / 'demo' / tree)
    save_demo_backbone(tmp_path / 'r18.pth')
    return tmp_path


REFUSED = ('evil.pth: refused', '_rebuild_from_type_v2')


def _cli(tool, *argv):
    return [sys.executable, os.path.join(REPO, *tool.split('/')), *argv]


@pytest.mark.slow
def test_backbone_flag_refuses_a_pickle_that_runs_code(workspace):
    marker = workspace / 'RAN'
    evil = malicious(workspace / 'evil.pth', marker, torch.load(workspace / 'r18.pth',
                                                                weights_only=True))
    run_fails(_cli('tools/train.py', DEMO_VOC, '--backbone', str(evil), '--work-dir', 'wd'),
              workspace, *REFUSED, env=ENV)
    assert not marker.exists()


@pytest.mark.slow
def test_export_refuses_it(tmp_path, pretrain_checkpoint):
    marker = tmp_path / 'RAN'
    evil = malicious(tmp_path / 'evil.pth', marker, load_checkpoint(pretrain_checkpoint))
    run_fails(_cli('pretrain/export.py', str(evil), str(tmp_path / 'out.pth')), tmp_path,
              *REFUSED, env=ENV)
    assert not marker.exists() and not (tmp_path / 'out.pth').exists()


@pytest.mark.parametrize('check_only', [False, True])
@pytest.mark.slow
def test_resume_refuses_it(demo_root, tmp_path, pretrain_checkpoint, check_only):
    marker = tmp_path / 'RAN'
    evil = malicious(tmp_path / 'evil.pth', marker, load_checkpoint(pretrain_checkpoint))
    run_fails(_cli('pretrain/train.py', '--method', 'dense_distill', '--data-root',
                   str(demo_root / 'cls'), '--arch', 'resnet18', '--resume', str(evil),
                   '--work-dir', str(tmp_path / 'wd'), *(['--check-only'] * check_only)),
              tmp_path, *REFUSED, 'MMTRANSFER_TRUST_CHECKPOINTS', env=ENV)
    assert not marker.exists()


def test_evaluate_refuses_it(demo_root, tmp_path, pretrain_checkpoint):
    marker = tmp_path / 'RAN'
    evil = malicious(tmp_path / 'evil.pth', marker, load_checkpoint(pretrain_checkpoint))
    run_fails(_cli('tools/evaluate.py', str(evil), '--data-root', str(demo_root / 'cls'),
                   '--size', '64', '--work-dir', str(tmp_path / 'eval')), tmp_path,
              *REFUSED, env=ENV)
    assert not marker.exists() and not (tmp_path / 'eval' / 'eval_metrics.json').exists()


@pytest.mark.parametrize('trust', ['0', '1'])
@pytest.mark.slow
def test_analyze_embeddings_refuses_it_as_backbone_and_as_checkpoint(demo_root, tmp_path,
                                                                     pretrain_checkpoint, trust):
    """Never retried with another loader, and MMTRANSFER_TRUST_CHECKPOINTS does not reach it."""
    marker = tmp_path / 'RAN'
    backbone = torch.load(pretrain_checkpoint.parent / 'backbone.pth', weights_only=True)
    for name, wrap in (('evil.pth', backbone),
                       ('evil_ckpt.pth', load_checkpoint(pretrain_checkpoint))):
        evil = malicious(tmp_path / name, marker, wrap)
        run_fails(_cli('tools/analyze_embeddings.py', str(evil), '--data-root',
                       str(demo_root / 'cls'), '--size', '64', '--workers', '0', '--out-dir',
                       str(tmp_path / 'out')), tmp_path, f'{name}: refused',
                  '_rebuild_from_type_v2', env=dict(ENV, MMTRANSFER_TRUST_CHECKPOINTS=trust))
    assert not marker.exists() and not (tmp_path / 'out').exists()


def _detection_checkpoint(workspace):
    from tests.e2e.crash import run_ok

    run_ok(_cli('tools/train.py', DEMO_VOC, '--backbone', 'none', '--work-dir', 'det',
                '--cfg-options', 'train_cfg.max_iters=1', 'default_hooks.checkpoint.interval=1'),
           workspace)
    return workspace / 'det' / 'iter_1.pth'


@pytest.mark.slow
def test_test_tool_and_load_from_refuse_it(workspace):
    checkpoint = _detection_checkpoint(workspace)
    marker = workspace / 'RAN'
    evil = malicious(workspace / 'evil.pth', marker, load_checkpoint(checkpoint))
    run_fails(_cli('tools/test.py', DEMO_VOC, str(evil), '--work-dir', 'wd'), workspace,
              *REFUSED, env=ENV)
    run_fails(_cli('tools/train.py', DEMO_VOC, '--backbone', 'none', '--work-dir', 'wd2',
                   '--cfg-options', f'load_from={evil}', 'train_cfg.max_iters=1'), workspace,
              *REFUSED, env=ENV)
    proc = subprocess.run([os.path.join(REPO, 'tools', 'dist_test.sh'), DEMO_VOC, str(evil),
                           '2', '--work-dir', 'wd4'], cwd=workspace, env=ENV,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and proc.stderr.count('error: ') == 1, proc.stderr[-2000:]
    assert all(needle in proc.stderr for needle in REFUSED), proc.stderr[-2000:]
    assert not marker.exists()
    # the real checkpoint still loads through the allowlist, both ways
    run_ok_test = subprocess.run(_cli('tools/test.py', DEMO_VOC, str(checkpoint), '--work-dir',
                                      'wd3'), cwd=workspace, env=ENV, capture_output=True,
                                 text=True, timeout=600)
    assert run_ok_test.returncode == 0, run_ok_test.stderr[-2000:]


@pytest.mark.parametrize('options', [
    ['--backbone', 'none', '--cfg-options', 'load_from=https://example.invalid/r50.pth'],
    ['--cfg-options', 'model.backbone.init_cfg.type=Pretrained',
     'model.backbone.init_cfg.checkpoint=https://example.invalid/r50.pth'],
])
@pytest.mark.slow
def test_remote_checkpoints_are_refused_in_one_line(workspace, options):
    run_fails(_cli('tools/train.py', DEMO_VOC, '--work-dir', 'wd', *options,
                   'train_cfg.max_iters=1'), workspace,
              'https://example.invalid/r50.pth: remote checkpoints are not opened', env=ENV)


def test_safetensors_twin_round_trips_and_loads_into_the_detector(tmp_path, pretrain_checkpoint):
    from mmdet.models.backbones import ResNet

    from mmtransfer.detection import load_backbone_strict
    from mmtransfer.export import export_backbone

    state = export_backbone(str(pretrain_checkpoint), str(tmp_path / 'b.pth'))
    from safetensors.torch import load_file

    twin = load_file(tmp_path / 'b.safetensors')
    assert set(twin) == set(state)
    assert all(torch.equal(twin[k], state[k]) for k in state)
    net = ResNet(depth=18)
    load_backbone_strict(net, str(tmp_path / 'b.safetensors'))
    torch.testing.assert_close(net.conv1.weight, state['conv1.weight'], rtol=0, atol=0)


@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o077, 0o600)])
def test_artifacts_get_the_mode_a_plain_write_would(tmp_path, pretrain_checkpoint, umask, mode):
    from mmtransfer.export import export_backbone
    from mmtransfer.fileio import write_text_atomic

    old = os.umask(umask)
    try:
        export_backbone(str(pretrain_checkpoint), str(tmp_path / 'backbone.pth'))
        write_text_atomic(tmp_path / 'metrics.json', '{}')
        with open(tmp_path / 'plain', 'wb'):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / 'plain').stat().st_mode & 0o777 == mode
    for name in ('backbone.pth', 'backbone.safetensors', 'metrics.json'):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


@pytest.mark.slow
def test_dist_train_with_a_missing_backbone_is_one_line_and_starts_no_rank(workspace):
    proc = subprocess.run([os.path.join(REPO, 'tools', 'dist_train.sh'), DEMO_VOC, '2',
                           '--backbone', 'missing.pth'], cwd=workspace, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == 'error: missing.pth: file not found', proc.stderr


def test_the_launchers_use_the_checkouts_venv(tmp_path):
    """Without PYTHON and without an activated venv, dist_*.sh still find .venv/bin/python."""
    env = dict(ENV, PATH='/usr/bin:/bin')
    env.pop('PYTHON', None)
    out = subprocess.run(['bash', '-c', f'source {REPO}/tools/dist_common.sh; echo $PYTHON'],
                         env=env, capture_output=True, text=True).stdout.strip()
    venv = os.path.join(REPO, '.venv', 'bin', 'python')
    assert out == (venv if os.path.exists(venv) else 'python')
    if shutil.which('python', path=env['PATH']) is None:
        assert out == venv
