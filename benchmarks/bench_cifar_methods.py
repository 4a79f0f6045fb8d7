#!/usr/bin/env python
"""Images/s of every pretraining method on the CIFAR networks, against ``baseline``.

One step is what the CIFAR recipe (``configs/cifar/cifar100_<arch>.py``) runs per iteration:
``MixPretrainer.train_step`` on a collated batch of indices into a synthetic uint8 image bank
``[images, 3, size, size]`` held on the device, which ``DeviceAugmentPreprocessor`` gathers,
crops (zero padding 4), flips and normalises there (both views for the distillation methods);
then forward, loss, backward and the SGD step (momentum 0.9, weight decay 1e-4), and for
``distill`` / ``dense_distill`` the EMA teacher update (``TeacherEMAHook``'s call). The mixing
options are the recipe's (n = 1000, alpha ~ U[0.5, 2], MultiMix with prob 0.5, gamma 0.5;
WRN: ``dense_pool=2``), n and the number of classes as flagged. On CUDA the defaults are the
trainer's: bf16 autocast (``AmpOptimWrapper``) and channels_last (``--amp off``,
``--no-channels-last`` turn them off).

Timing: after ``--warmup`` untimed rounds, each round runs ``--chunk`` consecutive steps of every
method (the order rotated by one method per round; CUDA synchronised at both ends of a chunk).
A method's step time is the mean over its timed steps (images/s = m / mean: the throughput of a
run; a MultiMix method's steps are of two kinds, MultiMix and input mixup, so a median would
pick one). The MultiMix methods' coin follows a schedule of the same frequency p: step k takes
MultiMix iff ceil((k + 1) p) > ceil(k p), k = 0 at the first timed step (p = 0.5: MultiMix,
mixup, MultiMix, ...). Every MultiMix method thus runs the same branches, an even number of
timed steps holds exactly half of each, and a single timed step is a MultiMix one (the JSON's
``multimix_steps``: [MultiMix steps, timed steps]). The schedule is applied by seeding Python's
RNG before each step with a seed whose first draw gives that branch; torch's RNG is reseeded
alike for every method before each round. Not timed: the loader's collation of the m index
items (about 0.1 ms, see ``bench_cifar_augment.py``) and the first copy of the bank to the
device.

Example (GPU; the defaults are the paper's CIFAR-100 PreActResNet-18 setting):
  python benchmarks/bench_cifar_methods.py --arch preactresnet18 --json work_dirs/cifar_methods.json
CPU, full width, one MultiMix and one mixup step per method (about 75 s on 2 idle cores):
  python benchmarks/bench_cifar_methods.py --device cpu --threads 2 --warmup 0 --steps 2
"""
from __future__ import annotations

import argparse
import datetime
import gc
import itertools
import json
import math
import os
import os.path as osp
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing too

from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402

import mmtransfer  # noqa: E402,F401  (applies the torch / mmengine compatibility fix)
from mmtransfer.cli import ArgumentParser, output_file, run  # noqa: E402
from mmtransfer.data.bank import BankDataset  # noqa: E402
from mmtransfer.fileio import write_text_atomic  # noqa: E402
from mmtransfer.models import METHODS, MixConfig, MixPretrainer  # noqa: E402
from mmtransfer.models.wide_resnet import parse_wrn  # noqa: E402

BASELINE = 'baseline'
CIFAR_CONFIGS = osp.join(REPO, 'configs', 'cifar')
ARCH_NAMES = {'preactresnet18': 'PreActResNet-18'}


def arch_label(arch: str, width: int | None) -> str:
    """``'PreActResNet-18'``, ``'PreActResNet-18 (width 8)'``, ``'WRN16-8'``."""
    wrn = parse_wrn(arch)
    name = f'WRN{wrn[0]}-{wrn[1]}' if wrn else ARCH_NAMES.get(arch, arch)
    return name if width is None else f'{name} (width {width})'


