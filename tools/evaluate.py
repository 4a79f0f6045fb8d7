#!/usr/bin/env python
"""Evaluate a pretrained classifier as the paper does, beyond top-1.

On the labelled evaluation split of DATA_ROOT (CIFAR-10/100 pickles: the test batch, 32 px;
TinyImageNet-200: val, 64 px; otherwise an ImageFolder DATA_ROOT/val at --size; each with the
normalisation its recipe trains with):
- clean top-1 / top-5;
- top-1 error under FGSM and PGD (pixel space, before normalisation, l-infinity budgets, images
  clamped to [0, 1]; by default the mixup literature's protocol: FGSM 8/255, PGD 20 steps of
  2/255 in the 4/255 ball);
- expected calibration error over 15 bins, with a reliability diagram;
- with --ood-root, out-of-distribution detection with the maximum softmax probability as the
  score (ID = that split, OOD = every image under --ood-root, a flat folder or an ImageFolder
  tree, resized to the evaluation size): AUROC, AUPR (ID positive) and detection accuracy at
  the best threshold.

CHECKPOINT is an mmengine checkpoint of pretrain/train.py (the student, or --which teacher).
Writes WORK_DIR/eval_metrics.json (atomically) and WORK_DIR/reliability.png.
"""
from __future__ import annotations

import json
import os.path as osp
import sys
from fractions import Fraction

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmtransfer  # noqa: E402,F401  (applies mmtransfer.compat)
from mmtransfer.cli import ArgumentParser, output_dir, run  # noqa: E402

EXAMPLE = """examples:
  python tools/evaluate.py work_dirs/cifar100_preactresnet18/dense_distill/seed0/epoch_2000.pth \\
      --data-root data/cifar100 --ood-root data/LSUN_resize --work-dir work_dirs/eval
  python tools/evaluate.py work_dirs/demo/pretrain/baseline/iter_500.pth \\
      --data-root data/demo/cls --size 64 --resize 64 --ood-root data/demo/cls/ood
"""
ATTACKS = ('fgsm', 'pgd')


def _fraction(text: str) -> float:
    """'4/255' or '0.0157' -> float >= 0."""
    value = float(Fraction(text))
    if value < 0:
        raise ValueError
    return value


_fraction.__name__ = 'number >= 0 (e.g. 4/255)'


def parse_args(argv):
    from mmtransfer.evaluation.robustness import LITERATURE_PROTOCOL as PROTOCOL

    parser = ArgumentParser(prog='tools/evaluate.py', description=__doc__, epilog=EXAMPLE)
    parser.add_argument('checkpoint', help='mmengine checkpoint of pretrain/train.py')
    parser.add_argument('--data-root', required=True, metavar='DIR',
                        help='CIFAR-10/100 (python version), TinyImageNet-200, or an ImageFolder '
                             'root holding val/<class>/<images>')
    parser.add_argument('--ood-root', metavar='DIR',
                        help='out-of-distribution images (a flat folder or an ImageFolder tree)')
    parser.add_argument('--attacks', default='fgsm,pgd',
                        help='comma-separated: fgsm, pgd, or "" for none (default: fgsm,pgd)')
    # Defaults: the mixup literature's protocol (PuzzleMix's robustness test; docs/evaluation.md).
    parser.add_argument('--fgsm-eps', type=_fraction, metavar='EPS',
                        help='FGSM l-inf budget (and step) in [0, 1] pixel units (default: 8/255)')
    parser.add_argument('--pgd-eps', type=_fraction, metavar='EPS',
                        help='PGD l-inf budget in [0, 1] pixel units (default: 4/255)')
    parser.add_argument('--eps', type=_fraction,
                        help='one budget for both attacks, e.g. 0 (--fgsm-eps / --pgd-eps win)')
    parser.add_argument('--pgd-step', type=_fraction, default=PROTOCOL['pgd_step'],
                        help='PGD step size (default: 2/255)')
    parser.add_argument('--pgd-iters', type=int, default=PROTOCOL['pgd_iters'],
                        help='PGD iterations (default: 20)')
    parser.add_argument('--which', choices=['student', 'teacher'], default='student')
    parser.add_argument('--arch', help='encoder: resnet18 .. resnet152, preactresnet18, '
                        'wrn16_8 (default: inferred from the weights)')
    parser.add_argument('--size', type=int, help='crop size of an ImageFolder root (default: '
                        '224; demo: 64); CIFAR and TinyImageNet use their own 32 and 64 px')
    parser.add_argument('--resize', type=int, metavar='PX',
                        help='shorter side before the centre crop of an ImageFolder root, as the '
                        'training config\'s val transform (default: size / 0.875; demo: 64)')
    parser.add_argument('--batch-size', type=int, default=100)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--amp', action='store_true', help='bf16 autocast for the clean pass '
                        '(CUDA; attacks stay float32)')
    parser.add_argument('--work-dir', type=output_dir, default='work_dirs/eval',
                        help='output folder')
    parser.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    args = parser.parse_args(argv)
    args.attacks = [a for a in args.attacks.split(',') if a]
    unknown = sorted(set(args.attacks) - set(ATTACKS))
    if unknown:
        raise ValueError(f'--attacks: unknown attack {unknown[0]!r}; choose from fgsm, pgd')
    if args.pgd_iters < 0:
        raise ValueError(f'--pgd-iters must be >= 0, got {args.pgd_iters}')
    for attack in ATTACKS:
        key = f'{attack}_eps'
        if getattr(args, key) is None:
            setattr(args, key, PROTOCOL[key] if args.eps is None else args.eps)
    return args


