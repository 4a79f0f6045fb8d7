"""tools/train.py, tools/test.py and the dist launchers, run for real on a small demo tree.

Each run happens in a workspace whose ``data/demo`` links to the session's demo tree, so the
demo configs are used unchanged apart from ``--cfg-options`` that shorten training.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
import torchvision

from mmtransfer.detection import BackboneLoadError
from mmtransfer.loading import load_checkpoint
from tests.conftest import save_demo_backbone

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, 'tools')


def load_tool(name: str):
    """Import tools/<name>.py under a private module name (``test`` is also a stdlib package)."""
    path = os.path.join(TOOLS, f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'_tools_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_tool, test_tool = load_tool('train'), load_tool('test')

DEMO_VOC = os.path.join(REPO, 'configs/demo/faster_rcnn_voc.py')
DEMO_COCO = os.path.join(REPO, 'configs/demo/faster_rcnn_coco.py')
SHORT = ['default_hooks.logger.interval=1']
VOC_KEYS = {'pascal_voc/mAP', 'pascal_voc/AP50'}
COCO_KEYS = {'coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75', 'coco/bbox_mAP_s',
             'coco/bbox_mAP_m', 'coco/bbox_mAP_l'}


@pytest.fixture(scope='module')
def workspace(demo_root, tmp_path_factory):
    """A folder with ``data/demo`` -> the small demo tree and a resnet18 backbone file."""
    root = tmp_path_factory.mktemp('det_workspace')
    (root / 'data').mkdir()
    (root / 'data' / 'demo').symlink_to(demo_root)
    save_demo_backbone(root / 'r18.pth')
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), root / 'r34.pth')
    return root


def run(script: str, *args: str, cwd) -> subprocess.CompletedProcess:
    # One intra-op thread unless told otherwise: on a shared CPU, two spinning OpenMP threads
    # make a step many times slower; the runs check behaviour, not speed.
    env = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
    return subprocess.run([sys.executable, os.path.join(TOOLS, script), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def check_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def train_args(config: str, work_dir: str, iters: int, *extra: str) -> list[str]:
    return [config, '--backbone', 'r18.pth', '--work-dir', work_dir, '--cfg-options',
            f'train_cfg.max_iters={iters}', *SHORT, *extra]


def read_metrics(path) -> dict:
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------- CLI surface


@pytest.mark.parametrize('tool', [train_tool, test_tool])
def test_help_has_a_worked_example(tool, capsys):
    assert tool.main(['--help']) == 0
    out = capsys.readouterr().out
    assert 'example:' in out and 'python tools/' in out and '--cfg-options' in out


@pytest.mark.parametrize('tool', [train_tool, test_tool])
def test_unknown_flag_is_one_line(tool, capsys):
    assert tool.main([DEMO_VOC, 'ckpt.pth', '--no-such-flag']) == 2
    assert '--no-such-flag' in _one_line_error(capsys)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('error: '), err
    return err


def test_train_missing_config(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    assert train_tool.main(['configs/nope.py']) == 2
    assert 'configs/nope.py' in _one_line_error(capsys)


def test_train_wrong_backbone_fails_before_the_runner(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    assert train_tool.main([DEMO_VOC, '--backbone', 'r34.pth', '--work-dir', 'wd_r34']) == 2
    err = _one_line_error(capsys)
    assert 'r34.pth' in err and 'unexpected keys' in err
    assert not (workspace / 'wd_r34').exists()  # the Runner (which makes work_dir) never ran


def test_train_missing_backbone_file(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    assert train_tool.main([DEMO_VOC, '--backbone', 'missing.pth']) == 2
    assert 'missing.pth' in _one_line_error(capsys)


def test_unknown_dataset_root(tmp_path, workspace, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here
    assert train_tool.main([DEMO_COCO, '--backbone', 'none']) == 2
    assert 'dataset root not found: data/demo/coco/' in _one_line_error(capsys)
    (tmp_path / 'ckpt.pth').write_bytes(b'')
    assert test_tool.main([DEMO_VOC, 'ckpt.pth']) == 2
    assert 'dataset root not found: data/demo/VOCdevkit/' in _one_line_error(capsys)


def test_test_missing_checkpoint(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    assert test_tool.main([DEMO_VOC, 'nope.pth']) == 2
    assert 'nope.pth' in _one_line_error(capsys)


def test_resume_from_a_given_checkpoint_sets_load_from(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(workspace)
    ckpt = tmp_path / 'iter_2.pth'
    torch.save(dict(state_dict={}, meta=dict(iter=2)), ckpt)
    cfg = train_tool.build_cfg(train_tool.parse_args([DEMO_VOC, '--resume', str(ckpt)]))
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    args = [DEMO_VOC, '--work-dir', str(tmp_path / 'empty'), '--resume']
    cfg = train_tool.build_cfg(train_tool.parse_args(args))
    assert cfg.resume is True and cfg.load_from is None  # nothing to resume: starts afresh
    (tmp_path / 'last_checkpoint').write_text(str(ckpt))
    args = [DEMO_VOC, '--work-dir', str(tmp_path), '--resume']
    cfg = train_tool.build_cfg(train_tool.parse_args(args))
    assert cfg.resume is True and cfg.load_from == str(ckpt)  # the work dir's last one


def test_resume_from_a_backbone_file_is_refused(workspace, capsys, monkeypatch):
    monkeypatch.chdir(workspace)
    assert train_tool.main([DEMO_VOC, '--resume', 'r18.pth', '--work-dir', 'wd_bad']) == 2
    assert 'r18.pth: not an mmengine training checkpoint' in _one_line_error(capsys)
    assert not (workspace / 'wd_bad').exists()


def test_tensorboard_adds_a_vis_backend(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    cfg = train_tool.build_cfg(train_tool.parse_args([DEMO_VOC, '--tensorboard']))
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend',
                                                                 'TensorboardVisBackend']
    cfg = train_tool.build_cfg(train_tool.parse_args([DEMO_VOC]))
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend']


def test_bad_input_is_one_line_without_traceback_from_the_shell(workspace):
    proc = run('train.py', DEMO_VOC, '--backbone', 'r34.pth', cwd=workspace)
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith('error: r34.pth: does not fit')


@pytest.mark.parametrize('script, args', [
    ('dist_train.sh', [DEMO_VOC, '0']),
    ('dist_train.sh', [DEMO_VOC, 'two']),
    ('dist_test.sh', [DEMO_VOC, 'ckpt.pth', '-1']),
    ('dist_test.sh', [DEMO_VOC, 'ckpt.pth', '1.5']),
])
def test_dist_launchers_reject_a_bad_gpu_count(script, args):
    proc = subprocess.run([os.path.join('tools', script), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: GPUS must be a positive integer, got '{args[-1]}'"


def test_runner_does_not_swallow_a_backbone_error(workspace, tmp_path, monkeypatch):
    """Bypassing the pre-check, the initializer's error still stops Runner.train()."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    monkeypatch.chdir(workspace)
    cfg = Config.fromfile(DEMO_VOC)
    cfg.model.backbone.init_cfg.checkpoint = 'r34.pth'
    cfg.work_dir = str(tmp_path / 'wd')
    cfg.train_cfg.max_iters = 1
    runner = Runner.from_cfg(cfg)
    with pytest.raises(BackboneLoadError, match='r34.pth'):
        runner.train()
    assert not list((tmp_path / 'wd').glob('iter_*.pth'))


