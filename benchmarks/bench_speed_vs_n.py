#!/usr/bin/env python
"""Training speed against n, the number of MultiMix interpolations: the axes of the paper's
Fig. 5 (CIFAR-100, images/s against n for the MultiMix variants, the baseline as a line).

For each n of ``--n``, a fresh model per variant (``multimix``, ``dense``, ``distill``,
``dense_distill``, or ``--methods``) is timed over full training steps exactly as
``bench_cifar_methods.py`` times them (the CIFAR recipe's step through ``MixPretrainer``, data as
a uint8 bank on the device augmented by ``DeviceAugmentPreprocessor``, bf16 autocast and
channels_last on CUDA by default), alternating step by step with ``baseline``. The baseline does
not depend on n: its steps from every n are pooled into one value (drawn as a horizontal line),
and each point's ratio is to that value. By default MultiMix runs as configured (the paper's
recipe: prob 0.5, input mixup on the other half of the batches); ``--prob 1`` times MultiMix on
every batch. The output says which, and how many timed steps took MultiMix: the coin follows
``bench_cifar_methods.py``'s schedule (MultiMix, mixup, ... at prob 0.5), so give an even
``--steps`` (times ``--chunk``) for the paper's half-and-half.

Outputs: a table (method x n, images/s), ``--json PATH`` (``baseline``, ``methods`` -> one row
per n, ``config``) and ``--plot PATH`` (PNG; log-x n, images/s, one line per method; the title
names the network and the device), both written atomically.

Example (GPU, PreActResNet-18 at full width, the paper's n values and more):
  python benchmarks/bench_speed_vs_n.py --json work_dirs/speed_vs_n.json \\
      --plot work_dirs/speed_vs_n.png
CPU, a narrow network (about 50 s on one core):
  python benchmarks/bench_speed_vs_n.py --device cpu --width 8 --steps 2 --warmup 1 \\
      --json work_dirs/speed_vs_n_cpu.json --plot work_dirs/speed_vs_n_cpu.png
"""
from __future__ import annotations

import argparse
import gc
import io
import json
import os
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # bench_cifar_methods, its sibling
from bench_cifar_methods import (  # noqa: E402  (puts the repository on sys.path too)
    BASELINE,
    Bench,
    add_bench_args,
    check_bench_args,
    config_report,
    header,
    make_bank,
    multimix_steps,
    prob_text,
    rate,
    setup_device,
    time_rounds,
)

from mmtransfer.cli import ArgumentParser, output_file, run  # noqa: E402
from mmtransfer.fileio import write_atomic, write_text_atomic  # noqa: E402

VARIANTS = ('multimix', 'dense', 'distill', 'dense_distill')
DEFAULT_NS = (100, 200, 500, 1000, 2000, 5000, 10000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog='benchmarks/bench_speed_vs_n.py',
                            description=__doc__.split('\n')[0].rstrip(','),
                            epilog=__doc__[__doc__.index('Example'):])
    add_bench_args(parser, steps=10, warmup=2)
    parser.add_argument('--n', type=int, nargs='+', default=list(DEFAULT_NS),
                        help='values of n (default ' + ' '.join(map(str, DEFAULT_NS)) + ')')
    parser.add_argument('--methods', nargs='+', choices=VARIANTS, default=list(VARIANTS),
                        help='MultiMix variants to time (default all four; baseline is always '
                             'timed)')
    parser.add_argument('--plot', metavar='PATH', type=output_file,
                        help='write the images/s against n plot here (PNG, atomic)')
    args = parser.parse_args(argv)
    check_bench_args(parser, args)
    if min(args.n) < 1:
        parser.error(f'--n must be >= 1, got {min(args.n)}')
    args.n = sorted(set(args.n))
    args.methods = list(dict.fromkeys(args.methods))
    return args


