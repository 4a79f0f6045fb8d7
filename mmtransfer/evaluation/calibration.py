"""Calibration: expected calibration error over equal-width confidence bins (Guo et al., 2017)."""
from __future__ import annotations

import torch
from torch import Tensor


def reliability_bins(probs: Tensor, labels: Tensor, bins: int = 15) -> dict[str, Tensor]:
    """Per confidence bin ``((k-1)/B, k/B]``: count, mean confidence, accuracy.

    Args:
        probs: ``[N, c]`` predicted probabilities.
        labels: ``[N]`` true classes.
        bins: B.

    Returns:
        ``dict(count [B], confidence [B], accuracy [B], edges [B + 1])``; empty bins hold 0.
    """
    if probs.dim() != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f'probs [N, c] and labels [N] expected, got {list(probs.shape)}, '
                         f'{list(labels.shape)}')
    confidence, predicted = probs.float().max(1)
    correct = (predicted == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    index = (torch.bucketize(confidence, edges[1:-1].to(confidence), right=False)
             .clamp(0, bins - 1))                                   # bin k holds (e_k, e_k+1]
    count = torch.zeros(bins).index_add_(0, index.cpu(), torch.ones(len(index)))
    conf_sum = torch.zeros(bins).index_add_(0, index.cpu(), confidence.cpu())
    acc_sum = torch.zeros(bins).index_add_(0, index.cpu(), correct.cpu())
    safe = count.clamp_min(1)
    return dict(count=count, confidence=conf_sum / safe, accuracy=acc_sum / safe, edges=edges)


def expected_calibration_error(probs: Tensor, labels: Tensor, bins: int = 15) -> float:
    """``ECE = sum_k |B_k| / N * |acc(B_k) - conf(B_k)|`` over ``bins`` equal-width bins."""
    b = reliability_bins(probs, labels, bins)
    return float((b['count'] / b['count'].sum() * (b['accuracy'] - b['confidence']).abs()).sum())
