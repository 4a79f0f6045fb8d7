#!/usr/bin/env python
"""The acceptance run on a CUDA machine: one command, a report to paste into an issue.

    python tools/gpu_check.py                      # on the GPU: ImageNet shapes, ~5 min
    python tools/gpu_check.py --device cpu         # tiny shapes, the script's own test

It prints the environment; runs mmcv nms and RoIAlign on the device against the CPU; trains
every pretraining method for a few steps at ImageNet shapes (ResNet-50, 224 px, m=128, n=1000,
c=1000, r=49, synthetic in-memory batches) under bf16 and fp16 autocast and reports images/s, the
ratio to baseline, peak memory and whether the losses were finite; trains Faster R-CNN R50 for
20 iterations on the demo VOC data and tests it; and with 2 or more GPUs runs dense_distill in 2
NCCL processes, whose ranks must end identical. It writes report.json and report.md under --out
and exits non-zero when a check fails.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import mmtransfer  # noqa: E402,F401  (applies the torch / mmengine compatibility fix)
from mmtransfer.cli import ArgumentParser, add_common_args, run  # noqa: E402
from mmtransfer.fileio import write_text_atomic  # noqa: E402

FULL = dict(arch='resnet50', size=224, m=128, n=1000, classes=1000, steps=5, warmup=2,
            det_iters=20, det_depth=50)
TINY = dict(arch='resnet18', size=64, m=8, n=16, classes=10, steps=1, warmup=1,
            det_iters=2, det_depth=18)


def parse_args(argv):
    parser = ArgumentParser(prog='tools/gpu_check.py', description=__doc__)
    parser.add_argument('--device', choices=['cuda', 'cpu'], help='default: cuda if available')
    parser.add_argument('--out', default='work_dirs/gpu_check', help='report folder')
    parser.add_argument('--amp', default=None,
                        help='comma-separated autocast dtypes (default: bf16,fp16 on CUDA, '
                             'bf16 on CPU)')
    parser.add_argument('--methods', help='comma-separated methods (default: all 8)')
    parser.add_argument('--skip', default='', help='comma-separated parts to skip: '
                        'ops,methods,detection,ddp')
    parser.add_argument('--ddp-procs', type=int, default=None,
                        help='DDP processes (default: 2 when 2+ GPUs, else no DDP part; on CPU '
                             'any number runs with gloo)')
    add_common_args(parser)
    return parser.parse_args(argv)


def detection(out: str, device: str, shapes: dict) -> dict:
    """Faster R-CNN from random init for a few iterations on demo VOC, then its test."""
    from mmtransfer.data.demo import ensure_demo_data

    ensure_demo_data(osp.join(REPO, 'data', 'demo'))
    work = osp.join(out, 'faster_rcnn')
    iters, depth = shapes['det_iters'], shapes['det_depth']
    config = osp.join(REPO, 'configs', 'demo', 'faster_rcnn_voc.py')
    options = [f'train_cfg.max_iters={iters}', f'default_hooks.checkpoint.interval={iters}',
               f'model.backbone.depth={depth}']
    if depth >= 50:  # mmdet's R50 (the demo config's backbone is a half-width ResNet-18)
        options += ['model.backbone.base_channels=64', 'model.backbone.stem_channels=64',
                    'model.neck.in_channels=[256,512,1024,2048]']
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='' if device == 'cpu' else
               os.environ.get('CUDA_VISIBLE_DEVICES', '0'))
    start = time.perf_counter()
    for cmd in ([sys.executable, 'tools/train.py', config, '--backbone', 'none', '--work-dir',
                 work, '--cfg-options', *options],
                [sys.executable, 'tools/test.py', config, osp.join(work, f'iter_{iters}.pth'),
                 '--work-dir', work]):
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return dict(ok=False, error=' | '.join(tail), command=' '.join(cmd[1:3]))
    with open(osp.join(work, 'metrics.json')) as f:
        metrics = json.load(f)
    return dict(ok=True, iterations=iters, depth=depth, device=device,
                wall_s=round(time.perf_counter() - start, 1), metrics=metrics)


def methods_part(device: str, amps: list[str], methods: list[str], shapes: dict) -> list[dict]:
    from mmtransfer.acceptance import probe_method

    rows = []
    for amp in amps:
        for method in methods:
            row = probe_method(method, device=device, amp=amp, arch=shapes['arch'],
                               size=shapes['size'], m=shapes['m'], n=shapes['n'],
                               classes=shapes['classes'], steps=shapes['steps'],
                               warmup=shapes['warmup'])
            print(f'  {amp} {method}: {row["img_per_s"]} img/s, peak {row["peak_mem_mib"]} MiB, '
                  f'finite {row["finite"]}', flush=True)
            rows.append(row)
        base = next((r for r in rows if r['amp'] == amp and r['method'] == 'baseline'), None)
        for r in rows:
            if r['amp'] == amp and base:
                r['ratio'] = round(r['step_ms'] / base['step_ms'], 3)
    return rows


def markdown(report: dict) -> str:
    env = report['environment']
    lines = ['# mmtransfer GPU check', '',
             f'{report["date"]}, device `{report["device"]}`, {report["wall_s"]} s, '
             f'**{"PASS" if report["ok"] else "FAIL"}**', '', '| | |', '|---|---|']
    lines += [f'| {k} | {v} |' for k, v in env.items()]
    if 'ops' in report:
        lines += ['', '## mmcv ops on the device vs CPU', '', f'`{report["ops"]}`']
    if report.get('methods'):
        s = report['shapes']
        lines += ['', f'## Training steps ({s["arch"]}, {s["size"]} px, m={s["m"]}, n={s["n"]}, '
                      f'c={s["classes"]}; median of {s["steps"]} after {s["warmup"]} warm-up)', '',
                  '| amp | method | step ms | img/s | ratio to baseline | peak MiB | finite |',
                  '|---|---|---:|---:|---:|---:|---|']
        lines += [f'| {r["amp"]} | {r["method"]} | {r["step_ms"]} | {r["img_per_s"]} | '
                  f'{r.get("ratio", "")} | {r["peak_mem_mib"]} | {r["finite"]} |'
                  for r in report['methods']]
    for part in ('detection', 'ddp'):
        if part in report:
            lines += ['', f'## {part}', '', f'`{json.dumps(report[part])}`']
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    import torch

    from mmtransfer.acceptance import ddp_ranks_identical, environment, mmcv_ops_agree
    from mmtransfer.models import METHODS

    args = parse_args(argv)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda' and not torch.cuda.is_available():
        raise ValueError('--device cuda: torch sees no GPU')
    shapes = FULL if device == 'cuda' else TINY
    amps = (args.amp or ('bf16,fp16' if device == 'cuda' else 'bf16')).split(',')
    methods = args.methods.split(',') if args.methods else list(METHODS)
    unknown = sorted(set(methods) - set(METHODS)) or sorted(set(amps) - {'bf16', 'fp16', 'off'})
    if unknown:
        raise ValueError(f'--methods / --amp: unknown {unknown[0]!r}')
    skip = set(filter(None, args.skip.split(',')))
    procs = args.ddp_procs if args.ddp_procs is not None else \
        (2 if device == 'cuda' and torch.cuda.device_count() >= 2 else 0)
    start = time.perf_counter()
    report = dict(date=time.strftime('%Y-%m-%d %H:%M'), device=device, shapes=shapes,
                  environment=environment())
    print(json.dumps(report['environment'], indent=1), flush=True)
    checks = []
    if 'ops' not in skip:
        report['ops'] = mmcv_ops_agree(device)
        checks.append(report['ops']['nms_equal'] and report['ops']['roi_align_max_abs_diff'] < 1e-4)
        print('ops:', report['ops'], flush=True)
    if 'methods' not in skip:
        print('methods:', flush=True)
        report['methods'] = methods_part(device, amps, methods, shapes)
        checks.append(all(r['finite'] for r in report['methods']))
    if 'detection' not in skip:
        report['detection'] = detection(osp.abspath(args.out), device, shapes)
        checks.append(report['detection']['ok'])
        print('detection:', report['detection'], flush=True)
    if 'ddp' not in skip and procs >= 2:
        report['ddp'] = ddp_ranks_identical(device, procs, arch=shapes['arch'],
                                            classes=shapes['classes'], n=shapes['n'],
                                            m=shapes['m'], size=shapes['size'], steps=3)
        checks.append(bool(report['ddp'].get('identical')))
        print('ddp:', report['ddp'], flush=True)
    report['ok'] = all(checks)
    report['wall_s'] = round(time.perf_counter() - start, 1)
    os.makedirs(args.out, exist_ok=True)
    write_text_atomic(osp.join(args.out, 'report.json'), json.dumps(report, indent=1))
    write_text_atomic(osp.join(args.out, 'report.md'), markdown(report))
    print(f'{"PASS" if report["ok"] else "FAIL"}: {osp.join(args.out, "report.md")}')
    return 0 if report['ok'] else 1


if __name__ == '__main__':
    os.environ.setdefault('PYTHONUNBUFFERED', '1')
    sys.exit(run(main))
