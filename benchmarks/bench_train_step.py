#!/usr/bin/env python
"""Time full pretraining steps of every method against ``baseline``, in one process.

A step is what mmengine's Runner does per iteration: ``model.train_step(data, optim_wrapper)``
(uint8 -> float preprocessing, forward, loss, ``parse_losses``, backward, SGD step) and, for the
distillation methods, ``model.update_teacher()`` (what ``TeacherEMAHook`` calls), so the
teacher forward on the second view and the EMA update are timed too. Each model is a
:class:`~mmtransfer.models.MixPretrainer` built with the mixing options of
``configs/pretrain/<method>.py`` (paper defaults: MultiMix with prob 0.5, alpha ~ U[0.5, 2],
gamma 0.5) and the config's optimizer (SGD, momentum 0.9, weight decay 1e-4; a ViT's: AdamW,
configs/pretrain/vit_s16_imagenet.py) through
``build_optim_wrapper``; ``--amp`` switches to ``AmpOptimWrapper`` (autocast + dynamic loss
scale), as ``pretrain/train.py --amp`` does.

Fairness:
  * All methods run in one process and alternate step by step after ``--warmup`` untimed
    rounds: round i runs one step of every method, the order rotated by one method per round.
    A change of machine load then hits all methods alike, and the ratio to baseline stays
    meaningful on a shared machine. ``--max-minutes`` caps the stepping time (the rounds done
    are reported as ``steps``).
  * The input is synthetic and fixed (uint8 images, one batch per method made once), so no data
    loading is timed. Only the distillation methods get the second view ``inputs2``, as only
    their configs load two views.
  * The coin flip between a MultiMix batch (prob p) and an input-mixup batch is driven by a
    fixed seed sequence identical across methods: before round i every method's step reseeds
    Python's and torch's RNGs with ``seed + i``, so all MultiMix methods take the same branch at
    the same round and draw the same Lambda sizes. The reported times are therefore the paper's
    setting (p = 0.5) averaged the same way for every method. ``--prob 1`` times the MultiMix
    branch alone (the upper bound on its cost).

Reported per method: the median step time (ms), images/s (``m`` / median step), the ratio of
the median to baseline's median, and peak memory in MB: the method's resident state (parameters,
buffers, EMA teacher and optimizer state) plus the largest growth during one of its steps
(CUDA ``max_memory_allocated`` above the allocation at step start; on CPU the growth of the
process's peak resident set, VmHWM reset through ``/proc/self/clear_refs`` before each step).
The CPU growth is approximate: the allocator may reuse pages another method's step touched.
On CPU the process CPU time per step is reported too (median and ratio): it does not count the
time other processes hold the cores, so it corroborates the wall-clock ratio on a loaded
machine. CPU runs use one torch thread unless ``--threads`` says otherwise: with two threads on
two shared cores each parallel region waits for its slowest thread, which doubled the step time
and its spread in our runs.

Example (the CPU check; about 5-8 minutes on 2 shared cores):
  python benchmarks/bench_train_step.py --device cpu --arch resnet18 --size 64 --m 128 \\
      --n 1000 --classes 100 --json out.json
ViT-S/16 (the ViT recipe: AdamW, dense MultiMix over the patch tokens with u = the class token;
64 px = 4 x 4 tokens on CPU):
  python benchmarks/bench_train_step.py --device cpu --arch vit_s16 --size 64 --m 64 \
      --n 1000 --classes 1000 --json vit.json
The GPU setting of the paper's claim:
  python benchmarks/bench_train_step.py --device cuda --arch resnet50 --size 224 --m 128 \\
      --n 1000 --classes 1000 --amp --channels-last
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import os.path as osp
import platform
import random
import statistics
import sys
import tempfile
import time

import torch
import torchvision

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing too

from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402

import mmtransfer  # noqa: E402,F401  (applies the torch / mmengine compatibility fix)
from mmtransfer.models import METHODS, MixPretrainer  # noqa: E402
from mmtransfer.models.factory import VITS  # noqa: E402

CONFIG_DIR = osp.join(REPO, 'configs', 'pretrain')
VIT_RECIPE = 'vit_s16_imagenet.py'
BASELINE = 'baseline'


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time full training steps of every pretraining method against baseline.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='example:\n  python benchmarks/bench_train_step.py --device cpu --arch resnet18 '
               '--size 64 --m 128 --n 1000 --classes 100 --json out.json')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--arch', default='resnet18',
                        help='torchvision ResNet (default resnet18), or vit_s16 / vit_s16_avg '
                             '(the ViT-S/16 recipe: AdamW, u = the class token)')
    parser.add_argument('--size', type=int, default=64, help='image side in pixels')
    parser.add_argument('--m', type=int, default=128, help='batch size per step')
    parser.add_argument('--n', type=int, default=1000, help='MultiMix interpolated points')
    parser.add_argument('--classes', type=int, default=100, help='number of classes c')
    parser.add_argument('--prob', type=float, default=None,
                        help='probability of a MultiMix batch (default: the configs\' 0.5)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision through AmpOptimWrapper (CUDA only)')
    parser.add_argument('--amp-dtype', choices=('float16', 'bfloat16'), default='float16',
                        help='autocast dtype with --amp (default float16, as pretrain/train.py)')
    parser.add_argument('--channels-last', action='store_true',
                        help='channels_last model and inputs')
    parser.add_argument('--steps', type=int, default=20, help='timed steps per method')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps per method')
    parser.add_argument('--max-minutes', type=float, default=8.0,
                        help='start no new round past this many minutes of stepping; the '
                             'rounds done so far are reported (default 8)')
    parser.add_argument('--methods', nargs='+', choices=list(METHODS), default=list(METHODS),
                        help='methods to time (baseline is always added)')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: 1 with --device cpu, the least '
                             'disturbed by other processes; torch\'s default with cuda)')
    parser.add_argument('--seed', type=int, default=0, help='seed of models, data and mixing')
    parser.add_argument('--json', metavar='PATH', help='also write the results here (atomic)')
    args = parser.parse_args(argv)
    for name in ('size', 'm', 'n', 'classes', 'steps'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1, got {getattr(args, name)}')
    vit = args.arch in VITS
    if not vit and (not args.arch.startswith('resnet') or not hasattr(torchvision.models,
                                                                        args.arch)):
        parser.error(f'--arch must be a torchvision ResNet (resnet18, resnet50, ...) or one of '
                     f'{", ".join(VITS)}, got {args.arch!r}')
    if vit and args.size % 16:
        parser.error(f'--size must be a multiple of 16 (the ViT patch), got {args.size}')
    if not vit and args.size < 32:
        parser.error(f'--size must be >= 32 (a ResNet downsamples 32x), got {args.size}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    if args.max_minutes <= 0:
        parser.error(f'--max-minutes must be > 0, got {args.max_minutes}')
    if args.prob is not None and not 0.0 <= args.prob <= 1.0:
        parser.error(f'--prob must be in [0, 1], got {args.prob}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.amp and args.device != 'cuda':
        parser.error('--amp needs --device cuda (mmengine\'s AmpOptimWrapper is GPU only)')
    args.methods = [BASELINE] + [m for m in dict.fromkeys(args.methods) if m != BASELINE]
    return args


class Bench:
    """One method's model, optimizer wrapper and fixed batch, and its measurements."""

    def __init__(self, method: str, args: argparse.Namespace, device: torch.device):
        recipe = VIT_RECIPE if args.arch in VITS else f'{method}.py'  # its optimizer and mix
        cfg = Config.fromfile(osp.join(CONFIG_DIR, recipe))
        mix = dict(cfg.model.mix, method=method, n=args.n)
        if args.prob is not None:
            mix['prob'] = args.prob
        torch.manual_seed(args.seed)  # the same initial weights for every method
        self.model = MixPretrainer(  # channels_last as the trainer sets it (pretrain/train.py)
            arch=args.arch, num_classes=args.classes, mix=mix, channels_last=args.channels_last,
            data_preprocessor=dict(cfg.model.data_preprocessor, channels_last=args.channels_last))
        self.model.to(device)
        self.model.train()
        optim_cfg = cfg.optim_wrapper.copy()
        if args.amp:
            optim_cfg.update(type='AmpOptimWrapper', loss_scale='dynamic', dtype=args.amp_dtype)
        self.optim_wrapper = build_optim_wrapper(self.model, optim_cfg)
        self.distill = self.model.mix.distill
        self.data = make_batch(args, device, two_views=self.distill)
        self.times_ms: list[float] = []
        self.cpu_ms: list[float] = []
        self.peak_growth = 0
        self.last_losses: dict = {}

    def step(self) -> None:
        """One training step as mmengine's loop + ``TeacherEMAHook`` run it."""
        self.last_losses = self.model.train_step(dict(self.data), self.optim_wrapper)
        if self.distill:
            self.model.update_teacher()

    def state_bytes(self) -> int:
        """Parameters, buffers (EMA teacher included) and optimizer state of this method."""
        from mmtransfer.models.memory import training_state_bytes

        return training_state_bytes(self.model, self.optim_wrapper.optimizer)


