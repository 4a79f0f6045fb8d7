"""Cross-entropy losses for mixed targets: reference (explicit targets) and fast (label) forms.

The fast forms rest on two facts: the classifier is linear and every mixing column sums to 1, so
``head(Z Lambda) == head(Z) Lambda`` and the ``m`` logits can be mixed instead of ``n`` features;
and with one-hot labels the mixed target of point ``k`` is ``sum_i lam[i, k] e_{label_i}``, so
``-<y_mix_k, log p_k> = -sum_i lam[i, k] log p_k[label_i]``: a gather at the ``m`` labels
replaces the ``[n, c]`` (or ``[n, c, r]``) target. Log-softmax runs in float32 (or wider) and
losses are returned in float32 (or wider).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._utils import check_shape, divide_or, upcast

__all__ = ['soft_cross_entropy', 'mixed_label_cross_entropy', 'dense_cross_entropy',
           'dense_label_cross_entropy']


def _check_labels(labels: Tensor, m: int) -> None:
    check_shape('labels', labels, (m,))
    if labels.dtype != torch.long:
        raise ValueError(f'labels must be a LongTensor, got {labels.dtype}')


def _position_mean(ce: Tensor, s: Tensor) -> Tensor:
    """``mean_j  sum_k s_kj ce_kj / sum_k s_kj`` for ``ce, s: [n, r]`` (eq. 14).

    A position whose weights are all zero (or sum to under ``eps**2``) contributes 0 (no NaN).
    """
    s = s.to(ce.dtype)
    per_position = divide_or((s * ce).sum(0), s.sum(0), 0.0)             # L_j: [r]
    return per_position.mean()


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy with soft targets: ``mean_k -sum_c t_kc log softmax(logits_k)_c``.

    Args:
        logits: ``[n, c]``.
        targets: ``[n, c]``, each row a distribution (e.g. ``y_mix`` of :func:`multimix`).

    Returns:
        Scalar loss.
    """
    check_shape('logits', logits, (None, None))
    check_shape('targets', targets, tuple(logits.shape))
    log_probs = upcast(logits).log_softmax(1)
    return -(targets.to(log_probs.dtype) * log_probs).sum(1).mean()


def mixed_label_cross_entropy(logits_mix: Tensor, labels: Tensor, lam: Tensor) -> Tensor:
    """MultiMix loss without the ``[n, c]`` target: equals
    ``soft_cross_entropy(logits_mix, multimix(z, one_hot(labels), lam)[1])``.

    ``loss = mean_k -sum_i lam[i, k] log softmax(logits_mix_k)[labels_i]`` (eq. 6-7 targets).

    Args:
        logits_mix: ``[n, c]`` logits of the mixed points, e.g. ``mix(head(z), lam)``.
        labels: ``[m]`` class indices (long) of the examples that were mixed.
        lam: ``[m, n]`` interpolation matrix used for the mixing.

    Returns:
        Scalar loss.
    """
    check_shape('logits_mix', logits_mix, (None, None))
    _check_labels(labels, lam.shape[0])
    check_shape('lam', lam, (labels.shape[0], logits_mix.shape[0]))
    log_probs = upcast(logits_mix).log_softmax(1).index_select(1, labels)    # [n, m]
    return -(log_probs * lam.t().to(log_probs.dtype)).sum(1).mean()


def dense_cross_entropy(logits: Tensor, targets: Tensor, s: Tensor) -> Tensor:
    """Dense MultiMix loss, eq. 14: position-wise soft cross-entropy weighted by ``s``.

    ``L_j = sum_k s_kj CE_kj / sum_k s_kj`` with ``CE_kj = -sum_c t_kcj log softmax(logits_kj)_c``
    (softmax over classes ``c``), and ``loss = mean_j L_j``.

    Args:
        logits: ``[n, c, r]``.
        targets: ``[n, c, r]`` (e.g. ``y_mix`` of :func:`dense_multimix`).
        s: ``[n, r]`` weights of :func:`dense_mixing_weights`.

    Returns:
        Scalar loss.
    """
    check_shape('logits', logits, (None, None, None))
    check_shape('targets', targets, tuple(logits.shape))
    check_shape('s', s, (logits.shape[0], logits.shape[2]))
    log_probs = upcast(logits).log_softmax(1)
    ce = -(targets.to(log_probs.dtype) * log_probs).sum(1)                   # [n, r]
    return _position_mean(ce, s)


def dense_label_cross_entropy(logits_mix: Tensor, labels: Tensor, w: Tensor, s: Tensor) -> Tensor:
    """Dense MultiMix loss without the ``[n, c, r]`` target: equals
    ``dense_cross_entropy(logits_mix, dense_multimix(z, one_hot(labels), lam, attn)[1], s)``.

    ``CE_kj = -sum_i w[j, i, k] log softmax(logits_mix[k, :, j])[labels_i]``, then eq. 14.

    Args:
        logits_mix: ``[n, c, r]``, e.g. ``dense_mix(head(z), w)``.
        labels: ``[m]`` class indices (long).
        w: ``[r, m, n]`` renormalised weights of :func:`dense_mixing_weights`.
        s: ``[n, r]`` weights of :func:`dense_mixing_weights`.

    Returns:
        Scalar loss.
    """
    check_shape('logits_mix', logits_mix, (None, None, None))
    n, _, r = logits_mix.shape
    _check_labels(labels, w.shape[1])
    check_shape('w', w, (r, labels.shape[0], n))
    check_shape('s', s, (n, r))
    log_probs = upcast(logits_mix).log_softmax(1).index_select(1, labels)    # [n, m, r]
    ce = -(log_probs * w.permute(2, 1, 0).to(log_probs.dtype)).sum(1)       # [n, r]
    return _position_mean(ce, s)
