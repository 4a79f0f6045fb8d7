"""Smoke test of benchmarks/bench_train_step.py: one tiny step of every method, valid JSON.

No timing is asserted (speed belongs to the benchmark itself), only that the CLI runs every
method's real training step and reports consistent numbers.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from mmtransfer.models import METHODS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, 'benchmarks', 'bench_train_step.py')
TINY = ['--device', 'cpu', '--arch', 'resnet18', '--size', '32', '--m', '4', '--n', '6',
        '--classes', '5', '--steps', '1', '--warmup', '0', '--threads', '1']


def _run(args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


def test_every_method_runs_one_step_and_writes_consistent_json(tmp_path):
    out = tmp_path / 'bench.json'
    proc = _run([*TINY, '--json', str(out)])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert set(report) == set(METHODS) | {'config'}
    assert report['config']['m'] == 4 and report['config']['steps'] == 1
    base = report['baseline']['step_ms']
    for method in METHODS:
        row = report[method]
        assert set(row) >= {'step_ms', 'img_per_s', 'ratio', 'peak_mem_mb'}
        assert all(math.isfinite(v) and v > 0 for v in row.values()), (method, row)
        assert math.isclose(row['img_per_s'], 4 / row['step_ms'] * 1e3, rel_tol=1e-2)
        assert math.isclose(row['ratio'], row['step_ms'] / base, rel_tol=1e-2, abs_tol=2e-3)
    assert report['baseline']['ratio'] == 1.0
    table = [line for line in proc.stdout.splitlines() if line.startswith('| ')]
    assert len(table) == 1 + len(METHODS)  # header + one row per method
    assert not list(tmp_path.glob('*.tmp'))


def test_bad_flag_is_a_one_line_error_and_writes_nothing(tmp_path):
    out = tmp_path / 'bench.json'
    proc = _run([*TINY, '--m', '0', '--json', str(out)])
    assert proc.returncode != 0
    assert '--m must be >= 1' in proc.stderr.strip().splitlines()[-1]
    assert not out.exists()