def add_bench_args(parser: argparse.ArgumentParser, steps: int, warmup: int) -> None:
    """The flags every CIFAR speed benchmark shares (network, batch, device, timing)."""
    parser.add_argument('--device', choices=('cpu', 'cuda'),
                        default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='default: cuda when available')
    parser.add_argument('--arch', default='preactresnet18',
                        help='preactresnet18 (default) or a wide ResNet wrn<depth>_<k> (wrn16_8)')
    parser.add_argument('--width', type=int, default=None,
                        help='stem channels of PreActResNet-18 (default 64; 8 or 16 for a CPU '
                             'smoke run)')
    parser.add_argument('--size', type=int, default=32, help='image side in pixels (32)')
    parser.add_argument('--m', type=int, default=128, help='batch size per step (128)')
    parser.add_argument('--classes', type=int, default=100, help='number of classes c (100)')
    parser.add_argument('--prob', type=float, default=None,
                        help='probability of a MultiMix batch (default: the recipe\'s 0.5, input '
                             'mixup on the other batches; 1: MultiMix on every batch)')
    parser.add_argument('--amp', choices=('bf16', 'fp16', 'off'), default=None,
                        help='autocast on CUDA (default bf16 there, as pretrain/train.py; off on '
                             'CPU)')
    parser.add_argument('--no-channels-last', action='store_true',
                        help='keep NCHW on CUDA (default there: channels_last, as the trainer)')
    parser.add_argument('--steps', type=int, default=steps,
                        help=f'timed rounds per method (default {steps})')
    parser.add_argument('--warmup', type=int, default=warmup,
                        help=f'untimed rounds first (default {warmup})')
    parser.add_argument('--chunk', type=int, default=None,
                        help='consecutive steps of one method per round, timed together '
                             '(default 10 on CUDA, 1 on CPU)')
    parser.add_argument('--max-minutes', type=float, default=8.0,
                        help='start no new timed round past this many minutes of stepping (8)')
    parser.add_argument('--images', type=int, default=50_000,
                        help='images in the synthetic uint8 bank (50,000, as CIFAR\'s train split)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default 1 on CPU; torch\'s default with CUDA)')
    parser.add_argument('--seed', type=int, default=0, help='seed of models, data and mixing')
    parser.add_argument('--json', metavar='PATH', type=output_file,
                        help='also write the results here (atomic)')


def check_bench_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses bad values in one ``error:`` line; fills in the device-dependent defaults."""
    for name in ('size', 'm', 'classes', 'steps', 'images'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1, got {getattr(args, name)}')
    for name in ('warmup', 'seed'):
        if getattr(args, name) < 0:
            parser.error(f'--{name} must be >= 0, got {getattr(args, name)}')
    for name in ('width', 'chunk', 'threads'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1, got {getattr(args, name)}')
    try:
        wrn = parse_wrn(args.arch)
    except ValueError as err:
        parser.error(str(err))
    if args.arch != 'preactresnet18' and wrn is None:
        parser.error(f'--arch must be preactresnet18 or wrn<depth>_<k> (wrn16_8), got '
                     f'{args.arch!r}')
    if wrn is not None and args.width is not None:
        parser.error(f'--width: {args.arch} takes its width from its name (wrn16_2 is WRN16-8 '
                     'at a quarter of the width)')
    if args.size < 16:
        parser.error(f'--size must be >= 16, got {args.size}')
    if args.images < args.m:
        parser.error(f'--images must be >= --m ({args.m}), got {args.images}')
    if args.max_minutes <= 0:
        parser.error(f'--max-minutes must be > 0, got {args.max_minutes}')
    if args.prob is not None and not 0.0 <= args.prob <= 1.0:
        parser.error(f'--prob must be in [0, 1], got {args.prob}')
    cuda = args.device == 'cuda'
    if cuda and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.amp not in (None, 'off') and not cuda:
        parser.error(f'--amp {args.amp} needs --device cuda (the trainer offers no CPU autocast)')
    args.amp = args.amp or ('bf16' if cuda else 'off')
    args.channels_last = cuda and not args.no_channels_last
    args.chunk = args.chunk or (10 if cuda else 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog='benchmarks/bench_cifar_methods.py',
                            description=__doc__.split('\n')[0],
                            epilog=__doc__[__doc__.index('Example'):])
    add_bench_args(parser, steps=20, warmup=2)
    parser.add_argument('--n', type=int, default=1000, help='MultiMix interpolated points (1000)')
    parser.add_argument('--methods', nargs='+', choices=['all', *METHODS], default=['all'],
                        help='methods to time (default all; baseline is always added)')
    args = parser.parse_args(argv)
    check_bench_args(parser, args)
    if args.n < 1:
        parser.error(f'--n must be >= 1, got {args.n}')
    chosen = list(METHODS) if 'all' in args.methods else args.methods
    args.methods = [BASELINE] + [m for m in dict.fromkeys(chosen) if m != BASELINE]
    return args


def recipe(arch: str) -> Config:
    """The CIFAR-100 recipe of ``arch`` (a WRN other than wrn16_8 takes wrn16_8's: the same 8x8
    embedding grid at 32 px, pooled to 4x4 for dense MultiMix)."""
    name = 'preactresnet18' if arch == 'preactresnet18' else 'wrn16_8'
    return Config.fromfile(osp.join(CIFAR_CONFIGS, f'cifar100_{name}.py'))


def make_bank(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic CIFAR-like split: uint8 ``[images, 3, size, size]`` and ``long[images]``."""
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.randint(0, 256, (args.images, 3, args.size, args.size), generator=gen,
                           dtype=torch.uint8)
    return images, torch.randint(0, args.classes, (args.images,), generator=gen)


