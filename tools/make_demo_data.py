#!/usr/bin/env python
"""Generate the synthetic demo data used on CPU.

``--layout demo`` (default): classification + VOC/COCO detection, for ``make demo``.
``--layout cifar10``: a synthetic CIFAR-10 in the official pickle layout
(``cifar-10-batches-py/``) and a flat folder of out-of-distribution images (``ood/``), for
``make cifar-demo`` (:func:`mmtransfer.data.synthetic.write_cifar_demo`).

Example::

    python tools/make_demo_data.py --out data/demo --seed 0
    python tools/make_demo_data.py --layout cifar10 --out data/demo/cifar10

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
    parser.add_argument('--layout', choices=['demo', 'cifar10'], default='demo',
                        help='demo: classification + detection (default); cifar10: the CIFAR-10 '
                             'pickle layout + ood/ (the --cls/--det sizes do not apply)')
    parser.add_argument('--out', type=output_dir,
                        help='output directory (default: data/demo, data/demo/cifar10)')
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
    if args.layout == 'cifar10':
        from mmtransfer.data.synthetic import write_cifar_demo

        out = args.out or 'data/demo/cifar10'
        summary = write_cifar_demo(out, args.seed, force=args.force)
        print(f'{out}: synthetic CIFAR-10 (seed {args.seed}) '
              + ('written' if summary.pop('written') else 'is already complete'))
        print(json.dumps(summary))
        return 0
    args.out = args.out or 'data/demo'
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
