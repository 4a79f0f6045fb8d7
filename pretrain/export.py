#!/usr/bin/env python
"""Export the backbone of a pretraining checkpoint for MMDetection's ResNet.

Writes a plain state dict with torchvision's key names, no classifier, no wrapper, atomically
(temporary file, then rename): OUT (.pth) and the same tensors as OUT's .safetensors twin, the
format to share (opening it cannot run code); an OUT ending in .safetensors writes only that.
pretrain/train.py already writes <work-dir>/backbone.{pth,safetensors} (the student); use this
for another checkpoint or for the EMA teacher.
"""
from __future__ import annotations

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmtransfer  # noqa: E402,F401
from mmtransfer.cli import ArgumentParser, output_file, run  # noqa: E402

EXAMPLE = """example:
  python pretrain/export.py work_dirs/pretrain/dense_distill/epoch_300.pth teacher.pth \\
      --which teacher
"""


def main(argv=None) -> int:
    parser = ArgumentParser(prog='pretrain/export.py', description=__doc__, epilog=EXAMPLE)
    parser.add_argument('checkpoint', help='mmengine checkpoint written by pretrain/train.py')
    parser.add_argument('out', type=output_file, help='output file, e.g. backbone.pth')
    parser.add_argument('--which', choices=['student', 'teacher'], default='student',
                        help='the trained network (student) or its EMA teacher (distill methods)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    args = parser.parse_args(argv)

    from mmtransfer.export import export_backbone

    state = export_backbone(args.checkpoint, args.out, args.which)
    twin = osp.splitext(args.out)[0] + '.safetensors'
    written = args.out if args.out.endswith('.safetensors') else f'{args.out} and {twin}'
    print(f'wrote {written}: {args.which} backbone, {len(state)} tensors')
    return 0


if __name__ == '__main__':
    sys.exit(run(main))
