#!/usr/bin/env python
"""Generate the synthetic demo data (classification + VOC/COCO detection) used on CPU.

Example::

    python tools/make_demo_data.py --out data/demo --seed 0

A tree already complete with the same seed and sizes is left as it is (use ``--force`` to
rebuild it); a non-empty directory that is not a demo tree is never overwritten.
"""
from __future__ import annotations

import argparse
import json
import sys

from mmtransfer.data.demo import DemoDataError, is_complete, make_demo_data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='example:\n  python tools/make_demo_data.py --out data/demo --seed 0')
    parser.add_argument('--out', default='data/demo', help='output directory')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the whole tree')
    parser.add_argument('--cls-train-per-class', type=int, default=100)
    parser.add_argument('--cls-val-per-class', type=int, default=20)
    parser.add_argument('--det-trainval07', type=int, default=300)
    parser.add_argument('--det-trainval12', type=int, default=200)
    parser.add_argument('--det-test07', type=int, default=150)
    parser.add_argument('--det-size', type=int, nargs=2, default=(192, 160),
                        metavar=('WIDTH', 'HEIGHT'), help='detection scene size')
    parser.add_argument('--force', action='store_true',
                        help='rebuild even if a complete tree with these settings exists')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = dict(cls_train_per_class=args.cls_train_per_class,
                 cls_val_per_class=args.cls_val_per_class, det_trainval07=args.det_trainval07,
                 det_trainval12=args.det_trainval12, det_test07=args.det_test07,
                 det_size=tuple(args.det_size))
    if not args.force and is_complete(args.out, args.seed, **sizes):
        print(f'{args.out}: demo data (seed {args.seed}) is already complete')
        return 0
    try:
        summary = make_demo_data(args.out, args.seed, **sizes)
    except DemoDataError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