class Bench:
    """One method's model, optimizer wrapper and data, and its measurements.

    The data is a :class:`BankDataset` over ``images`` uint8 ``[N, 3, H, W]`` (two views for the
    distillation methods); each step takes the next m indices of a fixed permutation, collated
    as the loader collates ``BankDataset`` items: ``index[m]``, ``labels[m]``, ``bank`` (the key,
    m times).
    """

    def __init__(self, method: str, n: int, args: argparse.Namespace, device: torch.device,
                 images: torch.Tensor, labels: torch.Tensor):
        cfg = recipe(args.arch)
        mix = dict(cfg.model.mix, method=method, n=n)
        if args.prob is not None:
            mix['prob'] = args.prob
        mix_cfg = MixConfig.from_dict(mix)
        self.distill = mix_cfg.distill
        self.prob = mix_cfg.prob if mix_cfg.mixing == 'multimix' else None  # None: no coin
        self.seed, self.k = args.seed, -args.warmup * args.chunk  # k = 0: first timed step
        self.dataset = BankDataset(images, labels, tuple(map(str, range(args.classes))),
                                   num_views=2 if self.distill else 1, name=f'bench-{method}')
        torch.manual_seed(args.seed)  # the same initial weights for every method
        self.model = MixPretrainer(
            arch=args.arch, num_classes=args.classes, mix=mix, width=args.width,
            channels_last=args.channels_last,
            data_preprocessor=dict(cfg.model.data_preprocessor, channels_last=args.channels_last))
        self.model.to(device).train()
        optim_cfg = cfg.optim_wrapper.copy()
        if args.amp != 'off':  # as pretrain/train.py sets it
            optim_cfg.update(type='AmpOptimWrapper', loss_scale='dynamic',
                             dtype='bfloat16' if args.amp == 'bf16' else 'float16')
        self.optim_wrapper = build_optim_wrapper(self.model, optim_cfg)
        self.m = args.m
        self.order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(
            args.seed))
        self.cursor = 0
        self.model.data_preprocessor(self.next_batch(), True)  # copies the bank to the device
        self.cursor = 0
        self.times_ms: list[float] = []  # per timed round: chunk time / chunk
        self.cpu_ms: list[float] = []
        self.branches: list[bool] = []    # per timed step: took MultiMix (coin methods only)
        self.last_branch: bool | None = None
        self.peak_growth = 0
        self.last_losses: dict = {}

    def next_batch(self) -> dict:
        """The next m indices of the permutation (wrapping round), collated."""
        if self.cursor + self.m > len(self.order):
            self.cursor = 0
        index = self.order[self.cursor:self.cursor + self.m]
        self.cursor += self.m
        return dict(index=index, labels=self.dataset.labels[index],
                    bank=[self.dataset.bank_key] * self.m)

    def step(self) -> None:
        """One training iteration as mmengine's loop + ``TeacherEMAHook`` run it; a MultiMix
        method's coin follows :func:`multimix_schedule`."""
        if self.prob is not None:
            self.last_branch = multimix_schedule(self.k, self.prob)
            random.seed(coin_seed(self.seed, self.k, self.prob, self.last_branch))
        self.k += 1
        self.last_losses = self.model.train_step(self.next_batch(), self.optim_wrapper)
        if self.distill:
            self.model.update_teacher()

    def state_bytes(self) -> int:
        """Parameters, buffers (EMA teacher included) and optimizer state."""
        from mmtransfer.models.memory import training_state_bytes

        return training_state_bytes(self.model, self.optim_wrapper.optimizer)

    def check_finite(self, name: str) -> None:
        for key, value in self.last_losses.items():
            if not torch.isfinite(value).all():
                raise FloatingPointError(f'{name}: {key} = {value.item()} is not finite')


