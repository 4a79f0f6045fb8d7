#!/usr/bin/env python
"""Alignment, uniformity and a 2-D PCA plot of a pretrained encoder's embeddings.

Embeds the labelled evaluation images of DATA_ROOT (CIFAR-10/100 pickles: the test batch at
32 px; TinyImageNet-200: val at 64 px; otherwise DATA_ROOT/SPLIT/<class>/* resized and
centre-cropped to --size; each normalised as its recipe trains) with the encoder of
CHECKPOINT, global-average-pools block 4 (the embedding MultiMix interpolates) and reports, on
the l2-normalised embeddings (Wang & Isola 2020, positives = same class):

  alignment  = mean over same-class pairs i<j of ||z_i - z_j||^2      (lower: classes tighter)
  uniformity = log mean over all pairs i<j of exp(-2 ||z_i - z_j||^2)  (lower: more uniform)

CHECKPOINT is an mmengine checkpoint of pretrain/train.py (the student, or --which teacher for
the distillation methods) or a backbone file (pretrain/export.py, <work_dir>/backbone.pth).
Writes OUT_DIR/embeddings_metrics.json and OUT_DIR/embeddings_pca.png.
"""
from __future__ import annotations

import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmtransfer  # noqa: E402,F401  (applies mmtransfer.compat)
from mmtransfer.cli import ArgumentParser, output_dir, run  # noqa: E402

EXAMPLE = """examples:
  python tools/analyze_embeddings.py \\
      work_dirs/cifar100_preactresnet18/multimix/seed0/backbone.pth \\
      --data-root data/cifar100 --classes 0 --out-dir work_dirs/analysis/multimix
  python tools/analyze_embeddings.py work_dirs/pretrain/multimix/backbone.pth \\
      --data-root data/demo/cls --size 64 --resize 64 --out-dir work_dirs/analysis/multimix
"""
METRICS_FILE, PLOT_FILE = 'embeddings_metrics.json', 'embeddings_pca.png'


def _at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError
        return value
    parse.__name__ = f'integer >= {minimum}'  # argparse names the type in its message
    return parse


