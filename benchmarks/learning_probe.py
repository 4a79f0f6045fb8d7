"""How fast does each mixing method teach a ResNet from scratch? A probe of seconds on a CPU
(or of a minute on a GPU at ImageNet's geometry, ``--device cuda --size 224``).

The task is made so that learning is the only question: ``--classes`` (10) classes, each a fixed
random ``3 x size x size`` template (``--size``, 32), every image its template plus Gaussian noise
(``--noise``), drawn fresh at every step (nothing repeats, nothing to memorise). A ResNet-18 of
``--width`` channels is trained with the real :class:`~mmtransfer.models.MixPretrainer` loss of
``--method`` (AdamW at a constant learning rate) and its *pooled* classifier, the one that is
exported and evaluated, is scored on 500 held-out images after ``--steps`` steps (chance: one in
``--classes``), with how alive its embedding is on them (:func:`embedding_health`). For the dense
methods each row also says how spread the attention is (:func:`attention_spread`): with the
gradient flowing through it (the default), it collapses onto a few positions
(docs/findings.md, "The gradient through the attention collapses it").

MultiMix's loss carries the examples' identities only through how ``Lambda`` varies between
columns; with ``Dir(alpha * 1_m)`` columns over ``m`` examples its per-example part is about
``1 / (m * alpha + 1)`` of the gradient, so ``--alpha`` and ``--m`` set how fast it learns
(docs/demo.md; docs/findings.md, "Where it is lost").

    python benchmarks/learning_probe.py --method multimix --prob 1 --steps 400 1600 --seeds 0 1
    python benchmarks/learning_probe.py --method dense --prob 1 --alpha 0.1 \
        --cfg detach_attention=True

Prints one JSON line per (seed, steps) and, with ``--json``, writes them all (atomically).
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
import random
import time

import torch

from mmtransfer import mixing
from mmtransfer.fileio import write_text_atomic
from mmtransfer.models import METHODS, MixConfig, MixConfigError
from mmtransfer.models.pretrainer import MixPretrainer


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device).manual_seed(seed)


def _task(seed: int, noise: float, size: int, classes: int, device: torch.device):
    """The templates of ``seed`` and a sampler ``(m, generator) -> (images, labels)``:
    ``[m, 3, size, size]`` float images and ``[m]`` labels, on ``device``."""
    templates = torch.randn(classes, 3, size, size, generator=_generator(seed, device),
                            device=device)

    def sample(m: int, gen: torch.Generator):
        labels = torch.randint(0, classes, (m,), generator=gen, device=device)
        noisy = templates[labels] + noise * torch.randn(m, 3, size, size, generator=gen,
                                                        device=device)
        return noisy, labels
    return sample


@torch.no_grad()
def embedding_health(encoder, images: torch.Tensor, chunk: int) -> dict:
    """How alive the embedding (the ReLU output of the last block, ``[b, d, h, w]``) is on
    ``images``, run through ``encoder`` ``chunk`` at a time: its mean activation and the fraction
    of its entries that are exactly zero. Pure MultiMix at the paper's alpha drives a map of
    several positions towards all zeros (docs/findings.md, "Where it is lost")."""
    maps = torch.cat([encoder(part) for part in images.split(chunk)])
    return dict(embedding_mean=round(float(maps.mean()), 3),
                embedding_zero_fraction=round(float((maps == 0).float().mean()), 3))


@torch.no_grad()
def attention_spread(model: MixPretrainer, images: torch.Tensor) -> dict:
    """How dense MultiMix's weights look on a batch (eq. 10-13 on the native grid, batch
    statistics as in training; on a copy of the student, with its own Lambda generator, so the
    run itself is left as it was).

    ``attention_max``: mean over examples of the largest attention weight (``1/r`` when spread
    evenly, 1 when each example attends one position); ``examples_per_mixture``: mean over
    positions and columns of ``1 / sum_i w_ijk^2``, the effective number of examples in a mixed
    point, against the same for ``Lambda`` alone; ``examples_by_position``: the attention summed
    over the batch per position, largest first (``m / r`` each when spread evenly).
    """
    student = copy.deepcopy(model.student).train()
    z = student.encoder(images).flatten(2)                                    # [m, d, r]
    attn = mixing.spatial_attention(z, u=model.mix.attention_u, h=model.mix.attention_h)
    lam = mixing.sample_lambda_dense(z.shape[0], model.mix.n, z.shape[-1], model.mix.alpha,
                                     generator=torch.Generator().manual_seed(0), device=z.device)
    w, _ = mixing.dense_mixing_weights(lam, attn)
    return dict(attention_max=round(float(attn.max(1).values.mean()), 3),
                examples_per_mixture=round(float((1 / w.pow(2).sum(1)).mean()), 1),
                examples_per_lambda_column=round(float((1 / lam.pow(2).sum(1)).mean()), 1),
                examples_by_position=[round(v, 1) for v in
                                      attn.sum(0).sort(descending=True).values.tolist()])


def probe(method: str, seed: int, steps: list[int], *, m: int, noise: float, size: int,
          classes: int, width: int, last_stride: int, lr: float, mix: dict,
          device: torch.device) -> list[dict]:
    """Train ``method`` from scratch; held-out top-1 (%) of the pooled classifier at each of
    ``steps`` (sorted). The second view of the distillation methods is a re-noised copy."""
    sample = _task(seed, noise, size, classes, device)
    torch.manual_seed(seed)
    random.seed(seed)                               # the MultiMix / input mixup coin
    model = MixPretrainer('resnet18', classes, mix=dict(method=method, **mix), width=width,
                          last_stride=last_stride).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr, weight_decay=0.05)
    val_images, val_labels = sample(500, _generator(10_000 + seed, device))
    gen = _generator(1_000 + seed, device)
    rows, start = [], time.perf_counter()
    model.train()
    for step in range(1, max(steps) + 1):
        images, labels = sample(m, gen)
        views = images + 0.5 * torch.randn(images.shape, generator=gen, device=device)
        total = sum(model.loss(images, labels, views).values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        model.update_teacher()
        if step in steps:            # read the loss here only: a GPU run syncs once per row
            model.eval()
            with torch.no_grad():
                preds = torch.cat([model.student(chunk).argmax(1) for chunk in val_images.split(m)])
                top1 = (preds == val_labels).float().mean()
                health = embedding_health(model.student.encoder, val_images, m)
            model.train()
            row = dict(method=method, seed=seed, steps=step, loss=round(float(total.detach()), 4),
                       top1=round(100 * float(top1), 1),
                       seconds=round(time.perf_counter() - start, 1), **health)
            if model.mix.dense and model.mix.attention_u != 'cam':
                row.update(attention_spread(model, images))
            rows.append(row)
    return rows


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition('=')
    if not sep or not key:
        raise argparse.ArgumentTypeError(f'--cfg expects key=value, got {text!r}')
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--method', choices=sorted(METHODS), default='multimix')
    p.add_argument('--steps', type=int, nargs='+', default=[400])
    p.add_argument('--seeds', type=int, nargs='+', default=[0])
    p.add_argument('--prob', type=float, default=None,
                   help='probability of a MultiMix batch (default: the paper, 0.5)')
    p.add_argument('--alpha', type=float, nargs='+', default=None,
                   help='Dirichlet alpha: one value, or lo hi (default: the paper, 0.5 2)')
    p.add_argument('--n', type=int, default=256)
    p.add_argument('--m', type=int, default=64, help='images per step')
    p.add_argument('--noise', type=float, default=3.0)
    p.add_argument('--size', type=int, default=32, help='image side (px)')
    p.add_argument('--classes', type=int, default=10)
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument('--width', type=int, default=16)
    p.add_argument('--last-stride', type=int, default=1, choices=(1, 2),
                   help='1: a 2x2 embedding grid (dense methods need more than 1x1)')
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--cfg', type=_option, nargs='*', default=[], metavar='KEY=VALUE',
                   help='more model.mix options, e.g. detach_attention=True')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--json', default=None, help='write the rows here')
    args = p.parse_args(argv)
    if any(s < 1 for s in args.steps):
        p.error('--steps must be >= 1')
    if args.classes < 2:
        p.error('--classes must be >= 2')
    if args.alpha is not None and len(args.alpha) > 2:
        p.error('--alpha takes one value or lo hi')
    args.mix = dict(n=args.n, ema_momentum=0.01, **dict(args.cfg))
    if args.prob is not None:
        args.mix['prob'] = args.prob
    if args.alpha is not None:
        args.mix['alpha'] = args.alpha[0] if len(args.alpha) == 1 else tuple(args.alpha)
    try:
        MixConfig.from_dict(dict(method=args.method, **args.mix))
    except MixConfigError as err:
        p.error(str(err))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith('cuda'):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    rows = []
    for seed in args.seeds:
        for row in probe(args.method, seed, sorted(set(args.steps)), m=args.m, noise=args.noise,
                         size=args.size, classes=args.classes, width=args.width,
                         last_stride=args.last_stride, lr=args.lr, mix=args.mix,
                         device=torch.device(args.device)):
            print(json.dumps(dict(row, mix=args.mix)), flush=True)
            rows.append(row)
    if args.json:
        config = dict(vars(args), cfg=dict(args.cfg))
        write_text_atomic(args.json, json.dumps(dict(config=config, rows=rows), indent=1))


if __name__ == '__main__':
    main()