def multimix_schedule(k: int, prob: float) -> bool:
    """Whether step ``k`` (an integer, 0 at the first timed step) takes MultiMix: exactly
    ``ceil(K prob)`` of the steps 0 .. K - 1 do, spread evenly (prob 0.5: True, False, True, ...;
    prob 1: always; prob 0: never)."""
    def taken(steps: int) -> int:  # rounded first: 10 * 0.3 is 3.0000000000000004
        return math.ceil(round(steps * prob, 9))

    return taken(k + 1) > taken(k)


def coin_seed(seed: int, k: int, prob: float, multimix: bool) -> int:
    """A seed of Python's RNG whose first ``random()`` makes ``MixPretrainer``'s coin
    (``random.random() < prob``: MultiMix) take the branch ``multimix`` (2 tries on average at
    prob 0.5; for k and seed distinct seeds, so the draws after the coin vary)."""
    for candidate in itertools.count((seed * 1_000_003 + k) * 1_000):
        if (random.Random(candidate).random() < prob) == multimix:
            return candidate
    raise AssertionError('unreachable')


def setup_device(args: argparse.Namespace) -> tuple[torch.device, Callable[[], None]]:
    """The device and its synchronisation; one torch thread on CPU unless ``--threads``."""
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    if args.threads or not cuda:
        torch.set_num_threads(args.threads or 1)
    if cuda:
        torch.backends.cudnn.benchmark = True  # as env_cfg in configs/pretrain/base.py
    return device, (torch.cuda.synchronize if cuda else (lambda: None))


def time_rounds(benches: dict[str, Bench], args: argparse.Namespace, sync) -> int:
    """``--warmup`` then up to ``--steps`` timed rounds of ``--chunk`` steps of every bench,
    the order rotated each round; appends each bench's ms/step to its lists. Returns the timed
    rounds done (fewer than ``--steps`` when ``--max-minutes`` ran out)."""
    cuda = args.device == 'cuda'
    names = list(benches)
    started = time.perf_counter()
    rounds = 0
    gc.disable()  # no collector pause inside a timed step; autograd frees by reference count
    try:
        while rounds < args.warmup + args.steps:
            round_start = time.perf_counter()
            gc.collect()
            shift = rounds % len(names)
            for name in names[shift:] + names[:shift]:
                bench = benches[name]
                random.seed(args.seed + rounds)  # the same draws for every method (coin: step())
                torch.manual_seed(args.seed + rounds)
                sync()
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                    start_bytes = torch.cuda.memory_allocated()
                branches = []
                tic, cpu_tic = time.perf_counter(), time.process_time()
                for _ in range(args.chunk):
                    bench.step()
                    branches.append(bench.last_branch)
                sync()
                elapsed = (time.perf_counter() - tic) * 1e3 / args.chunk
                cpu = (time.process_time() - cpu_tic) * 1e3 / args.chunk
                if rounds >= args.warmup:
                    bench.times_ms.append(elapsed)
                    bench.cpu_ms.append(cpu)
                    if bench.prob is not None:
                        bench.branches += branches
                    if cuda:
                        bench.peak_growth = max(bench.peak_growth,
                                                torch.cuda.max_memory_allocated() - start_bytes)
            rounds += 1
            now = time.perf_counter()
            if rounds > args.warmup and now - started + (now - round_start) > args.max_minutes * 60:
                break  # the next round would overrun the time budget
    finally:
        gc.enable()
    for name, bench in benches.items():  # one host read per method, after timing
        bench.check_finite(name)
    return rounds - args.warmup


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        with open('/proc/cpuinfo') as info:
            names = [line.split(':', 1)[1].strip() for line in info
                     if line.startswith('model name')]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def config_report(args: argparse.Namespace, device: torch.device, steps: int,
                  wall_s: float, load_start: tuple) -> dict:
    """The run's settings and machine, for the JSON and the header line."""
    cuda = device.type == 'cuda'
    return dict(
        device=args.device,
        device_name=torch.cuda.get_device_name(device) if cuda else cpu_name(),
        cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
        arch=args.arch, width=args.width, network=arch_label(args.arch, args.width),
        size=args.size, m=args.m, classes=args.classes,
        prob=args.prob if args.prob is not None else recipe(args.arch).model.mix.prob,
        prob_source='--prob' if args.prob is not None else 'recipe',
        amp=args.amp, channels_last=args.channels_last, augment='DeviceAugmentPreprocessor',
        steps=steps, chunk=args.chunk, warmup=args.warmup, seed=args.seed, images=args.images,
        wall_s=round(wall_s, 1), loadavg_start=[round(x, 2) for x in load_start],
        loadavg_end=[round(x, 2) for x in os.getloadavg()],
        torch=torch.__version__, date=datetime.datetime.now().isoformat(timespec='seconds'))


