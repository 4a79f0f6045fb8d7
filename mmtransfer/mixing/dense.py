"""Dense MultiMix: mix feature maps position by position, weighted by attention (sec. 3.4).

Section and equation numbers: the paper's ICLR-format arXiv text (2206.14868); docs/fidelity.md.

Tensors are batch first with the ``r = h * w`` spatial positions last: features ``z [m, d, r]``,
one interpolation matrix per position ``lam [r, m, n]`` (:func:`sample_lambda_dense`) and
attention ``attn [m, r]`` (:func:`spatial_attention`, eq. 10). Eq. 11-14 mix position ``j`` with

    M_j = diag(a_j) Lambda_j,   s_j = 1^T M_j (column sums),   M^_j = M_j diag(s_j)^-1,

so :func:`dense_mixing_weights` builds ``M^`` and ``s`` for all positions at once and
:func:`dense_mix` applies them to anything with a trailing position axis (features, logits,
targets). :func:`dense_multimix` is the two composed.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._utils import check_shape, divide_or, upcast

__all__ = ['spatial_attention', 'dense_mixing_weights', 'dense_mix', 'dense_multimix',
           'pool_positions']

_QUERIES = ('gap', 'cam', 'none')
_NORMALISERS = ('relu_l1', 'softmax')


def spatial_attention(z: Tensor, *, u: str | Tensor = 'gap', h: str = 'relu_l1',
                      classifier_weight: Tensor | None = None,
                      y: Tensor | None = None) -> Tensor:
    """Attention over positions, eq. 10: ``a = h(z^T u)`` per example.

    Args:
        z: ``[m, d, r]`` feature maps.
        u: the query vector, per example:
            ``'gap'``: global average pooling of ``z`` over positions, ``[m, d]``;
            ``'cam'``: class activation query ``W^T y`` (needs ``classifier_weight`` and ``y``);
            ``'none'``: no attention, ``a = 1/r`` everywhere (``h`` is then unused);
            a tensor ``[m, d]``: the query itself (e.g. a ViT's class token).
        h: ``'relu_l1'``: ``relu`` then divide by the sum over positions (an example whose map is
            all ``<= 0``, or sums to under ``eps**2``, gets the uniform ``1/r``, never NaN);
            ``'softmax'``: softmax over positions.
        classifier_weight: ``[c, d]`` weight ``W`` of the linear classifier (``'cam'`` only).
        y: ``[m, c]`` targets (``'cam'`` only).

    Returns:
        ``a``: ``[m, r]`` (float32 or wider), each row on the simplex.
    """
    given = isinstance(u, Tensor)
    if not given and u not in _QUERIES:
        raise ValueError(f'u must be one of {_QUERIES} or a [m, d] tensor, got {u!r}')
    if h not in _NORMALISERS:
        raise ValueError(f'h must be one of {_NORMALISERS}, got {h!r}')
    check_shape('z', z, (None, None, None))
    m, d, r = z.shape
    z = upcast(z)
    if given:
        check_shape('u', u, (m, d))
        query = u.to(z.dtype)
    elif u == 'none':
        return z.new_full((m, r), 1.0 / r)
    elif u == 'gap':
        query = z.mean(-1)                                                    # [m, d]
    else:
        if classifier_weight is None or y is None:
            raise ValueError("u='cam' needs both classifier_weight [c, d] and y [m, c]")
        check_shape('classifier_weight', classifier_weight, (None, d))
        check_shape('y', y, (m, classifier_weight.shape[0]))
        query = y.to(z.dtype) @ classifier_weight.to(z.dtype)                # [m, d] = (W^T y)^T
    scores = torch.einsum('mdr,md->mr', z, query)                            # z^T u
    if h == 'softmax':
        return scores.softmax(-1)
    scores = scores.relu()
    return divide_or(scores, scores.sum(-1, keepdim=True), 1.0 / r)


def dense_mixing_weights(lam: Tensor, attn: Tensor) -> tuple[Tensor, Tensor]:
    """Renormalised attention-weighted interpolation matrices, eq. 11-14, all positions at once.

    For position ``j``: ``M_j = diag(attn[:, j]) Lambda_j``, ``s[:, j]`` = column sums of ``M_j``
    and ``M^_j = M_j / s[:, j]`` column-wise, back on the simplex. A column with ``s == 0`` (all
    its weight on zero attention), or ``s`` under ``eps**2`` of the dtype, where the quotient's
    gradient would overflow, falls back to the unweighted ``Lambda_j`` column; its weight in the
    loss is ``s`` itself, so the substitution does not move the loss.

    Args:
        lam: ``[r, m, n]`` one interpolation matrix per position.
        attn: ``[m, r]`` attention of each example over positions.

    Returns:
        ``(w [r, m, n], s [n, r])``: ``w[j] = M^_j``; ``s`` is the weight of mixed point ``k`` at
        position ``j`` (before renormalising), used by the loss. Float32 or wider.
    """
    check_shape('lam', lam, (None, None, None))
    r, m, _ = lam.shape
    check_shape('attn', attn, (m, r))
    dtype = torch.promote_types(torch.promote_types(lam.dtype, attn.dtype), torch.float32)
    lam = lam.to(dtype)
    weighted = attn.to(dtype).t().unsqueeze(-1) * lam                      # M: [r, m, n]
    sums = weighted.sum(1, keepdim=True)                                    # s^T: [r, 1, n]
    return divide_or(weighted, sums, lam), sums.squeeze(1).t()


def dense_mix(x: Tensor, w: Tensor) -> Tensor:
    """Mix per position with one matrix per position: ``out[:, :, j] = (x[:, :, j]^T w[j])^T``.

    Mixes features (``k = d``), logits (``k = c``) or targets alike, as one batched matmul.

    Args:
        x: ``[m, k, r]``.
        w: ``[r, m, n]`` mixing weights, e.g. from :func:`dense_mixing_weights`.

    Returns:
        ``[n, k, r]`` (a permuted view of a contiguous ``[r, k, n]`` result).
    """
    check_shape('x', x, (None, None, None))
    check_shape('w', w, (x.shape[2], x.shape[0], None))
    return torch.bmm(x.permute(2, 1, 0), w.to(x.dtype)).permute(2, 1, 0)   # [r,k,m]@[r,m,n]


def dense_multimix(z: Tensor, y: Tensor, lam: Tensor,
                   attn: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Dense MultiMix of feature maps and targets, eq. 11-14.

    Args:
        z: ``[m, d, r]`` feature maps.
        y: ``[m, c]`` targets, shared by all positions of an example (integer one-hot is
            converted to float32).
        lam: ``[r, m, n]`` interpolation matrices (:func:`sample_lambda_dense`).
        attn: ``[m, r]`` attention (:func:`spatial_attention`).

    Returns:
        ``(z_mix [n, d, r], y_mix [n, c, r], s [n, r])`` with ``s`` as in
        :func:`dense_mixing_weights`.
    """
    check_shape('z', z, (None, None, None))
    check_shape('y', y, (z.shape[0], None))
    y = y if y.is_floating_point() else y.float()
    w, s = dense_mixing_weights(lam, attn)
    y_maps = y.unsqueeze(-1).expand(*y.shape, z.shape[2])                  # [m, c, r]
    return dense_mix(z, w), dense_mix(y_maps, w), s


def pool_positions(x: Tensor, grid: tuple[int, int], size: tuple[int, int], dim: int) -> Tensor:
    """Average a position axis ``r = h * w`` (row-major ``grid``) down to a coarser ``size``.

    Used when dense MultiMix mixes at an earlier block than the loss is computed on: the mixing
    weights ``w [r, m, n]`` (``dim=0``) and ``s [n, r]`` (``dim=1``) of the finer grid become
    those of the loss grid by averaging each cell's positions (adaptive average pooling: exact
    ``k x k`` windows when the sides divide, as between ResNet stages). Averaging keeps every
    column of ``w`` on the simplex, and the averaged targets are those of the averaged weights.

    Args:
        x: a tensor whose axis ``dim`` has ``grid[0] * grid[1]`` positions.
        grid: ``(h, w)`` of that axis.
        size: ``(h', w')`` of the result.
        dim: the position axis.

    Returns:
        ``x`` with axis ``dim`` of length ``h' * w'``.
    """
    h, w = grid
    if x.shape[dim] != h * w:
        raise ValueError(f'x has {x.shape[dim]} positions on axis {dim}, grid {grid} needs {h * w}')
    moved = x.movedim(dim, -1)                                             # [..., r]
    lead = moved.shape[:-1]
    maps = moved.reshape(-1, h, w)                                         # [B, h, w]
    pooled = torch.nn.functional.adaptive_avg_pool2d(maps, size)           # [B, h', w']
    return pooled.reshape(*lead, size[0] * size[1]).movedim(-1, dim)
