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

ENV = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
DEMO_VOC = os.path.join(REPO, 'configs', 'demo', 'faster_rcnn_voc.py')


class Payload:
    """Unpickling calls ``os.system('touch MARKER')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def malicious(path, marker, wrap):
    """A file that looks right (``wrap`` of valid content) plus the payload."""
    obj = dict(wrap)
    obj['extra'] = Payload(marker)
    torch.save(obj, path)
    return path


@pytest.fixture()
def workspace(demo_root, tmp_path):
    """The demo's detection trees where the demo configs look (data/demo), read-only links."""
    os.makedirs(tmp_path / 'data' / 'demo')
    for tree in ('VOCdevkit', 'coco'):
        os.symlink(demo_root / tree, tmp_path / 'data' / 'demo' / tree)
    save_demo_backbone(tmp_path / 'r18.pth')
    return tmp_path


@pytest.fixture(scope='module')
def pretrain_checkpoint(demo_root, tmp_path_factory):
    """A real iter_1.pth of pretraining (dense_distill, every hook's state in it)."""
    from pretrain.train import main

    work = tmp_path_factory.mktemp('pre')
    assert main(['--method', 'dense_distill', '--data-root', str(demo_root / 'cls'), '--arch',
                 'resnet18', '--max-iters', '1', '--work-dir', str(work), '--cfg-options',
                 'model.num_classes=10', 'model.mix.n=8', 'train_dataloader.batch_size=4',
                 'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0']) == 0
    return work / 'iter_1.pth'


def _cli(tool, *argv):
    return [sys.executable, os.path.join(REPO, *tool.split('/')), *argv]


def test_backbone_flag_refuses_a_pickle_that_runs_code(workspace):
    marker = workspace / 'RAN'
    evil = malicious(workspace / 'evil.pth', marker, torch.load(workspace / 'r18.pth',
                                                                weights_only=True))
    run_fails(_cli('tools/train.py', DEMO_VOC, '--backbone', str(evil), '--work-dir', 'wd'),
              workspace, 'evil.pth: refused', 'posix.system', env=ENV)
    assert not marker.exists()


def test_export_refuses_it(tmp_path, pretrain_checkpoint):
    marker = tmp_path / 'RAN'
    evil = malicious(tmp_path / 'evil.pth', marker, load_checkpoint(pretrain_checkpoint))
    run_fails(_cli('pretrain/export.py', str(evil), str(tmp_path / 'out.pth')), tmp_path,
              'evil.pth: refused', 'posix.system', env=ENV)
    assert not marker.exists() and not (tmp_path / 'out.pth').exists()


def test_resume_refuses_it(demo_root, tmp_path, pretrain_checkpoint):
    marker = tmp_path / 'RAN'
    evil = malicious(tmp_path / 'evil.pth', marker, load_checkpoint(pretrain_checkpoint))
    run_fails(_cli('pretrain/train.py', '--method', 'dense_distill', '--data-root',
                   str(demo_root / 'cls'), '--arch', 'resnet18', '--resume', str(evil),
                   '--work-dir', str(tmp_path / 'wd')), tmp_path,
              'evil.pth: refused', 'MMTRANSFER_TRUST_CHECKPOINTS', env=ENV)
    assert not marker.exists()


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
              'evil.pth: refused', env=ENV)
    run_fails(_cli('tools/train.py', DEMO_VOC, '--backbone', 'none', '--work-dir', 'wd2',
                   '--cfg-options', f'load_from={evil}', 'train_cfg.max_iters=1'), workspace,
              'evil.pth: refused', env=ENV)
    assert not marker.exists()
    # the real checkpoint still loads through the allowlist, both ways
    run_ok_test = subprocess.run(_cli('tools/test.py', DEMO_VOC, str(checkpoint), '--work-dir',
                                      'wd3'), cwd=workspace, env=ENV, capture_output=True,
                                 text=True, timeout=600)
    assert run_ok_test.returncode == 0, run_ok_test.stderr[-2000:]


def test_the_allowlist_is_exactly_what_real_checkpoints_hold(pretrain_checkpoint):
    from mmtransfer.loading import CHECKPOINT_GLOBALS

    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(pretrain_checkpoint))
    allowed = {f'{g.__module__}.{g.__qualname__}' for g in CHECKPOINT_GLOBALS}
    allowed |= {f'builtins.{g.__name__}' for g in CHECKPOINT_GLOBALS if g is getattr}
    assert needed <= allowed, needed - allowed
    ckpt = load_checkpoint(pretrain_checkpoint)
    assert set(ckpt) >= {'state_dict', 'meta', 'message_hub', 'optimizer', 'rng_states'}


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
