#!/usr/bin/env python
"""Images per second per core of the CIFAR augmentation: batched on-device tensors against a
PIL loader worker.

Every path makes training batches of ``--batch`` images with random crop (zero padding 4) +
horizontal flip + normalisation, on one CPU thread (``--threads``), from the same uint8 data:

  device_path       what a training step costs with CifarDataset + DeviceAugmentPreprocessor:
                    default_collate of the index items, then the preprocessor (gather by index,
                    one crop-and-flip gather, float, (x - mean) / std) on ``--device``
  preprocessor      the preprocessor alone (the part that runs on the GPU there)
  pil_worker        what a DataLoader worker does per image for torchvision's CIFAR10 with
                    AlignMixup's transforms: Image.fromarray, RandomCrop(size, padding=4),
                    RandomHorizontalFlip, ToTensor, Normalize; then default_collate
  pil_v2_uint8      the project's loader path (ImageFolderDataset with transform=dict(padding=4)):
                    Image.fromarray, torchvision v2 on uint8, default_collate, then
                    MultiViewDataPreprocessor normalises

Example:
  python benchmarks/bench_cifar_augment.py --threads 1 --json work_dirs/bench_cifar_augment.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import numpy as np
import torch

from mmtransfer.data.bank import BankDataset
from mmtransfer.data.device_augment import CIFAR_MEAN, CIFAR_STD, DeviceAugmentPreprocessor
from mmtransfer.data.imagefolder import MultiViewDataPreprocessor
from mmtransfer.data.transforms import build_transform
from mmtransfer.fileio import write_atomic


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=int, nargs='+', default=[32, 64],
                        help='image sides (32: CIFAR, 64: TinyImageNet)')
    parser.add_argument('--images', type=int, default=50_000, help='images in the bank')
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--batches', type=int, default=20, help='timed batches per repeat')
    parser.add_argument('--repeats', type=int, default=5, help='the median is reported')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--json', help='write the results here (atomically)')
    args = parser.parse_args(argv)
    for name in ('images', 'batch', 'batches', 'repeats', 'threads'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1')
    if args.images <= args.batch:
        parser.error('--images must be larger than --batch')
    return args


def _time(step, batches: int, repeats: int, batch: int) -> float:
    """Median images/s over ``repeats`` runs of ``batches`` calls of ``step``."""
    step()  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            step()
        rates.append(batches * batch / (time.perf_counter() - start))
    return statistics.median(rates)


def bench(size: int, args) -> dict:
    from mmengine.dataset import default_collate
    from torchvision import transforms as T1

    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (args.images, size, size, 3), dtype=np.uint8)  # torchvision's
    chw = torch.from_numpy(np.ascontiguousarray(hwc.transpose(0, 3, 1, 2)))  # layout / ours
    dataset = BankDataset(chw, torch.zeros(args.images, dtype=torch.int64), ('x',))
    device = torch.device(args.device)
    pre = DeviceAugmentPreprocessor().to(device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    order = torch.randperm(args.images).tolist()
    cursor = [0]

    def indices():
        start = cursor[0] % (args.images - args.batch)
        cursor[0] += args.batch
        return order[start:start + args.batch]

    def device_path():
        pre(default_collate([dataset[i] for i in indices()]), training=True)
        sync()

    fixed = default_collate([dataset[i] for i in range(args.batch)])

    def preprocessor():
        pre(fixed, training=True)
        sync()

    v1 = T1.Compose([T1.RandomCrop(size, padding=4), T1.RandomHorizontalFlip(), T1.ToTensor(),
                     T1.Normalize(tuple(m / 255 for m in CIFAR_MEAN),
                                  tuple(s / 255 for s in CIFAR_STD))])

    def pil_worker():
        from PIL import Image

        default_collate([(v1(Image.fromarray(hwc[i])), 0) for i in indices()])

    v2 = build_transform(True, size, padding=4)
    norm = MultiViewDataPreprocessor(mean=CIFAR_MEAN, std=CIFAR_STD)

    def pil_v2_uint8():
        from PIL import Image

        batch = default_collate([dict(inputs=v2(Image.fromarray(hwc[i])), labels=0)
                                 for i in indices()])
        norm(batch, training=True)

    steps = dict(device_path=device_path, preprocessor=preprocessor, pil_worker=pil_worker,
                 pil_v2_uint8=pil_v2_uint8)
    return {name: _time(step, args.batches, args.repeats, args.batch)
            for name, step in steps.items()}


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    report = dict(config=dict(vars(args), torch=torch.__version__, python=sys.version.split()[0],
                              machine=platform.processor() or platform.machine()))
    for size in args.sizes:
        report[f'{size}px'] = bench(size, args)
    print(f'images/s with {args.threads} thread(s), batch {args.batch}, device {args.device}')
    print('| path | ' + ' | '.join(f'{s} px' for s in args.sizes) + ' |')
    print('|---|' + '---:|' * len(args.sizes))
    for name in report[f'{args.sizes[0]}px']:
        print(f'| {name} | ' + ' | '.join(f'{report[f"{s}px"][name]:,.0f}' for s in args.sizes)
              + ' |')
    if args.json:
        write_atomic(args.json, lambda f: f.write(json.dumps(report, indent=2).encode()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