def build_classifier(path: str, which: str, arch: str | None, num_classes: int):
    """Encoder + head of a pretraining checkpoint, loaded strictly; one-line errors."""
    from mmtransfer.analysis import encoder_state_dict, infer_encoder_args, load_encoder
    from mmtransfer.loading import load_checkpoint
    from mmtransfer.models.pretrainer import Classifier

    ckpt = load_checkpoint(path, map_location='cpu')
    try:
        encoder_state, source = encoder_state_dict(ckpt, which)
        if source == 'backbone':
            raise ValueError('a backbone file has no classifier head: give the training '
                             'checkpoint (epoch_N.pth / iter_N.pth)')
        spec = infer_encoder_args(encoder_state, arch)
        arch = spec['arch']
        prefix = 'student.head.' if which == 'student' else 'teacher.module.head.'
        head = {k[len(prefix):]: v for k, v in ckpt['state_dict'].items() if k.startswith(prefix)}
        net = Classifier(arch, head['weight'].shape[0], width=spec['width'])
        load_encoder(net.encoder, encoder_state)
        if head['weight'].shape[0] != num_classes:
            raise ValueError(f'its head has {head["weight"].shape[0]} classes, the data root '
                             f'has {num_classes}')
        net.head.load_state_dict(head)
    except (ValueError, KeyError) as err:
        raise ValueError(f'{path}: {err}') from None
    return net.eval(), arch


