"""Dense MultiMix losses from the *unmixed* logits, without an ``[n, c, r]`` tensor.

Dense MultiMix at the last block mixes the logits per position, ``L~[:, :, j] = W_j^T L[:, :, j]``
(``head`` is linear and every column of ``W_j = M^_j`` sums to 1, so mixing logits equals running
the head on mixed embeddings). The loss (eq. 14) needs a softmax over the ``c`` classes of every
mixed point at every position, so ``n * c * r`` numbers must be computed; stored, they are what
dominates the memory of the method: at ViT-S/16's 14 x 14 tokens, ``n = c = 1000``, one float32
``[n, c, r]`` is 784 MB, and the reference path keeps three (the mixed logits, their
log-softmax, its gradient).

Here the positions are taken a block of ``k`` at a time, with ``k * n * c`` at most
``max_values``, and each block is recomputed in the backward pass
(:func:`torch.utils.checkpoint.checkpoint`) instead of being stored, so the largest tensor is
``[k, n, c]`` (classes last, so that the softmax reduces over contiguous memory). When all
positions fit in one block (the CPU shapes, and ResNet's 7 x 7 at ``n = 1000``, ``c = 1000``
under the default bound of 2^26 values), it is one plain batched matmul with no
recomputation. The targets are never built: the label form gathers the
log-probabilities at the ``m`` labels (:func:`~mmtransfer.mixing.dense_label_cross_entropy`'s
fast path), the distillation form mixes the teacher's logits block by block too.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ._utils import check_shape, upcast
from .losses import _check_labels, _position_mean

__all__ = ['dense_mixed_label_cross_entropy', 'dense_mixed_soft_cross_entropy']

#: Default bound on ``k * c * n``, the values of the largest block (2^26 float32 = 256 MiB).
MAX_VALUES = 2 ** 26


def _mixed_log_probs(logits: Tensor, w: Tensor) -> Tensor:
    """``logits [m, c, k]``, ``w [k, m, n]`` -> log-softmax over classes of the mixed logits,
    ``[k, n, c]`` (classes last: the softmax reduces over contiguous memory)."""
    logits = upcast(logits)
    mixed = torch.bmm(w.to(logits.dtype).transpose(1, 2), logits.permute(2, 0, 1))
    return mixed.log_softmax(-1)


def _label_ce(logits: Tensor, w: Tensor, labels: Tensor) -> Tensor:
    """``CE[k, n]`` of a block: ``-sum_i w[j, i, k] log p_kj[labels_i]``."""
    log_probs = _mixed_log_probs(logits, w).index_select(2, labels)            # [k, n, m]
    return -(log_probs * w.to(log_probs.dtype).transpose(1, 2)).sum(2)


def _soft_ce(logits: Tensor, w: Tensor, target_logits: Tensor, target_w: Tensor) -> Tensor:
    """``CE[k, n]`` of a block against the softmax of the teacher's mixed logits."""
    log_probs = _mixed_log_probs(logits, w)                                    # [k, n, c]
    with torch.no_grad():
        target = _mixed_log_probs(target_logits, target_w).exp()
    return -(target * log_probs).sum(2)


def _blockwise(fn, tensors: tuple[Tensor, ...], rest: tuple, max_values: int) -> Tensor:
    """``fn`` over blocks of positions (the last axis of the ``[m, c, r]`` tensors, the first of
    the ``[r, m, n]`` ones, alternately in ``tensors``, logits first), concatenated to
    ``[r, n]``; in float32 (or wider) under mixed precision too."""
    _, c, r = tensors[0].shape
    k = max(1, max_values // (c * tensors[1].shape[2]))                      # k * c * n values
    with torch.autocast(tensors[0].device.type, enabled=False):
        if k >= r:
            return fn(*tensors, *rest)
        grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        blocks = []
        for start in range(0, r, k):  # a few blocks of positions, not one step per position
            part = tuple(t[..., start:start + k] if i % 2 == 0 else t[start:start + k]
                         for i, t in enumerate(tensors))
            blocks.append(checkpoint(fn, *part, *rest, use_reentrant=False) if grad
                          else fn(*part, *rest))
        return torch.cat(blocks, 0)


def _check(logits: Tensor, w: Tensor, s: Tensor) -> None:
    check_shape('logits', logits, (None, None, None))
    m, _, r = logits.shape
    check_shape('w', w, (r, m, None))
    check_shape('s', s, (w.shape[2], r))


def dense_mixed_label_cross_entropy(logits: Tensor, labels: Tensor, w: Tensor, s: Tensor,
                                    max_values: int = MAX_VALUES) -> Tensor:
    """Equals ``dense_label_cross_entropy(dense_mix(logits, w), labels, w, s)`` (eq. 14)
    without the ``[n, c, r]`` mixed logits.

    Args:
        logits: ``[m, c, r]`` unmixed per-position logits, ``head(z)``.
        labels: ``[m]`` class indices (long).
        w: ``[r, m, n]`` renormalised weights of :func:`dense_mixing_weights`.
        s: ``[n, r]`` its column sums.
        max_values: bound on the values of one block of positions (``k * c * n``).

    Returns:
        Scalar loss (float32 or wider).
    """
    _check(logits, w, s)
    _check_labels(labels, logits.shape[0])
    ce = _blockwise(_label_ce, (logits, w), (labels,), max_values)               # [r, n]
    return _position_mean(ce.t(), s)


def dense_mixed_soft_cross_entropy(logits: Tensor, w: Tensor, s: Tensor, target_logits: Tensor,
                                   target_w: Tensor, max_values: int = MAX_VALUES) -> Tensor:
    """Equals ``dense_cross_entropy(dense_mix(logits, w), softmax(dense_mix(target_logits,
    target_w)), s)``: the distillation term ``H(P~', P~)`` of dense MultiMix (eq. 14 with the
    teacher's mixed prediction as the target; no gradient reaches the target).

    Args:
        logits: ``[m, c, r]`` the student's unmixed per-position logits.
        w: ``[r, m, n]`` the student's mixing weights; ``s``: ``[n, r]`` their column sums.
        target_logits: ``[m, c, r]`` the teacher's unmixed logits on its view.
        target_w: ``[r, m, n]`` the teacher's mixing weights (its own attention, same Lambda).
        max_values: bound on the values of one block of positions (``k * c * n``).

    Returns:
        Scalar loss (float32 or wider).
    """
    _check(logits, w, s)
    check_shape('target_logits', target_logits, tuple(logits.shape))
    check_shape('target_w', target_w, tuple(w.shape))
    ce = _blockwise(_soft_ce, (logits, w, target_logits, target_w), (), max_values)
    return _position_mean(ce.t(), s)