def make_batch(args: argparse.Namespace, device: torch.device, two_views: bool) -> dict:
    """Synthetic fixed batch: ``inputs`` (and ``inputs2``) uint8 ``[m, 3, size, size]``."""
    gen = torch.Generator().manual_seed(args.seed)
    shape = (args.m, 3, args.size, args.size)
    data = dict(inputs=torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8),
                labels=torch.randint(0, args.classes, (args.m,), generator=gen))
    if two_views:
        data['inputs2'] = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
    return {k: v.to(device) for k, v in data.items()}


class PeakMemory:
    """Growth of memory during one step: CUDA allocations, or the CPU process's resident set."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == 'cuda'
        self.available = self.cuda or self._can_reset_rss_peak()
        self.start = 0

    @staticmethod
    def _can_reset_rss_peak() -> bool:
        try:
            PeakMemory._reset_rss_peak()
            PeakMemory._status_bytes('VmHWM')
            return True
        except OSError:
            return False

    @staticmethod
    def _reset_rss_peak() -> None:
        with open('/proc/self/clear_refs', 'w') as clear_refs:
            clear_refs.write('5')  # VmHWM := current VmRSS

    @staticmethod
    def _status_bytes(key: str) -> int:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) * 1024
        raise OSError(f'/proc/self/status has no {key}')

    def begin(self) -> None:
        if not self.available:
            return
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
        else:
            self._reset_rss_peak()
            self.start = self._status_bytes('VmRSS')

    def growth(self) -> int:
        if not self.available:
            return 0
        peak = torch.cuda.max_memory_allocated() if self.cuda else self._status_bytes('VmHWM')
        return max(peak - self.start, 0)


def run(args: argparse.Namespace) -> dict:
    """Build every method, alternate their steps, return the JSON report."""
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    if args.threads or not cuda:
        torch.set_num_threads(args.threads or 1)
    if cuda:
        torch.backends.cudnn.benchmark = True  # as env_cfg in configs/pretrain/base.py
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    benches = {method: Bench(method, args, device) for method in args.methods}
    memory = PeakMemory(device)
    names = list(benches)
    load_start = os.getloadavg()
    started = time.perf_counter()
    rounds = 0
    gc.disable()  # no collector pause inside a timed step; autograd frees by reference count
    try:
        while rounds < args.warmup + args.steps:
            round_start = time.perf_counter()
            gc.collect()
            shift = rounds % len(names)  # rotate the order: no method always follows another
            for method in names[shift:] + names[:shift]:
                bench = benches[method]
                random.seed(args.seed + rounds)  # the same MultiMix/mixup coin for every method
                torch.manual_seed(args.seed + rounds)
                sync()
                memory.begin()
                tic, cpu_tic = time.perf_counter(), time.process_time()
                bench.step()
                sync()
                elapsed_ms = (time.perf_counter() - tic) * 1e3
                cpu_ms = (time.process_time() - cpu_tic) * 1e3
                if rounds >= args.warmup:
                    bench.times_ms.append(elapsed_ms)
                    bench.cpu_ms.append(cpu_ms)
                    bench.peak_growth = max(bench.peak_growth, memory.growth())
            rounds += 1
            now = time.perf_counter()
            if rounds > args.warmup and now - started + (now - round_start) > args.max_minutes * 60:
                break  # the next round would overrun the time budget
    finally:
        gc.enable()
    wall_s = time.perf_counter() - started
    for method, bench in benches.items():  # one host read per method, after timing
        for key, value in bench.last_losses.items():
            if not torch.isfinite(value).all():
                raise FloatingPointError(f'{method}: {key} = {value.item()} is not finite')

    base_ms = statistics.median(benches[BASELINE].times_ms)
    base_cpu_ms = statistics.median(benches[BASELINE].cpu_ms)
    report = {}
    for method, bench in benches.items():
        step_ms, cpu_ms = statistics.median(bench.times_ms), statistics.median(bench.cpu_ms)
        peak = (bench.state_bytes() + bench.peak_growth) / 2**20 if memory.available else None
        report[method] = dict(step_ms=round(step_ms, 2), img_per_s=round(args.m / step_ms * 1e3, 1),
                              ratio=round(step_ms / base_ms, 3),
                              peak_mem_mb=None if peak is None else round(peak, 1))
        if not cuda:  # process CPU time: a second, load-independent view of the cost
            report[method].update(cpu_ms=round(cpu_ms, 2), cpu_ratio=round(cpu_ms / base_cpu_ms, 3))
    report['config'] = dict(
        device=args.device,
        device_name=(torch.cuda.get_device_name(device) if cuda
                     else platform.processor() or platform.machine()),
        cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
        arch=args.arch, size=args.size, m=args.m, n=args.n, classes=args.classes,
        prob=args.prob if args.prob is not None else 'config (0.5)',
        amp=args.amp_dtype if args.amp else False, channels_last=args.channels_last,
        steps=rounds - args.warmup, warmup=args.warmup, seed=args.seed, wall_s=round(wall_s, 1),
        loadavg_start=[round(x, 2) for x in load_start],
        loadavg_end=[round(x, 2) for x in os.getloadavg()],
        torch=torch.__version__, date=datetime.datetime.now().isoformat(timespec='seconds'))
    return report


def markdown_table(report: dict) -> str:
    methods = [k for k in report if k != 'config']
    cpu = 'cpu_ms' in report[methods[0]]
    rows = ['| method | step ms | img/s | ratio to baseline | peak mem MB |'
            + (' CPU-time ms | CPU-time ratio |' if cpu else ''),
            '|---|---:|---:|---:|---:|' + ('---:|---:|' if cpu else '')]
    for method in methods:
        r = report[method]
        peak = '-' if r['peak_mem_mb'] is None else f'{r["peak_mem_mb"]:.0f}'
        row = (f'| {method} | {r["step_ms"]:.1f} | {r["img_per_s"]:.1f} | {r["ratio"]:.3f} '
               f'| {peak} |')
        if cpu:
            row += f' {r["cpu_ms"]:.1f} | {r["cpu_ratio"]:.3f} |'
        rows.append(row)
    return '\n'.join(rows)


def write_json_atomic(report: dict, path: str) -> None:
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile('w', dir=folder, suffix='.tmp', delete=False) as tmp:
        json.dump(report, tmp, indent=2)
    os.replace(tmp.name, path)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = run(args)
    cfg = report['config']
    print(f'device={cfg["device"]} ({cfg["device_name"]}, {cfg["cpu_count"]} cpus, '
          f'{cfg["threads"]} threads) arch={args.arch} size={args.size} m={args.m} n={args.n} '
          f'classes={args.classes} prob={cfg["prob"]} amp={cfg["amp"]} '
          f'channels_last={args.channels_last} steps={args.steps} warmup={args.warmup}')
    print(f'load average (1/5/15 min): start {cfg["loadavg_start"]}, end {cfg["loadavg_end"]}; '
          f'wall {cfg["wall_s"]} s\n')
    print(markdown_table(report))
    if args.json:
        write_json_atomic(report, args.json)
        print(f'\nwrote {args.json}')


if __name__ == '__main__':
    main()