def ood_loader(root: str, size: int, resize: int | None, args):
    """Every image under ``root`` (a flat folder or a tree), resized and centre-cropped to the
    evaluation size."""
    from torch.utils.data import DataLoader

    from mmtransfer.data.imagefolder import ImageFilesDataset

    dataset = ImageFilesDataset(root, size=size, resize=resize)
    return DataLoader(dataset, batch_size=args.batch_size, shuffle=False,
                      num_workers=args.workers), dataset


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from mmengine.utils import ProgressBar
    from torch.utils.data import DataLoader

    from mmtransfer.data import MultiViewDataPreprocessor
    from mmtransfer.data.eval_split import open_eval_split
    from mmtransfer.evaluation import (
        aupr,
        auroc,
        detection_accuracy,
        expected_calibration_error,
        fgsm,
        max_softmax_probability,
        pgd,
        reliability_bins,
    )
    from mmtransfer.evaluation.robustness import normalized
    from mmtransfer.fileio import write_text_atomic

    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if args.amp and device.type != 'cuda':
        raise ValueError('--amp needs a CUDA device')
    split = open_eval_split(args.data_root, 'val', args.size, args.resize)
    val_loader = DataLoader(split.dataset, batch_size=args.batch_size, shuffle=False,
                            num_workers=args.workers)
    ood = ood_loader(args.ood_root, split.size, split.ood_resize, args) if args.ood_root else None
    net, arch = build_classifier(args.checkpoint, args.which, args.arch, len(split.classes))
    net.to(device)
    pre = MultiViewDataPreprocessor(split.mean, split.std)
    model = normalized(net, pre.mean.flatten() / 255, pre.std.flatten() / 255)

    def logits_of(pixels):
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=args.amp):
            return model(pixels).float()

    probs, labels, wrong = [], [], {a: 0 for a in args.attacks}
    bar = ProgressBar(len(split.labels) + (len(ood[1]) if ood else 0))
    for batch in val_loader:
        x = batch['inputs'].to(device).float() / 255
        y = batch['labels'].to(device)
        probs.append(logits_of(x).softmax(1).cpu())
        labels.append(y.cpu())
        if 'fgsm' in args.attacks:
            adv = fgsm(model, x, y, args.fgsm_eps)
            wrong['fgsm'] += int((logits_of(adv).argmax(1) != y).sum())
        if 'pgd' in args.attacks:
            adv = pgd(model, x, y, args.pgd_eps, args.pgd_step, args.pgd_iters,
                      generator=torch.Generator().manual_seed(len(labels)))
            wrong['pgd'] += int((logits_of(adv).argmax(1) != y).sum())
        for _ in range(len(y)):
            bar.update()
    probs, labels = torch.cat(probs), torch.cat(labels)
    n = len(labels)
    top = probs.topk(min(5, probs.shape[1]), 1).indices
    metrics = dict(
        checkpoint=osp.abspath(args.checkpoint), which=args.which, arch=arch,
        data=osp.abspath(split.path), layout=split.layout, size=split.size, images=n,
        top1=100 * float((top[:, 0] == labels).float().mean()),
        top5=100 * float((top == labels[:, None]).any(1).float().mean()),
        ece=expected_calibration_error(probs, labels, 15), ece_bins=15)
    for attack in args.attacks:
        metrics[f'{attack}_top1_error'] = 100 * wrong[attack] / n
    metrics['attack'] = dict(fgsm_eps=args.fgsm_eps, pgd_eps=args.pgd_eps,
                             pgd_step=args.pgd_step, pgd_iters=args.pgd_iters,
                             space='pixels in [0, 1], before normalisation')
    if ood:
        ood_scores = []
        for batch in ood[0]:
            ood_scores.append(max_softmax_probability(
                logits_of(batch['inputs'].to(device).float() / 255)).cpu())
            for _ in range(len(batch['inputs'])):
                bar.update()
        id_scores, ood_scores = probs.max(1).values, torch.cat(ood_scores)
        metrics.update(ood_root=osp.abspath(args.ood_root), ood_images=len(ood_scores),
                       ood_auroc=100 * auroc(id_scores, ood_scores),
                       ood_aupr=100 * aupr(id_scores, ood_scores),
                       ood_detection_accuracy=100 * detection_accuracy(id_scores, ood_scores))
    print()
    print('  '.join(f'{k} {v:.2f}' for k, v in metrics.items() if isinstance(v, float)))
    plot_reliability(reliability_bins(probs, labels, 15), metrics['ece'],
                     osp.join(args.work_dir, 'reliability.png'))
    path = osp.join(args.work_dir, 'eval_metrics.json')
    write_text_atomic(path, json.dumps(metrics, indent=2) + '\n')
    print(f'wrote {path}')
    return 0


def plot_reliability(bins: dict, ece: float, path: str) -> None:
    """Accuracy against confidence per bin, the diagonal for reference; atomic PNG write."""
    import matplotlib

    from mmtransfer.fileio import write_atomic

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    edges = bins['edges'].numpy()
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    filled = bins['count'].numpy() > 0
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.bar(centres[filled], bins['accuracy'].numpy()[filled], width=width * 0.95,
           edgecolor='black', label='accuracy')
    ax.plot([0, 1], [0, 1], '--', color='grey', label='perfect calibration')
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel='confidence', ylabel='accuracy',
           title=f'Reliability (ECE {100 * ece:.1f} %)')
    ax.legend(loc='upper left')
    fig.tight_layout()
    try:
        write_atomic(path, lambda f: fig.savefig(f, format='png', dpi=110))
    finally:
        plt.close(fig)


if __name__ == '__main__':
    sys.exit(run(main))