def parse_args(argv):
    parser = ArgumentParser(prog='tools/analyze_embeddings.py', description=__doc__,
                            epilog=EXAMPLE)
    parser.add_argument('checkpoint', help='mmengine checkpoint or backbone.pth')
    parser.add_argument('--data-root', required=True, metavar='DIR',
                        help='CIFAR-10/100 (python version), TinyImageNet-200, or an ImageFolder '
                             'root: <data-root>/<split>/<class>/<images>')
    parser.add_argument('--split', default='val',
                        help='sub-folder of an ImageFolder --data-root (default: val)')
    parser.add_argument('--arch', help='encoder: resnet18 .. resnet152, preactresnet18, wrn16_8 '
                        '(default: inferred from the weights)')
    parser.add_argument('--size', type=_at_least(32), default=None, metavar='PX',
                        help='centre crop size of an ImageFolder root (224 ImageNet, 64 demo '
                             'data; default: 224); CIFAR and TinyImageNet use their own 32, 64')
    parser.add_argument('--resize', type=_at_least(32), default=None, metavar='PX',
                        help='shorter side before the crop of an ImageFolder root (default: '
                             'size / 0.875; the demo config uses 64)')
    parser.add_argument('--which', choices=['student', 'teacher'], default='student',
                        help='network of an mmengine checkpoint; ignored for a backbone file')
    parser.add_argument('--classes', type=_at_least(0), default=10, metavar='N',
                        help='use the first N classes in sorted order, 0 for all (default: 10)')
    parser.add_argument('--max-per-class', type=_at_least(2), default=None, metavar='N',
                        help='at most N images per class, the first in sorted order '
                             '(default: all)')
    parser.add_argument('--out-dir', type=output_dir, default='.', metavar='DIR',
                        help='output folder (default: .)')
    parser.add_argument('--device', default=None,
                        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument('--batch-size', type=_at_least(1), default=64, metavar='N',
                        help='images per forward pass (default: 64)')
    parser.add_argument('--workers', type=_at_least(0), default=2, metavar='N',
                        help='data loading processes (default: 2)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    return parser.parse_args(argv)


def build_encoder(checkpoint: str, which: str, arch: str | None):
    """The encoder of ``checkpoint``, loaded strictly; also its source and architecture."""
    from mmtransfer.analysis import encoder_state_dict, infer_encoder_args, load_encoder
    from mmtransfer.loading import load_weights
    from mmtransfer.models import build_encoder as build_network

    ckpt = load_weights(checkpoint)
    try:
        state, source = encoder_state_dict(ckpt, which)
        spec = infer_encoder_args(state, arch)
        encoder = load_encoder(build_network(**spec), state)
    except ValueError as err:
        raise ValueError(f'{checkpoint}: {err}') from None
    return encoder, source, spec['arch']


def load_images(args):
    """The selected classes and images of ``--data-root``'s evaluation split as a loader of
    uint8 batches; also the class names and the split (size, normalisation)."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from mmtransfer.analysis import per_class_indices
    from mmtransfer.data.eval_split import open_eval_split

    split = open_eval_split(args.data_root, args.split, args.size, args.resize)
    names = split.classes[:args.classes or None]
    indices = per_class_indices(split.labels, torch.arange(len(names)), args.max_per_class)
    counts = torch.bincount(split.labels[indices], minlength=len(names))
    if int(counts.max()) < 2:
        raise ValueError(f'{split.path}: every class has fewer than 2 images; alignment needs '
                         f'same-class pairs')
    loader = DataLoader(Subset(split.dataset, indices.tolist()), batch_size=args.batch_size,
                        shuffle=False, num_workers=args.workers)
    return loader, names, split


def plot_pca(points, labels, names, title: str, path: str) -> None:
    """Scatter of the 2-D projection coloured by class, legend outside; atomic PNG write."""
    import matplotlib

    from mmtransfer.fileio import write_atomic

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap('tab10' if len(names) <= 10 else 'tab20' if len(names) <= 20 else 'hsv')
    fig, ax = plt.subplots(figsize=(7.5, 6))
    for k, name in enumerate(names):
        mine = labels == k
        color = cmap(k if len(names) <= 20 else k / len(names))
        ax.scatter(points[mine, 0], points[mine, 1], s=14, alpha=0.75, color=color,
                   label=name, linewidths=0)
    if len(names) <= 20:
        ax.legend(loc='center left', bbox_to_anchor=(1.0, 0.5), frameon=False, markerscale=2)
    ax.set_xlabel('PC 1')
    ax.set_ylabel('PC 2')
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    try:
        write_atomic(path, lambda f: fig.savefig(f, format='png', dpi=120))
    finally:
        plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from mmtransfer.analysis import alignment, pca_2d, pooled_embeddings, uniformity
    from mmtransfer.data import MultiViewDataPreprocessor
    from mmtransfer.fileio import write_text_atomic

    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    loader, names, split = load_images(args)
    encoder, source, arch = build_encoder(args.checkpoint, args.which, args.arch)

    preprocess = MultiViewDataPreprocessor(split.mean, split.std).to(device)
    z, labels = pooled_embeddings(encoder.to(device), loader, preprocess)
    align, uniform = float(alignment(z, labels)), float(uniformity(z))
    print(f'alignment  {align:.4f}\nuniformity {uniform:.4f}\n'
          f'({len(z)} images, {len(names)} classes, {arch} {source})')

    metrics = dict(alignment=align, uniformity=uniform, num_images=len(z), classes=list(names),
                   checkpoint=osp.abspath(args.checkpoint), which=source, arch=arch,
                   data_root=osp.abspath(split.path), layout=split.layout, size=split.size,
                   resize=(split.size if split.layout != 'imagefolder'
                           else args.resize or round(split.size / 0.875)),
                   definitions=dict(alignment='mean_{i<j, y_i=y_j} ||z_i - z_j||^2',
                                    uniformity='log mean_{i<j} exp(-2 ||z_i - z_j||^2)',
                                    embedding='l2-normalised global-average-pooled block 4'))
    name = osp.join(osp.basename(osp.dirname(osp.abspath(args.checkpoint))),
                    osp.basename(args.checkpoint))
    title = (f'{name} ({source}): alignment {align:.3f}, '
             f'uniformity {uniform:.3f}')
    plot_path = osp.join(args.out_dir, PLOT_FILE)
    plot_pca(pca_2d(torch.nn.functional.normalize(z, dim=1)).numpy(), labels.numpy(), names,
             title, plot_path)
    metrics_path = osp.join(args.out_dir, METRICS_FILE)
    write_text_atomic(metrics_path, json.dumps(metrics, indent=2) + '\n')
    print(f'wrote {metrics_path} and {plot_path}')
    return 0


if __name__ == '__main__':
    sys.exit(run(main))
