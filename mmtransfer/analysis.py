"""Embedding-space measures of a pretrained encoder (MultiMix paper, sec. 4 and appendix).

Alignment and uniformity follow Wang & Isola (ICML 2020), "Understanding Contrastive
Representation Learning through Alignment and Uniformity on the Hypersphere", with the class
labels defining the positive pairs, as in the MultiMix paper's analysis. Both are computed on
l2-normalised embeddings ``z[N, d]`` over the unordered pairs ``i < j``, in row chunks of the
Gram matrix (``||z_i - z_j||^2 = 2 - 2 z_i . z_j`` on the sphere), so memory stays
``O(chunk_size * N)``; there is no Python loop over pairs.

The rest is what the CLIs ``tools/analyze_embeddings.py`` and ``tools/evaluate.py`` need and can
be tested without disk: finding the encoder in a checkpoint, telling its architecture (ResNet,
PreActResNet-18, WRN) from its key names and shapes, choosing the images per class, the pooled
block-4 embedding, and a 2-D PCA projection for the plot.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmtransfer.export import PREFIXES, backbone_state_dict
from mmtransfer.models.factory import VITS
from mmtransfer.models.preact_resnet import PREACT_LAYOUTS
from mmtransfer.models.wide_resnet import parse_wrn

# (blocks per stage, bottleneck) -> torchvision name
RESNET_LAYOUTS = {
    ((2, 2, 2, 2), False): 'resnet18',
    ((3, 4, 6, 3), False): 'resnet34',
    ((3, 4, 6, 3), True): 'resnet50',
    ((3, 4, 23, 3), True): 'resnet101',
    ((3, 8, 36, 3), True): 'resnet152',
}


# ------------------------------------------------------------------------------ the measures


def _upper_pairs(z: Tensor, chunk_size: int) -> Iterable[tuple[Tensor, Tensor, int]]:
    """Yields ``(d2, mask, start)`` per row chunk: ``d2[b, N - start]`` squared distances of
    rows ``start .. start + b`` to rows ``start ..``, ``mask`` true where column > row (i < j)."""
    n = z.shape[0]
    for start in range(0, n, chunk_size):
        rows = z[start:start + chunk_size]
        d2 = (2 - 2 * rows @ z[start:].T).clamp_min(0)            # [b, n - start]
        cols = torch.arange(n - start, device=z.device)
        mask = cols[None, :] > torch.arange(rows.shape[0], device=z.device)[:, None]
        yield d2, mask, start


def _unit(z: Tensor) -> Tensor:
    if z.dim() != 2 or z.shape[0] < 2:
        raise ValueError(f'embeddings must be [N, d] with N >= 2, got {tuple(z.shape)}')
    if not z.is_floating_point() or z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    return F.normalize(z, dim=1)


def alignment(z: Tensor, labels: Tensor, alpha: float = 2.0, chunk_size: int = 1024) -> Tensor:
    """Class alignment ``mean_{i<j, y_i = y_j} ||u_i - u_j||_2^alpha`` with ``u = z / ||z||``.

    Wang & Isola's ``L_align = E_{(x, x+)} ||f(x) - f(x+)||^alpha`` (alpha = 2 by default) with
    the positive pairs ``(x, x+)`` = every unordered pair of distinct images of the same class.
    Lower is better aligned; 0 when all embeddings of each class coincide, at most ``2^alpha``.

    Args:
        z: embeddings ``[N, d]`` (normalised here).
        labels: class indices ``[N]``.
        alpha: exponent of the distance.
        chunk_size: rows of the Gram matrix computed at a time.

    Returns:
        A scalar tensor (differentiable in ``z``). Raises ``ValueError`` when no class has two
        embeddings.
    """
    u = _unit(z)
    labels = labels.to(u.device)
    if labels.shape != u.shape[:1]:
        raise ValueError(f'labels must be [N] = [{u.shape[0]}], got {tuple(labels.shape)}')
    total, count = u.new_zeros(()), 0
    for d2, mask, start in _upper_pairs(u, chunk_size):
        same = labels[start:start + d2.shape[0], None] == labels[None, start:]
        keep = mask & same
        total = total + d2[keep].pow(alpha / 2).sum()
        count += int(keep.sum())
    if count == 0:
        raise ValueError('alignment needs a class with at least 2 embeddings; every class has 1')
    return total / count


def uniformity(z: Tensor, t: float = 2.0, chunk_size: int = 1024) -> Tensor:
    """Uniformity ``log mean_{i<j} exp(-t ||u_i - u_j||_2^2)`` with ``u = z / ||z||``.

    Wang & Isola's ``L_uniform`` (Gaussian potential, t = 2 by default) over every unordered pair
    of distinct embeddings, whatever their classes. 0 when all embeddings coincide, lower (more
    negative) the more uniformly they cover the sphere; at least ``-4t``. Computed as a
    log-sum-exp, so it does not underflow for large ``t``.

    Args:
        z: embeddings ``[N, d]``, N >= 2 (normalised here).
        t: kernel scale.
        chunk_size: rows of the Gram matrix computed at a time.

    Returns:
        A scalar tensor (differentiable in ``z``).
    """
    u = _unit(z)
    n = u.shape[0]
    partial = [torch.logsumexp(-t * d2[mask], dim=0)
               for d2, mask, _ in _upper_pairs(u, chunk_size) if mask.any()]
    return torch.logsumexp(torch.stack(partial), dim=0) - math.log(n * (n - 1) / 2)


def pca_2d(z: Tensor, seed: int = 0) -> Tensor:
    """Projection ``[N, 2]`` of the centred embeddings ``z[N, d]`` on their two principal axes.

    :func:`torch.pca_lowrank` (randomised, with oversampling and power iterations, in float64 on
    the CPU) under a fixed ``seed``, and each axis' sign fixed so that its largest loading is
    positive: the same embeddings always give the same plot.
    """
    if z.dim() != 2 or min(z.shape) < 2:
        raise ValueError(f'embeddings must be [N, d] with N, d >= 2, got {tuple(z.shape)}')
    x = z.detach().cpu().double()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, _, v = torch.pca_lowrank(x, q=min(10, *x.shape), center=True, niter=6)
    axes = v[:, :2]                                                   # [d, 2], largest first
    signs = torch.sign(axes.gather(0, axes.abs().argmax(0, keepdim=True)))
    return ((x - x.mean(0)) @ (axes * signs)).to(z.dtype)


# ------------------------------------------------------------------------------ the encoder


def _blocks_per_stage(state: Mapping[str, Tensor], stages: int = 4) -> tuple[int, ...]:
    """Number of blocks of ``layer1 .. layer{stages}`` in the key names."""
    blocks = []
    for stage in range(1, stages + 1):
        pattern = re.compile(rf'layer{stage}\.(\d+)\.')
        blocks.append(len({m.group(1) for k in state if (m := pattern.match(k))}))
    return tuple(blocks)


def infer_resnet_arch(state: Mapping[str, Tensor]) -> str:
    """torchvision ResNet name from the encoder's key names: blocks per stage and whether
    ``layer1.0.conv3`` exists (bottleneck). Raises ``ValueError`` when the layout is unknown."""
    layout = (_blocks_per_stage(state), 'layer1.0.conv3.weight' in state)
    if layout not in RESNET_LAYOUTS:
        raise ValueError(f'cannot tell the ResNet from its keys (blocks per stage {layout[0]}, '
                         f'bottleneck={layout[1]}); pass --arch')
    return RESNET_LAYOUTS[layout]


def infer_resnet_width(state: Mapping[str, Tensor]) -> int:
    """Stem / ``layer1`` channels of a ResNet encoder from its weights (64 in torchvision)."""
    if 'conv1.weight' not in state:
        raise ValueError('cannot tell the ResNet width: no conv1.weight')
    return int(state['conv1.weight'].shape[0])


def infer_encoder_args(state: Mapping[str, Tensor], arch: str | None = None) -> dict:
    """``build_encoder``'s ``arch`` and ``width`` for the encoder weights ``state`` (key names
    without prefix), so that ``build_encoder(**args)`` loads them strictly.

    The family is told by keys only its definition has: ``layer4.0.shortcut`` (PreActResNet;
    torchvision names it ``downsample``); ``layer3.0.shortcut`` with no ``layer4`` (WRN, whose
    depth is ``6 * blocks per group + 4`` and widen factor ``layer1`` channels / 16); otherwise
    a torchvision ResNet (:func:`infer_resnet_arch`). ``width`` is the stem's output channels
    (``None`` for a WRN). A given ``arch`` is kept (its width still read from the weights).
    What the weights do not hold (``last_stride``) keeps its default.
    """
    if arch is None:
        if {'cls_token', 'pos_embed'} <= set(state):  # timm's ViT (its pooling is not in the keys)
            arch = 'vit_s16'
        elif 'layer4.0.shortcut.0.weight' in state:
            layout = _blocks_per_stage(state)
            if layout not in PREACT_LAYOUTS:
                raise ValueError(f'cannot tell the PreActResNet from its keys (blocks per stage '
                                 f'{layout}); pass --arch')
            arch = PREACT_LAYOUTS[layout]
        elif 'layer3.0.shortcut.0.weight' in state and not any(k.startswith('layer4.')
                                                                for k in state):
            layout = _blocks_per_stage(state, 3)
            channels = state.get('layer1.0.conv1.weight')
            if len(set(layout)) != 1 or channels is None or channels.shape[0] % 16:
                raise ValueError(f'cannot tell the WRN from its keys (blocks per group {layout})'
                                 f'; pass --arch')
            arch = f'wrn{6 * layout[0] + 4}_{channels.shape[0] // 16}'
        else:
            arch = infer_resnet_arch(state)
    if isinstance(arch, str) and (parse_wrn(arch) is not None or arch in VITS):
        return dict(arch=arch, width=None)
    return dict(arch=arch, width=infer_resnet_width(state))


def encoder_state_dict(checkpoint: Mapping, which: str = 'student') -> tuple[OrderedDict, str]:
    """The encoder weights (its own key names: torchvision's for a ResNet) in a loaded
    checkpoint, and their source.

    Accepts an mmengine pretraining checkpoint (``state_dict`` with ``student.encoder.*`` and,
    for distillation, ``teacher.module.encoder.*``; ``which`` picks one) -> source ``which``, or
    a plain state dict with a ``conv1.weight`` such as ``backbone.pth`` (a torchvision
    classifier's ``fc.*`` is dropped) -> source ``'backbone'``. Raises ``ValueError`` when there
    is no encoder.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f'expected a dict, got a {type(checkpoint).__name__}')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping):
        raise ValueError('"state_dict" is not a dict')
    if any(k.startswith(p) for k in state for p in PREFIXES.values()):
        return backbone_state_dict(state, which), which
    if 'conv1.weight' in state or 'cls_token' in state:
        return OrderedDict((k, v) for k, v in state.items()
                           if torch.is_tensor(v) and not k.startswith('fc.')), 'backbone'
    raise ValueError('no ResNet encoder in it (no keys student.encoder.*, '
                     'teacher.module.encoder.* or conv1.weight)')


