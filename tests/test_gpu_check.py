"""tools/gpu_check.py at tiny shapes on the CPU: every part runs and the report says so."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mmtransfer.models import METHODS
from tests.conftest import REPO


def _run(*args, cwd=REPO):
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    return subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'gpu_check.py'), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_gpu_check_on_cpu_runs_every_part_and_writes_the_report(tmp_path):
    proc = _run('--device', 'cpu', '--out', str(tmp_path), '--ddp-procs', '2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / 'report.json').read_text())
    assert report['ok'] and report['device'] == 'cpu'
    assert report['environment']['mmcv'] == '2.1.0'
    assert report['ops']['nms_equal'] and report['ops']['roi_align_max_abs_diff'] == 0.0
    rows = {r['method']: r for r in report['methods']}
    assert set(rows) == set(METHODS)
    assert all(r['finite'] and r['img_per_s'] > 0 and r['amp'] == 'bf16' for r in rows.values())
    assert rows['baseline']['ratio'] == 1.0
    assert report['detection']['ok'] and 'pascal_voc/mAP' in report['detection']['metrics']
    assert report['ddp']['identical'] and report['ddp']['backend'] == 'gloo'
    md = (tmp_path / 'report.md').read_text()
    assert '**PASS**' in md and '| bf16 | dense_distill |' in md


@pytest.mark.slow
def test_gpu_check_bad_flags_are_one_line_errors(tmp_path):
    proc = _run('--device', 'cpu', '--out', str(tmp_path), '--methods', 'nope')
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --methods / --amp: unknown 'nope'"
    assert not (tmp_path / 'report.json').exists()
