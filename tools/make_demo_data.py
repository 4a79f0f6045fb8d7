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

from mmtransfer.cli import ArgumentParser, output_dir, run
from mmtransfer.data.demo import default_sizes, is_complete, make_demo_data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog='tools/make_demo_data.py', description=__doc__.split('\n')[0],
        epilog='example:\n  python tools/make_demo_data.py --out data/demo --seed 0')
    parser.add_argument('--out', type=output_dir, default='data/demo', help='output directory')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the whole tree')
    sizes = default_sizes()
    for key, value in sizes.items():
        if key != 'det_size':
            parser.add_argument('--' + key.replace('_', '-'), type=int, default=value,
                                metavar='N', help=f'(default: {value})')
    parser.add_argument('--det-size', type=int, nargs=2, default=sizes['det_size'],
                        metavar=('WIDTH', 'HEIGHT'), help='detection scene size')
    parser.add_argument('--force', action='store_true',
                        help='rebuild even if a complete tree with these settings exists')
    parser.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    return parser.parse_args(argv)


def make(argv: list[str] | None) -> int:
    args = parse_args(argv)
    sizes = {key: getattr(args, key) for key in default_sizes()}
    sizes['det_size'] = tuple(sizes['det_size'])
    if not args.force and is_complete(args.out, args.seed, **sizes):
        print(f'{args.out}: demo data (seed {args.seed}) is already complete')
        return 0
    summary = make_demo_data(args.out, args.seed, **sizes)  # DemoDataError: one line, exit 2
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(make, argv)


if __name__ == '__main__':
    sys.exit(main())
