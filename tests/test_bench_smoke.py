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

import pytest
import torch

from mmtransfer.models import METHODS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, 'benchmarks', 'bench_train_step.py')
TINY = ['--device', 'cpu', '--arch', 'resnet18', '--size', '32', '--m', '4', '--n', '6',
        '--classes', '5', '--steps', '1', '--warmup', '0', '--threads', '1']


def _run(args):
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


@pytest.mark.slow
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


@pytest.mark.slow
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


CIFAR_METHODS = os.path.join(REPO, 'benchmarks', 'bench_cifar_methods.py')
SPEED_VS_N = os.path.join(REPO, 'benchmarks', 'bench_speed_vs_n.py')
TINY_CIFAR = ['--device', 'cpu', '--arch', 'preactresnet18', '--width', '8', '--m', '8',
              '--classes', '5', '--images', '32', '--steps', '1', '--warmup', '1',
              '--threads', '1']


def _run_script(script, args):
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                          cwd=REPO, timeout=600)


def test_cifar_methods_times_every_method_and_writes_consistent_json(tmp_path):
    """Every method's real step on the device-augmented uint8 bank: one row each, positive
    times, images/s = m / step, ratio = step / baseline step."""
    out = tmp_path / 'cifar.json'
    proc = _run_script(CIFAR_METHODS, [*TINY_CIFAR, '--n', '6', '--json', str(out)])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert set(report) == set(METHODS) | {'config'}
    cfg = report['config']
    assert (cfg['arch'], cfg['width'], cfg['m'], cfg['n'], cfg['steps']) == (
        'preactresnet18', 8, 8, 6, 1)
    assert cfg['amp'] == 'off' and cfg['channels_last'] is False and cfg['prob'] == 0.5
    assert cfg['multimix_steps'] == [1, 1]  # the first timed step is a MultiMix one
    base = report['baseline']['step_ms']
    for method in METHODS:
        row = report[method]
        assert set(row) == {'step_ms', 'img_per_s', 'ratio', 'cpu_ms', 'cpu_ratio'}
        assert all(math.isfinite(v) and v > 0 for v in row.values()), (method, row)
        assert math.isclose(row['img_per_s'], 8 / row['step_ms'] * 1e3, rel_tol=1e-2)
        assert math.isclose(row['ratio'], row['step_ms'] / base, rel_tol=1e-2, abs_tol=2e-3)
    table = [line for line in proc.stdout.splitlines() if line.startswith('| ')]
    assert len(table) == 1 + len(METHODS)
    assert not [p for p in tmp_path.iterdir() if p.name != 'cifar.json']


@pytest.mark.slow
def test_speed_vs_n_writes_json_and_png(tmp_path):
    """Two values of n, two variants on a WRN-10-1: one row per (variant, n), one pooled
    baseline, and a PNG."""
    out, png = tmp_path / 'speed.json', tmp_path / 'speed.png'
    args = [*TINY_CIFAR, '--arch', 'wrn10_1', '--n', '20', '6', '--methods', 'multimix',
            'dense_distill', '--prob', '1', '--json', str(out), '--plot', str(png)]
    args.remove('--width')
    args.remove('8')
    proc = _run_script(SPEED_VS_N, args)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert set(report) == {'baseline', 'methods', 'config'}
    assert report['config']['n'] == [6, 20] and report['config']['prob'] == 1
    assert report['config']['baseline_steps'] == 2  # one timed step per value of n, pooled
    assert set(report['baseline']) == {'step_ms', 'img_per_s'}
    assert all(v > 0 for v in report['baseline'].values())
    assert list(report['methods']) == ['multimix', 'dense_distill']
    for rows in report['methods'].values():
        assert [r['n'] for r in rows] == [6, 20]
        for row in rows:
            assert set(row) == {'n', 'step_ms', 'img_per_s', 'ratio'}
            assert all(math.isfinite(v) and v > 0 for v in row.values()), row
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'MultiMix on every batch' in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ['speed.json', 'speed.png']


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_cifar_benchmarks_bad_flags_are_one_line_errors(tmp_path):
    out = tmp_path / 'x.json'
    for script, bad, message in [(CIFAR_METHODS, ['--m', '0'], '--m must be >= 1'),
                                 (SPEED_VS_N, ['--n', '100', '0'], '--n must be >= 1')]:
        proc = _run_script(script, [*TINY_CIFAR, *bad, '--json', str(out)])
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (bad, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith('error: ') and message in lines[0], lines
    assert not out.exists()


def test_cifar_benchmarks_refuse_bad_values_in_one_line(capsys):
    methods = _load('bench_cifar_methods', CIFAR_METHODS)
    cases = [(['--arch', 'resnet18'], '--arch must be preactresnet18'),
             (['--arch', 'wrn11_2'], 'depth = 6n + 4'),
             (['--arch', 'wrn16_8'], '--width: wrn16_8 takes its width'),
             (['--amp', 'bf16'], 'needs --device cuda'),
             (['--images', '4'], '--images must be >= --m'),
             (['--prob', '2'], '--prob must be in [0, 1]')]
    for bad, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            methods.parse_args([*TINY_CIFAR, *bad])
        lines = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 2
        assert len(lines) == 1 and lines[0].startswith('error: ') and message in lines[0], lines


def test_multimix_schedule_and_coin_seed():
    """The schedule takes MultiMix on exactly ceil(K p) of the steps 0 .. K - 1 (warm-up steps
    have k < 0), and the seed it picks makes MixPretrainer's coin (random.random() < p) take
    that branch."""
    import random

    bench = _load('bench_cifar_methods', CIFAR_METHODS)
    schedule = {p: [bench.multimix_schedule(k, p) for k in range(-2, 10)]
                for p in (0, 0.3, 0.5, 1)}
    assert schedule[0.5] == [True, False] * 6
    assert [sum(v[2:]) for v in schedule.values()] == [0, 3, 5, 10]
    assert schedule[0.3][2:] == [True, False, False, True, False, False, True, False, False, False]
    for p, branches in schedule.items():
        for k, multimix in enumerate(branches, start=-2):
            random.seed(bench.coin_seed(0, k, p, multimix))
            assert (random.random() < p) == multimix, (p, k)