def measure(args: argparse.Namespace) -> dict:
    """For each n, time the variants against one baseline model; the JSON report."""
    device, sync = setup_device(args)
    images, labels = make_bank(args)
    baseline = Bench(BASELINE, args.n[0], args, device, images, labels)  # n is unused there
    load_start = os.getloadavg()
    started = time.perf_counter()
    rows: dict[str, list[dict]] = {method: [] for method in args.methods}
    steps, schedule = [], []
    for n in args.n:
        benches = {BASELINE: baseline}
        benches.update({method: Bench(method, n, args, device, images, labels)
                        for method in args.methods})
        steps.append(time_rounds(benches, args, sync))
        schedule.append(multimix_steps(benches.values()))
        for method in args.methods:
            bench = benches[method]
            step_ms = statistics.fmean(bench.times_ms)
            rows[method].append(dict(n=n, step_ms=round(step_ms, 3),
                                     img_per_s=round(args.m / step_ms * 1e3, 1)))
        del benches, bench  # free the models of this n before building the next ones
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    wall_s = time.perf_counter() - started
    base_ms = statistics.fmean(baseline.times_ms)
    for row in (row for method_rows in rows.values() for row in method_rows):
        row['ratio'] = round(row['step_ms'] / base_ms, 3)
    config = config_report(args, device, min(steps), wall_s, load_start)
    config.update(n=args.n, methods=args.methods, baseline_steps=len(baseline.times_ms),
                  multimix_steps=min(schedule))  # per n (the fewest if --max-minutes cut one)
    baseline_row = dict(step_ms=round(base_ms, 3), img_per_s=round(args.m / base_ms * 1e3, 1))
    return dict(baseline=baseline_row, methods=rows, config=config)


def markdown_table(report: dict) -> str:
    """Rows: n; columns: images/s of each variant (ratio of step time to baseline)."""
    methods = list(report['methods'])
    ns = [row['n'] for row in report['methods'][methods[0]]]
    base = report['baseline']
    lines = ['| n | ' + ' | '.join(methods) + ' |', '|---:|' + '---:|' * len(methods)]
    for i, n in enumerate(ns):
        cells = [f'{rate(report["methods"][m][i]["img_per_s"])} '
                 f'({report["methods"][m][i]["ratio"]:.2f}x)' for m in methods]
        lines.append(f'| {n} | ' + ' | '.join(cells) + ' |')
    lines.append(f'\nbaseline (any n): {rate(base["img_per_s"])} images/s, {base["step_ms"]:.1f} '
                 'ms/step; in brackets: step time / baseline step time')
    return '\n'.join(lines)


def plot(report: dict, path: str) -> None:
    """images/s against n (log x), one line per variant, the baseline dashed; PNG at ``path``."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    cfg = report['config']
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for method, rows in report['methods'].items():
        ax.plot([r['n'] for r in rows], [r['img_per_s'] for r in rows], 'o-', label=method)
    ax.axhline(report['baseline']['img_per_s'], color='black', linestyle='--', label='baseline')
    ax.set_xscale('log')
    ns = [r['n'] for r in next(iter(report['methods'].values()))]
    ax.set_xticks(ns, [f'{n:,}' for n in ns])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(bottom=0)
    ax.set(xlabel='n (interpolated points per mini-batch)', ylabel='training images/s')
    precision = '' if cfg['amp'] == 'off' else f', {cfg["amp"]}'
    ax.set_title(f'{cfg["network"]}, {cfg["size"]} px, m = {cfg["m"]}, c = {cfg["classes"]}\n'
                 f'{cfg["device_name"]} ({cfg["device"]}{precision}); '
                 + ('MultiMix every batch' if cfg['prob'] == 1
                    else f'MultiMix prob {cfg["prob"]}'), fontsize=9)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=110)
    plt.close(fig)
    write_atomic(path, lambda f: f.write(buffer.getvalue()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = measure(args)
    print(header(report['config']) + '\n')
    print(markdown_table(report))
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2) + '\n')
        print(f'\nwrote {args.json}')
    if args.plot:
        plot(report, args.plot)
        print(f'wrote {args.plot} ({prob_text(report["config"])})')
    return 0


if __name__ == '__main__':
    sys.exit(run(main))