def load_encoder(encoder: nn.Module, state: Mapping[str, Tensor]) -> nn.Module:
    """``encoder.load_state_dict(state, strict=True)``; a one-line ``ValueError`` on mismatch."""
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    for what, keys in (('missing', missing), ('unexpected', unexpected),
                       ('wrong shape for', wrong)):
        if keys:
            raise ValueError(f'weights do not fit the encoder: {what} {len(keys)} keys '
                             f'(e.g. {keys[0]!r})')
    encoder.load_state_dict(state, strict=True)
    return encoder


# ------------------------------------------------------------------------------ the images


def per_class_indices(labels: Tensor, classes: Tensor, max_per_class: int | None = None) -> Tensor:
    """Indices (ascending) of the samples whose label is in ``classes``, at most the first
    ``max_per_class`` of each class in dataset order. ``labels[N]``, ``classes[k]`` -> ``[M]``."""
    keep = torch.isin(labels, classes)
    if max_per_class is not None:
        order = torch.sort(labels, stable=True).indices                # grouped by class
        sorted_labels = labels[order]
        first = torch.searchsorted(sorted_labels, sorted_labels, right=False)
        rank = torch.empty_like(labels)
        rank[order] = torch.arange(len(labels)) - first                # position in its class
        keep &= rank < max_per_class
    return keep.nonzero().flatten()


@torch.no_grad()
def pooled_embeddings(encoder: nn.Module, batches: Iterable[dict],
                      preprocess: Callable[[dict], dict]) -> tuple[Tensor, Tensor]:
    """Pooled block-4 embeddings (what MultiMix interpolates; GAP, or a ViT's class token) of
    every batch.

    ``batches`` yield ``dict(inputs=uint8[m, 3, H, W], labels[m])``; ``preprocess`` moves and
    normalises them (a :class:`~mmtransfer.data.MultiViewDataPreprocessor`). The encoder runs in
    eval mode. Returns ``z[N, d]`` (float32, CPU) and ``labels[N]``.
    """
    encoder.eval()
    zs, ys = [], []
    for batch in batches:
        data = preprocess(batch)
        zs.append(encoder.pool(encoder(data['inputs'])).float().cpu())
        ys.append(torch.as_tensor(batch['labels']).cpu())
    if not zs:
        raise ValueError('no images to embed')
    return torch.cat(zs), torch.cat(ys)
