#!/usr/bin/env python
"""Alignment, uniformity and a 2-D PCA plot of a pretrained encoder's embeddings.

Embeds the images of DATA_ROOT/SPLIT/<class>/* (evaluation transform: resize, centre crop) with
the encoder of CHECKPOINT, global-average-pools block 4 (the embedding MultiMix interpolates) and
reports, on the l2-normalised embeddings (Wang & Isola 2020, positives = same class):

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

EXAMPLE = """example (the demo data of tools/make_demo_data.py):
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
                        help='classification data root: <data-root>/<split>/<class>/<images>')
    parser.add_argument('--split', default='val', help='sub-folder of --data-root (default: val)')
    parser.add_argument('--arch', help='encoder: resnet18 .. resnet152, preactresnet18, wrn16_8 '
                        '(default: inferred from the weights)')
    parser.add_argument('--size', type=_at_least(32), default=224, metavar='PX',
                        help='centre crop size in pixels (224 ImageNet, 64 demo data; '
                             'default: 224)')
    parser.add_argument('--resize', type=_at_least(32), default=None, metavar='PX',
                        help='shorter side before the crop (default: size / 0.875; the demo '
                             'config uses 64)')
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
    """The selected classes and images of ``<data-root>/<split>`` as a loader of uint8 batches."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from mmtransfer.analysis import per_class_indices
    from mmtransfer.data import ImageFolderDataset

    if not osp.isdir(args.data_root):
        raise FileNotFoundError(f'{args.data_root}: --data-root not found')
    root = osp.join(args.data_root, args.split)
    dataset = ImageFolderDataset(root, train=False, size=args.size,
                                 transform=dict(resize=args.resize))
    names = dataset.classes[:args.classes or None]
    labels = torch.as_tensor(dataset.folder.targets)
    indices = per_class_indices(labels, torch.arange(len(names)), args.max_per_class)
    counts = torch.bincount(labels[indices], minlength=len(names))
    if int(counts.max()) < 2:
        raise ValueError(f'{root}: every class has fewer than 2 images; alignment needs '
                         f'same-class pairs')
    loader = DataLoader(Subset(dataset, indices.tolist()), batch_size=args.batch_size,
                        shuffle=False, num_workers=args.workers)
    return loader, names


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
    loader, names = load_images(args)
    encoder, source, arch = build_encoder(args.checkpoint, args.which, args.arch)

    preprocess = MultiViewDataPreprocessor().to(device)
    z, labels = pooled_embeddings(encoder.to(device), loader, preprocess)
    align, uniform = float(alignment(z, labels)), float(uniformity(z))
    print(f'alignment  {align:.4f}\nuniformity {uniform:.4f}\n'
          f'({len(z)} images, {len(names)} classes, {arch} {source})')

    metrics = dict(alignment=align, uniformity=uniform, num_images=len(z), classes=list(names),
                   checkpoint=osp.abspath(args.checkpoint), which=source, arch=arch,
                   data_root=osp.abspath(osp.join(args.data_root, args.split)), size=args.size,
                   resize=args.resize or round(args.size / 0.875),
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
