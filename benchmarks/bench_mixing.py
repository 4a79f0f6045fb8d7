#!/usr/bin/env python
"""Time MultiMix mixing + loss at ImageNet shapes: reference paths vs the fast paths.

Each case runs forward + backward (w.r.t. the features) of the mixing and the loss only, with a
linear head of fixed weights in between, in a fresh subprocess so that peak memory is its own:

  multimix_ref   mix features [n, d] -> linear head -> soft CE with [n, c] targets
  multimix_fast  linear head on the m features -> mix logits -> mixed_label_cross_entropy
  dense_ref      attention -> dense_multimix of features [n, d, r] -> 1x1 head
                 -> dense_cross_entropy with [n, c, r] targets
  dense_fast     attention -> 1x1 head on [m, d, r] -> dense_mixing_weights + dense_mix of logits
                 -> dense_label_cross_entropy
  dense_blocked  attention -> 1x1 head on [m, d, r] -> dense_mixing_weights
                 -> dense_mixed_label_cross_entropy (the pretrainer's path at block 4: the
                 logits are mixed a block of positions at a time, no [n, c, r] tensor)
  sample_lambda, sample_lambda_dense   drawing Lambda [m, n] / [r, m, n] (forward only)

Peak memory is the growth above the inputs: torch.cuda.max_memory_allocated on GPU, the
process's peak resident set (VmHWM, reset through /proc/self/clear_refs) on CPU.

Example:
  python benchmarks/bench_mixing.py --device cpu --repeats 3 --json work_dirs/bench_mixing.json
ViT-S/16's 14 x 14 tokens (d = 384, r = 196):
  python benchmarks/bench_mixing.py --device cpu --d 384 --r 196 --repeats 2 \
      --cases dense_fast dense_blocked
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mmtransfer.mixing import (
    dense_cross_entropy,
    dense_label_cross_entropy,
    dense_mix,
    dense_mixed_label_cross_entropy,
    dense_mixing_weights,
    dense_multimix,
    mix,
    mixed_label_cross_entropy,
    multimix,
    sample_lambda,
    sample_lambda_dense,
    soft_cross_entropy,
    spatial_attention,
)

CASES = ('multimix_ref', 'multimix_fast', 'dense_ref', 'dense_fast', 'dense_blocked',
         'sample_lambda', 'sample_lambda_dense')
PAIRS = (('multimix_ref', 'multimix_fast'), ('dense_ref', 'dense_fast'),
         ('dense_fast', 'dense_blocked'))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark MultiMix mixing + loss paths.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='example:\n  python benchmarks/bench_mixing.py --device cpu --repeats 3 '
               '--json mix.json')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--m', type=int, default=128, help='batch size (examples mixed)')
    parser.add_argument('--n', type=int, default=1000, help='interpolated points')
    parser.add_argument('--d', type=int, default=2048, help='embedding width')
    parser.add_argument('--c', type=int, default=1000, help='classes')
    parser.add_argument('--r', type=int, default=49, help='spatial positions (7x7)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per case')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs per case')
    parser.add_argument('--cases', nargs='+', choices=CASES, default=list(CASES))
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--json', metavar='PATH', help='also write the results here')
    parser.add_argument('--case', choices=CASES, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args(argv)
    for name in ('m', 'n', 'd', 'c', 'r', 'repeats'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1, got {getattr(args, name)}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    return args


def build_case(name: str, args: argparse.Namespace) -> Callable[[], None]:
    """Allocate the inputs of case ``name`` and return one step (forward + backward)."""
    gen = torch.Generator().manual_seed(0)
    device, (m, n, d, c, r) = torch.device(args.device), (args.m, args.n, args.d, args.c, args.r)

    def randn(*shape: int, grad: bool = False) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).to(device).requires_grad_(grad)

    labels = torch.randint(c, (m,), generator=gen).to(device)
    weight, bias = randn(c, d) / d ** 0.5, randn(c)
    if name == 'sample_lambda':
        return lambda: sample_lambda(m, n, device=device)
    if name == 'sample_lambda_dense':
        return lambda: sample_lambda_dense(m, n, r, device=device)
    if name.startswith('multimix'):
        z, lam = randn(m, d, grad=True), sample_lambda(m, n, generator=gen, device=device)
        targets = F.one_hot(labels, c).float()

        def multimix_ref() -> torch.Tensor:
            z_mix, y_mix = multimix(z, targets, lam)
            return soft_cross_entropy(F.linear(z_mix, weight, bias), y_mix)

        def multimix_fast() -> torch.Tensor:
            return mixed_label_cross_entropy(mix(F.linear(z, weight, bias), lam), labels, lam)

        loss_fn = multimix_ref if name == 'multimix_ref' else multimix_fast
    else:
        z, lam = randn(m, d, r, grad=True), sample_lambda_dense(m, n, r, generator=gen,
                                                                device=device)
        targets = F.one_hot(labels, c).float()

        def head(x: torch.Tensor) -> torch.Tensor:        # 1x1 conv: [*, d, r] -> [*, c, r]
            return torch.matmul(weight, x) + bias[:, None]

        def dense_ref() -> torch.Tensor:
            z_mix, y_mix, s = dense_multimix(z, targets, lam, spatial_attention(z))
            return dense_cross_entropy(head(z_mix), y_mix, s)

        def dense_fast() -> torch.Tensor:
            w, s = dense_mixing_weights(lam, spatial_attention(z))
            return dense_label_cross_entropy(dense_mix(head(z), w), labels, w, s)

        def dense_blocked() -> torch.Tensor:
            w, s = dense_mixing_weights(lam, spatial_attention(z))
            return dense_mixed_label_cross_entropy(head(z), labels, w, s)

        loss_fn = dict(dense_ref=dense_ref, dense_fast=dense_fast,
                       dense_blocked=dense_blocked)[name]

    def step() -> None:
        z.grad = None
        loss_fn().backward()

    return step


def _proc_status_kib(key: str) -> int:
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {key}')


def run_case(args: argparse.Namespace) -> dict:
    """Child process: time one case and measure its peak memory above the inputs."""
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device == 'cuda'
    step = build_case(args.case, args)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open('/proc/self/clear_refs', 'w') as clear_refs:
            clear_refs.write('5')                          # reset VmHWM to the current RSS
        base = _proc_status_kib('VmRSS') * 1024
    times = []
    for i in range(args.warmup + args.repeats):
        start = time.perf_counter()
        step()
        sync()
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1e3)
    peak = torch.cuda.max_memory_allocated() if cuda else _proc_status_kib('VmHWM') * 1024
    return dict(case=args.case, median_ms=statistics.median(times), min_ms=min(times),
                peak_mib=(peak - base) / 2**20, repeats=args.repeats)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.case:
        print('RESULT ' + json.dumps(run_case(args)), flush=True)
        return
    shapes = dict(m=args.m, n=args.n, d=args.d, c=args.c, r=args.r)
    print(f'device={args.device} threads={args.threads or torch.get_num_threads()} '
          + ' '.join(f'{k}={v}' for k, v in shapes.items()) + f' repeats={args.repeats}')
    print(f'{"case":<22}{"median ms":>12}{"min ms":>12}{"peak MiB":>12}')
    forwarded = [f'--{k}={v}' for k, v in shapes.items()] + [
        f'--device={args.device}', f'--repeats={args.repeats}', f'--warmup={args.warmup}']
    if args.threads:
        forwarded.append(f'--threads={args.threads}')
    results = {}
    for name in args.cases:
        proc = subprocess.run([sys.executable, __file__, *forwarded, '--case', name],
                              capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT ')]
        if proc.returncode != 0 or not lines:
            sys.exit(f'bench_mixing: case {name} failed: {proc.stderr.strip().splitlines()[-1:]}')
        result = results[name] = json.loads(lines[-1][len('RESULT '):])
        print(f'{name:<22}{result["median_ms"]:>12.2f}{result["min_ms"]:>12.2f}'
              f'{result["peak_mib"]:>12.1f}', flush=True)
    for ref, fast in PAIRS:
        if ref in results and fast in results:
            print(f'{fast} vs {ref}: {results[ref]["median_ms"] / results[fast]["median_ms"]:.1f}x'
                  f' faster, {results[ref]["peak_mib"] / max(results[fast]["peak_mib"], 1e-3):.1f}x'
                  ' less peak memory')
    if args.json:
        report = dict(device=args.device, shapes=shapes, torch=torch.__version__,
                      threads=args.threads or torch.get_num_threads(), results=results)
        folder = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile('w', dir=folder, suffix='.tmp', delete=False) as tmp:
            json.dump(report, tmp, indent=2)
        os.replace(tmp.name, args.json)
        print(f'wrote {args.json}')


if __name__ == '__main__':
    main()
