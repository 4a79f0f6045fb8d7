"""Smoke test of benchmarks/bench_train_step.py: one tiny step of every method, valid JSON.

No timing is asserted (speed belongs to the benchmark itself), only that the CLI runs every
method's real training step and reports consistent numbers.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import torch

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


PROBE = os.path.join(REPO, 'benchmarks', 'learning_probe.py')


def test_learning_probe_rows_and_attention_readout(tmp_path):
    """Two checkpoints of a tiny dense_distill run: one row each, and the attention readout
    obeys its definitions (each example's attention sums to 1 over the r = 4 positions)."""
    out = tmp_path / 'probe.json'
    proc = subprocess.run(
        [sys.executable, PROBE, '--method', 'dense_distill', '--steps', '2', '1', '--m', '4',
         '--n', '6', '--width', '8', '--threads', '1', '--json', str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())['rows']
    assert [r['steps'] for r in rows] == [1, 2]
    for row in rows:
        assert 0 <= row['top1'] <= 100 and math.isfinite(row['loss'])
        assert 0.25 - 1e-6 <= row['attention_max'] <= 1 + 1e-6
        assert len(row['examples_by_position']) == 4
        assert math.isclose(sum(row['examples_by_position']), 4, abs_tol=0.2)
        assert 1 - 1e-6 <= row['examples_per_mixture'] <= 4 + 1e-6
        assert row['embedding_mean'] >= 0 and 0 <= row['embedding_zero_fraction'] <= 1
    assert len([line for line in proc.stdout.splitlines() if line.startswith('{')]) == 2


def test_learning_probe_bad_option_is_a_one_line_error(tmp_path):
    out = tmp_path / 'probe.json'
    proc = subprocess.run([sys.executable, PROBE, '--cfg', 'detach_attention', '--json', str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode != 0
    assert '--cfg expects key=value' in proc.stderr.strip().splitlines()[-1]
    assert not out.exists()


def _probe_module():
    spec = importlib.util.spec_from_file_location('learning_probe', PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_embedding_health_hand_case():
    """Two images, a 1x2x2 map each, run in chunks of one: entries 0, 0, 1, 3 and 0, 2, 0, 2
    -> mean 8 / 8 = 1, zeros 4 / 8."""
    maps = {0: torch.tensor([[[0., 0.], [1., 3.]]]), 1: torch.tensor([[[0., 2.], [0., 2.]]])}
    images = torch.tensor([0., 1.]).view(2, 1, 1, 1)
    seen = []

    def encoder(batch):
        seen.append(batch.shape[0])
        return torch.stack([maps[int(v)] for v in batch.flatten()])

    health = _probe_module().embedding_health(encoder, images, chunk=1)
    assert health == dict(embedding_mean=1.0, embedding_zero_fraction=0.5)
    assert seen == [1, 1]