def multimix_steps(benches) -> list[int] | None:
    """``[MultiMix steps, timed steps]`` of the MultiMix methods (the same for all of them, by
    the schedule), or None when none is timed."""
    coin = [b for b in benches if b.prob is not None]
    return [sum(coin[0].branches), len(coin[0].branches)] if coin else None


def prob_text(cfg: dict) -> str:
    """How often MultiMix runs, in words, for the output."""
    done = cfg.get('multimix_steps')
    done = f'; MultiMix on {done[0]} of {done[1]} timed steps' if done else ''
    if cfg['prob'] == 1:
        return 'MultiMix on every batch (--prob 1)' + done
    return (f'MultiMix with prob {cfg["prob"]} ({cfg["prob_source"]}), input mixup on the other '
            f'batches{done}')


def header(cfg: dict) -> str:
    return (f'{cfg["device"]} ({cfg["device_name"]}, {cfg["cpu_count"]} cpus, {cfg["threads"]} '
            f'threads), {cfg["network"]}, {cfg["size"]} px, m={cfg["m"]}, classes={cfg["classes"]}'
            f', amp={cfg["amp"]}, channels_last={cfg["channels_last"]}, steps={cfg["steps"]} x '
            f'chunk {cfg["chunk"]} after {cfg["warmup"]} warm-up rounds; {prob_text(cfg)}\n'
            f'load average (1/5/15 min): start {cfg["loadavg_start"]}, end '
            f'{cfg["loadavg_end"]}; wall {cfg["wall_s"]} s')


def measure(args: argparse.Namespace) -> dict:
    """Build every method, alternate their steps, return the JSON report."""
    device, sync = setup_device(args)
    images, labels = make_bank(args)
    benches = {method: Bench(method, args.n, args, device, images, labels)
               for method in args.methods}
    load_start = os.getloadavg()
    started = time.perf_counter()
    steps = time_rounds(benches, args, sync)
    wall_s = time.perf_counter() - started
    base_ms = statistics.fmean(benches[BASELINE].times_ms)
    base_cpu = statistics.fmean(benches[BASELINE].cpu_ms)
    report = {}
    for method, bench in benches.items():
        step_ms, cpu_ms = statistics.fmean(bench.times_ms), statistics.fmean(bench.cpu_ms)
        row = dict(step_ms=round(step_ms, 3), img_per_s=round(args.m / step_ms * 1e3, 1),
                   ratio=round(step_ms / base_ms, 3))
        if device.type == 'cuda':
            row['peak_mem_mb'] = round((bench.state_bytes() + bench.peak_growth) / 2**20, 1)
        else:  # process CPU time: a second, load-independent view of the cost
            row.update(cpu_ms=round(cpu_ms, 2), cpu_ratio=round(cpu_ms / base_cpu, 3))
        report[method] = row
    report['config'] = dict(config_report(args, device, steps, wall_s, load_start), n=args.n,
                            multimix_steps=multimix_steps(benches.values()))
    return report


def rate(img_per_s: float) -> str:
    """Images/s for a table: ``25,314`` or ``31.2``."""
    return f'{img_per_s:,.0f}' if img_per_s >= 1000 else f'{img_per_s:.1f}'


def markdown_table(report: dict) -> str:
    methods = [k for k in report if k != 'config']
    extra = [k for k in ('peak_mem_mb', 'cpu_ms', 'cpu_ratio') if k in report[methods[0]]]
    titles = dict(peak_mem_mb='peak mem MB', cpu_ms='CPU-time ms', cpu_ratio='CPU-time ratio')
    formats = dict(peak_mem_mb='.0f', cpu_ms='.1f', cpu_ratio='.3f')
    rows = ['| method | ms/step | images/s | ratio to baseline |'
            + ''.join(f' {titles[k]} |' for k in extra),
            '|---|---:|---:|---:|' + '---:|' * len(extra)]
    for method in methods:
        r = report[method]
        rows.append(f'| {method} | {r["step_ms"]:.1f} | {rate(r["img_per_s"])} | {r["ratio"]:.3f} |'
                    + ''.join(f' {r[k]:{formats[k]}} |' for k in extra))
    return '\n'.join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = measure(args)
    print(f'n={args.n}, ' + header(report['config']) + '\n')
    print(markdown_table(report))
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2) + '\n')
        print(f'\nwrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(run(main))