# --------------------------------------------------------------------------- real runs


@pytest.mark.slow
@pytest.mark.parametrize('config, keys', [(DEMO_VOC, VOC_KEYS), (DEMO_COCO, COCO_KEYS)],
                         ids=['voc', 'coco'])
def test_train_then_test(workspace, config, keys):
    name = os.path.basename(os.path.dirname(config)) + '_' + os.path.basename(config)[:-3]
    work_dir = f'wd_{name}'
    check_ok(run('train.py', *train_args(config, work_dir, 4,
                                         'default_hooks.checkpoint.interval=4'),
                 cwd=workspace))
    checkpoint = workspace / work_dir / 'iter_4.pth'
    assert checkpoint.is_file()

    proc = run('test.py', config, str(checkpoint), '--work-dir', work_dir, cwd=workspace)
    check_ok(proc)
    metrics = read_metrics(workspace / work_dir / 'metrics.json')
    assert set(metrics) == keys
    if 'coco/bbox_mAP_l' in metrics:
        # No demo object exceeds 72x72 px < 96x96 ("large"): pycocotools reports -1 (no GT).
        assert metrics.pop('coco/bbox_mAP_l') == -1.0
    assert all(0.0 <= v <= 1.0 for v in metrics.values()), metrics
    assert 'Results:' in proc.stdout and 'metrics.json' in proc.stdout


@pytest.mark.slow
def test_resume_continues_the_iteration_count(workspace):
    work_dir = 'wd_resume'
    check_ok(run('train.py', *train_args(DEMO_VOC, work_dir, 4,
                                         'default_hooks.checkpoint.interval=2'),
                 cwd=workspace))
    assert load_checkpoint(workspace / work_dir / 'iter_4.pth')['meta']['iter'] == 4

    proc = run('train.py', *train_args(DEMO_VOC, work_dir, 6,
                                       'default_hooks.checkpoint.interval=2'), '--resume',
               cwd=workspace)
    check_ok(proc)
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [5/6]' in log and 'Iter(train) [6/6]' in log
    assert 'Iter(train) [1/6]' not in log  # continued from iteration 4, not restarted
    final = load_checkpoint(workspace / work_dir / 'iter_6.pth')
    assert final['meta']['iter'] == 6

    check_ok(run('test.py', DEMO_VOC, f'{work_dir}/iter_6.pth', '--work-dir', work_dir,
                 cwd=workspace))
    assert set(read_metrics(workspace / work_dir / 'metrics.json')) == VOC_KEYS


@pytest.mark.slow
def test_dist_launchers_run_two_processes_on_the_cpu(workspace):
    """``--launcher pytorch`` without CUDA: gloo process group, DDP with device_ids=None."""
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'CUDA_VISIBLE_DEVICES': '',
           'PYTHON': sys.executable, 'PORT': '29517'}

    def dist(script, *args):
        proc = subprocess.run([os.path.join(TOOLS, script), *args], cwd=workspace, env=env,
                              capture_output=True, text=True, timeout=600)
        check_ok(proc)
        return proc.stdout + proc.stderr

    log = dist('dist_train.sh', *train_args(DEMO_VOC, 'wd_dist', 2)[:1], '2',
               *train_args(DEMO_VOC, 'wd_dist', 2)[1:])
    assert "'backend': 'gloo'" in log and 'Distributed training: True' in log
    assert 'Iter(train) [2/2]' in log
    checkpoint = workspace / 'wd_dist' / 'iter_2.pth'
    assert load_checkpoint(checkpoint)['meta']['iter'] == 2
    dist('dist_test.sh', DEMO_VOC, str(checkpoint), '2', '--work-dir', 'wd_dist')
    assert set(read_metrics(workspace / 'wd_dist' / 'metrics.json')) == VOC_KEYS
